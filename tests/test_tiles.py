"""Tiled walking distances equal the untiled computation (tuoyu.workflow.tiles)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from tuoyu.errors import InputValidationError
from tuoyu.network.graph import WalkGraph, build_graph
from tuoyu.network.snap import snap_points
from tuoyu.reach.engine import nearest_facility_times, point_times
from tuoyu.synthetic import random_facilities, synthetic_city
from tuoyu.workflow.tiles import cut_network, tile_halo_m, tiled_point_times

from tests.handmade import X0, Y0, network

CUTOFF_M = 1000.0
SNAP_M = 300.0


def _untiled(
    graph: WalkGraph,
    px: npt.ArrayLike,
    py: npt.ArrayLike,
    fx: npt.ArrayLike,
    fy: npt.ArrayLike,
    active: npt.ArrayLike | None = None,
    cutoff_m: float = CUTOFF_M,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    fac = snap_points(graph, fx, fy, SNAP_M, min_component_nodes=0)
    pop = snap_points(graph, px, py, SNAP_M, min_component_nodes=0)
    reach = nearest_facility_times(graph, fac, cutoff_m, active=active)
    return point_times(graph, reach, pop)


def _unit_coverage(walk_m: np.ndarray, unit: np.ndarray, people: np.ndarray) -> pd.Series:
    frame = pd.DataFrame({"unit": unit, "people": people, "covered": people * (walk_m <= CUTOFF_M)})
    sums = frame.groupby("unit")[["people", "covered"]].sum()
    return 100.0 * sums["covered"] / sums["people"]


@pytest.mark.slow
def test_tiled_equals_untiled_on_a_large_synthetic_city() -> None:
    graph = build_graph(synthetic_city(40_000, seed=11))
    fx, fy = random_facilities(graph.network, 300, seed=12, max_offset_m=40.0)
    px, py = random_facilities(graph.network, 20_000, seed=13, max_offset_m=60.0)
    # a few points and one facility far off the network
    far_x = float(graph.network.node_x_m.max()) + 2_000.0
    px = np.concatenate([px, [far_x, far_x]])
    py = np.concatenate([py, [py[0], py[1]]])
    fx = np.concatenate([fx, [far_x]])
    fy = np.concatenate([fy, [py[0]]])
    puhui = np.random.default_rng(14).random(fx.shape[0]) < 0.5

    whole_m, whole_fac = _untiled(graph, px, py, fx, fy)
    whole_puhui_m, _ = _untiled(graph, px, py, fx, fy, active=puhui)
    tiled = tiled_point_times(graph, px, py, fx, fy, CUTOFF_M, tile_m=4_000.0, max_snap_m=SNAP_M)
    tiled_puhui = tiled_point_times(
        graph, px, py, fx, fy, CUTOFF_M, tile_m=4_000.0, max_snap_m=SNAP_M, active=puhui
    )

    assert tiled.n_tiles >= 9
    assert tiled.max_tile_nodes < graph.n_nodes  # each tile holds a part of the city
    covered = np.isfinite(whole_m)
    assert 0.3 < covered.mean() < 1.0  # a real mix of covered and uncovered points
    assert np.array_equal(np.isfinite(tiled.walk_m), covered)
    np.testing.assert_allclose(tiled.walk_m[covered], whole_m[covered], rtol=0, atol=1e-9)
    assert np.array_equal(np.isfinite(tiled_puhui.walk_m), np.isfinite(whole_puhui_m))
    fin = np.isfinite(whole_puhui_m)
    np.testing.assert_allclose(tiled_puhui.walk_m[fin], whole_puhui_m[fin], rtol=0, atol=1e-9)
    # the facility named is one at that distance (ties may name either)
    same = tiled.facility == whole_fac
    assert same.mean() > 0.99
    assert np.all(tiled.facility[~covered] == -1)

    # per-unit coverage: 1 km squares as units, random people per point
    unit = np.floor((px - px.min()) / 1_000.0) * 1_000 + np.floor((py - py.min()) / 1_000.0)
    people = np.asarray(np.random.default_rng(15).uniform(1.0, 20.0, px.shape[0]), dtype=float)
    pd.testing.assert_series_equal(
        _unit_coverage(tiled.walk_m, unit, people), _unit_coverage(whole_m, unit, people)
    )


def test_point_at_a_tile_border_snaps_as_untiled() -> None:
    # A street along y = 0 and a parallel one at y = 250; the point at y = 90 lies in
    # the lower tile's neighbour (tile side 100 m from y = 95) but its nearest edge is
    # the lower street: the halo keeps it, so it snaps and walks as untiled.
    net = network(
        [(0, 0), (2000, 0), (0, 250), (2000, 250), (1000, 0), (1000, 250)],
        [(0, 4), (4, 1), (2, 5), (5, 3), (4, 5)],
    )
    graph = build_graph(net)
    px = np.array([X0 + 500.0, X0 + 500.0])
    py = np.array([Y0 + 95.0 + 150.0, Y0 + 95.0])  # first point sets the tile origin
    fx, fy = np.array([X0 + 1500.0]), np.array([Y0 - 10.0])
    whole_m, _ = _untiled(graph, px, py, fx, fy, cutoff_m=CUTOFF_M * 3)
    assert np.isfinite(whole_m).all()
    tiled = tiled_point_times(graph, px, py, fx, fy, CUTOFF_M * 3, tile_m=100.0, max_snap_m=SNAP_M)
    assert tiled.n_tiles == 2
    np.testing.assert_allclose(tiled.walk_m, whole_m, rtol=0, atol=1e-9)


def test_cut_network_keeps_order_and_lengths() -> None:
    net = synthetic_city(900, seed=2)
    x0, y0 = float(net.node_x_m.min()), float(net.node_y_m.min())
    part = cut_network(net, (x0, y0, x0 + 500.0, y0 + 500.0))
    ids = net.node_id
    original = list(zip(ids[net.edge_u].tolist(), ids[net.edge_v].tolist(), strict=True))
    kept = list(
        zip(part.node_id[part.edge_u].tolist(), part.node_id[part.edge_v].tolist(), strict=True)
    )
    positions = [original.index(e) for e in kept]
    assert positions == sorted(positions)
    assert part.n_edges < net.n_edges
    assert np.all(part.edge_length_m > 0)


def test_bad_arguments_are_named() -> None:
    graph = build_graph(synthetic_city(100, seed=0))
    with pytest.raises(InputValidationError, match="tile_m"):
        tiled_point_times(graph, [1.0], [1.0], [], [], CUTOFF_M, tile_m=0.0)
    with pytest.raises(InputValidationError, match="population"):
        tiled_point_times(graph, [np.nan], [1.0], [], [], CUTOFF_M, tile_m=10.0)
    with pytest.raises(InputValidationError, match="max_stretch"):
        tile_halo_m(CUTOFF_M, SNAP_M, float("inf"))


def test_tile_without_facilities_is_uncovered() -> None:
    # regression: a tile with no facility within its halo used to raise IndexError
    graph = build_graph(synthetic_city(2_500, seed=5))
    fx, fy = random_facilities(graph.network, 3, seed=6)
    x0 = float(graph.network.node_x_m.min())
    y0 = float(graph.network.node_y_m.min())
    near = (fx < x0 + 1_000.0) & (fy < y0 + 1_000.0)
    fx, fy = fx[~near], fy[~near]
    px, py = np.array([x0 + 5.0, x0 + 4_000.0]), np.array([y0 + 5.0, y0 + 4_000.0])
    whole_m, _ = _untiled(graph, px, py, fx, fy, cutoff_m=200.0)
    tiled = tiled_point_times(graph, px, py, fx, fy, 200.0, tile_m=500.0, max_snap_m=SNAP_M)
    assert np.isinf(tiled.walk_m[0]) and tiled.facility[0] == -1
    np.testing.assert_array_equal(tiled.walk_m, whole_m)
