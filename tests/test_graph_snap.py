"""CSR routing graph and snapping: hand-made networks and a brute-force check."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from tuoyu.errors import InputValidationError
from tuoyu.network.graph import build_graph
from tuoyu.network.snap import empty_snapped, snap_points
from tuoyu.synthetic import random_facilities, synthetic_city

from tests.handmade import X0, Y0, network

# A 3 × 3 grid, 100 m spacing: node r*3+c at (100c, 100r).
GRID_XY = [(100.0 * c, 100.0 * r) for r in range(3) for c in range(3)]
GRID_EDGES = [
    *[(0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8)],  # rows
    *[(0, 3), (3, 6), (1, 4), (4, 7), (2, 5), (5, 8)],  # columns
]


# ----------------------------------------------------------------------------- graph


def test_csr_is_symmetric_with_edge_lengths() -> None:
    g = build_graph(network(GRID_XY, GRID_EDGES))
    dense = g.csr.toarray()
    np.testing.assert_array_equal(dense, dense.T)
    assert g.csr.nnz == 2 * len(GRID_EDGES)
    assert dense[0, 1] == 100.0 and dense[4, 7] == 100.0 and dense[0, 4] == 0.0
    assert g.csr.has_canonical_format
    assert g.max_stretch == pytest.approx(1.0)


def test_parallel_segments_keep_the_shortest() -> None:
    net = network(
        [(0, 0), (100, 0), (0, 50)], [(0, 1), (1, 0), (0, 2), (0, 1)], [130.0, 100.0, 50.0, 120.0]
    )
    g = build_graph(net)
    assert g.csr.nnz == 4  # pairs 0-1 and 0-2, both directions
    assert g.csr[0, 1] == 100.0 and g.csr[1, 0] == 100.0
    assert g.csr[0, 2] == 50.0


def test_zero_length_segment_is_a_stored_edge() -> None:
    net = network([(0, 0), (0, 0), (100, 0)], [(0, 1), (1, 2)])
    g = build_graph(net)
    assert g.csr.nnz == 4
    assert g.csr[0, 1] == 0.0
    row0 = g.csr.indices[g.csr.indptr[0] : g.csr.indptr[1]]
    assert row0.tolist() == [1]  # stored explicitly, csgraph treats it as an edge


def test_stretch_reflects_lengths_shorter_than_geometry() -> None:
    net = network([(0, 0), (100, 0), (200, 0)], [(0, 1), (1, 2)], [80.0, 100.0])
    assert build_graph(net).max_stretch == pytest.approx(1.25)
    zero = network([(0, 0), (100, 0)], [(0, 1)], [0.0])
    assert build_graph(zero).max_stretch == np.inf


@pytest.mark.parametrize(
    ("edges", "lengths", "field", "message"),
    [
        ([(0, 5)], [1.0], "edge_u/edge_v", "outside 0..2"),
        ([(1, 1)], [1.0], "edge_u/edge_v", "to itself"),
        ([(0, 1)], [-3.0], "edge_length_m", "finite and >= 0"),
        ([(0, 1)], [np.nan], "edge_length_m", "finite and >= 0"),
    ],
)
def test_bad_edges_are_named(
    edges: list[tuple[int, int]], lengths: list[float], field: str, message: str
) -> None:
    net = network([(0, 0), (1, 0), (2, 0)], [(0, 1), *edges], [1.0, *lengths])
    with pytest.raises(InputValidationError, match=message) as info:
        build_graph(net)
    assert info.value.field == field
    assert info.value.row == 2


def test_empty_network_builds() -> None:
    g = build_graph(network([], []))
    assert g.csr.shape == (0, 0)
    s = snap_points(g, [X0], [Y0])
    assert s.off_network.tolist() == [True] and s.access_m[0] == np.inf


def test_spatial_indexes_are_lazy() -> None:
    g = build_graph(network(GRID_XY, GRID_EDGES))
    assert "edge_grid" not in vars(g) and "node_tree" not in vars(g)
    snap_points(g, [X0 + 10], [Y0 + 10])
    assert "edge_grid" in vars(g)
    assert "edge_tree" not in vars(g)  # snapping builds no GEOS geometries


# ----------------------------------------------------------------------------- snap


@pytest.fixture(scope="module")
def grid():  # type: ignore[no-untyped-def]
    return build_graph(network(GRID_XY, GRID_EDGES))


def test_mid_edge_point_by_hand(grid) -> None:  # type: ignore[no-untyped-def]
    # (130, 40): 30 m from edge 1-4 (x = 100), 40 m from edge 1-2 (y = 0).
    s = snap_points(grid, [X0 + 130.0], [Y0 + 40.0])
    assert GRID_EDGES[int(s.edge[0])] == (1, 4)
    assert s.fraction[0] == pytest.approx(0.4)
    assert s.access_m[0] == pytest.approx(30.0)
    assert (s.snap_x_m[0] - X0, s.snap_y_m[0] - Y0) == pytest.approx((100.0, 40.0))
    assert not s.off_network[0]


def test_point_beyond_the_end_snaps_to_the_end_node(grid) -> None:  # type: ignore[no-untyped-def]
    s = snap_points(grid, [X0 - 30.0], [Y0 - 40.0])
    assert s.access_m[0] == pytest.approx(50.0)
    assert (s.snap_x_m[0], s.snap_y_m[0]) == pytest.approx((X0, Y0))
    u, v = GRID_EDGES[int(s.edge[0])]
    assert (u if s.fraction[0] == 0.0 else v) == 0


def test_off_network_point_keeps_its_distance(grid) -> None:  # type: ignore[no-untyped-def]
    s = snap_points(grid, [X0 + 100.0, X0 + 100.0], [Y0 + 200.0 + 400.0, Y0 + 250.0], 300.0)
    assert s.off_network.tolist() == [True, False]
    assert s.edge[0] == -1 and np.isnan(s.fraction[0]) and np.isnan(s.snap_x_m[0])
    assert s.access_m[0] == pytest.approx(400.0)
    assert s.access_m[1] == pytest.approx(50.0)


def test_point_exactly_at_the_limit_is_snapped(grid) -> None:  # type: ignore[no-untyped-def]
    s = snap_points(grid, [X0 + 50.0], [Y0 - 25.0], max_snap_m=25.0)
    assert not s.off_network[0] and s.access_m[0] == 25.0
    s = snap_points(grid, [X0 + 50.0], [Y0 - 25.0], max_snap_m=24.999)
    assert s.off_network[0] and s.access_m[0] == 25.0


def test_ties_pick_the_lowest_edge_index(grid) -> None:  # type: ignore[no-untyped-def]
    # The centre of the lower-left block is 50 m from four edges: 0-1, 3-4, 0-3, 1-4.
    s = snap_points(grid, [X0 + 50.0], [Y0 + 50.0])
    assert int(s.edge[0]) == 0 and s.access_m[0] == pytest.approx(50.0)


def test_empty_in_empty_out(grid) -> None:  # type: ignore[no-untyped-def]
    s = snap_points(grid, [], [])
    assert len(s) == 0 and s.edge.dtype == np.int64 and s.off_network.dtype == bool
    assert len(empty_snapped()) == 0


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        ([X0, np.nan], [Y0, Y0], "point 1 has a non-finite"),
        ([X0, X0], [Y0, np.inf], "point 1 has a non-finite"),
        ([X0, X0], [Y0], "one length"),
    ],
)
def test_bad_coordinates_are_named(grid, x, y, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputValidationError, match=match):
        snap_points(grid, x, y)


def test_non_positive_limit_refused(grid) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputValidationError, match="max_snap_m"):
        snap_points(grid, [X0], [Y0], max_snap_m=0.0)


def test_snapping_matches_brute_force_on_a_synthetic_city() -> None:
    net = synthetic_city(900, seed=5)
    g = build_graph(net)
    rng = np.random.default_rng(7)
    x = rng.uniform(net.node_x_m.min() - 200, net.node_x_m.max() + 200, 400)
    y = rng.uniform(net.node_y_m.min() - 200, net.node_y_m.max() + 200, 400)
    s = snap_points(g, x, y, max_snap_m=60.0)
    lines = shapely.linestrings(net.edge_segments())
    dist = shapely.distance(shapely.points(x, y)[:, None], lines[None, :])
    nearest = dist.min(axis=1)
    np.testing.assert_allclose(s.access_m, nearest, atol=1e-6)
    on = ~s.off_network
    assert (on == (nearest <= 60.0)).all()
    assert 0 < on.sum() < 400  # both kinds occur
    # The snapped point lies on the chosen edge, at the nearest distance.
    chosen = dist[np.flatnonzero(on), s.edge[on]]
    np.testing.assert_allclose(chosen, nearest[on], atol=1e-6)
    on_line = shapely.distance(shapely.points(s.snap_x_m[on], s.snap_y_m[on]), lines[s.edge[on]])
    assert float(on_line.max()) < 1e-6


def test_random_facilities_snap_within_their_offset() -> None:
    net = synthetic_city(400, seed=2)
    g = build_graph(net)
    x, y = random_facilities(net, 300, seed=3, max_offset_m=30.0)
    s = snap_points(g, x, y, max_snap_m=30.0 + 1e-6)
    assert not s.off_network.any()
    assert float(s.access_m.max()) <= 30.0 + 1e-6
