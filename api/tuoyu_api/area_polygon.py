"""The study-area polygon (WGS84) used to refuse facility writes outside the area.

Taken from the district outline (``[area] outline``) when the area has one, else from the
union of its 街道 polygons (``[units] path``); ``None`` when it has neither or the data
cannot be read (the write is then checked without it, and a warning is logged).
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import StudyArea
from tuoyu.crs.china import convert, parse_crs_name
from tuoyu.errors import TuoyuError

logger = logging.getLogger(__name__)


def _to_wgs84(layer: gpd.GeoDataFrame, crs_name: str) -> BaseGeometry:
    datum = parse_crs_name(crs_name)
    if not isinstance(datum, str):
        return layer.set_crs(datum, allow_override=True).to_crs(4326).union_all()
    geometry = layer.union_all()
    if datum == "wgs84":
        return geometry

    def to_wgs84(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        lon, lat = convert(xy[:, 0], xy[:, 1], datum, "wgs84")
        return np.column_stack([lon, lat])

    return shapely.transform(geometry, to_wgs84)


def study_area_polygon(area: StudyArea, settings: Settings) -> BaseGeometry | None:
    """The area's outline (or union of its units) in WGS84, or ``None``.

    Parameters
    ----------
    area
        The study area.
    settings
        Settings naming the data directory (files are checked against the registry).

    Returns
    -------
    shapely geometry or None
    """
    if area.area.outline is not None:
        relative, crs_name = area.area.outline, area.area.outline_crs
    elif area.units is not None and area.units.path is not None:
        relative, crs_name = area.units.path, area.units.crs
    else:
        return None
    try:
        path = resolve_data_file(relative, settings)
        layer = gpd.read_file(path)
    except (TuoyuError, OSError) as exc:
        logger.warning(
            "no study-area polygon for %s (%s); writes not checked against it", area.slug, exc
        )
        return None
    if layer.empty:
        return None
    layer = layer.set_geometry(layer.geometry.make_valid())
    return _to_wgs84(layer, crs_name)
