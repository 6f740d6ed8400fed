"""Compiled kernels of the network's indexes: the edge grid
(:class:`tuoyu.network.edge_grid.EdgeGrid`: filling it, nearest-edge search) and the
node → incident-edge lists.

Written by hand, compiled with numba: see :mod:`tuoyu.network.edge_grid` for why not an
STRtree. Each point searches square rings of buckets outward from its own and stops
once the best distance found is less than the distance to any bucket not yet searched,
so every edge at the best distance (every tie) has been seen.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
def geos_point_segment_m(
    px: float, py: float, ax: float, ay: float, bx: float, by: float
) -> float:  # pragma: no cover
    """GEOS's ``Distance::pointToSegment``, the same operations in the same order.

    So a distance here equals shapely's ``distance(Point, LineString)`` for a two-point
    line bit for bit, and ties between edges are ties in both.
    """
    if ax == bx and ay == by:
        dx = px - ax
        dy = py - ay
        return float(np.sqrt(dx * dx + dy * dy))
    len2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay)
    r = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / len2
    if r <= 0.0:
        dx = px - ax
        dy = py - ay
        return float(np.sqrt(dx * dx + dy * dy))
    if r >= 1.0:
        dx = px - bx
        dy = py - by
        return float(np.sqrt(dx * dx + dy * dy))
    s = ((ay - py) * (bx - ax) - (ax - px) * (by - ay)) / len2
    return float(abs(s) * np.sqrt(len2))


@njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
def nearest_edges_kernel(
    px: FloatArray,
    py: FloatArray,
    node_x: FloatArray,
    node_y: FloatArray,
    edge_u: IntArray,
    edge_v: IntArray,
    allowed: npt.NDArray[np.uint8],
    preferred: npt.NDArray[np.uint8],
    ptr: IntArray,
    edges: IntArray,
    ox: float,
    oy: float,
    size_m: float,
    nx: int,
    ny: int,
    limit_m: float,
) -> tuple[IntArray, FloatArray]:  # pragma: no cover
    """Per point the nearest allowed edge within ``limit_m`` (-1, inf when none).

    Ties: a preferred edge first, then the lowest index.
    """
    k = px.shape[0]
    best_edge = np.full(k, -1, dtype=np.int64)
    best_dist = np.full(k, np.inf)
    for p in range(k):
        x = px[p]
        y = py[p]
        bi = int(np.floor((x - ox) / size_m))
        bj = int(np.floor((y - oy) / size_m))
        # After this many rings the whole grid has been searched.
        r_max = max(max(abs(bi), abs(nx - 1 - bi)), max(abs(bj), abs(ny - 1 - bj)))
        b_d = np.inf
        b_e = -1
        b_pref = 0
        r = 0
        while r <= r_max:
            # Everything outside the squares searched so far is at least this far.
            reach = (r - 1) * size_m
            if r > 0 and (b_d < reach or reach > limit_m):
                break
            j_lo = max(0, bj - r)
            j_hi = min(ny - 1, bj + r)
            for j in range(j_lo, j_hi + 1):
                edge_row = j == bj - r or j == bj + r
                i = max(0, bi - r)
                i_hi = min(nx - 1, bi + r)
                while i <= i_hi:
                    if edge_row or i == bi - r or i == bi + r:
                        b = j * nx + i
                        for q in range(ptr[b], ptr[b + 1]):
                            e = edges[q]
                            if not allowed[e]:
                                continue
                            u = edge_u[e]
                            v = edge_v[e]
                            d = geos_point_segment_m(
                                x, y, node_x[u], node_y[u], node_x[v], node_y[v]
                            )
                            if d > limit_m:
                                continue
                            pr = preferred[e]
                            if d < b_d or (
                                d == b_d and (pr > b_pref or (pr == b_pref and e < b_e))
                            ):
                                b_d = d
                                b_e = e
                                b_pref = pr
                        i += 1
                    elif i < bi + r:
                        i = bi + r  # skip the inside of the ring
                    else:
                        i += 1
            r += 1
        best_edge[p] = b_e
        best_dist[p] = b_d
    return best_edge, best_dist


@njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
def fill_buckets(
    bi0: IntArray, bj0: IntArray, wi: IntArray, wj: IntArray, nx: int, n_buckets: int
) -> tuple[IntArray, IntArray]:  # pragma: no cover
    """CSR of the edges per bucket: edge ``e`` covers ``wi[e] × wj[e]`` buckets from
    ``(bi0[e], bj0[e])``; each bucket lists its edges in increasing order.

    A counting sort in two passes (the vectorised version built five arrays as long as
    all the entries, 6.4 M on a 10⁶-node city, and sorted them: 1.4 s against 0.1 s).
    """
    m = bi0.shape[0]
    ptr = np.zeros(n_buckets + 1, dtype=np.int64)
    for e in range(m):
        for dj in range(wj[e]):
            row = (bj0[e] + dj) * nx + bi0[e]
            for di in range(wi[e]):
                ptr[row + di + 1] += 1
    for b in range(n_buckets):
        ptr[b + 1] += ptr[b]
    fill = ptr[:-1].copy()
    edges = np.empty(ptr[n_buckets], dtype=np.int64)
    for e in range(m):
        for dj in range(wj[e]):
            row = (bj0[e] + dj) * nx + bi0[e]
            for di in range(wi[e]):
                b = row + di
                edges[fill[b]] = e
                fill[b] += 1
    return ptr, edges


@njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
def incidence(u: IntArray, v: IntArray, n: int) -> tuple[IntArray, IntArray]:  # pragma: no cover
    """CSR of the edges at each node: node ``k`` lists ``edges[ptr[k]:ptr[k + 1]]``, first
    the edges starting there, then those ending there, each in increasing order (the
    order of a stable sort of ``u`` then ``v``; an edge from a node to itself is listed
    twice). A counting sort: 0.05 s where the stable argsort took 0.3 s on 1.95 M edges.
    """
    m = u.shape[0]
    ptr = np.zeros(n + 1, dtype=np.int64)
    for e in range(m):
        ptr[u[e] + 1] += 1
        ptr[v[e] + 1] += 1
    for k in range(n):
        ptr[k + 1] += ptr[k]
    fill = ptr[:-1].copy()
    edges = np.empty(2 * m, dtype=np.int64)
    for e in range(m):
        edges[fill[u[e]]] = e
        fill[u[e]] += 1
    for e in range(m):
        edges[fill[v[e]]] = e
        fill[v[e]] += 1
    return ptr, edges
