"""The library's typed results as JSON (the service owns serialisation).

Unknown values (NaN, ``pd.NA``, infinities) become ``null``; numpy scalars plain numbers;
geometries GeoJSON in WGS84.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyproj import CRS
from shapely.geometry import mapping
from tuoyu import OSM_ATTRIBUTION
from tuoyu.workflow.core import FacilityIsochrone, NearestFacility


def json_ready(value: Any) -> Any:
    """``value`` with numpy/pandas scalars, NaN/NA and dates turned into plain JSON values.

    NaN, infinities, ``pd.NA`` and ``NaT`` become ``None`` (JSON null: unknown).

    Examples
    --------
    >>> json_ready({"a": np.float64("nan"), "b": [np.int64(3), pd.NA], "c": dt.date(2024, 3, 1)})
    {'a': None, 'b': [3, None], 'c': '2024-03-01'}
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, CRS):
        return value.to_string()
    return str(value)


def table_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``table`` as JSON-ready dicts (unknown values ``None``).

    >>> table_records(pd.DataFrame({"a": [1.0, float("nan")]}))
    [{'a': 1.0}, {'a': None}]
    """
    out: list[dict[str, Any]] = json_ready(table.to_dict("records"))
    return out


def nearest_rows(rows: list[NearestFacility]) -> list[dict[str, Any]]:
    """Nearest-facility answers as JSON objects."""
    return [dataclasses.asdict(row) for row in rows]


def isochrone_feature(iso: FacilityIsochrone) -> dict[str, Any]:
    """One facility's isochrone as a GeoJSON Feature (WGS84)."""
    properties = {
        f.name: getattr(iso, f.name) for f in dataclasses.fields(iso) if f.name != "geometry_wgs84"
    }
    return {
        "type": "Feature",
        "id": iso.facility_id,
        "geometry": mapping(iso.geometry_wgs84),
        "properties": properties,
    }


def sites_collection(sites_wgs84: Any, attribution: str = OSM_ATTRIBUTION) -> dict[str, Any]:
    """Recommended sites (a WGS84 GeoDataFrame) as a GeoJSON FeatureCollection."""
    features = [
        {
            "type": "Feature",
            "geometry": mapping(geom),
            "properties": json_ready({k: v for k, v in row.items() if k != "geometry"}),
        }
        for geom, (_, row) in zip(sites_wgs84.geometry, sites_wgs84.iterrows(), strict=True)
    ]
    return {"type": "FeatureCollection", "features": features, "attribution": attribution}
