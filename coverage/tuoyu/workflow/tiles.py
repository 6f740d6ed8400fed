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

Caveat, islands: :func:`tuoyu.network.snap.snap_points` skips network pieces smaller
than ``min_component_nodes``, and pieces are computed on the graph it is given. A cut
network splits pieces at the halo border, so a piece that is large in the whole city can
look like an island in a tile (and the other way round). Tiled results equal untiled
ones only with the island filter off (``min_component_nodes=0``, the default here) in
both; to keep the filter, compute the component sizes on the whole graph first.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

from tuoyu.errors import InputValidationError
from tuoyu.network.graph import WalkGraph, build_graph
from tuoyu.network.snap import DEFAULT_MAX_SNAP_M, snap_points
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.reach.engine import nearest_facility_times, point_times

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
    x0, y0, x1, y1 = box_m
    xu, xv = network.node_x_m[network.edge_u], network.node_x_m[network.edge_v]
    yu, yv = network.node_y_m[network.edge_u], network.node_y_m[network.edge_v]
    keep = (
        (np.minimum(xu, xv) <= x1)
        & (np.maximum(xu, xv) >= x0)
        & (np.minimum(yu, yv) <= y1)
        & (np.maximum(yu, yv) >= y0)
    )
    edges = np.flatnonzero(keep)
    nodes, inverse = np.unique(
        np.concatenate([network.edge_u[edges], network.edge_v[edges]]), return_inverse=True
    )
    m = edges.shape[0]
    return WalkNetwork(
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
