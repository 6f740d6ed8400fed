"""Basemaps and the datum of their tiles: OpenStreetMap and 天地图 (WGS84), 高德/Amap (GCJ-02).

A basemap's tiles are drawn in one datum. Overlays are embedded in both WGS84 and GCJ-02
(:mod:`tuoyu.outputs.maps.common`) and the page redraws them in the datum of the basemap the
user picks, so they stay aligned with the streets. 天地图 uses CGCS2000, which differs
from WGS84 by centimetres: it is treated as WGS84.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import folium

from tuoyu.errors import InputValidationError
from tuoyu.labels import Language
from tuoyu.outputs.maps.common import OSM_ATTRIBUTION

TileDatum = Literal["wgs84", "gcj02"]

AMAP_URL: Final = (
    "https://webrd0{s}.is.autonavi.com/appmaptile?lang={lang}&size=1&scale=1&style=8"
    "&x={x}&y={y}&z={z}"
)
TIANDITU_URL: Final = (
    "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
    "&TILECOL={x}&tk={key}"
)


@dataclass(frozen=True)
class Basemap:
    """One basemap choice of the layer control.

    Attributes
    ----------
    key
        ``"osm"``, ``"amap"`` or ``"tianditu"``.
    name_zh, name_en
        Name in the layer control.
    url
        Tile URL template (``{s}``, ``{x}``, ``{y}``, ``{z}``).
    attribution
        Attribution HTML of the tiles.
    datum
        Datum the tiles are drawn in; overlays are shown in the same one.
    subdomains
        Values of ``{s}``.
    max_zoom
        Highest zoom level served.
    label_url
        A second tile layer drawn on top (天地图's annotation layer), or ``None``.
    """

    key: str
    name_zh: str
    name_en: str
    url: str
    attribution: str
    datum: TileDatum
    subdomains: str = "abc"
    max_zoom: int = 19
    label_url: str | None = None

    def name(self, language: Language = "zh") -> str:
        """Name shown in the layer control."""
        return self.name_zh if language == "zh" else self.name_en


def basemaps(language: Language = "zh", tianditu_key: str | None = None) -> list[Basemap]:
    """The basemaps offered, OpenStreetMap first; 天地图 only when a key is given.

    Parameters
    ----------
    language
        ``"zh"`` or ``"en"`` (Amap and 天地图 labels follow it).
    tianditu_key
        天地图 browser key (``settings.tianditu_key``); ``None`` leaves 天地图 out.

    Examples
    --------
    >>> [(b.key, b.datum) for b in basemaps()]
    [('osm', 'wgs84'), ('amap', 'gcj02')]
    >>> [b.key for b in basemaps(tianditu_key="abc")]
    ['osm', 'amap', 'tianditu']
    """
    out = [
        Basemap(
            key="osm",
            name_zh="OpenStreetMap",
            name_en="OpenStreetMap",
            url="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
            attribution=OSM_ATTRIBUTION,
            datum="wgs84",
            subdomains="abc",
            max_zoom=19,
        ),
        Basemap(
            key="amap",
            name_zh="高德地图（GCJ-02）",
            name_en="Amap 高德 (GCJ-02)",
            url=AMAP_URL.replace("{lang}", "zh_cn" if language == "zh" else "en"),
            attribution='© <a href="https://www.amap.com/">高德地图 AutoNavi</a>',
            datum="gcj02",
            subdomains="1234",
            max_zoom=18,
        ),
    ]
    if tianditu_key:
        key = str(tianditu_key).strip()
        out.append(
            Basemap(
                key="tianditu",
                name_zh="天地图",
                name_en="Tianditu 天地图",
                url=TIANDITU_URL.replace("{layer}", "vec").replace("{key}", key),
                attribution='© <a href="https://www.tianditu.gov.cn/">天地图</a>',
                datum="wgs84",
                subdomains="01234567",
                max_zoom=18,
                label_url=TIANDITU_URL.replace(
                    "{layer}", "cva" if language == "zh" else "eva"
                ).replace("{key}", key),
            )
        )
    return out


def add_basemaps(
    m: folium.Map,
    language: Language = "zh",
    tianditu_key: str | None = None,
    initial: str = "osm",
) -> tuple[dict[str, str], str]:
    """Add the basemaps to ``m`` as base layers of the layer control.

    Parameters
    ----------
    m
        The map.
    language, tianditu_key
        See :func:`basemaps`.
    initial
        Key of the basemap shown first (``"osm"``, ``"amap"`` or ``"tianditu"``).

    Returns
    -------
    base_datums, initial_datum
        ``{name in the layer control: datum}`` for the page's script, and the datum of
        the basemap shown first.

    Raises
    ------
    InputValidationError
        ``initial`` is not one of the offered basemaps (e.g. 天地图 without a key).
    """
    offered = basemaps(language, tianditu_key)
    keys = [b.key for b in offered]
    if initial not in keys:
        raise InputValidationError(
            f"basemap '{initial}' is not offered (offered: {', '.join(keys)}; "
            "天地图 needs settings.tianditu_key)",
            field="basemap",
        )
    datums: dict[str, str] = {}
    initial_datum = "wgs84"
    for spec in offered:
        show = spec.key == initial
        name = spec.name(language)
        datums[name] = spec.datum
        if show:
            initial_datum = spec.datum
        if spec.label_url is None:
            folium.TileLayer(
                spec.url,
                name=name,
                overlay=False,
                show=show,
                attr=spec.attribution,
                subdomains=spec.subdomains,
                max_zoom=spec.max_zoom,
                max_native_zoom=spec.max_zoom,
            ).add_to(m)
        else:
            # tiles + labels as one base layer: a feature group that is not an overlay
            group = folium.FeatureGroup(name=name, overlay=False, show=show)
            for url in (spec.url, spec.label_url):
                folium.TileLayer(
                    url,
                    control=False,
                    attr=spec.attribution,
                    subdomains=spec.subdomains,
                    max_zoom=spec.max_zoom,
                    max_native_zoom=spec.max_zoom,
                ).add_to(group)
            group.add_to(m)
    return datums, initial_datum
