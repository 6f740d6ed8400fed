"""Walking reach: hand-checkable grids, and agreement with networkx on every node.

The networkx reference is built separately from the WalkNetwork: every snapped point
(facility or population point) becomes a real node splitting its edge, joined to a
pendant node at the input point by its access leg.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from itertools import pairwise
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
import tuoyu.reach.engine as reach_module
from tuoyu.config.settings import Settings
from tuoyu.errors import InputValidationError, NotFoundError
from tuoyu.network.graph import WalkGraph, build_graph
from tuoyu.network.snap import snap_points
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.reach.engine import (
    REACH_MATRIX_OFFSET_M,
    ReachState,
    all_facility_reach,
    facility_reach,
    k_nearest_facilities,
    nearest_facility_times,
    point_times,
    reach_matrix,
)
from tuoyu.synthetic import random_facilities, synthetic_city
from tuoyu.types import SnappedPoints

from tests.handmade import X0, Y0, network

TOL_M = 1e-6


def snap(g: WalkGraph, pts: list[tuple[float, float]], max_snap_m: float = 300.0) -> SnappedPoints:
    # These tests route on islands on purpose: no island filter.
    return snap_points(
        g,
        [X0 + p[0] for p in pts],
        [Y0 + p[1] for p in pts],
        max_snap_m=max_snap_m,
        min_component_nodes=0,
    )


# 3 × 3 grid, 100 m spacing (node r*3+c at (100c, 100r)), plus an island 9–10.
GRID_XY = [(100.0 * c, 100.0 * r) for r in range(3) for c in range(3)] + [
    (1000.0, 1000.0),
    (1100.0, 1000.0),
]
GRID_EDGES = [
    (0, 1),
    (1, 2),
    (3, 4),
    (4, 5),
    (6, 7),
    (7, 8),
    (0, 3),
    (3, 6),
    (1, 4),
    (4, 7),
    (2, 5),
    (5, 8),
    (9, 10),
]


@pytest.fixture(scope="module")
def grid() -> WalkGraph:
    return build_graph(network(GRID_XY, GRID_EDGES))


# ----------------------------------------------------------------------------- by hand


def test_known_reachable_set_on_a_grid(grid: WalkGraph, mode: str) -> None:
    fac = snap(grid, [(50.0, 0.0)])  # mid-edge 0-1, on the street
    r = facility_reach(grid, fac, 0, 160.0)
    assert dict(zip(r.node.tolist(), r.dist_m.tolist(), strict=True)) == pytest.approx(
        {0: 50.0, 1: 50.0, 2: 150.0, 3: 150.0, 4: 150.0}
    )
    assert (r.start_edge, r.start_fraction, r.access_m) == (0, 0.5, 0.0)
    nr = nearest_facility_times(grid, fac, 160.0)
    reached = np.flatnonzero(np.isfinite(nr.dist_m))
    assert reached.tolist() == [0, 1, 2, 3, 4]
    assert (nr.facility[reached] == 0).all() and (nr.facility[5:] == -1).all()


def test_cutoff_is_inclusive(grid: WalkGraph, mode: str) -> None:
    fac = snap(grid, [(50.0, 0.0)])
    assert 2 in facility_reach(grid, fac, 0, 150.0).node
    assert 2 not in facility_reach(grid, fac, 0, 149.999).node
    assert np.isfinite(nearest_facility_times(grid, fac, 150.0).dist_m[2])


def test_point_snapped_mid_edge_by_hand(grid: WalkGraph, mode: str) -> None:
    fac = snap(grid, [(0.0, 0.0)])  # on node 0
    pts = snap(grid, [(130.0, 40.0)])  # joins edge 1-4 at (100, 40), 30 m access
    dist, idx = point_times(grid, nearest_facility_times(grid, fac, 1000.0), pts)
    assert dist[0] == pytest.approx(100.0 + 40.0 + 30.0)
    assert idx[0] == 0


def test_point_on_the_facility_edge_walks_along_it(grid: WalkGraph, mode: str) -> None:
    fac = snap(grid, [(20.0, 5.0)])  # edge 0-1, fraction 0.2, access 5
    pts = snap(grid, [(70.0, -10.0)])  # edge 0-1, fraction 0.7, access 10
    dist, idx = point_times(grid, nearest_facility_times(grid, fac, 1000.0), pts)
    assert dist[0] == pytest.approx(5.0 + 50.0 + 10.0)  # via a node it would be 105
    assert idx[0] == 0
    # Same answer from the local searches.
    f_idx, f_dist = k_nearest_facilities(grid, fac, pts, 1000.0, 3)
    assert f_idx.tolist() == [0] and f_dist[0] == pytest.approx(65.0)
    m = reach_matrix(grid, fac, pts, 1000.0)
    assert m[0, 0] == pytest.approx(65.0 + REACH_MATRIX_OFFSET_M)


def test_off_network_points_and_facilities(grid: WalkGraph, mode: str) -> None:
    fac = snap(grid, [(0.0, 0.0), (600.0, 600.0)])  # the second is 400+ m from any edge
    assert fac.off_network.tolist() == [False, True]
    pts = snap(grid, [(100.0, 0.0), (-500.0, 0.0)])
    nr = nearest_facility_times(grid, fac, 1000.0)
    assert set(nr.facility[np.isfinite(nr.dist_m)].tolist()) == {0}
    dist, idx = point_times(grid, nr, pts)
    assert dist[0] == pytest.approx(100.0) and idx[0] == 0
    assert dist[1] == np.inf and idx[1] == -1
    r = facility_reach(grid, fac, 1, 1000.0)
    assert r.node.size == 0 and r.start_edge == -1 and r.access_m > 300.0
    idx, _ = k_nearest_facilities(grid, fac, _one(pts, 1), 1000.0, 5)
    assert idx.size == 0
    m = reach_matrix(grid, fac, pts, 1000.0)
    assert m.shape == (2, 2) and m[[1], :].nnz == 0 and m[:, [1]].nnz == 0


def _one(points: SnappedPoints, i: int) -> SnappedPoints:
    return SnappedPoints(
        **{
            name: getattr(points, name)[i : i + 1]
            for name in (
                "x_m",
                "y_m",
                "edge",
                "fraction",
                "snap_x_m",
                "snap_y_m",
                "access_m",
                "off_network",
            )
        },
        max_snap_m=points.max_snap_m,
    )


TWO_FACILITIES = [(0.0, 0.0), (190.0, 0.0)]  # A on node 0; B on edge 1-2, 90 m past node 1


def test_two_overlapping_facilities_by_hand(grid: WalkGraph, mode: str) -> None:
    fac = snap(grid, TWO_FACILITIES)
    nr = nearest_facility_times(grid, fac, 250.0)
    # Hand table: A reaches 0:0 1:100 3:100 2/4/6:200; B reaches 2:10 1:90 5:110
    # 4:190 0:190 8:210 (7: A 300, B 290 → beyond 250).
    expected = {0: (0.0, 0), 1: (90.0, 1), 2: (10.0, 1), 3: (100.0, 0), 4: (190.0, 1)}
    expected |= {5: (110.0, 1), 6: (200.0, 0), 8: (210.0, 1)}
    for node, (d, f) in expected.items():
        assert nr.dist_m[node] == pytest.approx(d), node
        assert nr.facility[node] == f, node
    assert nr.dist_m[7] == np.inf and nr.facility[7] == -1
    a, b = facility_reach(grid, fac, 0, 250.0), facility_reach(grid, fac, 1, 250.0)
    assert {1, 4, 2, 0} <= set(a.node.tolist()) & set(b.node.tolist())


def test_facility_on_an_island_reaches_only_its_island(grid: WalkGraph, mode: str) -> None:
    fac = snap(grid, [*TWO_FACILITIES, (1050.0, 1005.0)])
    r = facility_reach(grid, fac, 2, 5000.0)
    assert r.node.tolist() == [9, 10]
    assert r.dist_m.tolist() == pytest.approx([55.0, 55.0])
    nr = nearest_facility_times(grid, fac, 5000.0)
    assert nr.facility[9] == nr.facility[10] == 2
    assert set(nr.facility[:9].tolist()) == {0, 1}
    # The mainland facilities do not reach the island.
    assert not {9, 10} & set(facility_reach(grid, fac, 0, 5000.0).node.tolist())


def test_k_nearest_ordering_by_hand(grid: WalkGraph, mode: str) -> None:
    fac = snap(grid, [*TWO_FACILITIES, (1050.0, 1005.0)])
    user = snap(grid, [(105.0, 50.0)])  # edge 1-4 at (100, 50), 5 m access
    idx, dist = k_nearest_facilities(grid, fac, user, 1000.0, 5)
    assert idx.tolist() == [1, 0]  # B: 5+50+90 = 145, A: 5+50+100 = 155; C on the island
    assert dist.tolist() == pytest.approx([145.0, 155.0])
    idx, dist = k_nearest_facilities(grid, fac, user, 1000.0, 1)
    assert idx.tolist() == [1]
    idx, _ = k_nearest_facilities(grid, fac, user, 150.0, 5)
    assert idx.tolist() == [1]
    idx, _ = k_nearest_facilities(grid, fac, user, 1000.0, 5, active=[True, False, True])
    assert idx.tolist() == [0]


def test_reach_matrix_stores_zero_distance(grid: WalkGraph, mode: str) -> None:
    fac = snap(grid, [(100.0, 0.0)])
    pts = snap(grid, [(100.0, 0.0), (100.0, 100.0), (100.0, 300.0)])
    m = reach_matrix(grid, fac, pts, 150.0)
    assert m.nnz == 2 and m.indices.tolist() == [0, 1]
    assert m.data.tolist() == pytest.approx([REACH_MATRIX_OFFSET_M, 100.0 + REACH_MATRIX_OFFSET_M])
    assert (m.data > 0).all()


def test_active_mask_and_empty_facilities(grid: WalkGraph, mode: str) -> None:
    fac = snap(grid, TWO_FACILITIES)
    nr = nearest_facility_times(grid, fac, 250.0, active=[True, False])
    assert set(nr.facility[np.isfinite(nr.dist_m)].tolist()) == {0}
    none = nearest_facility_times(grid, snap(grid, []), 250.0)
    assert np.isinf(none.dist_m).all() and (none.facility == -1).all()
    assert all_facility_reach(grid, snap(grid, []), 250.0) == []
    m = reach_matrix(grid, snap(grid, []), snap(grid, []), 250.0)
    assert m.shape == (0, 0) and m.nnz == 0
    pts = snap(grid, [])
    d, f = point_times(grid, nr, pts)
    assert d.shape == (0,) and f.dtype == np.int64


def test_bad_arguments_are_refused(grid: WalkGraph) -> None:
    fac = snap(grid, TWO_FACILITIES)
    with pytest.raises(InputValidationError, match="cutoff_m"):
        nearest_facility_times(grid, fac, -1.0)
    with pytest.raises(InputValidationError, match="cutoff_m"):
        facility_reach(grid, fac, 0, float("nan"))
    with pytest.raises(NotFoundError):
        facility_reach(grid, fac, 5, 100.0)
    with pytest.raises(InputValidationError, match="exactly one"):
        k_nearest_facilities(grid, fac, fac, 100.0, 1)
    other = build_graph(network([(0.0, 0.0), (1.0, 0.0)], [(0, 1)]))
    with pytest.raises(InputValidationError, match="snap them to this graph"):
        nearest_facility_times(other, fac, 100.0)
    with pytest.raises(InputValidationError, match="compute the reach on this graph"):
        point_times(grid, nearest_facility_times(other, snap(other, [(0.0, 0.0)]), 10.0), fac)


def test_zero_length_segment_and_shortened_lengths_stay_exact(mode: str) -> None:
    # Nodes 1 and 2 share a position (a zero-length link); lengths shorter than the
    # drawn segments (stretch 1.25) must not make the local searches miss nodes.
    net = network(
        [(0, 0), (100, 0), (100, 0), (200, 0), (300, 0)],
        [(0, 1), (1, 2), (2, 3), (3, 4)],
        [80.0, 0.0, 80.0, 80.0],
    )
    g = build_graph(net)
    fac = snap(g, [(0.0, 0.0)])
    r = facility_reach(g, fac, 0, 240.0)
    assert r.node.tolist() == [0, 1, 2, 3, 4]
    assert r.dist_m.tolist() == pytest.approx([0.0, 80.0, 80.0, 160.0, 240.0])
    nr = nearest_facility_times(g, fac, 240.0)
    np.testing.assert_allclose(nr.dist_m, [0.0, 80.0, 80.0, 160.0, 240.0])


# ----------------------------------------------------------------------------- networkx


def nx_reference(net: WalkNetwork, **point_sets: SnappedPoints) -> nx.Graph:
    """networkx graph of ``net`` with every snapped point inserted as a real node.

    Point ``i`` of set ``tag`` is node ``(tag, i)``; it hangs by its access leg from node
    ``(tag, "on", i)`` that splits its edge.
    """
    graph = nx.Graph()
    graph.add_nodes_from(range(net.n_nodes))
    splits: dict[int, list[tuple[float, Any]]] = defaultdict(list)
    for tag, pts in point_sets.items():
        for i in range(len(pts)):
            if pts.off_network[i]:
                continue
            on = (tag, "on", i)
            graph.add_edge(on, (tag, i), weight=float(pts.access_m[i]))
            splits[int(pts.edge[i])].append((float(pts.fraction[i]), on))
    for e in range(net.n_edges):
        u, v, length = int(net.edge_u[e]), int(net.edge_v[e]), float(net.edge_length_m[e])
        chain = [(0.0, u), *sorted(splits.get(e, []), key=lambda t: (t[0], str(t[1]))), (1.0, v)]
        for (fa, a), (fb, b) in pairwise(chain):
            w = (fb - fa) * length
            if not graph.has_edge(a, b) or graph[a][b]["weight"] > w:
                graph.add_edge(a, b, weight=w)
    return graph


@contextmanager
def local_mode(mode: str) -> Iterator[None]:
    """Force the local searches onto disc subgraphs or onto the whole graph."""
    saved = reach_module._WHOLE_GRAPH_FACTOR
    reach_module._WHOLE_GRAPH_FACTOR = 0 if mode == "disc" else 10**12
    try:
        yield
    finally:
        reach_module._WHOLE_GRAPH_FACTOR = saved


@pytest.fixture(params=["disc", "whole"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test with each local search strategy."""
    with local_mode(request.param):
        yield request.param


def check_against_networkx(
    g: WalkGraph, fac: SnappedPoints, pts: SnappedPoints, cutoff_m: float
) -> dict[str, int]:
    """Compare every answer of the engine with networkx, for both local strategies."""
    ref = nx_reference(g.network, f=fac, p=pts)
    sources = [("f", i) for i in range(len(fac)) if not fac.off_network[i]]
    ref_dist = nx.multi_source_dijkstra_path_length(ref, sources, cutoff=cutoff_m)
    per_fac = {
        i: nx.single_source_dijkstra_path_length(ref, ("f", i), cutoff=cutoff_m)
        for i in range(len(fac))
        if not fac.off_network[i]
    }
    counts: dict[str, int] = {}
    for mode_name in ("disc", "whole", "auto"):
        with local_mode(mode_name) if mode_name != "auto" else nullcontext():
            counts = _check_once(g, fac, pts, cutoff_m, ref, ref_dist, per_fac)
    return counts


def _check_once(
    g: WalkGraph,
    fac: SnappedPoints,
    pts: SnappedPoints,
    cutoff_m: float,
    ref: nx.Graph,
    ref_dist: dict[Any, float],
    per_fac: dict[int, dict[Any, float]],
) -> dict[str, int]:
    n = g.n_nodes

    # Every node: distance and a correct nearest facility.
    nr = nearest_facility_times(g, fac, cutoff_m)
    expect = np.array([ref_dist.get(i, np.inf) for i in range(n)])
    assert (np.isfinite(nr.dist_m) == np.isfinite(expect)).all()
    fin = np.isfinite(expect)
    np.testing.assert_allclose(nr.dist_m[fin], expect[fin], rtol=0, atol=TOL_M)
    assert ((nr.facility >= 0) == fin).all()
    for node in np.flatnonzero(fin):
        assert per_fac[int(nr.facility[node])][int(node)] == pytest.approx(expect[node], abs=TOL_M)

    # Every point.
    p_dist, p_fac = point_times(g, nr, pts)
    p_expect = np.array([ref_dist.get(("p", i), np.inf) for i in range(len(pts))])
    assert (np.isfinite(p_dist) == np.isfinite(p_expect)).all()
    pf = np.isfinite(p_expect)
    np.testing.assert_allclose(p_dist[pf], p_expect[pf], rtol=0, atol=TOL_M)
    for i in np.flatnonzero(pf):
        assert per_fac[int(p_fac[i])][("p", int(i))] == pytest.approx(p_expect[i], abs=TOL_M)

    # Per-facility local searches: same node sets and distances.
    for lr in all_facility_reach(g, fac, cutoff_m):
        want = {k: d for k, d in per_fac.get(lr.source, {}).items() if isinstance(k, int)}
        assert lr.node.tolist() == sorted(want)
        np.testing.assert_allclose(lr.dist_m, [want[k] for k in lr.node.tolist()], atol=TOL_M)

    # Reach matrix facilities × points.
    m = reach_matrix(g, fac, pts, cutoff_m)
    assert m.has_sorted_indices and (m.data > 0).all()
    pairs = 0
    for i in range(len(fac)):
        row = slice(m.indptr[i], m.indptr[i + 1])
        got = dict(
            zip(
                m.indices[row].tolist(), (m.data[row] - REACH_MATRIX_OFFSET_M).tolist(), strict=True
            )
        )
        want = {k[1]: d for k, d in per_fac.get(i, {}).items() if _is_point(k, "p")}
        assert sorted(got) == sorted(want)
        for j, d in want.items():
            assert got[j] == pytest.approx(d, abs=TOL_M)
        pairs += len(want)

    # k nearest from a few points.
    for i in range(0, len(pts), max(1, len(pts) // 10)):
        one = _one(pts, i)
        idx, dist = k_nearest_facilities(g, fac, one, cutoff_m, 3)
        if pts.off_network[i]:
            assert idx.size == 0
            continue
        ego = nx.single_source_dijkstra_path_length(ref, ("p", i), cutoff=cutoff_m)
        want = {k[1]: d for k, d in ego.items() if _is_point(k, "f")}
        nearest = sorted(want.values())[:3]
        np.testing.assert_allclose(dist, nearest, atol=TOL_M)
        np.testing.assert_allclose([want[j] for j in idx.tolist()], dist, atol=TOL_M)
    return {"nodes": int(fin.sum()), "points": int(pf.sum()), "pairs": pairs}


def _is_point(node: object, tag: str) -> bool:
    """Whether a reference-graph node is input point ``(tag, i)``."""
    return isinstance(node, tuple) and len(node) == 2 and node[0] == tag


def points_on_facility_edges(
    net: WalkNetwork, fac: SnappedPoints, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Points placed on the edges of facilities (exercises the same-edge case)."""
    rng = np.random.default_rng(seed)
    e = fac.edge[~fac.off_network]
    t = rng.random(e.shape[0])
    xu, yu = net.node_x_m[net.edge_u[e]], net.node_y_m[net.edge_u[e]]
    xv, yv = net.node_x_m[net.edge_v[e]], net.node_y_m[net.edge_v[e]]
    return xu + t * (xv - xu) + rng.uniform(-5, 5, e.shape[0]), yu + t * (yv - yu) + rng.uniform(
        -5, 5, e.shape[0]
    )


def test_agrees_with_networkx_on_a_synthetic_city() -> None:
    net = synthetic_city(5_000, seed=11)
    g = build_graph(net)
    fx, fy = random_facilities(net, 60, seed=12)
    fac = snap_points(g, fx, fy, max_snap_m=300.0)
    px, py = random_facilities(net, 400, seed=13, max_offset_m=80.0)
    ex, ey = points_on_facility_edges(net, fac, seed=14)
    pts = snap_points(g, np.concatenate([px, ex]), np.concatenate([py, ey]), max_snap_m=60.0)
    assert pts.off_network.any()  # some beyond 60 m
    counts = check_against_networkx(g, fac, pts, 700.0)
    assert counts["nodes"] > 2_000 and counts["points"] > 300 and counts["pairs"] > 500


def test_agrees_with_networkx_when_lengths_are_shorter_than_segments() -> None:
    # Geodesic lengths are a little shorter than UTM segments: the local searches widen
    # their radius by the graph's stretch and must still be exact.
    base = synthetic_city(1_500, seed=21)
    rng = np.random.default_rng(22)
    net = WalkNetwork(
        **{
            **base.__dict__,
            "edge_length_m": base.edge_length_m * rng.uniform(0.6, 1.0, base.n_edges),
        }
    )
    g = build_graph(net)
    assert g.max_stretch > 1.5
    fx, fy = random_facilities(net, 25, seed=23)
    fac = snap_points(g, fx, fy)
    px, py = random_facilities(net, 200, seed=24)
    pts = snap_points(g, px, py)
    check_against_networkx(g, fac, pts, 600.0)


@pytest.mark.slow
def test_agrees_with_networkx_on_yuzhong(settings: Settings) -> None:
    osm_network = pytest.importorskip("tuoyu.layers.osm_network")
    from tuoyu.config.data_registry import resolve_data_file

    path: Path = resolve_data_file("chongqing-yuzhong/yuzhong.osm.pbf", settings)
    net = osm_network.load_walk_network(path, settings=settings)
    assert net.n_nodes > 15_000
    g = build_graph(net)
    fx, fy = random_facilities(net, 40, seed=31)
    fac = snap_points(g, fx, fy)
    px, py = random_facilities(net, 300, seed=32, max_offset_m=100.0)
    pts = snap_points(g, px, py)
    counts = check_against_networkx(g, fac, pts, 1000.0)
    assert counts["nodes"] > 5_000


# ----------------------------------------------------------------------------- what-if


def _check_state(state: ReachState) -> None:
    """The incremental state equals a full recompute with the same active facilities."""
    full = nearest_facility_times(
        state.graph, state.facilities, state.cutoff_m, active=state.active
    )
    np.testing.assert_allclose(state.dist_m, full.dist_m, rtol=0, atol=1e-9)
    assert ((state.facility >= 0) == np.isfinite(full.dist_m)).all()
    # Whoever is named nearest really is at that distance.
    reaches = all_facility_reach(state.graph, state.facilities, state.cutoff_m)
    for f in np.unique(state.facility[state.facility >= 0]):
        assert state.active[f]
        lr = reaches[int(f)]
        mine = np.flatnonzero(state.facility == f)
        pos = np.searchsorted(lr.node, mine)
        assert (lr.node[np.minimum(pos, lr.node.size - 1)] == mine).all()
        np.testing.assert_allclose(lr.dist_m[pos], state.dist_m[mine], atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_incremental_add_remove_equals_full_recompute(seed: int, mode: str) -> None:
    net = synthetic_city(2_500, seed=100 + seed)
    g = build_graph(net)
    rng = np.random.default_rng(seed)
    fx, fy = random_facilities(net, 30, seed=200 + seed)
    state = ReachState(g, snap_points(g, fx, fy), 600.0)
    _check_state(state)
    cx, cy = random_facilities(net, 12, seed=300 + seed)
    for step in range(24):
        active = np.flatnonzero(state.active)
        if step % 2 == 0 or active.size == 0:
            j = step // 2
            idx = state.add_facility(snap_points(g, cx[j : j + 1], cy[j : j + 1]))
            assert idx == len(state.facilities) - 1
            assert (state.facility[state.last_changed] == idx).all()
        else:
            gone = int(rng.choice(active))
            state.remove_facility(gone)
            assert not (state.facility == gone).any()
        _check_state(state)
    # Removed facilities take no part in point times either.
    pts = snap_points(g, cx, cy)
    d_state, _ = point_times(g, state.node_reach(), pts)
    full = nearest_facility_times(g, state.facilities, 600.0, active=state.active)
    d_full, _ = point_times(g, full, pts)
    np.testing.assert_allclose(d_state, d_full, atol=1e-9)


def test_remove_everything_and_errors(mode: str) -> None:
    g = build_graph(network(GRID_XY, GRID_EDGES))
    state = ReachState(g, snap(g, TWO_FACILITIES), 250.0)
    state.remove_facility(1)
    _check_state(state)
    state.remove_facility(0)
    assert np.isinf(state.dist_m).all() and (state.facility == -1).all()
    with pytest.raises(NotFoundError):
        state.remove_facility(0)
    idx = state.add_facility(snap(g, [(600.0, 600.0)]))  # off-network: recorded, no effect
    assert not state.active[idx] and state.last_changed.size == 0
    with pytest.raises(NotFoundError):
        state.remove_facility(idx)
