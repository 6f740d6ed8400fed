"""Compiled kernel of the walk-field isochrones (:mod:`tuoyu.isochrones.walk_field`).

Written by hand, compiled with numba: no library evaluates "walking time from here to
one facility, joining the nearest way" on a lattice, and the per-point work (a handful
of point–segment distances) is far too small for numpy's per-call cost at hundreds of
thousands of lattice points per facility.

For one facility and every lattice point ``p0`` near its reach, two numbers:

* ``dmin``: the distance from ``p0`` to the nearest *eligible* edge (the edges a point
  may snap to, :func:`tuoyu.network.snap.snap_points`);
* ``upper``: an upper bound of the walking metres to the facility from *every* point
  within ``rho`` of ``p0``. A point ``p`` with ``|p − p0| ≤ rho`` snaps to some edge
  ``e``, its nearest, at ``d(p, e) = dmin(p) ≤ dmin + rho`` (the distance to the
  nearest edge is 1-Lipschitz), so ``d(p0, e) ≤ dmin + 2·rho``: ``e`` is a *candidate*.
  Along ``e`` the walking time ``t_e(s) = min(d(u) + s, d(v) + L − s[, access +
  |s − s0|])`` is 1-Lipschitz in the position ``s`` (metres of recorded length), which
  moves by at most ``k_e · rho`` with ``k_e = L / |segment|``. So the walk from ``p``,
  ``dmin(p) + t_e(s(p))``, is at most ``dmin + t_e(s(p0)) + (1 + k_e)·rho``, and the
  maximum of that over the candidates bounds the walk from every such ``p``, whichever
  candidate it snaps to. (The access leg is bounded by ``dmin + rho`` whatever the
  candidate: a near edge beside a far-walking one costs its walking time, not its
  distance.)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

_COARSE_CELLS = 16
"""Lattice cells per side of the coarse cells of the live mask."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@njit(cache=True, error_model="numpy", boundscheck=False, nogil=True, inline="always")
def _segment_window(
    e: int,
    reach_m: float,
    node_x: FloatArray,
    node_y: FloatArray,
    edge_u: IntArray,
    edge_v: IntArray,
    ox: float,
    oy: float,
    cell_m: float,
    i0: int,
    j0: int,
    nx: int,
    ny: int,
) -> tuple[float, float, float, float, float, int, int, int, int]:  # pragma: no cover
    """Edge ``e`` as ``(ax, ay, dx, dy, |d|²)`` and the window's lattice index ranges
    ``ilo..ihi``, ``jlo..jhi`` of its box widened by ``reach_m``."""
    ax = node_x[edge_u[e]]
    ay = node_y[edge_u[e]]
    dx = node_x[edge_v[e]] - ax
    dy = node_y[edge_v[e]] - ay
    ilo = max(0, int(np.ceil((min(ax, ax + dx) - reach_m - ox) / cell_m)) - i0)
    ihi = min(nx - 1, int(np.floor((max(ax, ax + dx) + reach_m - ox) / cell_m)) - i0)
    jlo = max(0, int(np.ceil((min(ay, ay + dy) - reach_m - oy) / cell_m)) - j0)
    jhi = min(ny - 1, int(np.floor((max(ay, ay + dy) + reach_m - oy) / cell_m)) - j0)
    return ax, ay, dx, dy, dx * dx + dy * dy, ilo, ihi, jlo, jhi


@njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
def walk_field_kernel(
    r_node: IntArray,
    r_dist: FloatArray,
    start_edge: int,
    start_pos_m: float,
    access_m: float,
    t_max_m: float,
    node_x: FloatArray,
    node_y: FloatArray,
    edge_u: IntArray,
    edge_v: IntArray,
    length_m: FloatArray,
    inc_ptr: IntArray,
    inc_edges: IntArray,
    eligible: npt.NDArray[np.uint8],
    b_ptr: IntArray,
    b_edges: IntArray,
    b_ox: float,
    b_oy: float,
    b_size: float,
    b_nx: int,
    b_ny: int,
    buffer_m: float,
    rho_m: float,
    cell_m: float,
    ox: float,
    oy: float,
    node_dist: FloatArray,
    stamp: IntArray,
    stamp_id: int,
    dmin_buf: FloatArray,
    upper_buf: FloatArray,
) -> tuple[FloatArray, FloatArray, int, int]:  # pragma: no cover
    """``(dmin, upper, i0, j0)`` on the facility's lattice window (see module docstring).

    ``node_dist`` (one ``inf`` per node) and ``stamp`` (one int per edge, all
    ``< stamp_id``) are scratch arrays reused across calls; ``node_dist`` is restored
    before returning. ``dmin_buf`` and ``upper_buf`` are scratch for the two fields: the
    returned arrays are views of them when they hold the window, else new arrays (which
    the caller may keep as the next call's scratch). ``(i0, j0)`` are the lattice indices of the window's lower-left
    point; both arrays are ``ny × nx``, ``dmin`` = ``inf`` where no eligible edge lies
    within ``buffer_m``, ``upper`` = ``inf`` where a candidate edge is unreached.
    """
    n_r = r_node.shape[0]
    for k in range(n_r):
        node_dist[r_node[k]] = r_dist[k]
    # Window: the edges touching a node reached within t_max (and the start edge).
    xmin = np.inf
    ymin = np.inf
    xmax = -np.inf
    ymax = -np.inf
    for k in range(n_r):
        if r_dist[k] > t_max_m:
            continue
        nd = r_node[k]
        for q in range(inc_ptr[nd], inc_ptr[nd + 1]):
            e = inc_edges[q]
            for w in (edge_u[e], edge_v[e]):
                xmin = min(xmin, node_x[w])
                xmax = max(xmax, node_x[w])
                ymin = min(ymin, node_y[w])
                ymax = max(ymax, node_y[w])
    if start_edge >= 0:
        for w in (edge_u[start_edge], edge_v[start_edge]):
            xmin = min(xmin, node_x[w])
            xmax = max(xmax, node_x[w])
            ymin = min(ymin, node_y[w])
            ymax = max(ymax, node_y[w])
    if not np.isfinite(xmin):
        for k in range(n_r):
            node_dist[r_node[k]] = np.inf
        return np.full((1, 1), np.inf), np.full((1, 1), np.inf), 0, 0
    radius = buffer_m + 2.0 * rho_m  # candidates of a point within buffer_m of a way
    pad = buffer_m + 2.0 * cell_m  # the window's frame lies outside every ring
    i0 = int(np.floor((xmin - pad - ox) / cell_m))
    j0 = int(np.floor((ymin - pad - oy) / cell_m))
    nx = int(np.ceil((xmax + pad - ox) / cell_m)) - i0 + 1
    ny = int(np.ceil((ymax + pad - oy) / cell_m)) - j0 + 1
    # The window's two fields live in the caller's scratch when it is large enough
    # (fresh megabytes per facility cost about as much in page faults as sweep 0).
    size = ny * nx
    if dmin_buf.shape[0] >= size and upper_buf.shape[0] >= size:
        dmin = dmin_buf[:size]
        upper = upper_buf[:size]
    else:
        dmin = np.empty(size)
        upper = np.empty(size)
    dmin[:] = np.inf
    upper[:] = 0.0
    # Edges whose buckets meet the window widened by the search radius.
    wx0 = ox + i0 * cell_m - radius
    wy0 = oy + j0 * cell_m - radius
    wx1 = ox + (i0 + nx - 1) * cell_m + radius
    wy1 = oy + (j0 + ny - 1) * cell_m + radius
    bi0 = max(0, int(np.floor((wx0 - b_ox) / b_size)))
    bj0 = max(0, int(np.floor((wy0 - b_oy) / b_size)))
    bi1 = min(b_nx - 1, int(np.floor((wx1 - b_ox) / b_size)))
    bj1 = min(b_ny - 1, int(np.floor((wy1 - b_oy) / b_size)))
    cand = np.empty(64, dtype=np.int64)
    n_cand = 0
    for bj in range(bj0, bj1 + 1):
        for bi in range(bi0, bi1 + 1):
            b = bj * b_nx + bi
            for q in range(b_ptr[b], b_ptr[b + 1]):
                e = b_edges[q]
                if stamp[e] == stamp_id or not eligible[e]:
                    continue
                stamp[e] = stamp_id
                if n_cand == cand.shape[0]:
                    grown = np.empty(2 * n_cand, dtype=np.int64)
                    grown[:n_cand] = cand[:n_cand]
                    cand = grown
                cand[n_cand] = e
                n_cand += 1
    # Coarse mask of where a drawn point can be: within `radius` of an edge with a
    # reached end (a drawn point's nearest edge is reached and within buffer_m of it).
    # Lattice points elsewhere are skipped (the corners of the window, mostly).
    kc = _COARSE_CELLS
    cnx = nx // kc + 1
    cny = ny // kc + 1
    live = np.zeros(cny * cnx, dtype=np.uint8)
    for c in range(n_cand):
        e = cand[c]
        if not (node_dist[edge_u[e]] <= t_max_m or node_dist[edge_v[e]] <= t_max_m):
            if e != start_edge:
                continue
        xa = min(node_x[edge_u[e]], node_x[edge_v[e]]) - radius
        xb = max(node_x[edge_u[e]], node_x[edge_v[e]]) + radius
        ya = min(node_y[edge_u[e]], node_y[edge_v[e]]) - radius
        yb = max(node_y[edge_u[e]], node_y[edge_v[e]]) + radius
        ci0 = max(0, (int(np.floor((xa - ox) / cell_m)) - i0) // kc)
        ci1 = min(cnx - 1, max(0, int(np.ceil((xb - ox) / cell_m)) - i0) // kc)
        cj0 = max(0, (int(np.floor((ya - oy) / cell_m)) - j0) // kc)
        cj1 = min(cny - 1, max(0, int(np.ceil((yb - oy) / cell_m)) - j0) // kc)
        for cj in range(cj0, cj1 + 1):
            for ci in range(ci0, ci1 + 1):
                live[cj * cnx + ci] = 1
    # Sweep 0: squared distance to the nearest eligible edge, up to buffer_m (beyond,
    # the point is not drawn). Squares spare a square root per visit.
    buffer2 = buffer_m * buffer_m
    for c in range(n_cand):
        e = cand[c]
        ax, ay, dx, dy, seg2, ilo, ihi, jlo, jhi = _segment_window(
            e, buffer_m, node_x, node_y, edge_u, edge_v, ox, oy, cell_m, i0, j0, nx, ny
        )
        inv = 1.0 / seg2 if seg2 > 0.0 else 0.0
        for j in range(jlo, jhi + 1):
            ry = oy + (j0 + j) * cell_m - ay
            base = j * nx
            crow = (j // kc) * cnx
            i = ilo
            while i <= ihi:
                i_end = min(ihi, (i // kc + 1) * kc - 1)
                if live[crow + i // kc]:
                    for ii in range(i, i_end + 1):
                        rx = ox + (i0 + ii) * cell_m - ax
                        f = min(max((rx * dx + ry * dy) * inv, 0.0), 1.0)
                        qx = f * dx - rx
                        qy = f * dy - ry
                        d2 = qx * qx + qy * qy
                        q = base + ii
                        if d2 <= buffer2 and d2 < dmin[q]:
                            dmin[q] = d2
                i = i_end + 1
    for q in range(ny * nx):
        if dmin[q] < np.inf:
            dmin[q] = np.sqrt(dmin[q])
    # Sweep 1: the bound over the candidates of each drawn point (edges within
    # dmin + 2·rho; dmin ≤ buffer_m, so within buffer_m + 2·rho = radius).
    two_rho = 2.0 * rho_m
    for c in range(n_cand):
        e = cand[c]
        ax, ay, dx, dy, seg2, ilo, ihi, jlo, jhi = _segment_window(
            e, radius, node_x, node_y, edge_u, edge_v, ox, oy, cell_m, i0, j0, nx, ny
        )
        inv = 1.0 / seg2 if seg2 > 0.0 else 0.0
        ell = length_m[e]
        k_e = ell / np.sqrt(seg2) if seg2 > 0.0 else 0.0
        slack = (1.0 + k_e) * rho_m
        du = node_dist[edge_u[e]]
        dv = node_dist[edge_v[e]]
        is_start = e == start_edge
        for j in range(jlo, jhi + 1):
            ry = oy + (j0 + j) * cell_m - ay
            base = j * nx
            crow = (j // kc) * cnx
            i = ilo
            while i <= ihi:
                i_end = min(ihi, (i // kc + 1) * kc - 1)
                if live[crow + i // kc]:
                    for ii in range(i, i_end + 1):
                        q = base + ii
                        dmin_q = dmin[q]
                        lim = dmin_q + two_rho  # inf where not drawn whatever its candidates
                        if lim == np.inf:
                            continue
                        rx = ox + (i0 + ii) * cell_m - ax
                        f = min(max((rx * dx + ry * dy) * inv, 0.0), 1.0)
                        qx = f * dx - rx
                        qy = f * dy - ry
                        d2 = qx * qx + qy * qy
                        if d2 > lim * lim:
                            continue  # this edge is nearest to no point within rho
                        s = f * ell
                        t = min(du + s, dv + ell - s)
                        if is_start:
                            t = min(t, access_m + abs(s - start_pos_m))
                        bound = dmin_q + t + slack
                        if bound > upper[q]:
                            upper[q] = bound
                i = i_end + 1
    for k in range(n_r):
        node_dist[r_node[k]] = np.inf
    return dmin.reshape((ny, nx)), upper.reshape((ny, nx)), i0, j0


@njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
def field_sign(
    dmin: FloatArray,
    upper: FloatArray,
    budget_m: float,
    buffer_m: float,
    psi: FloatArray,
    sign: npt.NDArray[np.uint8],
) -> int:  # pragma: no cover
    """``psi = min(budget − upper, buffer − dmin)`` (−buffer where not finite) and its sign.

    Fills ``psi`` (the field's shape) and ``sign`` (flat, 1 where ``psi > 0``); returns
    how many lattice points are inside.
    """
    ny, nx = dmin.shape
    n_in = 0
    for j in range(ny):
        for i in range(nx):
            v = min(budget_m - upper[j, i], buffer_m - dmin[j, i])
            if not np.isfinite(v):
                v = -buffer_m
            psi[j, i] = v
            inside = v > 0.0
            sign[j * nx + i] = 1 if inside else 0
            n_in += 1 if inside else 0
    return n_in
