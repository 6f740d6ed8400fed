"""Isochrone polygons: hand-checkable shapes, exact cuts, nesting, validity, tables.

Hand-made networks get their reach from an independent networkx Dijkstra (``nx_reach``),
the synthetic city and Yuzhong from the reach engine (``tuoyu.reach.engine``). Areas are
compared with closed forms that use GEOS's polygonal arcs: a buffered point with
``quad_segs = q`` is a regular 4q-gon of area ``2·q·b²·sin(π / 2q)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
import shapely
from pyproj import CRS
from shapely.geometry import Point, Polygon
from tuoyu.errors import InputValidationError
from tuoyu.isochrones.exact import (
    ISOCHRONE_COLUMNS,
    METHOD_CONCAVE_HULL,
    METHOD_EDGE_BUFFER,
    UNION_COLUMNS,
    IsochroneBuilder,
    concave_hull_isochrones,
    concave_hull_polygons,
    covered_pieces,
    facility_isochrones,
    isochrone_polygons,
    minutes_to_m,
    union_isochrones,
)
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.types import LocalReach, SnappedPoints

CRS_M = CRS.from_epsg(32648)
X0, Y0 = 640_000.0, 3_260_000.0  # realistic UTM magnitudes: rounding must not show
B = 25.0
Q = 8


def disc_area(b: float = B, q: int = Q) -> float:
    """Area of GEOS's polygonal disc of radius ``b`` (two round caps of a segment)."""
    return 2.0 * q * b * b * math.sin(math.pi / (2 * q))


def make_net(xy: Sequence[tuple[float, float]], edges: Sequence[tuple[int, int]]) -> WalkNetwork:
    pts = np.asarray(xy, dtype=np.float64) + np.array([X0, Y0])
    u = np.array([e[0] for e in edges], dtype=np.int64)
    v = np.array([e[1] for e in edges], dtype=np.int64)
    return WalkNetwork(
        node_id=np.arange(len(xy), dtype=np.int64),
        node_x_m=pts[:, 0].copy(),
        node_y_m=pts[:, 1].copy(),
        edge_u=u,
        edge_v=v,
        edge_length_m=np.hypot(*(pts[v] - pts[u]).T),
        edge_way_id=np.full(u.shape[0], -1, dtype=np.int64),
        crs=CRS_M,
        source="hand-made test network",
    )


def nx_reach(
    net: WalkNetwork, edge: int, fraction: float, access_m: float, cutoff_m: float, source: int = 0
) -> LocalReach:
    """Reach of a snapped point by an independent networkx Dijkstra (virtual source)."""
    g = nx.Graph()
    for u, v, w in zip(net.edge_u, net.edge_v, net.edge_length_m, strict=True):
        g.add_edge(int(u), int(v), length=float(w))
    length = float(net.edge_length_m[edge])
    g.add_edge("s", int(net.edge_u[edge]), length=access_m + fraction * length)
    g.add_edge("s", int(net.edge_v[edge]), length=access_m + (1.0 - fraction) * length)
    dist = nx.single_source_dijkstra_path_length(g, "s", cutoff=cutoff_m, weight="length")
    nodes = sorted(int(k) for k in dist if k != "s")
    return LocalReach(
        source=source,
        cutoff_m=cutoff_m,
        node=np.array(nodes, dtype=np.int64),
        dist_m=np.array([dist[k] for k in nodes], dtype=np.float64),
        start_edge=edge,
        start_fraction=fraction,
        access_m=access_m,
    )


def snapped(net: WalkNetwork, xy: tuple[float, float], edge: int, fraction: float) -> SnappedPoints:
    """One snapped point, built by hand (input point ``xy`` relative to the origin)."""
    u, v = int(net.edge_u[edge]), int(net.edge_v[edge])
    sx = net.node_x_m[u] + fraction * (net.node_x_m[v] - net.node_x_m[u])
    sy = net.node_y_m[u] + fraction * (net.node_y_m[v] - net.node_y_m[u])
    x, y = xy[0] + X0, xy[1] + Y0
    return SnappedPoints(
        x_m=np.array([x]),
        y_m=np.array([y]),
        edge=np.array([edge], dtype=np.int64),
        fraction=np.array([fraction]),
        snap_x_m=np.array([sx]),
        snap_y_m=np.array([sy]),
        access_m=np.array([math.hypot(x - sx, y - sy)]),
        off_network=np.array([False]),
        max_snap_m=300.0,
    )


def plain_union(net: WalkNetwork, reach: LocalReach, t_m: float, **kw: Any) -> Any:
    """The definition taken literally: union of every covered piece buffered on its own."""
    pc = covered_pieces(net, reach, t_m, **kw)
    lines = shapely.linestrings(np.stack([pc.start_xy, pc.end_xy], axis=1))
    return shapely.union_all(shapely.buffer(lines, B, quad_segs=Q))


def grid_net(n: int = 5, block_m: float = 100.0) -> WalkNetwork:
    """An n × n street grid, node ``r * n + c`` at (c, r) × block, centred on the origin."""
    half = (n - 1) / 2.0
    xy = [((c - half) * block_m, (r - half) * block_m) for r in range(n) for c in range(n)]
    edges = [(r * n + c, r * n + c + 1) for r in range(n) for c in range(n - 1)]
    edges += [(r * n + c, (r + 1) * n + c) for r in range(n - 1) for c in range(n)]
    return make_net(xy, edges)


def at_node(net: WalkNetwork, node: int, cutoff_m: float, source: int = 0) -> LocalReach:
    """Reach of a source standing exactly on ``node`` (fraction 0 of an incident edge)."""
    e = int(np.flatnonzero((net.edge_u == node) | (net.edge_v == node))[0])
    fraction = 0.0 if int(net.edge_u[e]) == node else 1.0
    return nx_reach(net, e, fraction, 0.0, cutoff_m, source)


# ------------------------------------------------------------------- closed forms


@pytest.mark.parametrize(("t_m", "covered_m"), [(50.0, 50.0), (250.0, 250.0), (400.0, 300.0)])
def test_straight_line_of_three_edges(t_m: float, covered_m: float) -> None:
    net = make_net([(0, 0), (100, 0), (200, 0), (300, 0)], [(0, 1), (1, 2), (2, 3)])
    reach = nx_reach(net, 0, 0.0, 0.0, 400.0)
    assert covered_pieces(net, reach, t_m).length_m.sum() == pytest.approx(covered_m, abs=1e-9)
    (poly,) = isochrone_polygons(net, reach, [t_m], B)
    assert shapely.is_valid(poly) and isinstance(poly, Polygon)
    assert poly.area == pytest.approx(2 * B * covered_m + disc_area(), abs=1e-6)
    minx, miny, maxx, maxy = poly.bounds
    assert maxx - X0 == pytest.approx(covered_m + B, abs=1e-6)
    assert minx - X0 == pytest.approx(-B, abs=1e-6)
    assert (maxy - Y0, miny - Y0) == pytest.approx((B, -B), abs=1e-6)


def test_grid_from_a_node_by_hand() -> None:
    """5×5 grid of 100 m blocks, source on the centre node, T = 150 m.

    Reached: the centre and its 4 neighbours (100 m). Covered: the 4 edges to them
    (400 m) and, from each neighbour, 50 m along its 3 other edges (600 m): a plus with
    cross-bars, 1,000 m in all. Its buffer is 2·b·1000 for the strips, minus 4·b² at
    each of the 5 right-angled crossings where strips overlap, plus 12 half discs at
    the 12 free ends (no other overlaps: free ends are ≥ 70 m apart).
    """
    net = grid_net()
    reach = at_node(net, 12, 150.0)
    assert sorted(reach.node.tolist()) == [7, 11, 12, 13, 17]
    pieces = covered_pieces(net, reach, 150.0)
    assert len(pieces) == 16
    assert pieces.length_m.sum() == pytest.approx(1000.0, abs=1e-9)
    (poly,) = isochrone_polygons(net, reach, [150.0], B, quad_segs=Q)
    expected = 2 * B * 1000.0 - 5 * 4 * B * B + 12 * disc_area() / 2
    assert poly.area == pytest.approx(expected, abs=1e-6)
    assert shapely.is_valid(poly)
    assert shapely.symmetric_difference(poly, plain_union(net, reach, 150.0)).area < 1e-6


def test_closed_block_becomes_a_hole_by_hand() -> None:
    """One 100 m square block walked all round: a square ring of width 2b."""
    net = make_net([(0, 0), (100, 0), (100, 100), (0, 100)], [(0, 1), (1, 2), (2, 3), (3, 0)])
    reach = at_node(net, 0, 250.0)
    (poly,) = isochrone_polygons(net, reach, [250.0], B)
    assert isinstance(poly, Polygon) and len(poly.interiors) == 1
    assert Polygon(poly.interiors[0]).area == pytest.approx((100 - 2 * B) ** 2, abs=1e-6)
    outer = 100.0**2 + 4 * 100.0 * B + disc_area()
    assert poly.area == pytest.approx(outer - (100 - 2 * B) ** 2, abs=1e-6)
    assert shapely.symmetric_difference(poly, plain_union(net, reach, 250.0)).area < 1e-6


def test_mid_edge_source_with_access_leg() -> None:
    """A(0,0)–B(200,0) and A–C(0,−100); the facility stands at (50, 20), 20 m off AB.

    T = 100 m: 80 m remain at the snapped point (50, 0), so AB is covered on [0, 130];
    A is reached at 70 m, leaving 30 m down AC; the 20 m access leg is drawn too.
    """
    net = make_net([(0, 0), (200, 0), (0, -100)], [(0, 1), (0, 2)])
    pts = snapped(net, (50.0, 20.0), edge=0, fraction=0.25)
    reach = nx_reach(net, 0, 0.25, float(pts.access_m[0]), 100.0)
    assert reach.node.tolist() == [0] and reach.dist_m[0] == pytest.approx(70.0)
    pieces = covered_pieces(net, reach, 100.0, points=pts)
    assert pieces.length_m.sum() == pytest.approx(130.0 + 30.0 + 20.0, abs=1e-9)
    assert (pieces.edge == -1).sum() == 1
    (poly,) = isochrone_polygons(net, reach, [100.0], B, points=pts)
    minx, miny, maxx, maxy = poly.bounds
    assert (minx - X0, maxx - X0) == pytest.approx((-B, 130.0 + B), abs=1e-6)
    assert (miny - Y0, maxy - Y0) == pytest.approx((-30.0 - B, 20.0 + B), abs=1e-6)
    # Without the snapped points the access leg cannot be drawn (its direction is unknown).
    (bare,) = isochrone_polygons(net, reach, [100.0], B)
    assert bare.bounds[3] - Y0 == pytest.approx(B, abs=1e-6)
    assert bare.area < poly.area


@pytest.mark.parametrize("t_m", [0.001, 123.456, 499.999])
def test_partial_edge_is_cut_at_the_exact_remaining_distance(t_m: float) -> None:
    net = make_net([(0, 0), (300, 400)], [(0, 1)])  # one 500 m diagonal edge
    d = np.array([0.6, 0.8])
    for node, sign in ((0, 1.0), (1, -1.0)):
        reach = at_node(net, node, 500.0)
        pieces = covered_pieces(net, reach, t_m)
        start = np.array([net.node_x_m[node], net.node_y_m[node]])
        cut = pieces.end_xy[0] if node == 0 else pieces.start_xy[0]
        assert np.linalg.norm(cut - start) == pytest.approx(t_m, abs=1e-9)
        (poly,) = isochrone_polygons(net, reach, [t_m], B)
        assert isinstance(poly, Polygon)
        along = (np.asarray(poly.exterior.coords) - start) @ (sign * d)
        assert along.max() == pytest.approx(t_m + B, abs=1e-6)
        assert along.min() == pytest.approx(-B, abs=1e-6)


def test_node_reached_exactly_at_the_threshold() -> None:
    """A zero-length piece (r = 0 at a node) is a disc, already inside the strip."""
    net = make_net([(0, 0), (100, 0), (100, 100)], [(0, 1), (1, 2)])
    reach = at_node(net, 0, 100.0)
    (poly,) = isochrone_polygons(net, reach, [100.0], B)
    assert poly.area == pytest.approx(2 * B * 100.0 + disc_area(), abs=1e-6)
    (dot,) = isochrone_polygons(net, reach, [0.0], B)
    assert dot.area == pytest.approx(disc_area(), abs=1e-6)


# ------------------------------------------------------------------- structure


def test_bridge_crossing_a_block_and_a_dead_end_inside_it() -> None:
    """A bridge E–F crosses block ABCD without a shared node; a dead end A–H enters it.

    The block's eroded interior must not become one hole: the bridge's buffer splits
    it in two and the dead end's buffer is cut out of it.
    """
    xy = [(0, 0), (200, 0), (200, 200), (0, 200), (100, -50), (100, 250), (60, 60)]
    edges = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (4, 5), (0, 6)]
    net = make_net(xy, edges)
    assert IsochroneBuilder(net).clean.tolist() == [False, True, False, True, True, False, True]
    reach = at_node(net, 0, 2000.0)
    (poly,) = isochrone_polygons(net, reach, [2000.0], B)
    assert shapely.is_valid(poly) and isinstance(poly, Polygon)
    # Holes: the right half-block, and the left half-block split by the dead end's
    # buffer into a large part and a small pocket near (70, 30).
    assert len(poly.interiors) == 3
    for x, y in [(100, 100), (50, 50), (100, 240)]:
        assert poly.covers(Point(X0 + x, Y0 + y))
    for x, y in [(150, 100), (50, 150), (70, 28)]:
        assert not poly.covers(Point(X0 + x, Y0 + y))
    truth = plain_union(net, reach, 2000.0)
    assert len(truth.interiors) == 3
    assert abs(poly.area - truth.area) < 1e-3 * truth.area
    assert shapely.hausdorff_distance(poly, truth) < 0.04 * B


def test_clean_edges_by_hand() -> None:
    """Edges meeting only at shared end points are clean; every other contact is not."""
    xy = [(0, 0), (100, 0), (100, 100), (50, -50), (50, 50), (150, 0), (200, 0), (300, 0)]
    edges = [
        (0, 1),  # 0: crossed by edge 2 at (50, 0) without a node
        (1, 2),  # 1: duplicated by edge 6
        (3, 4),  # 2: crosses edge 0
        (1, 5),  # 3: continues edge 0 straight on, meets edges 0/1/6 at node 1 only
        (5, 7),  # 4: contains edge 5 (collinear overlap)
        (6, 7),  # 5: lies inside edge 4, shares node 7 with it
        (1, 2),  # 6: duplicates edge 1
    ]
    clean = IsochroneBuilder(make_net(xy, edges)).clean.tolist()
    assert clean == [False, False, False, True, False, False, False]
    # A node on another edge's interior (T-junction without a shared node).
    t_join = make_net([(0, 0), (100, 0), (50, 0), (50, 80)], [(0, 1), (2, 3)])
    assert IsochroneBuilder(t_join).clean.tolist() == [False, False]


def test_island_ring_joined_by_a_cut_edge() -> None:
    """A face with a hole (an inner block joined by one path) goes the overlay way."""
    xy = [(0, 0), (400, 0), (400, 400), (0, 400), (150, 150), (250, 150), (250, 250), (150, 250)]
    edges = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4)]
    net = make_net(xy, edges)
    reach = at_node(net, 0, 3000.0)
    (poly,) = isochrone_polygons(net, reach, [3000.0], B)
    truth = plain_union(net, reach, 3000.0)
    assert isinstance(poly, Polygon) and shapely.is_valid(poly)
    assert len(poly.interiors) == len(truth.interiors) == 2
    assert shapely.symmetric_difference(poly, truth).area < 1e-6
    assert poly.covers(Point(X0 + 150, Y0 + 200)) and poly.covers(Point(X0 + 75, Y0 + 75))
    for x, y in [(200, 200), (300, 80)]:  # the inner block's middle, the outer block's
        assert not poly.covers(Point(X0 + x, Y0 + y))


def test_nested_5_10_15_and_valid_on_hand_grid() -> None:
    net = grid_net(15)  # 700 m from the centre to each side: 15 minutes reach further
    reach = at_node(net, 112, 1000.0)
    t = minutes_to_m([5, 10, 15], 4.0)
    assert t.tolist() == pytest.approx([1000 / 3, 2000 / 3, 1000.0])
    polys = isochrone_polygons(net, reach, t, B)
    assert all(shapely.is_valid(p) for p in polys)
    assert polys[0].within(polys[1]) and polys[1].within(polys[2])
    assert polys[0].area < polys[1].area < polys[2].area
    # Input order is kept; nesting follows the sorted thresholds.
    shuffled = isochrone_polygons(net, reach, t[::-1], B)
    assert [p.area for p in shuffled] == pytest.approx([p.area for p in polys[::-1]], abs=1e-6)


def test_off_network_source_gives_empty_polygons() -> None:
    net = grid_net(3)
    off = LocalReach(0, 1000.0, np.empty(0, np.int64), np.empty(0), -1, float("nan"), 500.0)
    assert all(p.is_empty for p in isochrone_polygons(net, off, [500.0, 1000.0], B))
    assert all(p.is_empty for p in concave_hull_polygons(net, off, [1000.0]))
    assert len(covered_pieces(net, off, 1000.0)) == 0
    gdf = facility_isochrones(net, [off], ["F-off"], [15], 4.0)
    assert gdf["area_m2"].tolist() == [0.0] and gdf.geometry.iloc[0].is_empty


def test_union_of_two_overlapping_facilities() -> None:
    net = grid_net(7)
    reaches = [at_node(net, 23, 400.0, source=0), at_node(net, 25, 400.0, source=1)]
    gdf = facility_isochrones(net, reaches, ["A", "B"], [3, 6], speed_kmh=4.0)
    assert len(gdf) == 4 and set(gdf["method"]) == {METHOD_EDGE_BUFFER}
    union = union_isochrones(gdf)
    assert list(union.columns) == list(UNION_COLUMNS)
    assert union["minutes"].tolist() == [3.0, 6.0]
    assert union["n_facilities"].tolist() == [2, 2]
    six = gdf[gdf["minutes"] == 6.0]
    u6 = union.geometry.iloc[1]
    assert max(six["area_m2"]) < u6.area < six["area_m2"].sum()
    assert all(g.covered_by(u6) for g in six.geometry)
    assert union.geometry.iloc[0].within(u6)
    assert union["area_m2"].iloc[1] == pytest.approx(u6.area)


# ------------------------------------------------------------------- tables and errors


def test_facility_table_columns_units_and_labels() -> None:
    net = grid_net(7)
    reach = at_node(net, 24, 1000.0)
    gdf = facility_isochrones(net, [reach], [101], [5, 10, 15], speed_kmh=4.0)
    assert list(gdf.columns) == list(ISOCHRONE_COLUMNS)
    assert gdf.crs == CRS_M and len(gdf) == 3
    assert gdf.attrs["speed_kmh"] == 4.0 and gdf.attrs["buffer_m"] == B
    assert gdf.attrs["labels"]["minutes"][0] == "步行时间（分钟）"
    (direct,) = isochrone_polygons(net, reach, [1000.0], B)
    assert gdf.geometry.iloc[2].equals_exact(direct, tolerance=0.0)
    assert gdf["area_m2"].tolist() == pytest.approx([g.area for g in gdf.geometry])


def test_empty_in_empty_out() -> None:
    net = grid_net(3)
    gdf = facility_isochrones(net, [], [], [15], 4.0)
    assert list(gdf.columns) == list(ISOCHRONE_COLUMNS) and len(gdf) == 0
    assert gdf.crs == CRS_M
    union = union_isochrones(gdf)
    assert list(union.columns) == list(UNION_COLUMNS) and len(union) == 0
    hull = concave_hull_isochrones(net, [], [], [15], 4.0)
    assert list(hull.columns) == list(ISOCHRONE_COLUMNS) and len(hull) == 0


def test_bad_input_is_refused_with_the_field() -> None:
    net = grid_net(3)
    reach = at_node(net, 4, 500.0)
    cases = [
        (lambda: isochrone_polygons(net, reach, [600.0]), "thresholds_m"),
        (lambda: isochrone_polygons(net, reach, [-1.0]), "thresholds_m"),
        (lambda: isochrone_polygons(net, reach, [100.0], buffer_m=0.0), "buffer_m"),
        (lambda: facility_isochrones(net, [reach], [1, 2], [5], 4.0), "facility_ids"),
        (lambda: facility_isochrones(net, [reach], [1], [5], 0.0), "speed_kmh"),
        (lambda: facility_isochrones(net, [reach], [1], [-5], 4.0), "minutes"),
        (lambda: concave_hull_polygons(net, reach, [100.0], ratio=2.0), "ratio"),
    ]
    for call, field in cases:
        with pytest.raises(InputValidationError) as info:
            call()
        assert info.value.field == field
    alien = LocalReach(0, 500.0, np.array([99]), np.array([0.0]), 0, 0.0, 0.0)
    with pytest.raises(InputValidationError, match="another network"):
        isochrone_polygons(net, alien, [100.0])
    pts = snapped(net, (0.0, 10.0), edge=1, fraction=0.5)  # on edge 1, reach starts elsewhere
    with pytest.raises(InputValidationError, match="do not belong"):
        isochrone_polygons(net, reach, [100.0], points=pts)
    with pytest.raises(InputValidationError, match="another network"):
        isochrone_polygons(net, reach, [100.0], builder=IsochroneBuilder(grid_net(3)))


# ------------------------------------------------------------------- with the reach engine


@pytest.fixture(scope="module")
def city() -> tuple[object, object, list[LocalReach]]:
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.reach.engine import facility_reach
    from tuoyu.synthetic import random_facilities, synthetic_city

    net = synthetic_city(6_000, seed=7)
    graph = build_graph(net)
    x, y = random_facilities(net, 8, seed=8)
    pts = snap_points(graph, x, y, max_snap_m=300.0)
    reaches = [facility_reach(graph, pts, i, 1000.0) for i in range(len(pts))]
    return net, pts, reaches


def test_reach_engine_and_networkx_reach_give_the_same_polygon() -> None:
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.reach.engine import facility_reach

    net = grid_net(7)
    graph = build_graph(net)
    pts = snap_points(graph, [X0 + 37.0], [Y0 - 12.0], max_snap_m=300.0)
    engine = facility_reach(graph, pts, 0, 600.0)
    by_nx = nx_reach(net, int(pts.edge[0]), float(pts.fraction[0]), float(pts.access_m[0]), 600.0)
    (a,) = isochrone_polygons(net, engine, [600.0], B, points=pts)
    (b,) = isochrone_polygons(net, by_nx, [600.0], B, points=pts)
    assert shapely.symmetric_difference(a, b).area < 1e-6


@pytest.mark.slow
def test_synthetic_city_nested_valid_and_equal_to_the_plain_union(city) -> None:
    net, pts, reaches = city
    builder = IsochroneBuilder(net)
    t = minutes_to_m([5, 10, 15], 4.0)
    for reach in reaches:
        polys = isochrone_polygons(net, reach, t, B, points=pts, builder=builder)
        assert all(shapely.is_valid(p) and not p.is_empty for p in polys)
        assert polys[0].within(polys[1]) and polys[1].within(polys[2])
        truth = plain_union(net, reach, 1000.0, points=pts, builder=builder)
        assert abs(polys[2].area - truth.area) < 1e-3 * truth.area
        assert shapely.hausdorff_distance(polys[2], truth) < 0.04 * B


def test_hulls_against_the_edge_buffer_truth(city) -> None:
    """The osmnx recipe's convex hull of reached nodes vs the concave approximation.

    Every covered piece lies in the convex hull of the reached points, so the exact
    polygon lies inside that hull grown by b. On 50–150 m blocks the plain convex
    hull overstates the area by > 10 % (it fills the blocks); the default buffered
    concave hull is closer on average.
    """
    net, pts, reaches = city
    xy = net.node_xy()
    exact = facility_isochrones(net, reaches, list(range(len(reaches))), [15], 4.0, points=pts)
    approx = concave_hull_isochrones(net, reaches, list(range(len(reaches))), [15], 4.0, points=pts)
    assert set(approx["method"]) == {METHOD_CONCAVE_HULL}
    convex_err, concave_err = [], []
    for reach, poly, hull in zip(reaches, exact.geometry, approx.geometry, strict=True):
        pieces = covered_pieces(net, reach, 1000.0, points=pts)
        every = shapely.multipoints(np.concatenate([pieces.start_xy, pieces.end_xy]))
        # The hull's buffer uses chords inside its arcs: grow it to the circumscribed
        # radius, plus GEOS's 1 % buffer simplification tolerance.
        grown_m = B / math.cos(math.pi / (4 * Q)) + 0.01 * B
        assert poly.within(shapely.buffer(shapely.convex_hull(every), grown_m))
        assert shapely.is_valid(hull)
        nodes = xy[reach.node[reach.dist_m <= 1000.0]]
        convex = shapely.convex_hull(shapely.multipoints(nodes))
        convex_err.append(abs(convex.area - poly.area) / poly.area)
        concave_err.append(abs(hull.area - poly.area) / poly.area)
    assert np.mean(convex_err) > 0.10
    assert np.mean(concave_err) < np.mean(convex_err)


@pytest.mark.slow
def test_yuzhong_real_network(settings) -> None:
    """Real OSM: bridges and tunnels cross streets without shared nodes."""
    from tuoyu.config.data_registry import resolve_data_file
    from tuoyu.layers.osm_network import load_walk_network
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.reach.engine import facility_reach
    from tuoyu.synthetic import random_facilities

    path: Path = resolve_data_file("chongqing-yuzhong/yuzhong.osm.pbf", settings)
    net = load_walk_network(path, settings=settings)
    builder = IsochroneBuilder(net)
    assert (~builder.clean).sum() > 100  # crossings without a node exist and are handled
    # ``clean`` agrees with GEOS: an edge is clean iff every other edge it intersects
    # meets it in exactly one point that is an end point of both.
    xy = net.node_xy()
    lines = np.asarray(shapely.linestrings(np.stack([xy[net.edge_u], xy[net.edge_v]], 1)))
    a, b = shapely.STRtree(lines).query(lines, predicate="intersects")
    a, b = a[a != b], b[a != b]
    meet = shapely.intersection(lines[a], lines[b])
    ok = (
        (shapely.get_type_id(meet) == 0)
        & shapely.intersects(meet, shapely.boundary(lines[a]))
        & shapely.intersects(meet, shapely.boundary(lines[b]))
    )
    geos_clean = np.ones(net.n_edges, dtype=bool)
    geos_clean[a[~ok]] = False
    assert builder.clean.tolist() == geos_clean.tolist()
    graph = build_graph(net)
    x, y = random_facilities(net, 4, seed=3)
    pts = snap_points(graph, x, y, max_snap_m=300.0)
    t = minutes_to_m([5, 10, 15], 4.0)
    for i in range(len(pts)):
        reach = facility_reach(graph, pts, i, 1000.0)
        polys = isochrone_polygons(net, reach, t, B, points=pts, builder=builder)
        assert all(shapely.is_valid(p) for p in polys)
        assert polys[0].within(polys[1]) and polys[1].within(polys[2])
        truth = plain_union(net, reach, 1000.0, points=pts, builder=builder)
        assert abs(polys[2].area - truth.area) < 1e-3 * truth.area
        assert shapely.hausdorff_distance(polys[2], truth) < 0.04 * B
