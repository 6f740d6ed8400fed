"""Walking distances of a large area computed tile by tile, equal to the untiled answer.

A city too large for one process is cut into square tiles of its population points.
Each tile gets the network cut to the tile grown by a *halo* and the facilities inside
that grown box; snapping, the bounded multi-source search and the per-point distances
then run on the small tile graph only.

Why the halo makes it exact (walking distances ≤ the cut-off ``C``; ``s`` = the
graph's ``max_stretch``, 1 when lengths are the straight segments; ``S`` =
``max_snap_m``), with ``halo = C·s + S + margin``:

* a population point ``p`` of the tile snaps to its nearest edge, at most ``S`` away,
  and every equally near edge also lies in the grown box, so it snaps to the same edge
  (edges keep their order, so ties resolve the same way);
* a path of length ≤ ``C`` from ``p`` never leaves the disc of radius ``C·s`` around
  ``p``, so every edge on it is kept;
* a facility that can reach ``p`` within ``C`` lies within ``C·s`` of the tile, so the
  disc of radius ``S`` around it, which holds its snapping edge and all ties, is inside
  the grown box: it snaps as untiled. A facility whose nearest edge was cut away is at
  least ``C·s + margin`` from the tile, so whatever edge it snaps to in the tile graph,
  its walk to a tile point is longer than ``C`` and cut off;
* paths in the tile graph are paths of the whole graph, so no distance gets shorter.

Hence every point's distance to its nearest facility (≤ ``C``, else ``inf``) equals
the untiled one, up to the order of floating-point additions along equally long paths.

Islands: :func:`tuoyu.network.snap.snap_points` skips network pieces smaller than
``min_component_nodes``, and pieces are computed on the graph it is given. A cut network
splits pieces at the halo border, so a piece that is large in the whole city can look
like an island in a tile. :func:`tiled_point_times` therefore equals the untiled answer
only with the island filter off (``min_component_nodes=0``, its default).
:func:`tiled_reach` keeps the filter exact: it labels the pieces once on the whole
network (one ``connected_components`` pass over the edge arrays, no routing graph), cuts
only the edges of large enough pieces into each tile and snaps there without a filter,
which joins every point to the nearest edge of a large enough piece, as the untiled
snapping does; which points moved off an island is decided against an index of the
island edges alone.

Whole study areas: :func:`build_tiled_model` builds a read-only
:class:`~tuoyu.workflow.core.AreaModel` (:class:`TiledAreaModel`) from tiled reach, so
``tuoyu run`` and ``tuoyu batch`` write the same tables, maps and isochrones from it
(``[run] tile_size_m`` / ``tile_above_nodes`` in the study area, ``--tile-size-m`` /
``--tile-above-nodes`` on the command line; :func:`tile_size_for` decides). Facilities
are tiled too (halo ``C·s + S + margin`` around each facility tile): their snapping and
their own reach up to the circle (for isochrones and the facility map) come from tile
graphs and are renumbered to the whole network. No process builds the whole city's
routing graph, edge index, reach state or per-node distance arrays; it still holds the
network arrays, the population points and each facility's reach (as an untiled run does),
and the isochrones and outputs are built as untiled. So tiling bounds the routing's
memory, not the run's: on a synthetic 10⁵-node city (300 facilities, 50,000 population
points, grid isochrones, no maps) the peak RSS of ``tuoyu run`` went from 843 MiB whole to
743 MiB in 4 km tiles (largest tile graph 4,816 nodes), the tables byte-identical.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Mapping
from typing import Any, NoReturn

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import shapely
from pyproj import Transformer
from scipy.sparse.csgraph import connected_components

from tuoyu.config.study_area import StudyArea
from tuoyu.crs.projection import WGS84
from tuoyu.errors import ConflictError, InputValidationError
from tuoyu.indicators.targets import Profile, load_profile
from tuoyu.isochrones.grid import area_isochrones
from tuoyu.network.edge_grid import nearest_edges
from tuoyu.network.graph import WalkGraph, _max_stretch, build_graph
from tuoyu.network.snap import DEFAULT_MAX_SNAP_M, snap_points
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.progress import SILENT, Progress
from tuoyu.reach.engine import (
    all_facility_reach,
    nearest_facility_times,
    point_times,
    reach_matrix,
)
from tuoyu.types import LocalReach, SnappedPoints
from tuoyu.workflow.core import (
    AreaModel,
    _Context,
    _file_facilities,
    _reach_mode,
    _View,
    with_snapping_notes,
)
from tuoyu.workflow.facility_records import check_record, is_puhui, records_from
from tuoyu.workflow.layers import AreaLayers, study_area_polygon
from tuoyu.workflow.provenance import file_records
from tuoyu.workflow.steps import IndicatorResults

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

HALO_MARGIN_M = 1.0
"""Extra metres on the halo, against rounding at the box border."""


@dataclasses.dataclass(frozen=True)
class TiledTimes:
    """Per-point walking distances computed tile by tile.

    Attributes
    ----------
    walk_m
        Walking metres from each population point to its nearest facility (``inf``
        beyond the cut-off or off the network), input order.
    facility
        Index (into the input facilities) of that facility, ``-1`` when none. On exact
        ties either facility may be named.
    n_tiles
        Tiles that held population points.
    halo_m
        How far each tile's network and facilities reach beyond the tile.
    max_tile_nodes
        Nodes of the largest tile graph (what one worker holds at a time).
    """

    walk_m: FloatArray
    facility: IntArray
    n_tiles: int
    halo_m: float
    max_tile_nodes: int


def tile_halo_m(
    cutoff_m: float, max_snap_m: float, max_stretch: float = 1.0, margin_m: float = HALO_MARGIN_M
) -> float:
    """The halo that makes tiled distances exact: ``cutoff·stretch + max_snap + margin``.

    Raises
    ------
    InputValidationError
        A negative or non-finite argument (an infinite stretch cannot be bounded).

    Examples
    --------
    >>> tile_halo_m(1000.0, 300.0)
    1301.0
    """
    for name, value in (
        ("cutoff_m", cutoff_m),
        ("max_snap_m", max_snap_m),
        ("max_stretch", max_stretch),
        ("margin_m", margin_m),
    ):
        if not (math.isfinite(value) and value >= 0.0):
            raise InputValidationError(
                f"{name} must be a finite number ≥ 0 to bound a tile's halo, got {value!r}",
                field=name,
            )
    return float(cutoff_m * max(max_stretch, 1.0) + max_snap_m + margin_m)


def cut_network(network: WalkNetwork, box_m: tuple[float, float, float, float]) -> WalkNetwork:
    """The segments whose bounding box meets ``box_m = (x0, y0, x1, y1)``, in order.

    Keeping every segment whose bounding box meets the box keeps every segment that
    meets it (and a few more, which only makes the cut closer to the whole). Nodes are
    renumbered; segment order is kept so that snapping ties resolve as on the whole.

    Examples
    --------
    >>> from tuoyu.synthetic import synthetic_city
    >>> net = synthetic_city(400, seed=0)
    >>> x0, y0 = float(net.node_x_m.min()), float(net.node_y_m.min())
    >>> part = cut_network(net, (x0, y0, x0 + 200.0, y0 + 200.0))
    >>> 0 < part.n_edges < net.n_edges
    True
    """
    return cut_network_indexed(network, box_m).network


@dataclasses.dataclass(frozen=True)
class NetworkCut:
    """A piece of a network and where its nodes and edges sit in the whole.

    Attributes
    ----------
    network
        The piece (nodes renumbered ``0..``, segment order kept).
    nodes
        Index in the whole network of each node of the piece (ascending, so the
        piece's node order is the whole's).
    edges
        Index in the whole network of each segment of the piece (ascending).
    """

    network: WalkNetwork
    nodes: IntArray
    edges: IntArray


def cut_network_indexed(
    network: WalkNetwork,
    box_m: tuple[float, float, float, float],
    eligible: BoolArray | None = None,
) -> NetworkCut:
    """:func:`cut_network` with the node and segment indices into the whole network.

    Parameters
    ----------
    network
        The whole network.
    box_m
        ``(x0, y0, x1, y1)`` in the network's CRS.
    eligible
        Optional mask of the segments that may be kept at all (e.g. those of network
        pieces large enough to snap to).

    Examples
    --------
    >>> from tuoyu.synthetic import synthetic_city
    >>> net = synthetic_city(400, seed=0)
    >>> x0, y0 = float(net.node_x_m.min()), float(net.node_y_m.min())
    >>> cut = cut_network_indexed(net, (x0, y0, x0 + 200.0, y0 + 200.0))
    >>> bool(np.array_equal(net.node_id[cut.nodes], cut.network.node_id))
    True
    """
    x0, y0, x1, y1 = box_m
    xu, xv = network.node_x_m[network.edge_u], network.node_x_m[network.edge_v]
    yu, yv = network.node_y_m[network.edge_u], network.node_y_m[network.edge_v]
    keep = (
        (np.minimum(xu, xv) <= x1)
        & (np.maximum(xu, xv) >= x0)
        & (np.minimum(yu, yv) <= y1)
        & (np.maximum(yu, yv) >= y0)
    )
    if eligible is not None:
        keep &= eligible
    edges = np.flatnonzero(keep).astype(np.int64)
    nodes, inverse = np.unique(
        np.concatenate([network.edge_u[edges], network.edge_v[edges]]), return_inverse=True
    )
    m = edges.shape[0]
    piece = WalkNetwork(
        node_id=network.node_id[nodes],
        node_x_m=network.node_x_m[nodes],
        node_y_m=network.node_y_m[nodes],
        edge_u=inverse[:m].astype(np.int64),
        edge_v=inverse[m:].astype(np.int64),
        edge_length_m=network.edge_length_m[edges],
        edge_way_id=network.edge_way_id[edges],
        crs=network.crs,
        source=f"{network.source} (cut to {x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f})",
        metadata={**network.metadata, "cut_from_edges": int(network.n_edges)},
    )
    return NetworkCut(piece, nodes.astype(np.int64), edges)


def _as_points(x_m: npt.ArrayLike, y_m: npt.ArrayLike, what: str) -> tuple[FloatArray, FloatArray]:
    x = np.atleast_1d(np.asarray(x_m, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y_m, dtype=np.float64))
    if x.ndim != 1 or x.shape != y.shape:
        raise InputValidationError(f"{what}: x and y must be 1-D arrays of one length", field=what)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputValidationError(
            f"{what}: point {row} has a non-finite coordinate", row=row + 1, field=what
        )
    return x, y


def tiled_point_times(
    graph: WalkGraph,
    pop_x_m: npt.ArrayLike,
    pop_y_m: npt.ArrayLike,
    fac_x_m: npt.ArrayLike,
    fac_y_m: npt.ArrayLike,
    cutoff_m: float,
    *,
    tile_m: float,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    active: npt.ArrayLike | None = None,
    min_component_nodes: int = 0,
    margin_m: float = HALO_MARGIN_M,
) -> TiledTimes:
    """Nearest-facility walking metres of every population point, tile by tile.

    Parameters
    ----------
    graph
        The whole routing graph (its network is cut per tile; its ``max_stretch`` sets
        the halo).
    pop_x_m, pop_y_m
        Population points in the graph's metric CRS.
    fac_x_m, fac_y_m
        Facilities in the graph's metric CRS (snapped per tile).
    cutoff_m
        Largest walking distance of interest (the service circle, e.g. 1,000 m).
    tile_m
        Side of the square tiles (metres).
    max_snap_m
        Snapping limit (as in :func:`~tuoyu.network.snap.snap_points`).
    active
        Optional mask of the facilities to use (e.g. 普惠 only).
    min_component_nodes
        Island filter of the snapping, applied per tile graph (see the module caveat:
        0 keeps tiled results equal to untiled ones).
    margin_m
        Extra halo metres.

    Returns
    -------
    TiledTimes

    Raises
    ------
    InputValidationError
        Bad coordinates, ``tile_m`` not > 0, an ``active`` mask of the wrong shape, or a
        graph whose stretch cannot be bounded.

    Examples
    --------
    >>> from tuoyu.synthetic import synthetic_city, random_facilities
    >>> g = build_graph(synthetic_city(2_500, seed=3))
    >>> fx, fy = random_facilities(g.network, 10, seed=4)
    >>> px, py = random_facilities(g.network, 200, seed=5)
    >>> tiled = tiled_point_times(g, px, py, fx, fy, 1000.0, tile_m=1500.0, max_snap_m=300.0)
    >>> whole = point_times(g, nearest_facility_times(
    ...     g, snap_points(g, fx, fy, 300.0, min_component_nodes=0), 1000.0),
    ...     snap_points(g, px, py, 300.0, min_component_nodes=0))[0]
    >>> tiled.n_tiles > 1, bool(np.allclose(tiled.walk_m, whole, rtol=0, atol=1e-9))
    (True, True)
    """
    px, py = _as_points(pop_x_m, pop_y_m, "population")
    fx, fy = _as_points(fac_x_m, fac_y_m, "facilities")
    if not (math.isfinite(tile_m) and tile_m > 0.0):
        raise InputValidationError(f"tile_m must be > 0, got {tile_m!r}", field="tile_m")
    act: BoolArray = np.ones(fx.shape[0], dtype=bool)
    if active is not None:
        act = np.asarray(active, dtype=bool)
        if act.shape != fx.shape:
            raise InputValidationError(
                f"active has shape {act.shape}, expected {fx.shape}", field="active"
            )
    halo = tile_halo_m(cutoff_m, max_snap_m, graph.max_stretch, margin_m)
    walk = np.full(px.shape[0], np.inf)
    nearest = np.full(px.shape[0], -1, dtype=np.int64)
    if px.shape[0] == 0:
        return TiledTimes(walk, nearest, 0, halo, 0)
    x0, y0 = float(px.min()), float(py.min())
    col = np.floor((px - x0) / tile_m).astype(np.int64)
    row = np.floor((py - y0) / tile_m).astype(np.int64)
    tile_key = row * (int(col.max()) + 1) + col
    keys, tile_of = np.unique(tile_key, return_inverse=True)
    max_nodes = 0
    for t, key in enumerate(keys):
        members = np.flatnonzero(tile_of == t)
        r, c = divmod(int(key), int(col.max()) + 1)
        bx0, by0 = x0 + c * tile_m, y0 + r * tile_m
        box = (bx0 - halo, by0 - halo, bx0 + tile_m + halo, by0 + tile_m + halo)
        part = cut_network(graph.network, box)
        max_nodes = max(max_nodes, part.n_nodes)
        inside = np.flatnonzero(
            (fx >= box[0]) & (fx <= box[2]) & (fy >= box[1]) & (fy <= box[3]) & act
        )
        if part.n_edges == 0 or inside.shape[0] == 0:
            continue  # no network or no facility near the tile: nobody reaches one
        tile_graph = build_graph(part)
        pop = snap_points(
            tile_graph,
            px[members],
            py[members],
            max_snap_m,
            min_component_nodes=min_component_nodes,
        )
        fac = snap_points(
            tile_graph, fx[inside], fy[inside], max_snap_m, min_component_nodes=min_component_nodes
        )
        reach = nearest_facility_times(tile_graph, fac, cutoff_m)
        dist, local = point_times(tile_graph, reach, pop)
        walk[members] = dist
        nearest[members] = np.where(local >= 0, inside[np.maximum(local, 0)], -1)
    return TiledTimes(walk, nearest, int(keys.shape[0]), halo, max_nodes)


# --- whole study areas ----------------------------------------------------------------------

DEFAULT_TILE_M = 5_000.0
"""Tile side when tiling is switched on by the network's node count alone."""

_READ_ONLY = (
    "a tiled run holds no routing graph of the whole area: its model answers the run's "
    "tables, maps and isochrones only; build tuoyu.workflow.core.AreaModel (untiled) for "
    "queries, changes and what-ifs"
)


@dataclasses.dataclass(frozen=True)
class TiledReach:
    """Everything a study area's results need from routing, computed tile by tile.

    Snapped points and reaches are numbered on the whole network, as an untiled run
    numbers them.

    Attributes
    ----------
    walk_m_all, walk_m_puhui
        Walking metres from each population point to the nearest facility (all / 普惠),
        ``inf`` beyond the cut-off or off the network.
    matrix
        Facility × population walking metres (+1e-9) within the cut-off, as
        :func:`tuoyu.reach.engine.reach_matrix` gives them (rows in facility order).
    population, facilities
        The snapped points (edge indices into the whole network). For off-network points
        ``access_m`` is only known to exceed the snapping limit.
    facility_reaches
        Each facility's own reach up to the cut-off (node indices into the whole network).
    n_tiles, n_facility_tiles
        Tiles holding population points / facilities.
    tile_m, halo_m
        Tile side and how far each tile's network reaches beyond it.
    max_tile_nodes
        Nodes of the largest tile graph (what one process routes on at a time).
    """

    walk_m_all: FloatArray
    walk_m_puhui: FloatArray
    matrix: sp.csr_array
    population: SnappedPoints
    facilities: SnappedPoints
    facility_reaches: tuple[LocalReach, ...]
    n_tiles: int
    n_facility_tiles: int
    tile_m: float
    halo_m: float
    max_tile_nodes: int

    def summary(self) -> dict[str, Any]:
        """The record ``summary.json`` carries under ``tiling``."""
        return {
            "tile_m": self.tile_m,
            "halo_m": round(self.halo_m, 3),
            "population_tiles": self.n_tiles,
            "facility_tiles": self.n_facility_tiles,
            "max_tile_nodes": self.max_tile_nodes,
            "note": "routed tile by tile; equal to the untiled run (tuoyu.workflow.tiles)",
        }


def eligible_edges(network: WalkNetwork, min_component_nodes: int) -> tuple[BoolArray, int]:
    """Segments of network pieces large enough to snap to, and the threshold applied.

    The same rule as :func:`tuoyu.network.snap.snap_points` on the whole network's
    graph (the threshold is capped at the largest piece; ``0``/``1`` or a network
    without segments applies none), from one ``connected_components`` pass over the
    segment arrays.

    Examples
    --------
    >>> from tuoyu.synthetic import synthetic_city
    >>> mask, applied = eligible_edges(synthetic_city(400, seed=0), 40)
    >>> applied, bool(mask.mean() > 0.9)
    (40, True)
    """
    m = network.n_edges
    if min_component_nodes <= 1 or m == 0:
        return np.ones(m, dtype=bool), 0
    n = network.n_nodes
    adjacency = sp.coo_array(
        (np.ones(m, dtype=np.float64), (network.edge_u, network.edge_v)), shape=(n, n)
    )
    _, labels = connected_components(adjacency, directed=False)
    sizes = np.bincount(labels)
    applied = int(min(int(min_component_nodes), int(sizes.max())))
    mask: BoolArray = sizes[labels[network.edge_u]] >= applied
    return mask, applied


def _tile_groups(
    x: FloatArray, y: FloatArray, tile_m: float
) -> list[tuple[IntArray, tuple[float, float, float, float]]]:
    """Points grouped by square tile (indices ascending) with each tile's box."""
    if x.shape[0] == 0:
        return []
    x0, y0 = float(x.min()), float(y.min())
    col = np.floor((x - x0) / tile_m).astype(np.int64)
    row = np.floor((y - y0) / tile_m).astype(np.int64)
    n_cols = int(col.max()) + 1
    key = row * n_cols + col
    order = np.argsort(key, kind="stable")
    sorted_keys = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    out = []
    for members, start in zip(np.split(order, starts[1:]), starts.tolist(), strict=True):
        r, c = divmod(int(sorted_keys[start]), n_cols)
        bx0, by0 = x0 + c * tile_m, y0 + r * tile_m
        out.append((members.astype(np.int64), (bx0, by0, bx0 + tile_m, by0 + tile_m)))
    return out


def _grown(
    box: tuple[float, float, float, float], by_m: float
) -> tuple[float, float, float, float]:
    return (box[0] - by_m, box[1] - by_m, box[2] + by_m, box[3] + by_m)


def _in_box(x: FloatArray, y: FloatArray, box: tuple[float, float, float, float]) -> BoolArray:
    return (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])


class _Snaps:
    """Snapped points assembled tile by tile, renumbered onto the whole network."""

    def __init__(self, x: FloatArray, y: FloatArray, max_snap_m: float, applied: int) -> None:
        k = x.shape[0]
        self.x, self.y = x, y
        self.max_snap_m = float(max_snap_m)
        self.applied = applied
        self.edge = np.full(k, -1, dtype=np.int64)
        self.fraction = np.full(k, np.nan)
        self.snap_x = np.full(k, np.nan)
        self.snap_y = np.full(k, np.nan)
        self.access = np.full(k, np.inf)
        self.moved = np.zeros(k, dtype=bool)

    def put(self, idx: IntArray, snapped: SnappedPoints, cut: NetworkCut) -> None:
        on = snapped.edge >= 0
        self.edge[idx] = np.where(on, cut.edges[np.maximum(snapped.edge, 0)], -1)
        self.fraction[idx] = snapped.fraction
        self.snap_x[idx] = snapped.snap_x_m
        self.snap_y[idx] = snapped.snap_y_m
        self.access[idx] = snapped.access_m

    def mark_moved(self, idx: IntArray, island_m: FloatArray, graph: WalkGraph | None) -> None:
        """Points whose nearest edge within the limit lies on an island (ties: not moved)."""
        near = np.flatnonzero(np.isfinite(island_m[idx]))
        if near.shape[0] == 0:
            return
        pts = idx[near]
        main_m = np.full(pts.shape[0], np.inf)
        if graph is not None and graph.network.n_edges:
            _, main_m = nearest_edges(
                graph.edge_grid, graph.network, self.x[pts], self.y[pts], np.inf
            )
        self.moved[pts] = island_m[pts] < main_m

    def result(self) -> SnappedPoints:
        return SnappedPoints(
            x_m=self.x,
            y_m=self.y,
            edge=self.edge,
            fraction=self.fraction,
            snap_x_m=self.snap_x,
            snap_y_m=self.snap_y,
            access_m=self.access,
            off_network=self.edge < 0,
            max_snap_m=self.max_snap_m,
            moved_from_island=self.moved,
            min_component_nodes=self.applied,
        )


def _island_distance(
    network: WalkNetwork, eligible: BoolArray, x: FloatArray, y: FloatArray, limit_m: float
) -> FloatArray:
    """Distance from each point to the nearest island segment within ``limit_m`` (else inf)."""
    out = np.full(x.shape[0], np.inf)
    islands = np.flatnonzero(~eligible)
    if islands.shape[0] == 0 or x.shape[0] == 0:
        return out
    u, v = network.edge_u[islands], network.edge_v[islands]
    coords = np.stack(
        [
            np.column_stack([network.node_x_m[u], network.node_y_m[u]]),
            np.column_stack([network.node_x_m[v], network.node_y_m[v]]),
        ],
        axis=1,
    )
    tree = shapely.STRtree(np.asarray(shapely.linestrings(coords), dtype=object))
    (p_idx, _), dist = tree.query_nearest(
        shapely.points(x, y), max_distance=limit_m, return_distance=True, all_matches=False
    )
    out[np.asarray(p_idx, dtype=np.int64)] = dist
    return out


def _whole_reach(reach: LocalReach, source: int, cut: NetworkCut) -> LocalReach:
    """A tile's reach renumbered onto the whole network."""
    return LocalReach(
        source=source,
        cutoff_m=reach.cutoff_m,
        node=cut.nodes[reach.node],
        dist_m=reach.dist_m,
        start_edge=int(cut.edges[reach.start_edge]) if reach.start_edge >= 0 else -1,
        start_fraction=reach.start_fraction,
        access_m=reach.access_m,
    )


def tiled_reach(
    network: WalkNetwork,
    pop_x_m: npt.ArrayLike,
    pop_y_m: npt.ArrayLike,
    fac_x_m: npt.ArrayLike,
    fac_y_m: npt.ArrayLike,
    cutoff_m: float,
    *,
    tile_m: float,
    puhui: npt.ArrayLike | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    min_component_nodes: int = 0,
    margin_m: float = HALO_MARGIN_M,
    progress: Progress = SILENT,
) -> TiledReach:
    """The routing of a study area, tile by tile, equal to the untiled routing.

    What :class:`~tuoyu.workflow.core.AreaModel` computes on the whole graph (population
    and facility snapping with the island filter, nearest-facility distances of all and
    of 普惠 facilities, the facility × population reach matrix and each facility's own
    reach), computed on tile graphs only (see the module docstring for why it is exact).

    Parameters
    ----------
    network
        The whole walking network (metric CRS); no graph of it is built.
    pop_x_m, pop_y_m, fac_x_m, fac_y_m
        Population points and facilities in the network's CRS.
    cutoff_m
        The service-circle walking distance.
    tile_m
        Side of the square tiles (metres).
    puhui
        Mask of the 普惠 facilities (default none).
    max_snap_m, min_component_nodes
        Snapping limit and island filter, as :func:`tuoyu.network.snap.snap_points`.
    margin_m
        Extra halo metres.
    progress
        Reporter of the tile counts.

    Returns
    -------
    TiledReach

    Raises
    ------
    InputValidationError
        Bad coordinates, ``tile_m`` not > 0, a ``puhui`` mask of the wrong shape.

    Examples
    --------
    >>> from tuoyu.synthetic import synthetic_city, random_facilities
    >>> net = synthetic_city(2_500, seed=3)
    >>> fx, fy = random_facilities(net, 10, seed=4)
    >>> px, py = random_facilities(net, 200, seed=5)
    >>> t = tiled_reach(net, px, py, fx, fy, 1000.0, tile_m=1500.0, max_snap_m=300.0)
    >>> g = build_graph(net)
    >>> fac = snap_points(g, fx, fy, 300.0, min_component_nodes=0)
    >>> pop = snap_points(g, px, py, 300.0, min_component_nodes=0)
    >>> whole = point_times(g, nearest_facility_times(g, fac, 1000.0), pop)[0]
    >>> t.n_tiles > 1, bool(np.allclose(t.walk_m_all, whole, rtol=0, atol=1e-9))
    (True, True)
    """
    px, py = _as_points(pop_x_m, pop_y_m, "population")
    fx, fy = _as_points(fac_x_m, fac_y_m, "facilities")
    if not (math.isfinite(tile_m) and tile_m > 0.0):
        raise InputValidationError(f"tile_m must be > 0, got {tile_m!r}", field="tile_m")
    is_puhui_fac: BoolArray = np.zeros(fx.shape[0], dtype=bool)
    if puhui is not None:
        is_puhui_fac = np.asarray(puhui, dtype=bool)
        if is_puhui_fac.shape != fx.shape:
            raise InputValidationError(
                f"puhui has shape {is_puhui_fac.shape}, expected {fx.shape}", field="puhui"
            )
    cutoff = float(cutoff_m)
    halo = tile_halo_m(cutoff, max_snap_m, _max_stretch_of(network), margin_m)
    eligible, applied = eligible_edges(network, min_component_nodes)
    n_pop, n_fac = px.shape[0], fx.shape[0]
    pop_island_m = _island_distance(network, eligible, px, py, max_snap_m)
    fac_island_m = _island_distance(network, eligible, fx, fy, max_snap_m)
    max_nodes = 0

    # Facilities: their snapping and their own reach, from the tile they lie in.
    fac_snaps = _Snaps(fx, fy, max_snap_m, applied)
    reaches: list[LocalReach] = [
        LocalReach(i, cutoff, np.empty(0, np.int64), np.empty(0), -1, math.nan, math.inf)
        for i in range(n_fac)
    ]
    fac_tiles = _tile_groups(fx, fy, tile_m)
    for members, box in fac_tiles:
        cut = cut_network_indexed(network, _grown(box, halo), eligible)
        graph = build_graph(cut.network) if cut.network.n_edges else None
        if graph is not None:
            snapped = snap_points(
                graph, fx[members], fy[members], max_snap_m, min_component_nodes=0
            )
            fac_snaps.put(members, snapped, cut)
            for reach in all_facility_reach(graph, snapped, cutoff):
                reaches[int(members[reach.source])] = _whole_reach(
                    reach, int(members[reach.source]), cut
                )
            max_nodes = max(max_nodes, graph.n_nodes)
        fac_snaps.mark_moved(members, fac_island_m, graph)

    # Population: nearest-facility distances and the reach matrix, tile by tile.
    pop_snaps = _Snaps(px, py, max_snap_m, applied)
    walk_all = np.full(n_pop, np.inf)
    walk_puhui = np.full(n_pop, np.inf)
    rows: list[IntArray] = []
    cols: list[IntArray] = []
    vals: list[FloatArray] = []
    pop_tiles = _tile_groups(px, py, tile_m)
    for members, box in pop_tiles:
        grown = _grown(box, halo)
        cut = cut_network_indexed(network, grown, eligible)
        if cut.network.n_edges == 0:
            pop_snaps.mark_moved(members, pop_island_m, None)
            continue  # no walkable edge within the halo: every point is off-network
        graph = build_graph(cut.network)
        max_nodes = max(max_nodes, graph.n_nodes)
        pop = snap_points(graph, px[members], py[members], max_snap_m, min_component_nodes=0)
        pop_snaps.put(members, pop, cut)
        pop_snaps.mark_moved(members, pop_island_m, graph)
        inside = np.flatnonzero(_in_box(fx, fy, grown))
        if inside.shape[0] == 0:
            continue  # no facility near the tile: nobody here reaches one
        fac = snap_points(graph, fx[inside], fy[inside], max_snap_m, min_component_nodes=0)
        walk_all[members] = point_times(graph, nearest_facility_times(graph, fac, cutoff), pop)[0]
        active = is_puhui_fac[inside]
        if active.any():
            reach_p = nearest_facility_times(graph, fac, cutoff, active=active)
            walk_puhui[members] = point_times(graph, reach_p, pop)[0]
        block = reach_matrix(graph, fac, pop, cutoff).tocoo()
        rows.append(inside[np.asarray(block.row, dtype=np.int64)])
        cols.append(members[np.asarray(block.col, dtype=np.int64)])
        vals.append(np.asarray(block.data, dtype=np.float64))
    row = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.empty(0, dtype=np.int64)
    data = np.concatenate(vals) if vals else np.empty(0, dtype=np.float64)
    order = np.lexsort((col, row))
    indptr = np.zeros(n_fac + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_fac), out=indptr[1:])
    matrix = sp.csr_array((data[order], col[order], indptr), shape=(n_fac, n_pop))
    progress.info(
        f"  routed in {len(pop_tiles)} population tiles and {len(fac_tiles)} facility tiles "
        f"of {tile_m:,.0f} m with a {halo:,.0f} m halo (largest tile graph {max_nodes:,} of "
        f"{network.n_nodes:,} nodes)"
    )
    return TiledReach(
        walk_m_all=walk_all,
        walk_m_puhui=walk_puhui,
        matrix=matrix,
        population=pop_snaps.result(),
        facilities=fac_snaps.result(),
        facility_reaches=tuple(reaches),
        n_tiles=len(pop_tiles),
        n_facility_tiles=len(fac_tiles),
        tile_m=float(tile_m),
        halo_m=halo,
        max_tile_nodes=max_nodes,
    )


def _max_stretch_of(network: WalkNetwork) -> float:
    """``max_stretch`` of the graph :func:`build_graph` would build (no graph built)."""
    return _max_stretch(
        network,
        np.asarray(network.edge_u, dtype=np.int64),
        np.asarray(network.edge_v, dtype=np.int64),
        np.asarray(network.edge_length_m, dtype=np.float64),
    )


# --- the tiled model of a study area ---------------------------------------------------------


def tile_size_for(
    area: StudyArea,
    n_nodes: int,
    *,
    tile_size_m: float | None = None,
    tile_above_nodes: int | None = None,
) -> float | None:
    """The tile side to route ``area`` with, or ``None`` to route it in one piece.

    Arguments (the command line) win over the study area's ``[run]`` section, each on
    its own. ``tile_above_nodes`` tiles only networks with more nodes than that, in
    tiles of ``tile_size_m`` (default :data:`DEFAULT_TILE_M`); ``tile_size_m`` alone
    always tiles; ``tile_size_m = 0`` never does.

    Raises
    ------
    InputValidationError
        A negative or non-finite ``tile_size_m`` or a ``tile_above_nodes`` below 1.

    Examples
    --------
    >>> from tuoyu.config.study_area import StudyArea
    >>> area = StudyArea.model_validate(
    ...     {"area": {"name": "x", "code": "1", "target_profile": "p"},
    ...      "run": {"tile_above_nodes": 1000}})
    >>> tile_size_for(area, 500), tile_size_for(area, 5000)
    (None, 5000.0)
    >>> tile_size_for(area, 5000, tile_size_m=0.0), tile_size_for(area, 50, tile_size_m=800.0,
    ...                                                            tile_above_nodes=10)
    (None, 800.0)
    """
    check_tiling(tile_size_m, tile_above_nodes)
    size = tile_size_m if tile_size_m is not None else area.run.tile_size_m
    if size is not None and size == 0.0:
        return None
    above = tile_above_nodes if tile_above_nodes is not None else area.run.tile_above_nodes
    if above is not None:
        return float(size or DEFAULT_TILE_M) if n_nodes > above else None
    return float(size) if size is not None else None


def check_tiling(tile_size_m: float | None, tile_above_nodes: int | None) -> None:
    """Refuse tiling arguments that cannot be used (before any work)."""
    if tile_size_m is not None and not (
        isinstance(tile_size_m, int | float)
        and not isinstance(tile_size_m, bool)
        and math.isfinite(tile_size_m)
        and tile_size_m >= 0.0
    ):
        raise InputValidationError(
            f"tile_size_m must be ≥ 0 metres (0: never tile), got {tile_size_m!r}",
            field="tile_size_m",
        )
    if tile_above_nodes is not None and (
        isinstance(tile_above_nodes, bool)
        or not isinstance(tile_above_nodes, int)
        or tile_above_nodes < 1
    ):
        raise InputValidationError(
            f"tile_above_nodes must be an integer ≥ 1, got {tile_above_nodes!r}",
            field="tile_above_nodes",
        )


@dataclasses.dataclass
class _TiledView(_View):
    """A model view whose reach came from tiles: isochrones drawn on the whole network."""

    tiling: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def facility_reaches(self) -> list[LocalReach] | None:
        """Each facility's reach up to the circle (computed with the tiles)."""
        if self.points is None or not self.ids:
            return None
        return self._reaches

    def isochrones(self) -> gpd.GeoDataFrame | None:
        """The isochrones of every facility, from their tiled reaches (once)."""
        reaches = self.facility_reaches()
        if reaches is None:
            return None
        with self.lock:
            if self._isochrones is None:
                network = self.ctx.layers.network
                assert network is not None  # a tiled model has a network (invariant)
                self._isochrones = area_isochrones(
                    network,
                    reaches,
                    self.ids,
                    self.ctx.layers.area.walk,
                    points=self.current_points(),
                )
            return self._isochrones

    def results(self) -> IndicatorResults:
        """The results of the untiled run, with the tiling recorded in the summary."""
        with self.lock:
            if self._results is None:
                results = super().results()
                summary = dict(results.summary)
                summary["tiling"] = dict(self.tiling)
                self._results = dataclasses.replace(results, summary=summary)
            return self._results


class TiledAreaModel(AreaModel):
    """The model of a study area routed tile by tile (read-only; see :func:`build_tiled_model`).

    Its results, reach, isochrones and maps equal those of the untiled
    :class:`~tuoyu.workflow.core.AreaModel`; it keeps no routing graph of the whole
    area, so point queries, facility changes, what-ifs and siting are refused.
    """

    def __init__(self, ctx: _Context, view: _TiledView) -> None:
        # Not AreaModel.__init__: there is no incremental facility set to snapshot.
        self._ctx = ctx
        self._write_lock = threading.RLock()
        self._version = 0
        self._view = view
        self._isochrone_builder = None
        self._builder_lock = threading.Lock()

    @property
    def tiling(self) -> Mapping[str, Any]:
        """Tile side, halo and tile counts of the routing."""
        view = self._view
        assert isinstance(view, _TiledView)  # set by __init__ (invariant)
        return dict(view.tiling)

    def _apply(self, change: Any) -> int:
        raise InputValidationError(_READ_ONLY)

    def scenario(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: see the class docstring."""
        raise InputValidationError(_READ_ONLY)

    def nearest(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: see the class docstring."""
        raise InputValidationError(_READ_ONLY)

    def facility_isochrone(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: see the class docstring."""
        raise InputValidationError(_READ_ONLY)

    def point_isochrones(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: see the class docstring."""
        raise InputValidationError(_READ_ONLY)

    def recommend_sites(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: see the class docstring."""
        raise InputValidationError(_READ_ONLY)

    def __repr__(self) -> str:
        return (
            f"TiledAreaModel({self.area.slug!r}, {len(self._view.ids)} facilities, "
            f"tiles of {self.tiling.get('tile_m')} m)"
        )


def build_tiled_model(
    layers: AreaLayers,
    profile: Profile | None = None,
    *,
    tile_m: float,
    progress: Progress = SILENT,
    margin_m: float = HALO_MARGIN_M,
) -> TiledAreaModel:
    """The model of a study area with its routing done tile by tile.

    The same steps, notes and warnings as :meth:`AreaModel.from_layers` with the
    area's facility file, so the results, their summary (plus a ``tiling`` record)
    and every file written from them equal the untiled run's.

    Raises
    ------
    InputValidationError
        The area has no walking network or no population points (nothing to tile), or
        ``tile_m`` is not > 0.
    ConflictError
        Two facilities share an id.
    """
    area = layers.area
    settings = layers.settings
    if profile is None:
        profile = load_profile(area.area.target_profile, settings.project_data_dir)
    if _reach_mode(layers) != "network" or layers.network is None or layers.population is None:
        raise InputValidationError(
            f"{area.source_path}: tiling needs a walking network and population points",
            field="tile_size_m",
        )
    network = layers.network
    walk = area.walk
    cutoff = walk.metres_for(walk.max_minutes)
    polygon = study_area_polygon(layers)
    if polygon is not None:
        shapely.prepare(polygon)
    section = area.network
    ctx = _Context(
        layers=layers,
        profile=profile,
        mode="network",
        graph=None,
        population_snapped=None,
        cutoff_m=cutoff,
        max_snap_m=walk.max_snap_m,
        min_component_nodes=walk.min_component_nodes,
        to_metric=Transformer.from_crs(WGS84, layers.metric_crs, always_xy=True),
        to_wgs84=Transformer.from_crs(layers.metric_crs, WGS84, always_xy=True),
        polygon_m=polygon,
        detour_factor=section.detour_factor if section is not None else None,
        facility_source="file",
        data_sources=tuple(file_records(layers.files, settings)),
    )
    records: dict[str, dict[str, Any]] = {}
    xy: list[tuple[float, float]] = []
    for record in records_from(_file_facilities(layers)):
        fid, lon, lat = check_record(record)
        if fid in records:
            raise ConflictError(f"duplicate facility id '{fid}'")
        records[fid] = dict(record)
        xy.append(ctx.project(lon, lat))
    ids = list(records)
    fac_xy = np.array(xy, dtype=float).reshape(-1, 2)
    pop = layers.population.geometry
    with progress.step(f"tiled routing and snapping (tiles of {tile_m:,.0f} m)"):
        reach = tiled_reach(
            network,
            pop.x.to_numpy(dtype=float),
            pop.y.to_numpy(dtype=float),
            fac_xy[:, 0],
            fac_xy[:, 1],
            cutoff,
            tile_m=tile_m,
            puhui=np.array([is_puhui(records[i]) for i in ids], dtype=bool),
            max_snap_m=walk.max_snap_m,
            min_component_nodes=walk.min_component_nodes,
            margin_m=margin_m,
            progress=progress,
        )
    pop_snap = reach.population
    # The same lines and warnings as AreaModel.from_layers (the summaries must be equal).
    layers = with_snapping_notes(layers, pop_snap, progress)
    ctx = dataclasses.replace(ctx, layers=layers, population_snapped=pop_snap)
    view = _TiledView(
        version=0,
        ctx=ctx,
        ids=ids,
        records=records,
        xy_m=fac_xy,
        revision={fid: k + 1 for k, fid in enumerate(ids)},
        points=reach.facilities,
        active=~reach.facilities.off_network,
        slot_ids=list(ids),
        slot_of={fid: k for k, fid in enumerate(ids)},
        walk_m_all=reach.walk_m_all,
        walk_m_puhui=reach.walk_m_puhui,
        matrix=reach.matrix,
        tiling=reach.summary(),
    )
    view._reaches = list(reach.facility_reaches)
    return TiledAreaModel(ctx, view)


def area_model(
    layers: AreaLayers,
    profile: Profile | None = None,
    *,
    tile_size_m: float | None = None,
    tile_above_nodes: int | None = None,
    progress: Progress = SILENT,
) -> AreaModel:
    """The model of a study area, tiled when :func:`tile_size_for` says so.

    An area asked to tile that cannot be (no walking network, straight-line mode, no
    population points) is built untiled, and the reason printed.
    """
    network = layers.network
    tile_m = tile_size_for(
        layers.area,
        network.n_nodes if network is not None else 0,
        tile_size_m=tile_size_m,
        tile_above_nodes=tile_above_nodes,
    )
    if tile_m is not None:
        if _reach_mode(layers) == "network" and layers.population is not None:
            return build_tiled_model(layers, profile, tile_m=tile_m, progress=progress)
        progress.info(
            "  tiling not applied: it needs a walking network and population points; "
            "routing in one piece"
        )
    return AreaModel.from_layers(layers, profile, progress=progress)
