"""The three maps of a study area from its model's results (one builder for every caller).

``tuoyu run`` writes them as files (the facility map with its walking-time lookup, inside
the page when small, else in spatial chunks beside it: ``facilities.layers/walk-<k>.js``),
the service serves them with its nearest-facility URL; both call :func:`build_area_map`.
"""

from __future__ import annotations

from typing import Literal

import folium
import geopandas as gpd

from tuoyu.errors import NotFoundError
from tuoyu.indicators.targets import Profile
from tuoyu.layers.units import has_geometry
from tuoyu.outputs.maps import build_dashboard_map, build_facility_map, build_gap_map
from tuoyu.outputs.maps.facility_map import walk_lookup_arrays
from tuoyu.types import LocalReach
from tuoyu.workflow.facility_records import facilities_frame
from tuoyu.workflow.layers import AreaLayers
from tuoyu.workflow.steps import IndicatorResults, ReachResults, population_with_walk

Language = Literal["zh", "en"]


def build_area_map(
    name: str,
    layers: AreaLayers,
    profile: Profile | None,
    results: IndicatorResults | None,
    reach: ReachResults | None,
    isochrones: gpd.GeoDataFrame | None,
    facility_reaches: list[LocalReach] | None,
    *,
    nearest_url: str | None = None,
    isochrone_url: str | None = None,
    language: str = "zh",
    attribution: str | None = None,
    sites: gpd.GeoDataFrame | None = None,
    site_isochrones: gpd.GeoDataFrame | None = None,
) -> folium.Map:
    """One map (``facilities``, ``dashboard`` or ``gaps``) of a study area.

    Parameters
    ----------
    name
        Which map.
    layers
        The layers with the facility set shown.
    profile
        The target profile (dashboard; the other maps do not need it).
    results
        The indicator results (dashboard and gaps; ``None`` for the facility map).
    reach
        The walking reach (gap map).
    isochrones
        Isochrones of the facilities (facility map).
    facility_reaches
        Local reaches of the facilities, for the page's own "walk from here" lookup
        when there is no ``nearest_url`` (read by the page in chunks around the point
        asked; see :mod:`tuoyu.outputs.maps.facility_map`).
    nearest_url
        The service's nearest-facility URL template (see :func:`build_facility_map`).
    isochrone_url
        The service's isochrone URL template (placeholders ``{id}``, ``{minutes}``): the
        page fetches a facility's isochrones when it is clicked instead of carrying them.
    language
        ``zh`` or ``en``.
    attribution
        Extra credit line.
    sites, site_isochrones
        Recommended sites to show on the gap map.

    Raises
    ------
    NotFoundError
        An unknown map, or a map whose layers the area lacks.
    """
    area = layers.area
    walk = area.walk
    key = layers.settings.tianditu_key
    credit = _credits(layers, attribution)
    if name == "facilities":
        facilities = layers.facilities
        if facilities is None:
            facilities = facilities_frame([], layers.metric_crs)
        lookup = None
        if nearest_url is None and facility_reaches is not None and layers.network is not None:
            lookup = walk_lookup_arrays(
                layers.network,
                facility_reaches,
                facilities["id"].astype(str).tolist(),
                walk.speed_kmh,
                walk.max_minutes,
            )
        return build_facility_map(
            facilities,
            isochrones if isochrone_url is None else None,
            lookup,
            language=language,
            tianditu_key=key,
            nearest_url=nearest_url,
            isochrone_url=isochrone_url,
            isochrone_minutes=walk.minutes,
            area_name=area.area.name,
            speed_kmh=walk.speed_kmh,
            walk_minutes=walk.max_minutes,
            max_snap_m=walk.max_snap_m,
            attribution=credit,
        )
    if results is None:
        raise NotFoundError(f"map '{name}' needs the indicator results")
    if name == "dashboard":
        if layers.units is None or not has_geometry(layers.units):
            raise NotFoundError(f"area '{area.slug}' has no 街道 polygons for a dashboard")
        units = gpd.GeoDataFrame(
            results.table.reset_index(drop=True),
            geometry=layers.units.geometry.reset_index(drop=True),
            crs=layers.units.crs,
        )
        return build_dashboard_map(
            units,
            profile,
            dict(results.summary),
            area_name=area.area.name,
            language=language,
            tianditu_key=key,
            attribution=credit,
        )
    if name == "gaps":
        population = population_with_walk(layers, reach)
        return build_gap_map(
            population if reach is not None else None,
            results.gaps,
            sites,
            site_isochrones,
            facilities=layers.facilities,
            units=layers.units,
            threshold_m=walk.metres_for(walk.max_minutes),
            area_name=area.area.name,
            language=language,
            tianditu_key=key,
            attribution=credit,
        )
    raise NotFoundError(f"unknown map '{name}' (maps: facilities, dashboard, gaps)")


def _credits(layers: AreaLayers, attribution: str | None) -> str | None:
    """The network's credit (a non-OSM road layer names its origin) plus ``attribution``."""
    parts = []
    network = layers.network
    if network is not None and network.metadata.get("attribution"):
        parts.append(str(network.metadata["attribution"]))
    if attribution:
        parts.append(attribution)
    return "; ".join(parts) if parts else None
