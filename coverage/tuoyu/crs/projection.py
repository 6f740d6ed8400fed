"""Choosing and applying the local metric CRS (UTM zone estimated from the data).

All metric work (lengths, buffers, areas) happens in this CRS; nothing is measured in
degrees.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import numpy.typing as npt
from pyproj import CRS
from shapely import points

from tuoyu.crs.china import convert, parse_crs_name
from tuoyu.errors import CRSError

WGS84 = CRS.from_epsg(4326)


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone CRS containing ``(lon, lat)``.

    Examples
    --------
    >>> utm_crs_for(106.57, 29.56).to_epsg()  # Chongqing, zone 48N
    32648
    >>> utm_crs_for(116.41, 39.91).to_epsg()  # Beijing, zone 50N
    32650
    """
    if not (-180.0 <= lon <= 180.0 and -80.0 <= lat <= 84.0):
        raise CRSError(f"({lon}, {lat}) is not a longitude/latitude inside UTM coverage")
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def estimate_metric_crs(gdf: gpd.GeoDataFrame) -> CRS:
    """UTM CRS for the centre of a WGS84 (or any geographic) GeoDataFrame."""
    if gdf.crs is None:
        raise CRSError("layer has no CRS; set it (e.g. gdf.set_crs('EPSG:4326'))")
    bounds = gdf.to_crs(WGS84).total_bounds
    return utm_crs_for((bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0)


def lonlat_to_wgs84_gdf(
    lon: npt.ArrayLike, lat: npt.ArrayLike, source_crs: str, **columns: object
) -> gpd.GeoDataFrame:
    """Points from lon/lat in ``wgs84``/``gcj02``/``bd09``/EPSG to a WGS84 GeoDataFrame."""
    parsed = parse_crs_name(source_crs)
    lon_a = np.asarray(lon, dtype=float)
    lat_a = np.asarray(lat, dtype=float)
    if isinstance(parsed, str):
        lon_w, lat_w = convert(lon_a, lat_a, parsed, "wgs84")
        return gpd.GeoDataFrame(columns, geometry=points(lon_w, lat_w), crs=WGS84)
    gdf = gpd.GeoDataFrame(columns, geometry=points(lon_a, lat_a), crs=parsed)
    return gdf.to_crs(WGS84)


def gdf_to_wgs84(gdf: gpd.GeoDataFrame, declared_crs: str) -> gpd.GeoDataFrame:
    """Return ``gdf`` in WGS84, converting GCJ-02/BD-09 coordinates of any geometry type.

    The file's own CRS metadata is overridden by ``declared_crs`` (GeoJSON always
    claims WGS84, whatever the coordinates really are).
    """
    import shapely

    parsed = parse_crs_name(declared_crs)
    out = gdf.copy()
    if isinstance(parsed, str):
        geoms = out.geometry.values
        if parsed != "wgs84":

            def _transform(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
                lon_w, lat_w = convert(coords[:, 0], coords[:, 1], parsed, "wgs84")
                return np.column_stack([lon_w, lat_w])

            geoms = shapely.transform(np.asarray(geoms), _transform)
        return gpd.GeoDataFrame(out.drop(columns=out.geometry.name), geometry=geoms, crs=WGS84)
    return out.set_crs(parsed, allow_override=True).to_crs(WGS84)
