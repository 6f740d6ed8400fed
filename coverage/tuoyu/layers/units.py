"""街道 (subdistrict) polygons: GeoJSON, GeoPackage or Shapefile → validated units.

Units are converted from their declared datum (WGS84, GCJ-02, BD-09 or an EPSG code) to
WGS84 and then to the local metric CRS. Invalid rings are repaired with
``shapely.make_valid`` (polygonal parts kept) and every repair is reported. Codes must
be present and unique: they key population totals and indicators.
"""

from __future__ import annotations

import math
import re
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import cast

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from tuoyu.crs.china import parse_crs_name
from tuoyu.crs.projection import estimate_metric_crs, gdf_to_wgs84
from tuoyu.errors import (
    CRSError,
    DataNotFoundError,
    EmptyInputError,
    InputValidationError,
)
from tuoyu.layers.schema import UNIT_CODE, UNIT_NAME

UNIT_COLUMNS: tuple[str, ...] = (UNIT_CODE, UNIT_NAME, "area_m2", "geometry")
_POLYGONAL = ("Polygon", "MultiPolygon")
_OVERLAP_WARN_SHARE = 0.005
_PARTIAL_OVERLAP_WARN_SHARE = 0.5


def _code_text(value: object) -> str | None:
    """A unit code as text; numbers typed as float by a reader lose their '.0'."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    if isinstance(value, np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _polygonal_part(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of a ``make_valid`` result (drops stray lines and points)."""
    if geom.geom_type in _POLYGONAL:
        return geom
    parts = [
        g
        for g in shapely.get_parts(geom)
        if g.geom_type in _POLYGONAL and not g.is_empty and g.area > 0
    ]
    polys = [p for part in parts for p in shapely.get_parts(part)]
    if not polys:
        return shapely.Polygon()
    if len(polys) == 1:
        return cast(BaseGeometry, polys[0])
    return shapely.MultiPolygon(polys)


def _read(path: Path) -> gpd.GeoDataFrame:
    if not path.exists():
        raise DataNotFoundError(f"units file not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise EmptyInputError("file is empty", path=path)
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except (DataSourceError, DataLayerError, ValueError) as exc:
        raise InputValidationError(
            f"cannot read as GeoJSON/GeoPackage/Shapefile: {exc}", path=path
        ) from exc
    if len(gdf) == 0:
        raise EmptyInputError("file holds no polygons", path=path)
    return gdf


def _check_declared_crs(gdf: gpd.GeoDataFrame, crs: str, path: Path) -> None:
    declared = parse_crs_name(crs)
    file_crs = gdf.crs
    if isinstance(declared, str):
        if file_crs is not None and file_crs.is_projected:
            raise CRSError(
                f"{path}: the file's own CRS is {file_crs.to_string()} (projected, metres) but "
                f"crs = '{crs}' (longitude/latitude) was declared; declare the EPSG code"
            )
        minx, miny, maxx, maxy = gdf.total_bounds
        if not (-180.0 <= minx <= maxx <= 180.0 and -90.0 <= miny <= maxy <= 90.0):
            raise CRSError(
                f"{path}: coordinates span ({minx:.1f}, {miny:.1f})–({maxx:.1f}, {maxy:.1f}), "
                f"not longitude/latitude as crs = '{crs}' says; declare the file's EPSG code"
            )
    elif file_crs is not None and not file_crs.equals(declared):
        warnings.warn(
            f"{path}: the file says {file_crs.to_string()} but crs = '{crs}' was declared; "
            "the declared CRS is used",
            UserWarning,
            stacklevel=3,
        )


def _validate_rows(
    gdf: gpd.GeoDataFrame, path: Path, code_field: str, name_field: str
) -> tuple[list[str], list[str | None]]:
    for name in (code_field, name_field):
        if name not in gdf.columns:
            available = ", ".join(c for c in gdf.columns if c != gdf.geometry.name)
            raise InputValidationError(
                f"no column '{name}'; the file has: {available}", path=path, field=name
            )
    codes: list[str] = []
    first_row: dict[str, int] = {}
    for row, (value, geom) in enumerate(zip(gdf[code_field], gdf.geometry, strict=True), 1):
        code = _code_text(value)
        if code is None:
            raise InputValidationError("unit code is empty", path=path, row=row, field=code_field)
        if code in first_row:
            raise InputValidationError(
                f"duplicate unit code '{code}' (first at row {first_row[code]})",
                path=path,
                row=row,
                field=code_field,
            )
        first_row[code] = row
        codes.append(code)
        if geom is None or geom.is_empty:
            raise InputValidationError(
                f"unit '{code}' has no geometry", path=path, row=row, field="geometry"
            )
        if geom.geom_type not in _POLYGONAL:
            raise InputValidationError(
                f"unit '{code}' is a {geom.geom_type}, expected Polygon or MultiPolygon",
                path=path,
                row=row,
                field="geometry",
            )
    names = [
        None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip() or None
        for v in gdf[name_field]
    ]
    return codes, names


def _repair(
    geoms: Sequence[BaseGeometry], codes: Sequence[str], path: Path
) -> tuple[list[BaseGeometry], list[dict[str, object]]]:
    arr = np.asarray(geoms, dtype=object)
    invalid = ~shapely.is_valid(arr)
    repairs: list[dict[str, object]] = []
    out = list(arr)
    for i in (int(k) for k in np.flatnonzero(invalid)):
        reason = shapely.is_valid_reason(arr[i])
        fixed = _polygonal_part(shapely.make_valid(arr[i]))
        if fixed.is_empty or fixed.area <= 0:
            raise InputValidationError(
                f"unit '{codes[i]}' has no area left after repairing its rings ({reason})",
                path=path,
                row=i + 1,
                field="geometry",
            )
        out[i] = fixed
        repairs.append(
            {
                "code": codes[i],
                "row": i + 1,
                "reason": str(reason),
                "area_m2": float(fixed.area),
            }
        )
    if repairs:
        listed = "; ".join(f"{r['code']}: {r['reason']}" for r in repairs)
        warnings.warn(
            f"{path}: repaired {len(repairs)} invalid polygon(s) with make_valid "
            f"(修复了无效多边形): {listed}",
            UserWarning,
            stacklevel=3,
        )
    return out, repairs


def load_units(
    path: str | Path,
    *,
    crs: str = "wgs84",
    code_field: str = "code",
    name_field: str = "name",
    metric_crs: CRS | str | int | None = None,
) -> gpd.GeoDataFrame:
    """Load 街道 (or other unit) polygons into the local metric CRS.

    Parameters
    ----------
    path
        GeoJSON, GeoPackage or Shapefile (anything pyogrio reads).
    crs
        Datum of the coordinates: ``wgs84``, ``gcj02``, ``bd09`` or an ``EPSG:`` code.
        It overrides the file's own metadata (GeoJSON always claims WGS84).
    code_field, name_field
        Columns holding the unit code (unique, non-empty) and name.
    metric_crs
        Output CRS; default the UTM zone of the units.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``code`` (str), ``name`` (str, null when missing), ``area_m2`` and
        geometry (Polygon/MultiPolygon) in the metric CRS, in file order.
        ``attrs["repairs"]`` lists repaired polygons as dicts (code, row, reason,
        area_m2); ``attrs["source"]`` is the file path.

    Raises
    ------
    DataNotFoundError
        Missing file.
    EmptyInputError
        The file holds no features.
    CRSError
        Unknown ``crs``, a ``crs`` that contradicts the coordinates, or a geographic
        ``metric_crs``.
    InputValidationError
        Missing column, empty or duplicate code, missing or non-polygonal geometry
        (naming file, row and field), or an unreadable file.

    Warns
    -----
    UserWarning
        When polygons were repaired or units overlap each other.
    """
    path = Path(path)
    parse_crs_name(crs)
    out_crs = CRS.from_user_input(metric_crs) if metric_crs is not None else None
    if out_crs is not None and not out_crs.is_projected:
        raise CRSError(f"metric_crs {out_crs.to_string()} is not a projected (metric) CRS")
    raw = _read(path)
    codes, names = _validate_rows(raw, path, code_field, name_field)
    _check_declared_crs(raw, crs, path)
    wgs = gdf_to_wgs84(raw[[raw.geometry.name]], crs)
    if out_crs is None:
        out_crs = estimate_metric_crs(wgs)
    metric = wgs.to_crs(out_crs)
    geoms, repairs = _repair(list(metric.geometry.values), codes, path)
    units = gpd.GeoDataFrame(
        {
            UNIT_CODE: pd.Series(codes, dtype="str"),
            UNIT_NAME: pd.Series(names, dtype="str"),
        },
        geometry=gpd.GeoSeries(geoms, crs=out_crs),
    )
    units.insert(2, "area_m2", units.geometry.area.astype("float64"))
    units = units.rename_geometry("geometry") if units.geometry.name != "geometry" else units
    missing_names = int(units[UNIT_NAME].isna().sum())
    if missing_names:
        warnings.warn(f"{path}: {missing_names} unit(s) have no name", UserWarning, stacklevel=2)
    overlap_m2 = float(units.area.sum() - units.union_all().area)
    if overlap_m2 > _OVERLAP_WARN_SHARE * float(units.area.sum()):
        warnings.warn(
            f"{path}: units overlap each other by {overlap_m2 / 1e6:.3f} km² "
            "(单元相互重叠); population and indicators may count those areas twice",
            UserWarning,
            stacklevel=2,
        )
    units.attrs["repairs"] = repairs
    units.attrs["source"] = str(path)
    return units


def check_overlap_with_network(
    units: gpd.GeoDataFrame, network_extent_polygon: BaseGeometry | gpd.GeoSeries
) -> None:
    """Raise when the units do not overlap the walking network at all.

    Parameters
    ----------
    units
        Units from :func:`load_units` (metric CRS).
    network_extent_polygon
        The network's extent (e.g. the convex hull of its nodes): a shapely geometry
        in the units' CRS, or a GeoSeries/GeoDataFrame with its own CRS (reprojected).

    Raises
    ------
    InputValidationError
        No unit polygon touches the extent; the message gives the gap and the usual
        cause (a wrong ``crs`` declared for one of the layers).

    Warns
    -----
    UserWarning
        When less than half of the units' area lies inside the network extent.
    """
    if len(units) == 0:
        return
    if isinstance(network_extent_polygon, gpd.GeoDataFrame | gpd.GeoSeries):
        extent_layer = network_extent_polygon
        if extent_layer.crs is not None and units.crs is not None:
            extent_layer = extent_layer.to_crs(units.crs)
        extent = extent_layer.union_all()
    else:
        extent = network_extent_polygon
    source = units.attrs.get("source")
    if extent is None or extent.is_empty:
        raise InputValidationError("the walking network's extent is empty", path=source)
    area = units.union_all()
    if not area.intersects(extent):
        gap_km = area.distance(extent) / 1000.0
        raise InputValidationError(
            f"the unit polygons do not overlap the walking network at all (gap {gap_km:,.1f} "
            "km; 单元与路网不重叠): check the crs declared for the units and for the network, "
            "and that both files cover the same place",
            path=source,
        )
    share = area.intersection(extent).area / area.area if area.area > 0 else 1.0
    if share < _PARTIAL_OVERLAP_WARN_SHARE:
        warnings.warn(
            f"only {share:.0%} of the units' area lies inside the walking network's extent "
            "(单元大部分在路网范围外)",
            UserWarning,
            stacklevel=2,
        )


# --- 街道 given as a table (codes and names, no polygons) ------------------------------

_SUFFIXES: tuple[str, ...] = ("街道办事处", "街道办", "办事处", "街道", "镇", "乡")


def jiedao_key(name: object) -> str | None:
    """A 街道 name reduced for matching: NFKC, no spaces, no 街道/镇/乡 suffix.

    Examples
    --------
    >>> jiedao_key(" 解放碑街道 "), jiedao_key("解放碑"), jiedao_key("歇马镇")
    ('解放碑', '解放碑', '歇马')
    >>> jiedao_key(None) is None
    True
    """
    if name is None or name is pd.NA or (isinstance(name, float) and math.isnan(name)):
        return None
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(name)))
    for suffix in _SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    return text or None


def has_geometry(units: gpd.GeoDataFrame) -> bool:
    """True when the units carry polygons (a 街道 table has none).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> has_geometry(gpd.GeoDataFrame({"code": ["1"]}, geometry=[None]))
    False
    >>> has_geometry(gpd.GeoDataFrame({"code": ["1"]}, geometry=[shapely.box(0, 0, 1, 1)]))
    True
    """
    if len(units) == 0:
        return False
    geoms = units.geometry
    return bool((geoms.notna() & ~geoms.is_empty).any())


def match_units(
    values: Iterable[object], codes: Sequence[str], names: Sequence[str | None]
) -> npt.NDArray[np.int64]:
    """Position of the unit each 街道 value names (``-1`` when none or unknown).

    A value matches a unit by code (9 digits, or the 12-digit statistical code whose
    first 9 digits are the unit's code) or by name, with or without the
    街道/镇/乡/办事处 suffix (``"解放碑"`` = ``"解放碑街道"``).

    Parameters
    ----------
    values
        The facilities' ``jiedao`` field (text; ``None`` = unknown).
    codes, names
        The units' codes and names in unit order.

    Returns
    -------
    numpy.ndarray
        One int64 position per value.

    Examples
    --------
    >>> match_units(["解放碑", "500103001", "七星岗街道", "外星", None],
    ...             ["500103001", "500103003"], ["七星岗街道", "解放碑街道"]).tolist()
    [1, 0, 0, -1, -1]
    """
    by_code = {str(c).strip(): i for i, c in enumerate(codes)}
    by_name: dict[str, int] = {}
    for i, name in enumerate(names):
        key = jiedao_key(name)
        if key is not None:
            by_name.setdefault(key, i)
    out: list[int] = []
    for value in values:
        key = jiedao_key(value)
        if key is None:
            out.append(-1)
            continue
        if key in by_code:
            out.append(by_code[key])
        elif key.isdigit() and len(key) == 12 and key[:9] in by_code:
            out.append(by_code[key[:9]])
        else:
            out.append(by_name.get(key, -1))
    return np.asarray(out, dtype=np.int64)


def load_unit_table(
    path: str | Path,
    *,
    code_field: str = "code",
    name_field: str = "name",
    population_field: str | None = None,
    under3_field: str | None = None,
    crs: CRS | str | int | None = None,
) -> gpd.GeoDataFrame:
    """Load 街道 given as a table (code, name, optional population): units without polygons.

    Parameters
    ----------
    path
        CSV (UTF-8 or GBK), XLSX or GeoJSON read by :func:`tuoyu.layers.tables.read_table`.
    code_field, name_field
        Columns with the unit code (unique, non-empty, kept as text) and name.
    population_field, under3_field
        Optional columns with the resident and under-3 population of each unit (empty
        cells stay unknown).
    crs
        CRS recorded on the (empty) geometry column, normally the area's metric CRS.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``code``, ``name``, ``area_m2`` (NaN: unknown), ``population`` and
        ``population_under3`` (float, NaN when unknown or not given) and a geometry
        column of ``None``; ``attrs["source"]`` is the file path.

    Raises
    ------
    DataNotFoundError, EmptyInputError, InputValidationError
        Missing file, no rows, missing column, empty/duplicate code, or a population
        that is not a number (file, row and field named).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "jd.csv"
    >>> _ = f.write_text("code,name\\n500103001,七星岗街道\\n500103003,解放碑街道\\n")
    >>> t = load_unit_table(f)
    >>> t[["code", "name"]].values.tolist(), bool(t["population"].isna().all())
    ([['500103001', '七星岗街道'], ['500103003', '解放碑街道']], True)
    """
    from tuoyu.layers.population import read_unit_totals
    from tuoyu.layers.tables import read_table

    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"units table not found: {path}")
    table = read_table(path)
    if not table.rows:
        raise EmptyInputError("file holds no 街道 rows", path=path)
    for name in (code_field, name_field):
        if name not in table.columns:
            raise InputValidationError(
                f"no column '{name}'; the file has: {', '.join(table.columns)}",
                path=path,
                field=name,
            )
    codes: list[str] = []
    names: list[str | None] = []
    first_row: dict[str, int] = {}
    for row in table.rows:
        code = _code_text(row.values.get(code_field))
        if code is not None and code.endswith(".0") and code[:-2].isdigit():
            code = code[:-2]
        if code is None:
            raise InputValidationError(
                "unit code is empty", path=path, row=row.number, field=code_field
            )
        if code in first_row:
            raise InputValidationError(
                f"duplicate unit code '{code}' (first at row {first_row[code]})",
                path=path,
                row=row.number,
                field=code_field,
            )
        first_row[code] = row.number
        codes.append(code)
        raw_name = row.values.get(name_field)
        names.append(None if raw_name is None else str(raw_name).strip() or None)
    population = np.full(len(codes), np.nan)
    under3 = np.full(len(codes), np.nan)
    if population_field is not None:
        totals = read_unit_totals(path, code_field, population_field, under3_field)
        by_code = totals.set_index("code")
        population = by_code["population"].reindex(codes).to_numpy(dtype=float)
        under3 = by_code["population_under3"].reindex(codes).to_numpy(dtype=float)
    elif under3_field is not None:
        raise InputValidationError(
            "under3_field needs population_field", path=path, field=under3_field
        )
    units = gpd.GeoDataFrame(
        {
            UNIT_CODE: pd.Series(codes, dtype="str"),
            UNIT_NAME: pd.Series(names, dtype="str"),
            "area_m2": np.full(len(codes), np.nan),
            "population": population,
            "population_under3": under3,
        },
        geometry=gpd.GeoSeries([None] * len(codes), crs=crs),
    )
    units.attrs["source"] = str(path)
    units.attrs["population_given"] = population_field is not None
    return units


__all__ = [
    "UNIT_COLUMNS",
    "check_overlap_with_network",
    "has_geometry",
    "jiedao_key",
    "load_unit_table",
    "load_units",
    "match_units",
]
