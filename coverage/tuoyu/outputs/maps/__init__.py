"""HTML maps (folium/Leaflet): the public facility map, the committee dashboard, the gap map.

Each ``build_*_map`` returns a :class:`folium.Map`; :func:`save_map` writes it atomically as
one standalone HTML file (Leaflet inlined, overlays in WGS84 and GCJ-02 for the basemaps).
"""

from tuoyu.outputs.maps.basemaps import Basemap, add_basemaps, basemaps
from tuoyu.outputs.maps.common import OSM_ATTRIBUTION, save_map
from tuoyu.outputs.maps.dashboard_map import build_dashboard_map, summary_html
from tuoyu.outputs.maps.facility_map import (
    WALK_LOOKUP_COLUMNS,
    build_facility_map,
    facility_popup,
    walk_lookup_from_reaches,
)
from tuoyu.outputs.maps.gap_map import build_gap_map, hexagon_people, uncovered_points

__all__ = [
    "OSM_ATTRIBUTION",
    "WALK_LOOKUP_COLUMNS",
    "Basemap",
    "add_basemaps",
    "basemaps",
    "build_dashboard_map",
    "build_facility_map",
    "build_gap_map",
    "facility_popup",
    "hexagon_people",
    "save_map",
    "summary_html",
    "uncovered_points",
    "walk_lookup_from_reaches",
]
