"""Population layers: people as points in the metric CRS, with the unit each lies in.

Three ways to get population points, all returning the same contract (see
:data:`POINT_COLUMNS`):

* :func:`dasymetric_points` — per-unit totals (e.g. 街道 户籍/常住人口) spread over
  relative point weights (a population grid) inside each unit;
* :func:`building_points` — one district total spread over OSM residential buildings in
  proportion to footprint area × levels, when no finer layer exists;
* :func:`assign_units` / :func:`unit_population` — put points in units (街道 or H3 cells)
  and sum them back per unit.

Every result carries ``attrs["population_method"]`` (one sentence, Chinese and English)
and ``attrs["assumptions"]`` (list of sentences: sources, totals, shares, fallbacks), so
reports can say how the people were placed. Unknown values stay unknown (NaN), never 0.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from tuoyu.crs.china import parse_crs_name
from tuoyu.crs.projection import estimate_metric_crs, gdf_to_wgs84
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
        if math.isnan(parsed):
            rejects.append(
                Reject(str(path), i + 1, weight_field, "", "empty weight (unknown); point left out")
            )
        weights[i] = parsed
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
            warnings.warn(note, UserWarning, stacklevel=2)
    frame = gpd.GeoDataFrame(
        {"point_id": np.flatnonzero(keep) + 1, "weight": weights[keep]},
        geometry=np.asarray(geoms.values)[keep],
        crs=raw.crs if raw.crs is not None else "EPSG:4326",
    )
    wgs = gdf_to_wgs84(frame, crs)
    target = CRS.from_user_input(metric_crs) if metric_crs is not None else estimate_metric_crs(wgs)
    out = wgs.to_crs(target).reset_index(drop=True)
    out.attrs["rejects"] = rejects
    out.attrs["source"] = str(path)
    out.attrs["notes"] = notes
    return out


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


def building_points(
    buildings: gpd.GeoDataFrame,
    district_total: float,
    *,
    outline: BaseGeometry | gpd.GeoDataFrame | gpd.GeoSeries | None = None,
    under3_share: float | None = None,
    unknown_levels: float | None = None,
) -> gpd.GeoDataFrame:
    """Spread one district total over buildings by floor area (footprint × levels).

    Rule: take the residential buildings (``residential`` true; when there are none, all
    buildings, stated in the assumptions) whose representative point lies inside
    ``outline``; each gets one point at its representative point, with population
    proportional to ``footprint_m2 × levels``. A missing, zero or negative ``levels``
    is unknown and takes ``unknown_levels`` — by default the median of the known levels
    of the chosen buildings; when none is known every building counts one level (any
    constant gives the same split). The points sum to ``district_total``.

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

    Returns
    -------
    geopandas.GeoDataFrame
        Population points (:data:`POINT_COLUMNS` + geometry) with ``unit_code`` None
        (use :func:`assign_units`). ``attrs``: ``population_method``, ``assumptions``,
        ``buildings_used``, ``buildings_outside_outline``, ``levels_known``,
        ``levels_assumed``.

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
    """
    _require_metric(buildings, "buildings")
    total = _check_positive_total(district_total, "district_total")
    _check_share(under3_share, "under3_share")
    if unknown_levels is not None:
        _check_positive_total(unknown_levels, "unknown_levels")
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

    def finish(frame: gpd.GeoDataFrame, known: int, assumed: int) -> gpd.GeoDataFrame:
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
