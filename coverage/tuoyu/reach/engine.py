"""Walking reach: nearest-facility times, per-facility reach, reach matrices, what-if.

Every search runs on the symmetric CSR graph of :mod:`tuoyu.network.graph` with
``scipy.sparse.csgraph.dijkstra``. Points (facilities, homes) sit mid-edge; they enter
a search as *virtual nodes* joined to the two end nodes of their edge by the partial
edge lengths plus their straight access leg, so distances are exact, not rounded to
the nearest node. Virtual nodes have outgoing links only, so no path passes through one.

Two kinds of search:

* **Multi-source** (:func:`nearest_facility_times`): one bounded Dijkstra from every
  facility at once (``min_only=True``, ``limit=cutoff``) over the whole graph.
* **Local** (:func:`facility_reach`, :func:`k_nearest_facilities`,
  :func:`reach_matrix`, :class:`ReachState`): a walk of ``d`` metres never ends farther
  than ``d × max_stretch`` metres in a straight line from its start (see
  :attr:`~tuoyu.network.graph.WalkGraph.max_stretch`), so the nodes inside that disc (one
  KD-tree query) hold every shortest path within the cut-off. Dijkstra runs on that
  small induced subgraph (many at once, as disjoint blocks of one sparse matrix);
  nothing of whole-graph size is allocated per search. Only when a disc holds more
  than 1/32 of the graph (a small district, a long cut-off) does the search run on the
  whole graph, where that is cheaper.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from tuoyu.errors import InputValidationError, NotFoundError
from tuoyu.network.graph import WalkGraph
from tuoyu.types import LocalReach, SnappedPoints

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

REACH_MATRIX_OFFSET_M = 1e-9
"""Added to every distance stored by :func:`reach_matrix` (so 0 m is a stored entry)."""

_RADIUS_PAD_M = 1e-6
"""Absolute padding of local search radii, against rounding in the disc test."""


@dataclass(frozen=True)
class NodeReach:
    """Walking distance from every node to its nearest facility, within a cut-off.

    Attributes
    ----------
    dist_m
        Per node (shape (n,)): walking metres to the nearest facility, access leg and
        partial edge included; ``inf`` beyond ``cutoff_m`` or unreachable.
    facility
        Per node: index (into ``facilities``) of that nearest facility, ``-1`` if none.
        On exact ties either facility may be named.
    cutoff_m
        The cut-off of the search.
    facilities
        The facilities searched from (needed for points on a facility's own edge).
    active
        Which facilities took part (shape (k,)); ``None`` means all on-network ones.
    """

    dist_m: FloatArray
    facility: IntArray
    cutoff_m: float
    facilities: SnappedPoints
    active: BoolArray | None = None


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def _check_cutoff(cutoff_m: float) -> float:
    cutoff = float(cutoff_m)
    if not cutoff >= 0.0:  # also rejects NaN
        raise InputValidationError(
            f"cutoff_m must be a non-negative number of metres, got {cutoff_m!r}",
            field="cutoff_m",
        )
    return cutoff


def _check_points(graph: WalkGraph, points: SnappedPoints, what: str) -> None:
    if len(points) and points.edge.max(initial=-1) >= graph.network.n_edges:
        raise InputValidationError(
            f"{what} refer to edge {int(points.edge.max())}, but the graph has "
            f"{graph.network.n_edges} edges: snap them to this graph (snap_points)",
            field=what,
        )


def _active_mask(points: SnappedPoints, active: npt.ArrayLike | None) -> BoolArray:
    """On-network points that take part: ``~off_network`` and ``active``."""
    mask = ~np.asarray(points.off_network, dtype=bool)
    if active is not None:
        act = np.asarray(active, dtype=bool)
        if act.shape != mask.shape:
            raise InputValidationError(
                f"active has shape {act.shape}, expected {mask.shape}", field="active"
            )
        mask = mask & act
    return mask


def _links(
    graph: WalkGraph, points: SnappedPoints, idx: IntArray
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """End nodes of the points' edges and the walking metres to each (access included)."""
    net = graph.network
    e = points.edge[idx]
    length_m = net.edge_length_m[e]
    f = points.fraction[idx]
    a = points.access_m[idx]
    return net.edge_u[e], net.edge_v[e], a + f * length_m, a + (1.0 - f) * length_m


def _with_sources(
    indptr: npt.NDArray[np.integer],
    indices: npt.NDArray[np.integer],
    data: FloatArray,
    n: int,
    link_src: IntArray,
    link_tgt: IntArray,
    link_w: FloatArray,
    n_src: int,
) -> sp.csr_array:
    """The CSR graph ``(indptr, indices, data)`` plus ``n_src`` virtual source rows.

    Virtual node ``n + s`` has an outgoing link to ``link_tgt`` of weight ``link_w``
    for each entry with ``link_src == s`` (entries sorted by ``link_src``). Nothing
    links *to* a virtual node, so run the search with ``directed=True``.
    """
    counts = np.bincount(link_src, minlength=n_src) if n_src else np.zeros(0, np.int64)
    tail = indptr[-1] + np.cumsum(counts)
    new_indptr = np.concatenate([indptr, tail]).astype(np.int64, copy=False)
    size = n + n_src
    index_dtype = (
        np.int32
        if size < np.iinfo(np.int32).max and new_indptr[-1] < np.iinfo(np.int32).max
        else np.int64
    )
    return sp.csr_array(
        (
            np.concatenate([data, link_w]),
            np.concatenate([indices, link_tgt]).astype(index_dtype, copy=False),
            new_indptr.astype(index_dtype, copy=False),
        ),
        shape=(size, size),
    )


_BATCH_NODE_BUDGET = 500_000
"""Largest number of local (disc) nodes searched in one batched Dijkstra call."""

_WHOLE_GRAPH_FACTOR = 32
"""A source whose disc holds more than 1/32 of the graph is searched on the whole graph."""

_WHOLE_ROW_BUDGET = 4_000_000
"""Largest number of dense distance entries (sources × nodes) of one whole-graph call."""


@dataclass(frozen=True)
class _LocalBatch:
    """Nodes reached by a batch of local searches, one block per source.

    Block ``b`` belongs to source point ``source[b]``; its reached nodes are
    ``node[offsets[b]:offsets[b + 1]]`` (sorted) with distances ``dist_m[...]``.
    ``key = b * n_nodes + node`` is sorted over the whole batch, for lookups.
    """

    source: IntArray
    offsets: IntArray
    node: IntArray
    dist_m: FloatArray
    key: IntArray
    n_nodes: int

    def block(self, b: int) -> tuple[IntArray, FloatArray]:
        """Reached nodes and distances of block ``b``."""
        lo, hi = int(self.offsets[b]), int(self.offsets[b + 1])
        return self.node[lo:hi], self.dist_m[lo:hi]

    def lookup(self, block: IntArray, nodes: IntArray) -> FloatArray:
        """Distance from the source of ``block[j]`` to ``nodes[j]`` (``inf`` if unreached)."""
        out = np.full(nodes.shape[0], np.inf)
        if self.key.shape[0] == 0 or nodes.shape[0] == 0:
            return out
        want = block * np.int64(self.n_nodes) + nodes
        pos = np.minimum(np.searchsorted(self.key, want), self.key.shape[0] - 1)
        hit = self.key[pos] == want
        out[hit] = self.dist_m[pos[hit]]
        return out


def _search_radius(graph: WalkGraph, budget_m: FloatArray) -> FloatArray:
    """Straight-line radius that holds every walk of ``budget_m`` metres (exact bound)."""
    with np.errstate(invalid="ignore"):
        return budget_m * graph.max_stretch + _RADIUS_PAD_M


def _gather_rows(graph: WalkGraph, nodes: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """For each stored entry of the CSR rows ``nodes``: (position in ``nodes``, CSR position, neighbour)."""
    csr = graph.csr
    starts = csr.indptr[nodes].astype(np.int64)
    counts = csr.indptr[nodes + 1].astype(np.int64) - starts
    row = np.repeat(np.arange(nodes.shape[0], dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    pos = np.repeat(starts - first, counts) + np.arange(int(counts.sum()), dtype=np.int64)
    return row, pos, csr.indices[pos].astype(np.int64)


def _find(sorted_keys: IntArray, want: IntArray) -> tuple[IntArray, BoolArray]:
    """Positions of ``want`` in ``sorted_keys`` and whether each is present."""
    if sorted_keys.shape[0] == 0:
        return np.zeros(want.shape[0], dtype=np.int64), np.zeros(want.shape[0], dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, want), sorted_keys.shape[0] - 1)
    return pos.astype(np.int64), sorted_keys[pos] == want


def _induced_subgraph(
    graph: WalkGraph, nodes: IntArray, block: IntArray | None = None
) -> tuple[IntArray, IntArray, FloatArray]:
    """CSR arrays ``(indptr, indices, data)`` of the subgraph induced by ``nodes``.

    With ``block``, ``nodes`` holds several node sets (block ``block[j]``), each sorted,
    blocks ascending; the result is their disjoint union (block-diagonal). Only the rows
    of ``nodes`` are read: scipy's fancy column indexing would allocate an array of the
    full graph's column count per call.
    """
    n = graph.n_nodes
    t = nodes.shape[0]
    blk = np.zeros(t, dtype=np.int64) if block is None else block
    row, pos, nbr = _gather_rows(graph, nodes)
    if n <= 4 * t:
        # Large batch: a rank map of graph size (one per batch, not per search) turns
        # the membership test into one gather per block, far cheaper than a binary
        # search over the whole batch.
        n_blocks = int(blk[-1]) + 1 if t else 0
        offsets = np.zeros(n_blocks + 1, dtype=np.int64)
        np.cumsum(np.bincount(blk, minlength=n_blocks), out=offsets[1:])
        entry = np.searchsorted(row, offsets)
        rank = np.full(n, -1, dtype=np.int64)
        loc = np.empty(nbr.shape[0], dtype=np.int64)
        for b in range(n_blocks):
            lo, hi = int(offsets[b]), int(offsets[b + 1])
            if lo == hi:
                continue
            members = nodes[lo:hi]
            rank[members] = np.arange(lo, hi)
            loc[entry[b] : entry[b + 1]] = rank[nbr[entry[b] : entry[b + 1]]]
            rank[members] = -1
        keep = loc >= 0
    else:
        n64 = np.int64(n)
        loc, keep = _find(blk * n64 + nodes, blk[row] * n64 + nbr)
    row = row[keep]
    indptr = np.zeros(t + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=t), out=indptr[1:])
    return indptr, loc[keep], graph.csr.data[pos[keep]]


def _local_batches(
    graph: WalkGraph, points: SnappedPoints, idx: npt.ArrayLike, cutoff_m: float
) -> Iterator[_LocalBatch]:
    """Bounded searches from points ``idx``, in batches; each batch names its sources.

    Two strategies, chosen per source from the number of nodes in its disc:

    * **Disc subgraph** (a large graph, a small neighbourhood): each source gets its own
      copy of the nodes in its disc (a block); one multi-source Dijkstra (``min_only``)
      over the disjoint union of the blocks answers a whole batch of about 500,000 disc
      nodes, since a block is reachable from its own source only.
    * **Whole graph** (the disc holds more than 1/32 of the graph: a small district or a
      long cut-off): scipy searches the graph itself from a few sources per call, one
      row of graph size each. Copying most of a small graph per source costs more
      (measured 6× slower on Yuzhong, 19k nodes, 1,000 facilities, 1 km).

    Off-network sources and sources whose access leg alone exceeds the cut-off reach
    nothing (empty blocks).
    """
    src = np.asarray(idx, dtype=np.int64)
    if src.shape[0] == 0:
        return
    n = graph.n_nodes
    budget_m = np.where(points.off_network[src], -1.0, cutoff_m - points.access_m[src]).astype(
        np.float64
    )
    radius = _search_radius(graph, np.maximum(budget_m, 0.0))
    searched = budget_m >= 0.0
    counts = np.zeros(src.shape[0], dtype=np.int64)
    if n and searched.any():
        if np.isfinite(radius[searched]).all():
            xy = np.column_stack([points.snap_x_m[src], points.snap_y_m[src]])
            counts[searched] = graph.node_tree.query_ball_point(
                xy[searched], radius[searched], return_length=True
            )
        else:
            counts[searched] = n
    whole = searched & (n <= _WHOLE_GRAPH_FACTOR * counts)
    disc = np.flatnonzero(~whole)
    if disc.shape[0]:
        group = (np.cumsum(counts[disc]) - counts[disc]) // _BATCH_NODE_BUDGET
        for part in np.split(disc, np.flatnonzero(np.diff(group)) + 1):
            yield _search_blocks(graph, points, src[part], radius[part], searched[part], cutoff_m)
    if whole.any():
        yield from _search_whole(graph, points, src[whole], cutoff_m)


def _search_whole(
    graph: WalkGraph, points: SnappedPoints, src: IntArray, cutoff_m: float
) -> Iterator[_LocalBatch]:
    """Searches on the whole graph (plus virtual sources), a few sources per call."""
    n = graph.n_nodes
    s = src.shape[0]
    u, v, w_u, w_v = _links(graph, points, src)
    csr = graph.csr
    g = _with_sources(
        csr.indptr,
        csr.indices,
        csr.data,
        n,
        np.repeat(np.arange(s, dtype=np.int64), 2),
        np.column_stack([u, v]).ravel(),
        np.column_stack([w_u, w_v]).ravel(),
        s,
    )
    chunk = max(1, _WHOLE_ROW_BUDGET // (n + s))
    for start in range(0, s, chunk):
        ids = np.arange(start, min(s, start + chunk), dtype=np.int64)
        d = np.atleast_2d(dijkstra(g, directed=True, indices=n + ids, limit=cutoff_m))
        width = d.shape[1]
        flat = np.flatnonzero(np.isfinite(d))  # 1-D on the contiguous rows: fastest
        block, node = np.divmod(flat, width)
        real = node < n  # drop the virtual source nodes
        block, node, flat = block[real], node[real], flat[real]
        offsets = np.zeros(ids.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(block, minlength=ids.shape[0]), out=offsets[1:])
        yield _LocalBatch(
            src[ids],
            offsets,
            node.astype(np.int64),
            d.ravel()[flat],
            block.astype(np.int64) * np.int64(n) + node,
            n,
        )


def _search_blocks(
    graph: WalkGraph,
    points: SnappedPoints,
    src: IntArray,
    radius: FloatArray,
    searched: BoolArray,
    cutoff_m: float,
) -> _LocalBatch:
    """One batch of :func:`_local_batches`."""
    n = graph.n_nodes
    b_count = src.shape[0]
    if searched.any() and n:
        if np.isfinite(radius[searched]).all():
            found = graph.node_tree.query_ball_point(
                np.column_stack([points.snap_x_m[src], points.snap_y_m[src]])[searched],
                radius[searched],
                return_sorted=True,
            )
            lens = np.zeros(b_count, dtype=np.int64)
            lens[searched] = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
            flat = np.fromiter(
                itertools.chain.from_iterable(found), dtype=np.int64, count=int(lens.sum())
            )
        else:  # unbounded radius: every node belongs to the block
            lens = np.where(searched, n, 0).astype(np.int64)
            flat = np.tile(np.arange(n, dtype=np.int64), int(searched.sum()))
    else:
        lens = np.zeros(b_count, dtype=np.int64)
        flat = np.empty(0, dtype=np.int64)
    blk = np.repeat(np.arange(b_count, dtype=np.int64), lens)
    key = blk * np.int64(n) + flat
    t = flat.shape[0]
    empty = _LocalBatch(
        src, np.zeros(b_count + 1, dtype=np.int64), flat[:0], np.empty(0), key[:0], n
    )
    if t == 0:
        return empty
    indptr, indices, data = _induced_subgraph(graph, flat, blk)
    u, v, w_u, w_v = _links(graph, points, np.where(searched, src, 0))
    link_blk = np.repeat(np.arange(b_count, dtype=np.int64), 2)
    ends = np.column_stack([u, v]).ravel()
    link_w = np.column_stack([w_u, w_v]).ravel()
    tgt, inside = _find(key, link_blk * np.int64(n) + ends)
    inside &= np.repeat(searched, 2)
    g = _with_sources(
        indptr, indices, data, t, link_blk[inside], tgt[inside], link_w[inside], b_count
    )
    dist = dijkstra(
        g, directed=True, indices=np.arange(t, t + b_count), min_only=True, limit=cutoff_m
    )[:t]
    reached = np.isfinite(dist)
    offsets = np.zeros(b_count + 1, dtype=np.int64)
    np.cumsum(np.bincount(blk[reached], minlength=b_count), out=offsets[1:])
    return _LocalBatch(src, offsets, flat[reached], dist[reached], key[reached], n)


def _local_one(graph: WalkGraph, points: SnappedPoints, i: int, cutoff_m: float) -> _LocalBatch:
    """Local search from the single point ``i`` (a batch of one)."""
    return next(_local_batches(graph, points, [i], cutoff_m))


def _same_edge_pairs(edge_a: IntArray, edge_b: IntArray) -> tuple[IntArray, IntArray]:
    """All index pairs ``(i, j)`` with ``edge_a[i] == edge_b[j]`` (vectorised)."""
    order = np.argsort(edge_b, kind="stable")
    sorted_b = edge_b[order]
    lo = np.searchsorted(sorted_b, edge_a, side="left")
    hi = np.searchsorted(sorted_b, edge_a, side="right")
    counts = hi - lo
    ia = np.repeat(np.arange(edge_a.shape[0], dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    pos = np.repeat(lo - first, counts) + np.arange(int(counts.sum()), dtype=np.int64)
    return ia, order[pos].astype(np.int64)


def _pair_dist(
    graph: WalkGraph,
    batch: _LocalBatch,
    origin: SnappedPoints,
    block: IntArray,
    targets: SnappedPoints,
    idx: IntArray,
) -> FloatArray:
    """Walking metres from the source of ``block[j]`` to target point ``idx[j]``.

    Through either end node of the target's edge (node distances from the batch) or,
    when source and target lie on the same edge, directly along it.
    """
    if idx.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    u, v, w_u, w_v = _links(graph, targets, idx)
    dist = np.minimum(batch.lookup(block, u) + w_u, batch.lookup(block, v) + w_v)
    o = batch.source[block]
    same = targets.edge[idx] == origin.edge[o]
    if same.any():
        o_s, t_s = o[same], idx[same]
        length_m = graph.network.edge_length_m[origin.edge[o_s]]
        direct = (
            origin.access_m[o_s]
            + np.abs(targets.fraction[t_s] - origin.fraction[o_s]) * length_m
            + targets.access_m[t_s]
        )
        dist[same] = np.minimum(dist[same], direct)
    return dist


def _local_reach(batch: _LocalBatch, b: int, points: SnappedPoints, cutoff_m: float) -> LocalReach:
    i = int(batch.source[b])
    node, dist = batch.block(b)
    return LocalReach(
        source=i,
        cutoff_m=cutoff_m,
        node=node,
        dist_m=dist,
        start_edge=int(points.edge[i]),
        start_fraction=float(points.fraction[i]),
        access_m=float(points.access_m[i]),
    )


# --------------------------------------------------------------------------------------
# Multi-source nearest facility
# --------------------------------------------------------------------------------------


def nearest_facility_times(
    graph: WalkGraph,
    facilities: SnappedPoints,
    cutoff_m: float,
    *,
    active: npt.ArrayLike | None = None,
) -> NodeReach:
    """Walking distance from every node to its nearest facility (one bounded search).

    One multi-source Dijkstra (``scipy.sparse.csgraph.dijkstra`` with ``min_only=True``
    and ``limit=cutoff_m``) over the graph plus one virtual source node per facility.

    Parameters
    ----------
    graph
        The routing graph.
    facilities
        Facilities snapped to ``graph``; off-network ones take no part.
    cutoff_m
        Largest walking distance of interest (metres, e.g. 1,000 for 15 minutes at
        4 km/h); nodes farther from every facility get ``inf``.
    active
        Optional boolean mask (shape (k,)) of the facilities to use (e.g. 普惠 only).

    Returns
    -------
    NodeReach

    Examples
    --------
    >>> from tuoyu.network.graph import build_graph
    >>> from tuoyu.network.snap import snap_points
    >>> from tuoyu.synthetic import synthetic_city
    >>> g = build_graph(synthetic_city(400, seed=0))
    >>> fac = snap_points(g, [g.network.node_x_m[0]], [g.network.node_y_m[0]])
    >>> r = nearest_facility_times(g, fac, 500.0)
    >>> float(r.dist_m[0]), int(r.facility[0])
    (0.0, 0)
    """
    cutoff = _check_cutoff(cutoff_m)
    _check_points(graph, facilities, "facilities")
    n = graph.n_nodes
    mask = _active_mask(facilities, active)
    on = np.flatnonzero(mask).astype(np.int64)
    dist = np.full(n, np.inf)
    facility = np.full(n, -1, dtype=np.int64)
    if on.shape[0] and n:
        u, v, w_u, w_v = _links(graph, facilities, on)
        s = on.shape[0]
        link_src = np.repeat(np.arange(s, dtype=np.int64), 2)
        link_tgt = np.column_stack([u, v]).ravel()
        link_w = np.column_stack([w_u, w_v]).ravel()
        csr = graph.csr
        g = _with_sources(csr.indptr, csr.indices, csr.data, n, link_src, link_tgt, link_w, s)
        d, _, src = dijkstra(
            g,
            directed=True,
            indices=np.arange(n, n + s),
            min_only=True,
            limit=cutoff,
            return_predecessors=True,
        )
        dist = d[:n]
        src = src[:n]
        reached = src >= 0
        facility[reached] = on[src[reached] - n]
        dist[~reached] = np.inf
    return NodeReach(
        dist_m=dist,
        facility=facility,
        cutoff_m=cutoff,
        facilities=facilities,
        active=None if active is None else mask,
    )


def point_times(
    graph: WalkGraph, reach: NodeReach, points: SnappedPoints
) -> tuple[FloatArray, IntArray]:
    """Walking distance from each point to its nearest facility, and which one.

    A point reaches its nearest facility through one of the two end nodes of its edge
    (partial edge + access leg), or directly along the edge when a facility sits on the
    same edge.

    Parameters
    ----------
    graph
        The routing graph ``reach`` was computed on.
    reach
        Result of :func:`nearest_facility_times` (or :meth:`ReachState.node_reach`).
    points
        Points snapped to ``graph`` (e.g. population points).

    Returns
    -------
    dist_m, facility_idx
        Shape (len(points),): metres (``inf`` beyond ``reach.cutoff_m`` and for
        off-network points) and facility index (``-1`` when none).
    """
    _check_points(graph, points, "points")
    if reach.dist_m.shape[0] != graph.n_nodes:
        raise InputValidationError(
            f"reach has {reach.dist_m.shape[0]} nodes, the graph {graph.n_nodes}: "
            "compute the reach on this graph",
            field="reach",
        )
    k = len(points)
    dist = np.full(k, np.inf)
    fac = np.full(k, -1, dtype=np.int64)
    on = np.flatnonzero(~points.off_network).astype(np.int64)
    if on.shape[0] == 0:
        return dist, fac
    u, v, w_u, w_v = _links(graph, points, on)
    via_u = reach.dist_m[u] + w_u
    via_v = reach.dist_m[v] + w_v
    use_u = via_u <= via_v
    dist[on] = np.where(use_u, via_u, via_v)
    fac[on] = np.where(use_u, reach.facility[u], reach.facility[v])

    facs = reach.facilities
    fmask = _active_mask(facs, reach.active)
    f_on = np.flatnonzero(fmask).astype(np.int64)
    if f_on.shape[0]:
        ip, jf = _same_edge_pairs(points.edge[on], facs.edge[f_on])
        if ip.shape[0]:
            p = on[ip]
            j = f_on[jf]
            length_m = graph.network.edge_length_m[points.edge[p]]
            direct = (
                points.access_m[p]
                + np.abs(points.fraction[p] - facs.fraction[j]) * length_m
                + facs.access_m[j]
            )
            # Best direct candidate per point: sort by (point, distance, facility).
            order = np.lexsort((j, direct, p))
            p, j, direct = p[order], j[order], direct[order]
            first = np.ones(p.shape[0], dtype=bool)
            first[1:] = p[1:] != p[:-1]
            p, j, direct = p[first], j[first], direct[first]
            better = direct < dist[p]
            dist[p[better]] = direct[better]
            fac[p[better]] = j[better]
    beyond = dist > reach.cutoff_m
    dist[beyond] = np.inf
    fac[beyond] = -1
    return dist, fac


# --------------------------------------------------------------------------------------
# Local searches
# --------------------------------------------------------------------------------------


def facility_reach(
    graph: WalkGraph, facilities: SnappedPoints, i: int, cutoff_m: float
) -> LocalReach:
    """The nodes facility ``i`` reaches within ``cutoff_m``, by a local bounded search.

    Parameters
    ----------
    graph
        The routing graph.
    facilities
        Facilities snapped to ``graph``.
    i
        Index of the facility.
    cutoff_m
        Walking-distance cut-off in metres.

    Returns
    -------
    LocalReach
        Reached nodes sorted by node index, with distances ≤ ``cutoff_m``; empty for an
        off-network facility.
    """
    cutoff = _check_cutoff(cutoff_m)
    _check_points(graph, facilities, "facilities")
    if not 0 <= i < len(facilities):
        raise NotFoundError(f"facility index {i} is outside 0..{len(facilities) - 1}")
    return _local_reach(_local_one(graph, facilities, i, cutoff), 0, facilities, cutoff)


def all_facility_reach(
    graph: WalkGraph, facilities: SnappedPoints, cutoff_m: float
) -> list[LocalReach]:
    """:func:`facility_reach` for every facility, in batched local searches.

    Facilities are searched in batches: on a large graph each batch is one Dijkstra
    call over the disjoint union of the facilities' local subgraphs (about 500,000
    nodes), so memory follows the neighbourhoods, not the graph size. A facility whose
    neighbourhood holds more than 1/32 of the graph is searched on the graph itself.

    Returns
    -------
    list of LocalReach
        In facility order.
    """
    cutoff = _check_cutoff(cutoff_m)
    _check_points(graph, facilities, "facilities")
    out: list[LocalReach | None] = [None] * len(facilities)
    for batch in _local_batches(graph, facilities, np.arange(len(facilities)), cutoff):
        for b, i in enumerate(batch.source.tolist()):
            out[i] = _local_reach(batch, b, facilities, cutoff)
    return [r for r in out if r is not None]


def k_nearest_facilities(
    graph: WalkGraph,
    facilities: SnappedPoints,
    point: SnappedPoints,
    cutoff_m: float,
    k: int,
    *,
    active: npt.ArrayLike | None = None,
) -> tuple[IntArray, FloatArray]:
    """The ``k`` facilities nearest to one point on foot, within ``cutoff_m``.

    One local search from the point; only facilities within the straight-line bound
    are considered.

    Parameters
    ----------
    graph
        The routing graph.
    facilities
        Facilities snapped to ``graph``.
    point
        Exactly one point snapped to ``graph`` (e.g. a user's location).
    cutoff_m
        Walking-distance cut-off in metres.
    k
        How many facilities at most.
    active
        Optional mask of the facilities to consider.

    Returns
    -------
    facility_idx, dist_m
        Sorted by distance (then index); at most ``k`` entries, all ≤ ``cutoff_m``.
        Empty for an off-network point.
    """
    cutoff = _check_cutoff(cutoff_m)
    if len(point) != 1:
        raise InputValidationError(f"point must hold exactly one point, got {len(point)}")
    if k < 0:
        raise InputValidationError(f"k must be non-negative, got {k}", field="k")
    _check_points(graph, facilities, "facilities")
    _check_points(graph, point, "point")
    empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
    mask = _active_mask(facilities, active)
    if k == 0 or point.off_network[0] or not mask.any():
        return empty
    reach_m = cutoff * max(graph.max_stretch, 1.0) + _RADIUS_PAD_M
    near = np.hypot(facilities.x_m - point.x_m[0], facilities.y_m - point.y_m[0]) <= reach_m
    cand = np.flatnonzero(mask & near).astype(np.int64)
    if cand.shape[0] == 0:
        return empty
    batch = _local_one(graph, point, 0, cutoff)
    dist = _pair_dist(graph, batch, point, np.zeros_like(cand), facilities, cand)
    ok = dist <= cutoff
    cand, dist = cand[ok], dist[ok]
    order = np.lexsort((cand, dist))[:k]
    return cand[order], dist[order]


def reach_matrix(
    graph: WalkGraph, sources: SnappedPoints, targets: SnappedPoints, cutoff_m: float
) -> sp.csr_array:
    """Sparse walking distances from each source to the targets within ``cutoff_m``.

    Parameters
    ----------
    graph
        The routing graph.
    sources
        E.g. facilities, snapped to ``graph``.
    targets
        E.g. population points, snapped to ``graph``.
    cutoff_m
        Walking-distance cut-off in metres.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(len(sources), len(targets))``. The stored entries are exactly the
        pairs within the cut-off; each stored value is the walking distance in metres
        **plus** :data:`REACH_MATRIX_OFFSET_M` (1e-9), so that a distance of 0 stays a
        stored, non-zero entry (the convention :mod:`tuoyu.indicators.access2sfca` reads). A
        missing entry means "not within the cut-off". Indices are sorted within rows.
    """
    cutoff = _check_cutoff(cutoff_m)
    _check_points(graph, sources, "sources")
    _check_points(graph, targets, "targets")
    n_src, n_tgt = len(sources), len(targets)
    t_on = np.flatnonzero(~targets.off_network).astype(np.int64)
    src_parts: list[IntArray] = []
    tgt_parts: list[IntArray] = []
    dist_parts: list[FloatArray] = []
    src_on = np.flatnonzero(~sources.off_network & (sources.access_m <= cutoff))
    if t_on.shape[0] and src_on.shape[0]:
        tree = cKDTree(np.column_stack([targets.x_m[t_on], targets.y_m[t_on]]))
        radius_m = float(_search_radius(graph, np.array([cutoff]))[0])
        for batch in _local_batches(graph, sources, src_on, cutoff):
            b_src = batch.source
            if np.isfinite(radius_m):
                found = tree.query_ball_point(
                    np.column_stack([sources.x_m[b_src], sources.y_m[b_src]]),
                    radius_m,
                    return_sorted=True,
                )
                lens = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
                cand = t_on[
                    np.fromiter(
                        itertools.chain.from_iterable(found),
                        dtype=np.int64,
                        count=int(lens.sum()),
                    )
                ]
            else:
                lens = np.full(b_src.shape[0], t_on.shape[0], dtype=np.int64)
                cand = np.tile(t_on, b_src.shape[0])
            block = np.repeat(np.arange(b_src.shape[0], dtype=np.int64), lens)
            dist = _pair_dist(graph, batch, sources, block, targets, cand)
            ok = dist <= cutoff
            src_parts.append(b_src[block[ok]])
            tgt_parts.append(cand[ok])
            dist_parts.append(dist[ok])
    row = np.concatenate(src_parts) if src_parts else np.empty(0, dtype=np.int64)
    col = np.concatenate(tgt_parts) if tgt_parts else np.empty(0, dtype=np.int64)
    data = np.concatenate(dist_parts) if dist_parts else np.empty(0, dtype=np.float64)
    # Batches may come in any source order: sort the pairs by (source, target).
    order = np.lexsort((col, row))
    row, col, data = row[order], col[order], data[order]
    indptr = np.zeros(n_src + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_src), out=indptr[1:])
    return sp.csr_array((data + REACH_MATRIX_OFFSET_M, col, indptr), shape=(n_src, n_tgt))


# --------------------------------------------------------------------------------------
# Incremental what-if
# --------------------------------------------------------------------------------------


class ReachState:
    """Per-node nearest-facility distances that follow facility additions and removals.

    Adding a facility runs one local search from it and lowers the distances it
    improves. Removing one recomputes only the nodes it was nearest to: a bounded
    multi-source search inside that set, seeded from its boundary (each outside
    neighbour's unchanged distance plus the joining edge) and from the facilities whose
    edges touch it. Both give exactly what a full recompute gives (tested).

    Parameters
    ----------
    graph
        The routing graph.
    facilities
        Initial facilities snapped to ``graph``.
    cutoff_m
        Walking-distance cut-off in metres.
    active
        Optional mask of the initial facilities to use.

    Attributes
    ----------
    dist_m, facility
        Current per-node distance and nearest facility (see :class:`NodeReach`); read
        them, do not write them.
    last_changed
        Node indices whose distance or facility the last add/remove changed.
    """

    def __init__(
        self,
        graph: WalkGraph,
        facilities: SnappedPoints,
        cutoff_m: float,
        *,
        active: npt.ArrayLike | None = None,
    ) -> None:
        self.graph = graph
        self.cutoff_m = _check_cutoff(cutoff_m)
        self._facilities = facilities
        self._active = _active_mask(facilities, active)
        reach = nearest_facility_times(graph, facilities, self.cutoff_m, active=self._active)
        self.dist_m = reach.dist_m
        self.facility = reach.facility
        self.last_changed = np.empty(0, dtype=np.int64)

    @property
    def facilities(self) -> SnappedPoints:
        """All facilities ever added (removed ones stay, marked inactive)."""
        return self._facilities

    @property
    def active(self) -> BoolArray:
        """Which facilities currently count (copy)."""
        return self._active.copy()

    def node_reach(self) -> NodeReach:
        """The current state as a :class:`NodeReach` (for :func:`point_times`)."""
        return NodeReach(
            dist_m=self.dist_m,
            facility=self.facility,
            cutoff_m=self.cutoff_m,
            facilities=self._facilities,
            active=self._active.copy(),
        )

    def add_facility(self, point: SnappedPoints) -> int:
        """Add one facility (snapped to the graph); returns its index.

        Only nodes within the new facility's cut-off can change; an off-network facility
        is recorded but changes nothing.
        """
        if len(point) != 1:
            raise InputValidationError(f"point must hold exactly one point, got {len(point)}")
        _check_points(self.graph, point, "point")
        self._facilities = _concat_points(self._facilities, point)
        idx = len(self._facilities) - 1
        self._active = np.append(self._active, not bool(point.off_network[0]))
        node, dist = _local_one(self.graph, point, 0, self.cutoff_m).block(0)
        better = dist < self.dist_m[node]
        changed = node[better]
        self.dist_m[changed] = dist[better]
        self.facility[changed] = idx
        self.last_changed = changed
        return idx

    def remove_facility(self, i: int) -> None:
        """Remove facility ``i``; only the nodes it was nearest to are recomputed.

        Raises
        ------
        NotFoundError
            When ``i`` is not a facility currently counted.
        """
        if not (0 <= i < len(self._facilities)) or not self._active[i]:
            raise NotFoundError(f"facility {i} is not an active facility of this state")
        self._active[i] = False
        # Every node that had ``i`` as nearest is within its cut-off: find them locally
        # (the limit is padded so that rounding on a node exactly at the cut-off,
        # reached by an equally long path, cannot hide it).
        padded_m = self.cutoff_m * (1.0 + 1e-9) + _RADIUS_PAD_M
        node, _ = _local_one(self.graph, self._facilities, i, padded_m).block(0)
        owned = node[self.facility[node] == i]
        self.last_changed = owned
        if owned.shape[0] == 0:
            return
        new_dist, new_fac = self._recompute(owned)
        self.dist_m[owned] = new_dist
        self.facility[owned] = new_fac

    def _recompute(self, region: IntArray) -> tuple[FloatArray, IntArray]:
        """Nearest distance/facility for the sorted node set ``region`` (see class doc).

        Correct because a shortest path from the new nearest facility into ``region``
        either starts on an edge that touches ``region`` (a facility seed) or enters it
        from a node outside, whose distance is unchanged by the removal (its nearest
        facility was another one), and then stays inside.
        """
        graph = self.graph
        csr = graph.csr
        k = region.shape[0]
        indptr, indices, data = _induced_subgraph(graph, region)

        # Boundary seeds: outside neighbour y of region node x with finite distance.
        row, pos, nbr = _gather_rows(graph, region)
        _, inside = _find(region, nbr)
        outside = ~inside & np.isfinite(self.dist_m[nbr])
        seed_tgt = [row[outside]]
        seed_w = [self.dist_m[nbr[outside]] + csr.data[pos[outside]]]
        seed_fac = [self.facility[nbr[outside]]]

        # Facility seeds: active facilities whose edge has an end node in the region.
        f_on = np.flatnonzero(self._active & ~self._facilities.off_network).astype(np.int64)
        if f_on.shape[0]:
            u, v, w_u, w_v = _links(graph, self._facilities, f_on)
            for end, w in ((u, w_u), (v, w_v)):
                p, hit = _find(region, end)
                seed_tgt.append(p[hit])
                seed_w.append(w[hit])
                seed_fac.append(f_on[hit])
        tgt = np.concatenate(seed_tgt)
        w_all = np.concatenate(seed_w)
        fac_all = np.concatenate(seed_fac)
        ok = w_all <= self.cutoff_m
        tgt, w_all, fac_all = tgt[ok], w_all[ok], fac_all[ok]
        dist = np.full(k, np.inf)
        fac = np.full(k, -1, dtype=np.int64)
        s = tgt.shape[0]
        if s == 0:
            return dist, fac
        g = _with_sources(indptr, indices, data, k, np.arange(s, dtype=np.int64), tgt, w_all, s)
        d, _, src = dijkstra(
            g,
            directed=True,
            indices=np.arange(k, k + s),
            min_only=True,
            limit=self.cutoff_m,
            return_predecessors=True,
        )
        reached = src[:k] >= 0
        dist[reached] = d[:k][reached]
        fac[reached] = fac_all[src[:k][reached] - k]
        return dist, fac


def _concat_points(a: SnappedPoints, b: SnappedPoints) -> SnappedPoints:
    """The points of ``a`` followed by those of ``b``."""
    return SnappedPoints(
        x_m=np.concatenate([a.x_m, b.x_m]),
        y_m=np.concatenate([a.y_m, b.y_m]),
        edge=np.concatenate([a.edge, b.edge]),
        fraction=np.concatenate([a.fraction, b.fraction]),
        snap_x_m=np.concatenate([a.snap_x_m, b.snap_x_m]),
        snap_y_m=np.concatenate([a.snap_y_m, b.snap_y_m]),
        access_m=np.concatenate([a.access_m, b.access_m]),
        off_network=np.concatenate([a.off_network, b.off_network]),
        max_snap_m=a.max_snap_m,
        moved_from_island=None
        if a.moved_from_island is None or b.moved_from_island is None
        else np.concatenate([a.moved_from_island, b.moved_from_island]),
        min_component_nodes=a.min_component_nodes,
    )
