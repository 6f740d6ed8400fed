"""H3 hexagons as analysis units where no 街道 polygons exist.

Cells come from the ``h3`` 4.x package; their boundaries are projected to the study
area's metric CRS and clipped to the district outline, so the cells tile the outline
without gaps or overlaps (neighbouring cells share their vertices exactly).
"""

from __future__ import annotations

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from tuoyu.crs.projection import WGS84
from tuoyu.errors import CRSError, InputValidationError

H3_COLUMNS: tuple[str, ...] = ("code", "name", "area_m2")
"""Non-geometry columns of :func:`h3_units` (then ``geometry``)."""

MAX_CELLS = 200_000
"""Refuse grids larger than this (a too-fine resolution for the area)."""


def _empty_units(crs: CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": pd.Series([], dtype="object"),
            "name": pd.Series([], dtype="object"),
            "area_m2": pd.Series([], dtype="float64"),
        },
        geometry=gpd.GeoSeries([], crs=crs),
        crs=crs,
    )


def _outline_geometry(
    outline: BaseGeometry | gpd.GeoDataFrame | gpd.GeoSeries, crs: CRS
) -> BaseGeometry:
    if isinstance(outline, gpd.GeoDataFrame | gpd.GeoSeries):
        if outline.crs is None:
            raise CRSError("outline has no CRS; set it before building H3 units")
        if CRS.from_user_input(outline.crs) != crs:
            outline = outline.to_crs(crs)
        return shapely.union_all(np.asarray(outline.geometry.values))
    if not isinstance(outline, BaseGeometry):
        raise InputValidationError(
            f"outline must be a shapely polygon or a GeoDataFrame, got {type(outline).__name__}"
        )
    return outline


def _cell_polygon_lnglat(cell: str) -> Polygon:
    # h3 returns boundaries as (lat, lng); shapely wants (x=lng, y=lat).
    return Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])


def h3_units(
    outline_metric: BaseGeometry | gpd.GeoDataFrame | gpd.GeoSeries,
    resolution: int,
    metric_crs: CRS | str | int,
) -> gpd.GeoDataFrame:
    """H3 cells covering an outline, clipped to it, as analysis units.

    Every cell that overlaps the outline (by a positive area) is kept, so every point
    inside the outline lies in a cell.

    Parameters
    ----------
    outline_metric
        District outline: a shapely (Multi)Polygon in ``metric_crs``, or a
        GeoDataFrame/GeoSeries (reprojected to ``metric_crs`` when needed).
    resolution
        H3 resolution 0–15 (8: cells of ≈ 0.74 km², edge ≈ 530 m; 9: ≈ 0.11 km²).
    metric_crs
        The study area's metric CRS (e.g. its UTM zone).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``code`` (H3 index, str), ``name`` ("H3 r8 <index>"), ``area_m2`` (of
        the clipped cell) and geometry (cell ∩ outline) in ``metric_crs``, sorted by
        ``code``. ``attrs["h3_resolution"]`` holds the resolution and
        ``attrs["cells_clipped"]`` how many cells the outline cuts.

    Raises
    ------
    CRSError
        ``metric_crs`` is not a projected CRS.
    InputValidationError
        Resolution outside 0–15, or the grid would exceed :data:`MAX_CELLS` cells.

    Examples
    --------
    >>> from shapely.geometry import Point
    >>> from tuoyu.crs.projection import utm_crs_for
    >>> crs = utm_crs_for(106.57, 29.56)
    >>> centre = gpd.GeoSeries([Point(106.57, 29.56)], crs=4326).to_crs(crs)[0]
    >>> cells = h3_units(centre.buffer(1000), 8, crs)
    >>> round(float(cells["area_m2"].sum()) / 1e6, 3)  # the disc's area, ≈ π km²
    3.137
    """
    crs = CRS.from_user_input(metric_crs)
    if not crs.is_projected:
        raise CRSError(f"metric_crs must be a projected (metric) CRS, got {crs.name}")
    if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer):
        raise InputValidationError(
            f"H3 resolution must be an integer 0–15, got {resolution!r}", field="h3_resolution"
        )
    if not 0 <= int(resolution) <= 15:
        raise InputValidationError(
            f"H3 resolution must be 0–15, got {resolution}", field="h3_resolution"
        )
    res = int(resolution)
    shape = _outline_geometry(outline_metric, crs)
    if shape.is_empty or shape.area <= 0:
        return _empty_units(crs)
    shape = shapely.make_valid(shape) if not shape.is_valid else shape

    expected = shape.area / h3.average_hexagon_area(res, unit="m^2")
    if expected > MAX_CELLS:
        raise InputValidationError(
            f"H3 resolution {res} gives about {expected:,.0f} cells over this outline "
            f"(limit {MAX_CELLS:,}); choose a coarser resolution",
            field="h3_resolution",
        )

    # Candidates: cells whose centre lies in the outline grown by two average edge
    # lengths, plus their neighbours. A cell overlapping the outline has its centre within
    # one edge length of it, so this is a superset; the exact test is done below on the
    # projected polygons (the same geometry the analysis uses).
    edge_m = h3.average_hexagon_edge_length(res, unit="m")
    grown = gpd.GeoSeries([shape.buffer(2.0 * edge_m)], crs=crs).to_crs(WGS84)
    seeds = set(h3.geo_to_cells(grown.iloc[0], res))
    if not seeds:  # outline smaller than a cell: start from the cell holding its centre
        centre = gpd.GeoSeries([shape.representative_point()], crs=crs).to_crs(WGS84).iloc[0]
        seeds = {h3.latlng_to_cell(centre.y, centre.x, res)}
    candidates = sorted({c for seed in seeds for c in h3.grid_disk(seed, 1)})

    cells = gpd.GeoSeries([_cell_polygon_lnglat(c) for c in candidates], crs=WGS84).to_crs(crs)
    cell_geoms = np.asarray(cells.values)
    shapely.prepare(shape)
    touching = shapely.intersects(shape, cell_geoms)
    clipped = shapely.intersection(cell_geoms[touching], shape)
    area = shapely.area(clipped)
    keep = area > 0
    codes = np.asarray(candidates, dtype=object)[touching][keep]
    clipped = clipped[keep]
    full_area = shapely.area(cell_geoms[touching][keep])
    if len(codes) == 0:
        return _empty_units(crs)
    out = gpd.GeoDataFrame(
        {
            "code": pd.Series(codes, dtype="object"),
            "name": pd.Series([f"H3 r{res} {c}" for c in codes], dtype="object"),
            "area_m2": area[keep],
        },
        geometry=gpd.GeoSeries(clipped, crs=crs),
        crs=crs,
    )
    out.attrs["h3_resolution"] = res
    out.attrs["cells_clipped"] = int((area[keep] < full_area * (1 - 1e-9)).sum())
    return out
