"""Gaps: who is outside the 15-minute circle, which 街道 fail a target, slot shortfalls.

Uncovered areas (GUIDE §3 "Gaps") are built from population points, not by intersecting
polygons: every populated point whose walking distance to the nearest facility exceeds
the threshold (or is ``inf``: none within the cut-off) gets a cell; cells that overlap
(or, for H3, are neighbours) form one area — found as connected components of the cell
graph (scipy), so no point-in-polygon test is needed — whose cells are dissolved into its
polygon; each area carries the people and under-3 children of its points, its 街道 and
its rank (``gap_id`` 1 = most people). Three cell shapes:

* ``method="zones"`` (default): contiguous gap zones. Uncovered points closer than the
  stated ``merge_distance_m`` (default :data:`DEFAULT_MERGE_M`, 150 m) to each other
  belong to one zone (connected components of the KD-tree pairs within that distance,
  chained: A–B and B–C make one zone even when A and C are farther apart); the zone's
  polygon is the union of discs of radius ``merge_distance_m / 2`` around its points,
  so neighbours' discs touch and two zones never overlap. A district's uncovered
  population becomes a few dozen areas a planner can name instead of hundreds of
  building-sized squares.
* ``method="grid"``: a square centred on the point with side
  ``1.05 × spacing`` (``spacing_m``, default the median nearest-neighbour distance of all
  population points). On a regular grid neighbouring squares overlap by 5 % and merge
  (diagonal neighbours too), so rounding in the grid does not split an area.
* ``method="h3"``: the H3 cell (``h3_resolution``) holding the point, for irregular
  points such as buildings; cells are computed in WGS84 and projected back.

Points with an unknown walking distance (NaN) are neither covered nor gaps and are
counted in ``attrs["points_walk_unknown"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import geopandas as gpd
import h3
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from tuoyu.errors import InputValidationError
from tuoyu.indicators.targets import INDICATORS, Profile

GAP_COLUMNS: Final = (
    "gap_id",
    "population",
    "population_under3",
    "points",
    "unit_codes",
    "area_m2",
    "geometry",
)
GAP_NAMES_COLUMN: Final = "unit_names"
"""Extra column after ``unit_codes`` when :func:`uncovered_areas` is given unit names."""
FAILING_COLUMNS: Final = (
    "indicator",
    "label_zh",
    "target",
    "rank",
    "code",
    "name",
    "value",
    "people_affected",
    "under3_affected",
)
SHORTFALL_COLUMNS: Final = (
    "rank",
    "code",
    "name",
    "population",
    "slots",
    "slots_per_1000",
    "target_slots",
    "slot_shortfall",
)
_GRID_OVERLAP: Final = 1.05
DEFAULT_SPACING_M: Final = 100.0
DEFAULT_MERGE_M: Final = 150.0
"""Uncovered points closer than this form one gap zone (``method="zones"``), metres."""
_DISC_QUAD_SEGS: Final = 4
"""Segments per quarter circle of the zone discs: 16 per disc, inside the true disc by at
most 1.4 m for the default 150 m merge distance (a zone is indicative; 8 per quarter
doubled the vertices of gaps.geojson and the gap map for no visible difference)."""


def _empty_gaps(crs: object, reason: str | None = None) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {
            "gap_id": pd.array([], dtype="Int64"),
            "population": pd.array([], dtype="float64"),
            "population_under3": pd.array([], dtype="Float64"),
            "points": pd.array([], dtype="Int64"),
            "unit_codes": pd.array([], dtype="str"),
            "area_m2": pd.array([], dtype="float64"),
        },
        geometry=gpd.GeoSeries([], crs=crs),
        crs=crs,
    )
    if reason:
        frame.attrs["skipped"] = reason
    return frame


def median_spacing_m(points: gpd.GeoSeries) -> float:
    """Median distance from each point to its nearest other point (metres).

    Returns :data:`DEFAULT_SPACING_M` when fewer than two distinct points exist.
    """
    xy = np.column_stack([points.x.to_numpy(), points.y.to_numpy()])
    xy = np.unique(xy, axis=0)
    if xy.shape[0] < 2:
        return DEFAULT_SPACING_M
    dist, _ = cKDTree(xy).query(xy, k=2)
    return float(np.median(dist[:, 1]))


_Groups = tuple[npt.NDArray[np.int64], npt.NDArray[np.object_], npt.NDArray[np.int64]]
"""(area label per point, cell polygons, area label per cell)."""


def _grid_groups(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], half_m: float) -> _Groups:
    """Area label per point, and one square cell per point.

    Two squares of half-side ``h`` overlap when their centres are closer than ``2h`` in
    both x and y (Chebyshev distance); the overlap graph's connected components are the
    areas (one KD-tree pair query, no point-in-polygon tests).
    """
    xy = np.column_stack([x, y])
    pairs = cKDTree(xy).query_pairs(r=2.0 * half_m * (1.0 - 1e-9), p=np.inf, output_type="ndarray")
    n = xy.shape[0]
    graph = sp.coo_matrix(
        (np.ones(pairs.shape[0]), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    ).tocsr()
    _, labels = connected_components(graph, directed=False)
    cells = np.asarray(shapely.box(x - half_m, y - half_m, x + half_m, y + half_m), dtype=object)
    labels = labels.astype(np.int64)
    return labels, cells, labels


def _disc_coords(
    xy: npt.NDArray[np.float64], radius_m: float
) -> tuple[npt.NDArray[np.float64], int]:
    """The ring coordinates of one disc of ``radius_m`` per row of ``xy``, as
    ``shapely.buffer`` draws them (``(len(xy) × vertices, 2)``, disc after disc), and the
    number of vertices of a ring.

    GEOS draws a point's buffer as centre + offset, the offsets depending only on the
    radius and :data:`_DISC_QUAD_SEGS`: the offsets of one buffered origin are added to
    every centre (one array sum instead of a buffer per point; the same coordinates bit
    for bit, checked in ``tests/test_reports_speed_gaps.py``).
    """
    template = shapely.get_coordinates(
        shapely.buffer(shapely.Point(0.0, 0.0), radius_m, quad_segs=_DISC_QUAD_SEGS)
    )
    coords = (xy[:, np.newaxis, :] + template[np.newaxis, :, :]).reshape(-1, 2)
    return np.asarray(coords, dtype=np.float64), int(template.shape[0])


def _discs(xy: npt.NDArray[np.float64], radius_m: float) -> npt.NDArray[np.object_]:
    """One disc polygon of ``radius_m`` per row of ``xy``, as ``shapely.buffer`` draws it
    (:func:`_disc_coords`, one ``shapely.from_ragged_array`` call)."""
    coords, n_vertices = _disc_coords(xy, radius_m)
    ring_offsets = np.arange(0, xy.shape[0] * n_vertices + 1, n_vertices)
    polygon_offsets = np.arange(xy.shape[0] + 1)
    return np.asarray(
        shapely.from_ragged_array(
            shapely.GeometryType.POLYGON, coords, (ring_offsets, polygon_offsets)
        ),
        dtype=object,
    )


def _zone_parts(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], merge_m: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]]:
    """Zone label per point (points within ``merge_m`` chained), and each zone's polygon.

    A zone's polygon is the union of discs of radius ``merge_m / 2`` around its points:
    two points of one zone at most ``merge_m`` apart have touching discs, points of two
    zones are farther apart, so their discs are disjoint. It is what
    ``_dissolve(_discs(xy), labels)`` gives, bit for bit, with fewer geometry objects:

    * a zone of one point (most of a big city's zones) is its disc: GEOS's union of one
      polygon is a copy of it;
    * the discs of a zone of several points are drawn as one multipolygon (the discs in
      point order) and unioned: GEOS unions the polygons of a multipolygon as it unions
      a collection of the same polygons, so no object is made per disc.

    Checked against the per-zone ``union_all`` in ``tests/test_reports_speed2_gaps.py``.
    """
    xy = np.column_stack([x, y])
    pairs = cKDTree(xy).query_pairs(r=merge_m, output_type="ndarray")
    n = xy.shape[0]
    graph = sp.coo_matrix(
        (np.ones(pairs.shape[0]), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    ).tocsr()
    n_zones, raw_labels = connected_components(graph, directed=False)
    labels = raw_labels.astype(np.int64)
    sizes = np.bincount(labels, minlength=n_zones)
    order = np.argsort(labels, kind="stable")  # points of a zone in point order
    alone = sizes[labels[order]] == 1
    parts = np.empty(n_zones, dtype=object)
    single = order[alone]
    parts[labels[single]] = _discs(xy[single], 0.5 * merge_m)
    grouped = order[~alone]
    if grouped.size:
        coords, n_vertices = _disc_coords(xy[grouped], 0.5 * merge_m)
        multi = np.flatnonzero(sizes > 1)
        discs = shapely.from_ragged_array(
            shapely.GeometryType.MULTIPOLYGON,
            coords,
            (
                np.arange(0, grouped.size * n_vertices + 1, n_vertices),
                np.arange(grouped.size + 1),
                np.concatenate([[0], np.cumsum(sizes[multi])]),
            ),
        )
        parts[multi] = shapely.union_all(np.asarray(discs)[:, np.newaxis], axis=1)
    return labels, parts


def _h3_groups(points: gpd.GeoSeries, resolution: int) -> _Groups:
    """Area label per point (H3 cells joined to their edge neighbours), and one hexagon
    per distinct cell (in the points' CRS)."""
    lonlat = points.to_crs(4326)
    cells = [
        h3.latlng_to_cell(lat, lon, resolution)
        for lon, lat in zip(lonlat.x.to_numpy(), lonlat.y.to_numpy(), strict=True)
    ]
    unique = sorted(set(cells))
    index = {c: i for i, c in enumerate(unique)}
    rows: list[int] = []
    cols: list[int] = []
    for c, i in index.items():
        for nb in h3.grid_ring(c, 1):
            j = index.get(nb)
            if j is not None:
                rows.append(i)
                cols.append(j)
    n = len(unique)
    graph = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    _, cell_label = connected_components(graph, directed=False)
    hexagons = gpd.GeoSeries(
        [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in unique],
        crs=4326,
    ).to_crs(points.crs)
    labels = np.array([cell_label[index[c]] for c in cells], dtype=np.int64)
    return labels, np.asarray(hexagons.values, dtype=object), cell_label.astype(np.int64)


def uncovered_areas(
    population: gpd.GeoDataFrame,
    walk_m: npt.ArrayLike | None,
    *,
    threshold_m: float,
    method: Literal["zones", "grid", "h3"] = "zones",
    merge_distance_m: float = DEFAULT_MERGE_M,
    spacing_m: float | None = None,
    h3_resolution: int = 9,
    unit_codes: npt.ArrayLike | None = None,
    unit_names: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Populated areas outside the service circle, as polygons with their people.

    Parameters
    ----------
    population
        Population points (metric CRS) with ``population`` and, optionally,
        ``population_under3`` and ``unit_code``.
    walk_m
        Walking distance to the nearest facility per point (``inf`` = none within the
        cut-off, NaN = unknown); ``None`` = no network → empty result with the reason in
        ``attrs["skipped"]``.
    threshold_m
        Service-circle distance; points farther than this are uncovered.
    method, merge_distance_m, spacing_m, h3_resolution
        Cell shape (see the module docstring): ``merge_distance_m`` for zones,
        ``spacing_m`` for grid squares, ``h3_resolution`` for hexagons.
    unit_codes
        Unit code per point, overriding the ``unit_code`` column.
    unit_names
        ``{unit code: name}`` (e.g. the 街道 names): adds the column
        :data:`GAP_NAMES_COLUMN` after ``unit_codes`` (names in the same order).

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`GAP_COLUMNS` (and ``unit_names`` when given), one row per connected
        area, largest population first (``gap_id`` 1, 2, … is the rank), in the
        population CRS. ``population_under3`` is empty when any of the area's points has
        an unknown under-3 count; ``unit_codes`` (and ``unit_names``) list the units of
        its points, most people first. ``attrs`` holds ``method``, ``merge_distance_m`` (zones) and
        ``points_walk_unknown``.

    Examples
    --------
    Three uncovered points: two 100 m apart form one zone, the third, 400 m away, its
    own; the people are kept.

    >>> pts = gpd.GeoDataFrame(
    ...     {"population": [10.0, 20.0, 5.0]},
    ...     geometry=gpd.points_from_xy([0.0, 100.0, 500.0], [0.0, 0.0, 0.0]),
    ...     crs="EPSG:32650")
    >>> zones = uncovered_areas(pts, [np.inf, 2000.0, np.inf], threshold_m=1000.0)
    >>> zones["population"].tolist(), zones["points"].tolist()
    ([30.0, 5.0], [2, 1])
    """
    crs = population.crs
    if crs is None or not crs.is_projected:
        raise InputValidationError(
            "population points must be in a metric CRS for gap polygons", field="geometry"
        )
    if walk_m is None:
        return _empty_gaps(crs, "no walking network: gaps not computed / 无步行路网，未计算缺口")
    walk = np.asarray(walk_m, dtype=float).ravel()
    if walk.shape[0] != len(population):
        raise InputValidationError(
            f"walk_m has {walk.shape[0]} values for {len(population)} population points",
            field="walk_m",
        )
    pop = pd.to_numeric(population["population"], errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    under3 = (
        pd.to_numeric(population["population_under3"], errors="coerce").to_numpy(
            dtype=float, na_value=np.nan
        )
        if "population_under3" in population
        else np.full(len(population), np.nan)
    )
    if unit_codes is not None:
        codes = np.asarray(unit_codes, dtype=object)
    elif "unit_code" in population:
        codes = population["unit_code"].astype(object).to_numpy()
    else:
        codes = np.full(len(population), None, dtype=object)
    uncovered = ~np.isnan(walk) & (walk > threshold_m) & (np.nan_to_num(pop) > 0)
    walk_unknown = int(np.isnan(walk).sum())
    if not uncovered.any():
        out = _empty_gaps(crs)
        out.attrs["points_walk_unknown"] = walk_unknown
        return out

    points = population.geometry[uncovered]
    if method == "zones":
        if not (np.isfinite(merge_distance_m) and merge_distance_m > 0):
            raise InputValidationError(
                f"merge_distance_m must be finite and > 0, got {merge_distance_m}",
                field="merge_distance_m",
            )
        owner, parts = _zone_parts(
            points.x.to_numpy(), points.y.to_numpy(), float(merge_distance_m)
        )
    elif method == "grid":
        spacing = spacing_m if spacing_m is not None else median_spacing_m(population.geometry)
        if not spacing > 0:
            raise InputValidationError(f"spacing_m must be > 0, got {spacing}")
        half = 0.5 * spacing * _GRID_OVERLAP
        owner, cells, cell_group = _grid_groups(points.x.to_numpy(), points.y.to_numpy(), half)
        parts = _dissolve(cells, cell_group, int(owner.max()) + 1)
    elif method == "h3":
        owner, cells, cell_group = _h3_groups(points, h3_resolution)
        parts = _dissolve(cells, cell_group, int(owner.max()) + 1)
    else:
        raise InputValidationError(f"unknown gap method '{method}' (zones, grid or h3)")

    n_parts = int(owner.max()) + 1
    p_pop = pop[uncovered]
    p_u3 = under3[uncovered]
    p_codes = codes[uncovered]
    people = np.bincount(owner, weights=p_pop, minlength=n_parts)
    u3_known = np.bincount(owner, weights=np.nan_to_num(p_u3), minlength=n_parts)
    u3_bad = np.bincount(owner, weights=np.isnan(p_u3).astype(float), minlength=n_parts) > 0
    n_points = np.bincount(owner, minlength=n_parts)
    names = {} if unit_names is None else {str(k): str(v) for k, v in unit_names.items()}
    code_lists, name_lists = _unit_lists(owner, p_codes, np.nan_to_num(p_pop), n_parts, names)
    centroids = shapely.centroid(parts)
    cx, cy = shapely.get_x(centroids), shapely.get_y(centroids)
    rank = np.lexsort((cy, cx, -people))  # most people first; ties by position
    frame = gpd.GeoDataFrame(
        {
            "gap_id": pd.array(np.arange(1, n_parts + 1), dtype="Int64"),
            "population": people[rank],
            "population_under3": pd.array(
                np.where(u3_bad, np.nan, u3_known)[rank], dtype="Float64"
            ),
            "points": pd.array(n_points[rank], dtype="Int64"),
            "unit_codes": pd.array(np.asarray(code_lists, dtype=object)[rank], dtype="str"),
            "area_m2": shapely.area(parts)[rank],
        },
        geometry=gpd.GeoSeries(parts[rank], crs=crs),
        crs=crs,
    )
    if unit_names is not None:
        frame.insert(
            list(frame.columns).index("unit_codes") + 1,
            GAP_NAMES_COLUMN,
            pd.array(np.asarray(name_lists, dtype=object)[rank], dtype="str"),
        )
    frame.attrs["points_walk_unknown"] = walk_unknown
    frame.attrs["method"] = method
    if method == "zones":
        frame.attrs["merge_distance_m"] = float(merge_distance_m)
    return frame


def _dissolve(
    cells: npt.NDArray[np.object_], cell_group: npt.NDArray[np.int64], n_groups: int
) -> npt.NDArray[np.object_]:
    """The union of each group's cells, group by group (``shapely.union_all`` per group).

    Groups of equal size are unioned in one call (``union_all`` along the rows of a
    groups × cells array), so there are as many calls as distinct group sizes, not one per
    group. Cells keep their order within a group: each row is the GEOS collection the
    one-group call would build, so the polygons are the same bit for bit. A group of one
    non-empty polygon is that polygon: GEOS's union of a single polygon is a copy of it
    (``CascadedPolygonUnion`` unions nothing), so no call is made for it (a lone grid
    square or hexagon; checked in ``tests/test_reports_speed2_gaps.py``).

    Parameters
    ----------
    cells
        Cell polygons.
    cell_group
        Group (0 … ``n_groups - 1``) of each cell.
    n_groups
        Number of groups; a group without cells gets an empty geometry collection.

    Returns
    -------
    numpy.ndarray
        One geometry per group, in group order.
    """
    order = np.argsort(cell_group, kind="stable")
    sizes = np.bincount(cell_group, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    parts = np.empty(n_groups, dtype=object)
    for size in np.unique(sizes):
        groups = np.flatnonzero(sizes == size)
        rows = cells[order[starts[groups, np.newaxis] + np.arange(size)]].reshape(
            len(groups), int(size)
        )
        if size == 1:
            alone = rows[:, 0]
            kept = (shapely.get_type_id(alone) == shapely.GeometryType.POLYGON) & ~shapely.is_empty(
                alone
            )
            parts[groups[kept]] = alone[kept]
            if not kept.all():
                parts[groups[~kept]] = shapely.union_all(rows[~kept], axis=1)
            continue
        parts[groups] = shapely.union_all(rows, axis=1)
    return parts


def _unit_lists(
    owner: npt.NDArray[np.int64],
    codes: npt.NDArray[np.object_],
    people: npt.NDArray[np.float64],
    n_groups: int,
    names: Mapping[str, str],
) -> tuple[list[str], list[str]]:
    """Per group, its points' unit codes (and names), most people first, comma-joined.

    People are summed per (group, code) in point order (``numpy.bincount``, the same
    additions as a running sum); ties go to the smaller code; points without a code are
    left out; codes without a name are left out of the names.

    Parameters
    ----------
    owner
        Group of each point.
    codes
        Unit code of each point (missing = none).
    people
        People of each point (no NaN).
    n_groups
        Number of groups.
    names
        ``{code: name}``.

    Returns
    -------
    tuple of list of str
        Codes and names per group (``""`` for a group without coded points).
    """
    known = ~pd.isna(codes)
    if not known.any():
        return [""] * n_groups, [""] * n_groups
    # codes are compared as text: factorise the values, then their texts (1 and "1" are one)
    raw_index, raw_codes = pd.factorize(codes[known])
    text_index, unique_codes = pd.factorize(
        np.array([str(c) for c in raw_codes], dtype=object), sort=True
    )
    code_index = text_index[raw_index]
    group = owner[known]
    pair, pair_index = np.unique(
        group * len(unique_codes) + code_index.astype(np.int64), return_inverse=True
    )
    pair_people = np.bincount(pair_index.ravel(), weights=people[known], minlength=len(pair))
    pair_group, pair_code = np.divmod(pair, len(unique_codes))
    # codes are sorted, so their index orders the ties as the code text does
    order = np.lexsort((pair_code, -pair_people, pair_group))
    code_texts = np.asarray(unique_codes, dtype=object)
    ordered_codes = code_texts[pair_code[order]]
    ordered_groups = pair_group[order]
    bounds = np.flatnonzero(np.diff(ordered_groups)) + 1
    firsts = np.concatenate([[0], bounds]).astype(np.int64)
    lasts = np.concatenate([bounds, [len(order)]]).astype(np.int64)
    # most groups hold one unit: their lists are its code and name, set as arrays
    codes_out = np.full(n_groups, "", dtype=object)
    names_out = np.full(n_groups, "", dtype=object)
    one = lasts - firsts == 1
    name_texts = np.array([names.get(c, "") for c in code_texts.tolist()], dtype=object)
    codes_out[ordered_groups[firsts[one]]] = ordered_codes[firsts[one]]
    names_out[ordered_groups[firsts[one]]] = name_texts[pair_code[order][firsts[one]]]
    for first, last in zip(firsts[~one].tolist(), lasts[~one].tolist(), strict=True):
        members = ordered_codes[first:last].tolist()
        g = int(ordered_groups[first])
        codes_out[g] = ",".join(members)
        names_out[g] = ",".join(names[c] for c in members if c in names)
    return codes_out.tolist(), names_out.tolist()


def failing_units(table: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """街道 failing each per-unit target, ranked by people affected.

    People affected are the unit's residents, except for ``coverage_pct`` where they are
    its ``uncovered_population`` (the people outside the circle). Units whose pass/fail is
    unknown are not listed (see ``meets_*`` in the table), nor units with no people (a
    known population of 0, e.g. an empty hexagon): nothing is to be done there.

    Returns
    -------
    pandas.DataFrame
        :data:`FAILING_COLUMNS`; targets in profile order, then most people first
        (``rank`` 1, 2, … per target).
    """
    rows: list[pd.DataFrame] = []
    for target in profile.unit_targets:
        column = f"meets_{target.indicator}"
        unit_column = INDICATORS[target.indicator].unit_column
        if column not in table or unit_column is None:
            continue
        failed = table[table[column].eq(False).fillna(False).astype(bool)]
        if "population" in failed:
            # a unit with no people (known 0) gets no recommendation
            failed = failed[~failed["population"].astype("Float64").eq(0).fillna(False)]
        if failed.empty:
            continue
        value_source = unit_column if unit_column in failed else None
        people_col = "uncovered_population" if target.indicator == "coverage_pct" else "population"
        part = pd.DataFrame(
            {
                "indicator": target.indicator,
                "label_zh": target.label_zh,
                "target": target.text,
                "code": failed["code"].to_numpy(),
                "name": failed["name"].to_numpy(),
                "value": (
                    failed[value_source].astype("Float64").to_numpy()
                    if value_source
                    else pd.array([None] * len(failed), dtype="Float64")
                ),
                "people_affected": failed[people_col].astype("Float64").to_numpy(),
                "under3_affected": (
                    failed["population_under3"].astype("Float64").to_numpy()
                    if target.indicator != "coverage_pct"
                    else pd.array([None] * len(failed), dtype="Float64")
                ),
            }
        )
        part = part.sort_values(
            ["people_affected", "code"], ascending=[False, True], na_position="last"
        )
        part.insert(3, "rank", np.arange(1, len(part) + 1, dtype=np.int64))
        rows.append(part)
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in FAILING_COLUMNS})
    return pd.concat(rows, ignore_index=True)[list(FAILING_COLUMNS)]


def slot_shortfall_table(table: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Slot shortfall per 街道, largest first (empty shortfalls last).

    ``target_slots = target × population / 1000`` with the profile's slots-per-1,000
    target (4.5 when it has none); ``slot_shortfall = target_slots − slots`` (negative =
    surplus), empty when slots or population are unknown.
    """
    per_1000 = profile.slots_per_1000_target()
    out = pd.DataFrame(
        {
            "code": table["code"].to_numpy(),
            "name": table["name"].to_numpy(),
            "population": table["population"].astype("Float64").to_numpy(),
            "slots": table["slots"].astype("Int64").to_numpy(),
            "slots_per_1000": table["slots_per_1000"].astype("Float64").to_numpy(),
            "target_slots": table["population"].astype("Float64").to_numpy() * per_1000 / 1000.0,
            "slot_shortfall": table["slot_shortfall"].astype("Float64").to_numpy(),
        }
    )
    out = out.sort_values(["slot_shortfall", "code"], ascending=[False, True], na_position="last")
    out.insert(0, "rank", np.arange(1, len(out) + 1, dtype=np.int64))
    out = out.reset_index(drop=True)
    out.attrs["slots_per_1000_target"] = per_1000
    return out[list(SHORTFALL_COLUMNS)]
