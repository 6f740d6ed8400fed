"""The windowed nearest-edge search gives exactly the pairs of GEOS's nearest search."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from tuoyu.network.graph import build_graph
from tuoyu.network.snap import NEAR_WINDOW_M, _nearest_edges
from tuoyu.synthetic import synthetic_city


def _reference(
    tree: shapely.STRtree, points: np.ndarray, limit: float | None, preferred: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The previous implementation: one all-matches nearest query, then the tie rule."""
    (p_idx, e_idx), _ = tree.query_nearest(
        points, max_distance=limit, return_distance=True, all_matches=True
    )
    p_idx = np.asarray(p_idx, dtype=np.int64)
    e_idx = np.asarray(e_idx, dtype=np.int64)
    keys = (e_idx, p_idx) if preferred is None else (e_idx, ~preferred[e_idx], p_idx)
    order = np.lexsort(keys)
    p_idx, e_idx = p_idx[order], e_idx[order]
    first = np.ones(p_idx.shape[0], dtype=bool)
    first[1:] = p_idx[1:] != p_idx[:-1]
    return p_idx[first], e_idx[first]


@pytest.mark.parametrize("limit", [None, 300.0, 0.5 * NEAR_WINDOW_M, 2 * NEAR_WINDOW_M])
@pytest.mark.parametrize("with_preference", [False, True])
def test_windowed_search_equals_nearest_query(limit: float | None, with_preference: bool) -> None:
    graph = build_graph(synthetic_city(3000, seed=4))
    net = graph.network
    rng = np.random.default_rng(5)
    x0, x1 = float(net.node_x_m.min()), float(net.node_x_m.max())
    y0, y1 = float(net.node_y_m.min()), float(net.node_y_m.max())
    u, v = net.edge_u[:300], net.edge_v[:300]
    # Random points, points on nodes and mid-edge (exact ties between edges), and points
    # beyond the window and beyond the limit (off the east side of the city).
    x = np.r_[
        rng.uniform(x0, x1, 3000),
        net.node_x_m[:300],
        (net.node_x_m[u] + net.node_x_m[v]) / 2,
        x1 + np.linspace(1.0, 600.0, 60),
    ]
    y = np.r_[
        rng.uniform(y0, y1, 3000),
        net.node_y_m[:300],
        (net.node_y_m[u] + net.node_y_m[v]) / 2,
        np.full(60, (y0 + y1) / 2),
    ]
    points = np.asarray(shapely.points(x, y), dtype=object)
    preferred = rng.random(net.n_edges) > 0.2 if with_preference else None
    got = _nearest_edges(graph.edge_tree, points, limit, preferred)
    want = _reference(graph.edge_tree, points, limit, preferred)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    # East points farther than the window but within the limit come from the fallback.
    east = got[0][got[0] >= 3600]
    if limit is None:
        assert east.shape[0] == 60
    elif limit > NEAR_WINDOW_M:
        assert 0 < east.shape[0] < 60
