"""The bucket-grid nearest-edge search gives exactly what GEOS's STRtree gave."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from numba import njit
from tuoyu.network._kernels import geos_point_segment_m
from tuoyu.network.edge_grid import BUCKET_M, EdgeGrid, nearest_edges
from tuoyu.network.graph import WalkGraph, build_graph
from tuoyu.synthetic import synthetic_city


@njit(cache=False)
def _distances(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(p.shape[0])
    for i in range(p.shape[0]):
        out[i] = geos_point_segment_m(p[i, 0], p[i, 1], a[i, 0], a[i, 1], b[i, 0], b[i, 1])
    return out


def test_distance_is_geos_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    n = 50_000
    a = rng.uniform(-1e3, 1e3, (n, 2)) + 5e5
    b = a + rng.normal(0, 50, (n, 2))
    b[:500] = a[:500]  # zero-length segments
    p = a + rng.normal(0, 80, (n, 2))
    p[500:1000] = a[500:1000]  # on an end
    p[1000:1500] = (a[1000:1500] + b[1000:1500]) / 2  # on the segment
    want = shapely.distance(shapely.points(p), shapely.linestrings(np.stack([a, b], axis=1)))
    assert np.array_equal(_distances(p, a, b), want)


def _reference(
    graph: WalkGraph, x: np.ndarray, y: np.ndarray, limit: float, preferred: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The previous search: STRtree all-matches nearest query, preferred then lowest index."""
    (p_idx, e_idx), dist = graph.edge_tree.query_nearest(
        shapely.points(x, y),
        max_distance=None if np.isinf(limit) else limit,
        return_distance=True,
        all_matches=True,
    )
    keys = (e_idx, p_idx) if preferred is None else (e_idx, ~preferred[e_idx], p_idx)
    order = np.lexsort(keys)
    p_idx, e_idx, dist = p_idx[order], e_idx[order], dist[order]
    first = np.r_[True, p_idx[1:] != p_idx[:-1]]
    edge = np.full(x.shape[0], -1)
    best = np.full(x.shape[0], np.inf)
    edge[p_idx[first]] = e_idx[first]
    best[p_idx[first]] = dist[first]
    return edge, best


@pytest.mark.parametrize("limit", [np.inf, 300.0, 0.5 * BUCKET_M, 2.5 * BUCKET_M])
@pytest.mark.parametrize("with_preference", [False, True])
def test_nearest_equals_the_strtree(limit: float, with_preference: bool) -> None:
    graph = build_graph(synthetic_city(3000, seed=4))
    net = graph.network
    rng = np.random.default_rng(5)
    x0, x1 = float(net.node_x_m.min()), float(net.node_x_m.max())
    y0, y1 = float(net.node_y_m.min()), float(net.node_y_m.max())
    u, v = net.edge_u[:300], net.edge_v[:300]
    # Random points (some outside the grid), points on nodes and mid-edge (exact ties
    # between edges), and points far off the east side.
    x = np.r_[
        rng.uniform(x0 - 400, x1 + 400, 3000),
        net.node_x_m[:300],
        (net.node_x_m[u] + net.node_x_m[v]) / 2,
        x1 + np.linspace(1.0, 2000.0, 60),
    ]
    y = np.r_[
        rng.uniform(y0 - 400, y1 + 400, 3000),
        net.node_y_m[:300],
        (net.node_y_m[u] + net.node_y_m[v]) / 2,
        np.full(60, (y0 + y1) / 2),
    ]
    preferred = rng.random(net.n_edges) > 0.2 if with_preference else None
    edge, dist = nearest_edges(graph.edge_grid, net, x, y, limit, preferred=preferred)
    want_edge, want_dist = _reference(graph, x, y, limit, preferred)
    assert np.array_equal(edge, want_edge) and np.array_equal(dist, want_dist)
    if np.isinf(limit):
        assert (edge >= 0).all()
    else:
        assert (edge < 0).any() and (edge >= 0).any()


def test_allowed_edges_only() -> None:
    net = synthetic_city(400, seed=1)
    grid = EdgeGrid.build(net)
    allowed = np.zeros(net.n_edges, dtype=bool)
    allowed[net.n_edges // 2 :] = True
    edge, dist = nearest_edges(grid, net, net.node_x_m, net.node_y_m, np.inf, allowed=allowed)
    assert allowed[edge].all()
    lines = np.asarray(shapely.linestrings(net.edge_segments()[allowed]), dtype=object)
    points = np.asarray(shapely.points(net.node_x_m, net.node_y_m), dtype=object)
    want = shapely.distance(points[:, None], lines[None, :])
    assert np.array_equal(dist, want.min(axis=1))


def test_grid_lists_each_edge_in_every_bucket_its_box_meets() -> None:
    """The counting sort gives the buckets of a plain repeat-and-stable-sort."""
    net = synthetic_city(5000, seed=2)
    grid = EdgeGrid.build(net, size_m=40.0)
    xy = net.node_xy()
    lo = np.minimum(xy[net.edge_u], xy[net.edge_v])
    hi = np.maximum(xy[net.edge_u], xy[net.edge_v])
    (ox, oy), nx = grid.origin, grid.shape[0]
    entries = [
        ((j * nx + i), e)
        for e in range(net.n_edges)
        for j in range(int((lo[e, 1] - oy) // 40.0), int((hi[e, 1] - oy) // 40.0) + 1)
        for i in range(int((lo[e, 0] - ox) // 40.0), int((hi[e, 0] - ox) // 40.0) + 1)
    ]
    entries.sort()  # by bucket, then edge
    assert grid.edges.tolist() == [e for _, e in entries]
    counts = np.bincount([b for b, _ in entries], minlength=grid.ptr.shape[0] - 1)
    assert np.array_equal(np.diff(grid.ptr), counts)


def test_incident_edges_starting_then_ending_in_edge_order() -> None:
    from tuoyu.network._kernels import incidence

    u = np.array([2, 0, 1, 2, 1], dtype=np.int64)
    v = np.array([0, 1, 2, 2, 0], dtype=np.int64)
    ptr, edges = incidence(u, v, 3)
    lists = [edges[ptr[k] : ptr[k + 1]].tolist() for k in range(3)]
    assert lists == [[1, 0, 4], [2, 4, 1], [0, 3, 2, 3]]
