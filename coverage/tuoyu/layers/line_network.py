"""Loading the walking network from any road line layer (not only OSM).

Planning offices hold road centrelines as GeoJSON, GeoPackage, Shapefile or GeoParquet.
This module reads such a layer with pyogrio and turns it into the same
:class:`~tuoyu.network.walk_network.WalkNetwork` the OSM loader produces: every
consecutive vertex pair of every line becomes one straight undirected segment (no
simplification), in a metric CRS (UTM zone of the data unless given), lengths in metres
measured there.

Topology is decided on the exact input coordinates, before any datum conversion: two
lines join where they share a vertex (bit-identical coordinates), so GCJ-02/BD-09
conversion noise can neither split nor merge a junction. Lines that cross without a
shared vertex are taken as a bridge or tunnel and do not join.

What a user must know about the layer (connected pieces, near-miss dangling ends,
dropped segments, excluded lines) is gathered in a :class:`LineNetworkReport`, stored
in ``network.metadata["report"]``. With ``join_tolerance_m`` set, dangling ends that
stop short of another line are joined to it (see :func:`load_line_network`).

Results are cached under ``settings.cache_dir / "networks"`` keyed by the file's sha256
and every parameter, as the OSM loader does. The cache helpers of
:mod:`tuoyu.layers.osm_network` are private and write the OSM ``source`` text, so the
few lines they need are repeated here.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError, FieldError, GeometryError
from pyproj import CRS, Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from tuoyu.config.data_registry import RegisteredFile, file_sha256, load_registry
from tuoyu.config.settings import Settings
from tuoyu.crs.china import convert, parse_crs_name
from tuoyu.crs.projection import WGS84, utm_crs_for
from tuoyu.errors import CRSError, DataNotFoundError, EmptyInputError, InputValidationError
from tuoyu.layers.osm_network import as_metric_crs
from tuoyu.network.cache import read_network_cache, write_network_cache
from tuoyu.network.graph import build_graph
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.progress import SILENT, Progress

__all__ = [
    "DEFAULT_DANGLE_RADIUS_M",
    "MAX_JOIN_TOLERANCE_M",
    "NAME_FIELDS",
    "SMALL_COMPONENT_M",
    "LineNetworkReport",
    "line_names",
    "load_line_network",
]

DEFAULT_DANGLE_RADIUS_M = 5.0
"""Dangling ends closer than this to a line they do not join are reported."""

MAX_JOIN_TOLERANCE_M = 50.0
"""Largest accepted ``join_tolerance_m`` (beyond it joins would invent streets)."""

SMALL_COMPONENT_M = 1000.0
"""A connected piece shorter than this (one 15-minute walk at 4 km/h) counts as small."""

_DETOUR_SLACK = 2.0
"""A near line counts as *not joined* when the walk to it along the network is longer
than the straight gap plus ``_DETOUR_SLACK × dangle radius``."""

_ON_LINE_M = 1e-3
"""Gaps up to 1 mm count as touching: projecting lon/lat leaves float noise (nm to µm)
between a line end and the line it was drawn onto, far below any survey precision."""

NAME_FIELDS: tuple[str, ...] = ("name", "NAME", "Name", "名称", "路名", "road_name")
"""Attribute fields taken as a line's street name, the first present wins."""

_PARQUET_SUFFIXES = (".parquet", ".geoparquet")
_LINE_TYPES = (1, 2, 5)  # shapely type ids: LineString, LinearRing, MultiLineString
_CACHE_FORMAT = 2  # 2: metadata["way_names"] added

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LineNetworkReport:
    """What a user must know about a network built from a road line layer.

    Attributes
    ----------
    lines_read
        Features in the file.
    lines_without_geometry
        Features with a missing or empty geometry (skipped).
    lines_excluded
        Features dropped by the ``exclude`` filter.
    excluded_by_field
        ``(field, count)`` pairs: features each field's list matched.
    segments_read
        Consecutive vertex pairs of the kept lines.
    zero_length_segments_dropped
        Pairs of identical consecutive vertices (dropped).
    duplicate_segments_dropped
        Segments joining the same two vertices as an earlier one (dropped).
    components
        Connected pieces of the final network.
    largest_component_share
        Share of the total length in the longest piece (0..1).
    small_components
        Pieces other than the longest that are shorter than ``small_component_m``.
    small_component_m
        The threshold of ``small_components``.
    dangle_radius_m
        Search radius for dangling ends.
    dangling_ends_near_lines
        Line ends joined to nothing that lie within ``dangle_radius_m`` of a line they
        do not join (counted before any join).
    join_tolerance_m
        Dangling ends within this gap were joined (``None``: no joining).
    dangling_ends_joined
        Dangling ends joined to the nearest line.
    connector_length_m
        Total length of the connecting segments added by joins.
    total_length_m
        Total length of the final network.
    """

    lines_read: int
    lines_without_geometry: int
    lines_excluded: int
    excluded_by_field: tuple[tuple[str, int], ...]
    segments_read: int
    zero_length_segments_dropped: int
    duplicate_segments_dropped: int
    components: int
    largest_component_share: float
    small_components: int
    small_component_m: float
    dangle_radius_m: float
    dangling_ends_near_lines: int
    join_tolerance_m: float | None
    dangling_ends_joined: int
    connector_length_m: float
    total_length_m: float

    def summary(self) -> str:
        """The report in two lines.

        Examples
        --------
        >>> report = LineNetworkReport(
        ...     lines_read=10, lines_without_geometry=0, lines_excluded=2,
        ...     excluded_by_field=(("kind", 2),), segments_read=30,
        ...     zero_length_segments_dropped=1, duplicate_segments_dropped=1,
        ...     components=2, largest_component_share=0.9, small_components=1,
        ...     small_component_m=1000.0, dangle_radius_m=5.0, dangling_ends_near_lines=3,
        ...     join_tolerance_m=None, dangling_ends_joined=0, connector_length_m=0.0,
        ...     total_length_m=2500.0)
        >>> print(report.summary())
        2.5 km in 2 connected pieces, the largest 90.0 % of the length, 1 under 1,000 m; 3 dangling ends within 5 m of a line they do not join (not joined: no join tolerance)
        10 lines read, 2 excluded, 0 without geometry; 1 zero-length and 1 duplicate segments dropped
        """
        if self.join_tolerance_m is None:
            joined = "not joined: no join tolerance"
        else:
            joined = (
                f"{self.dangling_ends_joined} joined within {self.join_tolerance_m:g} m, "
                f"{self.connector_length_m:.1f} m of connectors added"
            )
        first = (
            f"{self.total_length_m / 1000:,.1f} km in {self.components:,} connected pieces, "
            f"the largest {100 * self.largest_component_share:.1f} % of the length, "
            f"{self.small_components:,} under {self.small_component_m:,.0f} m; "
            f"{self.dangling_ends_near_lines:,} dangling ends within "
            f"{self.dangle_radius_m:g} m of a line they do not join ({joined})"
        )
        second = (
            f"{self.lines_read:,} lines read, {self.lines_excluded:,} excluded, "
            f"{self.lines_without_geometry:,} without geometry; "
            f"{self.zero_length_segments_dropped:,} zero-length and "
            f"{self.duplicate_segments_dropped:,} duplicate segments dropped"
        )
        return f"{first}\n{second}"

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly fields (``excluded_by_field`` as a dict)."""
        out = asdict(self)
        out["excluded_by_field"] = dict(self.excluded_by_field)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LineNetworkReport:
        """Inverse of :meth:`as_dict`."""
        fields = dict(data)
        by_field = fields.pop("excluded_by_field", {})
        pairs = tuple((str(k), int(v)) for k, v in dict(by_field).items())  # type: ignore[call-overload]
        return cls(excluded_by_field=pairs, **fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Segments:
    """Distinct undirected segments between exact input vertices."""

    vertex_xy: FloatArray  # (k, 2) exact input coordinates of the used vertices
    u: IntArray
    v: IntArray
    row: IntArray  # 0-based feature index of each segment's line
    segments_read: int
    zero_length: int
    duplicates: int


def _read_layer(path: Path) -> gpd.GeoDataFrame:
    if not path.exists():
        raise DataNotFoundError(f"road line layer not found: {path}")
    if path.suffix.lower() in _PARQUET_SUFFIXES and "Parquet" not in pyogrio.list_drivers():
        return _read_parquet(path)
    try:
        frame = pyogrio.read_dataframe(path)
    except (
        DataSourceError,
        DataLayerError,
        FieldError,
        GeometryError,
        RecursionError,  # absurdly nested GeoJSON
        UnicodeDecodeError,
        ValueError,
        RuntimeError,
    ) as exc:
        raise InputValidationError(f"cannot read road line layer: {exc}", path=path) from exc
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name not in frame.columns:
        raise InputValidationError("the layer has no geometry column", path=path)
    if len(frame) == 0:
        raise EmptyInputError("the road line layer has no features", path=path)
    return frame


def _read_parquet(path: Path) -> gpd.GeoDataFrame:
    """GeoParquet through geopandas/pyarrow when pyogrio's GDAL lacks the Parquet driver."""
    try:
        import pyarrow  # noqa: F401  (only probing that it is installed)
    except ImportError as exc:
        raise InputValidationError(
            "reading GeoParquet needs pyarrow (pip install pyarrow) or a GDAL with the "
            "Parquet driver; neither is installed. Or save the layer as GeoPackage",
            path=path,
        ) from exc
    try:
        frame = gpd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputValidationError(f"cannot read GeoParquet: {exc}", path=path) from exc
    if len(frame) == 0:
        raise EmptyInputError("the road line layer has no features", path=path)
    return frame


def line_names(frame: pd.DataFrame) -> tuple[dict[str, str], str | None]:
    """Street names of a line layer by 0-based feature index, and the field they came from.

    The first field of :data:`NAME_FIELDS` the layer has is used; features without a name
    (missing or blank) are left out.

    Examples
    --------
    >>> import pandas as pd
    >>> line_names(pd.DataFrame({"name": ["东四十条", None, "  "], "kind": [1, 2, 3]}))
    ({'0': '东四十条'}, 'name')
    >>> line_names(pd.DataFrame({"kind": [1]}))
    ({}, None)
    """
    field = next((c for c in NAME_FIELDS if c in frame.columns), None)
    if field is None:
        return {}, None
    names: dict[str, str] = {}
    for i, value in enumerate(frame[field].tolist()):
        if isinstance(value, str) and value.strip():
            names[str(i)] = value.strip()
    return names, field


def _check_geometry(path: Path, geoms: npt.NDArray[np.object_]) -> npt.NDArray[np.bool_]:
    """Mask of features with a usable line geometry; raise on any other type."""
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    type_id = shapely.get_type_id(geoms)
    bad = np.flatnonzero(~missing & ~np.isin(type_id, _LINE_TYPES))
    if bad.size:
        i = int(bad[0])
        raise InputValidationError(
            f"geometry is a {geoms[i].geom_type}, not a "
            f"LineString or MultiLineString ({bad.size} such features; first shown)",
            path=path,
            row=i + 1,
            field="geometry",
        )
    return ~missing


def _excluded(
    path: Path, frame: gpd.GeoDataFrame, exclude: Mapping[str, Sequence[object]]
) -> tuple[npt.NDArray[np.bool_], tuple[tuple[str, int], ...]]:
    """Mask of features whose attribute is in an exclude list, and counts per field."""
    drop = np.zeros(len(frame), dtype=bool)
    counts: list[tuple[str, int]] = []
    for field, values in sorted(exclude.items()):
        if field not in frame.columns or field == frame.geometry.name:
            known = ", ".join(str(c) for c in frame.columns if c != frame.geometry.name)
            raise InputValidationError(
                f"exclude names a field the layer does not have (fields: {known or 'none'})",
                path=path,
                field=field,
            )
        column = frame[field]
        wanted = list(values)
        # Raw comparison (3 == 3.0) and text comparison ("3" given for an int field).
        hit = column.isin(wanted).to_numpy(dtype=bool) | column.astype(str).isin(
            [str(v) for v in wanted]
        ).to_numpy(dtype=bool)
        hit &= column.notna().to_numpy(dtype=bool)
        counts.append((str(field), int(hit.sum())))
        drop |= hit
    return drop, tuple(counts)


def _segments(path: Path, geoms: npt.NDArray[np.object_], rows: IntArray) -> _Segments:
    """Segments of the lines ``geoms[rows]``, vertices identified by exact coordinates."""
    parts, part_of = shapely.get_parts(geoms[rows], return_index=True)
    coords, part_index = shapely.get_coordinates(parts, return_index=True)
    row_of_part = rows[part_of]
    finite = np.isfinite(coords).all(axis=1)
    if not finite.all():
        i = int(row_of_part[part_index[np.flatnonzero(~finite)[0]]])
        raise InputValidationError(
            "line has a non-finite coordinate", path=path, row=i + 1, field="geometry"
        )
    # + 0.0 turns -0.0 into 0.0 so equal coordinates compare equal byte for byte.
    unique_xy, inverse = np.unique(coords + 0.0, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    first = np.flatnonzero(part_index[:-1] == part_index[1:])
    u = inverse[first]
    v = inverse[first + 1]
    row = row_of_part[part_index[first]].astype(np.int64)
    zero = u == v
    u, v, row = u[~zero], v[~zero], row[~zero]
    lo = np.minimum(u, v)
    hi = np.maximum(u, v)
    # Each undirected pair once; the first in file order keeps its row.
    _, first_of_pair = np.unique(lo * np.int64(unique_xy.shape[0]) + hi, return_index=True)
    first_of_pair.sort()
    u, v, row = u[first_of_pair], v[first_of_pair], row[first_of_pair]
    used, remap = np.unique(np.concatenate([u, v]), return_inverse=True)
    m = u.size
    return _Segments(
        vertex_xy=unique_xy[used],
        u=remap[:m].astype(np.int64),
        v=remap[m:].astype(np.int64),
        row=row,
        segments_read=int(first.size),
        zero_length=int(zero.sum()),
        duplicates=int(zero.size - zero.sum() - first_of_pair.size),
    )


def _to_lonlat(
    path: Path, xy: FloatArray, declared: str, file_crs: CRS | None
) -> tuple[FloatArray, FloatArray]:
    """WGS84 longitude/latitude of input coordinates in the declared system."""
    parsed = parse_crs_name(declared)
    if isinstance(parsed, CRS):
        lon, lat = Transformer.from_crs(parsed, WGS84, always_xy=True).transform(xy[:, 0], xy[:, 1])
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    if (np.abs(xy[:, 0]) > 180.0).any() or (np.abs(xy[:, 1]) > 90.0).any():
        stated = f"; the file states {file_crs.to_string()}" if file_crs is not None else ""
        raise CRSError(
            f"{path}: coordinates such as ({xy[0, 0]:.1f}, {xy[0, 1]:.1f}) are not "
            f"longitude/latitude, but the layer was declared '{declared}'{stated}; "
            "set the layer's crs to its EPSG: code"
        )
    return convert(xy[:, 0], xy[:, 1], parsed, "wgs84")


# --------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class _NearMiss:
    """For each dangling end with a near line it does not join: the nearest such line."""

    node: IntArray
    edge: IntArray
    gap_m: FloatArray
    t: FloatArray  # position of the nearest point along the edge (0 at u, 1 at v)


def _near_misses(net: WalkNetwork, radius_m: float, search_m: float) -> _NearMiss:
    """Dangling ends within ``search_m`` of a segment they are not joined to.

    "Not joined" means the walk from the end to the nearest point of that segment along
    the network is longer than the gap plus ``_DETOUR_SLACK × radius_m`` (so the last
    short segments of the end's own street, or a street it meets a few metres on, do
    not count). Network distances come from a Dijkstra bounded at that length.
    """
    empty = _NearMiss(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    degree = np.bincount(np.concatenate([net.edge_u, net.edge_v]), minlength=net.n_nodes)
    ends = np.flatnonzero(degree == 1)
    if ends.size == 0:
        return empty
    xy = net.node_xy()
    segments = net.edge_segments()
    lines: npt.NDArray[np.object_] = np.asarray(shapely.linestrings(segments), dtype=object)
    tree = shapely.STRtree(lines)
    query, edge = tree.query(shapely.points(xy[ends]), predicate="dwithin", distance=search_m)
    node = ends[query]
    not_incident = (net.edge_u[edge] != node) & (net.edge_v[edge] != node)
    node, edge = node[not_incident], edge[not_incident]
    if node.size == 0:
        return empty
    a = segments[edge, 0]
    b = segments[edge, 1]
    ab = b - a
    span2 = (ab * ab).sum(axis=1)
    t = np.clip(((xy[node] - a) * ab).sum(axis=1) / np.where(span2 > 0, span2, 1.0), 0.0, 1.0)
    nearest = a + t[:, None] * ab
    gap_m = np.hypot(*(xy[node] - nearest).T)
    along_a = np.hypot(*(nearest - a).T)
    along_b = np.hypot(*(nearest - b).T)

    limit_m = search_m + _DETOUR_SLACK * radius_m
    csr = build_graph(net).csr
    sources, source_of = np.unique(node, return_inverse=True)
    walk_m = np.empty(node.size)
    # Bounded searches in blocks of 256 sources keep the dense (sources × nodes) result
    # of scipy's dijkstra small.
    for start in range(0, sources.size, 256):
        block = sources[start : start + 256]
        dist = dijkstra(csr, directed=False, indices=block, limit=limit_m)
        pick = (source_of >= start) & (source_of < start + block.size)
        rows = source_of[pick] - start
        walk_m[pick] = np.minimum(
            dist[rows, net.edge_u[edge[pick]]] + along_a[pick],
            dist[rows, net.edge_v[edge[pick]]] + along_b[pick],
        )
    apart = walk_m > gap_m + _DETOUR_SLACK * radius_m
    node, edge, gap_m, t = node[apart], edge[apart], gap_m[apart], t[apart]
    # The nearest not-joined segment of each end.
    order = np.lexsort((edge, gap_m, node))
    node, edge, gap_m, t = node[order], edge[order], gap_m[order], t[order]
    first = np.ones(node.size, dtype=bool)
    first[1:] = node[1:] != node[:-1]
    return _NearMiss(node[first], edge[first], gap_m[first], t[first])


def _join(net: WalkNetwork, near: _NearMiss, tolerance_m: float) -> tuple[WalkNetwork, int, float]:
    """Join each dangling end within ``tolerance_m`` to its nearest not-joined segment.

    The end is connected to the segment's nearer end vertex when that lies within the
    tolerance (no split), otherwise the segment is split at the nearest point and a
    connector added (none when the end lies on the segment, within ``_ON_LINE_M``).
    Connectors carry row -1.
    Returns the new network, the number of ends joined and the connector length.
    """
    chosen = near.gap_m <= tolerance_m + _ON_LINE_M
    if not chosen.any():
        return net, 0, 0.0
    x = list(net.node_x_m)
    y = list(net.node_y_m)
    splits: dict[int, list[tuple[float, int]]] = {}
    connectors: list[tuple[int, int]] = []
    # A Python loop: joins are few (hundreds at most) and each may split a segment.
    for d, e, t in zip(near.node[chosen], near.edge[chosen], near.t[chosen], strict=True):
        d, e = int(d), int(e)
        a, b = int(net.edge_u[e]), int(net.edge_v[e])
        gap_a = math.hypot(x[d] - x[a], y[d] - y[a])
        gap_b = math.hypot(x[d] - x[b], y[d] - y[b])
        if min(gap_a, gap_b) <= tolerance_m + _ON_LINE_M:
            connectors.append((d, a if gap_a <= gap_b else b))
            continue
        px = x[a] + float(t) * (x[b] - x[a])
        py = y[a] + float(t) * (y[b] - y[a])
        if math.hypot(px - x[d], py - y[d]) <= _ON_LINE_M:  # on the line: split at the end
            splits.setdefault(e, []).append((float(t), d))
            continue
        x.append(px)
        y.append(py)
        splits.setdefault(e, []).append((float(t), len(x) - 1))
        connectors.append((d, len(x) - 1))

    keep = np.ones(net.n_edges, dtype=bool)
    new_u: list[int] = []
    new_v: list[int] = []
    new_row: list[int] = []
    for e, points in splits.items():
        keep[e] = False
        chain = [int(net.edge_u[e]), *(n for _, n in sorted(points)), int(net.edge_v[e])]
        new_u.extend(chain[:-1])
        new_v.extend(chain[1:])
        new_row.extend([int(net.edge_way_id[e])] * (len(chain) - 1))
    for d, target in connectors:
        new_u.append(d)
        new_v.append(target)
        new_row.append(-1)
    u = np.concatenate([net.edge_u[keep], np.asarray(new_u, dtype=np.int64)])
    v = np.concatenate([net.edge_v[keep], np.asarray(new_v, dtype=np.int64)])
    row = np.concatenate([net.edge_way_id[keep], np.asarray(new_row, dtype=np.int64)])
    n = len(x)
    # Two ends facing each other may each add the same connector: keep each pair once.
    _, first = np.unique(np.minimum(u, v) * np.int64(n) + np.maximum(u, v), return_index=True)
    first.sort()
    u, v, row = u[first], v[first], row[first]
    node_x = np.asarray(x, dtype=np.float64)
    node_y = np.asarray(y, dtype=np.float64)
    length_m = np.hypot(node_x[u] - node_x[v], node_y[u] - node_y[v])
    joined = WalkNetwork(
        node_id=np.arange(n, dtype=np.int64),
        node_x_m=node_x,
        node_y_m=node_y,
        edge_u=u,
        edge_v=v,
        edge_length_m=length_m,
        edge_way_id=row,
        crs=net.crs,
        source=net.source,
        metadata=dict(net.metadata),
    )
    connector_m = float(length_m[row == -1].sum())
    return joined, int(chosen.sum()), connector_m


def _components(net: WalkNetwork) -> tuple[int, float, int]:
    """Connected pieces, the longest one's length share, other pieces under 1 km."""
    n = net.n_nodes
    graph = coo_matrix((np.ones(net.n_edges), (net.edge_u, net.edge_v)), shape=(n, n))
    count, label = connected_components(graph, directed=False)
    per = np.bincount(label[net.edge_u], weights=net.edge_length_m, minlength=count)
    total = float(per.sum())
    share = float(per.max() / total) if total > 0 else 0.0
    others = np.delete(per, int(np.argmax(per)))
    return int(count), share, int(np.count_nonzero(others < SMALL_COMPONENT_M))


# --------------------------------------------------------------------------- caching


def _source(path: Path, sha256: str) -> str:
    return f"{path} (sha256 {sha256}; road line layer, not OSM)"


def _cache_path(settings: Settings, sha256: str, params: Mapping[str, object]) -> Path:
    text = json.dumps({**params, "format": _CACHE_FORMAT}, sort_keys=True, ensure_ascii=False)
    tag = hashlib.sha256(text.encode()).hexdigest()[:10]
    return Path(settings.cache_dir) / "networks" / f"{sha256}-lines{tag}.npz"


def _write_cache(target: Path, net: WalkNetwork) -> None:
    metadata = dict(net.metadata)
    report = metadata.get("report")
    if isinstance(report, LineNetworkReport):
        metadata["report"] = report.as_dict()
    write_network_cache(target, net, metadata)


def _read_cache(target: Path, path: Path, sha256: str) -> WalkNetwork | None:
    """The cached network, or ``None`` when the entry is missing or unreadable."""
    net = read_network_cache(target, _source(path, sha256))
    if net is None:
        return None
    stored = net.metadata.get("report")
    if not isinstance(stored, Mapping):
        return None  # an entry from another layout is rebuilt
    try:
        net.metadata["report"] = LineNetworkReport.from_dict(stored)
    except (KeyError, TypeError, ValueError):
        return None
    return net


def _registry_entry(sha256: str, settings: Settings | None) -> RegisteredFile | None:
    """The registry entry of the file with this sha256 (wherever the file lies)."""
    registry = load_registry(settings.project_data_dir if settings is not None else None)
    return next((e for e in registry.values() if e.sha256 == sha256), None)


# --------------------------------------------------------------------------- public


def _check_parameters(
    join_tolerance_m: float | None, dangle_radius_m: float
) -> tuple[float | None, float]:
    if join_tolerance_m is not None and not 0.0 <= join_tolerance_m <= MAX_JOIN_TOLERANCE_M:
        raise InputValidationError(
            f"join_tolerance_m must be between 0 and {MAX_JOIN_TOLERANCE_M:g} m, "
            f"got {join_tolerance_m}"
        )
    if not (math.isfinite(dangle_radius_m) and dangle_radius_m > 0.0):
        raise InputValidationError(f"dangle_radius_m must be positive, got {dangle_radius_m}")
    tolerance = None if join_tolerance_m is None else float(join_tolerance_m)
    return tolerance, float(dangle_radius_m)


def load_line_network(
    path: str | Path,
    *,
    crs: str = "wgs84",
    exclude: Mapping[str, Sequence[str | int | float]] | None = None,
    join_tolerance_m: float | None = None,
    dangle_radius_m: float = DEFAULT_DANGLE_RADIUS_M,
    metric_crs: CRS | str | int | None = None,
    settings: Settings | None = None,
    progress: Progress = SILENT,
) -> WalkNetwork:
    """Load a road line layer as an undirected walking network.

    Parameters
    ----------
    path
        Any line layer pyogrio reads: ``.geojson``, ``.gpkg``, ``.shp``, ``.parquet``
        (GeoParquet), ...; LineString and MultiLineString features.
    crs
        Coordinate system of the file's coordinates: ``wgs84``, ``gcj02``, ``bd09`` or an
        ``EPSG:`` code (overrides what the file states; GeoJSON always claims WGS84).
    exclude
        ``{field: [values]}``: drop lines whose attribute is one of the values (for
        example expressway main lanes). Values match as given or as text.
    join_tolerance_m
        When set (0–50 m), dangling ends within this gap of a line they do not join are
        joined to it: to its nearer end vertex when that is within the tolerance, else
        to the nearest point (the segment is split there). ``None`` joins nothing.
    dangle_radius_m
        Dangling ends within this distance of a line they do not join are reported.
    metric_crs
        Metric CRS of the result; default the UTM zone of the network's centre.
    settings
        Enables the on-disk cache in ``settings.cache_dir / "networks"`` and names the
        registry; ``None`` reads the file every time and writes nothing.
    progress
        Progress reporter; the report is printed through ``progress.info``.

    Returns
    -------
    WalkNetwork
        Node ids ``0..n-1``; one segment per consecutive vertex pair, each undirected
        pair once; ``edge_way_id`` is the 0-based feature index in the file (-1 for
        connectors added by joins). ``metadata`` holds ``osm`` (False), ``file``,
        ``sha256``, ``attribution``/``origin``/``licence`` from the data registry when
        the file is registered (else ``None``), the parameters, ``report`` (a
        :class:`LineNetworkReport`), ``way_names`` (``{feature index as text: street
        name}`` from the first field of :data:`NAME_FIELDS` the layer has, named in
        ``way_name_field``; unnamed lines left out) and ``cache``
        (``hit``/``written``/``off``).

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    InputValidationError
        Unreadable file, a feature that is not a line (row named), a missing exclude
        field, bad parameters, or no segment left
        (:class:`~tuoyu.errors.EmptyInputError`).
    CRSError
        Unknown ``crs``, coordinates that are not longitude/latitude under a declared
        datum, or ``metric_crs`` not a projected CRS in metres.

    Notes
    -----
    Lines join only at bit-identical vertices of the input, decided before any datum
    conversion; crossings without a shared vertex are bridges or tunnels. A dangling
    end is a vertex used by one segment only; it is reported when a segment it is not
    incident to lies within ``dangle_radius_m`` and the walk there along the network is
    longer than the gap plus twice the radius (so it is not joined to it nearby).
    Lengths are Euclidean in the metric CRS.
    """
    path = Path(path)
    parse_crs_name(crs)  # fail early on an unknown name
    tolerance_m, radius_m = _check_parameters(join_tolerance_m, dangle_radius_m)
    target_crs = as_metric_crs(metric_crs) if metric_crs is not None else None
    exclude_lists = {str(k): list(v) for k, v in (exclude or {}).items()}
    if not path.is_file():
        raise DataNotFoundError(f"road line layer not found: {path}")
    sha256 = file_sha256(path)
    params: dict[str, object] = {
        "crs": str(crs).strip().lower(),
        "exclude": {k: [str(v) for v in vals] for k, vals in sorted(exclude_lists.items())},
        "join_tolerance_m": tolerance_m,
        "dangle_radius_m": radius_m,
        "metric_crs": None if target_crs is None else target_crs.to_wkt(),
    }
    cache = _cache_path(settings, sha256, params) if settings is not None else None
    if cache is not None:
        cached = _read_cache(cache, path, sha256)
        if cached is not None:
            cached.metadata["cache"] = "hit"
            progress.info(f"road network from cache: {cache.name}")
            _print_report(cached, progress)
            return cached

    with progress.step(f"read road line layer {path.name}"):
        net = _build(path, sha256, crs, exclude_lists, tolerance_m, radius_m, target_crs)
    entry = _registry_entry(sha256, settings)
    net.metadata.update(
        {
            "attribution": None if entry is None else (entry.attribution or entry.origin),
            "origin": None if entry is None else entry.origin,
            "licence": None if entry is None else entry.licence,
        }
    )
    if cache is not None:
        _write_cache(cache, net)
        net.metadata["cache"] = "written"
    else:
        net.metadata["cache"] = "off"
    _print_report(net, progress)
    return net


def _print_report(net: WalkNetwork, progress: Progress) -> None:
    report = net.metadata.get("report")
    if isinstance(report, LineNetworkReport):
        for line in report.summary().splitlines():
            progress.info(f"  {line}")


def _build(
    path: Path,
    sha256: str,
    crs: str,
    exclude: Mapping[str, Sequence[object]],
    tolerance_m: float | None,
    radius_m: float,
    target_crs: CRS | None,
) -> WalkNetwork:
    frame = _read_layer(path)
    names, name_field = line_names(frame)
    geoms = np.asarray(frame.geometry.array, dtype=object)
    has_geometry = _check_geometry(path, geoms)
    dropped, by_field = _excluded(path, frame, exclude)
    rows = np.flatnonzero(has_geometry & ~dropped).astype(np.int64)
    if rows.size == 0:
        raise EmptyInputError(
            f"no lines left: {int(dropped.sum())} excluded, "
            f"{int((~has_geometry & ~dropped).sum())} without geometry",
            path=path,
        )
    seg = _segments(path, geoms, rows)
    if seg.u.size == 0:
        raise EmptyInputError(
            "no segments: the lines have no two distinct consecutive vertices", path=path
        )
    lon, lat = _to_lonlat(path, seg.vertex_xy, crs, frame.crs)
    if target_crs is None:
        target_crs = utm_crs_for(
            float((lon.min() + lon.max()) / 2.0), float((lat.min() + lat.max()) / 2.0)
        )
    x_m, y_m = Transformer.from_crs(WGS84, target_crs, always_xy=True).transform(lon, lat)
    node_x = np.asarray(x_m, dtype=np.float64)
    node_y = np.asarray(y_m, dtype=np.float64)
    net = WalkNetwork(
        node_id=np.arange(node_x.size, dtype=np.int64),
        node_x_m=node_x,
        node_y_m=node_y,
        edge_u=seg.u,
        edge_v=seg.v,
        edge_length_m=np.hypot(node_x[seg.u] - node_x[seg.v], node_y[seg.u] - node_y[seg.v]),
        edge_way_id=seg.row,
        crs=target_crs,
        source=_source(path, sha256),
    )
    search_m = max(radius_m, tolerance_m or 0.0)
    near = _near_misses(net, radius_m, search_m)
    n_near = int(np.count_nonzero(near.gap_m <= radius_m))
    joined, connector_m = 0, 0.0
    if tolerance_m is not None:
        net, joined, connector_m = _join(net, near, tolerance_m)
    components, share, small = _components(net)
    report = LineNetworkReport(
        lines_read=len(frame),
        lines_without_geometry=int((~has_geometry & ~dropped).sum()),
        lines_excluded=int(dropped.sum()),
        excluded_by_field=by_field,
        segments_read=seg.segments_read,
        zero_length_segments_dropped=seg.zero_length,
        duplicate_segments_dropped=seg.duplicates,
        components=components,
        largest_component_share=share,
        small_components=small,
        small_component_m=SMALL_COMPONENT_M,
        dangle_radius_m=radius_m,
        dangling_ends_near_lines=n_near,
        join_tolerance_m=tolerance_m,
        dangling_ends_joined=joined,
        connector_length_m=connector_m,
        total_length_m=net.total_length_m,
    )
    metadata: dict[str, object] = {
        "osm": False,
        "file": str(path),
        "sha256": sha256,
        "source_crs": str(crs),
        "exclude": {k: list(v) for k, v in exclude.items()},
        "join_tolerance_m": tolerance_m,
        "dangle_radius_m": radius_m,
        "edge_way_id": "0-based feature index in the file; -1 for connectors added by joins",
        "way_names": names,
        "way_name_field": name_field,
        "length_method": "euclidean in the metric CRS",
        "report": report,
    }
    return WalkNetwork(
        node_id=net.node_id,
        node_x_m=net.node_x_m,
        node_y_m=net.node_y_m,
        edge_u=net.edge_u,
        edge_v=net.edge_v,
        edge_length_m=net.edge_length_m.astype(np.float64),
        edge_way_id=net.edge_way_id,
        crs=target_crs,
        source=_source(path, sha256),
        metadata=metadata,
    )
