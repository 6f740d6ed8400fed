"""Loading the walking network from an OSM file (``.osm.pbf``, ``.osm``, ``.osm.bz2``).

The file is read with pyosmium (libosmium's C++ readers; node locations are cached in
C++ and never pass through Python one by one). A way is walkable when it passes the
same tag filter that osmnx's ``walk`` network type sends to Overpass (see
:data:`WALK_FILTER`). Every walkable way becomes its consecutive node pairs as straight
undirected segments in a metric CRS (UTM zone estimated from the data unless given),
with lengths in metres measured in that CRS.

Results are cached on disk under ``settings.cache_dir / "networks"`` keyed by the file's
sha256, the walk filter and the CRS, so a second load of the same file is a file read.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import osmium
from pyproj import CRS, Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from tuoyu.config.data_registry import file_sha256
from tuoyu.config.settings import Settings
from tuoyu.crs.projection import WGS84, utm_crs_for
from tuoyu.errors import CRSError, DataNotFoundError, EmptyInputError, InputValidationError
from tuoyu.network.cache import read_network_cache, write_network_cache
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.progress import SILENT, Progress

__all__ = [
    "OSM_SUFFIXES",
    "WALK_FILTER",
    "WALK_FILTER_KEYS",
    "WALK_FILTER_VERSION",
    "as_metric_crs",
    "check_osm_path",
    "is_walkable",
    "largest_component_share",
    "load_walk_network",
    "walk_rejection_reason",
]

OSM_SUFFIXES: tuple[str, ...] = (".osm.pbf", ".pbf", ".osm", ".osm.bz2", ".osm.gz")
"""File name endings the OSM readers accept (pyosmium picks the format from them)."""


@dataclass(frozen=True)
class _Clause:
    """One Overpass tag clause: ``["key"]`` (present) or ``["key"!~"regex"]``."""

    key: str
    regex: str | None
    reason: str

    def overpass(self) -> str:
        if self.regex is None:
            return f'["{self.key}"]'
        return f'["{self.key}"!~"{self.regex}"]'


# The osmnx ``walk`` filter, clause by clause. Source: osmnx 2.1
# ``osmnx._overpass._get_network_filter("walk")`` with ``settings.default_access`` =
# '["access"!~"private"]' substituted in place (tests/test_osm_network.py checks that the
# joined string equals what the installed osmnx sends to Overpass). Overpass semantics,
# reproduced in :func:`walk_rejection_reason`: ``["k"]`` needs the key; ``["k"!~"re"]``
# passes when the key is absent or its value does not *contain* a match of the
# case-sensitive regex (unanchored: "motor" also rejects "motorway" and "motorway_link").
_WALK_CLAUSES: tuple[_Clause, ...] = (
    _Clause("highway", None, "no_highway"),
    _Clause("area", "yes", "area_yes"),
    _Clause("access", "private", "access_private"),
    _Clause(
        "highway",
        "abandoned|bus_guideway|construction|cycleway|motor|no|planned|"
        "platform|proposed|raceway|razed|rest_area|services",
        "highway_not_walkable",
    ),
    _Clause("foot", "no", "foot_no"),
    _Clause("service", "private", "service_private"),
    _Clause("sidewalk", "separate", "sidewalk_separate"),
    _Clause("sidewalk:both", "separate", "sidewalk_separate"),
    _Clause("sidewalk:left", "separate", "sidewalk_separate"),
    _Clause("sidewalk:right", "separate", "sidewalk_separate"),
)
_COMPILED: tuple[tuple[str, re.Pattern[str] | None, str], ...] = tuple(
    (c.key, re.compile(c.regex) if c.regex is not None else None, c.reason) for c in _WALK_CLAUSES
)

WALK_FILTER: str = "".join(c.overpass() for c in _WALK_CLAUSES)
"""The Overpass way filter of osmnx's ``walk`` network type, as applied here."""

WALK_FILTER_KEYS: tuple[str, ...] = tuple(dict.fromkeys(c.key for c in _WALK_CLAUSES))
"""The way tag keys the walk filter looks at."""

_CACHE_FORMAT = 2  # 2: metadata["way_names"] added
WALK_FILTER_VERSION: str = hashlib.sha256(f"{WALK_FILTER}|{_CACHE_FORMAT}".encode()).hexdigest()[
    :10
]
"""Short hash of the walk filter and the cache layout; part of every cache key."""


def walk_rejection_reason(tags: object) -> str | None:
    """Why a way with these tags is not walkable, or ``None`` when it is.

    Parameters
    ----------
    tags
        A mapping-like object with ``get(key)`` (a dict, or a pyosmium ``TagList``).

    Returns
    -------
    str or None
        The reason of the first failing clause of :data:`WALK_FILTER` (``no_highway``,
        ``area_yes``, ``access_private``, ``highway_not_walkable``, ``foot_no``,
        ``service_private``, ``sidewalk_separate``), or ``None``.

    Examples
    --------
    >>> walk_rejection_reason({"highway": "footway"}) is None
    True
    >>> walk_rejection_reason({"highway": "motorway_link"})
    'highway_not_walkable'
    >>> walk_rejection_reason({"building": "yes"})
    'no_highway'
    >>> walk_rejection_reason({"highway": "residential", "foot": "no"})
    'foot_no'
    """
    get = tags.get  # type: ignore[attr-defined]
    for key, pattern, reason in _COMPILED:
        value = get(key)
        if pattern is None:
            if value is None:
                return reason
        elif value is not None and pattern.search(value) is not None:
            return reason
    return None


def is_walkable(tags: object) -> bool:
    """True when a way with these tags passes the osmnx ``walk`` filter."""
    return walk_rejection_reason(tags) is None


def check_osm_path(path: str | Path) -> Path:
    """Return ``path`` as a Path after checking that it exists and is an OSM file.

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    InputValidationError
        The name does not end in one of :data:`OSM_SUFFIXES`.
    """
    path = Path(path)
    name = path.name.lower()
    if not any(name.endswith(suffix) for suffix in OSM_SUFFIXES):
        raise InputValidationError(
            f"unknown OSM file type; expected a name ending in {', '.join(OSM_SUFFIXES)}",
            path=path,
        )
    if not path.is_file():
        raise DataNotFoundError(f"OSM file not found: {path}")
    return path


def as_metric_crs(crs: CRS | str | int) -> CRS:
    """Parse ``crs`` and check that it is projected with metre axes.

    Raises
    ------
    CRSError
        Unparseable, geographic, or not in metres.
    """
    try:
        parsed = CRS.from_user_input(crs)
    except Exception as exc:  # pyproj raises its own CRSError; re-raise ours
        raise CRSError(f"cannot parse CRS {crs!r}: {exc}") from exc
    units = {axis.unit_name.lower() for axis in parsed.axis_info}
    if not parsed.is_projected or not units <= {"metre", "meter"}:
        raise CRSError(
            f"CRS {parsed.name!r} is not a projected CRS in metres; pass a metric CRS "
            "(e.g. the UTM zone, tuoyu.crs.projection.utm_crs_for(lon, lat))"
        )
    return parsed


# --------------------------------------------------------------------------- reading


@dataclass
class _RawWays:
    """Node references of the kept ways, flattened, with their locations."""

    ref: npt.NDArray[np.int64]
    way_index: npt.NDArray[np.int64]
    way_id: npt.NDArray[np.int64]
    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]
    counts: dict[str, int]
    rejected: dict[str, int]
    names: dict[str, str]


def _read_walkable_ways(path: Path) -> _RawWays:
    refs: list[int] = []
    way_index: list[int] = []
    lons: list[float] = []
    lats: list[float] = []
    kept_ids: list[int] = []
    names: dict[str, str] = {}
    rejected: Counter[str] = Counter()
    ways_read = 0
    missing_refs = 0
    processor = (
        osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
    )
    try:
        for way in processor:
            if not isinstance(way, osmium.osm.Way):  # the entity filter passes ways only
                continue
            ways_read += 1
            reason = walk_rejection_reason(way.tags)
            if reason is not None:
                rejected[reason] += 1
                continue
            if len(way.nodes) < 2:
                rejected["fewer_than_2_nodes"] += 1
                continue
            index = len(kept_ids)
            kept_ids.append(way.id)
            name = way.tags.get("name")
            if name and name.strip():
                names[str(way.id)] = name.strip()
            for node in way.nodes:
                location = node.location
                refs.append(node.ref)
                way_index.append(index)
                if location.valid():
                    lons.append(location.lon)
                    lats.append(location.lat)
                else:  # node missing from the extract: segments touching it are skipped
                    missing_refs += 1
                    lons.append(np.nan)
                    lats.append(np.nan)
    except RuntimeError as exc:  # libosmium parse errors surface as RuntimeError
        raise InputValidationError(f"cannot read OSM data: {exc}", path=path) from exc
    lon = np.asarray(lons, dtype=np.float64)
    return _RawWays(
        ref=np.asarray(refs, dtype=np.int64),
        way_index=np.asarray(way_index, dtype=np.int64),
        way_id=np.asarray(kept_ids, dtype=np.int64),
        lon=lon,
        lat=np.asarray(lats, dtype=np.float64),
        valid=~np.isnan(lon),
        counts={
            "ways_read": ways_read,
            "ways_kept": len(kept_ids),
            "ways_rejected": int(sum(rejected.values())),
            "missing_node_refs": missing_refs,
        },
        rejected=dict(sorted(rejected.items())),
        names=names,
    )


def _build_network(raw: _RawWays, path: Path, sha256: str, crs: CRS | None) -> WalkNetwork:
    """Turn flattened way node lists into a compact undirected segment network."""
    same_way = raw.way_index[:-1] == raw.way_index[1:]
    pair = same_way & raw.valid[:-1] & raw.valid[1:]
    first = np.flatnonzero(pair)
    seg_a_id = raw.ref[first]
    seg_b_id = raw.ref[first + 1]
    seg_way = raw.way_id[raw.way_index[first]]
    n_raw_segments = int(first.size)
    if n_raw_segments == 0:
        raise EmptyInputError(
            "no walkable segments: the ways passing the osmnx 'walk' filter have no two "
            "consecutive nodes with known locations",
            path=path,
        )

    # Nodes used by any segment, sorted by OSM id; coordinates from one occurrence each.
    ends = np.concatenate([first, first + 1])
    node_id, where = np.unique(raw.ref[ends], return_index=True)
    lon = raw.lon[ends][where]
    lat = raw.lat[ends][where]
    u = np.searchsorted(node_id, seg_a_id)
    v = np.searchsorted(node_id, seg_b_id)

    if crs is None:
        crs = utm_crs_for(
            float((lon.min() + lon.max()) / 2.0), float((lat.min() + lat.max()) / 2.0)
        )
    transformer = Transformer.from_crs(WGS84, crs, always_xy=True)
    x_m, y_m = transformer.transform(lon, lat)
    x_m = np.asarray(x_m, dtype=np.float64)
    y_m = np.asarray(y_m, dtype=np.float64)

    self_loops = int(np.count_nonzero(u == v))
    # Distinct nodes at the same location joined by a way: contract the zero-length
    # segment (merge its end nodes) instead of dropping it, so connectivity is kept and
    # no distance changes. Union-find via connected components of the zero-length pairs.
    zero = (u != v) & (lon[u] == lon[v]) & (lat[u] == lat[v])
    n_zero = int(np.count_nonzero(zero))
    if n_zero:
        n = node_id.size
        graph = coo_matrix((np.ones(n_zero), (u[zero], v[zero])), shape=(n, n))
        _, label = connected_components(graph, directed=False)
        # Representative of each group: its smallest node index (= smallest OSM id).
        rep = np.full(label.max() + 1, n, dtype=np.int64)
        np.minimum.at(rep, label, np.arange(n, dtype=np.int64))
        u = rep[label[u]]
        v = rep[label[v]]

    keep = u != v
    lo = np.minimum(u[keep], v[keep])
    hi = np.maximum(u[keep], v[keep])
    way = seg_way[keep]
    # Each undirected pair once: the first occurrence in file order wins (its way id).
    pair_key = lo * np.int64(node_id.size) + hi  # < n**2, fits int64 for n < 3e9
    _, first_of_pair = np.unique(pair_key, return_index=True)
    first_of_pair.sort()
    lo, hi, way = lo[first_of_pair], hi[first_of_pair], way[first_of_pair]
    duplicates = int(np.count_nonzero(keep)) - int(first_of_pair.size)

    # Compact: only nodes used by kept segments remain.
    used, inverse = np.unique(np.concatenate([lo, hi]), return_inverse=True)
    m = lo.size
    edge_u = inverse[:m].astype(np.int64)
    edge_v = inverse[m:].astype(np.int64)
    node_x = x_m[used]
    node_y = y_m[used]
    length_m = np.hypot(node_x[edge_u] - node_x[edge_v], node_y[edge_u] - node_y[edge_v])

    used_ways = set(way.tolist())
    metadata: dict[str, object] = {
        **raw.counts,
        "ways_rejected_by_reason": raw.rejected,
        "segments_read": n_raw_segments,
        "self_loops_dropped": self_loops,
        "zero_length_segments_contracted": n_zero,
        "duplicate_segments_dropped": duplicates,
        "walk_filter": WALK_FILTER,
        "walk_filter_version": WALK_FILTER_VERSION,
        "length_method": "euclidean in the metric CRS",
        "sha256": sha256,
        # the `name` tag of each kept way that has one, keyed by way id as text
        "way_names": {k: v for k, v in raw.names.items() if int(k) in used_ways},
    }
    return WalkNetwork(
        node_id=node_id[used].astype(np.int64),
        node_x_m=node_x,
        node_y_m=node_y,
        edge_u=edge_u,
        edge_v=edge_v,
        edge_length_m=length_m.astype(np.float64),
        edge_way_id=way.astype(np.int64),
        crs=crs,
        source=_source(path, sha256),
        metadata=metadata,
    )


def _source(path: Path, sha256: str) -> str:
    return f"{path} (sha256 {sha256})"


# --------------------------------------------------------------------------- caching


def _cache_path(settings: Settings, sha256: str, crs: CRS | None) -> Path:
    crs_tag = "utm" if crs is None else hashlib.sha256(crs.to_wkt().encode()).hexdigest()[:8]
    params = f"walk{WALK_FILTER_VERSION}-{crs_tag}"
    return Path(settings.cache_dir) / "networks" / f"{sha256}-{params}.npz"


def _write_cache(target: Path, net: WalkNetwork) -> None:
    write_network_cache(target, net, net.metadata)


def _read_cache(target: Path, path: Path, sha256: str) -> WalkNetwork | None:
    """The cached network, or ``None`` when the entry is missing or unreadable."""
    return read_network_cache(target, _source(path, sha256))


# --------------------------------------------------------------------------- public


def load_walk_network(
    path: str | Path,
    *,
    settings: Settings | None = None,
    crs: CRS | str | int | None = None,
    progress: Progress = SILENT,
) -> WalkNetwork:
    """Load the walkable OSM ways of a file as an undirected segment network.

    Parameters
    ----------
    path
        An ``.osm.pbf``, ``.osm`` or ``.osm.bz2`` file (``.pbf``/``.osm.gz`` also read).
    settings
        Enables the on-disk cache in ``settings.cache_dir / "networks"``; ``None``
        (default) reads the file every time and writes nothing.
    crs
        Metric CRS of the result; default the UTM zone of the network's centre.
    progress
        Progress reporter (silent by default).

    Returns
    -------
    WalkNetwork
        Nodes used by walkable segments (sorted by OSM id) and one segment per
        consecutive node pair of each walkable way, each undirected pair once.
        ``metadata`` counts ways read / kept / rejected by reason, dropped
        self-loops and duplicates, holds ``way_names`` (``{way id as text: name
        tag}`` of the ways with segments and a name) and says whether the cache was used.

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    InputValidationError
        Unknown file type, unreadable file, or no walkable way in it
        (:class:`~tuoyu.errors.EmptyInputError`).
    CRSError
        ``crs`` is not a projected CRS in metres.

    Notes
    -----
    Walkable means passing :data:`WALK_FILTER`, the tag filter of osmnx's ``walk``
    network type. Lengths are Euclidean in the metric CRS, so they match the segment
    geometry used for snapping and partial edges; inside one UTM zone they differ from
    geodesic lengths by the UTM scale factor (< 0.1 %).
    """
    path = check_osm_path(path)
    metric_crs = as_metric_crs(crs) if crs is not None else None
    sha256 = file_sha256(path)
    target = _cache_path(settings, sha256, metric_crs) if settings is not None else None
    if target is not None:
        cached = _read_cache(target, path, sha256)
        if cached is not None:
            cached.metadata["cache"] = "hit"
            progress.info(f"walking network from cache: {target.name}")
            return cached

    with progress.step(f"read walking network {path.name}"):
        raw = _read_walkable_ways(path)
        if raw.way_id.size == 0:
            rejected = ", ".join(f"{k} {v}" for k, v in raw.rejected.items()) or "none"
            raise EmptyInputError(
                f"no walkable ways (osmnx 'walk' filter) among {raw.counts['ways_read']} ways "
                f"read; rejected: {rejected}",
                path=path,
            )
        net = _build_network(raw, path, sha256, metric_crs)
    if target is not None:
        _write_cache(target, net)
        net.metadata["cache"] = "written"
    else:
        net.metadata["cache"] = "off"
    return net


def largest_component_share(net: WalkNetwork) -> float:
    """Share of the total segment length in the largest connected component.

    Components are "largest" by length. Returns 0.0 for a network without length.

    Examples
    --------
    >>> import numpy as np
    >>> from pyproj import CRS
    >>> net = WalkNetwork(
    ...     node_id=np.arange(4), node_x_m=np.array([0.0, 30.0, 100.0, 110.0]),
    ...     node_y_m=np.zeros(4), edge_u=np.array([0, 2]), edge_v=np.array([1, 3]),
    ...     edge_length_m=np.array([30.0, 10.0]), edge_way_id=np.array([-1, -1]),
    ...     crs=CRS.from_epsg(32648))
    >>> largest_component_share(net)
    0.75
    """
    total = net.total_length_m
    if net.n_edges == 0 or total <= 0.0:
        return 0.0
    n = net.n_nodes
    graph = coo_matrix((np.ones(net.n_edges), (net.edge_u, net.edge_v)), shape=(n, n))
    n_components, label = connected_components(graph, directed=False)
    per_component = np.bincount(
        label[net.edge_u], weights=net.edge_length_m, minlength=n_components
    )
    return float(per_component.max() / total)
