"""Islands of the walking network must not swallow points (snapping to large pieces only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
import shapely
from pydantic import ValidationError
from scipy.spatial import cKDTree
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import WalkSection
from tuoyu.errors import InputValidationError
from tuoyu.network.graph import WalkGraph, build_graph
from tuoyu.network.snap import DEFAULT_MIN_COMPONENT_NODES, snap_points
from tuoyu.types import SnappedPoints

from tests.handmade import X0, Y0, network

# Edges 0–1: a 3-node island, a vertical path at x = 260 m (y 50, 100, 150), listed first
# so that the old lowest-index rule would prefer it in a tie.
# Nodes 3–11: a 3 × 3 grid, 100 m spacing: node 3 + r*3 + c at (100c, 100r).
ISLAND_XY = [(260.0, 50.0), (260.0, 100.0), (260.0, 150.0)]
GRID_XY = [(100.0 * c, 100.0 * r) for r in range(3) for c in range(3)]
GRID_EDGES = [
    *[(0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8)],  # rows
    *[(0, 3), (3, 6), (1, 4), (4, 7), (2, 5), (5, 8)],  # columns
]
EDGES = [(0, 1), (1, 2), *[(a + 3, b + 3) for a, b in GRID_EDGES]]
# The grid edge from (200, 0) to (200, 100): nodes 5 and 8.
EAST_EDGE = EDGES.index((5, 8))


def grid_with_island() -> WalkGraph:
    return build_graph(network(ISLAND_XY + GRID_XY, EDGES))


def snap(graph: WalkGraph, x: float, y: float, **kw: float) -> SnappedPoints:
    return snap_points(graph, [X0 + x], [Y0 + y], **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ components


def test_components_are_labelled_once_per_graph() -> None:
    g = grid_with_island()
    labels = g.component_labels
    assert len(set(labels[:3].tolist())) == 1 and len(set(labels[3:].tolist())) == 1
    assert labels[0] != labels[3]
    assert sorted(g.component_n_nodes.tolist()) == [3, 9]
    assert g.edge_component_n_nodes.tolist() == [3, 3] + [9] * 12
    assert g.component_labels is labels  # cached on the graph


def test_zero_length_segment_connects() -> None:
    g = build_graph(network([(0, 0), (0, 0), (100, 0)], [(0, 1), (1, 2)]))
    assert g.component_n_nodes.tolist() == [3]


def test_threshold_is_capped_at_the_largest_piece() -> None:
    g = grid_with_island()
    assert g.effective_min_component_nodes(40) == 9
    assert g.effective_min_component_nodes(4) == 4
    assert g.main_edges(40).tolist() == [False, False] + [True] * 12
    assert g.main_edges(3).all()


# -------------------------------------------------------------------------- snapping


def test_point_nearer_an_island_snaps_to_the_main_network() -> None:
    g = grid_with_island()
    s = snap(g, 250.0, 60.0)  # 10 m from the island, 50 m from the grid's east edge
    assert int(s.edge[0]) == EAST_EDGE
    assert float(s.fraction[0]) == pytest.approx(0.6)
    assert (float(s.snap_x_m[0]) - X0, float(s.snap_y_m[0]) - Y0) == pytest.approx((200.0, 60.0))
    assert float(s.access_m[0]) == pytest.approx(50.0)
    assert s.moved_from_island is not None and s.moved_from_island.tolist() == [True]
    assert s.n_moved_from_island == 1
    assert s.min_component_nodes == 9  # 40 capped at the largest piece


@pytest.mark.parametrize("off", [0, 1])
def test_zero_or_one_keeps_the_old_behaviour(off: int) -> None:
    g = grid_with_island()
    s = snap(g, 250.0, 60.0, min_component_nodes=off)
    assert int(s.edge[0]) == 0  # the island edge (260, 50)–(260, 100)
    assert float(s.access_m[0]) == pytest.approx(10.0)
    assert s.n_moved_from_island == 0 and s.min_component_nodes == 0


def test_points_near_the_main_network_are_not_moved() -> None:
    g = grid_with_island()
    x = X0 + np.array([50.0, 150.0, 320.0])
    y = Y0 + np.array([-10.0, 180.0, 100.0])
    s = snap_points(g, x, y)
    old = snap_points(g, x, y, min_component_nodes=0)
    assert s.moved_from_island is not None
    assert s.moved_from_island.tolist() == [False, False, True]
    assert s.edge[:2].tolist() == old.edge[:2].tolist()
    assert int(old.edge[2]) in (0, 1) and int(s.edge[2]) >= 2


def test_tie_between_island_and_main_edge_prefers_the_main_edge() -> None:
    g = grid_with_island()
    s = snap(g, 230.0, 60.0)  # 30 m from both the island and the east edge
    assert int(s.edge[0]) == EAST_EDGE
    assert s.n_moved_from_island == 0
    assert int(snap(g, 230.0, 60.0, min_component_nodes=0).edge[0]) == 0  # lowest index


def test_main_edge_beyond_the_limit_leaves_the_point_off_network() -> None:
    g = grid_with_island()
    s = snap(g, 290.0, 60.0, max_snap_m=60.0)  # island 30 m away, grid 90 m
    assert s.off_network.tolist() == [True] and int(s.edge[0]) == -1
    assert float(s.access_m[0]) == pytest.approx(90.0)  # distance to the eligible edge
    assert s.n_moved_from_island == 1
    assert np.isnan(s.fraction[0])


def test_only_a_small_piece_still_snaps() -> None:
    # A tiny study area: one 5-node path, far below the default threshold.
    g = build_graph(network([(100.0 * i, 0.0) for i in range(5)], [(i, i + 1) for i in range(4)]))
    s = snap(g, 150.0, 20.0)
    assert s.off_network.tolist() == [False] and int(s.edge[0]) == 1
    assert s.n_moved_from_island == 0 and s.min_component_nodes == 5


def test_two_small_pieces_keep_the_larger() -> None:
    # Pieces of 3 and 2 nodes, threshold 40: the 3-node piece is the largest and stays.
    net = network([(0, 0), (100, 0), (200, 0), (150, 30), (150, 60)], [(0, 1), (1, 2), (3, 4)])
    s = snap(build_graph(net), 150.0, 45.0)
    assert int(s.edge[0]) == 1 and float(s.access_m[0]) == pytest.approx(45.0)
    assert s.n_moved_from_island == 1


def test_network_without_edges_leaves_everything_off_network() -> None:
    g = build_graph(network([(0.0, 0.0), (10.0, 0.0)], []))
    s = snap(g, 0.0, 0.0)
    assert s.off_network.tolist() == [True] and np.isinf(s.access_m[0])
    assert s.n_moved_from_island == 0


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_bad_threshold_is_named(bad: object) -> None:
    with pytest.raises(InputValidationError, match="min_component_nodes") as info:
        snap_points(grid_with_island(), [X0], [Y0], min_component_nodes=bad)  # type: ignore[arg-type]
    assert info.value.field == "min_component_nodes"


def test_walk_section_setting() -> None:
    assert WalkSection().min_component_nodes == DEFAULT_MIN_COMPONENT_NODES == 40
    assert WalkSection(min_component_nodes=0).min_component_nodes == 0
    with pytest.raises(ValidationError):
        WalkSection(min_component_nodes=-1)


def test_snapped_points_built_by_hand_record_nothing() -> None:
    s = snap(grid_with_island(), 0.0, 0.0)
    plain = SnappedPoints(
        x_m=s.x_m,
        y_m=s.y_m,
        edge=s.edge,
        fraction=s.fraction,
        snap_x_m=s.snap_x_m,
        snap_y_m=s.snap_y_m,
        access_m=s.access_m,
        off_network=s.off_network,
        max_snap_m=s.max_snap_m,
    )
    assert plain.moved_from_island is None and plain.n_moved_from_island == 0


# ------------------------------------------------- Yuzhong: the audit that found it


@dataclass(frozen=True)
class _Audit:
    """Points sampled inside facilities' 15-minute isochrones, snapped at one threshold."""

    piece_n_nodes: npt.NDArray[np.int64]  # size of the piece each point snapped to (0 off)
    on_facility_piece: npt.NDArray[np.bool_]
    within_15_min: npt.NDArray[np.bool_]
    reaches_facility: npt.NDArray[np.bool_]  # at any distance
    off_network: npt.NDArray[np.bool_]
    moved: npt.NDArray[np.bool_]
    edge: npt.NDArray[np.int64]


@pytest.fixture(scope="module")
def yuzhong_audit(settings: Settings) -> dict[int, _Audit]:
    """The user's audit, repeated: 20 facilities × 200 random points in their isochrones."""
    from tuoyu.config.data_registry import resolve_data_file
    from tuoyu.isochrones.exact import IsochroneBuilder, isochrone_polygons
    from tuoyu.layers.osm_network import load_walk_network
    from tuoyu.reach.engine import all_facility_reach, nearest_facility_times, point_times

    net = load_walk_network(
        resolve_data_file("chongqing-yuzhong/yuzhong.osm.pbf", settings), settings=settings
    )
    graph = build_graph(net)
    labels = graph.component_labels
    main = np.flatnonzero(labels == int(np.argmax(graph.component_n_nodes)))
    # Pretend facilities: the main-network node nearest each cell centre of a 5 × 4 grid
    # over the district (spread out, and on the network as real ones would be).
    xy = net.node_xy()
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    cx, cy = np.meshgrid(np.linspace(lo[0], hi[0], 7)[1:-1], np.linspace(lo[1], hi[1], 6)[1:-1])
    _, j = cKDTree(xy[main]).query(np.column_stack([cx.ravel(), cy.ravel()]))
    nodes = np.unique(main[j])
    n_fac = nodes.shape[0]
    fac = snap_points(graph, xy[nodes, 0], xy[nodes, 1], min_component_nodes=0)
    reaches = all_facility_reach(graph, fac, 1000.0)
    builder = IsochroneBuilder(net)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n_fac):
        poly = isochrone_polygons(net, reaches[i], [1000.0], 25.0, points=fac, builder=builder)[0]
        x0, y0, x1, y1 = poly.bounds
        px: list[float] = []
        py: list[float] = []
        while len(px) < 200:
            x = rng.uniform(x0, x1, 400)
            y = rng.uniform(y0, y1, 400)
            inside = shapely.contains_xy(poly, x, y)
            px += x[inside].tolist()
            py += y[inside].tolist()
        samples.append((np.array(px[:200]), np.array(py[:200])))
    out: dict[int, _Audit] = {}
    for threshold in (0, DEFAULT_MIN_COMPONENT_NODES, 200):
        parts: list[list[npt.NDArray[np.generic]]] = [[] for _ in range(7)]
        for i, (px_m, py_m) in enumerate(samples):
            only_i = np.zeros(n_fac, dtype=bool)
            only_i[i] = True
            node_reach = nearest_facility_times(graph, fac, np.inf, active=only_i)
            s = snap_points(graph, px_m, py_m, 300.0, min_component_nodes=threshold)
            dist_m, _ = point_times(graph, node_reach, s)
            on = ~s.off_network
            piece = np.full(len(s), -1, dtype=np.int64)
            piece[on] = labels[net.edge_u[s.edge[on]]]
            size = np.where(on, graph.component_n_nodes[np.maximum(piece, 0)], 0)
            assert s.moved_from_island is not None
            for lst, arr in zip(
                parts,
                [
                    size,
                    piece == labels[nodes[i]],
                    dist_m <= 1000.0,
                    np.isfinite(dist_m),
                    s.off_network,
                    s.moved_from_island,
                    s.edge,
                ],
                strict=True,
            ):
                lst.append(arr)
        cat = [np.concatenate(p) for p in parts]
        out[threshold] = _Audit(*cat)  # type: ignore[arg-type]
    return out


def test_yuzhong_old_snapping_lets_islands_swallow_points(
    yuzhong_audit: dict[int, _Audit],
) -> None:
    """Old behaviour (no filter): points inside a 15-minute isochrone land on islands."""
    old = yuzhong_audit[0]
    on = ~old.off_network
    swallowed = on & (old.piece_n_nodes < DEFAULT_MIN_COMPONENT_NODES)
    assert swallowed.sum() > 0  # 16 of 4,000 measured
    # ... and such a point cannot reach its facility at any distance.
    assert not old.reaches_facility[swallowed].any()
    assert (on & ~old.reaches_facility).sum() >= swallowed.sum()


def test_yuzhong_no_point_is_swallowed_by_an_island(yuzhong_audit: dict[int, _Audit]) -> None:
    old, new = yuzhong_audit[0], yuzhong_audit[DEFAULT_MIN_COMPONENT_NODES]
    on = ~new.off_network
    # No point joins a piece below the threshold; every point either reaches its
    # facility or is off-network or sits on a piece of at least 40 nodes.
    assert not (on & (new.piece_n_nodes < DEFAULT_MIN_COMPONENT_NODES)).any()
    assert (new.reaches_facility | new.off_network | (new.piece_n_nodes >= 40)).all()
    # Exactly the points the old snapping put on an island were moved ...
    old_island = ~old.off_network & (old.piece_n_nodes < DEFAULT_MIN_COMPONENT_NODES)
    assert new.moved.tolist() == old_island.tolist()
    # ... each to its facility's network (or off it), all others are untouched.
    assert (new.on_facility_piece | new.off_network)[new.moved].all()
    assert (new.edge == old.edge)[~new.moved].all()
    # Misses: points not reaching the facility at any distance, and within 15 minutes.
    assert (on & ~new.reaches_facility).sum() < (~old.off_network & ~old.reaches_facility).sum()
    assert new.within_15_min.sum() > old.within_15_min.sum()


def test_yuzhong_stricter_threshold_leaves_no_point_disconnected(
    yuzhong_audit: dict[int, _Audit],
) -> None:
    """With GraphHopper's order of size (200) the 40–96-node pieces go too."""
    strict = yuzhong_audit[200]
    assert (strict.reaches_facility | strict.off_network).all()
