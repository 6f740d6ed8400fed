"""The public facility map (备案机构电子地图, ``facilities.html``).

Every registered facility as a marker coloured by kind with a 普惠 badge (clustered when
there are many), a popup with what parents ask (kind, 普惠, 托位 by class, ages, service
modes, address), filters by kind and 普惠, the facility's 5/10/15-minute isochrones on
click, and "walk from here": click the map or type a point to list the facilities within
a 15-minute walk, ordered by walking time. In a standalone file the walking times come
from a lookup (network nodes → facilities within 15 minutes; the nearest node within
``max_snap_m`` of the point, plus the straight leg to it); when the page is served by
the API (``nearest_url``) they come from its nearest endpoint.

The page opens at any registry size: facility positions are embedded once, in WGS84
(the page converts them to GCJ-02 for the Amap basemap), and the isochrones are not in
the page's configuration. They are read when a facility is clicked: from the service
(``isochrone_url``), else from chunks of :data:`ISO_CHUNK_FACILITIES` facilities, written
beside the page by :func:`~tuoyu.outputs.maps.common.save_map`
(``facilities.isochrones/<k>.js``) or, when the page is rendered otherwise, embedded as
one JSON element per chunk, each parsed on first use.

The lookup travels the same way, in spatial chunks of :data:`WALK_CHUNK_NODES` nodes
with integer coordinates (10⁻⁵°, along a Hilbert curve inside a chunk; see
:func:`_walk_config`): the page carries only each chunk's box and reads the chunks
within ``max_snap_m`` of the point asked. Up to :data:`WALK_INLINE_MAX_BYTES` (1 MB)
they stay inside the saved page; bigger lookups (a city's: about 10 bytes a node) are
written beside it by
:func:`~tuoyu.outputs.maps.common.save_map` (``facilities.layers/walk-<k>.js``), so
the page stays small at any network size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import folium
import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
from folium.plugins import MarkerCluster
from pyproj import Transformer

from tuoyu.errors import InputValidationError
from tuoyu.labels import Language, label
from tuoyu.layers.schema import AGE_CLASSES, FACILITY_KINDS, SERVICE_MODES
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.outputs.maps.basemaps import add_basemaps
from tuoyu.outputs.maps.common import (
    DEFAULT_SIMPLIFY_M,
    INLINE_LAYER_MAX_BYTES,
    DataChunks,
    _spatial_groups,
    base_config,
    bounds_from_boxes,
    check_language,
    display_tolerance,
    encode_layer,
    esc,
    finish_map,
    fmt_bool,
    fmt_number,
    is_missing,
    new_map,
    render_ints,
    require_columns,
    require_crs,
    table_html,
    title_control,
    token_starts,
    ui,
    wgs84_box,
    wgs84_latlng,
)
from tuoyu.types import LocalReach

KIND_COLORS: Final[dict[str, str]] = {
    "托幼一体": "#1f77b4",
    "社区托育点": "#2ca02c",
    "用人单位办托": "#9467bd",
    "社会力量办托": "#ff7f0e",
    "综合托育服务中心": "#d62728",
    "家庭托育点": "#8c564b",
    "照护驿站": "#e377c2",
    "": "#7f7f7f",
}
"""Marker colour per facility kind (``""`` = kind unknown)."""

ISOCHRONE_COLORS: Final[tuple[str, ...]] = ("#08519c", "#3182bd", "#6baed6", "#9ecae1", "#c6dbef")
"""Isochrone colours, shortest walking time first."""

WALK_LOOKUP_COLUMNS: Final = ("lon", "lat", "facilities")
"""Columns of the "walk from here" lookup: WGS84 ``lon``/``lat`` of a sample point and
``facilities``, a list of ``(facility_id, walk_min)`` within the walk limit."""

CLUSTER_OVER: Final = 50
"""Markers are clustered when there are more facilities than this."""

ISO_CHUNK_FACILITIES: Final = 50
"""Facilities per isochrone chunk (a chunk is read, and parsed, when one of them is clicked)."""

ISO_DECIMALS: Final = 6
"""Precision of isochrones in the side files (10⁻⁶° ≈ 0.1 m: the walk-field polygons stay
inside the area the search answers for only up to their own margin, so no coarser)."""

WALK_CHUNK_NODES: Final = 2_000
"""Network nodes per chunk of the "walk from here" lookup: spatial groups (a few km
across in a city, ≈ 30 kB each), so a point asked reads one to four of them."""

WALK_DECIMALS: Final = 5
"""Decimals of a WGS84 degree of the lookup's node positions (10⁻⁵° ≈ 1 m: plenty to find
the nearest street node, whose straight leg the page adds to the walking times)."""

WALK_RENDER_VALUES: Final = 1 << 19
"""Numbers of the walk lookup's chunks written at a time (bounds the memory they take)."""

WALK_INLINE_MAX_BYTES: Final = INLINE_LAYER_MAX_BYTES
"""A walk lookup whose chunks total at most this many bytes (1 MB, about 60,000 nodes)
stays inside a saved page; a bigger one is written beside it
(``<page>.layers/walk-<k>.js``)."""


# --- popups -------------------------------------------------------------------------------


def _text(value: object, language: Language) -> str:
    return ui("unknown", language) if is_missing(value) or str(value) == "" else esc(value)


def _kind_label(kind: object, language: Language) -> str:
    if is_missing(kind) or str(kind) == "":
        return ui("unknown", language)
    if language == "en" and str(kind) in FACILITY_KINDS:
        return esc(FACILITY_KINDS[str(kind)])
    return esc(kind)


def _assumed(row: Mapping[str, Any] | pd.Series) -> set[str]:
    raw = row.get("assumed_fields")
    if is_missing(raw):
        return set()
    return {p.strip() for p in str(raw).split(",") if p.strip()}


def _ages(row: Mapping[str, Any] | pd.Series, language: Language) -> str:
    """Ages served from the classes with slots (e.g. 6–36 月龄); unknown when none is known."""
    lo: list[int] = []
    hi: list[int] = []
    known = False
    for column, (_zh, start, end) in AGE_CLASSES.items():
        value = row.get(column)
        if is_missing(value):
            continue
        known = True
        if float(cast(Any, value)) > 0:
            lo.append(start)
            hi.append(end)
    if not lo:
        return ui("unknown", language) if not known else "—"
    unit = "月龄" if language == "zh" else "months"
    return f"{min(lo)}–{max(hi)} {unit}"


def _modes(value: object, language: Language) -> str:
    if is_missing(value) or str(value).strip() == "":
        return ui("unknown", language)
    if language == "zh":
        return esc(value)
    parts = [p for p in str(value).replace(",", "、").split("、") if p]
    return esc(", ".join(f"{SERVICE_MODES.get(p, p)} ({p})" for p in parts))


def facility_rows(facilities: pd.DataFrame) -> list[dict[str, Any]]:
    """The facility records as dicts, for :func:`facility_popup` (faster than ``iterrows``).

    Values are the Python objects ``iterrows`` gives for a table of mixed types
    (``int``, ``float``, ``str``, ``bool``, ``None``; pandas' own missing values).
    """
    return cast(list[dict[str, Any]], facilities.to_dict("records"))


def facility_popup(row: Mapping[str, Any] | pd.Series, language: Language = "zh") -> str:
    """Popup HTML of one facility (name, kind, 普惠, 托位 by class, ages, modes, address).

    Parameters
    ----------
    row
        A facility record (a table row, or a dict from :func:`facility_rows`) with the
        fields of :data:`tuoyu.layers.schema.FACILITY_FIELDS` (missing fields read as
        unknown).
    language
        ``"zh"`` or ``"en"``.

    Returns
    -------
    str
        HTML; unknown values read 不详 / unknown, assumed values are marked.
    """
    assumed = _assumed(row)
    mark = f"（{ui('assumed', language)}）" if language == "zh" else f" ({ui('assumed', language)})"

    def flagged(field: str, text: str) -> str:
        return text + mark if field in assumed else text

    name = row.get("name")
    title = esc(name) if not is_missing(name) and str(name) else ui("unnamed", language)
    rows: list[tuple[str, str]] = [
        (esc(label("id", language)), _text(row.get("id"), language)),
        (esc(label("kind", language)), flagged("kind", _kind_label(row.get("kind"), language))),
        (esc(label("puhui", language)), flagged("puhui", fmt_bool(row.get("puhui"), language))),
    ]
    for column, (class_zh, start, end) in AGE_CLASSES.items():
        name_cls = (
            f"{class_zh}（{start}–{end}月龄）" if language == "zh" else f"{label(column, 'en')}"
        )
        rows.append((esc(name_cls), flagged(column, fmt_number(row.get(column), language))))
    rows += [
        (esc(label("slots", language)), flagged("slots", fmt_number(row.get("slots"), language))),
        ("适龄" if language == "zh" else "Ages", _ages(row, language)),
        (
            esc(label("service_modes", language)),
            flagged("service_modes", _modes(row.get("service_modes"), language)),
        ),
        (
            esc(label("ownership", language)),
            flagged("ownership", _text(row.get("ownership"), language)),
        ),
        (esc(label("address", language)), _text(row.get("address"), language)),
    ]
    return table_html(rows, title=title, cls="tuoyu-popup")


# --- the walk lookup -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class WalkLookup:
    """The "walk from here" lookup as arrays, without a Python list per node.

    What :func:`walk_lookup_from_reaches` tabulates (:meth:`to_frame`), in the form
    :func:`build_facility_map` reads fastest: a city's lookup (10⁶ nodes) takes a few tens
    of MB instead of hundreds.

    Attributes
    ----------
    lon, lat
        WGS84 of each network node (float64, shape ``(n,)``).
    facility_ids
        The facilities the pairs name.
    pair_node, pair_facility, pair_tenths
        One entry per node and facility reaching it within the walk limit: the node's
        row, the facility's index in ``facility_ids`` and the walking time in tenths of a
        minute (``round(walk_min, 1) * 10``, exactly); ordered by node, then walking time,
        then facility.
    """

    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    facility_ids: tuple[object, ...]
    pair_node: npt.NDArray[np.int64]
    pair_facility: npt.NDArray[np.int64]
    pair_tenths: npt.NDArray[np.int64]

    def __len__(self) -> int:
        """Number of network nodes."""
        return int(self.lon.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """The lookup as a table (:data:`WALK_LOOKUP_COLUMNS`), one row per node."""
        lists: list[list[tuple[object, float]]] = [[] for _ in range(len(self))]
        ids = self.facility_ids
        for n, f, t in zip(
            self.pair_node.tolist(),
            self.pair_facility.tolist(),
            self.pair_tenths.tolist(),
            strict=True,
        ):
            lists[n].append((ids[f], t / 10))
        return pd.DataFrame({"lon": self.lon, "lat": self.lat, "facilities": lists})


def tenths_of(walk_min: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """``round(round(t, 1) * 10)`` of each value, as Python computes it, vectorised.

    Python rounds the exact binary value, half to even; ``rint(t * 10)`` agrees except
    where ``t * 10`` lies within rounding error of a half, and those few are done by
    Python itself.

    Examples
    --------
    >>> tenths_of(np.array([0.15, 0.25, 0.35, 1.04999, 14.96])).tolist()
    [1, 2, 3, 10, 150]
    >>> [round(round(t, 1) * 10) for t in (0.15, 0.25, 0.35, 1.04999, 14.96)]
    [1, 2, 3, 10, 150]
    """
    values = np.asarray(walk_min, dtype=np.float64)
    scaled = values * 10.0
    tenths = np.rint(scaled)
    half_way = np.abs(scaled - np.floor(scaled) - 0.5) <= 8.0 * np.spacing(
        np.maximum(np.abs(scaled), 1.0)
    )
    for i in np.flatnonzero(half_way).tolist():
        tenths[i] = round(round(float(values[i]), 1) * 10)
    return tenths.astype(np.int64)


def walk_lookup_arrays(
    network: WalkNetwork,
    reaches: Sequence[LocalReach],
    facility_ids: Sequence[object],
    speed_kmh: float,
    minutes: float = 15.0,
) -> WalkLookup:
    """The "walk from here" lookup from the facilities' node reaches, as arrays.

    Parameters, checks and meaning as :func:`walk_lookup_from_reaches` (which is this
    lookup as a table).
    """
    if len(reaches) != len(facility_ids):
        raise InputValidationError(
            f"{len(reaches)} reaches but {len(facility_ids)} facility ids", field="facility_ids"
        )
    if not speed_kmh > 0 or not minutes > 0:
        raise InputValidationError("speed_kmh and minutes must be > 0")
    m_per_min = speed_kmh * 1000.0 / 60.0
    sizes = np.array([np.asarray(r.node).shape[0] for r in reaches], dtype=np.int64)
    if len(reaches):
        node = np.concatenate([np.asarray(r.node, dtype=np.int64) for r in reaches])
        dist_m = np.concatenate([np.asarray(r.dist_m, dtype=np.float64) for r in reaches])
    else:
        node, dist_m = np.empty(0, dtype=np.int64), np.empty(0)
    walk_min = dist_m / m_per_min
    fac_idx = np.repeat(np.arange(len(reaches), dtype=np.int64), sizes)
    keep = walk_min <= minutes
    node, walk_min, fac_idx = node[keep], walk_min[keep], fac_idx[keep]
    order = np.lexsort((fac_idx, walk_min, node))
    to_wgs = Transformer.from_crs(network.crs, 4326, always_xy=True)
    lon, lat = to_wgs.transform(network.node_x_m, network.node_y_m)
    return WalkLookup(
        lon=np.asarray(lon, dtype=np.float64),
        lat=np.asarray(lat, dtype=np.float64),
        facility_ids=tuple(facility_ids),
        pair_node=node[order],
        pair_facility=fac_idx[order],
        pair_tenths=tenths_of(walk_min[order]),
    )


def walk_lookup_from_reaches(
    network: WalkNetwork,
    reaches: Sequence[LocalReach],
    facility_ids: Sequence[object],
    speed_kmh: float,
    minutes: float = 15.0,
) -> pd.DataFrame:
    """The "walk from here" lookup from the facilities' node reaches.

    Walking is undirected, so the distance from a facility to a node is the distance
    from the node to the facility; each node gets the facilities that reach it within
    ``minutes``, nearest first. :func:`walk_lookup_arrays` gives the same as arrays,
    which :func:`build_facility_map` reads much faster.

    Parameters
    ----------
    network
        The walking network (metric CRS).
    reaches
        One :class:`~tuoyu.types.LocalReach` per facility (e.g. from
        :func:`tuoyu.reach.engine.all_facility_reach`) with a cut-off ≥ the walk limit.
    facility_ids
        Facility ids aligned with ``reaches``.
    speed_kmh
        Walking speed.
    minutes
        Walk limit.

    Returns
    -------
    pandas.DataFrame
        :data:`WALK_LOOKUP_COLUMNS`, one row per network node (nodes no facility
        reaches get an empty list, so a click there does not borrow a farther node).
    """
    return walk_lookup_arrays(network, reaches, facility_ids, speed_kmh, minutes).to_frame()


def _walk_pairs(
    lookup: pd.DataFrame | WalkLookup, index_of: dict[str, int], minutes: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Row, facility index and tenths of a minute of every lookup entry within ``minutes``.

    Tenths are exact: ``tenths / 10`` in the page is the double ``round(walk_min, 1)``
    (both the nearest double to the same one-decimal number).
    """
    if isinstance(lookup, WalkLookup):
        return _walk_pairs_of_arrays(lookup, index_of, minutes)
    rows: list[int] = []
    facs: list[int] = []
    tenths: list[int] = []
    for row, items in enumerate(lookup["facilities"].tolist()):
        for item in items if items is not None else []:
            fid, walk_min = (
                (item["facility_id"], item["walk_min"]) if isinstance(item, dict) else item
            )
            key = str(fid)
            if key not in index_of:
                raise InputValidationError(
                    f"walk lookup names facility '{fid}', which is not on the map",
                    row=row + 1,
                    field="facilities",
                )
            if float(walk_min) <= minutes:
                rows.append(row)
                facs.append(index_of[key])
                tenths.append(round(round(float(walk_min), 1) * 10))
    return (
        np.array(rows, dtype=np.int64),
        np.array(facs, dtype=np.int64),
        np.array(tenths, dtype=np.int64),
    )


def _walk_pairs_of_arrays(
    lookup: WalkLookup, index_of: dict[str, int], minutes: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """:func:`_walk_pairs` of a :class:`WalkLookup`, vectorised (same checks, same pairs)."""
    on_map = np.array(
        [index_of.get(str(f), -1) for f in lookup.facility_ids] or [-1], dtype=np.int64
    )
    facs = on_map[lookup.pair_facility]
    unknown = np.flatnonzero(facs < 0)
    if unknown.size:
        first = int(unknown[0])  # pairs run in row order, as the table's lists do
        fid = lookup.facility_ids[int(lookup.pair_facility[first])]
        raise InputValidationError(
            f"walk lookup names facility '{fid}', which is not on the map",
            row=int(lookup.pair_node[first]) + 1,
            field="facilities",
        )
    within = lookup.pair_tenths / 10 <= minutes  # the double round(walk_min, 1), as Python
    return lookup.pair_node[within], facs[within], lookup.pair_tenths[within]


_WALK_LITERALS: Final = (
    "",
    ",",
    '{"x":[',
    '],"y":[',
    '],"n":[',
    '],"f":[',
    '],"t":[',
    "]}",
    '],"n":[],"f":[],"t":[]}',
)
"""Around the numbers of walk chunks (:func:`render_ints`): the lists' openings, the end
(or, for a chunk whose nodes no facility reaches, the empty lists ``n``, ``f``, ``t``)."""


def _hilbert_tables() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """The Hilbert curve as a state machine, one bit level at a time.

    The state is how the quadrant being entered is turned: bit 1 swaps x and y, bit 2
    mirrors both (the two commute). At ``4 * state + 2 * x_bit + y_bit`` the tables give
    the curve's digit (0–3) and the next state: what the classic ``xy2d`` loop does to
    its coordinates, kept as a state instead.
    """
    digit = np.zeros(16, dtype=np.int64)
    after = np.zeros(16, dtype=np.uint8)
    for state in range(4):
        for bx in (0, 1):
            for by in (0, 1):
                rx, ry = (by, bx) if state & 1 else (bx, by)
                rx, ry = rx ^ (state >> 1), ry ^ (state >> 1)
                turn = 0 if ry else (3 if rx else 1)
                digit[4 * state + 2 * bx + by] = (3 * rx) ^ ry
                after[4 * state + 2 * bx + by] = state ^ turn
    return digit, after


_HILBERT_DIGIT, _HILBERT_NEXT = _hilbert_tables()


def _hilbert_keys(
    x: npt.NDArray[np.int64], y: npt.NDArray[np.int64], order: int
) -> npt.NDArray[np.int64]:
    """Position of each grid cell ``(x, y)`` along a Hilbert curve over ``2**order`` cells a side.

    What the classic ``xy2d`` conversion gives, one bit level at a time over all points
    at once (:func:`_hilbert_tables`): points near each other along the curve are near
    each other on the ground, so the steps between consecutive points are short on both
    axes.

    Examples
    --------
    >>> _hilbert_keys(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 0]), 1).tolist()
    [0, 1, 2, 3]
    >>> x, y = np.array([0, 1, 1, 0, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 2, 3, 3, 2])
    >>> _hilbert_keys(x, y, 2).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7]
    """
    # Hand-written rather than GeoSeries.hilbert_distance: that one wants Point geometries
    # and took 0.87 CPU-s for 10⁶ nodes against 0.14 here (the lookup's integer grid is
    # already at hand); the PyPI hilbertcurve package converts point by point in Python.
    if not 1 <= order <= 31:
        raise ValueError(f"order must be 1–31, got {order}")
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    keys = np.zeros(x.shape[0], dtype=np.int64)
    state = np.zeros(x.shape[0], dtype=np.uint8)
    at = np.empty(x.shape[0], dtype=np.uint8)
    for level in range(order - 1, -1, -1):
        np.copyto(at, (x >> level) & 1, casting="unsafe")
        at <<= 1
        at |= ((y >> level) & 1).astype(np.uint8)
        at |= state << 2
        keys <<= 2
        keys |= _HILBERT_DIGIT[at]
        state = _HILBERT_NEXT[at]
    return keys


def _walk_chunk_lists(
    members: npt.NDArray[np.int64],
    lon_i: npt.NDArray[np.int64],
    lat_i: npt.NDArray[np.int64],
    box: list[int],
    pair_start: npt.NDArray[np.int64],
    pair_fac: npt.NDArray[np.int64],
    pair_tenths: npt.NDArray[np.int64],
) -> list[npt.NDArray[np.int64]]:
    """The lists ``x, y, n, f, t`` of one chunk of the walk lookup (see :func:`_walk_config`).

    ``members`` are the chunk's lookup rows in the order written, the nodes some
    facility reaches first.
    """
    counts = pair_start[members + 1] - pair_start[members]
    firsts = np.cumsum(counts) - counts  # where each node's pairs start in the chunk
    take = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(
        pair_start[members] - firsts, counts
    )
    fac = pair_fac[take]
    steps = fac.copy()
    steps[1:] -= fac[:-1]
    firsts = firsts[counts > 0]
    steps[firsts] = fac[firsts]  # each node's first facility absolute, then steps
    return [
        np.diff(lon_i[members], prepend=box[0]),
        np.diff(lat_i[members], prepend=box[1]),
        counts[counts > 0],  # the reached nodes come first: only they have a count
        steps,
        pair_tenths[take],
    ]


def _walk_chunk_texts(chunks: Sequence[Sequence[npt.NDArray[np.int64]]]) -> list[str]:
    """Compact JSON ``{"x":[…],"y":[…],"n":[…],"f":[…],"t":[…]}`` of each chunk, rendered together.

    Every chunk has nodes (``x``, ``y`` are not empty); ``n``, ``f`` and ``t`` are empty
    together (no node of the chunk is reached) or not at all.
    """
    values: list[npt.NDArray[np.int64]] = []
    prefixes: list[npt.NDArray[np.int8]] = []
    suffixes: list[npt.NDArray[np.int8]] = []
    sizes: list[int] = []
    for lists in chunks:
        no_pairs = lists[2].shape[0] == 0
        sizes.append(sum(int(items.shape[0]) for items in lists))
        for k, items in enumerate(lists):
            if items.shape[0] == 0:
                continue
            prefix = np.ones(items.shape[0], dtype=np.int8)
            prefix[0] = 2 + k
            suffix = np.zeros(items.shape[0], dtype=np.int8)
            if k == 4:
                suffix[-1] = 7
            elif k == 1 and no_pairs:
                suffix[-1] = 8
            values.append(items)
            prefixes.append(prefix)
            suffixes.append(suffix)
    text, ends = render_ints(
        np.concatenate(values), np.concatenate(prefixes), np.concatenate(suffixes), _WALK_LITERALS
    )
    last = np.cumsum(sizes) - 1
    first = token_starts(ends, last - np.array(sizes) + 1)
    return [text[a:b] for a, b in zip(first.tolist(), ends[last].tolist(), strict=True)]


def _walk_order(
    lon_i: npt.NDArray[np.int64],
    lat_i: npt.NDArray[np.int64],
    reached: npt.NDArray[np.bool_],
    chunk_nodes: int,
) -> list[npt.NDArray[np.int64]]:
    """The lookup rows of each chunk, in the order written.

    Chunks are the spatial groups of the rounded positions
    (:func:`~tuoyu.outputs.maps.common._spatial_groups`), one after the other; inside a
    chunk the nodes some facility reaches come first, then the others, each along a
    Hilbert curve (:func:`_hilbert_keys`). Nodes in the same place go in one order
    wherever they are written (in one chunk, or across a split between two): reached
    nodes first, each kind by lookup row. So the first one written, which the page's
    tie rule picks, is the lowest-row node of that place some facility reaches, if any.
    """
    scale = 10.0**WALK_DECIMALS
    # the groups break ties in the order of the rows given: reached first, then by row
    ranked = np.concatenate([np.flatnonzero(reached), np.flatnonzero(~reached)])
    gx = lon_i - lon_i.min()
    gy = lat_i - lat_i.min()
    order = max(1, int(max(int(gx.max()), int(gy.max()))).bit_length())
    if order > 31:  # not degrees (any extent on Earth needs 26 bits): coarser cells
        gx, gy, order = gx >> (order - 31), gy >> (order - 31), 31
    # one key per node: unreached after reached, then along the curve (< 2**63)
    key = _hilbert_keys(gx, gy, order)
    key[~reached] |= np.int64(1) << np.int64(2 * order)
    chunks: list[npt.NDArray[np.int64]] = []
    for group in _spatial_groups(lon_i[ranked] / scale, lat_i[ranked] / scale, chunk_nodes):
        if group.size:
            members = ranked[group]  # reached first, each by row: a stable sort keeps that
            chunks.append(members[np.argsort(key[members], kind="stable")])
    return chunks


def _walk_config(
    lookup: pd.DataFrame | WalkLookup | None,
    index_of: dict[str, int],
    *,
    mode: str,
    speed_kmh: float,
    minutes: float,
    max_snap_m: float,
    chunk_nodes: int = WALK_CHUNK_NODES,
    inline_max_bytes: int = WALK_INLINE_MAX_BYTES,
) -> tuple[dict[str, Any], DataChunks | None]:
    """The page's ``walk`` configuration and the chunks of the "walk from here" lookup.

    Node positions are rounded to :data:`WALK_DECIMALS` decimals of a WGS84 degree
    (integers in units of ``1 / scale``, ``scale`` = 10⁵: ≈ 1 m, plenty to find the
    nearest street node) and split into spatial groups of at most ``chunk_nodes``
    (recursive median splits, :func:`~tuoyu.outputs.maps.common._spatial_groups`).
    Each chunk writes its nodes in one order (:func:`_walk_order`): those some facility
    reaches within ``minutes`` first, then the others, each along a Hilbert curve, so
    both coordinate steps are short. That order numbers the nodes: the page's rows are
    the lookup's nodes renumbered in the order written, chunk after chunk, so no row
    number is written (``rowStarts`` gives each chunk's first row).

    The configuration carries ``scale``, the number of nodes, each chunk's first row and
    box ``[west, south, east, north]`` (integers in units of ``1 / scale``). A chunk is
    ``{"x", "y", "n", "f", "t"}``, all integer lists: the nodes' ``lon``/``lat`` (steps,
    the first from the box's west/south corner), how many facilities each reached node
    reaches within ``minutes`` (one count per reached node: they come first, the rest
    reach none), those facilities' map indices (ascending per node: the first absolute,
    then steps) and the walking times in tenths of a minute. The page reads the chunks
    whose box meets the circle of ``max_snap_m`` around a clicked or typed point and
    finds its nearest node exactly as a scan over every written node would (ties go to
    the lowest row, so of nodes in the same place the first reached one in the lookup).
    """
    cfg: dict[str, Any] = {
        "mode": mode,
        "speedKmh": float(speed_kmh),
        "minutes": float(minutes),
        "maxSnapM": float(max_snap_m),
    }
    if lookup is None or mode != "lookup":
        return cfg, None
    if int(chunk_nodes) < 1:
        raise InputValidationError(
            f"walk_chunk_nodes must be ≥ 1, got {chunk_nodes}", field="walk_chunk_nodes"
        )
    if isinstance(lookup, WalkLookup):
        lon, lat = lookup.lon, lookup.lat
    else:
        require_columns(lookup, WALK_LOOKUP_COLUMNS, "walk lookup")
        lon = lookup["lon"].to_numpy(dtype=float)
        lat = lookup["lat"].to_numpy(dtype=float)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise InputValidationError("walk lookup has non-finite lon/lat", field="lon")
    # WGS84 only: a point clicked or typed on Amap is converted to WGS84 by the page
    # (tuoyu_maps.js fromGcj) before the nearest node is looked up
    scale = 10**WALK_DECIMALS
    lon_i = np.round(lon * scale).astype(np.int64)
    lat_i = np.round(lat * scale).astype(np.int64)
    rows, facs, tenths = _walk_pairs(lookup, index_of, minutes)
    order = np.lexsort((facs, rows))
    rows, facs, tenths = rows[order], facs[order], tenths[order]
    # where each row's pairs start (rows ascending): a count per row, not a search per row
    pair_start = np.zeros(len(lookup) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(lookup)), out=pair_start[1:])
    written = (
        _walk_order(lon_i, lat_i, np.diff(pair_start) > 0, int(chunk_nodes)) if len(lookup) else []
    )
    sizes = np.array([members.shape[0] for members in written], dtype=np.int64)
    row_starts = np.cumsum(sizes) - sizes
    lists: list[list[npt.NDArray[np.int64]]] = []  # chunks not yet written
    n_values = 0
    texts: list[str] = []
    bboxes: list[list[int]] = []
    for members in written:
        gx, gy = lon_i[members], lat_i[members]
        box = [int(gx.min()), int(gy.min()), int(gx.max()), int(gy.max())]
        bboxes.append(box)
        lists.append(_walk_chunk_lists(members, lon_i, lat_i, box, pair_start, facs, tenths))
        n_values += sum(int(items.shape[0]) for items in lists[-1])
        if n_values >= WALK_RENDER_VALUES:
            texts += _walk_chunk_texts(lists)
            lists, n_values = [], 0
    if lists:
        texts += _walk_chunk_texts(lists)
    size_bytes = sum(len(t) for t in texts)  # ASCII
    cfg["scale"] = scale
    cfg["nodes"] = len(lookup)
    cfg["rowStarts"] = row_starts.tolist()
    cfg["bboxes"] = bboxes
    chunks = DataChunks(
        texts,
        name="walk",
        folder="layers",
        callback="dataChunk",
        inline=size_bytes <= inline_max_bytes,
    )
    return cfg, chunks


# --- isochrones -----------------------------------------------------------------------------


def _isochrone_chunks(
    isochrones: gpd.GeoDataFrame, index_of: dict[str, int], simplify_m: float, chunk_size: int
) -> tuple[list[str], npt.NDArray[np.float64]]:
    """JSON text of each chunk: ``{"<facility index>": [[minutes, geometry], ...]}``; the box.

    Geometry in WGS84, simplified by ``simplify_m`` metres for display (no more than the
    layer allows, :func:`display_tolerance`), rounded to 6 decimals and written in the
    compact integer form of
    :func:`~tuoyu.outputs.maps.common.encode_geometries` at that precision (steps of
    10⁻⁶°, ``ISO_SCALE``): about a third of the GeoJSON text, decoded by the page
    (``decodeGeometry``); ``null`` for an empty polygon. The box is the isochrones'
    WGS84 ``[west, south, east, north]`` (:func:`~tuoyu.outputs.maps.common.wgs84_box`),
    from the same transformed coordinates.
    """
    encoded, box = encode_layer(
        isochrones, display_tolerance(isochrones, simplify_m), ISO_DECIMALS, "polygon"
    )
    texts = ["null" if t is None else t for t in encoded]
    index = np.array([index_of[str(f)] for f in isochrones["facility_id"]], dtype=np.int64)
    minutes = [f"{float(m):g}" for m in isochrones["minutes"]]
    order = np.lexsort((np.arange(index.shape[0]), index))
    n_chunks = int(index.max()) // chunk_size + 1 if index.shape[0] else 0
    parts: list[dict[int, list[str]]] = [{} for _ in range(n_chunks)]
    for row in order.tolist():
        i = int(index[row])
        parts[i // chunk_size].setdefault(i, []).append(f"[{minutes[row]},{texts[row]}]")
    chunks = [
        "{" + ",".join(f'"{i}":[{",".join(rings)}]' for i, rings in part.items()) + "}"
        for part in parts
    ]
    return chunks, box


def _isochrone_config(
    isochrones: gpd.GeoDataFrame | None,
    index_of: dict[str, int],
    simplify_m: float,
    *,
    isochrone_url: str | None,
    isochrone_minutes: Sequence[float],
    chunk_size: int,
) -> tuple[
    dict[str, Any] | None, dict[str, str], DataChunks | None, npt.NDArray[np.float64] | None
]:
    """Where the page reads isochrones (``isoSource``), their colours, the chunks, and
    the isochrones' WGS84 box when the chunks were made (else ``None``)."""
    if isochrone_url is not None:
        minutes = sorted({float(m) for m in isochrone_minutes})
        source: dict[str, Any] = {
            "mode": "api",
            "url": isochrone_url,
            "minutes": [float(f"{m:g}") for m in minutes],
        }
        return source, _iso_colors(minutes), None, None
    if isochrones is None or len(isochrones) == 0:
        return None, {}, None, None
    require_crs(isochrones, "isochrones")
    require_columns(isochrones, ("facility_id", "minutes"), "isochrones")
    iso = isochrones[~(isochrones.geometry.isna() | isochrones.geometry.is_empty)]
    unknown = sorted({str(f) for f in iso["facility_id"]} - set(index_of))
    if unknown:
        raise InputValidationError(
            f"isochrones name {len(unknown)} facility id(s) not on the map, e.g. '{unknown[0]}'",
            field="facility_id",
        )
    if len(iso) == 0:
        return None, {}, None, None
    texts, box = _isochrone_chunks(iso, index_of, simplify_m, chunk_size)
    chunks = DataChunks(texts)
    source = {
        "mode": "chunks",
        "chunkSize": int(chunk_size),
        "chunks": len(chunks.chunks),
        "scale": 10**ISO_DECIMALS,
    }
    return source, _iso_colors(sorted({float(m) for m in iso["minutes"]})), chunks, box


def _iso_colors(minutes: Sequence[float]) -> dict[str, str]:
    # keys are the minutes as the page prints them (5, 10, 15)
    return {
        f"{m:g}": ISOCHRONE_COLORS[min(i, len(ISOCHRONE_COLORS) - 1)] for i, m in enumerate(minutes)
    }


# --- the map ----------------------------------------------------------------------------------


def build_facility_map(
    facilities: gpd.GeoDataFrame,
    isochrones: gpd.GeoDataFrame | None = None,
    walk_lookup: pd.DataFrame | WalkLookup | None = None,
    *,
    language: str = "zh",
    tianditu_key: str | None = None,
    nearest_url: str | None = None,
    area_name: str | None = None,
    speed_kmh: float = 4.0,
    walk_minutes: float = 15.0,
    max_snap_m: float = 300.0,
    attribution: str | None = None,
    simplify_m: float = DEFAULT_SIMPLIFY_M,
    cluster_over: int = CLUSTER_OVER,
    basemap: str = "osm",
    isochrone_url: str | None = None,
    isochrone_minutes: Sequence[float] = (5.0, 10.0, 15.0),
    chunk_size: int = ISO_CHUNK_FACILITIES,
    walk_chunk_nodes: int = WALK_CHUNK_NODES,
    walk_inline_max_bytes: int = WALK_INLINE_MAX_BYTES,
) -> folium.Map:
    """The public facility map (备案机构电子地图).

    Parameters
    ----------
    facilities
        Facility records (fields of :data:`tuoyu.layers.schema.FACILITY_FIELDS`, at least
        ``id``; others missing read as unknown) with point geometry in any CRS.
    isochrones
        ``facility_id``, ``minutes``, polygon geometry (any CRS), shown when a facility
        is clicked; simplified by ``simplify_m`` metres for display and read by the page
        on demand (see the module docstring). Not used with ``isochrone_url``.
    walk_lookup
        The "walk from here" lookup (:data:`WALK_LOOKUP_COLUMNS`, e.g. from
        :func:`walk_lookup_from_reaches`); without it and without ``nearest_url`` the
        search panel says there is no walking network. The page reads it in spatial
        chunks around the point asked (see the module docstring).
    language
        ``"zh"`` (default) or ``"en"``.
    tianditu_key
        天地图 key; the 天地图 basemap is offered only with one.
    nearest_url
        URL template of a nearest-facility service, with the placeholders ``{lon}``,
        ``{lat}``, ``{crs}`` and ``{minutes}`` (e.g. the API's
        ``/areas/<area>/nearest?lon={lon}&lat={lat}&crs={crs}&minutes={minutes}``);
        ``crs`` is filled with the datum of the basemap shown (``wgs84``/``gcj02``).
    area_name
        Shown in the title.
    speed_kmh, walk_minutes, max_snap_m
        Walking speed, walk limit, and the largest distance from a clicked point to a
        lookup node (farther points are reported as off the network).
    attribution
        Data attribution added to "© OpenStreetMap contributors" (``;``-separated).
    simplify_m
        Display simplification tolerance of isochrones, metres.
    cluster_over
        Cluster markers when there are more facilities than this.
    basemap
        Basemap shown first: ``"osm"``, ``"amap"`` or ``"tianditu"``.
    isochrone_url
        URL template of the service's isochrone of one facility, with the placeholders
        ``{id}`` and ``{minutes}`` (e.g. ``../facilities/{id}/isochrone?minutes={minutes}``);
        it answers a GeoJSON Feature with WGS84 geometry. The page asks it once per
        ``isochrone_minutes`` when a facility is clicked.
    isochrone_minutes
        The walking times asked from ``isochrone_url``.
    chunk_size
        Facilities per isochrone chunk.
    walk_chunk_nodes
        Lookup nodes per chunk of the "walk from here" lookup (spatial groups).
    walk_inline_max_bytes
        The lookup's chunks stay inside a saved page up to this many bytes in all;
        bigger, :func:`~tuoyu.outputs.maps.common.save_map` writes them beside it.

    Returns
    -------
    folium.Map

    Raises
    ------
    InputValidationError
        Missing ``id`` column, duplicate ids, empty geometries, isochrones or lookup
        entries naming facilities not given, a ``nearest_url`` without its placeholders,
        bad language.
    CRSError
        A layer without CRS.
    """
    lang = check_language(language)
    require_crs(facilities, "facilities")
    require_columns(facilities, ("id",), "facilities")
    if nearest_url is not None:
        missing = [p for p in ("{lon}", "{lat}") if p not in nearest_url]
        if missing:
            raise InputValidationError(
                f"nearest_url needs the placeholders {', '.join(missing)}", field="nearest_url"
            )
    if isochrone_url is not None:
        missing = [p for p in ("{id}", "{minutes}") if p not in isochrone_url]
        if missing:
            raise InputValidationError(
                f"isochrone_url needs the placeholders {', '.join(missing)}",
                field="isochrone_url",
            )
    if int(chunk_size) < 1:
        raise InputValidationError(f"chunk_size must be ≥ 1, got {chunk_size}", field="chunk_size")
    ids = facilities["id"].astype(str).tolist()
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise InputValidationError(f"duplicate facility id '{dup}'", field="id")
    empty = facilities.geometry.isna() | facilities.geometry.is_empty
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0]) + 1
        raise InputValidationError("facility without geometry", row=row, field="geometry")
    index_of = {fid: i for i, fid in enumerate(ids)}

    iso_source, iso_colors, iso_chunks, iso_box = _isochrone_config(
        isochrones,
        index_of,
        simplify_m,
        isochrone_url=isochrone_url,
        isochrone_minutes=isochrone_minutes,
        chunk_size=int(chunk_size),
    )
    # the isochrones' box comes with their chunks (one transformation of their vertices)
    boxes = [wgs84_box(facilities) if len(facilities) else None]
    if iso_box is not None:
        boxes.append(iso_box)
    elif isochrones is not None and len(isochrones):
        boxes.append(wgs84_box(isochrones))
    bounds = bounds_from_boxes(boxes)
    cluster = len(facilities) > cluster_over
    title = ui("facility_map", lang)
    m = new_map(bounds, cluster=cluster, title=f"{area_name} {title}" if area_name else title)
    base_datums, initial = add_basemaps(m, lang, tianditu_key, basemap)

    container: folium.FeatureGroup | MarkerCluster
    if cluster:
        container = MarkerCluster(name=ui("facilities", lang), show=True)  # type: ignore[no-untyped-call]
        container.default_js = []  # the plugin's own CDN links; inlined by new_map
        container.default_css = []
    else:
        container = folium.FeatureGroup(name=ui("facilities", lang), show=True)
    container.add_to(m)
    iso_group = folium.FeatureGroup(name=ui("isochrones", lang), show=True).add_to(m)

    wgs = wgs84_latlng(facilities)
    kinds = [
        "" if is_missing(k) or str(k) not in KIND_COLORS else str(k)
        for k in (facilities["kind"] if "kind" in facilities else [None] * len(facilities))
    ]
    puhui_raw = facilities["puhui"] if "puhui" in facilities else [None] * len(facilities)
    puhui = [None if is_missing(p) else int(bool(p)) for p in puhui_raw]
    names = []
    for fid, row_name in zip(
        ids, facilities["name"] if "name" in facilities else [None] * len(ids), strict=True
    ):
        names.append(
            str(row_name)
            if not is_missing(row_name) and str(row_name)
            else f"{ui('unnamed', lang)} {fid}"
        )
    popups = [facility_popup(row, lang) for row in facility_rows(facilities)]
    counts = pd.Series(kinds, dtype=object).value_counts()
    legend = [
        {
            "kind": kind,
            "label": (FACILITY_KINDS[kind] if lang == "en" else kind)
            if kind
            else ui("unknown", lang),
            "color": color,
            "count": int(counts.get(kind, 0)),
        }
        for kind, color in KIND_COLORS.items()
        if counts.get(kind, 0) > 0
    ]
    walk_mode = "api" if nearest_url else ("lookup" if walk_lookup is not None else "none")

    config = base_config(
        kind="facilities",
        language=lang,
        base_datums=base_datums,
        initial_datum=initial,
        bounds=bounds,
        attribution=attribution,
        nearest_url=nearest_url,
    )
    subtitle = ui("speed", lang).replace("{v}", f"{speed_kmh:g}")
    config["controls"].append(title_control(f"{area_name or ''} {title}".strip(), subtitle))
    config["facilities"] = {
        "container": container,
        "isoContainer": iso_group,
        "ids": ids,
        "names": names,
        "kinds": kinds,
        "puhui": puhui,
        "puhuiBadge": ui("puhui_badge", lang),
        "wgs84": wgs,
        "popups": popups,
        "colors": KIND_COLORS,
        "legend": legend,
        "isoSource": iso_source,
        "isoColors": iso_colors,
    }
    config["walk"], walk_chunks = _walk_config(
        walk_lookup,
        index_of,
        mode=walk_mode,
        speed_kmh=speed_kmh,
        minutes=walk_minutes,
        max_snap_m=max_snap_m,
        chunk_nodes=int(walk_chunk_nodes),
        inline_max_bytes=int(walk_inline_max_bytes),
    )
    return finish_map(m, config, [c for c in (iso_chunks, walk_chunks) if c is not None])
