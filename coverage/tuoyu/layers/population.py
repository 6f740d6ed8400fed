"""Population layers: people as points in the metric CRS, with the unit each lies in.

Four ways to get population points, all returning the same contract (see
:data:`POINT_COLUMNS`):

* :func:`dasymetric_points` — per-unit totals (e.g. 街道 户籍/常住人口) spread over
  relative point weights (a population grid) inside each unit;
* :func:`landuse_population_points` — grid-cell residents spread over the residential
  land-use parcels inside each cell, then scaled like :func:`dasymetric_points`;
* :func:`building_points` — one district total spread over OSM residential buildings in
  proportion to footprint area × levels (optionally bounded by floor area per person,
  :func:`water_fill`), when no finer layer exists;
* :func:`assign_units` / :func:`unit_population` — put points in units (街道 or H3 cells)
  and sum them back per unit;
* :func:`plausibility` — density figures and warnings for any of them.

Every result carries ``attrs["population_method"]`` (one sentence, Chinese and English)
and ``attrs["assumptions"]`` (list of sentences: sources, totals, shares, fallbacks), so
reports can say how the people were placed. Unknown values stay unknown (NaN), never 0.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from tuoyu.crs.china import ChinaDatum, convert, parse_crs_name
from tuoyu.crs.projection import WGS84, estimate_metric_crs, gdf_to_wgs84
from tuoyu.errors import CRSError, EmptyInputError, InputValidationError
from tuoyu.layers.rejects import Reject
from tuoyu.layers.schema import POPULATION, POPULATION_UNDER3, UNIT_CODE

POINT_COLUMNS: tuple[str, ...] = ("point_id", "unit_code", POPULATION, POPULATION_UNDER3)
"""Non-geometry columns of every population-point GeoDataFrame (then ``geometry``)."""

WEIGHT_COLUMNS: tuple[str, ...] = ("point_id", "weight")
"""Non-geometry columns returned by :func:`load_weight_points`."""

TOTALS_COLUMNS: tuple[str, ...] = ("code", POPULATION, POPULATION_UNDER3)
"""Columns returned by :func:`read_unit_totals`."""

_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


# --- small helpers ----------------------------------------------------------------------


def _empty_points(crs: CRS | None) -> gpd.GeoDataFrame:
    """An empty population-point frame with the contract's columns and dtypes."""
    return gpd.GeoDataFrame(
        {
            "point_id": pd.Series([], dtype="int64"),
            "unit_code": pd.Series([], dtype="object"),
            POPULATION: pd.Series([], dtype="float64"),
            POPULATION_UNDER3: pd.Series([], dtype="float64"),
        },
        geometry=gpd.GeoSeries([], crs=crs),
        crs=crs,
    )


def _points_frame(
    point_id: np.ndarray,
    unit_code: list[str | None],
    population: np.ndarray,
    under3: np.ndarray,
    geometry: np.ndarray,
    crs: CRS | None,
) -> gpd.GeoDataFrame:
    if len(point_id) == 0:
        return _empty_points(crs)
    return gpd.GeoDataFrame(
        {
            "point_id": np.asarray(point_id, dtype="int64"),
            "unit_code": pd.Series(unit_code, dtype="object"),
            POPULATION: np.asarray(population, dtype="float64"),
            POPULATION_UNDER3: np.asarray(under3, dtype="float64"),
        },
        geometry=gpd.GeoSeries(geometry, crs=crs),
        crs=crs,
    )


def _require_metric(gdf: gpd.GeoDataFrame, what: str) -> None:
    if gdf.crs is None:
        raise CRSError(f"{what} has no CRS; load it with the project's loaders (metric CRS)")
    if not CRS.from_user_input(gdf.crs).is_projected:
        raise CRSError(
            f"{what} is in a geographic CRS ({gdf.crs}); reproject it to the study area's "
            "metric CRS first (e.g. gdf.to_crs(tuoyu.crs.projection.estimate_metric_crs(gdf)))"
        )


def _require_same_crs(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame, what_a: str, what_b: str) -> None:
    if CRS.from_user_input(a.crs) != CRS.from_user_input(b.crs):
        raise CRSError(
            f"{what_a} is in {a.crs} but {what_b} is in {b.crs}; reproject one "
            f"(e.g. {what_b}.to_crs({what_a}.crs)) before combining them"
        )


def _check_share(share: float | None, name: str) -> None:
    if share is not None and not (0.0 < float(share) < 1.0):
        raise InputValidationError(f"{name} must be a fraction between 0 and 1, got {share}")


def _check_positive_total(total: float, name: str) -> float:
    value = float(total)
    if not math.isfinite(value) or value <= 0:
        raise InputValidationError(f"{name} must be a positive number of persons, got {total}")
    return value


def _parse_number(raw: object) -> float | None:
    """Parse a numeric cell; ``nan`` for blank, ``None`` for text that is not a number.

    Accepts plain numbers and thousands separators ("67,803"); refuses text with units
    ("30个"), which must be fixed at the source rather than guessed.
    """
    if raw is None:
        return math.nan
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float | np.integer | np.floating):
        value = float(raw)
        return value if not math.isinf(value) else None
    text = str(raw).strip().replace("\u3000", "")
    if text == "" or text.lower() in {"nan", "null", "none", "na", "n/a"}:
        return math.nan
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _numeric_weights(column: pd.Series) -> npt.NDArray[np.float64] | None:
    """A numeric weight column as float64, read as :func:`_parse_number` reads each cell.

    Empty cells are NaN. ``None`` when a cell needs the cell-by-cell parse (text) or is
    refused there with its row named (infinite, negative, a boolean): 200,000 weight
    points are one array operation instead of 200,000 calls.

    Examples
    --------
    >>> _numeric_weights(pd.Series([1, 2.5, None])).tolist()
    [1.0, 2.5, nan]
    >>> _numeric_weights(pd.Series([1.0, -2.0])) is None, _numeric_weights(pd.Series(["3"])) is None
    (True, True)
    """
    dtype = column.dtype
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iuf":
        return None
    values: npt.NDArray[np.float64] = column.to_numpy(dtype=np.float64, copy=True)
    if np.isinf(values).any() or (values < 0).any():
        return None
    return values


def _as_outline(outline: BaseGeometry | gpd.GeoDataFrame | gpd.GeoSeries, crs: Any) -> BaseGeometry:
    if isinstance(outline, gpd.GeoDataFrame | gpd.GeoSeries):
        if outline.crs is not None and CRS.from_user_input(outline.crs) != CRS.from_user_input(crs):
            outline = outline.to_crs(crs)
        return shapely.union_all(np.asarray(outline.geometry.values))
    return outline


# --- loading ----------------------------------------------------------------------------

_CRS_MEMBER = re.compile(rb'"coordinate_system"\s*:\s*"([^"]{1,40})"')


def _geojson_crs_hint(path: Path) -> str | None:
    """The ``coordinate_system`` member some Chinese GeoJSON exports carry, if any.

    Only the first 4 KiB are searched (the member precedes the features in such files):
    a cheap hint, not a parse, so a large file is not read twice.
    """
    if path.suffix.lower() not in {".geojson", ".json"}:
        return None
    with path.open("rb") as fh:
        match = _CRS_MEMBER.search(fh.read(4096))
    return match.group(1).decode("utf-8", "replace") if match else None


def _crs_hint_notes(path: Path, crs: str, declared: ChinaDatum | CRS) -> list[str]:
    """A note (also warned) when the file's own ``coordinate_system`` contradicts ``crs``."""
    notes: list[str] = []
    declared_by_file = _geojson_crs_hint(path)
    if declared_by_file is not None:
        try:
            hinted = parse_crs_name(declared_by_file)
        except CRSError:
            hinted = None
        if hinted is not None and hinted != declared:
            note = (
                f"{path}: the file says its coordinates are {declared_by_file} but they were "
                f"read as {crs}; if the file is right, points are ~0.5 km off"
            )
            notes.append(note)
            warnings.warn(note, UserWarning, stacklevel=3)
    return notes


def load_weight_points(
    path: str | Path,
    crs: str = "wgs84",
    weight_field: str = "weight",
    metric_crs: CRS | str | None = None,
) -> gpd.GeoDataFrame:
    """Read relative population weights (points with a numeric property).

    Parameters
    ----------
    path
        GeoJSON / GPKG / SHP of points.
    crs
        Coordinate system of the coordinates in the file: ``wgs84``, ``gcj02``, ``bd09``
        or an ``EPSG:`` code. GCJ-02/BD-09 are converted to WGS84 first.
    weight_field
        Name of the numeric weight property.
    metric_crs
        Target metric CRS; estimated (UTM zone) from the data when ``None``.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``point_id`` (1-based feature row in the file), ``weight`` (float ≥ 0)
        and point geometry in the metric CRS. Rows with an empty weight or no geometry
        are left out and listed in ``attrs["rejects"]`` (:class:`tuoyu.layers.rejects.Reject`
        records, for ``rejects.csv``); ``attrs["source"]`` names the file;
        ``attrs["notes"]`` holds warnings, e.g. a GeoJSON whose own
        ``coordinate_system`` member contradicts ``crs`` (also issued as a
        ``UserWarning``).

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    EmptyInputError
        The file holds no features, or none with a usable weight.
    InputValidationError
        The weight field is missing, a weight is not a number ("30个") or negative, or a
        geometry is not a point (file, row and field named).
    """
    from tuoyu.errors import DataNotFoundError

    declared = parse_crs_name(crs)  # fail on an unknown name before reading anything
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"population weights file not found: {path}")
    with warnings.catch_warnings():
        # mixed text/number weights: pyogrio warns and keeps text, which is parsed below
        warnings.filterwarnings("ignore", message="Could not parse column", category=UserWarning)
        raw = gpd.read_file(path)
    if len(raw) == 0:
        raise EmptyInputError("no features in the population weights file", path=path)
    if weight_field not in raw.columns:
        fields = ", ".join(c for c in raw.columns if c != raw.geometry.name) or "none"
        raise InputValidationError(
            f"no weight property '{weight_field}' (properties: {fields})",
            path=path,
            field=weight_field,
        )
    rejects: list[Reject] = []
    weights = _numeric_weights(raw[weight_field])
    if weights is None:  # text, or a value to refuse: parse cell by cell
        weights = np.full(len(raw), np.nan)
        for i, value in enumerate(raw[weight_field].tolist()):
            parsed = _parse_number(value)
            if parsed is None:
                raise InputValidationError(
                    f"weight {value!r} is not a number", path=path, row=i + 1, field=weight_field
                )
            if parsed < 0:
                raise InputValidationError(
                    f"weight {value!r} is negative", path=path, row=i + 1, field=weight_field
                )
            weights[i] = parsed
    for i in np.flatnonzero(np.isnan(weights)).tolist():
        rejects.append(
            Reject(str(path), i + 1, weight_field, "", "empty weight (unknown); point left out")
        )
    geoms = raw.geometry
    missing = geoms.isna().to_numpy() | geoms.is_empty.to_numpy()
    types = geoms.geom_type.to_numpy()
    not_point = np.flatnonzero(~missing & (types != "Point")).tolist()
    if not_point:
        raise InputValidationError(
            f"geometry is a {types[not_point[0]]}, expected a Point",
            path=path,
            row=not_point[0] + 1,
            field="geometry",
        )
    for j in np.flatnonzero(missing).tolist():
        rejects.append(Reject(str(path), j + 1, "geometry", "", "no geometry; point left out"))
    keep = ~missing & ~np.isnan(weights)
    if not keep.any():
        raise EmptyInputError(
            f"no feature has both a point and a numeric '{weight_field}'",
            path=path,
            field=weight_field,
        )
    notes = _crs_hint_notes(path, crs, declared)
    columns = {"point_id": np.flatnonzero(keep) + 1, "weight": weights[keep]}
    kept = np.asarray(geoms.values)[keep]
    if shapely.has_z(kept).any():  # 3-D points: geopandas keeps and converts the heights
        frame = gpd.GeoDataFrame(
            columns, geometry=kept, crs=raw.crs if raw.crs is not None else "EPSG:4326"
        )
        wgs = gdf_to_wgs84(frame, crs)
        target = (
            CRS.from_user_input(metric_crs) if metric_crs is not None else estimate_metric_crs(wgs)
        )
        out = wgs.to_crs(target).reset_index(drop=True)
    else:
        out = _points_to_metric(columns, shapely.get_coordinates(kept), declared, metric_crs)
    out.attrs["rejects"] = rejects
    out.attrs["source"] = str(path)
    out.attrs["notes"] = notes
    return out


def _points_to_metric(
    columns: Mapping[str, npt.NDArray[Any]],
    xy: npt.NDArray[np.float64],
    declared: ChinaDatum | CRS,
    metric_crs: CRS | str | None,
) -> gpd.GeoDataFrame:
    """2-D points given in ``declared`` as a GeoDataFrame in the metric CRS, via WGS84.

    The same coordinates, bit for bit, as ``gdf_to_wgs84(frame, crs).to_crs(target)``:
    the same GCJ-02/BD-09 conversion, the same pyproj transformers (``always_xy``, no
    transform between exactly equal CRSs), on the coordinate arrays instead of through
    geopandas, which rewrites every point object twice (``set_coordinates``, 0.5 CPU-s
    for 2·10⁵ points).
    """
    lon, lat = xy[:, 0], xy[:, 1]
    if isinstance(declared, str):
        lon, lat = convert(lon, lat, declared, "wgs84")
    elif not declared.is_exact_same(WGS84):
        to_wgs84 = Transformer.from_crs(declared, WGS84, always_xy=True)
        lon, lat = to_wgs84.transform(lon, lat)
    if metric_crs is not None:
        target = CRS.from_user_input(metric_crs)
    else:
        target = estimate_metric_crs(gpd.GeoDataFrame(geometry=shapely.points(lon, lat), crs=WGS84))
    x, y = lon, lat
    if not WGS84.is_exact_same(target):
        x, y = Transformer.from_crs(WGS84, target, always_xy=True).transform(lon, lat)
    return gpd.GeoDataFrame(
        dict(columns),
        geometry=shapely.points(np.asarray(x, np.float64), np.asarray(y, np.float64)),
        crs=target,
    )


def read_unit_totals(
    path: str | Path,
    code_field: str,
    totals_field: str,
    under3_field: str | None = None,
) -> pd.DataFrame:
    """Read per-unit population totals from a CSV (UTF-8 or GBK), XLSX or GeoJSON file.

    The file is read by :func:`tuoyu.layers.tables.read_table` (encoding detection shared
    with the facility loader); this function validates the three columns.

    Parameters
    ----------
    path
        ``.csv`` (UTF-8, UTF-8 with BOM, or GBK/GB18030), ``.xlsx`` or ``.geojson``.
    code_field
        Column with the unit code (kept as text: leading zeros matter).
    totals_field
        Column with the unit's population (persons).
    under3_field
        Optional column with the unit's under-3 population (persons).

    Returns
    -------
    pandas.DataFrame
        Columns ``code`` (str), ``population`` (float) and ``population_under3``
        (float, NaN when no column was given or the cell is empty). Blank totals stay
        NaN (unknown). ``attrs["source"]`` names the file, ``attrs["rows"]`` holds the
        1-based row number of each record in the file.

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    EmptyInputError
        The file has no data rows.
    InputValidationError
        Undecodable text, a named column is missing, a code is empty or repeated, a value
        is not a number ("30个") or negative, or under-3 exceeds the total (file, row and
        field named).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> lines = ["代码,人口", '0101,"67,803"', "0102,"]
    >>> _ = f.write_bytes(chr(10).join(lines).encode("gbk"))
    >>> read_unit_totals(f, "代码", "人口")[["code", "population"]].values.tolist()
    [['0101', 67803.0], ['0102', nan]]
    """
    from tuoyu.layers.tables import read_table

    table = read_table(path)
    path = table.path
    wanted = [code_field, totals_field] + ([under3_field] if under3_field else [])
    for field in wanted:
        if field not in table.columns:
            raise InputValidationError(
                f"no column '{field}' (columns: {', '.join(table.columns)})",
                path=path,
                field=field,
            )

    codes: list[str] = []
    seen: dict[str, int] = {}
    for row in table.rows:
        value = row.values.get(code_field)
        code = "" if value is None else str(value).strip()
        if code == "":
            raise InputValidationError(
                "empty unit code", path=path, row=row.number, field=code_field
            )
        if code.endswith(".0") and code[:-2].isdigit():  # Excel turned the code into a float
            code = code[:-2]
        if code in seen:
            raise InputValidationError(
                f"unit code {code!r} repeats row {seen[code]}",
                path=path,
                row=row.number,
                field=code_field,
            )
        seen[code] = row.number
        codes.append(code)

    def numbers(field: str) -> np.ndarray:
        values = np.full(len(table.rows), np.nan)
        for i, row in enumerate(table.rows):
            value = row.values.get(field)
            parsed = _parse_number(value)
            if parsed is None:
                raise InputValidationError(
                    f"{value!r} is not a number of persons",
                    path=path,
                    row=row.number,
                    field=field,
                )
            if parsed < 0:
                raise InputValidationError(
                    f"{value!r} is negative", path=path, row=row.number, field=field
                )
            values[i] = parsed
        return values

    population = numbers(totals_field)
    under3 = numbers(under3_field) if under3_field else np.full(len(table.rows), np.nan)
    bad = np.flatnonzero(under3 > population).tolist()
    if bad and under3_field:
        i = bad[0]
        raise InputValidationError(
            f"under-3 population {under3[i]:g} exceeds the total {population[i]:g}",
            path=path,
            row=table.rows[i].number,
            field=under3_field,
        )
    out = pd.DataFrame(
        {
            "code": pd.Series(codes, dtype="object"),
            POPULATION: population,
            POPULATION_UNDER3: under3,
        }
    )
    out.attrs["source"] = str(path)
    out.attrs["rows"] = [row.number for row in table.rows]
    return out


# --- spreading totals over points -------------------------------------------------------


def _totals_series(unit_totals: pd.DataFrame | pd.Series | Mapping[str, float]) -> pd.Series:
    if isinstance(unit_totals, pd.DataFrame):
        for column in ("code", POPULATION):
            if column not in unit_totals.columns:
                raise InputValidationError(
                    f"unit totals need columns 'code' and '{POPULATION}' "
                    f"(got {', '.join(map(str, unit_totals.columns))})",
                    field=column,
                )
        series = pd.Series(
            unit_totals[POPULATION].to_numpy(dtype=float),
            index=unit_totals["code"].astype(str).to_numpy(),
        )
    else:
        series = pd.Series(dict(unit_totals), dtype=float)
        series.index = series.index.astype(str)
    if series.index.has_duplicates:
        dup = series.index[series.index.duplicated()][0]
        raise InputValidationError(f"unit code {dup!r} appears more than once in the totals")
    if (series < 0).any():
        raise InputValidationError("unit totals must not be negative")
    return series


def _first_unit_per_point(
    points: gpd.GeoDataFrame, units: gpd.GeoDataFrame
) -> tuple[np.ndarray, int]:
    """Position of the unit holding each point (-1 outside all), and how many lay in several.

    Points on a shared border (or in overlapping units) go to the first unit in
    ``units`` order, so each point counts once.
    """
    pos = np.full(len(points), -1, dtype=np.int64)
    if len(points) == 0 or len(units) == 0:
        return pos, 0
    tree = shapely.STRtree(np.asarray(units.geometry.values))
    point_idx, unit_idx = tree.query(np.asarray(points.geometry.values), predicate="intersects")
    if len(point_idx) == 0:
        return pos, 0
    order = np.lexsort((unit_idx, point_idx))
    point_idx, unit_idx = point_idx[order], unit_idx[order]
    first = np.ones(len(point_idx), dtype=bool)
    first[1:] = point_idx[1:] != point_idx[:-1]
    pos[point_idx[first]] = unit_idx[first]
    several = len(np.unique(point_idx[~first]))
    return pos, several


def dasymetric_points(
    weights: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    unit_totals: pd.DataFrame | pd.Series | Mapping[str, float],
    *,
    district_total: float | None = None,
    under3_share: float | None = None,
    under3_by_unit: pd.Series | Mapping[str, float] | None = None,
) -> gpd.GeoDataFrame:
    """Spread per-unit population totals over relative point weights (dasymetric mapping).

    Each weight point goes to the unit it lies in; inside a unit the points share the
    unit's total in proportion to their weights, so they sum to that total.

    Parameters
    ----------
    weights
        Points with a numeric ``weight`` (≥ 0), metric CRS (:func:`load_weight_points`).
        A ``point_id`` column is kept when present.
    units
        Unit polygons with a ``code`` column, same metric CRS.
    unit_totals
        Persons per unit code: the frame from :func:`read_unit_totals` (``code``,
        ``population``), a Series or a mapping. NaN = unknown.
    district_total
        When given, every known unit total is first multiplied by
        ``district_total / sum(known unit totals)`` (e.g. 户籍 totals rescaled to the
        census resident total); the original sum and the factor go into the assumptions.
    under3_share
        Under-3 population as a share of the population (used where ``under3_by_unit``
        has no value).
    under3_by_unit
        Under-3 persons per unit code (e.g. ``totals["population_under3"]`` indexed by
        code), spread like the population; rescaled by the same ``district_total`` factor.

    Returns
    -------
    geopandas.GeoDataFrame
        Population points (:data:`POINT_COLUMNS` + geometry), metric CRS. ``attrs``:
        ``population_method``, ``assumptions``, ``dropped_outside_units`` (weight points
        outside every unit, left out), ``dropped_weight`` (their summed weight),
        ``units_without_total`` (codes whose points carry NaN population),
        ``units_without_points`` (codes given one representative point),
        ``totals_without_unit`` (codes in the totals with no polygon),
        ``points_in_several_units``.

    Raises
    ------
    CRSError
        The layers are not in the same metric CRS.
    InputValidationError
        Missing ``weight``/``code`` columns, negative weights or totals, a bad share, or
        no totals code matching any unit code.

    Examples
    --------
    >>> from shapely.geometry import box, Point
    >>> units = gpd.GeoDataFrame({"code": ["A"]}, geometry=[box(0, 0, 10, 10)], crs=32650)
    >>> w = gpd.GeoDataFrame({"weight": [1.0, 3.0]}, geometry=[Point(1, 1), Point(5, 5)],
    ...                      crs=32650)
    >>> dasymetric_points(w, units, {"A": 100})["population"].tolist()
    [25.0, 75.0]
    """
    _require_metric(weights, "weights")
    _require_metric(units, "units")
    _require_same_crs(weights, units, "weights", "units")
    if "weight" not in weights.columns:
        raise InputValidationError("weight points need a numeric 'weight' column", field="weight")
    if UNIT_CODE not in units.columns:
        raise InputValidationError(f"units need a '{UNIT_CODE}' column", field=UNIT_CODE)
    if units[UNIT_CODE].astype(str).duplicated().any():
        dup = units[UNIT_CODE].astype(str)[units[UNIT_CODE].astype(str).duplicated()].iloc[0]
        raise InputValidationError(f"unit code {dup!r} appears twice in the units", field=UNIT_CODE)
    _check_share(under3_share, "under3_share")
    crs = units.crs
    w = pd.to_numeric(weights["weight"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(w).any() or (w < 0).any():
        raise InputValidationError(
            "weights must be numbers ≥ 0 (drop or fix empty ones first)", field="weight"
        )
    totals = _totals_series(unit_totals)
    codes = units[UNIT_CODE].astype(str).to_numpy()
    assumptions: list[str] = []
    source = unit_totals.attrs.get("source") if isinstance(unit_totals, pd.DataFrame) else None
    if source:
        assumptions.append(f"unit totals from {source} / 单元人口总数来源 {source}")

    if len(units) == 0:
        out = _empty_points(crs)
        out.attrs.update(
            population_method="街道 totals spread by point weights (dasymetric) / 按权重点分配街道人口",
            assumptions=[*assumptions, "no units given: no population points"],
            dropped_outside_units=len(weights),
            dropped_weight=float(w.sum()),
            units_without_total=[],
            units_without_points=[],
            totals_without_unit=sorted(totals.index),
            points_in_several_units=0,
        )
        return out

    matched = totals.reindex(codes)  # NaN where the unit has no total
    totals_without_unit = sorted(set(totals.index) - set(codes))
    if len(totals) and matched.notna().sum() == 0:
        raise InputValidationError(
            "no unit code of the totals matches a unit code of the polygons "
            f"(totals e.g. {totals.index[0]!r}, units e.g. {codes[0]!r}); check code_field"
        )
    if totals_without_unit:
        assumptions.append(
            f"{len(totals_without_unit)} totals have no unit polygon and are not placed: "
            f"{', '.join(totals_without_unit[:10])} / 无对应单元的人口总数未分配"
        )
    unit_total = matched.to_numpy(dtype=float)
    known = ~np.isnan(unit_total)
    factor = 1.0
    if district_total is not None:
        target = _check_positive_total(district_total, "district_total")
        original = float(unit_total[known].sum())
        if original <= 0:
            raise InputValidationError("district_total given but the unit totals sum to 0")
        factor = target / original
        unit_total = unit_total * factor
        assumptions.append(
            f"unit totals (sum {original:,.0f}) rescaled to the district total "
            f"{target:,.0f} (factor {factor:.6f}) / 单元人口按区总人口等比例缩放"
        )

    under3_unit = np.full(len(units), np.nan)
    if under3_by_unit is not None:
        by_unit = pd.Series(dict(under3_by_unit), dtype=float)
        by_unit.index = by_unit.index.astype(str)
        if (by_unit < 0).any():
            raise InputValidationError("under-3 counts per unit must not be negative")
        under3_unit = by_unit.reindex(codes).to_numpy(dtype=float) * factor
        n_given = int((~np.isnan(under3_unit)).sum())
        assumptions.append(
            f"under-3 population per unit given for {n_given} of {len(units)} units, spread "
            "like the population / 按单元给定的3岁以下人口"
            + (f" (rescaled by {factor:.6f})" if factor != 1.0 else "")
        )
    if under3_share is not None:
        assumptions.append(
            f"under-3 population = {under3_share:.2%} of the population"
            + (" where no per-unit value is given" if under3_by_unit is not None else "")
            + f" / 3岁以下人口占比 {under3_share:.2%}"
        )
    elif under3_by_unit is None:
        assumptions.append(
            "under-3 population unknown (no share or per-unit values) / 3岁以下人口未知"
        )

    pos, several = _first_unit_per_point(weights, units)
    inside = pos >= 0
    dropped = int((~inside).sum())
    if len(weights) and not inside.any():
        raise InputValidationError(
            f"none of the {len(weights)} weight points lies inside a unit; check the "
            "coordinate systems declared for both layers (GCJ-02 given as WGS84? "
            "lat/lon swapped?)"
        )
    if dropped:
        assumptions.append(
            f"{dropped} weight points outside every unit left out "
            f"(weight {w[~inside].sum():,.0f}) / 单元外的权重点未使用"
        )
    if several:
        assumptions.append(f"{several} points on a shared border counted in the first unit")

    ids = (
        weights["point_id"].to_numpy(dtype=np.int64)
        if "point_id" in weights.columns
        else np.arange(len(weights), dtype=np.int64)
    )
    p_pos = pos[inside]
    p_w = w[inside]
    weight_sum = np.bincount(p_pos, weights=p_w, minlength=len(units))
    count = np.bincount(p_pos, minlength=len(units))
    zero_weight_units = (count > 0) & (weight_sum == 0)
    # Share of the unit total for each point: weight / unit weight sum, or an even split
    # when every point of the unit has weight 0 (the total must still be placed).
    share = np.where(
        zero_weight_units[p_pos],
        1.0 / np.maximum(count[p_pos], 1),
        p_w / np.where(weight_sum[p_pos] > 0, weight_sum[p_pos], 1.0),
    )
    population = unit_total[p_pos] * share
    under3 = under3_unit[p_pos] * share
    if zero_weight_units.any():
        assumptions.append(
            f"{int(zero_weight_units.sum())} units whose points all weigh 0 split their total "
            f"evenly: {', '.join(codes[zero_weight_units][:10])}"
        )

    no_points = (count == 0) & known
    rep_geoms = np.asarray(shapely.point_on_surface(np.asarray(units.geometry.values)[no_points]))
    if no_points.any():
        assumptions.append(
            f"{int(no_points.sum())} units with a total but no weight point: the whole total "
            f"placed at one representative point inside the unit: "
            f"{', '.join(codes[no_points][:10])} / 无权重点的单元以单元内代表点承载全部人口"
        )
    next_id = int(ids.max()) + 1 if len(ids) else 0
    rep_ids = np.arange(next_id, next_id + int(no_points.sum()), dtype=np.int64)

    all_ids = np.concatenate([ids[inside], rep_ids])
    all_codes = [*codes[p_pos].tolist(), *codes[no_points].tolist()]
    all_pop = np.concatenate([population, unit_total[no_points]])
    all_u3 = np.concatenate([under3, under3_unit[no_points]])
    if under3_share is not None:
        all_u3 = np.where(np.isnan(all_u3), all_pop * float(under3_share), all_u3)
    all_geom = np.concatenate([np.asarray(weights.geometry.values)[inside], rep_geoms])

    units_without_total = sorted(codes[~known].tolist())
    if units_without_total:
        assumptions.append(
            f"{len(units_without_total)} units have no total; their points carry unknown "
            f"population: {', '.join(units_without_total[:10])} / 无人口总数的单元人口记为未知"
        )
    out = _points_frame(all_ids, all_codes, all_pop, all_u3, all_geom, crs)
    out.attrs.update(
        population_method=(
            "街道人口总数按人口权重点分配（分区密度法） / "
            "unit totals spread by point weights (dasymetric)"
        ),
        assumptions=assumptions,
        dropped_outside_units=dropped,
        dropped_weight=float(w[~inside].sum()),
        units_without_total=units_without_total,
        units_without_points=sorted(codes[no_points].tolist()),
        totals_without_unit=totals_without_unit,
        points_in_several_units=several,
    )
    return out


# --- spreading a district total over buildings ------------------------------------------


def water_fill(population: np.ndarray, room: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut every entry to its room and give the excess to the others by their room left.

    Each entry over its ``room`` is set to it; the people taken off are added to the
    entries still below their room, in proportion to the room they have left; repeated
    until none is over (one round is exact in arithmetic; further rounds only mop up
    rounding). The sum is kept.

    Parameters
    ----------
    population
        Persons per entry (≥ 0).
    room
        Most persons each entry may hold (≥ 0), same length.

    Returns
    -------
    tuple of numpy.ndarray
        The new persons per entry (a new array) and a boolean mask of the entries that
        were cut to their room.

    Raises
    ------
    InputValidationError
        Different lengths, negative or non-finite values, or less room in all than
        people (then nothing can fit; the caller decides what to do).

    Examples
    --------
    >>> new, cut = water_fill(np.array([90.0, 10.0, 0.0]), np.array([50.0, 30.0, 60.0]))
    >>> new.tolist(), cut.tolist()  # 40 moved, by room left (20 : 60)
    ([50.0, 20.0, 30.0], [True, False, False])
    """
    pop = np.array(population, dtype=float)
    cap = np.asarray(room, dtype=float)
    if pop.shape != cap.shape:
        raise InputValidationError(f"population ({pop.shape}) and room ({cap.shape}) differ")
    if (
        not (np.isfinite(pop).all() and np.isfinite(cap).all())
        or (pop < 0).any()
        or (cap < 0).any()
    ):
        raise InputValidationError("population and room must be finite numbers ≥ 0")
    total = float(pop.sum())
    tolerance = 1e-12 * max(total, 1.0)
    if float(cap.sum()) < total - tolerance:
        raise InputValidationError(
            f"the room ({cap.sum():,.1f} persons) cannot hold the population ({total:,.1f})"
        )
    cut = np.zeros(pop.shape, dtype=bool)
    for _ in range(100):  # converges in 1 round plus rounding clean-up
        over = pop > cap + tolerance
        if not over.any():
            break
        excess = float((pop[over] - cap[over]).sum())
        pop[over] = cap[over]
        cut |= over
        spare = np.clip(cap - pop, 0.0, None)
        pop += excess * spare / float(spare.sum())
    return pop, cut


def _cap_buildings(
    population: np.ndarray,
    floor_area_m2: np.ndarray,
    footprint_m2: np.ndarray,
    known: np.ndarray,
    total: float,
    min_m2_per_person: float,
    assumptions: list[str],
) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply the floor-area bound of :func:`building_points` (see there for the rule).

    ``floor_area_m2`` is the floor area the split used, ``known`` marks buildings with
    known levels. Appends to ``assumptions``; returns the new persons per building and
    the ``attrs`` to record.
    """
    room = floor_area_m2 / min_m2_per_person
    room_levels: float | None = None
    unknown_footprint_m2 = float(footprint_m2[~known].sum())
    if float(room.sum()) < total and unknown_footprint_m2 > 0:
        known_floor_m2 = float(floor_area_m2[known].sum())
        room_levels = (total * min_m2_per_person - known_floor_m2) / unknown_footprint_m2
        room = np.where(known, floor_area_m2, footprint_m2 * room_levels) / min_m2_per_person
        assumptions.append(
            f"the mapped floor area cannot hold {total:,.0f} people at {min_m2_per_person:g} m² "
            f"each: the room of the {int((~known).sum())} buildings without levels is taken "
            f"at {room_levels:.2f} storeys, the least that fits / 已知建筑面积不足以容纳总人口，"
            f"未知层数建筑按 {room_levels:.2f} 层计算容量"
        )
    attrs: dict[str, Any] = {
        "min_m2_per_person": min_m2_per_person,
        "cap_met": True,
        "unknown_levels_for_room": room_levels,
    }
    if float(room.sum()) < total * (1 - 1e-12):
        attrs.update(cap_met=False, buildings_capped=0, people_moved=0.0, room=room)
        assumptions.append(
            f"the buildings hold at most {room.sum():,.0f} people at {min_m2_per_person:g} m² "
            "each and no building has unknown levels: the bound is not met, the split by "
            "floor area is kept / 建筑面积不足，人均面积下限未满足"
        )
        return population, attrs
    new, cut = water_fill(population, room)
    moved = float((population[cut] - new[cut]).sum())
    attrs.update(buildings_capped=int(cut.sum()), people_moved=moved, room=room)
    assumptions.append(
        f"at most one person per {min_m2_per_person:g} m² of floor area: {int(cut.sum())} "
        f"buildings cut to their room, {moved:,.0f} people moved to buildings with room left "
        f"/ 每人建筑面积不少于 {min_m2_per_person:g} m²，{int(cut.sum())} 栋建筑超额人口"
        "按剩余容量转移"
    )
    return new, attrs


def building_points(
    buildings: gpd.GeoDataFrame,
    district_total: float,
    *,
    outline: BaseGeometry | gpd.GeoDataFrame | gpd.GeoSeries | None = None,
    under3_share: float | None = None,
    unknown_levels: float | None = None,
    min_m2_per_person: float | None = None,
) -> gpd.GeoDataFrame:
    """Spread one district total over buildings by floor area (footprint × levels).

    Rule: take the residential buildings (``residential`` true; when there are none, all
    buildings, stated in the assumptions) whose representative point lies inside
    ``outline``; each gets one point at its representative point, with population
    proportional to ``footprint_m2 × levels``. A missing, zero or negative ``levels``
    is unknown and takes ``unknown_levels`` — by default the median of the known levels
    of the chosen buildings; when none is known every building counts one level (any
    constant gives the same split). The points sum to ``district_total``.

    Bound (``min_m2_per_person``): a building holds at most
    ``floor_area_m2 / min_m2_per_person`` people (its *room*). A split in proportion to
    floor area puts the same people per m² in every building, so the bound is either
    slack everywhere or broken everywhere: it breaks when the mapped floor area cannot
    hold the district total, as in 渝中区 (OSM: 63 % of the residential buildings have no
    ``building:levels``, the median of the tagged ones is 1 storey, so 5.0 million m²
    would hold 588,717 people at 8.5 m² each). The storeys of the buildings *without*
    known levels are what is unknown, so their room is computed with the least number of
    storeys that lets the district fit at the bound (``unknown_levels_for_room`` in
    ``attrs``; tagged buildings keep their tagged floor area). Then every building over
    its room is cut to it and the excess goes to the buildings with room left, in
    proportion to that room, until all fit (:func:`water_fill`). When no building has
    unknown levels and the floor area still cannot hold the total, the proportional split
    is kept, ``attrs["cap_met"]`` is False and the assumptions say so.

    Parameters
    ----------
    buildings
        Footprints with ``footprint_m2`` (else the geometry area is used), ``levels``
        (NaN when unknown) and ``residential`` (bool), metric CRS
        (``tuoyu.layers.osm_features.load_osm_buildings``).
    district_total
        Resident population of the district (persons), e.g. the 2020 census.
    outline
        District outline (geometry in the buildings' CRS, or a GeoDataFrame/GeoSeries,
        reprojected when needed); buildings outside it are left out.
    under3_share
        Under-3 share of the population; NaN under-3 when ``None``.
    unknown_levels
        Levels assumed for buildings without a known number (default: median).
    min_m2_per_person
        Least residential floor area per person (m²) a building is allowed; ``None``
        (default) applies no bound. 15 is a dense-old-neighbourhood floor: the per-person
        threshold below which Chinese cities commonly count a household as 住房困难
        (e.g. Beijing's 公共租赁住房 eligibility, 人均住房面积 15 m² 以下), well under
        the 2020 census average of 36.52 m² of 住房建筑面积 per person in urban family
        households (国务院第七次全国人口普查领导小组办公室 / 国家统计局,
        《中国人口普查年鉴-2020》).

    Returns
    -------
    geopandas.GeoDataFrame
        Population points (:data:`POINT_COLUMNS` + geometry) with ``unit_code`` None
        (use :func:`assign_units`). ``attrs``: ``population_method``, ``assumptions``,
        ``buildings_used``, ``buildings_outside_outline``, ``levels_known``,
        ``levels_assumed``; with ``min_m2_per_person``: ``min_m2_per_person``,
        ``cap_met`` (bool), ``buildings_capped`` (buildings cut to their room),
        ``people_moved`` (persons moved out of them), ``unknown_levels_for_room``
        (storeys used for the room of buildings without levels) and
        ``room`` (numpy array: each point's room, persons).

    Raises
    ------
    CRSError
        Buildings not in a metric CRS.
    InputValidationError
        Bad total or share, or the chosen buildings have no floor area at all.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> b = gpd.GeoDataFrame({"footprint_m2": [100.0, 100.0], "levels": [2.0, None],
    ...                       "residential": [True, True]},
    ...                      geometry=[box(0, 0, 10, 10), box(20, 0, 30, 10)], crs=32648)
    >>> building_points(b, 1000)["population"].tolist()  # unknown levels -> median 2
    [500.0, 500.0]
    >>> capped = building_points(b, 20, min_m2_per_person=30)  # 400 m² hold only 13.3
    >>> capped["population"].round(3).tolist()  # unknown building's room taken at 4 storeys
    [6.667, 13.333]
    >>> capped.attrs["buildings_capped"], round(capped.attrs["people_moved"], 3)
    (1, 3.333)
    """
    _require_metric(buildings, "buildings")
    total = _check_positive_total(district_total, "district_total")
    _check_share(under3_share, "under3_share")
    if unknown_levels is not None:
        _check_positive_total(unknown_levels, "unknown_levels")
    if min_m2_per_person is not None:
        _check_positive_total(min_m2_per_person, "min_m2_per_person")
    crs = buildings.crs
    method = (
        "区总人口按住宅建筑面积（占地×层数）分配 / "
        "district total spread over residential buildings by footprint × levels"
    )
    assumptions = [f"district total {total:,.0f} persons / 区总人口 {total:,.0f}"]
    if under3_share is not None:
        assumptions.append(f"under-3 population = {under3_share:.2%} of the population")
    else:
        assumptions.append("under-3 population unknown (no share given) / 3岁以下人口未知")

    geoms = np.asarray(buildings.geometry.values)
    valid = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    rep = np.empty(len(geoms), dtype=object)
    rep[valid] = shapely.point_on_surface(geoms[valid])
    inside = valid.copy()
    n_outside = 0
    if outline is not None:
        shape = _as_outline(outline, crs)
        shapely.prepare(shape)
        inside[valid] = shapely.covers(shape, rep[valid])
        n_outside = int((valid & ~inside).sum())
        if n_outside:
            assumptions.append(
                f"{n_outside} buildings whose representative point lies outside the district "
                "outline left out / 区界外建筑不计"
            )
    if "residential" in buildings.columns:
        residential = buildings["residential"].fillna(False).to_numpy(dtype=bool)
    else:
        residential = np.zeros(len(buildings), dtype=bool)
    chosen = inside & residential
    if chosen.any():
        assumptions.append(f"{int(chosen.sum())} residential buildings used / 使用住宅建筑")
    elif inside.any():
        chosen = inside
        assumptions.append(
            f"no residential building found: all {int(chosen.sum())} buildings used instead "
            "/ 无住宅建筑标注，使用全部建筑"
        )

    cap_attrs: dict[str, Any] = {}

    def finish(frame: gpd.GeoDataFrame, known: int, assumed: int) -> gpd.GeoDataFrame:
        frame.attrs.update(cap_attrs)
        frame.attrs.update(
            population_method=method,
            assumptions=assumptions,
            buildings_used=int(chosen.sum()),
            buildings_outside_outline=n_outside,
            levels_known=known,
            levels_assumed=assumed,
        )
        return frame

    if not chosen.any():
        assumptions.append("no buildings: the district total could not be placed / 无建筑")
        return finish(_empty_points(crs), 0, 0)

    if "footprint_m2" in buildings.columns:
        footprint = pd.to_numeric(buildings["footprint_m2"], errors="coerce").to_numpy(float)
        footprint = np.where(np.isnan(footprint), shapely.area(geoms), footprint)
    else:
        footprint = shapely.area(geoms)
    footprint = np.clip(footprint[chosen], 0.0, None)
    if "levels" in buildings.columns:
        levels = pd.to_numeric(buildings["levels"], errors="coerce").to_numpy(float)[chosen]
    else:
        levels = np.full(int(chosen.sum()), np.nan)
    known_levels = np.isfinite(levels) & (levels > 0)
    n_known = int(known_levels.sum())
    n_assumed = int((~known_levels).sum())
    if unknown_levels is not None:
        fill = float(unknown_levels)
        rule = f"the stated default {fill:g}"
    elif n_known:
        fill = float(np.median(levels[known_levels]))
        rule = f"the median of the known levels, {fill:g}"
    else:
        fill = 1.0
        rule = "1 (no building has levels, so the split is by footprint only)"
    if n_assumed:
        assumptions.append(
            f"levels known for {n_known} of {n_known + n_assumed} buildings; the others take "
            f"{rule} / 未知层数取已知层数中位数"
        )
    floor_area = footprint * np.where(known_levels, levels, fill)
    area_sum = float(floor_area.sum())
    if area_sum <= 0:
        raise InputValidationError(
            "the chosen buildings have no floor area (all footprints are 0)", field="footprint_m2"
        )
    population = total * floor_area / area_sum
    if min_m2_per_person is not None:
        population, cap_attrs = _cap_buildings(
            population,
            floor_area,
            footprint,
            known_levels,
            total,
            float(min_m2_per_person),
            assumptions,
        )
    under3 = (
        population * float(under3_share)
        if under3_share is not None
        else np.full_like(population, np.nan)
    )
    frame = _points_frame(
        np.arange(len(population), dtype=np.int64),
        [None] * len(population),
        population,
        under3,
        rep[chosen],
        crs,
    )
    return finish(frame, n_known, n_assumed)


# --- spreading grid cells over residential land -----------------------------------------


def load_land_use(
    path: str | Path,
    crs: str = "wgs84",
    field: str = "land_use",
    metric_crs: CRS | str | int | None = None,
) -> gpd.GeoDataFrame:
    """Read land-use parcels (polygons with a land-use class).

    Parameters
    ----------
    path
        GeoJSON / GPKG / SHP of polygons.
    crs
        Coordinate system of the file: ``wgs84``, ``gcj02``, ``bd09`` or an ``EPSG:``
        code; GCJ-02/BD-09 are converted to WGS84 first.
    field
        Property with the land-use class (e.g. ``居住用地``); blank = unclassified.
    metric_crs
        Target metric CRS; estimated (UTM zone) from the data when ``None``.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``parcel_id`` (1-based feature row in the file), ``land_use`` (text, None
        when blank) and polygon geometry in the metric CRS; invalid rings are repaired
        (``shapely.make_valid``) and counted in ``attrs["notes"]``. Features without
        geometry are left out and listed in ``attrs["rejects"]``; ``attrs["source"]``
        names the file.

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    EmptyInputError
        The file holds no features, or none with a geometry.
    InputValidationError
        The land-use field is missing or a geometry is not a polygon (file, row and
        field named).
    """
    from tuoyu.errors import DataNotFoundError

    declared = parse_crs_name(crs)
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"land-use file not found: {path}")
    raw = gpd.read_file(path)
    if len(raw) == 0:
        raise EmptyInputError("no features in the land-use file", path=path)
    if field not in raw.columns:
        fields = ", ".join(c for c in raw.columns if c != raw.geometry.name) or "none"
        raise InputValidationError(
            f"no land-use property '{field}' (properties: {fields})", path=path, field=field
        )
    geoms = raw.geometry
    missing = geoms.isna().to_numpy() | geoms.is_empty.to_numpy()
    types = geoms.geom_type.to_numpy()
    bad = np.flatnonzero(~missing & ~np.isin(types, ["Polygon", "MultiPolygon"])).tolist()
    if bad:
        raise InputValidationError(
            f"geometry is a {types[bad[0]]}, expected a Polygon",
            path=path,
            row=bad[0] + 1,
            field="geometry",
        )
    rejects = [
        Reject(str(path), j + 1, "geometry", "", "no geometry; parcel left out")
        for j in np.flatnonzero(missing).tolist()
    ]
    if missing.all():
        raise EmptyInputError("no land-use feature has a geometry", path=path)
    values = [
        None
        if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == ""
        else str(v).strip()
        for v in raw[field].tolist()
    ]
    keep = ~missing
    frame = gpd.GeoDataFrame(
        {
            "parcel_id": np.flatnonzero(keep) + 1,
            "land_use": pd.Series(values, dtype="object")[keep].tolist(),
        },
        geometry=np.asarray(geoms.values)[keep],
        crs=raw.crs if raw.crs is not None else "EPSG:4326",
    )
    notes = _crs_hint_notes(path, crs, declared)
    wgs = gdf_to_wgs84(frame, crs)
    target = CRS.from_user_input(metric_crs) if metric_crs is not None else estimate_metric_crs(wgs)
    out = wgs.to_crs(target).reset_index(drop=True)
    # blank classes stay None (pandas would turn them into NaN on the way)
    out["land_use"] = pd.Series([values[i - 1] for i in out["parcel_id"]], dtype="object")
    invalid = ~out.is_valid.to_numpy()
    if invalid.any():
        out.loc[invalid, "geometry"] = shapely.make_valid(np.asarray(out.geometry.values)[invalid])
        notes.append(f"{path}: {int(invalid.sum())} invalid parcel outlines repaired")
    out.attrs["rejects"] = rejects
    out.attrs["source"] = str(path)
    out.attrs["notes"] = notes
    return out


def grid_spacing_m(points: gpd.GeoDataFrame) -> float:
    """Spacing of a regular point grid: the median distance to the nearest other point.

    Parameters
    ----------
    points
        Grid points, metric CRS.

    Returns
    -------
    float
        Metres.

    Raises
    ------
    CRSError
        Not a metric CRS.
    InputValidationError
        Fewer than two distinct points.

    Examples
    --------
    >>> g = gpd.GeoSeries.from_xy([0, 250, 500, 0, 250], [0, 0, 0, 250, 250], crs=32650)
    >>> grid_spacing_m(gpd.GeoDataFrame(geometry=g))
    250.0
    """
    _require_metric(points, "grid points")
    geoms = np.asarray(points.geometry.values)
    if len(geoms) < 2:
        raise InputValidationError("a grid needs at least two points to infer its spacing")
    tree = shapely.STRtree(geoms)
    _, distance = tree.query_nearest(geoms, exclusive=True, return_distance=True, all_matches=False)
    if len(distance) == 0:
        raise InputValidationError("the grid points all coincide: no spacing to infer")
    return float(np.median(distance))


def grid_cells(
    points: gpd.GeoDataFrame, spacing_m: float, clip: BaseGeometry | None = None
) -> np.ndarray:
    """The cell of each grid point: its Voronoi region, within 0.75 spacing of the point.

    Voronoi regions (GEOS, via :func:`shapely.voronoi_polygons`) partition the plane, so
    a parcel crossing two cells is split between them exactly and no piece counts twice;
    on a regular grid they are the squares of the grid spacing centred on the points
    (whatever rotation the projection gives the grid). Each region is cut to the square
    of side ``1.5 × spacing_m`` around its point — a regular grid's cell fits inside at
    any rotation (its corners are 0.71 spacing away) — so a cell at the edge of the grid
    or beside a missing point reaches at most 0.75 spacing out; then to ``clip``.

    Parameters
    ----------
    points
        Grid points, metric CRS, no two at the same place.
    spacing_m
        Grid spacing (:func:`grid_spacing_m`).
    clip
        Area to cut the cells to (e.g. the district), same CRS.

    Returns
    -------
    numpy.ndarray
        One (possibly empty) polygon per point, in the order of ``points``.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> g = gpd.GeoSeries.from_xy([0, 250, 0, 250], [0, 0, 250, 250], crs=32650)
    >>> grid = gpd.GeoDataFrame(geometry=g)
    >>> [c.area for c in grid_cells(grid, 250.0)]  # edge cells reach 187.5 m out
    [97656.25, 97656.25, 97656.25, 97656.25]
    >>> [c.area for c in grid_cells(grid, 250.0, clip=box(-125, -125, 375, 375))]
    [62500.0, 62500.0, 62500.0, 62500.0]
    """
    _require_metric(points, "grid points")
    geoms = np.asarray(points.geometry.values)
    if len(geoms) == 0:
        return np.empty(0, dtype=object)
    xy = shapely.get_coordinates(geoms)
    if len(xy) != len(geoms):
        raise InputValidationError("grid points must be single points", field="geometry")
    _, first, counts = np.unique(xy, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        row = int(first[np.flatnonzero(counts > 1)[0]])
        raise InputValidationError(
            f"two grid points at the same place ({xy[row, 0]:.1f}, {xy[row, 1]:.1f})",
            row=row + 1,
            field="geometry",
        )
    half = 0.75 * float(spacing_m)
    bounds = shapely.box(*(xy.min(axis=0) - 2 * half), *(xy.max(axis=0) + 2 * half))
    if len(geoms) == 1:
        regions = np.array([bounds], dtype=object)
    else:
        regions = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=bounds, ordered=True)
        )
    squares = shapely.box(xy[:, 0] - half, xy[:, 1] - half, xy[:, 0] + half, xy[:, 1] + half)
    cells = shapely.intersection(regions, squares)
    if clip is not None:
        cells = shapely.intersection(cells, clip)
    return np.asarray(cells, dtype=object)


def _polygon_pieces(
    geoms: np.ndarray, owner: np.ndarray, min_area_m2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split geometries into their polygon parts of at least ``min_area_m2``.

    Returns the parts, the owner of each part (``owner`` repeated) and their areas.
    """
    parts, index = shapely.get_parts(geoms, return_index=True)
    polygonal = shapely.get_type_id(parts) == 3  # intersections may hold lines or points
    parts, index = parts[polygonal], index[polygonal]
    area = shapely.area(parts)
    big = area >= min_area_m2
    return parts[big], owner[index[big]], area[big]


def landuse_population_points(
    cells: gpd.GeoDataFrame,
    parcels: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    unit_totals: pd.DataFrame | pd.Series | Mapping[str, float] | None = None,
    *,
    district_total: float | None = None,
    residential_values: tuple[str, ...] | list[str] = ("居住用地",),
    spacing_m: float | None = None,
    min_piece_m2: float = 1.0,
    under3_share: float | None = None,
    under3_by_unit: pd.Series | Mapping[str, float] | None = None,
) -> gpd.GeoDataFrame:
    """Spread grid-cell residents over the residential land inside each cell.

    Rule:

    1. The district is the union of ``units``; the cells counted are the grid points
       inside it (their residents are the people to place).
    2. Each point's cell is its Voronoi region within 0.75 grid spacing, cut to the
       district (:func:`grid_cells`); the spacing is inferred from the grid
       (:func:`grid_spacing_m`: 250.0 m for the Dongcheng grid) unless given.
    3. The cell is intersected with the residential parcels (``land_use`` in
       ``residential_values``); each polygon piece of at least ``min_piece_m2`` (smaller
       ones are slivers where parcel and cell edges nearly coincide) becomes one point at
       a representative point inside it (:func:`shapely.point_on_surface`), carrying the
       cell's residents × piece area / the cell's residential area. A cell with no
       residential land, or no residents, keeps its own point with all its residents.
       Up to here people are conserved exactly (``attrs["residents_inside"]`` =
       ``attrs["residents_spread"]``).
    4. Scaling reuses :func:`dasymetric_points`: with ``unit_totals`` each unit's total
       is spread over its points in proportion to the residents from step 3 (and
       rescaled to ``district_total`` when given); without them each unit keeps the
       residents of its own points, all rescaled to ``district_total`` when given.

    Parameters
    ----------
    cells
        Grid points with the cell's residents in ``weight`` (:func:`load_weight_points`
        with ``weight_field="residents"``), metric CRS.
    parcels
        Land-use polygons with ``land_use`` (:func:`load_land_use`), same CRS.
    units
        Unit polygons (街道) with ``code``, same CRS; their union is the district.
    unit_totals
        Persons per unit code (see :func:`dasymetric_points`), or ``None`` for the
        grid's own per-unit sums.
    district_total
        Total the result is rescaled to (e.g. the 2020 census).
    residential_values
        ``land_use`` classes that hold residents.
    spacing_m
        Grid spacing; inferred when ``None``.
    min_piece_m2
        Parcel pieces smaller than this are ignored (m²).
    under3_share, under3_by_unit
        As in :func:`dasymetric_points`.

    Returns
    -------
    geopandas.GeoDataFrame
        Population points (:data:`POINT_COLUMNS` + geometry), metric CRS, with the
        ``attrs`` of :func:`dasymetric_points` plus ``cell_spacing_m``, ``cells_inside``,
        ``cells_on_residential_land``, ``cells_on_own_point``,
        ``residents_on_own_point``, ``parcel_pieces``,
        ``residential_area_m2`` (residential land inside the district's counted cells),
        ``residents_inside`` and ``residents_spread`` (before scaling).

    Raises
    ------
    CRSError
        The layers are not in the same metric CRS.
    InputValidationError
        Missing ``weight``/``land_use``/``code`` columns, negative or empty residents,
        no grid point inside the district, or what :func:`dasymetric_points` refuses.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> units = gpd.GeoDataFrame({"code": ["A"]}, geometry=[box(0, 0, 200, 100)], crs=32650)
    >>> cells = gpd.GeoDataFrame({"weight": [100.0, 40.0]},
    ...     geometry=gpd.points_from_xy([50, 150], [50, 50]), crs=32650)
    >>> parcels = gpd.GeoDataFrame({"land_use": ["居住用地", "居住用地"]},
    ...     geometry=[box(0, 0, 25, 100), box(25, 0, 100, 100)], crs=32650)
    >>> out = landuse_population_points(cells, parcels, units)
    >>> out["population"].tolist()  # 1:3 by area in the first cell, own point in the second
    [25.0, 75.0, 40.0]
    """
    _require_metric(cells, "grid cells")
    _require_metric(parcels, "land-use parcels")
    _require_metric(units, "units")
    _require_same_crs(cells, units, "grid cells", "units")
    _require_same_crs(parcels, units, "land-use parcels", "units")
    if "weight" not in cells.columns:
        raise InputValidationError(
            "grid cells need their residents in a 'weight' column "
            "(load_weight_points(..., weight_field='residents'))",
            field="weight",
        )
    if "land_use" not in parcels.columns:
        raise InputValidationError("parcels need a 'land_use' column", field="land_use")
    if UNIT_CODE not in units.columns:
        raise InputValidationError(f"units need a '{UNIT_CODE}' column", field=UNIT_CODE)
    if min_piece_m2 < 0:
        raise InputValidationError(f"min_piece_m2 must be ≥ 0, got {min_piece_m2}")
    residents_all = pd.to_numeric(cells["weight"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(residents_all).any() or (residents_all < 0).any():
        raise InputValidationError(
            "residents must be numbers ≥ 0 (load_weight_points leaves empty ones out)",
            field="weight",
        )
    crs = units.crs
    district = shapely.union_all(np.asarray(units.geometry.values))
    inside = _first_unit_per_point(cells, units)[0] >= 0
    if not inside.any():
        raise InputValidationError(
            f"none of the {len(cells)} grid points lies inside the units; check the "
            "coordinate systems declared for both layers"
        )
    spacing = float(spacing_m) if spacing_m is not None else grid_spacing_m(cells)
    if not (math.isfinite(spacing) and spacing > 0):
        raise InputValidationError(f"grid spacing must be a positive number of metres: {spacing}")
    # Voronoi over the points near the district only: the ones farther than two spacings
    # cannot shape a cell of a point inside it.
    near = np.asarray(shapely.dwithin(np.asarray(cells.geometry.values), district, 2 * spacing))
    near_idx = np.flatnonzero(near)
    regions = grid_cells(cells.iloc[near_idx], spacing, clip=district)
    keep = inside[near_idx]
    cell_idx = near_idx[keep]  # rows of `cells` counted
    cell_geom = regions[keep]
    residents = residents_all[cell_idx]
    cell_point = np.asarray(cells.geometry.values)[cell_idx]

    is_res = parcels["land_use"].isin(list(residential_values)).to_numpy()
    res_geoms = np.asarray(parcels.geometry.values)[is_res]
    tree = shapely.STRtree(res_geoms)
    c_i, p_i = tree.query(cell_geom, predicate="intersects")
    pieces = shapely.intersection(cell_geom[c_i], res_geoms[p_i])
    piece_geom, piece_cell, piece_area = _polygon_pieces(pieces, c_i, min_piece_m2)
    res_area = np.bincount(piece_cell, weights=piece_area, minlength=len(cell_idx))
    spread = (res_area > 0) & (residents > 0)
    use_piece = spread[piece_cell]
    piece_geom, piece_cell, piece_area = (
        piece_geom[use_piece],
        piece_cell[use_piece],
        piece_area[use_piece],
    )
    piece_people = residents[piece_cell] * piece_area / res_area[piece_cell]
    own = ~spread
    geometry = np.concatenate([shapely.point_on_surface(piece_geom), cell_point[own]])
    people = np.concatenate([piece_people, residents[own]])
    weights = gpd.GeoDataFrame(
        {"point_id": np.arange(len(people), dtype=np.int64), "weight": people},
        geometry=gpd.GeoSeries(geometry, crs=crs),
        crs=crs,
    )
    residents_inside = float(residents.sum())
    residents_spread = float(people.sum())
    totals: pd.DataFrame | pd.Series | Mapping[str, float]
    if unit_totals is None:
        # the grid's own sums per unit, so a district total rescales every unit alike
        pos = _first_unit_per_point(weights, units)[0]
        sums = np.bincount(pos[pos >= 0], weights=people[pos >= 0], minlength=len(units))
        totals = pd.Series(sums, index=units[UNIT_CODE].astype(str).to_numpy())
    else:
        totals = unit_totals
    out = dasymetric_points(
        weights,
        units,
        totals,
        district_total=district_total,
        under3_share=under3_share,
        under3_by_unit=under3_by_unit,
    )
    values = "、".join(residential_values)
    n_own = int(own.sum())
    spacing_from = "inferred from the grid" if spacing_m is None else "given"
    assumptions = [
        f"{len(cell_idx)} grid cells inside the district ({residents_inside:,.0f} residents); "
        f"cell = Voronoi region of the grid point (spacing {spacing:.1f} m, "
        f"{spacing_from}), cut to the district / 网格单元取网格点的泰森多边形（间距 "
        f"{spacing:.0f} 米）",
        f"each cell's residents spread over its {values} pieces by area "
        f"({len(piece_geom)} pieces, {res_area[spread].sum() / 1e6:.2f} km²) / "
        "网格人口按单元内居住用地面积分配",
        f"{n_own} cells without residential land (or residents) keep their own point "
        f"({residents[own].sum():,.0f} residents) / 无居住用地的网格保留网格点",
    ]
    out.attrs.update(
        population_method=(
            "网格常住人口按居住用地面积分配，再按单元总数缩放 / grid-cell residents spread "
            "over residential land parcels by area, then scaled to the unit totals"
        ),
        assumptions=[*assumptions, *out.attrs.get("assumptions", [])],
        cell_spacing_m=spacing,
        cells_inside=len(cell_idx),
        cells_on_residential_land=int(spread.sum()),
        cells_on_own_point=n_own,
        residents_on_own_point=float(residents[own].sum()),
        parcel_pieces=len(piece_geom),
        residential_area_m2=float(res_area.sum()),
        residents_inside=residents_inside,
        residents_spread=residents_spread,
    )
    return out


# --- plausibility -----------------------------------------------------------------------

MAX_PEOPLE_PER_KM2: float = 100_000.0
"""People per km² above which :func:`plausibility` warns (see there for the basis)."""

MAX_PEOPLE_PER_POINT: float = 5_000.0
"""People on one point above which :func:`plausibility` warns (see there for the basis)."""


@dataclass(frozen=True)
class UnitDensity:
    """People per km² of one unit (gross: the unit's whole area)."""

    code: str
    name: str | None
    population: float
    area_km2: float

    @property
    def people_per_km2(self) -> float:
        """Population / area (NaN for an empty area)."""
        return self.population / self.area_km2 if self.area_km2 > 0 else math.nan


@dataclass(frozen=True)
class PopulationPlausibility:
    """Density figures of a population layer and the warnings they raise.

    Built by :func:`plausibility`; :meth:`lines` gives the text to print and record.
    """

    total: float
    points: int
    residential_area_km2: float | None
    people_per_km2_residential: float | None
    densest_units: tuple[UnitDensity, ...]
    largest_point: float
    largest_point_id: int | None
    warnings: tuple[str, ...]
    max_people_per_km2: float = MAX_PEOPLE_PER_KM2
    max_people_per_point: float = MAX_PEOPLE_PER_POINT

    def lines(self) -> list[str]:
        """Chinese + English lines, one figure or warning each."""
        out = [f"人口 / population: {self.total:,.0f} 人 on {self.points:,} points"]
        if self.people_per_km2_residential is not None and self.residential_area_km2:
            out.append(
                f"居住用地人口密度 / people per km² of residential land: "
                f"{self.people_per_km2_residential:,.0f} ({self.residential_area_km2:.2f} km²)"
            )
        for unit in self.densest_units:
            label = f"{unit.name} {unit.code}" if unit.name else unit.code
            out.append(
                f"最密单元 / densest unit: {label} {unit.people_per_km2:,.0f} 人/km² "
                f"({unit.population:,.0f} 人, {unit.area_km2:.2f} km²)"
            )
        where = f" (point {self.largest_point_id})" if self.largest_point_id is not None else ""
        out.append(f"最大单点 / largest point: {self.largest_point:,.0f} 人{where}")
        out.extend(f"! {w}" for w in self.warnings)
        return out


def plausibility(
    points: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame | None = None,
    residential_area_m2: float | None = None,
    *,
    max_people_per_km2: float = MAX_PEOPLE_PER_KM2,
    max_people_per_point: float = MAX_PEOPLE_PER_POINT,
    top: int = 3,
) -> PopulationPlausibility:
    """Check a population layer against what real Chinese neighbourhoods hold.

    Thresholds and their basis:

    * ``max_people_per_km2`` = 100,000 people per km² — of residential land, and of a
      unit's whole area (a unit's gross density cannot honestly exceed the net density
      of its housing land). GB 50180-2018《城市居住区规划设计标准》 caps the 住宅用地
      容积率 (floor area ratio) of a 居住街坊 of 19–26-storey housing at 2.8–3.1 by
      climate zone; at 30 m² of floor per person (below the 2020 census urban average
      of 36.52 m²) a FAR of 3.1 houses 103,000 people per km². For comparison the
      densest 街道 of Dongcheng hold ~37,000 registered residents per km² (交道口,
      54,012 on 1.45 km²).
    * ``max_people_per_point`` = 5,000 people — about 1,700 flats at 3 persons: more
      than nearly any single residential building holds, and what a whole 250 m grid
      cell (0.0625 km²) holds at 80,000 per km². A point above it piles people on too
      few places for walking distances to mean much.

    Parameters
    ----------
    points
        Population points (:data:`POINT_COLUMNS` + geometry), metric CRS.
    units
        Unit polygons with ``code`` (and ``name`` when present), same CRS; points are
        re-assigned to them (:func:`assign_units`). ``None``: no unit figures.
    residential_area_m2
        Residential land the points stand on; default ``points.attrs
        ["residential_area_m2"]`` (set by :func:`landuse_population_points`), else none.
    max_people_per_km2, max_people_per_point
        Warning thresholds (see above).
    top
        How many of the densest units to report.

    Returns
    -------
    PopulationPlausibility

    Examples
    --------
    >>> from shapely.geometry import box, Point
    >>> p = gpd.GeoDataFrame({"point_id": [0, 1], "unit_code": [None, None],
    ...     "population": [6000.0, 1000.0], "population_under3": [90.0, 15.0]},
    ...     geometry=[Point(10, 10), Point(500, 500)], crs=32650)
    >>> u = gpd.GeoDataFrame({"code": ["A", "B"]},
    ...     geometry=[box(0, 0, 100, 100), box(0, 100, 1000, 1000)], crs=32650)
    >>> check = plausibility(p, u, residential_area_m2=50_000)
    >>> check.people_per_km2_residential, check.densest_units[0].people_per_km2
    (140000.0, 600000.0)
    >>> len(check.warnings)  # residential land, unit A, the 6,000 point
    3
    """
    if POPULATION not in points.columns:
        raise InputValidationError(
            f"population points need a '{POPULATION}' column", field=POPULATION
        )
    _check_positive_total(max_people_per_km2, "max_people_per_km2")
    _check_positive_total(max_people_per_point, "max_people_per_point")
    people = points[POPULATION].to_numpy(dtype=float)
    total = float(np.nansum(people))
    warns: list[str] = []
    if residential_area_m2 is None:
        attr = points.attrs.get("residential_area_m2")
        residential_area_m2 = float(attr) if attr is not None else None
    res_km2: float | None = None
    per_res: float | None = None
    if residential_area_m2 is not None and residential_area_m2 > 0:
        res_km2 = float(residential_area_m2) / 1e6
        per_res = total / res_km2
        if per_res > max_people_per_km2:
            warns.append(
                f"居住用地人口密度 {per_res:,.0f} 人/km² 超过 {max_people_per_km2:,.0f} / "
                f"{per_res:,.0f} people per km² of residential land exceeds "
                f"{max_people_per_km2:,.0f}"
            )
    densest: list[UnitDensity] = []
    if units is not None and len(units) and len(points):
        placed = assign_units(points, units)
        table = unit_population(placed).set_index("unit_code")
        codes = units[UNIT_CODE].astype(str).to_numpy()
        names = units["name"].astype(str).to_numpy() if "name" in units.columns else None
        area_km2 = shapely.area(np.asarray(units.geometry.values)) / 1e6
        rows = [
            UnitDensity(
                code=code,
                name=None if names is None else names[i],
                population=float(table.loc[code, POPULATION]),
                area_km2=float(area_km2[i]),
            )
            for i, code in enumerate(codes)
            if code in table.index and math.isfinite(float(table.loc[code, POPULATION]))
        ]
        rows.sort(key=lambda u: -u.people_per_km2 if math.isfinite(u.people_per_km2) else 0.0)
        densest = rows[:top]
        for unit in rows:
            if unit.people_per_km2 > max_people_per_km2:
                warns.append(
                    f"单元 {unit.code} 人口密度 {unit.people_per_km2:,.0f} 人/km² 超过 "
                    f"{max_people_per_km2:,.0f} / unit {unit.code} holds "
                    f"{unit.people_per_km2:,.0f} people per km², over {max_people_per_km2:,.0f}"
                )
    largest = float(np.nanmax(people)) if len(people) and np.isfinite(people).any() else 0.0
    largest_id: int | None = None
    if largest > 0:
        at = int(np.nanargmax(people))
        largest_id = int(points["point_id"].iloc[at]) if "point_id" in points.columns else at
    over = int((people > max_people_per_point).sum())
    if over:
        warns.append(
            f"{over} 个点人口超过 {max_people_per_point:,.0f}（最大 {largest:,.0f}）/ {over} "
            f"points hold over {max_people_per_point:,.0f} people (largest {largest:,.0f})"
        )
    return PopulationPlausibility(
        total=total,
        points=len(points),
        residential_area_km2=res_km2,
        people_per_km2_residential=per_res,
        densest_units=tuple(densest),
        largest_point=largest,
        largest_point_id=largest_id,
        warnings=tuple(warns),
        max_people_per_km2=float(max_people_per_km2),
        max_people_per_point=float(max_people_per_point),
    )


# --- units ------------------------------------------------------------------------------


def assign_units(points: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Fill ``unit_code`` with the code of the unit each point lies in (None outside all).

    A point on a shared border goes to the first unit in ``units`` order, so every point
    has at most one unit.

    Parameters
    ----------
    points
        Population points (any frame with point geometry), metric CRS.
    units
        Polygons with a ``code`` column (街道 or :func:`tuoyu.layers.h3units.h3_units`), same
        CRS.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``points`` (same index, same attrs) with ``unit_code`` set;
        ``attrs["points_outside_units"]`` counts the points in no unit.
    """
    _require_metric(points, "points")
    _require_metric(units, "units")
    _require_same_crs(points, units, "points", "units")
    if UNIT_CODE not in units.columns:
        raise InputValidationError(f"units need a '{UNIT_CODE}' column", field=UNIT_CODE)
    out = points.copy()
    pos, several = _first_unit_per_point(points, units)
    codes = units[UNIT_CODE].astype(str).to_numpy()
    out["unit_code"] = pd.Series(
        [codes[p] if p >= 0 else None for p in pos], index=out.index, dtype="object"
    )
    out.attrs = {**points.attrs}
    out.attrs["points_outside_units"] = int((pos < 0).sum())
    out.attrs["points_in_several_units"] = several
    return out


def unit_population(points: gpd.GeoDataFrame) -> pd.DataFrame:
    """Population and under-3 population per ``unit_code``.

    A unit's sum is NaN (unknown) when any of its points has an unknown value. Points
    without a unit are not in the table; their population is in
    ``attrs["population_outside_units"]``.

    Returns
    -------
    pandas.DataFrame
        Columns ``unit_code``, ``population``, ``population_under3``, ``points``, sorted
        by ``unit_code``.

    Examples
    --------
    >>> from shapely.geometry import Point
    >>> p = gpd.GeoDataFrame({"point_id": [0, 1, 2], "unit_code": ["A", "A", None],
    ...                       "population": [1.0, 2.0, 5.0],
    ...                       "population_under3": [0.1, float("nan"), 0.5]},
    ...                      geometry=[Point(0, 0)] * 3, crs=32650)
    >>> unit_population(p)[["unit_code", "population", "points"]].values.tolist()
    [['A', 3.0, 2]]
    """
    for column in ("unit_code", POPULATION, POPULATION_UNDER3):
        if column not in points.columns:
            raise InputValidationError(f"population points need a '{column}' column", field=column)
    has_unit = points["unit_code"].notna().to_numpy()
    frame = pd.DataFrame(
        {
            "unit_code": points["unit_code"].to_numpy(dtype=object)[has_unit].astype(str),
            POPULATION: points[POPULATION].to_numpy(dtype=float)[has_unit],
            POPULATION_UNDER3: points[POPULATION_UNDER3].to_numpy(dtype=float)[has_unit],
        }
    )
    grouped = frame.groupby("unit_code", sort=True)
    out = pd.DataFrame(
        {
            # a unit's sum stays NaN (unknown) as soon as one of its points is unknown
            POPULATION: grouped[POPULATION]
            .sum(min_count=1)
            .where(grouped[POPULATION].count() == grouped.size()),
            POPULATION_UNDER3: grouped[POPULATION_UNDER3]
            .sum(min_count=1)
            .where(grouped[POPULATION_UNDER3].count() == grouped.size()),
            "points": grouped.size(),
        }
    ).reset_index()
    outside = points[POPULATION].to_numpy(dtype=float)[~has_unit]
    out.attrs["population_outside_units"] = float(np.nansum(outside))
    out.attrs["points_outside_units"] = int((~has_unit).sum())
    return out
