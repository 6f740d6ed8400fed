"""Tiled walking distances equal the untiled computation (tuoyu.workflow.tiles)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from tuoyu.config.settings import get_settings
from tuoyu.config.study_area import StudyArea, load_area
from tuoyu.errors import InputValidationError
from tuoyu.network.graph import WalkGraph, build_graph
from tuoyu.network.snap import snap_points
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.reach.engine import (
    all_facility_reach,
    nearest_facility_times,
    point_times,
    reach_matrix,
)
from tuoyu.synthetic import random_facilities, synthetic_city
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import load_layers
from tuoyu.workflow.tiles import (
    DEFAULT_TILE_M,
    TiledAreaModel,
    area_model,
    cut_network,
    eligible_edges,
    tile_halo_m,
    tile_size_for,
    tiled_point_times,
    tiled_reach,
)

from benchmarks.batch import write_synthetic_area
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


def _city_with_a_hole(seed: int) -> tuple[WalkNetwork, float, float]:
    """A synthetic city with a 900 m hole holding a 16-node island (and its centre)."""
    net = synthetic_city(6_000, seed=seed)
    cx = float(net.node_x_m.min() + net.node_x_m.max()) / 2.0
    cy = float(net.node_y_m.min() + net.node_y_m.max()) / 2.0
    xu, xv = net.node_x_m[net.edge_u], net.node_x_m[net.edge_v]
    yu, yv = net.node_y_m[net.edge_u], net.node_y_m[net.edge_v]
    near = (np.maximum(np.abs(xu - cx), np.abs(yu - cy)) < 450.0) | (
        np.maximum(np.abs(xv - cx), np.abs(yv - cy)) < 450.0
    )
    keep = np.flatnonzero(~near)
    n = net.n_nodes
    gx, gy = np.meshgrid(np.arange(4) * 50.0 - 75.0, np.arange(4) * 50.0 - 75.0)
    island_x, island_y = cx + gx.ravel(), cy + gy.ravel()
    pairs = [(a, b) for a in range(16) for b in (a + 1, a + 4) if b < 16 and (b == a + 4 or b % 4)]
    iu = np.array([n + a for a, _ in pairs], dtype=np.int64)
    iv = np.array([n + b for _, b in pairs], dtype=np.int64)
    x = np.concatenate([net.node_x_m, island_x])
    y = np.concatenate([net.node_y_m, island_y])
    u = np.concatenate([net.edge_u[keep], iu])
    v = np.concatenate([net.edge_v[keep], iv])
    holed = WalkNetwork(
        node_id=np.arange(x.shape[0], dtype=np.int64),
        node_x_m=x,
        node_y_m=y,
        edge_u=u,
        edge_v=v,
        edge_length_m=np.hypot(x[v] - x[u], y[v] - y[u]),
        edge_way_id=np.full(u.shape[0], -1, dtype=np.int64),
        crs=net.crs,
        source="synthetic city with a hole",
    )
    return holed, cx, cy


def test_tiled_reach_equals_the_whole_graph_with_the_island_filter() -> None:
    net, cx, cy = _city_with_a_hole(seed=21)
    graph = build_graph(net)
    px, py = random_facilities(net, 4_000, seed=22, max_offset_m=60.0)
    steps = np.array([10.0, 60.0, 130.0, 200.0, 260.0, 330.0, 400.0])
    px = np.concatenate([px, cx + steps, cx - 0.7 * steps])
    py = np.concatenate([py, cy + 2.0 + 0 * steps, cy - 0.7 * steps])
    fx, fy = random_facilities(net, 60, seed=23, max_offset_m=30.0)
    fx, fy = np.concatenate([fx, [cx + 5.0, cx + 310.0]]), np.concatenate([fy, [cy, cy - 20.0]])
    puhui = np.random.default_rng(24).random(fx.shape[0]) < 0.5

    pop = snap_points(graph, px, py, SNAP_M, min_component_nodes=40)
    fac = snap_points(graph, fx, fy, SNAP_M, min_component_nodes=40)
    whole_all = point_times(graph, nearest_facility_times(graph, fac, CUTOFF_M), pop)[0]
    whole_puhui = point_times(
        graph, nearest_facility_times(graph, fac, CUTOFF_M, active=puhui), pop
    )[0]
    whole_matrix = reach_matrix(graph, fac, pop, CUTOFF_M)
    whole_reaches = all_facility_reach(graph, fac, CUTOFF_M)

    tiled = tiled_reach(
        net, px, py, fx, fy, CUTOFF_M, tile_m=1_500.0, puhui=puhui, max_snap_m=SNAP_M,
        min_component_nodes=40,
    )  # fmt: skip
    assert tiled.n_tiles > 9 and tiled.max_tile_nodes < graph.n_nodes
    # the hole makes every case happen: moved off the island, off-network, both
    assert pop.n_moved_from_island > 0 and pop.off_network.sum() > 0
    assert bool(fac.off_network[-2]) and not fac.off_network[-1]
    for got, want in ((tiled.population, pop), (tiled.facilities, fac)):
        assert np.array_equal(got.edge, want.edge)
        assert np.array_equal(got.off_network, want.off_network)
        assert got.moved_from_island is not None and want.moved_from_island is not None
        assert np.array_equal(got.moved_from_island, want.moved_from_island)
        assert got.min_component_nodes == want.min_component_nodes == 40
        on = ~want.off_network
        np.testing.assert_array_equal(got.fraction[on], want.fraction[on])
        np.testing.assert_array_equal(got.access_m[on], want.access_m[on])
    for got_m, want_m in ((tiled.walk_m_all, whole_all), (tiled.walk_m_puhui, whole_puhui)):
        assert np.array_equal(np.isfinite(got_m), np.isfinite(want_m))
        fin = np.isfinite(want_m)
        np.testing.assert_allclose(got_m[fin], want_m[fin], rtol=0, atol=1e-9)
    assert 0.3 < np.isfinite(whole_all).mean() < 1.0
    assert np.array_equal(tiled.matrix.indptr, whole_matrix.indptr)
    assert np.array_equal(tiled.matrix.indices, whole_matrix.indices)
    np.testing.assert_allclose(tiled.matrix.data, whole_matrix.data, rtol=0, atol=1e-9)
    assert len(tiled.facility_reaches) == len(whole_reaches)
    for got_r, want_r in zip(tiled.facility_reaches, whole_reaches, strict=True):
        assert got_r.source == want_r.source and got_r.start_edge == want_r.start_edge
        assert np.array_equal(got_r.node, want_r.node)
        np.testing.assert_allclose(got_r.dist_m, want_r.dist_m, rtol=0, atol=1e-9)


def test_eligible_edges_follow_the_graph() -> None:
    net, _, _ = _city_with_a_hole(seed=25)
    graph = build_graph(net)
    for threshold in (0, 1, 17, 40, 10**9):
        mask, applied = eligible_edges(net, threshold)
        want = graph.main_edges(threshold) if threshold > 1 else np.ones(net.n_edges, bool)
        assert np.array_equal(mask, want)
        assert applied == (graph.effective_min_component_nodes(threshold) if threshold > 1 else 0)
    assert not eligible_edges(net, 40)[0].all()  # the island is left out


def test_tile_size_rules() -> None:
    area = StudyArea.model_validate(
        {"area": {"name": "x", "code": "1", "target_profile": "p"}, "run": {"tile_size_m": 800}}
    )
    assert tile_size_for(area, 10) == 800.0  # the area's own setting: always
    assert tile_size_for(area, 10, tile_size_m=0.0) is None  # the command line wins
    assert tile_size_for(area, 10, tile_above_nodes=100) is None
    assert tile_size_for(area, 1_000, tile_above_nodes=100) == 800.0
    plain = StudyArea.model_validate({"area": {"name": "x", "code": "1", "target_profile": "p"}})
    assert tile_size_for(plain, 10**7) is None
    assert tile_size_for(plain, 10**7, tile_above_nodes=10**6) == DEFAULT_TILE_M
    for bad in ({"tile_size_m": -1.0}, {"tile_size_m": float("nan")}, {"tile_above_nodes": 0}):
        with pytest.raises(InputValidationError):
            tile_size_for(plain, 10, **bad)  # type: ignore[arg-type]


def test_tiled_model_equals_the_model_and_refuses_queries(tmp_path: Path) -> None:
    toml = write_synthetic_area(
        tmp_path, "small", n_nodes=2_500, n_facilities=12, n_population=800, seed=31
    )
    settings = get_settings(cache_dir=tmp_path / "cache")
    layers = load_layers(load_area(toml), settings)
    whole = AreaModel.from_layers(layers)
    tiled = area_model(layers, tile_size_m=900.0)
    assert isinstance(tiled, TiledAreaModel) and tiled.graph is None
    assert tiled.tiling["population_tiles"] > 4
    assert tiled.facility_ids() == whole.facility_ids()
    got, want = tiled.results(), whole.results()
    pd.testing.assert_frame_equal(
        got.table, want.table, check_exact=False, rtol=0, atol=1e-9,
    )  # fmt: skip
    assert {k: v for k, v in got.summary.items() if k != "tiling"} == dict(want.summary)
    iso_tiled, iso_whole = tiled.isochrones(), whole.isochrones()
    assert iso_tiled is not None and iso_whole is not None and len(iso_whole) == 36
    pd.testing.assert_frame_equal(iso_tiled, iso_whole)
    record = {"id": "new", "lon": 106.5, "lat": 29.5}
    refusals: list[Callable[[], object]] = [
        lambda: tiled.nearest(106.5, 29.5),
        lambda: tiled.add_facility(record),
        lambda: tiled.remove_facility(whole.facility_ids()[0]),
        lambda: tiled.scenario(add=[record]),
        lambda: tiled.facility_isochrone(whole.facility_ids()[0]),
    ]
    for refused in refusals:
        with pytest.raises(InputValidationError, match="tiled run"):
            refused()
    assert tiled.results() is got  # still the same state
    # an area that cannot be tiled (no population) is built in one piece
    assert not isinstance(
        area_model(dataclasses.replace(layers, population=None), tile_size_m=900.0),
        TiledAreaModel,
    )
