"""OSM feature layers: building footprints and candidate sites for new facilities.

Both loaders read the file with pyosmium's area assembler, so closed ways and
multipolygon relations (courtyard buildings with inner rings) become proper polygons.
Results are GeoDataFrames in the metric CRS the caller passes (normally the walking
network's, ``net.crs``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import shapely
from pyproj import CRS

from tuoyu.crs.projection import WGS84
from tuoyu.errors import InputValidationError
from tuoyu.layers.osm_network import as_metric_crs, check_osm_path

__all__ = [
    "BUILDING_COLUMNS",
    "NON_RESIDENTIAL_USE_KEYS",
    "POI_AMENITY_CATEGORIES",
    "POI_BUILDING_CATEGORIES",
    "POI_COLUMNS",
    "POI_OFFICE_CATEGORIES",
    "RESIDENTIAL_BUILDING_VALUES",
    "is_residential",
    "load_osm_buildings",
    "load_osm_pois",
    "parse_levels",
]

BUILDING_COLUMNS: tuple[str, ...] = (
    "osm_id",
    "osm_type",
    "building",
    "levels",
    "footprint_m2",
    "residential",
)
POI_COLUMNS: tuple[str, ...] = ("osm_id", "osm_type", "category", "category_zh", "name")

RESIDENTIAL_BUILDING_VALUES: frozenset[str] = frozenset(
    {
        "residential",
        "apartments",
        "house",
        "detached",
        "semidetached_house",
        "terrace",
        "dormitory",
        "bungalow",
        "farm",
        "cabin",
        "static_caravan",
        "houseboat",
    }
)
"""``building=*`` values that are dwellings (OSM wiki, "Key:building", accommodation)."""

NON_RESIDENTIAL_USE_KEYS: frozenset[str] = frozenset(
    {
        "amenity",
        "shop",
        "office",
        "craft",
        "tourism",
        "leisure",
        "healthcare",
        "man_made",
        "industrial",
        "military",
        "public_transport",
        "railway",
        "aeroway",
        "highway",
        "power",
        "sport",
    }
)
"""Tags that give a ``building=yes`` footprint a non-residential use."""

# Candidate sites for a new 托育 facility: places the guidance names as hosts
# (community service centres, 托幼一体 kindergartens, schools, 街道/社区 offices,
# health institutions for 医育结合, libraries and cultural centres with space for
# parent-child services). Labels are Chinese as users read them.
POI_AMENITY_CATEGORIES: dict[str, str] = {
    "childcare": "托育机构",
    "kindergarten": "幼儿园",
    "school": "学校",
    "community_centre": "社区服务中心",
    "social_centre": "社区活动中心",
    "social_facility": "社会福利设施",
    "townhall": "街道/政府办公",
    "library": "图书馆",
    "arts_centre": "文化馆",
    "clinic": "社区卫生服务中心/诊所",
    "doctors": "诊所",
    "hospital": "医院",
}
"""``amenity=*`` values kept as candidate sites, with Chinese labels."""

POI_OFFICE_CATEGORIES: dict[str, str] = {"government": "政府机关/街道办"}
"""``office=*`` values kept (街道办事处 and 社区居委会 are often tagged so)."""

POI_BUILDING_CATEGORIES: dict[str, str] = {
    "kindergarten": "幼儿园",
    "school": "学校",
    "civic": "公共建筑",
    "government": "政府机关/街道办",
}
"""``building=*`` values kept when the feature has no ``amenity``/``office`` tag."""


def parse_levels(value: str | None) -> float:
    """``building:levels`` as a positive float, NaN when absent or unusable.

    Examples
    --------
    >>> parse_levels("6"), parse_levels(" 2.5 "), parse_levels("3;4")
    (6.0, 2.5, nan)
    >>> parse_levels(None), parse_levels("0"), parse_levels("many")
    (nan, nan, nan)
    """
    if value is None:
        return math.nan
    try:
        levels = float(value.strip())
    except ValueError:
        return math.nan
    return levels if math.isfinite(levels) and levels > 0 else math.nan


def is_residential(tags: dict[str, str]) -> bool:
    """Whether a building footprint counts as residential (where people live).

    Rule: ``building`` is a dwelling value (:data:`RESIDENTIAL_BUILDING_VALUES`), or it is
    the generic ``yes`` and no tag gives the building another use
    (:data:`NON_RESIDENTIAL_USE_KEYS`). Generic ``yes`` counts because most footprints
    in Chinese OSM carry nothing else (1,537 of Yuzhong's 2,041) and the building stock
    of these central districts is mostly housing; leaving them out would put the whole
    population into the few explicitly tagged blocks.

    Examples
    --------
    >>> is_residential({"building": "apartments"}), is_residential({"building": "yes"})
    (True, True)
    >>> is_residential({"building": "yes", "shop": "mall"}), is_residential({"building": "office"})
    (False, False)
    """
    value = tags.get("building")
    if value in RESIDENTIAL_BUILDING_VALUES:
        return True
    return value == "yes" and not any(key in tags for key in NON_RESIDENTIAL_USE_KEYS)


def _areas_and_nodes(
    path: Path, keys: tuple[str, ...], *, nodes: bool
) -> Iterator[tuple[str, int, dict[str, str], bytes]]:
    """Yield ``(osm_type, osm_id, tags, wkb)`` of areas (and nodes) having any of ``keys``.

    Areas come as WKB multipolygons, nodes as WKB points, both in WGS84 lon/lat.
    Broken multipolygons (unclosed rings) are skipped by libosmium's assembler.
    """
    entities = osmium.osm.AREA | osmium.osm.NODE if nodes else osmium.osm.AREA
    processor = (
        osmium.FileProcessor(str(path))
        .with_areas(osmium.filter.KeyFilter(*keys))
        .with_filter(osmium.filter.EntityFilter(entities))
        .with_filter(osmium.filter.KeyFilter(*keys))
    )
    factory = osmium.geom.WKBFactory()
    try:
        for obj in processor:
            tags = {tag.k: tag.v for tag in obj.tags}
            if isinstance(obj, osmium.osm.Area):
                osm_type = "way" if obj.from_way() else "relation"
                try:
                    wkb = bytes.fromhex(factory.create_multipolygon(obj))
                except RuntimeError:  # invalid geometry (e.g. no complete ring)
                    continue
                yield osm_type, int(obj.orig_id()), tags, wkb
            elif isinstance(obj, osmium.osm.Node) and obj.location.valid():
                yield "node", int(obj.id), tags, bytes.fromhex(factory.create_point(obj))
    except RuntimeError as exc:  # libosmium parse errors surface as RuntimeError
        raise InputValidationError(f"cannot read OSM data: {exc}", path=path) from exc


def _single_parts(geoms: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """MultiPolygons of one part become Polygons; true multi-part ones stay."""
    out = geoms.copy()
    single = shapely.get_num_geometries(out) == 1
    out[single] = shapely.get_geometry(out[single], 0)
    return out


def _empty(columns: Iterable[str], crs: CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=crs)


def load_osm_buildings(path: str | Path, crs: CRS | str | int) -> gpd.GeoDataFrame:
    """Building footprints of an OSM file.

    Parameters
    ----------
    path
        An ``.osm.pbf``, ``.osm`` or ``.osm.bz2`` file.
    crs
        Metric CRS of the result (e.g. the walking network's ``net.crs``).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per footprint (closed way or multipolygon relation with a ``building``
        tag; building nodes have no footprint and are not included), columns
        ``osm_id``, ``osm_type`` ("way"/"relation"), ``building`` (tag value),
        ``levels`` (float, NaN without a usable ``building:levels``), ``footprint_m2``,
        ``residential`` (see :func:`is_residential`) and ``geometry`` (Polygon, or
        MultiPolygon for relations with several outer rings). ``attrs`` holds
        ``levels_unparsed``: how many ``building:levels`` values were present but not
        a positive number.

    Raises
    ------
    DataNotFoundError, InputValidationError, CRSError
        Missing or unreadable file; ``crs`` not metric.
    """
    path = check_osm_path(path)
    metric = as_metric_crs(crs)
    rows: list[tuple[int, str, str, float, bool]] = []
    wkbs: list[bytes] = []
    unparsed = 0
    for osm_type, osm_id, tags, wkb in _areas_and_nodes(path, ("building",), nodes=False):
        raw_levels = tags.get("building:levels")
        levels = parse_levels(raw_levels)
        if raw_levels is not None and math.isnan(levels):
            unparsed += 1
        rows.append((osm_id, osm_type, tags["building"], levels, is_residential(tags)))
        wkbs.append(wkb)
    if not rows:
        out = _empty(BUILDING_COLUMNS, metric)
    else:
        frame = pd.DataFrame(
            rows, columns=["osm_id", "osm_type", "building", "levels", "residential"]
        )
        geoms = _single_parts(shapely.from_wkb(np.asarray(wkbs, dtype=object)))
        out = gpd.GeoDataFrame(frame, geometry=geoms, crs=WGS84).to_crs(metric)
        out["footprint_m2"] = out.geometry.area
        out = out[[*BUILDING_COLUMNS, "geometry"]]
    out["osm_id"] = out["osm_id"].astype("int64")
    out["levels"] = out["levels"].astype("float64")
    out["footprint_m2"] = out["footprint_m2"].astype("float64")
    out["residential"] = out["residential"].astype(bool)
    out.attrs["levels_unparsed"] = unparsed
    out.attrs["source"] = str(path)
    return out


def _poi_category(tags: dict[str, str]) -> tuple[str, str] | None:
    amenity = tags.get("amenity")
    if amenity is not None:
        label = POI_AMENITY_CATEGORIES.get(amenity)
        return (amenity, label) if label is not None else None
    office = tags.get("office")
    if office is not None:
        label = POI_OFFICE_CATEGORIES.get(office)
        return (office, label) if label is not None else None
    building = tags.get("building")
    if building is not None and building in POI_BUILDING_CATEGORIES:
        return building, POI_BUILDING_CATEGORIES[building]
    return None


def load_osm_pois(path: str | Path, crs: CRS | str | int) -> gpd.GeoDataFrame:
    """Candidate sites for new facilities: community, education, civic and health places.

    A feature is kept when its ``amenity`` is in :data:`POI_AMENITY_CATEGORIES`, else its
    ``office`` in :data:`POI_OFFICE_CATEGORIES`, else (no amenity/office tag) its
    ``building`` in :data:`POI_BUILDING_CATEGORIES`. Nodes become points; closed ways and
    multipolygons become the centroid of their polygon, taken in the metric CRS.

    Parameters
    ----------
    path
        An ``.osm.pbf``, ``.osm`` or ``.osm.bz2`` file.
    crs
        Metric CRS of the result (e.g. the walking network's ``net.crs``).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``osm_id``, ``osm_type`` ("node"/"way"/"relation"), ``category`` (the
        tag value, e.g. ``kindergarten``), ``category_zh`` (Chinese label), ``name``
        (``name``, else ``name:zh``, else None) and point ``geometry``.

    Raises
    ------
    DataNotFoundError, InputValidationError, CRSError
        Missing or unreadable file; ``crs`` not metric.
    """
    path = check_osm_path(path)
    metric = as_metric_crs(crs)
    rows: list[tuple[int, str, str, str, str | None]] = []
    wkbs: list[bytes] = []
    for osm_type, osm_id, tags, wkb in _areas_and_nodes(
        path, ("amenity", "office", "building"), nodes=True
    ):
        category = _poi_category(tags)
        if category is None:
            continue
        name = tags.get("name") or tags.get("name:zh")
        rows.append((osm_id, osm_type, category[0], category[1], name))
        wkbs.append(wkb)
    if not rows:
        out = _empty(POI_COLUMNS, metric)
        out["osm_id"] = out["osm_id"].astype("int64")
        return out
    frame = pd.DataFrame(rows, columns=list(POI_COLUMNS))
    geoms = shapely.from_wkb(np.asarray(wkbs, dtype=object))
    gdf = gpd.GeoDataFrame(frame, geometry=geoms, crs=WGS84).to_crs(metric)
    # Centroids in the metric CRS (never in degrees); points stay as they are.
    gdf["geometry"] = gdf.geometry.centroid
    gdf["osm_id"] = gdf["osm_id"].astype("int64")
    gdf.attrs["source"] = str(path)
    return gdf
