"""Isochrone polygons: the area within 5/10/15 walking minutes of a facility.

Definition (GUIDE §3): the reached edges, with partial edges cut at the exact remaining
distance, buffered by ``buffer_m`` and unioned. For an edge ``(u, v)`` of length ``L``
with remaining budgets ``r_u = T − d(u)`` and ``r_v = T − d(v)`` the whole segment is
covered when ``r_u + r_v ≥ L``, else the pieces ``[u, u + r_u]`` and ``[v − r_v, v]``.
The source's own edge is covered from the snapped point both ways by ``T − access_m``,
and the access leg (input point → snapped point) is drawn too.

How the union is built (measured, see ``benchmarks/isochrones.py``): a GEOS union of
hundreds of small buffered segments costs tens of milliseconds per polygon, so the
pieces are first polygonised into the *faces* they enclose (street blocks). The buffer
of a face's boundary, seen from inside the face, is the face minus its inward erosion
by ``buffer_m``; so the isochrone is ``buffer(faces ∪ loose pieces)`` with the eroded
faces cut out as holes. Only the loose pieces (dead ends, the cut frontier, the access
leg, bridges crossing without a shared node) go through an overlay; the holes are added
by construction. The result is the plain union of the buffered segments: identical (to
1e-6 m²) on axis-parallel grids, and elsewhere differing only in how GEOS approximates
round arcs and simplifies buffered polylines (Hausdorff distance ≤ 4 % of ``buffer_m``
in the tests, on synthetic cities and on Yuzhong), at 2–5× less CPU (measured: 14 vs
65 ms per 15-minute polygon on a synthetic city, 21 vs 52 ms on Yuzhong).

Two faster variants, named as approximations in the ``method`` column: the gridded
polygons of :mod:`tuoyu.isochrones.grid` (the same region traced on a lattice, ≈2 % area
error, tens of times faster: for many facilities) and the concave hull of the reached
points (:func:`concave_hull_isochrones`).
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final, cast

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon, Polygon

from tuoyu.errors import InputValidationError
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.progress import SILENT, Progress
from tuoyu.types import LocalReach, SnappedPoints

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Isochrone = Polygon | MultiPolygon

METHOD_EDGE_BUFFER: Final = "edge_buffer"
"""``method`` value of exact isochrones: reached edges, cut exactly, buffered (路网缓冲，精确)."""

METHOD_CONCAVE_HULL: Final = "concave_hull_approx"
"""``method`` value of the concave-hull approximation (凹包近似)."""

METHOD_GRID: Final = "grid_approx"
"""``method`` value of gridded isochrones (:mod:`tuoyu.isochrones.grid`, 格网追踪近似)."""

METHOD_WALK_FIELD: Final = "walk_field"
"""``method`` value of walk-field isochrones (:mod:`tuoyu.isochrones.walk_field`): the area
whose points the search gives the facility within the time (与步行查询一致)."""

METHOD_LABELS: Final[dict[str, tuple[str, str]]] = {
    METHOD_WALK_FIELD: (
        "步行时间场等时圈（与查询一致）",
        "Walk-field isochrone (agrees with the search)",
    ),
    METHOD_EDGE_BUFFER: ("路网缓冲等时圈（精确）", "Edge-buffer isochrone (exact)"),
    METHOD_CONCAVE_HULL: ("凹包等时圈（近似）", "Concave-hull isochrone (approximate)"),
    METHOD_GRID: ("格网追踪等时圈（近似）", "Gridded edge-buffer isochrone (approximate)"),
}
"""``method`` value → (Chinese label, English label)."""

ISOCHRONE_COLUMNS: Final = ("facility_id", "minutes", "method", "area_m2", "geometry")
"""Columns of :func:`facility_isochrones` and :func:`concave_hull_isochrones`."""

UNION_COLUMNS: Final = ("minutes", "method", "n_facilities", "area_m2", "geometry")
"""Columns of :func:`union_isochrones`."""

_COLUMN_LABELS: Final[dict[str, tuple[str, str]]] = {
    "facility_id": ("机构编号", "Facility"),
    "minutes": ("步行时间（分钟）", "Walking time (min)"),
    "method": ("等时圈算法", "Isochrone method"),
    "area_m2": ("面积（平方米）", "Area (m²)"),
    "n_facilities": ("机构数（家）", "Facilities"),
}

DEFAULT_CONCAVE_RATIO: Final = 0.1
"""Default ``shapely.concave_hull`` ratio of the approximation (smallest mean area error
against the exact polygons on synthetic cities, buffered by 25 m)."""

NEST_TOLERANCE_M: Final = 1e-3
"""Largest outward nudge (metres) used to make nested isochrones cover each other exactly."""

_ACCESS_EDGE: Final = -1
"""``CoveredPieces.edge`` value of the access leg."""


def _empty_polygon() -> Polygon:
    return Polygon()


# --------------------------------------------------------------------------------------
# Per-network preparation
# --------------------------------------------------------------------------------------


class IsochroneBuilder:
    """What isochrone building needs from a network, prepared once and reused.

    Holds the node → incident-edge index (CSR arrays) and, computed on first use, which
    edges are *clean*: they meet other edges only at shared end points. Pieces of clean
    edges can be polygonised directly; pieces of the others (bridges and tunnels that
    cross streets without a shared node, overlapping or T-joined segments) are buffered
    on their own so that the result stays exact on real OSM networks.

    Parameters
    ----------
    network
        The walking network (metric CRS).

    Examples
    --------
    >>> import numpy as np
    >>> from pyproj import CRS
    >>> net = WalkNetwork(np.arange(3), np.array([0.0, 100.0, 200.0]), np.zeros(3),
    ...     np.array([0, 1]), np.array([1, 2]), np.array([100.0, 100.0]),
    ...     np.full(2, -1), CRS.from_epsg(32648))
    >>> sorted(IsochroneBuilder(net).incident_edges(np.array([1])).tolist())
    [0, 1]
    """

    def __init__(self, network: WalkNetwork) -> None:
        self.network = network
        n = network.n_nodes
        u = np.asarray(network.edge_u, dtype=np.int64)
        v = np.asarray(network.edge_v, dtype=np.int64)
        m = u.shape[0]
        if m and (min(int(u.min()), int(v.min())) < 0 or max(int(u.max()), int(v.max())) >= n):
            raise InputValidationError("an edge refers to a node index outside the network")
        from tuoyu.network._kernels import incidence

        self._inc_ptr: IntArray
        self._inc_edges: IntArray
        self._inc_ptr, self._inc_edges = incidence(u, v, n)
        self._length_m: FloatArray = np.asarray(network.edge_length_m, dtype=np.float64)

    @cached_property
    def _p0(self) -> FloatArray:
        """Start coordinates of each edge, shape (m, 2) (built on first use)."""
        p0: FloatArray = self.network.node_xy()[np.asarray(self.network.edge_u, dtype=np.int64)]
        return p0

    @cached_property
    def _p1(self) -> FloatArray:
        """End coordinates of each edge, shape (m, 2) (built on first use)."""
        p1: FloatArray = self.network.node_xy()[np.asarray(self.network.edge_v, dtype=np.int64)]
        return p1

    def incident_edges(self, nodes: IntArray) -> IntArray:
        """Indices of the edges incident to ``nodes`` (an edge may appear twice)."""
        nodes = np.asarray(nodes, dtype=np.int64)
        starts = self._inc_ptr[nodes]
        counts = self._inc_ptr[nodes + 1] - starts
        total = int(counts.sum())
        first = np.cumsum(counts) - counts
        pos = np.repeat(starts - first, counts) + np.arange(total, dtype=np.int64)
        return self._inc_edges[pos]

    @cached_property
    def clean(self) -> BoolArray:
        """True for edges that touch other edges only at shared end points (per edge).

        Candidate pairs come from an STRtree bounding-box query, in chunks; the exact
        test is :func:`_unclean_pairs`. A whole-network pass (measured ~0.25 CPU-s per
        10⁵ edges), so it is computed once per network, on first use, and kept beside
        the network for as long as the network lives: every builder of the same
        network object shares it (:func:`clean_edges`). Read-only.
        """
        return clean_edges(self.network, self._p0, self._p1)


_CLEAN_CACHE: dict[int, tuple[weakref.ref[WalkNetwork], BoolArray]] = {}
"""``id(network)`` → (weak reference to the network, its clean-edge mask)."""
_CLEAN_LOCK = threading.Lock()


def clean_edges(network: WalkNetwork, p0: FloatArray, p1: FloatArray) -> BoolArray:
    """The clean-edge mask of ``network`` (see :attr:`IsochroneBuilder.clean`), once per network.

    The mask is cached per network object and dropped when the network is garbage
    collected (a weak reference: the cache never keeps a network alive). Two threads
    asking at once compute it once.

    Parameters
    ----------
    network
        The walking network (the cache key, by identity).
    p0, p1
        Edge end coordinates, shape (m, 2).

    Returns
    -------
    numpy.ndarray
        Read-only boolean mask, one value per edge.
    """
    key = id(network)
    with _CLEAN_LOCK:
        hit = _CLEAN_CACHE.get(key)
        if hit is not None and hit[0]() is network:
            return hit[1]
        mask = _clean_mask(p0, p1)
        mask.flags.writeable = False
        ref = weakref.ref(network, functools.partial(_drop_clean, key))
        _CLEAN_CACHE[key] = (ref, mask)
        return mask


def _drop_clean(key: int, ref: weakref.ref[WalkNetwork]) -> None:
    entry = _CLEAN_CACHE.get(key)
    if entry is not None and entry[0] is ref:
        del _CLEAN_CACHE[key]


def _clean_mask(p0: FloatArray, p1: FloatArray) -> BoolArray:
    """The whole-network pass behind :func:`clean_edges` (uncached)."""
    m = p0.shape[0]
    clean = np.ones(m, dtype=bool)
    if m == 0:
        return clean
    lines = _objects(shapely.linestrings(np.stack([p0, p1], axis=1)))
    tree = shapely.STRtree(lines)
    for start in range(0, m, _CLEAN_CHUNK):
        idx = np.arange(start, min(m, start + _CLEAN_CHUNK), dtype=np.int64)
        q, b = tree.query(lines[idx])
        a = idx[q]
        keep = a < b
        a, b = a[keep], b[keep]
        bad = _unclean_pairs(p0, p1, a, b)
        clean[a[bad]] = False
        clean[b[bad]] = False
    return clean


_CLEAN_CHUNK: Final = 100_000
"""Edges per STRtree query when finding unclean edges (bounds the pair arrays' memory)."""

_TOUCH_M: Final = 1e-6
"""Segments nearer than this (metres) without a shared end point count as touching."""


def _cross(d: FloatArray, e: FloatArray) -> FloatArray:
    return np.asarray(d[:, 0] * e[:, 1] - d[:, 1] * e[:, 0], dtype=np.float64)


def _unclean_pairs(p0: FloatArray, p1: FloatArray, a: IntArray, b: IntArray) -> BoolArray:
    """For segment pairs with overlapping bounding boxes: do they meet anywhere but at
    one shared end point?

    Hand-written orientation tests in numpy rather than shapely's ``intersects``
    predicate: measured ~6x faster on 5·10⁵ pairs, and the tolerance can be chosen to
    err on the safe side (near-touching pairs count as unclean, which only costs speed).
    """
    a0, a1, b0, b1 = p0[a], p1[a], p0[b], p1[b]
    s00 = np.all(a0 == b0, axis=1)
    s01 = np.all(a0 == b1, axis=1)
    s10 = np.all(a1 == b0, axis=1)
    s11 = np.all(a1 == b1, axis=1)
    shared = s00 | s01 | s10 | s11
    # Sharing an end point S: they meet elsewhere only when collinear and leaving S the
    # same way (overlap), or when they share both ends (a duplicated street).
    at_a0 = (s00 | s01)[:, None]
    s_pt = np.where(at_a0, a0, a1)
    da = np.where(at_a0, a1, a0) - s_pt
    db = np.where((s00 | s10)[:, None], b1, b0) - s_pt
    len_a = np.hypot(da[:, 0], da[:, 1])
    len_b = np.hypot(db[:, 0], db[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        off_line = np.abs(_cross(da, db)) / np.maximum(len_a, len_b)
    same_way = np.einsum("ij,ij->i", da, db) > 0.0
    overlap = (len_a == 0.0) | (len_b == 0.0) | ((off_line <= _TOUCH_M) & same_way)
    overlap |= (s00 & s11) | (s01 & s10)
    # No shared end point: any contact (crossing, T-junction, overlap) is unclean.
    d = a1 - a0
    e = b1 - b0
    ld = np.hypot(d[:, 0], d[:, 1])
    le = np.hypot(e[:, 0], e[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = _cross(d, b0 - a0) / ld  # signed distances of b's ends from a's line
        t2 = _cross(d, b1 - a0) / ld
        t3 = _cross(e, a0 - b0) / le  # and of a's ends from b's line
        t4 = _cross(e, a1 - b0) / le
    t1, t2, t3, t4 = (np.where(np.abs(t) <= _TOUCH_M, 0.0, t) for t in (t1, t2, t3, t4))
    meet = ((t1 * t2) <= 0.0) & ((t3 * t4) <= 0.0)
    meet |= (ld == 0.0) | (le == 0.0)
    return np.asarray(np.where(shared, overlap, meet), dtype=bool)


# --------------------------------------------------------------------------------------
# Covered pieces
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoveredPieces:
    """The straight pieces of network (and access leg) covered within one threshold.

    Attributes
    ----------
    start_xy, end_xy
        Piece end points in the network CRS, shape (k, 2). Cut points lie at the exact
        remaining distance from the node (or snapped point) they are measured from.
    edge
        The network edge of each piece, ``-1`` for the access leg.
    clean
        True where the piece can be polygonised directly (see
        :attr:`IsochroneBuilder.clean`).
    """

    start_xy: FloatArray
    end_xy: FloatArray
    edge: IntArray
    clean: BoolArray

    @property
    def length_m(self) -> FloatArray:
        """Length of each piece in metres."""
        d = self.end_xy - self.start_xy
        return np.asarray(np.hypot(d[:, 0], d[:, 1]), dtype=np.float64)

    def __len__(self) -> int:
        return int(self.edge.shape[0])


@dataclass(frozen=True)
class _ReachEdges:
    """The edges one reach touches, with the walking distance of both end nodes."""

    edge: IntArray
    du_m: FloatArray
    dv_m: FloatArray
    source_xy: FloatArray | None


def _lookup(nodes_sorted: IntArray, dist_sorted: FloatArray, query: IntArray) -> FloatArray:
    """Distance of each ``query`` node (``inf`` where not reached), by binary search."""
    out = np.full(query.shape[0], np.inf)
    k = nodes_sorted.shape[0]
    if k == 0 or query.shape[0] == 0:
        return out
    pos = np.minimum(np.searchsorted(nodes_sorted, query), k - 1)
    hit = nodes_sorted[pos] == query
    out[hit] = dist_sorted[pos[hit]]
    return out


def _check_reach(network: WalkNetwork, reach: LocalReach) -> None:
    node = np.asarray(reach.node)
    if node.shape != np.asarray(reach.dist_m).shape:
        raise InputValidationError("reach.node and reach.dist_m differ in length", field="reach")
    if node.shape[0] and (int(node.min()) < 0 or int(node.max()) >= network.n_nodes):
        raise InputValidationError(
            "reach.node holds indices outside the network; was the reach computed on "
            "another network?",
            field="reach",
        )
    if reach.start_edge >= network.n_edges:
        raise InputValidationError(
            f"reach.start_edge {reach.start_edge} is outside the network's {network.n_edges} edges",
            field="reach",
        )


def _source_xy(reach: LocalReach, points: SnappedPoints | None) -> FloatArray | None:
    """The input point of the reach's source (for the access leg), when known."""
    if points is None or reach.start_edge < 0:
        return None
    i = reach.source
    if not 0 <= i < len(points):
        raise InputValidationError(
            f"reach.source {i} is not a row of the {len(points)} snapped points", field="points"
        )
    if int(points.edge[i]) != reach.start_edge:
        raise InputValidationError(
            f"snapped point {i} lies on edge {int(points.edge[i])} but its reach starts on "
            f"edge {reach.start_edge}: the points do not belong to this reach",
            field="points",
        )
    return np.array([float(points.x_m[i]), float(points.y_m[i])])


def _reach_edges(
    builder: IsochroneBuilder, reach: LocalReach, points: SnappedPoints | None
) -> _ReachEdges:
    net = builder.network
    _check_reach(net, reach)
    node = np.asarray(reach.node, dtype=np.int64)
    dist = np.asarray(reach.dist_m, dtype=np.float64)
    if node.shape[0] > 1 and not bool(np.all(node[1:] > node[:-1])):
        order = np.argsort(node, kind="stable")
        node, dist = node[order], dist[order]
    edges = builder.incident_edges(node)
    if reach.start_edge >= 0:
        edges = np.append(edges, np.int64(reach.start_edge))
    edges = np.unique(edges)
    du = _lookup(node, dist, np.asarray(net.edge_u, dtype=np.int64)[edges])
    dv = _lookup(node, dist, np.asarray(net.edge_v, dtype=np.int64)[edges])
    return _ReachEdges(edges, du, dv, _source_xy(reach, points))


def _merge_intervals(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Union of closed 1-D intervals, sorted (a handful per call, plain Python)."""
    merged: list[tuple[float, float]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _pieces(
    builder: IsochroneBuilder, reach: LocalReach, re: _ReachEdges, threshold_m: float
) -> CoveredPieces:
    """Covered pieces within ``threshold_m`` (vectorised over the reach's edges)."""
    t = float(threshold_m)
    edge = re.edge
    p0 = builder._p0[edge]
    p1 = builder._p1[edge]
    length = builder._length_m[edge]
    with np.errstate(invalid="ignore"):
        ru = t - re.du_m  # -inf where not reached
        rv = t - re.dv_m
    on_u = ru >= 0.0
    on_v = rv >= 0.0
    a_m = np.where(on_u, np.minimum(ru, length), 0.0)
    b_m = np.where(on_v, np.minimum(rv, length), 0.0)
    full = (on_u & (ru >= length)) | (on_v & (rv >= length)) | (on_u & on_v & (a_m + b_m >= length))
    not_start = edge != reach.start_edge
    safe_len = np.where(length > 0.0, length, 1.0)
    starts: list[FloatArray] = []
    ends: list[FloatArray] = []
    owner: list[IntArray] = []
    # Whole segments keep the exact node coordinates.
    sel = full & not_start
    starts.append(p0[sel])
    ends.append(p1[sel])
    owner.append(edge[sel])
    # [u, u + r_u]: cut at r_u metres from u.
    sel = on_u & ~full & not_start
    starts.append(p0[sel])
    ends.append(p0[sel] + (p1[sel] - p0[sel]) * (a_m[sel] / safe_len[sel])[:, None])
    owner.append(edge[sel])
    # [v − r_v, v]: cut at r_v metres from v.
    sel = on_v & ~full & not_start
    starts.append(p1[sel] + (p0[sel] - p1[sel]) * (b_m[sel] / safe_len[sel])[:, None])
    ends.append(p1[sel])
    owner.append(edge[sel])

    snap_xy: FloatArray | None = None
    if reach.start_edge >= 0:
        # The source's own edge: up to three intervals (from u, from v, from the snapped
        # point both ways), merged in 1-D and cut at exact distances along the segment.
        j = int(np.flatnonzero(~not_start)[0])
        ell = float(length[j])
        s_m = float(reach.start_fraction) * ell
        ivals: list[tuple[float, float]] = []
        if on_u[j]:
            ivals.append((0.0, float(a_m[j])))
        if on_v[j]:
            ivals.append((ell - float(b_m[j]), ell))
        r_s = t - float(reach.access_m)
        if r_s >= 0.0:
            ivals.append((max(0.0, s_m - r_s), min(ell, s_m + r_s)))
        q0, q1 = p0[j], p1[j]

        def at(pos_m: float) -> FloatArray:
            if pos_m <= 0.0:
                return cast(FloatArray, q0)
            if pos_m >= ell:
                return cast(FloatArray, q1)
            return cast(FloatArray, q0 + (q1 - q0) * (pos_m / ell))

        for lo, hi in _merge_intervals(ivals):
            starts.append(at(lo)[None, :])
            ends.append(at(hi)[None, :])
            owner.append(np.array([edge[j]], dtype=np.int64))
        snap_xy = at(s_m)
        # The access leg, from the input point towards the snapped point.
        a = float(reach.access_m)
        if re.source_xy is not None and a > 0.0 and t >= 0.0:
            leg_end = snap_xy if t >= a else re.source_xy + (snap_xy - re.source_xy) * (t / a)
            starts.append(re.source_xy[None, :])
            ends.append(np.asarray(leg_end, dtype=np.float64)[None, :])
            owner.append(np.array([_ACCESS_EDGE], dtype=np.int64))

    start_xy = np.concatenate(starts).reshape(-1, 2)
    end_xy = np.concatenate(ends).reshape(-1, 2)
    own = np.concatenate(owner).astype(np.int64)
    clean = np.zeros(own.shape[0], dtype=bool)
    on_net = own >= 0
    clean[on_net] = builder.clean[own[on_net]]
    # Zero-length pieces (a node reached exactly at the threshold) are buffered as discs.
    clean &= np.any(start_xy != end_xy, axis=1)
    return CoveredPieces(start_xy, end_xy, own, clean)


def covered_pieces(
    network: WalkNetwork,
    reach: LocalReach,
    threshold_m: float,
    *,
    points: SnappedPoints | None = None,
    builder: IsochroneBuilder | None = None,
) -> CoveredPieces:
    """The network pieces (and access leg) covered within ``threshold_m`` of a source.

    Parameters
    ----------
    network
        The walking network the reach was computed on.
    reach
        The source's local reach; its cut-off must be at least ``threshold_m``.
    threshold_m
        Walking-distance budget in metres.
    points
        The snapped points the reach's ``source`` indexes; when given, the access leg
        from the input point to the snapped point is included.
    builder
        Prepared network index (built here when omitted; pass one when looping).

    Returns
    -------
    CoveredPieces
        Empty for an off-network source.
    """
    builder = _builder_for(network, builder)
    _check_thresholds([threshold_m], reach.cutoff_m)
    if reach.start_edge < 0:
        return _no_pieces()
    return _pieces(builder, reach, _reach_edges(builder, reach, points), threshold_m)


def _no_pieces() -> CoveredPieces:
    z = np.empty((0, 2), dtype=np.float64)
    return CoveredPieces(z, z.copy(), np.empty(0, dtype=np.int64), np.empty(0, dtype=bool))


# --------------------------------------------------------------------------------------
# Polygons
# --------------------------------------------------------------------------------------


def _union_parts(parts: npt.NDArray[np.object_]) -> shapely.Geometry:
    """Union of polygons, overlaying only those that overlap (GEOS ≥ 3.12)."""
    fn = getattr(shapely, "disjoint_subset_union_all", None)
    return _one(fn(parts) if fn is not None else shapely.union_all(parts))


def _buffer_pieces(pieces: CoveredPieces, buffer_m: float, quad_segs: int) -> Isochrone:
    """Union of the buffered pieces (faces + holes, see the module docstring)."""
    if len(pieces) == 0:
        return _empty_polygon()
    segs = np.stack([pieces.start_xy, pieces.end_xy], axis=1)
    clean_lines = _objects(shapely.linestrings(segs[pieces.clean]))
    loose = [_objects(shapely.linestrings(segs[~pieces.clean]))]
    faces = np.empty(0, dtype=object)
    if clean_lines.shape[0]:
        polys, cuts, dangles, invalid = shapely.polygonize_full(clean_lines)
        faces = _objects(shapely.get_parts(polys))
        loose += [_objects(shapely.get_parts(g)) for g in (cuts, dangles, invalid)]
    loose_lines = np.concatenate(loose)
    # Loose chains are merged into polylines and each polyline is buffered on its own,
    # then only overlapping buffers are overlaid. Measured on Yuzhong (15 min, ~350
    # loose segments per facility): 3.7x faster than one buffer of the multi-line and
    # 2.6x faster than a union of per-segment buffers; equal on the synthetic grid.
    if loose_lines.shape[0] > 1:
        loose_lines = _objects(
            shapely.get_parts(shapely.line_merge(shapely.multilinestrings(loose_lines)))
        )
    zone = _objects(shapely.buffer(loose_lines, buffer_m, quad_segs=quad_segs))
    if faces.shape[0] == 0:
        return _as_polygonal(_union_parts(zone)) if zone.shape[0] else _empty_polygon()
    filled = shapely.buffer(shapely.coverage_union_all(faces), buffer_m, quad_segs=quad_segs)
    # One overlay of the filled faces with the (already merged) loose zone: merging the
    # big face polygon into a cascaded union of many small parts is several times slower.
    outer = _one(filled if zone.shape[0] == 0 else shapely.union(filled, _union_parts(zone)))
    holes = _objects(shapely.buffer(faces, -buffer_m, quad_segs=quad_segs))
    holes = holes[~shapely.is_empty(holes)]
    if holes.shape[0] and zone.shape[0]:
        # Loose pieces inside a face (dead ends, bridges, the access leg) keep their
        # buffer out of the face's hole.
        hole_i, zone_i = shapely.STRtree(zone).query(holes, predicate="intersects")
        for h in np.unique(hole_i):
            cut = _union_parts(zone[zone_i[hole_i == h]])
            holes[h] = shapely.difference(holes[h], cut)
        holes = holes[~shapely.is_empty(holes)]
    holes = _objects(shapely.get_parts(holes))
    if holes.shape[0] == 0:
        return _as_polygonal(outer)
    if (
        isinstance(outer, Polygon)
        and not np.any(shapely.get_num_interior_rings(holes))
        and bool(np.all(shapely.get_type_id(holes) == 3))
    ):
        # Valid by construction (no is_valid call: it costs as much as the union): each
        # hole lies inside its face at distance ≥ buffer_m from the face's edges, so
        # holes are disjoint from each other, from the shell and from the outline's own
        # holes (which lie outside the faces).
        rings = np.concatenate([_objects(shapely.get_rings(outer))[1:], _exteriors(holes)])
        return _as_polygonal(shapely.polygons(shapely.get_exterior_ring(outer), holes=rings))
    # Rare shapes (a multi-part outline, a hole with an island): cut the holes by overlay.
    return _as_polygonal(_one(shapely.difference(outer, shapely.union_all(holes))))


def _objects(geoms: object) -> npt.NDArray[np.object_]:
    """A shapely result as a 1-D object array (for the type checker)."""
    return np.asarray(geoms, dtype=object).reshape(-1)


def _one(geom: object) -> shapely.Geometry:
    """A scalar shapely result as a Geometry (for the type checker)."""
    if not isinstance(geom, shapely.Geometry):
        raise TypeError(f"expected one geometry, got {type(geom).__name__}")
    return geom


def _exteriors(polys: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    return np.asarray(shapely.get_exterior_ring(polys), dtype=object)


def _as_polygonal(geom: shapely.Geometry) -> Isochrone:
    """The polygonal part of ``geom`` as a Polygon or MultiPolygon (empty Polygon if none)."""
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon) and not g.is_empty]
    if not parts:
        return _empty_polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _nest(smaller: Isochrone, larger: Isochrone) -> Isochrone:
    """``larger`` made to cover ``smaller`` exactly.

    Mathematically the larger isochrone already contains the smaller one, but the two
    are built by separate floating-point overlays, so shared boundary stretches differ
    in the last bits (a plain ``union`` does not fix that: its intersection points are
    rounded too, and GEOS may drop near-duplicate vertices when buffering by a tiny
    distance). So the union is taken with ``smaller`` grown by 1 µm, then 10 µm ... up
    to :data:`NEST_TOLERANCE_M` (1 mm), until ``covered_by`` holds; the area grows by at
    most perimeter × that distance.
    """
    if smaller.is_empty or bool(shapely.covered_by(smaller, larger)):
        return larger
    out = larger
    for eps_m in (1e-6, 1e-5, 1e-4, NEST_TOLERANCE_M):
        grown = shapely.buffer(smaller, eps_m, quad_segs=1, join_style="mitre")
        out = _as_polygonal(_one(shapely.union(larger, grown)))
        if bool(shapely.covered_by(smaller, out)):
            break
    return out


def _check_thresholds(thresholds_m: Sequence[float] | FloatArray, cutoff_m: float) -> FloatArray:
    t = np.asarray(thresholds_m, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(t)) or np.any(t < 0.0):
        raise InputValidationError(
            f"thresholds must be finite and non-negative metres, got {t.tolist()}",
            field="thresholds_m",
        )
    # The reach knows nothing beyond its cut-off (a relative 1e-9 allows for rounding).
    if t.shape[0] and float(t.max()) > cutoff_m * (1.0 + 1e-9):
        raise InputValidationError(
            f"threshold {float(t.max())} m exceeds the reach cut-off {cutoff_m} m; compute "
            "the reach with a cut-off at least as large as the largest threshold",
            field="thresholds_m",
        )
    return t


def _check_buffer(buffer_m: float, quad_segs: int) -> None:
    if not (np.isfinite(buffer_m) and buffer_m > 0.0):
        raise InputValidationError(
            f"buffer_m must be a positive number of metres, got {buffer_m!r}", field="buffer_m"
        )
    if int(quad_segs) < 1:
        raise InputValidationError(f"quad_segs must be at least 1, got {quad_segs}")


def _builder_for(network: WalkNetwork, builder: IsochroneBuilder | None) -> IsochroneBuilder:
    if builder is None:
        return IsochroneBuilder(network)
    if builder.network is not network:
        raise InputValidationError("the IsochroneBuilder was prepared for another network")
    return builder


def isochrone_polygons(
    network: WalkNetwork,
    reach: LocalReach,
    thresholds_m: Sequence[float] | FloatArray,
    buffer_m: float = 25.0,
    *,
    quad_segs: int = 8,
    points: SnappedPoints | None = None,
    builder: IsochroneBuilder | None = None,
) -> list[Isochrone]:
    """Exact isochrone polygons of one source, one per threshold.

    Parameters
    ----------
    network
        The walking network the reach was computed on (metric CRS).
    reach
        The source's local reach; its ``cutoff_m`` must be at least the largest threshold.
    thresholds_m
        Walking-distance budgets in metres (for example 333.3, 666.7, 1000 for 5/10/15
        minutes at 4 km/h).
    buffer_m
        Buffer width around the covered pieces in metres.
    quad_segs
        Segments per quarter circle of the round buffer ends (GEOS; 8 is shapely's
        default). A buffered segment of length ℓ has area
        ``2·b·ℓ + 2·quad_segs·b²·sin(π / (2·quad_segs))``.
    points
        The snapped points ``reach.source`` indexes: the access leg (input point →
        snapped point) is part of the walk and is drawn when they are given.
    builder
        Prepared network index (see :class:`IsochroneBuilder`); pass one when looping
        over many sources.

    Returns
    -------
    list of Polygon or MultiPolygon
        In the order of ``thresholds_m``, in the network CRS. Nested exactly: the
        polygon of a smaller threshold is covered by that of every larger one. Empty
        polygons for an off-network source.

    Raises
    ------
    InputValidationError
        A negative or non-finite threshold, a threshold beyond the reach's cut-off, a
        non-positive buffer, or a reach / points that do not belong to ``network``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyproj import CRS
    >>> net = WalkNetwork(np.arange(2), np.array([0.0, 100.0]), np.zeros(2),
    ...     np.array([0]), np.array([1]), np.array([100.0]), np.array([-1]),
    ...     CRS.from_epsg(32648))
    >>> reach = LocalReach(0, 100.0, np.array([0, 1]), np.array([0.0, 100.0]), 0, 0.0, 0.0)
    >>> [round(p.bounds[2], 6) for p in isochrone_polygons(net, reach, [60.0, 100.0], 10.0)]
    [70.0, 110.0]
    """
    _check_buffer(buffer_m, quad_segs)
    t = _check_thresholds(thresholds_m, reach.cutoff_m)
    builder = _builder_for(network, builder)
    if reach.start_edge < 0:
        return [_empty_polygon() for _ in range(t.shape[0])]
    re = _reach_edges(builder, reach, points)
    out: list[Isochrone] = [_empty_polygon()] * t.shape[0]
    previous: Isochrone | None = None
    for k in np.argsort(t, kind="stable"):
        poly = _buffer_pieces(_pieces(builder, reach, re, float(t[k])), buffer_m, int(quad_segs))
        if previous is not None:
            poly = _nest(previous, poly)
        out[int(k)] = poly
        previous = poly
    return out


# --------------------------------------------------------------------------------------
# Tables of isochrones
# --------------------------------------------------------------------------------------


def minutes_to_m(minutes: Sequence[float], speed_kmh: float) -> FloatArray:
    """Walking minutes → metres at ``speed_kmh`` (15 min at 4 km/h = 1,000 m)."""
    if not (np.isfinite(speed_kmh) and speed_kmh > 0.0):
        raise InputValidationError(
            f"speed_kmh must be a positive number, got {speed_kmh!r}", field="speed_kmh"
        )
    mins = np.asarray(minutes, dtype=np.float64).reshape(-1)
    if mins.shape[0] == 0 or not np.all(np.isfinite(mins)) or np.any(mins <= 0.0):
        raise InputValidationError(
            f"minutes must be positive numbers, got {mins.tolist()}", field="minutes"
        )
    return np.asarray(mins * speed_kmh * 1000.0 / 60.0, dtype=np.float64)


def _check_table_inputs(reaches: Sequence[LocalReach], facility_ids: Sequence[object]) -> None:
    if len(reaches) != len(facility_ids):
        raise InputValidationError(
            f"{len(reaches)} reaches but {len(facility_ids)} facility ids", field="facility_ids"
        )


def _frame(
    rows: dict[str, list[object]], network: WalkNetwork, attrs: dict[str, object]
) -> gpd.GeoDataFrame:
    gdf = gpd.GeoDataFrame(
        {
            "facility_id": pd.Series(rows["facility_id"], dtype=object),
            "minutes": pd.Series(rows["minutes"], dtype=np.float64),
            "method": pd.Series(rows["method"], dtype=object),
            "area_m2": pd.Series(rows["area_m2"], dtype=np.float64),
        },
        geometry=gpd.GeoSeries(rows["geometry"], crs=network.crs),
        crs=network.crs,
    )
    gdf.attrs.update(attrs)
    gdf.attrs["labels"] = {c: _COLUMN_LABELS[c] for c in ISOCHRONE_COLUMNS if c in _COLUMN_LABELS}
    gdf.attrs["method_labels"] = dict(METHOD_LABELS)
    return gdf


def _rows(
    facility_ids: Sequence[object],
    minutes: FloatArray,
    polygons: Sequence[Sequence[Isochrone]],
    method: str,
) -> dict[str, list[object]]:
    rows: dict[str, list[object]] = {c: [] for c in ISOCHRONE_COLUMNS}
    for fid, polys in zip(facility_ids, polygons, strict=True):
        for m, poly in zip(minutes, polys, strict=True):
            rows["facility_id"].append(fid)
            rows["minutes"].append(float(m))
            rows["method"].append(method)
            rows["area_m2"].append(float(poly.area))
            rows["geometry"].append(poly)
    return rows


def facility_isochrones(
    network: WalkNetwork,
    reaches: Sequence[LocalReach],
    facility_ids: Sequence[object],
    minutes: Sequence[float],
    speed_kmh: float,
    buffer_m: float = 25.0,
    *,
    quad_segs: int = 8,
    points: SnappedPoints | None = None,
    progress: Progress = SILENT,
) -> gpd.GeoDataFrame:
    """Exact isochrone polygons for many facilities (one row per facility × minutes).

    Parameters
    ----------
    network
        The walking network (metric CRS).
    reaches
        One local reach per facility, with a cut-off covering the largest threshold.
    facility_ids
        Facility ids, aligned with ``reaches``.
    minutes
        Walking times, for example ``(5, 10, 15)``.
    speed_kmh
        Walking speed; ``minutes × speed_kmh`` gives the metre budgets.
    buffer_m, quad_segs
        See :func:`isochrone_polygons`.
    points
        The snapped facilities the reaches' ``source`` indexes (draws the access legs).
    progress
        Progress reporter (silent by default).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``facility_id``, ``minutes``, ``method`` (``"edge_buffer"``),
        ``area_m2``, ``geometry``; network CRS; empty polygons (area 0) for off-network
        facilities. ``attrs`` records ``speed_kmh``, ``buffer_m`` and Chinese/English
        labels of the columns and methods.

    Examples
    --------
    >>> from tuoyu.synthetic import synthetic_city
    >>> net = synthetic_city(4, seed=0)
    >>> reach = LocalReach(0, 1000.0, np.arange(4), np.zeros(4), 0, 0.0, 0.0)
    >>> gdf = facility_isochrones(net, [reach], ["托育点A"], [15], speed_kmh=4.0)
    >>> list(gdf.columns), gdf.attrs["speed_kmh"]
    (['facility_id', 'minutes', 'method', 'area_m2', 'geometry'], 4.0)
    """
    _check_buffer(buffer_m, quad_segs)
    _check_table_inputs(reaches, facility_ids)
    t_m = minutes_to_m(minutes, speed_kmh)
    mins = np.asarray(minutes, dtype=np.float64).reshape(-1)
    builder = IsochroneBuilder(network)
    # One facility after the other: threads over facilities were measured slower on the
    # 2-core machine (1.7 s → 2.4 s for 100 facilities); see benchmarks --workers.
    n_src = len(reaches)
    polygons = []
    with progress.step(f"isochrones: {n_src} facilities × {mins.shape[0]} thresholds"):
        for k, r in enumerate(reaches, start=1):
            polygons.append(
                isochrone_polygons(
                    network, r, t_m, buffer_m, quad_segs=quad_segs, points=points, builder=builder
                )
            )
            progress.advance(k, n_src, "facilities")
    return _frame(
        _rows(facility_ids, mins, polygons, METHOD_EDGE_BUFFER),
        network,
        {"speed_kmh": float(speed_kmh), "buffer_m": float(buffer_m), "quad_segs": int(quad_segs)},
    )


def concave_hull_isochrones(
    network: WalkNetwork,
    reaches: Sequence[LocalReach],
    facility_ids: Sequence[object],
    minutes: Sequence[float],
    speed_kmh: float,
    ratio: float = DEFAULT_CONCAVE_RATIO,
    buffer_m: float = 25.0,
    *,
    points: SnappedPoints | None = None,
) -> gpd.GeoDataFrame:
    """APPROXIMATE isochrones: buffered concave hulls of the reached points (fast variant).

    See :func:`concave_hull_polygons` for what the hull is made of and how far it is
    from the exact edge-buffer isochrone (:func:`facility_isochrones`).

    Parameters
    ----------
    network, reaches, facility_ids, minutes, speed_kmh, points
        As in :func:`facility_isochrones`.
    ratio
        ``shapely.concave_hull`` ratio: 0 is the most concave, 1 the convex hull.
    buffer_m
        Buffer around the hull (0 = none); the exact isochrones' width by default, so
        the areas are comparable.

    Returns
    -------
    geopandas.GeoDataFrame
        Same columns as :func:`facility_isochrones`, ``method`` =
        ``"concave_hull_approx"`` (凹包近似).
    """
    _check_table_inputs(reaches, facility_ids)
    t_m = minutes_to_m(minutes, speed_kmh)
    mins = np.asarray(minutes, dtype=np.float64).reshape(-1)
    builder = IsochroneBuilder(network)
    polygons = [
        concave_hull_polygons(network, r, t_m, ratio, buffer_m, points=points, builder=builder)
        for r in reaches
    ]
    return _frame(
        _rows(facility_ids, mins, polygons, METHOD_CONCAVE_HULL),
        network,
        {"speed_kmh": float(speed_kmh), "ratio": float(ratio), "buffer_m": float(buffer_m)},
    )


def concave_hull_polygons(
    network: WalkNetwork,
    reach: LocalReach,
    thresholds_m: Sequence[float] | FloatArray,
    ratio: float = DEFAULT_CONCAVE_RATIO,
    buffer_m: float = 25.0,
    *,
    points: SnappedPoints | None = None,
    builder: IsochroneBuilder | None = None,
) -> list[Isochrone]:
    """APPROXIMATE isochrones of one source: buffered concave hulls of reached points.

    The hull (``shapely.concave_hull``) is taken over the reached nodes, the exact cut
    points of partial edges, the snapped point and (with ``points``) the input point,
    then buffered by ``buffer_m``. It fills street blocks and may cut across unreached
    ground, so it is a preview, not the isochrone of the definition: measured at 15
    minutes with ratio 0.1 and a 25 m buffer, its mean area error against the exact
    polygon is ~5 % on synthetic cities and ~25 % on Yuzhong, and ~40 % of the two
    areas do not overlap
    (``benchmarks/isochrones.py`` reports both figures).

    Parameters
    ----------
    network, reach, thresholds_m, points, builder
        As in :func:`isochrone_polygons`.
    ratio
        ``shapely.concave_hull`` ratio: 0 is the most concave, 1 the convex hull.
    buffer_m
        Buffer around the hull in metres (0 = none).

    Returns
    -------
    list of Polygon or MultiPolygon
        One per threshold, in the order given; nested like the exact ones. Empty for an
        off-network source.
    """
    if not (np.isfinite(ratio) and 0.0 <= ratio <= 1.0):
        raise InputValidationError(f"ratio must be in [0, 1], got {ratio!r}", field="ratio")
    if not (np.isfinite(buffer_m) and buffer_m >= 0.0):
        raise InputValidationError(
            f"buffer_m must be a non-negative number of metres, got {buffer_m!r}",
            field="buffer_m",
        )
    t = _check_thresholds(thresholds_m, reach.cutoff_m)
    builder = _builder_for(network, builder)
    if reach.start_edge < 0:
        return [_empty_polygon() for _ in range(t.shape[0])]
    re = _reach_edges(builder, reach, points)
    out: list[Isochrone] = [_empty_polygon()] * t.shape[0]
    previous: Isochrone | None = None
    for k in np.argsort(t, kind="stable"):
        pieces = _pieces(builder, reach, re, float(t[k]))
        # Unique points: every node is shared by several pieces (measured 3x fewer points).
        xy = np.unique(np.concatenate([pieces.start_xy, pieces.end_xy]), axis=0)
        poly: Isochrone = _empty_polygon()
        if xy.shape[0]:
            hull = _one(shapely.concave_hull(shapely.multipoints(xy), ratio=ratio))
            if buffer_m > 0.0:
                hull = _one(shapely.buffer(hull, buffer_m))
            poly = _as_polygonal(hull)
        if previous is not None:
            poly = _nest(previous, poly)
        out[int(k)] = poly
        previous = poly
    return out


def union_isochrones(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The union over facilities of isochrones, per threshold (and method).

    Parameters
    ----------
    gdf
        Output of :func:`facility_isochrones` or :func:`concave_hull_isochrones`
        (columns ``facility_id``, ``minutes``, ``method``, ``geometry``).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``minutes``, ``method``, ``n_facilities``, ``area_m2``, ``geometry``:
        one row per (method, minutes), minutes ascending, same CRS; larger thresholds
        cover smaller ones exactly. Empty in, empty out.
    """
    missing = {"minutes", "geometry"} - set(gdf.columns)
    if missing:
        raise InputValidationError(
            f"isochrone table lacks column(s) {sorted(missing)}", field=sorted(missing)[0]
        )
    method = (
        gdf["method"] if "method" in gdf.columns else pd.Series(METHOD_EDGE_BUFFER, index=gdf.index)
    )
    rows: dict[str, list[object]] = {c: [] for c in UNION_COLUMNS}
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    for meth in pd.unique(method):
        in_m = (method == meth).to_numpy()
        previous: Isochrone | None = None
        for minute in np.sort(pd.unique(gdf.loc[in_m, "minutes"])):
            sel = in_m & (gdf["minutes"] == minute).to_numpy()
            parts = geoms[sel]
            parts = parts[~shapely.is_empty(parts)]
            poly = (
                _as_polygonal(_one(shapely.union_all(parts)))
                if parts.shape[0]
                else _empty_polygon()
            )
            if previous is not None:
                poly = _nest(previous, poly)
            previous = poly
            rows["minutes"].append(float(minute))
            rows["method"].append(meth)
            rows["n_facilities"].append(int(sel.sum()))
            rows["area_m2"].append(float(poly.area))
            rows["geometry"].append(poly)
    out = gpd.GeoDataFrame(
        {
            "minutes": pd.Series(rows["minutes"], dtype=np.float64),
            "method": pd.Series(rows["method"], dtype=object),
            "n_facilities": pd.Series(rows["n_facilities"], dtype=np.int64),
            "area_m2": pd.Series(rows["area_m2"], dtype=np.float64),
        },
        geometry=gpd.GeoSeries(rows["geometry"], crs=gdf.crs),
        crs=gdf.crs,
    )
    out.attrs.update({k: v for k, v in gdf.attrs.items() if k != "labels"})
    out.attrs["labels"] = {c: _COLUMN_LABELS[c] for c in UNION_COLUMNS if c in _COLUMN_LABELS}
    return out
