"""Shared pieces of the HTML maps: display geometry in two datums, labels, the page shell.

Overlays travel in WGS84 (for OpenStreetMap and 天地图 tiles). Only small layers (at most
:data:`GCJ02_EMBED_MAX_COORDS` coordinates) also carry a GCJ-02 copy (for 高德/Amap
tiles) converted here with :func:`tuoyu.crs.china.convert`; for every other layer the
page's script (``static/tuoyu_maps.js``) converts once in the browser with the same
formula, so no big layer is stored twice. The page redraws the overlays in the datum of
the basemap chosen in the layer control. Geometry is simplified for display only (in
metres, before reprojecting; the exports are not) and coordinates are rounded to 6
decimals (≈ 0.1 m), or to 5 (≈ 1 m) in the compact layers below.

Big per-feature data travels in *chunks* of JSON (:class:`DataChunks`) read by the page
on demand: files beside the page written by :func:`save_map`, or JSON elements inside the
page when it is rendered without :func:`save_map` (the service). A facility map's
isochrones are read when a facility is clicked (``<page>.isochrones/<k>.js``); the big
thematic layers of the gap map (:func:`chunked_layer`: compact, spatially grouped
chunks) when the layer is switched on, chunk by chunk as they come on screen
(``<page>.layers/<key>-<k>.js``).
A facility map's "walk from here" lookup goes the same way, in spatial chunks read
around the point asked (``<page>.layers/walk-<k>.js``).

Leaflet, Leaflet.markercluster and the project's script and style are inlined into each
page (``static/``), so a saved map opens offline and needs no CDN.
"""

from __future__ import annotations

import html
import json
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final, cast

import folium
import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from branca.element import Element, Figure, MacroElement
from folium.template import Template
from pyproj import CRS, Transformer

from tuoyu.crs.china import convert
from tuoyu.crs.projection import estimate_metric_crs
from tuoyu.errors import CRSError, InputValidationError
from tuoyu.labels import Language
from tuoyu.outputs.atomic import write_text_atomic

STATIC_DIR: Final = Path(__file__).parent / "static"
LEAFLET_VERSION: Final = "1.9.4"
MARKERCLUSTER_VERSION: Final = "1.5.3"
COORD_DECIMALS: Final = 6
DEFAULT_SIMPLIFY_M: Final = 5.0
MAX_MAP_BYTES: Final = 10 * 1024 * 1024
"""Size a map file should stay under (issue 5: 10 MB for Dongcheng)."""
GCJ02_EMBED_MAX_COORDS: Final = 20_000
"""A layer with at most this many coordinates embeds a GCJ-02 copy (≈ 0.45 MB of GeoJSON
text); bigger layers carry WGS84 only and the page converts them once for Amap."""
LAYER_COORD_DECIMALS: Final = 5
"""Decimals of the compact chunked layers (gap zones, hexagons, population points):
1e-5° ≈ 1.1 m, so rounding moves a vertex by at most ≈ 0.6 m — well inside the 5 m
display simplification of the zones, and far below what the data can place (people are
estimated per grid cell or building; hexagons are 200 m aggregation cells)."""
LAYER_CHUNK_FEATURES: Final = 1_000
"""Features per chunk of a chunked layer (spatially grouped, so a zoomed-in view reads few)."""
INLINE_LAYER_MAX_BYTES: Final = 1_000_000
"""A chunked layer whose data is at most this many bytes stays inside a saved page (one
file to pass on); a bigger one is written beside it by :func:`save_map`."""

OSM_ATTRIBUTION: Final = (
    '© <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
)
"""Shown on every map: our maps draw OpenStreetMap-derived data (ODbL)."""
OSM_ATTRIBUTION_TEXT: Final = "© OpenStreetMap contributors"

UI: Final[dict[str, tuple[str, str]]] = {
    "facility_map": ("备案托育机构电子地图", "Registered childcare facilities"),
    "dashboard_map": ("15分钟托育服务圈：街道达标情况", "15-minute childcare circle by 街道"),
    "gap_map": ("15分钟托育服务圈：缺口与建议选址", "15-minute circle: gaps and proposed sites"),
    "facilities": ("托育机构", "Childcare facilities"),
    "isochrones": ("步行等时圈（点击机构显示）", "Walking isochrones (click a facility)"),
    "iso_legend": ("步行等时圈", "Walking isochrones"),
    "min": ("分钟", "min"),
    "filter": ("筛选", "Filter"),
    "puhui": ("普惠", "普惠 (subsidised)"),
    "puhui_badge": ("普惠", "普惠"),
    "all": ("全部", "All"),
    "puhui_only": ("仅普惠", "普惠 only"),
    "non_puhui": ("非普惠", "Not 普惠"),
    "walk_here": ("从这里步行15分钟可达的机构", "Facilities within a 15-minute walk"),
    "walk_hint": (
        "点击地图或输入坐标查询",
        "Click the map or type a point",
    ),
    "lonlat_placeholder": ("经度,纬度", "lon,lat"),
    "search": ("查询", "Search"),
    "datum_note": (
        "点击位置按底图坐标系（{datum}）读取；输入的坐标按左侧所选坐标系读取（默认GCJ-02，即高德/腾讯坐标）",
        "Clicks are read in the basemap's system ({datum}); typed points in the system "
        "chosen beside the box (GCJ-02 by default, as Amap and Tencent show)",
    ),
    "typed_datum": ("输入坐标的坐标系", "System of the typed point"),
    "datum_gcj02": ("高德/腾讯", "Amap/Tencent"),
    "datum_wgs84": ("GPS", "GPS"),
    "datum_bd09": ("百度", "Baidu"),
    "bad_lonlat": (
        "请输入“经度,纬度”，例如 116.40,39.91",
        'Type "lon,lat", for example 116.40,39.91',
    ),
    "no_walk_data": (
        "无步行网络数据，无法查询步行时间",
        "No walking network: walking times are not available",
    ),
    "too_far": (
        "该点距步行网络超过 {m} 米",
        "This point is more than {m} m from the walking network",
    ),
    "none_within": ("15分钟步行范围内没有机构", "No facility within a 15-minute walk"),
    "walk_note": (
        "步行时间含从该点到最近路网节点的直线距离",
        "Times include the straight leg to the nearest network node",
    ),
    "api_failed": ("查询服务失败", "The search service failed"),
    "walk_load_failed": ("无法读取步行数据", "Cannot read the walking data"),
    "unknown": ("不详", "unknown"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "assumed": ("假定", "assumed"),
    "unnamed": ("未命名机构", "Unnamed facility"),
    "units": ("街道", "街道 (subdistricts)"),
    "pass": ("达标", "meets target"),
    "fail": ("未达标", "fails target"),
    "no_target": ("无数值目标", "no numeric target"),
    "uncovered": ("15分钟步行范围外人口", "People outside the 15-minute walk"),
    "gaps": ("缺口区域", "Gap areas"),
    "sites": ("建议新增机构选址", "Proposed new sites"),
    "site_isochrones": ("新址步行等时圈", "Isochrones of proposed sites"),
    "existing": ("现有机构", "Existing facilities"),
    "people": ("人", "people"),
    "source": ("依据", "Source"),
    "summary": ("全区情况", "District summary"),
    "speed": ("步行速度 {v} 公里/小时", "Walking speed {v} km/h"),
}
"""Labels of the map's own user interface: key → (Chinese, English)."""


def check_language(language: str) -> Language:
    """Return ``language`` if it is ``"zh"`` or ``"en"``, else raise.

    Raises
    ------
    InputValidationError
        For any other value.
    """
    if language not in ("zh", "en"):
        raise InputValidationError(
            f"language must be 'zh' or 'en', got {language!r}", field="language"
        )
    return "zh" if language == "zh" else "en"


def ui(key: str, language: Language = "zh") -> str:
    """One label of :data:`UI` in ``language``.

    Examples
    --------
    >>> ui("facilities", "en")
    'Childcare facilities'
    """
    zh, en = UI[key]
    return zh if language == "zh" else en


def colon(language: Language) -> str:
    """``"："`` in Chinese text, ``": "`` in English."""
    return "：" if language == "zh" else ": "


def ui_strings(language: Language) -> dict[str, str]:
    """All :data:`UI` labels in one language (for the page's script)."""
    return {key: ui(key, language) for key in UI}


# --- values for people ------------------------------------------------------------------


def is_missing(value: object) -> bool:
    """True for ``None``, ``pd.NA``, ``NaN`` and ``NaT``."""
    if value is None:
        return True
    try:
        return bool(pd.isna(cast(Any, value)))
    except (TypeError, ValueError):
        return False


def esc(value: object) -> str:
    """HTML-escape ``str(value)``."""
    return html.escape(str(value), quote=True)


def fmt_number(value: object, language: Language, digits: int = 0, suffix: str = "") -> str:
    """A number for people (thousands separators); ``不详``/``unknown`` when missing.

    Examples
    --------
    >>> fmt_number(12345.678, "zh", 1, "%")
    '12,345.7%'
    >>> fmt_number(None, "en")
    'unknown'
    """
    if is_missing(value):
        return ui("unknown", language)
    number = float(value)  # type: ignore[arg-type]
    if math.isinf(number):
        return "∞"
    return f"{number:,.{digits}f}{suffix}"


def fmt_bool(value: object, language: Language) -> str:
    """是/否/不详 (yes/no/unknown)."""
    if is_missing(value):
        return ui("unknown", language)
    return ui("yes", language) if bool(value) else ui("no", language)


def table_html(rows: Sequence[tuple[str, str]], title: str | None = None, cls: str = "") -> str:
    """A two-column HTML table of already-escaped ``(label, value)`` cells."""
    head = f"<b>{title}</b>" if title else ""
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<div class="{cls}">{head}<table>{body}</table></div>'


# --- geometry for display ---------------------------------------------------------------


def require_crs(gdf: gpd.GeoDataFrame, what: str) -> None:
    """Raise :class:`CRSError` when a layer has no CRS."""
    if gdf.crs is None:
        raise CRSError(f"{what} has no CRS; set it (e.g. gdf.set_crs('EPSG:32650'))")


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise :class:`InputValidationError` naming the first missing column."""
    for column in columns:
        if column not in frame.columns:
            raise InputValidationError(
                f"{what} lacks column '{column}' (has: {', '.join(map(str, frame.columns))})",
                field=column,
            )


def _round(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(np.round(coords, COORD_DECIMALS), dtype=np.float64)


def _to_gcj(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    lon, lat = convert(coords[:, 0], coords[:, 1], "wgs84", "gcj02")
    return _round(np.column_stack([lon, lat]))


def display_tolerance(layer: gpd.GeoDataFrame, simplify_m: float) -> float:
    """``simplify_m``, capped by the layer's own ``attrs["display_tolerance_m"]``.

    Walk-field isochrones (:mod:`tuoyu.isochrones.walk_field`) stay inside the area the
    search answers for only when simplified by no more than that.

    Examples
    --------
    >>> layer = gpd.GeoDataFrame(geometry=[])
    >>> display_tolerance(layer, 5.0)
    5.0
    >>> layer.attrs["display_tolerance_m"] = 3.0
    >>> display_tolerance(layer, 5.0)
    3.0
    """
    cap = layer.attrs.get("display_tolerance_m")
    return float(simplify_m) if cap is None else min(float(simplify_m), float(cap))


def display_geometries(
    gdf: gpd.GeoDataFrame, simplify_m: float = DEFAULT_SIMPLIFY_M, decimals: int = COORD_DECIMALS
) -> Any:
    """Geometries simplified in metres for display, in WGS84, rounded to ``decimals``.

    Parameters
    ----------
    gdf
        Any layer with a CRS (metric or geographic).
    simplify_m
        Douglas–Peucker tolerance in metres; 0 keeps every vertex.
    decimals
        Decimals of the WGS84 coordinates (6 ≈ 0.1 m).

    Returns
    -------
    numpy.ndarray
        Shapely geometries (object array) in WGS84 lon/lat, one per row.
    """
    require_crs(gdf, "layer")
    if simplify_m < 0:
        raise InputValidationError("simplify_m must be ≥ 0", field="simplify_m")
    geoms = gdf.geometry
    if len(gdf) == 0:
        return np.empty(0, dtype=object)
    if simplify_m > 0:
        metric = geoms if gdf.crs.is_projected else geoms.to_crs(estimate_metric_crs(gdf))
        # Plain Douglas–Peucker: ~6× faster than the topology-preserving variant on
        # edge-buffer isochrones; a rare self-touching ring only matters for display.
        simple = shapely.simplify(np.asarray(metric.values), simplify_m, preserve_topology=False)
        geoms = gpd.GeoSeries(simple, crs=metric.crs)
    digits = int(decimals)

    def rounded(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if digits == COORD_DECIMALS:
            return _round(coords)
        return np.asarray(np.round(coords, digits), dtype=np.float64)

    arr = np.asarray(geoms.values, dtype=object)
    if bool(shapely.has_z(arr).any()):  # as geopandas transforms them, z and all
        return shapely.transform(np.asarray(geoms.to_crs(4326).values), rounded)
    # transformed and rounded in one pass (the numbers of to_crs(4326), then rounded)
    to_wgs84 = to_wgs84_fn(geoms.crs)
    return shapely.transform(arr, lambda c: rounded(to_wgs84(c)))


def gcj02_geometries(wgs_geoms: Any) -> Any:
    """WGS84 geometries → GCJ-02 (vectorised over all coordinates), rounded to 6 decimals."""
    arr = np.asarray(wgs_geoms, dtype=object)
    if arr.size == 0:
        return arr
    return shapely.transform(arr, _to_gcj)


def geojson_geometries(geoms: Any) -> list[dict[str, Any] | None]:
    """Shapely geometries → GeoJSON geometry dicts (``None`` for missing or empty)."""
    arr = np.asarray(geoms, dtype=object)
    if arr.size == 0:
        return []
    texts = shapely.to_geojson(arr)
    missing = shapely.is_missing(arr) | shapely.is_empty(arr)
    return [None if skip else json.loads(text) for text, skip in zip(texts, missing, strict=True)]


def dual_geojson(
    gdf: gpd.GeoDataFrame,
    simplify_m: float = DEFAULT_SIMPLIFY_M,
    gcj02_max_coords: int = GCJ02_EMBED_MAX_COORDS,
) -> tuple[list[dict[str, Any] | None], list[dict[str, Any] | None] | None]:
    """GeoJSON geometries of a layer in WGS84, and in GCJ-02 when the layer is small.

    The GCJ-02 copy is made only when the simplified layer has at most
    ``gcj02_max_coords`` coordinates; otherwise it is ``None`` and the page converts
    the WGS84 geometries itself (``tuoyu_maps.js``, same formula, once per layer).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame(geometry=[shapely.Point(116.397, 39.909)], crs=4326)
    >>> wgs, gcj = dual_geojson(g)
    >>> wgs[0]["coordinates"], gcj[0]["coordinates"]
    ([116.397, 39.909], [116.403244, 39.910403])
    >>> dual_geojson(g, gcj02_max_coords=0)[1] is None
    True
    """
    wgs = display_geometries(gdf, simplify_m)
    n_coords = int(shapely.get_num_coordinates(np.asarray(wgs, dtype=object)).sum())
    if n_coords > gcj02_max_coords:
        return geojson_geometries(wgs), None
    return geojson_geometries(wgs), geojson_geometries(gcj02_geometries(wgs))


# --- integer text, vectorised ------------------------------------------------------------

ENCODE_BLOCK_COORDS: Final = 1 << 19
"""Coordinates encoded at a time by :func:`encode_geometries` (bounds its temporary
arrays to a few tens of MB at any layer size)."""


_POWERS_OF_TEN: Final = np.array([10**k for k in range(1, 20)], dtype=np.uint64)
"""10 … 10¹⁹: an integer's digits are one more than the number of these it reaches."""
_UINT32_MAX: Final = 2**32 - 1
_POWERS_OF_TEN_32: Final = np.array([10**k for k in range(1, 10)], dtype=np.uint32)
"""10 … 10⁹, for magnitudes that fit in 32 bits (:func:`_render_batch` divides those faster)."""


RENDER_BATCH: Final = 1 << 18
"""Integers :func:`render_ints` writes at a time (its temporary arrays stay small)."""


def token_starts(
    ends: npt.NDArray[np.int64], tokens: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Where tokens start in :func:`render_ints` text, from where every token ends."""
    return np.where(tokens > 0, ends[np.maximum(tokens - 1, 0)], 0)


def render_ints(
    values: npt.NDArray[np.int64],
    prefix: npt.NDArray[np.integer[Any]],
    suffix: npt.NDArray[np.integer[Any]],
    literals: Sequence[str],
) -> tuple[str, npt.NDArray[np.int64]]:
    """ASCII text of integer tokens, each between a literal prefix and suffix.

    Token ``i`` is written as ``literals[prefix[i]]``, ``values[i]`` in decimal (as
    ``str(int)`` writes it) and ``literals[suffix[i]]``, one after the other. The text
    is built with array operations, :data:`RENDER_BATCH` tokens at a time, not with a
    Python loop over the tokens.

    Parameters
    ----------
    values
        The integers.
    prefix, suffix
        Index into ``literals`` of each token's prefix and suffix.
    literals
        ASCII strings; ``literals[0]`` must be ``""`` and ``literals[1]`` one character
        (the common separator: it is written in one pass, the others token by kind).

    Returns
    -------
    tuple
        The text, and where each token (with its prefix and suffix) ends in it (token
        ``i`` starts where token ``i - 1`` ends, the first at 0).

    Examples
    --------
    >>> text, ends = render_ints(
    ...     np.array([12, -3, 0]), np.array([2, 1, 0]), np.array([0, 0, 3]), ["", "-", "[", "],"]
    ... )
    >>> text, text[ends[0] : ends[1]]
    ('[12--30],', '--3')
    """
    v = np.asarray(values, dtype=np.int64).ravel()
    pre_all = np.asarray(prefix).ravel()
    suf_all = np.asarray(suffix).ravel()
    lit = [s.encode("ascii") for s in literals]
    if lit[0] != b"" or len(lit) < 2 or len(lit[1]) != 1:
        raise ValueError("literals[0] must be empty and literals[1] one character")
    lit_len = np.array([len(b) for b in lit], dtype=np.int64)
    pieces: list[str] = []
    all_ends = np.empty(v.shape[0], dtype=np.int64)
    offset = 0
    for start in range(0, v.shape[0], RENDER_BATCH):
        stop = min(start + RENDER_BATCH, v.shape[0])
        text, ends = _render_batch(
            v[start:stop], pre_all[start:stop], suf_all[start:stop], lit, lit_len
        )
        pieces.append(text.decode("ascii"))
        all_ends[start:stop] = ends + offset
        offset += len(text)
    return "".join(pieces), all_ends


def _render_batch(
    v: npt.NDArray[np.int64],
    pre: npt.NDArray[np.integer[Any]],
    suf: npt.NDArray[np.integer[Any]],
    lit: list[bytes],
    lit_len: npt.NDArray[np.int64],
) -> tuple[bytes, npt.NDArray[np.int64]]:
    """One batch of :func:`render_ints`: its bytes and each token's end in them."""
    neg = v < 0
    magnitude: npt.NDArray[np.unsignedinteger[Any]]
    magnitude = np.abs(v).astype(np.uint64)  # |int64 min| wraps to itself: right as uint64
    powers: npt.NDArray[np.unsignedinteger[Any]] = _POWERS_OF_TEN
    if magnitude.size and int(magnitude.max()) <= _UINT32_MAX:
        # the usual case: numpy divides uint32 some 15× faster than uint64 (no libdivide
        # path for 64-bit unsigned division), and the digits are the same
        magnitude = magnitude.astype(np.uint32)
        powers = _POWERS_OF_TEN_32
    pre_len = lit_len[pre]
    suf_len = lit_len[suf]
    width = np.searchsorted(powers, magnitude, side="right")
    width += 1 + neg
    width += pre_len
    width += suf_len
    ends = np.cumsum(width)
    starts = ends - width
    del width
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    out[starts[pre == 1]] = lit[1][0]  # the common separator, in one pass
    for ids, rare, at_all, is_suffix in (
        (pre, np.flatnonzero(pre > 1), starts, False),
        (suf, np.flatnonzero(suf), ends, True),
    ):
        kinds = ids[rare]
        for k in np.unique(kinds).tolist():
            chars = np.frombuffer(lit[k], dtype=np.uint8)
            at = at_all[rare[kinds == k]] - (len(chars) if is_suffix else 0)
            out[at[:, None] + np.arange(len(chars))] = chars
    out[starts[neg] + pre_len[neg]] = ord("-")
    at = ends - suf_len - 1  # each number's last digit, then leftwards while digits remain
    rest = magnitude
    ten = magnitude.dtype.type(10)
    while at.size:
        rest, digit = np.divmod(rest, ten)
        out[at] = digit.astype(np.uint8) + np.uint8(ord("0"))
        more = rest > 0
        at, rest = at[more] - 1, rest[more]
    return out.tobytes(), ends


def join_ints(values: Any) -> str:
    """``",".join(map(str, values))`` for integers, vectorised.

    Examples
    --------
    >>> join_ints(np.array([3, -14, 0]))
    '3,-14,0'
    >>> join_ints([])
    ''
    """
    v = np.asarray(values, dtype=np.int64).ravel()
    prefix = np.ones(v.shape[0], dtype=np.int8)
    prefix[:1] = 0
    return render_ints(v, prefix, np.zeros(v.shape[0], dtype=np.int8), ("", ","))[0]


# --- compact chunked layers -------------------------------------------------------------

_MULTI_TYPES: Final = (4, 5, 6, 7)  # MultiPoint, MultiLineString, MultiPolygon, collection


def _explode(geoms: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """Single-part geometries and the index of the row each came from."""
    parts, index = shapely.get_parts(geoms, return_index=True)
    while parts.size and np.isin(shapely.get_type_id(parts), _MULTI_TYPES).any():
        more, sub = shapely.get_parts(parts, return_index=True)
        parts, index = more, index[sub]
    return parts, np.asarray(index, dtype=np.int64)


CoordsFn = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]
"""Maps an ``(n, 2)`` array of coordinates to another (e.g. metres → WGS84 degrees)."""

_POLYGON_LITERALS: Final = ("", ",", ",[", ",[[", "[[[", "]", "]]", "]]]")
"""Around the numbers of polygon text (:func:`render_ints`): before one, nothing, ``,``
(the next number of a ring), ``,[`` (the next ring), ``,[[`` (the next polygon) or
``[[[`` (a row's first number); after one, nothing or, as a ring, polygon and row end,
``]``, ``]]``, ``]]]``."""


def _polygons_plain(arr: npt.NDArray[Any], scale: float) -> list[str | None]:
    """Compact polygon text of each geometry with one string operation per ring.

    What :func:`encode_geometries` writes, for the rare rows its vectorised form does not
    take (a polygon part without rings, a ring of fewer than two coordinates).
    """
    out: list[str | None] = [None] * arr.size
    usable = np.flatnonzero(~(shapely.is_missing(arr) | shapely.is_empty(arr)))
    parts, part_row = _explode(arr[usable])
    polygonal = shapely.get_type_id(parts) == 3
    parts, part_row = parts[polygonal], usable[part_row[polygonal]]
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    ints = np.rint(coords * scale).astype(np.int64)
    counts = np.bincount(coord_ring, minlength=len(rings))
    part_rings: list[list[str]] = [[] for _ in range(len(parts))]
    start = 0
    origin = np.zeros(2, dtype=np.int64)  # the previous ring's first vertex in the row
    row_of_ring = part_row[ring_part].tolist()
    for r, p in enumerate(ring_part.tolist()):
        if r == 0 or row_of_ring[r] != row_of_ring[r - 1]:
            origin = np.zeros(2, dtype=np.int64)
        ring = ints[start : start + counts[r]]
        start += counts[r]
        steps = ring.copy()
        steps[1:] -= ring[:-1]
        if ring.shape[0] > 1:  # a ring that writes no vertex leaves the origin as it is
            steps[0] -= origin
            origin = ring[0]
        flat = steps[:-1].ravel().tolist()  # the closing vertex repeats the first
        part_rings[p].append("[" + ",".join(map(str, flat)) + "]")
    row_parts: dict[int, list[str]] = {}
    for p, row in enumerate(part_row.tolist()):
        row_parts.setdefault(row, []).append("[" + ",".join(part_rings[p]) + "]")
    for row, texts in row_parts.items():
        out[row] = "[" + ",".join(texts) + "]"
    return out


def _nan_box(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``[west, south, east, north]`` of ``(n, 2)`` coordinates, ignoring NaN (NaN if none).

    ``np.nanmin`` / ``np.nanmax`` (which reduce with ``fmin`` / ``fmax``) column by
    column: a reduction along one column is about ten times faster than along axis 0.
    """
    if coords.shape[0] == 0:
        return np.full(4, np.nan)
    x, y = coords[:, 0], coords[:, 1]
    return np.array(
        [np.fmin.reduce(x), np.fmin.reduce(y), np.fmax.reduce(x), np.fmax.reduce(y)],
        dtype=np.float64,
    )


_WKB_UINT32: Final = np.dtype("<u4")


def _ring_sizes(
    parts: npt.NDArray[Any],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Coordinates of each ring of polygons, and the polygon each ring belongs to.

    What ``get_num_coordinates(get_rings(parts, return_index=True))`` gives (rings in
    order: each polygon's exterior, then its holes), without building a geometry per
    ring: a polygon without holes is one ring of all its coordinates; the ring sizes of
    the others are read from their WKB (``<nrings>``, then ``<npoints>`` before each
    ring's ``16 × npoints`` bytes), ring ``k`` of every such polygon at once. Walk-field
    isochrones have hundreds of thousands of small holes, for which building ring
    geometries took longer than encoding them.
    """
    n_parts = parts.shape[0]
    holes = np.asarray(shapely.get_num_interior_rings(parts), dtype=np.int64)
    n_coords = np.asarray(shapely.get_num_coordinates(parts), dtype=np.int64)
    n_rings = np.where(n_coords > 0, holes + 1, 0)
    ring_part = np.repeat(np.arange(n_parts, dtype=np.int64), n_rings)
    counts = np.repeat(n_coords, n_rings)  # right for the polygons without holes
    holed = np.flatnonzero(holes > 0)
    if holed.size == 0:
        return counts, ring_part
    wkb = shapely.to_wkb(parts[holed], byte_order=1, output_dimension=2, include_srid=False)
    sizes = np.fromiter(map(len, wkb), dtype=np.int64, count=holed.size)
    buf = np.frombuffer(b"".join(wkb.tolist()), dtype=np.uint8)
    del wkb
    four = np.arange(4, dtype=np.int64)
    # little-endian byte order (1), type (4 bytes), number of rings (4 bytes), rings
    pos = np.cumsum(sizes) - sizes + 9
    first_ring = (np.cumsum(n_rings) - n_rings)[holed]
    active = np.arange(holed.size, dtype=np.int64)
    k = 0
    while active.size:
        at = pos[active]
        n = buf[at[:, None] + four].view(_WKB_UINT32)[:, 0].astype(np.int64)
        counts[first_ring[active] + k] = n
        pos[active] = at + 4 + 16 * n
        k += 1
        active = active[n_rings[holed[active]] > k]
    return counts, ring_part


def _merge_box(
    box: npt.NDArray[np.float64] | None, more: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    if box is None:
        return more
    return np.concatenate([np.fmin(box[:2], more[:2]), np.fmax(box[2:], more[2:])])


def _compose(raw_fn: CoordsFn | None, round_fn: CoordsFn | None) -> CoordsFn:
    """``round_fn(raw_fn(c))``, each optional."""

    def both(c: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        c = raw_fn(c) if raw_fn is not None else c
        return round_fn(c) if round_fn is not None else c

    return both


def _exterior_boxes(
    coords: npt.NDArray[np.float64],
    counts: npt.NDArray[np.int64],
    ring_part: npt.NDArray[np.int64],
    ring_row: npt.NDArray[np.int64],
    row_boxes: npt.NDArray[np.float64],
) -> None:
    """Set ``row_boxes[r]`` to the box of row ``r``'s polygon exteriors.

    ``coords`` are the rings' coordinates one after the other (``counts`` each; ring
    ``k`` of polygon part ``ring_part[k]`` of row ``ring_row[k]``, rows ascending). This
    is ``shapely.bounds`` of a polygonal row: GEOS takes a polygon's envelope from its
    exterior ring.
    """
    n_rings = counts.shape[0]
    if n_rings == 0:
        return
    exterior = np.ones(n_rings, dtype=bool)
    exterior[1:] = ring_part[1:] != ring_part[:-1]
    exterior &= counts > 0
    ring_start = np.cumsum(counts) - counts
    ext = np.flatnonzero(exterior)
    if ext.size == 0:
        return
    rows = ring_row[ext]
    first = np.ones(ext.size, dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    row_first = np.flatnonzero(first)
    # each exterior's coordinates, one after the other, and where each row's start
    take = np.repeat(ring_start[ext] - (np.cumsum(counts[ext]) - counts[ext]), counts[ext])
    take += np.arange(take.shape[0], dtype=np.int64)
    starts = (np.cumsum(counts[ext]) - counts[ext])[row_first]
    for k, (reduce, col) in enumerate(((np.fmin, 0), (np.fmin, 1), (np.fmax, 0), (np.fmax, 1))):
        values = coords[take, col]
        row_boxes[rows[row_first], k] = reduce.reduceat(values, starts)


def _encode_polygon_block(
    arr: npt.NDArray[Any],
    scale: float,
    raw_fn: CoordsFn | None,
    round_fn: CoordsFn | None,
    out: list[str | None],
    offset: int,
    row_boxes: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64] | None:
    """Polygon text of one block of rows into ``out[offset:]``.

    The coordinates written are ``round_fn(raw_fn(c))`` (each optional) in units of
    ``1/scale``; returns the box of ``raw_fn(c)`` over every coordinate of the block
    when ``raw_fn`` is given. With ``row_boxes``, ``row_boxes[offset + i]`` is set to
    ``shapely.bounds`` of row ``i`` with its coordinates so mapped.
    """
    usable = np.flatnonzero(~(shapely.is_missing(arr) | shapely.is_empty(arr)))
    parts, part_row = _explode(arr[usable])
    part_row = usable[part_row]
    polygonal = shapely.get_type_id(parts) == 3
    box: npt.NDArray[np.float64] | None = None
    raw: npt.NDArray[np.float64] | None = None
    if raw_fn is not None:
        raw = raw_fn(shapely.get_coordinates(arr[usable]))
        box = _nan_box(raw)
    part_row_all = part_row
    parts, part_row = parts[polygonal], part_row[polygonal]
    counts, ring_part = _ring_sizes(parts)
    if raw is not None and bool(polygonal.all()):
        coords = raw  # the rows' coordinates are their rings', in the same order
    else:
        coords = shapely.get_coordinates(parts)  # the parts' rings, in order
        if raw_fn is not None:
            coords = raw_fn(coords)
    del raw
    if round_fn is not None:
        coords = round_fn(coords)
    ring_row = part_row[ring_part]
    odd = np.zeros(arr.size, dtype=bool)
    odd[part_row[np.bincount(ring_part, minlength=len(parts)) == 0]] = True
    odd[ring_row[counts < 2]] = True
    if row_boxes is not None:
        _exterior_boxes(coords, counts, ring_part, ring_row, row_boxes[offset:])
        # rows whose box is not their polygons' exteriors': as shapely gives it
        other = odd.copy()
        other[part_row_all[~polygonal]] = True  # a part that is not a polygon
        rows = np.flatnonzero(other)
        if rows.size:
            mapped = arr[rows]
            if raw_fn is not None or round_fn is not None:
                mapped = shapely.transform(mapped, _compose(raw_fn, round_fn))
            row_boxes[offset + rows] = shapely.bounds(mapped)
    ints = np.rint(coords * scale).astype(np.int64)
    del coords
    if odd.any():
        keep_ring = ~odd[ring_row]
        ints = ints[np.repeat(keep_ring, counts)]
        counts, ring_part, ring_row = counts[keep_ring], ring_part[keep_ring], ring_row[keep_ring]
        plain = arr[odd]
        if raw_fn is not None or round_fn is not None:
            plain = shapely.transform(plain, _compose(raw_fn, round_fn))
        for row, text in zip(
            np.flatnonzero(odd).tolist(), _polygons_plain(plain, scale), strict=True
        ):
            out[offset + row] = text
    n_rings = counts.shape[0]
    if n_rings == 0:
        return box
    ends = np.cumsum(counts)
    starts = ends - counts
    new_part = np.ones(n_rings, dtype=bool)
    new_part[1:] = ring_part[1:] != ring_part[:-1]
    new_row = np.ones(n_rings, dtype=bool)
    new_row[1:] = ring_row[1:] != ring_row[:-1]
    steps = ints.copy()
    steps[1:] -= ints[:-1]
    # a ring opens on the step from the previous ring's first vertex, a row's first
    # ring on its first vertex itself (every ring here has at least two coordinates)
    ring_first = ints[starts]
    steps[starts] = ring_first
    steps[starts[1:]] -= np.where(new_row[1:, None], 0, ring_first[:-1])
    del ints, ring_first
    keep = np.ones(steps.shape[0], dtype=bool)
    keep[ends - 1] = False  # the closing vertex repeats the first
    flat = steps[keep].ravel()
    del steps, keep
    # two numbers per vertex written; each ring opens (and a polygon, a row) on its first
    tok_end = np.cumsum(2 * (counts - 1))
    tok_start = tok_end - 2 * (counts - 1)
    end_part = np.ones(n_rings, dtype=bool)
    end_part[:-1] = new_part[1:]
    end_row = np.ones(n_rings, dtype=bool)
    end_row[:-1] = new_row[1:]
    prefix = np.ones(flat.shape[0], dtype=np.int8)
    prefix[tok_start] = np.where(new_row, 4, 2 + new_part)
    suffix = np.zeros(flat.shape[0], dtype=np.int8)
    suffix[tok_end - 1] = 5 + end_part.astype(np.int64) + end_row
    text, char_end = render_ints(flat, prefix, suffix, _POLYGON_LITERALS)
    first = token_starts(char_end, tok_start[new_row]).tolist()
    last = char_end[tok_end[end_row] - 1].tolist()
    for row, a, b in zip(ring_row[new_row].tolist(), first, last, strict=True):
        out[offset + row] = text[a:b]
    return box


def _row_blocks(arr: npt.NDArray[Any], max_coords: int) -> list[slice]:
    """Consecutive rows in blocks of at most ``max_coords`` coordinates (≥ 1 row each)."""
    n_coords = np.cumsum(shapely.get_num_coordinates(arr))
    blocks: list[slice] = []
    start = 0
    while start < arr.size:
        base = int(n_coords[start - 1]) if start else 0
        stop = max(int(np.searchsorted(n_coords, base + max_coords, "right")), start + 1)
        blocks.append(slice(start, stop))
        start = stop
    return blocks


def _encode(
    geoms: Any,
    kind: str,
    decimals: int,
    raw_fn: CoordsFn | None = None,
    round_fn: CoordsFn | None = None,
    row_boxes: npt.NDArray[np.float64] | None = None,
) -> tuple[list[str | None], npt.NDArray[np.float64] | None]:
    """:func:`encode_geometries` of the geometries with their coordinates mapped.

    The text is of ``round_fn(raw_fn(c))``; the box (``[west, south, east, north]``,
    NaN when there are no coordinates) of ``raw_fn(c)`` when ``raw_fn`` is given.
    ``row_boxes`` (shape ``(n, 4)``, NaN), when given, receives ``shapely.bounds`` of
    each row with its coordinates so mapped.
    """
    arr = np.asarray(geoms, dtype=object).ravel()
    out: list[str | None] = [None] * arr.size
    box: npt.NDArray[np.float64] | None = None
    if arr.size == 0:
        return out, (np.full(4, np.nan) if raw_fn is not None else None)
    scale = 10.0**decimals
    if kind == "point":
        usable = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
        pts = arr[usable]
        if pts.size and not (shapely.get_type_id(pts) == 0).all():
            raise InputValidationError("a point layer holds non-point geometries")
        coords = shapely.get_coordinates(pts)
        if raw_fn is not None:
            coords = raw_fn(coords)
            box = _nan_box(coords)
        if round_fn is not None:
            coords = round_fn(coords)
        if row_boxes is not None:
            row_boxes[np.flatnonzero(usable)] = np.hstack([coords, coords])
        xy = np.rint(coords * scale).astype(np.int64).ravel()
        n = xy.shape[0] // 2
        prefix = np.tile(np.array([2, 1], dtype=np.int8), n)  # "[x" ",y"
        suffix = np.tile(np.array([0, 3], dtype=np.int8), n)  # "]"
        text, ends = render_ints(xy, prefix, suffix, ("", ",", "[", "]"))
        first = token_starts(ends, np.arange(0, 2 * n, 2)).tolist()
        last = ends[1::2].tolist()
        for row, a, b in zip(np.flatnonzero(usable).tolist(), first, last, strict=True):
            out[row] = text[a:b]
        return out, box
    if kind != "polygon":
        raise InputValidationError(f"kind must be 'polygon' or 'point', got {kind!r}")
    for block in _row_blocks(arr, ENCODE_BLOCK_COORDS):
        more = _encode_polygon_block(
            arr[block], scale, raw_fn, round_fn, out, block.start, row_boxes
        )
        if more is not None:
            box = _merge_box(box, more)
    return out, box


def encode_geometries(
    geoms: Any, kind: str = "polygon", decimals: int = LAYER_COORD_DECIMALS
) -> list[str | None]:
    """Compact JSON text of WGS84 geometries, one per row (``None`` when nothing is left).

    ``kind="polygon"``: a list of polygons, each a list of rings, each ring a flat list
    of integers ``dx0, dy0, dx1, dy1, …`` in units of 10^-``decimals`` degrees: every
    vertex is the step from the one before it in the ring (the closing vertex, which
    repeats the first, left out), and a ring's first vertex is the step from the first
    vertex of the row's previous ring (holes and further polygons), the row's first ring
    starting from ``0, 0`` (absolute). Holes and the parts of a multipolygon lie near
    each other, so their starts are short steps, not full coordinates (walk-field
    isochrones have dozens of holes each). Non-polygonal parts are dropped.
    ``kind="point"``: ``[x, y]`` in the same units. ``tuoyu_maps.js``
    (``decodeGeometry``) turns them back into GeoJSON. The text is built with array
    operations (:func:`render_ints`), :data:`ENCODE_BLOCK_COORDS` coordinates at a time.

    Examples
    --------
    >>> import shapely
    >>> encode_geometries([shapely.box(116.0, 39.0, 116.00002, 39.00001)])
    ['[[[11600002,3900000,0,1,-2,0,0,-1]]]']

    A hole starts 3 units east and 3 north of the exterior's first vertex:

    >>> holed = shapely.Polygon(
    ...     [(116.0, 39.0), (116.0001, 39.0), (116.0001, 39.0001), (116.0, 39.0001)],
    ...     [[(116.00003, 39.00003), (116.00003, 39.00005), (116.00005, 39.00003)]],
    ... )
    >>> encode_geometries([holed])
    ['[[[11600000,3900000,10,0,0,10,-10,0],[3,3,0,2,2,-2]]]']
    >>> encode_geometries([shapely.Point(116.397, 39.909), None], kind="point")
    ['[11639700,3990900]', None]
    """
    return _encode(geoms, kind, decimals)[0]


def encode_layer(
    layer: gpd.GeoDataFrame,
    simplify_m: float = DEFAULT_SIMPLIFY_M,
    decimals: int = COORD_DECIMALS,
    kind: str = "polygon",
) -> tuple[list[str | None], npt.NDArray[np.float64]]:
    """A layer's compact text for display, and its WGS84 box.

    The text is ``encode_geometries(display_geometries(layer, simplify_m, decimals),
    kind, decimals)``; the box is :func:`wgs84_box` of the layer as given. Without
    simplification both come from one pass over the coordinates, transformed to WGS84
    once, and no transformed geometry is built.

    Parameters
    ----------
    layer
        Any layer with a CRS.
    simplify_m
        Display simplification (:func:`display_geometries`).
    decimals
        Decimals of the WGS84 coordinates and of the text.
    kind
        ``"polygon"`` or ``"point"`` (:func:`encode_geometries`).

    Returns
    -------
    tuple
        The text of each row (``None`` when nothing is drawn) and
        ``[west, south, east, north]`` (NaN when the layer has no coordinates).
    """
    require_crs(layer, "layer")
    if simplify_m < 0:
        raise InputValidationError("simplify_m must be ≥ 0", field="simplify_m")
    arr = np.asarray(layer.geometry.values, dtype=object)
    if simplify_m > 0 or (arr.size and bool(shapely.has_z(arr).any())):
        texts = encode_geometries(display_geometries(layer, simplify_m, decimals), kind, decimals)
        return texts, wgs84_box(layer)
    digits = int(decimals)

    def rounded(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return _round(coords) if digits == COORD_DECIMALS else np.round(coords, digits)

    texts, box = _encode(arr, kind, digits, to_wgs84_fn(layer.crs), rounded)
    return texts, box if box is not None else np.full(4, np.nan)


@dataclass(frozen=True, eq=False)
class EncodedGeometries:
    """A layer's display geometry as compact text (:func:`encode_display`).

    Attributes
    ----------
    texts
        :func:`encode_geometries` text of each row (``None`` when nothing is drawn).
    boxes
        ``shapely.bounds`` of each row's display geometry (WGS84, rounded), shape
        ``(n, 4)``; NaN for a missing or empty row.
    """

    texts: list[str | None]
    boxes: npt.NDArray[np.float64]


def encode_display(
    layer: gpd.GeoDataFrame,
    simplify_m: float = DEFAULT_SIMPLIFY_M,
    decimals: int = LAYER_COORD_DECIMALS,
    kind: str = "polygon",
) -> EncodedGeometries:
    """``encode_geometries(display_geometries(layer, simplify_m, decimals), kind, decimals)``
    and the bounds of those display geometries, without building them.

    The simplified geometries' coordinates go to WGS84 and are rounded on their way
    into the text (:func:`encode_layer` does the same for an unsimplified layer); the
    same numbers as through :func:`display_geometries`, for what :func:`chunked_layer`
    needs of a layer.
    """
    require_crs(layer, "layer")
    if simplify_m < 0:
        raise InputValidationError("simplify_m must be ≥ 0", field="simplify_m")
    arr = np.asarray(layer.geometry.values, dtype=object)
    if arr.size and bool(shapely.has_z(arr).any()):
        geoms = np.asarray(display_geometries(layer, simplify_m, decimals), dtype=object)
        return EncodedGeometries(encode_geometries(geoms, kind, decimals), shapely.bounds(geoms))
    crs = layer.crs
    if simplify_m > 0 and arr.size:
        metric = (
            layer.geometry
            if crs.is_projected
            else layer.geometry.to_crs(estimate_metric_crs(layer))
        )
        crs = metric.crs
        arr = shapely.simplify(np.asarray(metric.values), simplify_m, preserve_topology=False)
    digits = int(decimals)

    def rounded(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return _round(coords) if digits == COORD_DECIMALS else np.round(coords, digits)

    boxes = np.full((arr.size, 4), np.nan)
    texts, _ = _encode(arr, kind, digits, to_wgs84_fn(crs), rounded, boxes)
    return EncodedGeometries(texts, boxes)


def _spatial_groups(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], size: int
) -> list[npt.NDArray[np.int64]]:
    """Row groups of at most ``size`` by recursive median splits along the longer side.

    A split puts the lower half of the rows along that side before the upper half,
    rows of equal value in the order of a stable sort (of the parent's order, so the
    sides its ancestors were split along, then the row number, break ties). The halves
    are found by selection; a group is sorted only where equal values straddle its
    split.
    """
    groups: list[npt.NDArray[np.int64]] = []
    # rows, and whether an ancestor split along x / along y
    stack: list[tuple[npt.NDArray[np.int64], bool, bool]] = [
        (np.arange(x.shape[0], dtype=np.int64), False, False)
    ]
    coslat = math.cos(math.radians(float(np.mean(y)))) if y.size else 1.0
    while stack:
        idx, x_split, y_split = stack.pop()
        if idx.shape[0] <= size:
            groups.append(np.sort(idx))
            continue
        xs, ys = x[idx], y[idx]
        wide = (xs.max() - xs.min()) * coslat >= ys.max() - ys.min()
        key, other, other_split = (xs, ys, y_split) if wide else (ys, xs, x_split)
        half = idx.shape[0] // 2
        part = np.argpartition(key, half)
        pivot = key[part[half]]
        if key[part[:half]].max() < pivot:
            order = idx[part]
        elif np.isfinite(key).all():
            # equal values across the split: they go in the stable sort's order (the
            # earlier splits' order: along the other side if split so, then by row)
            below, tied = key < pivot, key == pivot
            ties = np.flatnonzero(tied)
            ties = ties[np.lexsort((idx[ties], other[ties]) if other_split else (idx[ties],))]
            order = np.concatenate([idx[below], idx[ties], idx[~below & ~tied]])
        else:  # NaN: the stable sort itself
            order = idx[np.lexsort((idx, other, key) if other_split else (idx, key))]
        stack += [(order[half:], x_split or wide, y_split or not wide)]
        stack += [(order[:half], x_split or wide, y_split or not wide)]
    return groups


def _json_value(value: Any) -> Any:
    if value is None or is_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _values_json(rows: list[list[Any]]) -> str:
    """Compact JSON of tooltip value rows; NaN, infinities and missing values as ``null``.

    Rows of plain JSON values (the usual case) are written as they are; only when that
    fails (a NaN, a numpy or pandas value) is every value cleaned first.
    """
    options: dict[str, Any] = {"ensure_ascii": False, "separators": (",", ":")}
    try:
        return json.dumps(rows, allow_nan=False, **options)
    except (TypeError, ValueError):
        clean = [[_json_value(v) for v in row] for row in rows]
        return json.dumps(clean, allow_nan=False, **options)


def json_numbers(values: npt.NDArray[np.float64], digits: int) -> list[str]:
    """JSON text of each value rounded to ``digits``, as ``json.dumps`` writes it.

    An integer when ``digits`` is 0, else a float (``float.__repr__``); ``null`` when
    not finite: the JSON of the values a tooltip column holds.

    Examples
    --------
    >>> json_numbers(np.array([1234.56, np.nan, -0.04]), 1)
    ['1234.6', 'null', '-0.0']
    >>> json_numbers(np.array([2.5, 3.5, np.inf]), 0)
    ['2', '4', 'null']
    """
    rounded = np.round(np.asarray(values, dtype=float), int(digits))
    finite = np.isfinite(rounded)
    kept = rounded[finite]
    texts = (
        list(map(str, kept.astype(np.int64).tolist()))
        if digits == 0
        else list(map(float.__repr__, kept.tolist()))
    )
    if bool(finite.all()):
        return texts
    out = ["null"] * rounded.shape[0]
    for i, text in zip(np.flatnonzero(finite).tolist(), texts, strict=True):
        out[i] = text
    return out


_JSON_ESCAPED: Final = re.compile(r'[\x00-\x1f\\"]')


def json_strings(values: Sequence[str]) -> list[str]:
    """JSON text of each string, as ``json.dumps(value, ensure_ascii=False)`` writes it.

    Examples
    --------
    >>> json_strings(["12", 'a"b'])
    ['"12"', '"a\\\\"b"']
    """
    if _JSON_ESCAPED.search("".join(values)) is None:
        return ['"' + v + '"' for v in values]
    return [json.dumps(v, ensure_ascii=False) for v in values]


def json_rows(columns: Sequence[Sequence[str]]) -> list[str]:
    """Each row's JSON array from the JSON text of its values, column by column.

    Examples
    --------
    >>> json_rows([["1", "2"], ["null", "3.5"]])
    ['[1,null]', '[2,3.5]']
    """
    if not columns:
        return []
    template = "[" + ",".join(["{}"] * len(columns)) + "]"
    return list(map(template.format, *columns))


def chunked_layer(
    key: str,
    container: Any,
    geoms: Any,
    *,
    styles: Sequence[Mapping[str, Any]],
    classes: Sequence[int] | npt.NDArray[np.int64],
    columns: Sequence[Mapping[str, Any]] = (),
    values: Sequence[Sequence[Any]] | None = None,
    kind: str = "polygon",
    interactive: bool = True,
    decimals: int = LAYER_COORD_DECIMALS,
    chunk_features: int = LAYER_CHUNK_FEATURES,
    inline_max_bytes: int = INLINE_LAYER_MAX_BYTES,
    value_texts: Sequence[str] | None = None,
) -> tuple[dict[str, Any], DataChunks]:
    """A big thematic layer in compact, spatially grouped chunks the page reads on demand.

    Parameters
    ----------
    key
        Name of the layer in the page (``tuoyu.last.layers[key]``); letters, digits, ``_``.
    container
        The folium group the layer is drawn into.
    geoms
        Display geometries in WGS84 (:func:`display_geometries`), one per feature, or
        their :class:`EncodedGeometries` (:func:`encode_display`, same text, faster).
    styles
        Leaflet path styles; feature ``i`` is drawn with ``styles[classes[i]]``.
    classes
        Style class of each feature.
    columns
        Tooltip rows: ``{"label": text, "digits": n}`` for numbers (thousands separators,
        ``n`` decimals; unknown when ``None``) or ``{"label": text}`` for text, with
        ``"texts": [...]`` when the values index that list, and ``"skipEmpty": True`` to
        leave the row out when the value is empty.
    values
        One row of column values per feature (JSON-ready; NaN becomes unknown).
    value_texts
        Instead of ``values``: each feature's row as JSON text (e.g. from
        :func:`json_rows`).
    kind
        ``"polygon"`` or ``"point"`` (:func:`encode_geometries`).
    interactive
        Tooltips on hover.
    decimals, chunk_features
        Coordinate decimals and features per chunk.
    inline_max_bytes
        Data up to this size stays in a saved page; bigger goes beside it.

    Returns
    -------
    tuple
        The layer's entry for the page configuration (``geojson`` list) and its
        :class:`DataChunks` (pass them to :func:`finish_map`). Each chunk is
        ``{"i": rows, "g": geometries, "c": classes, "v": values}``; the entry lists
        every chunk's WGS84 box ``[west, south, east, north]`` so the page reads only the
        chunks on screen.
    """
    if not key.replace("_", "").isalnum():
        raise InputValidationError(f"layer key must be letters, digits or _, got {key!r}")
    if int(chunk_features) < 1:
        raise InputValidationError("chunk_features must be ≥ 1", field="chunk_features")
    if isinstance(geoms, EncodedGeometries):
        texts, all_boxes = geoms.texts, geoms.boxes
        n_rows = len(texts)
    else:
        arr = np.asarray(geoms, dtype=object).ravel()
        texts, all_boxes, n_rows = encode_geometries(arr, kind, decimals), None, arr.size
    cls = np.asarray(classes, dtype=np.int64)
    rows: list[list[Any]] | None = None
    if value_texts is not None:
        n_values = len(value_texts)
    else:
        rows = [list(r) for r in values] if values is not None else [[] for _ in range(n_rows)]
        n_values = len(rows)
    if cls.shape[0] != n_rows or n_values != n_rows:
        raise InputValidationError(
            f"{n_rows} geometries but {cls.shape[0]} classes and {n_values} value rows"
        )
    if cls.size and (cls.min() < 0 or cls.max() >= len(styles)):
        raise InputValidationError("a style class has no style", field="classes")
    drawn = np.array([t is not None for t in texts], dtype=bool)
    where = np.flatnonzero(drawn)
    if all_boxes is not None:
        box = all_boxes[where]
    else:
        box = shapely.bounds(arr[where]) if where.size else np.empty((0, 4))
    groups = _spatial_groups(
        (box[:, 0] + box[:, 2]) / 2.0, (box[:, 1] + box[:, 3]) / 2.0, int(chunk_features)
    )
    chunk_texts: list[str] = []
    bboxes: list[list[float]] = []
    step = 10.0**-decimals
    for group in groups:
        if group.size == 0:
            continue
        members = where[group]
        b = box[group]
        bboxes.append(
            [
                round(float(b[:, 0].min()) - step, decimals),
                round(float(b[:, 1].min()) - step, decimals),
                round(float(b[:, 2].max()) + step, decimals),
                round(float(b[:, 3].max()) + step, decimals),
            ]
        )
        if value_texts is not None:
            vals = "[" + ",".join([value_texts[i] for i in members.tolist()]) + "]"
        else:
            vals = _values_json([cast(list[list[Any]], rows)[i] for i in members.tolist()])
        chunk_texts.append(
            '{"i":'
            + json.dumps(members.tolist(), separators=(",", ":"))
            + ',"g":['
            + ",".join(cast(str, texts[i]) for i in members.tolist())
            + '],"c":'
            + json.dumps(cls[members].tolist(), separators=(",", ":"))
            + ',"v":'
            + vals
            + "}"
        )
    size = sum(len(t.encode("utf-8")) for t in chunk_texts)
    chunks = DataChunks(
        chunk_texts,
        name=key,
        folder="layers",
        callback="dataChunk",
        inline=size <= inline_max_bytes,
    )
    spec: dict[str, Any] = {
        "key": key,
        "container": container,
        "chunked": {
            "kind": kind,
            "scale": 10**decimals,
            "bboxes": bboxes,
            "features": int(where.size),
        },
        "styles": [dict(st) for st in styles],
        "columns": [dict(c) for c in columns],
        "interactive": bool(interactive),
    }
    return spec, chunks


def _wgs84_lonlat(
    gdf: gpd.GeoDataFrame,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    require_crs(gdf, "point layer")
    geoms = gdf.geometry
    if not (geoms.geom_type == "Point").all():
        geoms = geoms.representative_point()
    wgs = geoms.to_crs(4326)
    lon = np.round(wgs.x.to_numpy(dtype=float), COORD_DECIMALS)
    lat = np.round(wgs.y.to_numpy(dtype=float), COORD_DECIMALS)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise InputValidationError("point layer has empty or non-finite geometries")
    return lon, lat


def wgs84_latlng(gdf: gpd.GeoDataFrame) -> list[list[float]]:
    """``[lat, lon]`` of point rows in WGS84 (Leaflet order), rounded to 6 decimals.

    Non-point geometries use their representative point (inside the shape). The page
    converts them to GCJ-02 itself when the Amap basemap is shown.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> wgs84_latlng(gpd.GeoDataFrame(geometry=[shapely.Point(116.3970004, 39.909)], crs=4326))
    [[39.909, 116.397]]
    """
    require_crs(gdf, "point layer")
    if len(gdf) == 0:
        return []
    lon, lat = _wgs84_lonlat(gdf)
    return cast(list[list[float]], np.column_stack([lat, lon]).tolist())


def dual_latlng(gdf: gpd.GeoDataFrame) -> tuple[list[list[float]], list[list[float]]]:
    """``[lat, lon]`` of point rows in WGS84 and in GCJ-02 (Leaflet order), rounded.

    Non-point geometries use their representative point (inside the shape).
    """
    require_crs(gdf, "point layer")
    if len(gdf) == 0:
        return [], []
    lon, lat = _wgs84_lonlat(gdf)
    glon, glat = convert(lon, lat, "wgs84", "gcj02")
    glon, glat = np.round(glon, COORD_DECIMALS), np.round(glat, COORD_DECIMALS)
    return (
        np.column_stack([lat, lon]).tolist(),
        np.column_stack([glat, glon]).tolist(),
    )


@cache
def _wgs84_transformer(crs: Any) -> Transformer | None:
    """The transformer geopandas' ``to_crs(4326)`` uses; ``None`` when ``crs`` is WGS84."""
    target = CRS.from_user_input(4326)
    if CRS.from_user_input(crs).is_exact_same(target):
        return None
    return Transformer.from_crs(crs, target, always_xy=True)


def to_wgs84_fn(crs: Any) -> CoordsFn:
    """Coordinates in ``crs`` → WGS84 lon/lat, as ``GeoSeries.to_crs(4326)`` computes them."""
    transformer = _wgs84_transformer(crs)
    if transformer is None:
        return lambda coords: coords

    def to_wgs84(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        lon, lat = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return to_wgs84


def wgs84_box(layer: gpd.GeoDataFrame) -> npt.NDArray[np.float64]:
    """``[west, south, east, north]`` of a layer in WGS84 (NaN when it has no coordinates).

    What ``layer.to_crs(4326).total_bounds`` gives, from the coordinates alone (in
    blocks of :data:`ENCODE_BLOCK_COORDS`), without building the transformed geometries.
    """
    require_crs(layer, "layer")
    arr = np.asarray(layer.geometry.values, dtype=object)
    if arr.size and bool(shapely.has_z(arr).any()):
        return np.asarray(layer.to_crs(4326).total_bounds, dtype=np.float64)
    transformer = _wgs84_transformer(layer.crs)
    box = np.full(4, np.nan)
    for block in _row_blocks(arr, ENCODE_BLOCK_COORDS):
        coords = shapely.get_coordinates(arr[block])
        more = _nan_box(coords) if transformer is None else _wgs84_coords_box(coords, transformer)
        box = _merge_box(box, more)
    return box


BOX_EXACT_MAX_COORDS: Final = 4_096
"""Up to this many coordinates, :func:`_wgs84_coords_box` transforms them all."""
_BOX_GRID: Final = 33
"""Samples per side of the grid that measures how far a transformation is from affine."""


def _wgs84_coords_box(
    coords: npt.NDArray[np.float64], transformer: Transformer
) -> npt.NDArray[np.float64]:
    """``_nan_box`` of the transformed coordinates, transforming only those that can be extreme.

    Over a layer's extent a map projection's inverse ``f`` is nearly affine. The affine
    map ``A`` closest to it on a 33 × 33 grid over the coordinates' box is fitted; its
    largest departure ``e`` on that grid bounds ``|f - A|`` in between (for a smooth map
    the departure between grid points exceeds the grid's by about a thousandth). The
    coordinate where ``f`` is least then has ``A ≤ min A + 2e``; the margin taken is
    ``4e`` (plus rounding room), and only coordinates that near an extreme of ``A`` are
    transformed. Each coordinate is transformed alone, so its numbers are those of the
    full transformation and the box is the same. Non-finite coordinates or samples, and
    a map so far from affine that more than a quarter of the coordinates qualify, fall
    back to transforming all.
    """
    n = coords.shape[0]
    x, y = coords[:, 0], coords[:, 1]

    def exact(rows: npt.NDArray[np.int64] | slice) -> npt.NDArray[np.float64]:
        lon, lat = transformer.transform(x[rows], y[rows])
        return _nan_box(np.column_stack([lon, lat]))

    if n <= BOX_EXACT_MAX_COORDS:
        return exact(slice(None))
    low = np.array([np.fmin.reduce(x), np.fmin.reduce(y)])
    high = np.array([np.fmax.reduce(x), np.fmax.reduce(y)])
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        return exact(slice(None))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return exact(slice(None))
    centre = (low + high) / 2.0
    half = np.maximum((high - low) / 2.0, 1e-9)
    steps = np.linspace(-1.0, 1.0, _BOX_GRID)
    gu, gv = (a.ravel() for a in np.meshgrid(steps, steps))
    glon, glat = transformer.transform(centre[0] + half[0] * gu, centre[1] + half[1] * gv)
    sample = np.column_stack([glon, glat])
    if not np.isfinite(sample).all():
        return exact(slice(None))
    design = np.column_stack([np.ones_like(gu), gu, gv])
    fit = np.linalg.lstsq(design, sample, rcond=None)[0]  # (3, 2): lon and lat
    departure = np.abs(design @ fit - sample).max(axis=0)
    u = (x - centre[0]) / half[0]
    v = (y - centre[1]) / half[1]
    scale = np.abs(sample).max(axis=0)
    keep = np.zeros(n, dtype=bool)
    for k in range(2):
        approx = fit[0, k] + fit[1, k] * u + fit[2, k] * v
        margin = 4.0 * departure[k] + 1e-9 * scale[k]
        keep |= approx <= np.fmin.reduce(approx) + margin
        keep |= approx >= np.fmax.reduce(approx) - margin
    rows = np.flatnonzero(keep)
    if rows.shape[0] > n // 4:
        return exact(slice(None))
    return exact(rows)


def bounds_from_boxes(boxes: Sequence[npt.NDArray[np.float64] | None]) -> list[list[float]] | None:
    """``[[south, west], [north, east]]`` around the finite boxes (:func:`wgs84_box`), or ``None``."""
    finite = [b for b in boxes if b is not None and np.isfinite(b).all()]
    if not finite:
        return None
    arr = np.vstack(finite)
    return [
        [round(float(arr[:, 1].min()), COORD_DECIMALS), round(float(arr[:, 0].min()), 6)],
        [round(float(arr[:, 3].max()), COORD_DECIMALS), round(float(arr[:, 2].max()), 6)],
    ]


def wgs84_bounds(*layers: gpd.GeoDataFrame | None) -> list[list[float]] | None:
    """``[[south, west], [north, east]]`` of the non-empty layers, or ``None``.

    Each layer's box is taken over its coordinates transformed to WGS84
    (:func:`wgs84_box`), without transforming its geometries.
    """
    return bounds_from_boxes(
        [wgs84_box(layer) for layer in layers if layer is not None and len(layer) > 0]
    )


# --- the page -----------------------------------------------------------------------------


@cache
def _asset(name: str) -> str:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    # source maps are not shipped; drop the reference so browsers do not ask for them
    return "\n".join(
        line for line in text.splitlines() if not line.startswith("//# sourceMappingURL=")
    )


@cache
def _leaflet_css() -> str:
    import base64

    css = _asset("leaflet.css")
    for image in ("layers.png", "layers-2x.png"):
        data = base64.b64encode((STATIC_DIR / image).read_bytes()).decode("ascii")
        css = css.replace(f"url(images/{image})", f"url(data:image/png;base64,{data})")
    return css


def _script_safe(text: str) -> str:
    return text.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def assets_html(cluster: bool) -> str:
    """Inline ``<style>``/``<script>`` tags of Leaflet, markercluster and the map script."""
    css = [_leaflet_css()]
    js = [_asset("leaflet.js")]
    if cluster:
        css += [_asset("MarkerCluster.css"), _asset("MarkerCluster.Default.css")]
        js.append(_asset("leaflet.markercluster.js"))
    css.append(_asset("tuoyu_maps.css"))
    js.append(_asset("tuoyu_maps.js"))
    styles = "".join(f"<style>{c}</style>\n" for c in css)
    scripts = "".join(f"<script>{_script_safe(j)}</script>\n" for j in js)
    return (
        f"<!-- Leaflet {LEAFLET_VERSION} (BSD-2-Clause)"
        + (f", Leaflet.markercluster {MARKERCLUSTER_VERSION} (MIT)" if cluster else "")
        + " inlined -->\n"
        + styles
        + scripts
    )


def new_map(
    bounds: list[list[float]] | None,
    *,
    cluster: bool = False,
    title: str | None = None,
) -> folium.Map:
    """An empty folium map whose page inlines its scripts (no CDN links).

    Parameters
    ----------
    bounds
        ``[[south, west], [north, east]]`` in WGS84 to centre on (China when ``None``).
    cluster
        Also inline Leaflet.markercluster.
    title
        ``<title>`` of the page.
    """
    if bounds is not None:
        center = [(bounds[0][0] + bounds[1][0]) / 2.0, (bounds[0][1] + bounds[1][1]) / 2.0]
        zoom = 13
    else:
        center, zoom = [35.0, 105.0], 4
    m = folium.Map(location=center, zoom_start=zoom, tiles=None, control_scale=True)
    # instance attributes win over folium's class-level CDN lists: nothing is linked
    m.default_js = []
    m.default_css = []
    root = cast(Figure, m.get_root())
    root.header.add_child(RawHtml(assets_html(cluster)), name="tuoyu_assets")
    if title:
        root.title = esc(title)  # branca writes it into <title> unescaped
    return m


class _Setup(MacroElement):  # type: ignore[misc]
    """Calls ``tuoyu.setup(map, config)`` after every layer of the map exists."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            tuoyu.setup({{ this._parent.get_name() }}, JSON.parse(
                document.getElementById({{ this.data_id|tojson }}).textContent),
                {{ this.data_id|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, data_id: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # folium ships no type hints
        self._name = "TuoyuSetup"
        self.data_id = data_id


def _json_ready(obj: Any) -> Any:
    """Replace NaN/inf and pandas missing values by ``None``, numpy values by Python ones."""
    if isinstance(obj, Mapping):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_json_ready(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return _json_ready(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Element):  # a layer of the map: its JavaScript variable name
        return obj.get_name()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is pd.NA or obj is pd.NaT:
        return None
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def config_json(config: Mapping[str, Any]) -> str:
    """The page configuration as compact JSON, safe inside a ``<script>`` element.

    NaN and infinities become ``null`` (``JSON.parse`` rejects them).
    """
    options: dict[str, Any] = {
        "ensure_ascii": False,
        "separators": (",", ":"),
        "allow_nan": False,
        "default": _json_default,
    }
    try:
        text = json.dumps(config, **options)
    except ValueError:  # a NaN somewhere: clean the whole tree (slower, rare)
        text = json.dumps(_json_ready(config), **options)
    return text.replace("</", "<\\/")


class RawHtml(Element):  # type: ignore[misc]
    """HTML inserted verbatim (branca's ``Element`` would run it through Jinja)."""

    def __init__(self, text: str) -> None:
        super().__init__("")
        self.text = text

    def render(self, **kwargs: Any) -> str:
        """Return the HTML unchanged."""
        return self.text


def _json_script_safe(text: str) -> str:
    """JSON text that cannot close the ``<script>`` element it sits in."""
    return text.replace("</", "<\\/")


class DataChunks(Element):  # type: ignore[misc]
    """Per-feature data of a page in chunks, read by the page's script on demand.

    Rendered as one ``<script type="application/json" id="<prefix>-<k>">`` per chunk,
    unless :func:`save_map` writes the chunks beside the page: then only the name of
    that folder is rendered (``<prefix>-dir``) and the page loads
    ``<folder>/<file>`` (a script calling ``tuoyu.<callback>``), which a page opened
    from disk may do where ``fetch`` of a local file is refused.

    Parameters
    ----------
    chunks
        JSON text of each chunk.
    name
        ``""`` for a facility map's isochrones (prefix ``tuoyu-chunk-<map>``, files
        ``<page>.isochrones/<k>.js``); else the key of a chunked layer (prefix
        ``tuoyu-layer-<map>-<name>``, files ``<page>.<folder>/<name>-<k>.js``).
    folder
        Suffix of the folder beside the page.
    callback
        The page's function each chunk file calls.
    inline
        Keep the chunks inside the page even when it is saved (small data).
    """

    def __init__(
        self,
        chunks: Sequence[str],
        *,
        name: str = "",
        folder: str = "isochrones",
        callback: str = "isoChunk",
        inline: bool = False,
    ) -> None:
        super().__init__("")
        self.chunks = list(chunks)
        self.name = name
        self.folder_suffix = folder
        self.callback = callback
        self.inline = inline
        self.map_name = ""
        self.folder: str | None = None
        self.credit = ""

    @property
    def element_id(self) -> str:
        """Prefix of the ids of the chunk elements."""
        if not self.name:
            return f"tuoyu-chunk-{self.map_name}"
        return f"tuoyu-layer-{self.map_name}-{self.name}"

    def file_name(self, k: int) -> str:
        """Name of chunk ``k``'s file in the folder beside the page."""
        return f"{self.name}-{k}.js" if self.name else f"{k}.js"

    def render(self, **kwargs: Any) -> str:
        """The chunks inline, or the name of the folder they were written to."""
        if self.folder is not None:
            name = _json_script_safe(json.dumps(self.folder, ensure_ascii=False))
            return f'<script type="application/json" id="{self.element_id}-dir">{name}</script>'
        return "\n".join(
            f'<script type="application/json" id="{self.element_id}-{k}">'
            f"{_json_script_safe(text)}</script>"
            for k, text in enumerate(self.chunks)
        )

    def script(self, k: int) -> str:
        """Chunk ``k`` as the script a page loads from the folder beside it.

        It opens with a comment crediting the page's sources (:attr:`credit`, set by
        :func:`finish_map`), so a file passed on alone still says where its data is from.
        """
        head = f"/* {self.credit.replace('*/', '* /')} */\n" if self.credit else ""
        call = f"tuoyu.{self.callback}({json.dumps(self.element_id)}, {k}, {self.chunks[k]});\n"
        return head + call


def finish_map(
    m: folium.Map,
    config: Mapping[str, Any],
    chunks: DataChunks | Sequence[DataChunks] | None = None,
) -> folium.Map:
    """Add the layer control, embed ``config`` and the call that draws the overlays.

    The configuration travels as ``<script type="application/json"
    id="tuoyu-data-<map>">`` in the page body (tests read it back). Layers in it are
    given as folium elements and written as their JavaScript names. ``chunks`` (data
    the page reads on demand, see :class:`DataChunks`) go after it.
    """
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    _Setup("").add_to(m)
    _stable_ids(m)
    data_id = f"tuoyu-data-{m.get_name()}"
    cast(Figure, m.get_root()).html.add_child(
        RawHtml(f'<script type="application/json" id="{data_id}">{config_json(config)}</script>'),
        name=data_id,
    )
    parts = [chunks] if isinstance(chunks, DataChunks) else list(chunks or [])
    credit = "; ".join(
        html.unescape(re.sub(r"<[^>]+>", "", str(a))) for a in config.get("attributions") or []
    )
    for part in parts:
        part.map_name = m.get_name()
        part.credit = f"tuoyu-coverage map data. {credit}" if credit else ""
        cast(Figure, m.get_root()).html.add_child(part, name=part.element_id)
    for child in m._children.values():
        if isinstance(child, _Setup):
            child.data_id = data_id
    return m


def data_chunks(m: folium.Map) -> list[DataChunks]:
    """The :class:`DataChunks` of a page (empty list when it has none)."""
    html_root = cast(Figure, m.get_root()).html
    return [c for c in html_root._children.values() if isinstance(c, DataChunks)]


def _stable_ids(m: folium.Map) -> None:
    """Number the map's elements in tree order, so the same inputs give the same page.

    folium names every JavaScript variable after a random id; the layers in the
    configuration are referenced as elements and named only when it is written.
    """
    counter = 0

    def visit(element: Element) -> None:
        nonlocal counter
        element._id = f"{counter:08x}"
        counter += 1
        for child in element._children.values():
            visit(child)

    visit(m)


def base_config(
    *,
    kind: str,
    language: Language,
    base_datums: Mapping[str, str],
    initial_datum: str,
    bounds: list[list[float]] | None,
    attribution: str | None = None,
    nearest_url: str | None = None,
) -> dict[str, Any]:
    """The configuration keys every map shares (see ``static/tuoyu_maps.js``)."""
    attributions = [OSM_ATTRIBUTION]
    if attribution:
        for part in str(attribution).split(";"):
            part = part.strip()
            if part and OSM_ATTRIBUTION_TEXT not in part:
                attributions.append(esc(part))
    return {
        "kind": kind,
        "language": language,
        "strings": ui_strings(language),
        "baseDatums": dict(base_datums),
        "initialDatum": initial_datum,
        "attributions": attributions,
        "bounds": bounds,
        "nearestUrl": nearest_url,
        "controls": [],
        "geojson": [],
        "markers": [],
    }


def title_control(title: str, subtitle: str | None = None) -> dict[str, str]:
    """A title panel at the top left."""
    sub = f"<br><small>{esc(subtitle)}</small>" if subtitle else ""
    return {"position": "topleft", "cls": "tuoyu-title", "html": f"{esc(title)}{sub}"}


def save_map(m: folium.Map, path: str | Path) -> Path:
    """Render ``m`` to a standalone HTML file, written atomically.

    Parameters
    ----------
    m
        A map from one of the ``build_*_map`` functions (or any folium map).
    path
        Output file (folders are created).

    Returns
    -------
    pathlib.Path
        The written file.

    Warns
    -----
    UserWarning
        When the file exceeds 10 MB (simplify more, or draw fewer population points).

    Notes
    -----
    Data the page reads on demand (:class:`DataChunks`) is written beside it first,
    each file atomically (temporary file, then rename): a facility map's isochrones into
    ``<stem>.isochrones/`` (``0.js``, ``1.js`` …), the big layers of a gap map into
    ``<stem>.layers/`` (``gaps-0.js`` …). Then the page, atomically; then other ``.js``
    files in those folders are removed (and a folder left empty). Copy the folders with
    the page.
    """
    target = Path(path)
    every = data_chunks(m)
    chunked = [c for c in every if c.chunks and not c.inline]
    written: dict[Path, set[str]] = {
        target.parent / f"{target.stem}.{c.folder_suffix}": set() for c in every
    }
    for chunks in chunked:
        folder = target.parent / f"{target.stem}.{chunks.folder_suffix}"
        for k in range(len(chunks.chunks)):
            write_text_atomic(folder / chunks.file_name(k), chunks.script(k))
            written[folder].add(chunks.file_name(k))
        chunks.folder = folder.name
    try:
        text = m.get_root().render()
    finally:
        for chunks in chunked:
            chunks.folder = None
    out = write_text_atomic(target, text)
    # only now that the new page is in place: files no page names any more
    for folder, names in written.items():
        if not folder.is_dir():
            continue
        for stale in folder.glob("*.js"):
            if stale.name not in names:
                stale.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()
    size = out.stat().st_size
    if size > MAX_MAP_BYTES:
        warnings.warn(
            f"{out}: {size / 1e6:.1f} MB, above the 10 MB a map should stay under; "
            "raise simplify_m or use hexagons for population",
            UserWarning,
            stacklevel=2,
        )
    return out
