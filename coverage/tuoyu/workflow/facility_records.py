"""Facility records as they enter an analysis: from the registry (mappings with WGS84
``lon``/``lat``) or from the file loader's GeoDataFrame, and back to that frame.

The field rules themselves (ranges, vocabularies, class sums) are the facility loader's
(:mod:`tuoyu.layers.facilities`); this module only moves records between the two shapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from tuoyu.errors import InputValidationError
from tuoyu.layers.facilities import records_frame
from tuoyu.layers.schema import ASSUMED_COLUMN, FACILITY_FIELDS


def records_from(facilities: Any) -> list[dict[str, Any]]:
    """Facility records from a (Geo)DataFrame with WGS84 lon/lat, or from mappings."""
    if isinstance(facilities, pd.DataFrame):
        frame = facilities.drop(columns="geometry", errors="ignore")
        return [
            {str(k): plain_value(v) for k, v in row.items()} for row in frame.to_dict("records")
        ]
    return [dict(r) for r in facilities]


def plain_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_record(record: Mapping[str, Any]) -> tuple[str, float, float]:
    """The id and WGS84 lon/lat of a record; raises naming the field at fault."""
    fid = record.get("id")
    if fid is None or not str(fid).strip():
        raise InputValidationError("facility record has no id", field="id")
    try:
        lon = float(record["lon"])
        lat = float(record["lat"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputValidationError(
            f"facility '{fid}' needs numeric WGS84 lon/lat", field="lon"
        ) from exc
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise InputValidationError(f"facility '{fid}': lon {lon!r} out of range", field="lon")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise InputValidationError(f"facility '{fid}': lat {lat!r} out of range", field="lat")
    return str(fid), lon, lat


def is_puhui(record: Mapping[str, Any]) -> bool:
    """普惠 membership as the pipeline counts it: unknown is not 普惠."""
    value = plain_value(record.get("puhui"))
    return bool(value) if value is not None else False


def facilities_frame(records: Sequence[Mapping[str, Any]], metric_crs: CRS) -> gpd.GeoDataFrame:
    """Registry records (WGS84 ``lon``/``lat``) as the facility loader's GeoDataFrame.

    Same columns and dtypes as :func:`tuoyu.layers.facilities.load_facilities` returns,
    points in ``metric_crs``; ``service_modes`` lists are joined with ``、`` and
    ``assumed_fields`` lists with commas, as the loader writes them.

    Parameters
    ----------
    records
        Records with the fields of :data:`tuoyu.layers.schema.FACILITY_FIELDS` (missing ones
        are unknown), lon/lat in WGS84.
    metric_crs
        CRS of the output points.

    Returns
    -------
    geopandas.GeoDataFrame
    """
    rows: list[dict[str, Any]] = []
    for record in records:
        row = {name: plain_value(record.get(name)) for name in FACILITY_FIELDS}
        row["crs"] = "wgs84"
        modes = row.get("service_modes")
        if isinstance(modes, list | tuple):
            row["service_modes"] = "、".join(str(m) for m in modes) if modes else None
        assumed = record.get(ASSUMED_COLUMN)
        if isinstance(assumed, list | tuple):
            assumed = ",".join(str(a) for a in assumed)
        row[ASSUMED_COLUMN] = plain_value(assumed) or ""
        rows.append(row)
    return records_frame(rows, metric_crs)
