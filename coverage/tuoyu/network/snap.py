"""Snapping points to the nearest point of the nearest walkable edge (vectorised).

A point joins the network where the straight line to the network is shortest; that
access leg counts as walking. Points farther than ``max_snap_m`` from every edge are
returned as off-network (``edge == -1``) with their distance, never silently moved.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely

from tuoyu.errors import InputValidationError
from tuoyu.network.graph import WalkGraph
from tuoyu.types import SnappedPoints

DEFAULT_MAX_SNAP_M = 300.0
"""Default snapping limit in metres (``Settings.max_snap_m``)."""


def snap_points(
    graph: WalkGraph,
    x_m: npt.ArrayLike,
    y_m: npt.ArrayLike,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> SnappedPoints:
    """Join points to the nearest point of the nearest edge of ``graph``.

    Parameters
    ----------
    graph
        The routing graph (its edge STRtree is built on first use).
    x_m, y_m
        Point coordinates in the graph's metric CRS, shape (k,).
    max_snap_m
        Points whose nearest edge is farther than this (metres) are off-network. A
        point exactly at the limit is snapped.

    Returns
    -------
    SnappedPoints
        One entry per input point, in input order. Off-network points have
        ``edge == -1``, ``fraction``/``snap_*`` NaN and their distance to the nearest
        edge in ``access_m`` (``inf`` when the network has no edges). When several edges
        are equally near, the lowest edge index wins (deterministic).

    Raises
    ------
    InputValidationError
        When the coordinate arrays differ in shape or hold NaN/inf (the 1-based row is
        named), or ``max_snap_m`` is not positive.

    Examples
    --------
    >>> from tuoyu.synthetic import synthetic_city
    >>> from tuoyu.network.graph import build_graph
    >>> g = build_graph(synthetic_city(100, seed=0))
    >>> x, y = g.network.node_x_m[0], g.network.node_y_m[0]
    >>> s = snap_points(g, [x, x + 1e4], [y, y])
    >>> s.off_network.tolist(), float(s.access_m[0])
    ([False, True], 0.0)
    """
    x = np.atleast_1d(np.asarray(x_m, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y_m, dtype=np.float64))
    if x.ndim != 1 or x.shape != y.shape:
        raise InputValidationError(
            f"x_m and y_m must be 1-D arrays of one length, got shapes {x.shape} and {y.shape}"
        )
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputValidationError(
            f"point {i} has a non-finite coordinate ({x[i]!r}, {y[i]!r})",
            row=i + 1,
            field="x_m/y_m",
        )
    if not max_snap_m > 0.0:
        raise InputValidationError(
            f"max_snap_m must be positive, got {max_snap_m!r}", field="max_snap_m"
        )
    k = x.shape[0]
    edge = np.full(k, -1, dtype=np.int64)
    access_m = np.full(k, np.inf)
    if k and graph.network.n_edges:
        points = np.asarray(shapely.points(x, y), dtype=object)
        limit = None if np.isinf(max_snap_m) else float(max_snap_m)
        (p_idx, e_idx), _ = graph.edge_tree.query_nearest(
            points, max_distance=limit, return_distance=True, all_matches=True
        )
        # Ties (several edges at the same distance): keep the lowest edge index.
        order = np.lexsort((e_idx, p_idx))
        p_idx, e_idx = p_idx[order], e_idx[order]
        first = np.ones(p_idx.shape[0], dtype=bool)
        first[1:] = p_idx[1:] != p_idx[:-1]
        edge[p_idx[first]] = e_idx[first]
        far = np.flatnonzero(edge < 0)
        if far.shape[0]:
            _, far_dist = graph.edge_tree.query_nearest(
                points[far], return_distance=True, all_matches=False
            )
            access_m[far] = far_dist
    on = edge >= 0
    fraction = np.full(k, np.nan)
    snap_x = np.full(k, np.nan)
    snap_y = np.full(k, np.nan)
    if on.any():
        f, sx, sy = _project(graph, edge[on], x[on], y[on])
        fraction[on], snap_x[on], snap_y[on] = f, sx, sy
        access_m[on] = np.hypot(x[on] - sx, y[on] - sy)
    return SnappedPoints(
        x_m=x,
        y_m=y,
        edge=edge,
        fraction=fraction,
        snap_x_m=snap_x,
        snap_y_m=snap_y,
        access_m=access_m,
        off_network=~on,
        max_snap_m=float(max_snap_m),
    )


def empty_snapped(max_snap_m: float = DEFAULT_MAX_SNAP_M) -> SnappedPoints:
    """A :class:`SnappedPoints` with no points (empty in, empty out)."""
    f = np.empty(0, dtype=np.float64)
    return SnappedPoints(
        x_m=f,
        y_m=f.copy(),
        edge=np.empty(0, dtype=np.int64),
        fraction=f.copy(),
        snap_x_m=f.copy(),
        snap_y_m=f.copy(),
        access_m=f.copy(),
        off_network=np.empty(0, dtype=bool),
        max_snap_m=float(max_snap_m),
    )


def _project(
    graph: WalkGraph,
    edge: npt.NDArray[np.int64],
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Orthogonal projection of points onto their (straight) edges.

    Hand-written rather than ``shapely.line_locate_point``: for straight segments it is
    three numpy expressions, it needs no geometry objects, and it is defined for
    zero-length segments (fraction 0), where the normalised shapely call gives NaN.
    """
    net = graph.network
    ux = net.node_x_m[net.edge_u[edge]]
    uy = net.node_y_m[net.edge_u[edge]]
    dx = net.node_x_m[net.edge_v[edge]] - ux
    dy = net.node_y_m[net.edge_v[edge]] - uy
    seg2 = dx * dx + dy * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(seg2 > 0.0, ((x - ux) * dx + (y - uy) * dy) / seg2, 0.0)
    t = np.clip(t, 0.0, 1.0)
    return t, ux + t * dx, uy + t * dy
