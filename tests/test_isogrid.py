"""Gridded isochrones: same pieces and walking distances as the exact engine, polygons
within a stated tolerance of the exact edge-buffer polygons, always valid.

The compiled kernels (:mod:`tuoyu.isochrones._grid_kernels`) are checked piece by piece against
the exact module (covered pieces) and the reach engine (bounded Dijkstra), then the
polygons against the exact polygons of :mod:`tuoyu.isochrones.exact` on hand-made
networks with closed-form areas, a synthetic city and the real Yuzhong network.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon
from tuoyu.errors import InputValidationError
from tuoyu.isochrones._grid_kernels import bounded_dijkstra, covered_pieces_kernel
from tuoyu.isochrones.exact import (
    ISOCHRONE_COLUMNS,
    METHOD_GRID,
    METHOD_LABELS,
    IsochroneBuilder,
    covered_pieces,
    isochrone_polygons,
)
from tuoyu.isochrones.grid import (
    grid_facility_polygons,
    grid_isochrone_polygons,
    grid_isochrones,
    lattice_origin,
)
from tuoyu.network.graph import build_graph
from tuoyu.network.snap import snap_points
from tuoyu.reach.engine import all_facility_reach
from tuoyu.synthetic import random_facilities, synthetic_city
from tuoyu.types import LocalReach

from tests.test_isochrones import X0, Y0, at_node, grid_net, make_net, nx_reach, snapped

# The numba kernels compile on first use (tens of seconds on a busy 2-core machine, once
# per fresh checkout: the compiled code is cached): slow, still run by `make test`.
pytestmark = pytest.mark.slow

B = 25.0


def _net_arrays(net):  # type: ignore[no-untyped-def]
    builder = IsochroneBuilder(net)
    return builder, (
        np.asarray(net.node_x_m, dtype=np.float64),
        np.asarray(net.node_y_m, dtype=np.float64),
        np.asarray(net.edge_u, dtype=np.int64),
        np.asarray(net.edge_v, dtype=np.int64),
        builder._length_m,
        builder._inc_ptr,
        builder._inc_edges,
    )


def _kernel_pieces(net, reach: LocalReach, t_m: float, src_xy=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    _builder, (x, y, u, v, length, ptr, inc) = _net_arrays(net)
    dist = np.full(net.n_nodes, np.inf)
    dist[reach.node] = reach.dist_m
    has = src_xy is not None
    sx, sy = (float(src_xy[0]), float(src_xy[1])) if has else (0.0, 0.0)
    pieces, n = covered_pieces_kernel(
        t_m,
        np.asarray(reach.node, dtype=np.int64),
        dist,
        x,
        y,
        u,
        v,
        length,
        ptr,
        inc,
        reach.start_edge,
        reach.start_fraction,
        reach.access_m,
        has,
        sx,
        sy,
        np.empty((4, 4)),
    )
    return pieces[:n]


def _canonical(seg: np.ndarray) -> np.ndarray:
    """Segments as rows (ax, ay, bx, by) with the smaller end first, sorted, rounded."""
    a, b = seg[:, :2], seg[:, 2:]
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo = np.where(swap[:, None], b, a)
    hi = np.where(swap[:, None], a, b)
    out = np.round(np.column_stack([lo, hi]), 6)
    return out[np.lexsort(out.T[::-1])]


def _city(n_nodes: int, n_fac: int, seed: int = 0):  # type: ignore[no-untyped-def]
    net = synthetic_city(n_nodes, seed=seed)
    graph = build_graph(net)
    fx, fy = random_facilities(net, n_fac, seed=seed + 1)
    fac = snap_points(graph, fx, fy, max_snap_m=300.0)
    return net, graph, fac


# ------------------------------------------------------------------ kernels = engine


def test_kernel_pieces_equal_the_exact_modules_pieces() -> None:
    net, graph, fac = _city(3000, 12)
    reaches = all_facility_reach(graph, fac, 800.0)
    for r in reaches:
        for t in (0.0, 150.0, 400.0, 800.0):
            want = covered_pieces(net, r, t, points=fac)
            got = _kernel_pieces(net, r, t, (fac.x_m[r.source], fac.y_m[r.source]))
            assert got.shape[0] == len(want)
            exp = np.column_stack([want.start_xy, want.end_xy])
            np.testing.assert_allclose(_canonical(got), _canonical(exp), atol=1e-6)


def test_kernel_pieces_on_the_source_edge_merge_intervals() -> None:
    # A 100 m edge, source at 40 m with 10 m access leg: 60 m budget covers [0, 90]
    # from the point, u (at 50 m) adds [0, 10] — merged into one piece — and v (70 m)
    # nothing.
    net = make_net([(0, 0), (100, 0)], [(0, 1)])
    r = nx_reach(net, 0, 0.4, 10.0, 60.0)
    got = _kernel_pieces(net, r, 60.0, (40.0 + X0, 10.0 + Y0))
    rel = got - np.array([X0, Y0, X0, Y0])
    np.testing.assert_allclose(
        _canonical(rel), _canonical(np.array([[0, 0, 90, 0], [40, 10, 40, 0]])), atol=1e-9
    )


@pytest.mark.parametrize("cutoff_m", [300.0, 1000.0])
def test_bounded_dijkstra_equals_the_reach_engine(cutoff_m: float) -> None:
    net, graph, fac = _city(5000, 40, seed=3)
    reaches = all_facility_reach(graph, fac, cutoff_m)
    _builder, (_, _, u, v, length, ptr, inc) = _net_arrays(net)
    dist = np.full(net.n_nodes, np.inf)
    touched = np.empty(4, dtype=np.int64)
    hd, hn = np.empty(4), np.empty(4, dtype=np.int64)
    for r in reaches:
        if r.start_edge < 0:
            continue
        e = r.start_edge
        seeds = np.array([u[e], v[e]], dtype=np.int64)
        seed_d = r.access_m + np.array([r.start_fraction, 1.0 - r.start_fraction]) * length[e]
        n, touched, hd, hn = bounded_dijkstra(
            seeds, seed_d, cutoff_m, u, v, length, ptr, inc, dist, touched, hd, hn
        )
        nodes = np.sort(touched[:n])
        np.testing.assert_array_equal(nodes, r.node)
        np.testing.assert_allclose(dist[nodes], r.dist_m, rtol=0, atol=1e-6)
        dist[touched[:n]] = np.inf
    assert np.isinf(dist).all()  # the scratch array is left clean


# ------------------------------------------------------------- closed-form shapes


def test_single_edge_is_a_capsule() -> None:
    net = make_net([(0, 0), (100, 0)], [(0, 1)])
    reach = at_node(net, 0, 100.0)
    ((poly,),) = grid_isochrone_polygons(net, [reach], [100.0], 10.0, cell_m=0.5)
    assert isinstance(poly, Polygon) and poly.is_valid
    capsule = 200 * 10 + math.pi * 100  # 2·b·L + π·b²
    assert poly.area == pytest.approx(capsule, rel=2e-3)
    minx, miny, maxx, maxy = poly.bounds
    assert (minx - X0, maxx - X0) == (pytest.approx(-10, abs=0.01), pytest.approx(110, abs=0.01))
    assert (miny - Y0, maxy - Y0) == (pytest.approx(-10, abs=0.05), pytest.approx(10, abs=0.05))


def test_partial_edge_is_cut_at_the_remaining_distance() -> None:
    # 60 m of a 100 m edge: the capsule of [0, 60]; straight sides are traced exactly.
    net = make_net([(0, 0), (100, 0)], [(0, 1)])
    reach = at_node(net, 0, 100.0)
    ((poly,),) = grid_isochrone_polygons(net, [reach], [60.0], 10.0, cell_m=2.0)
    assert poly.bounds[2] - X0 == pytest.approx(70.0, abs=0.05)
    assert poly.area == pytest.approx(120 * 10 + math.pi * 100, rel=5e-3)


def test_a_city_block_leaves_a_hole() -> None:
    # A 100 m square loop with a 25 m buffer: outer rounded square, 50 × 50 m hole.
    net = make_net([(0, 0), (100, 0), (100, 100), (0, 100)], [(0, 1), (1, 2), (2, 3), (3, 0)])
    reach = at_node(net, 0, 400.0)
    ((poly,),) = grid_isochrone_polygons(net, [reach], [400.0], B, cell_m=2.5)
    assert isinstance(poly, Polygon) and poly.is_valid
    assert len(poly.interiors) == 1
    hole = Polygon(poly.interiors[0])
    assert hole.area == pytest.approx(50 * 50, rel=0.01)
    exact = 150 * 150 - (4 - math.pi) * B * B - 50 * 50
    assert poly.area == pytest.approx(exact, rel=0.01)


def test_disconnected_pieces_give_a_multipolygon() -> None:
    # Two edges 1 km apart, both reached (a reach can hold any nodes): two parts.
    net = make_net([(0, 0), (100, 0), (1000, 0), (1100, 0)], [(0, 1), (2, 3)])
    reach = LocalReach(0, 200.0, np.arange(4), np.array([0.0, 100.0, 0.0, 100.0]), 0, 0.0, 0.0)
    ((poly,),) = grid_isochrone_polygons(net, [reach], [200.0], 10.0, cell_m=2.0)
    assert isinstance(poly, MultiPolygon) and poly.is_valid and len(poly.geoms) == 2


def test_grid_matches_exact_on_a_street_grid() -> None:
    net = grid_net(9, 100.0)
    reach = at_node(net, 40, 450.0)  # the centre node
    exact = isochrone_polygons(net, reach, [150.0, 300.0, 450.0], B)
    grid = grid_isochrone_polygons(net, [reach], [150.0, 300.0, 450.0], B, cell_m=5.0)[0]
    for g, e in zip(grid, exact, strict=True):
        assert g.is_valid
        assert g.area == pytest.approx(e.area, rel=0.01)
        assert shapely.symmetric_difference(g, e).area / e.area < 0.02


# ------------------------------------------------------------------- real cases


def _compare(net, fac, reaches, t_m: float, cell_m: float | None):  # type: ignore[no-untyped-def]
    builder = IsochroneBuilder(net)
    grid = grid_facility_polygons(net, fac, [t_m], B, cell_m, builder=builder)
    rel, sym = [], []
    for r in reaches:
        (e,) = isochrone_polygons(net, r, [t_m], B, points=fac, builder=builder)
        (g,) = grid[r.source]
        assert g.is_valid
        if e.area > 0:
            rel.append(abs(g.area - e.area) / e.area)
            sym.append(shapely.symmetric_difference(g, e).area / e.area)
    return float(np.mean(rel)), float(np.mean(sym))


def test_synthetic_city_close_to_exact() -> None:
    net, graph, fac = _city(20000, 15, seed=5)
    reaches = all_facility_reach(graph, fac, 1000.0)
    rel, sym = _compare(net, fac, reaches, 1000.0, None)  # default lattice: buffer / 2
    assert rel < 0.03 and sym < 0.035
    rel_fine, sym_fine = _compare(net, fac, reaches, 1000.0, 5.0)
    assert rel_fine < 0.006 and sym_fine < 0.008
    assert rel_fine < rel  # a finer lattice is closer


def test_yuzhong_close_to_exact(settings) -> None:  # type: ignore[no-untyped-def]
    from tuoyu.config.data_registry import resolve_data_file
    from tuoyu.layers.osm_network import load_walk_network

    net = load_walk_network(
        resolve_data_file("chongqing-yuzhong/yuzhong.osm.pbf", settings), settings=settings
    )
    graph = build_graph(net)
    fx, fy = random_facilities(net, 25, seed=7)
    fac = snap_points(graph, fx, fy, max_snap_m=300.0)
    reaches = all_facility_reach(graph, fac, 1000.0)
    rel, sym = _compare(net, fac, reaches, 1000.0, None)
    assert rel < 0.04 and sym < 0.06


def test_routed_and_reach_based_entry_points_agree_and_threads_do_not_matter() -> None:
    net, graph, fac = _city(8000, 70, seed=9)
    reaches = all_facility_reach(graph, fac, 700.0)
    a = grid_facility_polygons(net, fac, [300.0, 700.0], B, workers=1)
    b = grid_facility_polygons(net, fac, [300.0, 700.0], B, workers=2)
    c = grid_isochrone_polygons(net, reaches, [300.0, 700.0], B, points=fac, workers=2)
    for r in reaches:
        for k in range(2):
            assert a[r.source][k].equals_exact(b[r.source][k], 0.0)
            assert a[r.source][k].equals_exact(c[r.source][k], 1e-9)


def test_thresholds_nest_within_the_lattice_tolerance() -> None:
    net, _graph, fac = _city(8000, 20, seed=11)
    polys = grid_facility_polygons(net, fac, [333.3, 666.7, 1000.0], B)
    for p5, p10, p15 in polys:
        for small, large in ((p5, p10), (p10, p15)):
            if small.area:
                assert shapely.difference(small, large).area <= 1e-3 * small.area


def test_off_network_facility_and_empty_input() -> None:
    net = make_net([(0, 0), (100, 0)], [(0, 1)])
    far = snapped(net, (50.0, 5.0), 0, 0.5)
    off = type(far)(**{**far.__dict__, "edge": np.array([-1]), "off_network": np.array([True])})
    ((poly,),) = grid_facility_polygons(net, off, [100.0], 10.0)
    assert poly.is_empty
    assert grid_isochrone_polygons(net, [], [100.0], 10.0) == []
    near = grid_facility_polygons(net, far, [100.0], 10.0)[0][0]
    assert near.area > 0 and near.covers(shapely.Point(50.0 + X0, 5.0 + Y0))  # access leg drawn


def test_lattice_is_fixed_per_network() -> None:
    net = grid_net(3, 100.0)
    ox, oy = lattice_origin(net, 12.5)
    assert ox <= float(net.node_x_m.min()) < ox + 12.5 and ox % 12.5 == pytest.approx(0.0)
    assert oy <= float(net.node_y_m.min()) < oy + 12.5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cell_m": 0.0}, "cell_m"),
        ({"cell_m": float("nan")}, "cell_m"),
        ({"cell_m": 30.0}, "cell_m"),  # coarser than the 25 m buffer
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, float], field: str) -> None:
    net, _graph, fac = _city(400, 40)
    with pytest.raises(InputValidationError) as err:
        grid_facility_polygons(net, fac, [300.0], B, **kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_threshold_beyond_the_reach_cutoff_is_refused() -> None:
    net = grid_net(3)
    with pytest.raises(InputValidationError):
        grid_isochrone_polygons(net, [at_node(net, 4, 100.0)], [200.0], B)


def test_table_has_the_isochrone_columns_and_labels() -> None:
    net, graph, fac = _city(2000, 3)
    reaches = all_facility_reach(graph, fac, 1000.0)
    gdf = grid_isochrones(net, reaches, ["A", "B", "C"], [5, 15], speed_kmh=4.0, points=fac)
    assert tuple(gdf.columns) == ISOCHRONE_COLUMNS
    assert set(gdf["method"]) == {METHOD_GRID}
    assert gdf.attrs["cell_m"] == 12.5 and gdf.attrs["buffer_m"] == B
    assert gdf.attrs["method_labels"][METHOD_GRID] == METHOD_LABELS[METHOD_GRID]
    assert "近似" in METHOD_LABELS[METHOD_GRID][0]
    assert (gdf["area_m2"] == gdf.geometry.area).all()
    assert len(gdf) == 6 and gdf.crs == net.crs


def test_area_setting_picks_the_method() -> None:
    from tuoyu.config.study_area import WalkSection
    from tuoyu.isochrones.exact import METHOD_EDGE_BUFFER, METHOD_WALK_FIELD
    from tuoyu.isochrones.grid import area_isochrones
    from tuoyu.isochrones.walk_field import WalkFieldIndex

    net, graph, fac = _city(2000, 2)
    reaches = all_facility_reach(graph, fac, 1000.0)
    ids = ["A", "B"]
    exact = area_isochrones(net, reaches, ids, WalkSection(isochrone_method="exact"), points=fac)
    field = area_isochrones(
        net, reaches, ids, WalkSection(), points=fac, field_index=WalkFieldIndex.build(graph, 40)
    )
    assert set(field["method"]) == {METHOD_WALK_FIELD}  # the default
    # The walk field counts the access legs: never larger than the edge buffer.
    assert (field["area_m2"].to_numpy() <= exact["area_m2"].to_numpy()).all()
    with pytest.raises(InputValidationError, match="field_index"):
        area_isochrones(net, reaches, ids, WalkSection(), points=fac)
    grid = area_isochrones(
        net, reaches, ids, WalkSection(isochrone_method="grid", isochrone_cell_m=5.0), points=fac
    )
    assert set(exact["method"]) == {METHOD_EDGE_BUFFER} and set(grid["method"]) == {METHOD_GRID}
    assert grid.attrs["cell_m"] == 5.0
    rel = (
        np.abs(grid["area_m2"].to_numpy() - exact["area_m2"].to_numpy())
        / exact["area_m2"].to_numpy()
    )
    assert rel.max() < 0.01
    with pytest.raises(ValueError):
        WalkSection(isochrone_method="fast")  # type: ignore[arg-type]
