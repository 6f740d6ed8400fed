"""Walk-field isochrones: the drawn area is the area the search answers for.

The edge-buffer polygon of :mod:`tuoyu.isochrones.exact` (reached edges buffered by
``buffer_m``) is what GUIDE §3 draws, but it is not what the coverage figures and the
``/nearest`` search count: those join a point to the nearest point of its *nearest*
eligible way and add the straight access leg (GUIDE §3, *Snapping*). Inside an
edge-buffer polygon a point may be nearest to a parallel way that the walk has not
reached, or lie 25 m beyond the frontier of a way reached at exactly 15 minutes; on
Yuzhong about one random point in six inside a drawn 15-minute polygon was not given
that facility by the search.

This module draws instead, for a facility and a budget ``T``::

    { p : p is within buffer_m of a way, and the walk from p (straight to the nearest
          point of its nearest eligible way, then along the network) is ≤ T }

traced *conservatively* on a lattice of ``cell_m`` spacing: every point of the drawn
polygon does reach the facility within ``T`` by the search's own rule (proof in
:mod:`tuoyu.isochrones._field_kernels`). Inside a lattice square, marching squares
draws the polygon of the corners that passed and of the crossings on its sides (linear
interpolation), so every drawn point lies within ``cell_m·√5/2`` of a corner that
passed: the farthest case is the middle of the far side when two adjacent corners pass
(one corner: a triangle with legs ≤ ``cell_m``; three or four, or two opposite: nearer
still). The traced rings are then simplified by ``cell_m`` (Douglas–Peucker moves a
boundary by no more than its tolerance). So each lattice point is tested for the whole
disc of radius ``rho = cell_m·(√5/2 + 1)`` (plus 0.25 m against rounding) around it.
What is lost to that margin: a band of about ``2·rho`` metres of walking at the frontier
(22 m of 1,000 m with the default 5 m lattice; measured on Dongcheng, 7 % less area
than a 2.5 m lattice, at less than half the time) and about ``rho`` along the lines
where the nearest way changes from a reached to an
unreached one. The 25 m band along the ways is traced where the distance crosses it
(linear interpolation), so straight sides stay in place. Coverage numbers never come
from these polygons; they come from the points' walking times
(:mod:`tuoyu.reach.engine`), by the same rule.

The first call in a new environment compiles the kernel (numba caches it beside the
module).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, cast

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon

from tuoyu.errors import InputValidationError
from tuoyu.isochrones.exact import (
    METHOD_WALK_FIELD,
    Isochrone,
    IsochroneBuilder,
    _check_buffer,
    _check_reach,
    _check_table_inputs,
    _check_thresholds,
    _empty_polygon,
    _frame,
    _rows,
    minutes_to_m,
)
from tuoyu.network.graph import WalkGraph
from tuoyu.progress import SILENT, Progress
from tuoyu.types import LocalReach

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_FIELD_CELL_M: Final = 5.0
"""Default lattice spacing (metres): the drawn polygon stays within about 25 m of walking
of the exact region at its frontier; a 15-minute polygon with its 5- and 10-minute
rings takes a few milliseconds (2,000 facilities of a 10⁶-node city: about 12 CPU-s)."""

SIMPLIFY_PER_CELL: Final = 1.0
"""The traced polygons are simplified by this share of the lattice spacing (Douglas–Peucker:
the lattice cannot place a boundary closer than that anyway) and stay inside the
searched area, since the proof radius is widened by it. They are final: maps must not
simplify them again (``attrs["display_tolerance_m"]`` is 0)."""


def margin_m(cell_m: float) -> float:
    """The proof radius ``rho`` (metres) of a lattice: every drawn point is within it of a
    lattice point whose bound holds for the whole disc (see the module docstring).

    Examples
    --------
    >>> round(margin_m(5.0), 2)
    10.84
    """
    return float(cell_m) * (float(np.sqrt(5.0)) / 2.0 + SIMPLIFY_PER_CELL) + _RHO_PAD_M


_MIN_SOURCES_PER_THREAD: Final = 8
"""Fewer sources than this per thread are not worth a thread."""

_RHO_PAD_M: Final = 0.25
"""Added to ``rho`` against rounding: the search and the field sum in different orders,
and copies for display are rounded to 10⁻⁶° (≤ 0.08 m)."""


@dataclass(frozen=True)
class WalkFieldIndex:
    """What the walk-field kernel needs from one graph, prepared once and reused.

    Attributes
    ----------
    graph
        The routing graph.
    min_component_nodes
        The snapping rule's island threshold as applied
        (:meth:`~tuoyu.network.graph.WalkGraph.effective_min_component_nodes`).
    eligible
        Per edge, 1 where points may snap to it.
    builder
        The network's node → incident-edge index.
    b_ptr, b_edges, b_origin, b_shape, b_size
        The graph's edge buckets (:attr:`~tuoyu.network.graph.WalkGraph.edge_grid`).
    """

    graph: WalkGraph
    min_component_nodes: int
    eligible: npt.NDArray[np.uint8]
    builder: IsochroneBuilder
    b_ptr: IntArray
    b_edges: IntArray
    b_origin: tuple[float, float]
    b_shape: tuple[int, int]
    b_size: float

    @classmethod
    def build(
        cls, graph: WalkGraph, min_component_nodes: int, builder: IsochroneBuilder | None = None
    ) -> WalkFieldIndex:
        """Index ``graph`` for points snapped with ``min_component_nodes`` (as the search)."""
        net = graph.network
        applied = graph.effective_min_component_nodes(min_component_nodes)
        if min_component_nodes > 1 and net.n_edges:
            eligible = graph.main_edges(applied).astype(np.uint8)
        else:
            eligible = np.ones(net.n_edges, dtype=np.uint8)
        if builder is None or builder.network is not net:
            builder = IsochroneBuilder(net)
        grid = graph.edge_grid  # shared with snapping
        return cls(
            graph=graph,
            min_component_nodes=applied,
            eligible=eligible,
            builder=builder,
            b_ptr=grid.ptr,
            b_edges=grid.edges,
            b_origin=grid.origin,
            b_shape=grid.shape,
            b_size=grid.size_m,
        )


def _check_cell(cell_m: float, buffer_m: float) -> float:
    c = float(cell_m)
    if not np.isfinite(c) or c <= 0.0 or c > buffer_m:
        raise InputValidationError(
            f"cell_m must be a positive number of metres no larger than buffer_m "
            f"({buffer_m:g} m), got {cell_m!r}",
            field="cell_m",
        )
    return c


def walk_field_polygons(
    index: WalkFieldIndex,
    reaches: Sequence[LocalReach],
    thresholds_m: Sequence[float] | FloatArray,
    buffer_m: float = 25.0,
    cell_m: float = DEFAULT_FIELD_CELL_M,
    *,
    workers: int | None = None,
    progress: Progress = SILENT,
) -> list[list[Isochrone]]:
    """Walk-field isochrone polygons (see the module docstring) of known reaches.

    Parameters
    ----------
    index
        The graph's prepared index (:meth:`WalkFieldIndex.build`, with the snapping
        rule's ``min_component_nodes``).
    reaches
        Per source, its local reach on ``index.graph`` with cut-off at least the
        largest threshold (e.g. :func:`tuoyu.reach.engine.facility_reach`).
    thresholds_m
        Walking budgets in metres.
    buffer_m
        Only points within this distance of a way are drawn.
    cell_m
        Lattice spacing in metres (≤ ``buffer_m``).
    workers
        Threads (default: one per CPU core; the kernel runs without the GIL). The
        result does not depend on it.
    progress
        Told once per source.

    Returns
    -------
    list of list of Polygon or MultiPolygon
        ``out[i][k]`` for reach ``i`` and threshold ``k``, in the network's CRS; empty
        for an off-network source.

    Examples
    --------
    >>> from pyproj import CRS
    >>> from tuoyu.network.graph import build_graph
    >>> from tuoyu.network.walk_network import WalkNetwork
    >>> net = WalkNetwork(np.arange(2), np.array([0.0, 100.0]), np.zeros(2),
    ...     np.array([0]), np.array([1]), np.array([100.0]), np.array([-1]),
    ...     CRS.from_epsg(32648))
    >>> idx = WalkFieldIndex.build(build_graph(net), 40)
    >>> reach = LocalReach(0, 200.0, np.array([0, 1]), np.array([0.0, 100.0]), 0, 0.0, 0.0)
    >>> (poly,), = walk_field_polygons(idx, [reach], [200.0], 10.0, cell_m=1.0)
    >>> 105.0 < poly.bounds[2] < 110.0, poly.contains(shapely.Point(50.0, 5.0))
    (True, True)
    """
    from tuoyu.isochrones._field_kernels import walk_field_kernel

    _check_buffer(buffer_m, 8)
    cell = _check_cell(cell_m, buffer_m)
    graph = index.graph
    net = graph.network
    t = _check_thresholds(thresholds_m, min((r.cutoff_m for r in reaches), default=np.inf))
    for r in reaches:
        _check_reach(net, r)
    ox = float(np.floor(float(np.min(net.node_x_m)) / cell) * cell) if net.n_nodes else 0.0
    oy = float(np.floor(float(np.min(net.node_y_m)) / cell) * cell) if net.n_nodes else 0.0
    rho = margin_m(cell)
    node_x = np.asarray(net.node_x_m, dtype=np.float64)
    node_y = np.asarray(net.node_y_m, dtype=np.float64)
    edge_u = np.asarray(net.edge_u, dtype=np.int64)
    edge_v = np.asarray(net.edge_v, dtype=np.int64)
    b = index.builder
    n_src = len(reaches)
    n_t = t.shape[0]
    out: list[list[Isochrone]] = [[] for _ in range(n_src)]
    done = [0]
    lock = threading.Lock()

    def run(chunk: range) -> None:
        # Scratch per thread: one node-sized and one edge-sized array, and the lattice
        # fields, all reused (they grow to the largest window seen).
        node_dist = np.full(net.n_nodes, np.inf)
        stamp = np.zeros(net.n_edges, dtype=np.int64)
        scratch = _LatticeScratch()
        for pos, i in enumerate(chunk, start=1):
            r = reaches[i]
            if r.start_edge < 0:
                out[i] = [_empty_polygon() for _ in range(n_t)]
            else:
                dmin, upper, i0, j0 = walk_field_kernel(
                    np.asarray(r.node, dtype=np.int64),
                    np.asarray(r.dist_m, dtype=np.float64),
                    int(r.start_edge),
                    float(r.start_fraction) * float(b._length_m[r.start_edge]),
                    float(r.access_m),
                    float(t.max()),
                    node_x,
                    node_y,
                    edge_u,
                    edge_v,
                    b._length_m,
                    b._inc_ptr,
                    b._inc_edges,
                    index.eligible,
                    index.b_ptr,
                    index.b_edges,
                    index.b_origin[0],
                    index.b_origin[1],
                    index.b_size,
                    index.b_shape[0],
                    index.b_shape[1],
                    float(buffer_m),
                    rho,
                    cell,
                    ox,
                    oy,
                    node_dist,
                    stamp,
                    pos,
                    scratch.dmin,
                    scratch.upper,
                )
                scratch.keep_fields(dmin, upper)
                out[i] = _trace_all(dmin, upper, i0, j0, t, float(buffer_m), cell, ox, oy, scratch)
            with lock:
                done[0] += 1
                progress.advance(done[0], n_src, "facilities")

    n_threads = max(1, min(_workers(workers), n_src // _MIN_SOURCES_PER_THREAD))
    label = (
        f"isochrones (walk field, {cell:g} m lattice, drawn frontier ≤ {2 * rho:.0f} m of walking "
        f"inside the exact one): {n_src} facilities × {n_t} thresholds"
    )
    with progress.step(label):
        if n_threads == 1:
            run(range(n_src))
        else:
            # The kernel releases the GIL: facilities interleaved over the threads.
            with ThreadPoolExecutor(n_threads) as pool:
                list(pool.map(run, [range(k, n_src, n_threads) for k in range(n_threads)]))
    return out


class _LatticeScratch:
    """One thread's reusable lattice arrays (grown to the largest window seen).

    Fresh arrays of a few megabytes per facility cost page faults comparable to the
    kernel's first sweep; these are filled before use, so reuse changes no result.
    """

    def __init__(self) -> None:
        self.dmin = np.empty(0)
        self.upper = np.empty(0)
        self.slot = np.empty(0, dtype=np.int32)
        self.ex_next = np.empty(0, dtype=np.int64)
        self.ex_xy = np.empty((0, 2))
        self.psi = np.empty(0)
        self.sign = np.empty(0, dtype=np.uint8)

    def keep_fields(self, dmin: FloatArray, upper: FloatArray) -> None:
        """Keep the kernel's fields as the next call's scratch when they are larger."""
        if dmin.size > self.dmin.size:
            self.dmin = dmin.reshape(-1)
            self.upper = upper.reshape(-1)

    def tracer(self, n: int) -> None:
        """Make the tracer's arrays hold a window of ``n`` lattice points."""
        if self.psi.size < n:
            self.slot = np.empty(2 * n, dtype=np.int32)
            self.ex_next = np.empty(2 * n, dtype=np.int64)
            self.ex_xy = np.empty((2 * n, 2))
            self.psi = np.empty(n)
            self.sign = np.empty(n, dtype=np.uint8)


def _trace_all(
    dmin: FloatArray,
    upper: FloatArray,
    i0: int,
    j0: int,
    thresholds_m: FloatArray,
    buffer_m: float,
    cell_m: float,
    ox: float,
    oy: float,
    scratch: _LatticeScratch | None = None,
) -> list[Isochrone]:
    """One polygon per threshold from the kernel's field (marching squares)."""
    from tuoyu.isochrones._field_kernels import field_sign
    from tuoyu.isochrones._grid_kernels import _trace

    ny, nx = dmin.shape
    sc = _LatticeScratch() if scratch is None else scratch
    sc.tracer(nx * ny)
    slot, ex_next, ex_xy, sign = sc.slot, sc.ex_next, sc.ex_xy, sc.sign
    psi = sc.psi[: nx * ny].reshape((ny, nx))
    polys: list[Isochrone] = []
    for budget in thresholds_m.tolist():
        if field_sign(dmin, upper, budget, buffer_m, psi, sign) == 0:
            polys.append(_empty_polygon())
            continue
        xy, ring_ptr, poly_of, n_shell = _trace(
            psi, i0, j0, cell_m, ox, oy, slot, ex_next, ex_xy, sign
        )
        polys.append(_polygon(xy, ring_ptr, poly_of, int(n_shell)))
    raw = np.asarray(polys, dtype=object)
    # Plain Douglas–Peucker, then the topology-keeping variant only where the plain one
    # broke a ring (measured: 4× less CPU than the topology-keeping variant for all).
    tolerance_m = cell_m * SIMPLIFY_PER_CELL
    simple = shapely.simplify(raw, tolerance_m, preserve_topology=False)
    broken = ~shapely.is_valid(simple)
    if broken.any():
        simple[broken] = shapely.simplify(raw[broken], tolerance_m, preserve_topology=True)
    return [cast(Isochrone, g) for g in simple]


def _workers(workers: int | None) -> int:
    if workers is None:
        return max(1, os.cpu_count() or 1)
    if int(workers) < 1:
        raise InputValidationError(f"workers must be at least 1, got {workers!r}", field="workers")
    return int(workers)


def _polygon(xy: FloatArray, ring_ptr: IntArray, poly_of: IntArray, n_shell: int) -> Isochrone:
    """One (multi)polygon from the tracer's flat rings."""
    if poly_of.shape[0] == 0:
        return _empty_polygon()
    poly_ptr = np.zeros(n_shell + 1, dtype=np.int64)
    np.cumsum(np.bincount(poly_of, minlength=n_shell), out=poly_ptr[1:])
    polys = shapely.from_ragged_array(shapely.GeometryType.POLYGON, xy, (ring_ptr, poly_ptr))
    if n_shell == 1:
        geom: Isochrone = polys[0]
        return geom
    return MultiPolygon(list(polys))


def walk_field_isochrones(
    index: WalkFieldIndex,
    reaches: Sequence[LocalReach],
    facility_ids: Sequence[object],
    minutes: Sequence[float],
    speed_kmh: float,
    buffer_m: float = 25.0,
    cell_m: float | None = None,
    *,
    progress: Progress = SILENT,
) -> gpd.GeoDataFrame:
    """Walk-field isochrones of many facilities (one row per facility × minutes).

    Same columns as :func:`tuoyu.isochrones.exact.facility_isochrones`, ``method`` =
    ``"walk_field"``; ``attrs`` also records ``cell_m``, ``simplified_m`` and
    ``display_tolerance_m`` = 0 (maps must not simplify them further).

    Examples
    --------
    >>> from tuoyu.network.graph import build_graph
    >>> from tuoyu.reach.engine import facility_reach
    >>> from tuoyu.network.snap import snap_points
    >>> from tuoyu.synthetic import synthetic_city
    >>> g = build_graph(synthetic_city(400, seed=0))
    >>> fac = snap_points(g, g.network.node_x_m[:1], g.network.node_y_m[:1])
    >>> gdf = walk_field_isochrones(WalkFieldIndex.build(g, 40),
    ...     [facility_reach(g, fac, 0, 1000.0)], ["托育点A"], [5, 15], 4.0)
    >>> gdf["method"].unique().tolist(), bool(gdf.area.is_monotonic_increasing)
    (['walk_field'], True)
    """
    _check_table_inputs(reaches, facility_ids)
    cell = DEFAULT_FIELD_CELL_M if cell_m is None else float(cell_m)
    t_m = minutes_to_m(minutes, speed_kmh)
    mins = np.asarray(minutes, dtype=np.float64).reshape(-1)
    polygons = walk_field_polygons(index, reaches, t_m, buffer_m, cell, progress=progress)
    return _frame(
        _rows(facility_ids, mins, polygons, METHOD_WALK_FIELD),
        index.graph.network,
        {
            "speed_kmh": float(speed_kmh),
            "buffer_m": float(buffer_m),
            "cell_m": cell,
            "simplified_m": cell * SIMPLIFY_PER_CELL,
            "margin_m": margin_m(cell),
            "display_tolerance_m": 0.0,
        },
    )
