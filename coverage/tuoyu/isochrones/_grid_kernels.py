"""Compiled kernels of the gridded isochrones (:mod:`tuoyu.isochrones.grid`).

Written by hand, compiled with numba, because no library does these steps at the
speed the per-facility loop needs (measured on a 2-core machine, one 15-minute
isochrone, ~500 covered segments):

* GEOS (shapely) builds the exact polygon in ~14 ms: the union of hundreds of buffers;
* contourpy traces a 100 × 100 grid in ~0.4 ms, most of it per-call set-up
  (``contour_generator`` alone ~0.25 ms), and its rings still need assembling;
* one numba pass below rasterises the buffered pieces and traces the rings in
  well under 0.1 ms.

What is computed, per source and threshold ``T`` (definitions in GUIDE §3, as for
the exact polygons in :mod:`tuoyu.isochrones.exact`):

1. the covered pieces: reached edges cut at the exact remaining distance, the source's
   own edge from the snapped point both ways, and the access leg;
2. on a square lattice of ``cell_m`` spacing anchored at a fixed origin, the signed
   distance ``ψ = buffer_m − dist(p, pieces)`` at every lattice point near the pieces
   (exact Euclidean point–segment distances; lattice points farther than
   ``buffer_m + cell_m`` get a negative constant, they are never interpolated);
3. marching squares on ``ψ = 0`` with linear interpolation along lattice edges: a
   ring vertex on every lattice edge whose ends differ in sign; saddles resolved by
   the mean of the four corners. Rings are traced with the inside on the left, so
   shells run counter-clockwise and holes clockwise; they never cross or touch (every
   vertex lies on its own lattice edge), so the polygons are valid by construction;
4. each hole goes to the smallest shell that contains it (ray casting).

The output is flat arrays (coordinates, ring offsets, ring → polygon, polygon → owner)
that :mod:`tuoyu.isochrones.grid` turns into shapely geometries in a few vectorised calls.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

_EPS_T = 1e-3
"""Crossings are kept this fraction of a lattice edge away from its end points, so two
ring vertices never coincide (a corner value of exactly 0 would put two crossings on
the same lattice point)."""


_COLLINEAR_M = 1e-3
"""A ring vertex within this distance (metres) of the line through its neighbours is
dropped."""


@njit(cache=True, error_model="numpy", boundscheck=False)
def _grow2(a: npt.NDArray[np.float64], need: int) -> npt.NDArray[np.float64]:  # pragma: no cover
    if need <= a.shape[0]:
        return a
    b = np.empty((max(need, 2 * a.shape[0]), a.shape[1]), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True, error_model="numpy", boundscheck=False)
def _grow1(a: npt.NDArray[np.int64], need: int) -> npt.NDArray[np.int64]:  # pragma: no cover
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True, error_model="numpy", boundscheck=False)
def _add_piece(
    pieces: npt.NDArray[np.float64], n: int, ax: float, ay: float, bx: float, by: float
) -> tuple[npt.NDArray[np.float64], int]:  # pragma: no cover
    pieces = _grow2(pieces, n + 1)
    pieces[n, 0] = ax
    pieces[n, 1] = ay
    pieces[n, 2] = bx
    pieces[n, 3] = by
    return pieces, n + 1


@njit(cache=True, error_model="numpy", boundscheck=False)
def covered_pieces_kernel(
    t_m: float,
    r_node: npt.NDArray[np.int64],
    dist: npt.NDArray[np.float64],
    node_x: npt.NDArray[np.float64],
    node_y: npt.NDArray[np.float64],
    edge_u: npt.NDArray[np.int64],
    edge_v: npt.NDArray[np.int64],
    edge_len: npt.NDArray[np.float64],
    inc_ptr: npt.NDArray[np.int64],
    inc_edge: npt.NDArray[np.int64],
    start_edge: int,
    start_frac: float,
    access_m: float,
    has_src: bool,
    src_x: float,
    src_y: float,
    pieces: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], int]:  # pragma: no cover
    """Covered pieces ``(ax, ay, bx, by)`` within ``t_m`` of one source.

    ``dist`` is a whole-network scratch array holding the source's distances at its
    reached nodes ``r_node`` and ``inf`` elsewhere. Same rules as
    ``tuoyu.isochrones.exact._pieces`` (tested equal).
    """
    n = 0
    for j in range(r_node.shape[0]):
        node = r_node[j]
        for k in range(inc_ptr[node], inc_ptr[node + 1]):
            e = inc_edge[k]
            if e == start_edge:
                continue
            u = edge_u[e]
            v = edge_v[e]
            du = dist[u]
            dv = dist[v]
            # Each edge once: from u, or from v when u is not reached.
            if not (node == u or (node == v and not np.isfinite(du))):
                continue
            length = edge_len[e]
            ru = t_m - du
            rv = t_m - dv
            on_u = ru >= 0.0
            on_v = rv >= 0.0
            a = min(ru, length) if on_u else 0.0
            b = min(rv, length) if on_v else 0.0
            x0, y0, x1, y1 = node_x[u], node_y[u], node_x[v], node_y[v]
            full = (
                (on_u and ru >= length)
                or (on_v and rv >= length)
                or (on_u and on_v and a + b >= length)
            )
            if full:
                pieces, n = _add_piece(pieces, n, x0, y0, x1, y1)
                continue
            if on_u:
                f = a / length
                pieces, n = _add_piece(pieces, n, x0, y0, x0 + (x1 - x0) * f, y0 + (y1 - y0) * f)
            if on_v:
                f = b / length
                pieces, n = _add_piece(pieces, n, x1 + (x0 - x1) * f, y1 + (y0 - y1) * f, x1, y1)
    if start_edge < 0:
        return pieces, n
    # The source's own edge: up to three intervals (from u, from v, from the snapped
    # point both ways), merged in 1-D.
    e = start_edge
    u = edge_u[e]
    v = edge_v[e]
    length = edge_len[e]
    x0, y0, x1, y1 = node_x[u], node_y[u], node_x[v], node_y[v]
    s_m = start_frac * length
    lo = np.empty(3)
    hi = np.empty(3)
    m = 0
    ru = t_m - dist[u]
    rv = t_m - dist[v]
    if ru >= 0.0:
        lo[m] = 0.0
        hi[m] = min(ru, length)
        m += 1
    if rv >= 0.0:
        lo[m] = length - min(rv, length)
        hi[m] = length
        m += 1
    r_s = t_m - access_m
    if r_s >= 0.0:
        lo[m] = max(0.0, s_m - r_s)
        hi[m] = min(length, s_m + r_s)
        m += 1
    order = np.argsort(lo[:m])
    cur_lo = 0.0
    cur_hi = -1.0
    started = False
    for q in range(m):
        a = lo[order[q]]
        b = hi[order[q]]
        if started and a <= cur_hi:
            cur_hi = max(cur_hi, b)
            continue
        if started:
            pieces, n = _add_interval(pieces, n, x0, y0, x1, y1, length, cur_lo, cur_hi)
        cur_lo = a
        cur_hi = b
        started = True
    if started:
        pieces, n = _add_interval(pieces, n, x0, y0, x1, y1, length, cur_lo, cur_hi)
    if has_src and access_m > 0.0 and t_m >= 0.0:
        f = s_m / length if length > 0.0 else 0.0
        sx = x0 + (x1 - x0) * f
        sy = y0 + (y1 - y0) * f
        if t_m >= access_m:
            ex, ey = sx, sy
        else:
            g = t_m / access_m
            ex = src_x + (sx - src_x) * g
            ey = src_y + (sy - src_y) * g
        pieces, n = _add_piece(pieces, n, src_x, src_y, ex, ey)
    return pieces, n


@njit(cache=True, error_model="numpy", boundscheck=False)
def _add_interval(
    pieces: npt.NDArray[np.float64],
    n: int,
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    length: float,
    lo: float,
    hi: float,
) -> tuple[npt.NDArray[np.float64], int]:  # pragma: no cover
    fa = 0.0 if length <= 0.0 or lo <= 0.0 else min(lo / length, 1.0)
    fb = 0.0 if length <= 0.0 else (1.0 if hi >= length else hi / length)
    return _add_piece(
        pieces,
        n,
        x0 + (x1 - x0) * fa,
        y0 + (y1 - y0) * fa,
        x0 + (x1 - x0) * fb,
        y0 + (y1 - y0) * fb,
    )


# fastmath (measured ~35 % faster here: fused multiply-adds, cheaper min/max) is safe in
# this one kernel: every value is finite (piece coordinates, a finite "far" constant,
# square roots of non-negative numbers).
@njit(cache=True, error_model="numpy", boundscheck=False, fastmath=True)
def _signed_field(
    pieces: npt.NDArray[np.float64],
    n: int,
    buffer_m: float,
    cell_m: float,
    ox: float,
    oy: float,
    buf: npt.NDArray[np.float64],
    sign: npt.NDArray[np.uint8],
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.uint8], npt.NDArray[np.float64], int, int
]:  # pragma: no cover
    """``ψ = buffer_m − distance to the nearest piece`` on the window's lattice.

    Exact within ``buffer_m + cell_m`` of the pieces, a negative constant beyond.
    Returns the scratch buffers (grown if needed; reused across calls, since fresh
    arrays of this size cost page faults every time): the field's and ``sign`` (1 where
    ``ψ > 0``, flat, for the tracer); then the field (``ny × nx``, a view of the first)
    and the lattice indices of its lower-left point.
    """
    # Exact distances wherever interpolation may look: a lattice neighbour (cell_m away)
    # of an inside point (distance < buffer_m) is nearer than buffer_m + cell_m.
    reach_m = buffer_m + 1.01 * cell_m
    pad_m = buffer_m + cell_m  # the frame of the window lies outside: every ring closes
    xmin = xmax = pieces[0, 0]  # n ≥ 1 (callers skip empty sources)
    ymin = ymax = pieces[0, 1]
    for k in range(n):
        xmin = min(xmin, pieces[k, 0], pieces[k, 2])
        xmax = max(xmax, pieces[k, 0], pieces[k, 2])
        ymin = min(ymin, pieces[k, 1], pieces[k, 3])
        ymax = max(ymax, pieces[k, 1], pieces[k, 3])
    i0 = int(np.floor((xmin - pad_m - ox) / cell_m))
    j0 = int(np.floor((ymin - pad_m - oy) / cell_m))
    nx = int(np.ceil((xmax + pad_m - ox) / cell_m)) - i0 + 1
    ny = int(np.ceil((ymax + pad_m - oy) / cell_m)) - j0 + 1
    big = reach_m * reach_m * 4.0
    if buf.shape[0] < ny * nx:
        buf = np.empty(max(ny * nx, 2 * buf.shape[0]))
    d2 = buf[: ny * nx]  # flat: no array views in the loops below
    d2[:] = big
    for k in range(n):
        ax = pieces[k, 0]
        ay = pieces[k, 1]
        bx = pieces[k, 2]
        by = pieces[k, 3]
        dx = bx - ax
        dy = by - ay
        ll = dx * dx + dy * dy
        inv = 1.0 / ll if ll > 0.0 else 0.0
        ilo = max(0, int(np.ceil((min(ax, bx) - reach_m - ox) / cell_m)) - i0)
        ihi = min(nx - 1, int(np.floor((max(ax, bx) + reach_m - ox) / cell_m)) - i0)
        jlo = max(0, int(np.ceil((min(ay, by) - reach_m - oy) / cell_m)) - j0)
        jhi = min(ny - 1, int(np.floor((max(ay, by) + reach_m - oy) / cell_m)) - j0)
        step = cell_m * dx * inv  # t grows by this per lattice column
        rx0 = ox + (i0 + ilo) * cell_m - ax
        width = ihi - ilo + 1
        for j in range(jlo, jhi + 1):
            ry = oy + (j0 + j) * cell_m - ay
            t0 = (rx0 * dx + ry * dy) * inv
            base = j * nx + ilo
            for i in range(width):
                rx = rx0 + i * cell_m
                t = min(max(t0 + i * step, 0.0), 1.0)
                qx = t * dx - rx
                qy = t * dy - ry
                q = qx * qx + qy * qy
                if q < d2[base + i]:
                    d2[base + i] = q
    if sign.shape[0] < ny * nx:
        sign = np.empty(max(ny * nx, 2 * sign.shape[0]), dtype=np.uint8)
    for q in range(ny * nx):
        v = buffer_m - np.sqrt(d2[q])
        d2[q] = v
        sign[q] = 1 if v > 0.0 else 0
    return buf, sign, d2.reshape((ny, nx)), i0, j0


@njit(cache=True, error_model="numpy", boundscheck=False)
def _collinear(
    xy: npt.NDArray[np.float64], n: int, cx: float, cy: float
) -> bool:  # pragma: no cover
    """Whether vertex ``n − 1`` lies (within 1 mm) on the segment from ``n − 2`` to (cx, cy).

    Along a straight buffer side the interpolated crossings are exactly collinear;
    dropping them keeps the rings small without moving the boundary.
    """
    ax = xy[n - 2, 0]
    ay = xy[n - 2, 1]
    bx = xy[n - 1, 0]
    by = xy[n - 1, 1]
    ex = cx - ax
    ey = cy - ay
    cross = (bx - ax) * ey - (by - ay) * ex
    if cross * cross > _COLLINEAR_M * _COLLINEAR_M * (ex * ex + ey * ey):
        return False
    return bool((bx - ax) * (cx - bx) + (by - ay) * (cy - by) >= 0.0)


@njit(cache=True, error_model="numpy", boundscheck=False)
def _ring_area(xy: npt.NDArray[np.float64], lo: int, hi: int) -> float:  # pragma: no cover
    s = 0.0
    for k in range(lo, hi - 1):
        s += xy[k, 0] * xy[k + 1, 1] - xy[k + 1, 0] * xy[k, 1]
    return 0.5 * s


@njit(cache=True, error_model="numpy", boundscheck=False)
def _inside(
    px: float, py: float, xy: npt.NDArray[np.float64], lo: int, hi: int
) -> bool:  # pragma: no cover
    inside = False
    for k in range(lo, hi - 1):
        x1, y1 = xy[k, 0], xy[k, 1]
        x2, y2 = xy[k + 1, 0], xy[k + 1, 1]
        if (y1 > py) != (y2 > py):
            x = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
            if x > px:
                inside = not inside
    return inside


@njit(cache=True, error_model="numpy", boundscheck=False)
def _trace(
    psi: npt.NDArray[np.float64],
    i0: int,
    j0: int,
    cell_m: float,
    ox: float,
    oy: float,
    slot: npt.NDArray[np.int32],
    ex_next: npt.NDArray[np.int64],
    ex_xy: npt.NDArray[np.float64],
    scratch_sign: npt.NDArray[np.uint8],
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64], int
]:  # pragma: no cover
    """Marching squares on ``psi > 0``; closed rings, shells first within each polygon.

    Returns ring coordinates (closed), ring offsets, the polygon (0-based, local) of
    each ring, and the number of polygons. Scratch, each of at least ``2 · nx · ny``
    entries: ``slot`` (lattice edge → crossing number), ``ex_next`` (crossing → next
    lattice edge of its ring), ``ex_xy`` (crossing coordinates); ``scratch_sign`` holds the signs of ``psi``
    (flat, from :func:`_signed_field`). The
    crossings are stored in the order they are found, so the large lattice-edge-indexed
    array is only one int32 per edge (measured: the tracer ran 2× slower with
    coordinates stored per lattice edge, from cache misses).
    """
    ny, nx = psi.shape
    nh = ny * (nx - 1)
    n_exit = 0
    sg = scratch_sign[: ny * nx].reshape((ny, nx))  # filled by _signed_field
    cid = np.empty(4, dtype=np.int64)
    val_a = np.empty(4)
    val_b = np.empty(4)
    for j in range(ny - 1):
        lo_row = sg[j]
        hi_row = sg[j + 1]
        for i in range(nx - 1):
            c = lo_row[i] + lo_row[i + 1] + hi_row[i + 1] + hi_row[i]
            if c == 0 or c == 4:
                continue
            v00 = psi[j, i]
            v01 = psi[j, i + 1]
            v11 = psi[j + 1, i + 1]
            v10 = psi[j + 1, i]
            # Square edges counter-clockwise: bottom, right, top, left.
            cid[0] = j * (nx - 1) + i
            cid[1] = nh + j * nx + (i + 1)
            cid[2] = (j + 1) * (nx - 1) + i
            cid[3] = nh + j * nx + i
            val_a[0], val_b[0] = v00, v01
            val_a[1], val_b[1] = v01, v11
            val_a[2], val_b[2] = v11, v10
            val_a[3], val_b[3] = v10, v00
            n_cross = 0
            for k in range(4):
                if (val_a[k] > 0.0) != (val_b[k] > 0.0):
                    n_cross += 1
            centre_in = (v00 + v01 + v11 + v10) > 0.0
            for k in range(4):
                if val_a[k] > 0.0 and not val_b[k] > 0.0:  # leaving the inside: an exit
                    if n_cross == 2:
                        # the one entry of the square
                        for q in range(1, 4):
                            kk = (k + q) % 4
                            if (not val_a[kk] > 0.0) and val_b[kk] > 0.0:
                                break
                    elif centre_in:
                        kk = (k + 1) % 4  # saddle, diagonal joined: the following entry
                    else:
                        kk = (k + 3) % 4  # saddle, corners apart: the preceding entry
                    # Crossing number n_exit: this lattice edge, the edge the ring goes
                    # on to, and (below) where the zero line crosses it.
                    slot[cid[k]] = n_exit
                    ex_next[n_exit] = cid[kk]
                    a = val_a[k]
                    t = min(1.0 - _EPS_T, max(_EPS_T, a / (a - val_b[k])))
                    if k == 0:
                        gx, gy = i + t, float(j)
                    elif k == 1:
                        gx, gy = i + 1.0, j + t
                    elif k == 2:
                        gx, gy = i + 1.0 - t, j + 1.0
                    else:
                        gx, gy = float(i), j + 1.0 - t
                    ex_xy[n_exit, 0] = ox + (i0 + gx) * cell_m
                    ex_xy[n_exit, 1] = oy + (j0 + gy) * cell_m
                    n_exit += 1
    # Follow the links into rings.
    xy = np.empty((n_exit + n_exit // 4 + 4, 2))  # a ring has ≥ 4 vertices + closure
    n_xy = 0
    ring_ptr = np.empty(n_exit + 1, dtype=np.int64)
    n_ring = 0
    ring_ptr[0] = 0
    seen = np.zeros(n_exit, dtype=np.uint8)
    for start in range(n_exit):
        if seen[start]:
            continue
        cur = start
        first = n_xy
        while True:
            x = ex_xy[cur, 0]
            y = ex_xy[cur, 1]
            if n_xy - first >= 2 and _collinear(xy, n_xy, x, y):
                n_xy -= 1  # the middle vertex lies on the straight line: drop it
            xy[n_xy, 0] = x
            xy[n_xy, 1] = y
            n_xy += 1
            seen[cur] = 1
            cur = slot[ex_next[cur]]
            if cur == start:
                break
        xy[n_xy, 0] = xy[first, 0]
        xy[n_xy, 1] = xy[first, 1]
        n_xy += 1
        n_ring += 1
        ring_ptr[n_ring] = n_xy
    # Shells (counter-clockwise) and holes; each hole to its smallest containing shell.
    area = np.empty(n_ring)
    for q in range(n_ring):
        area[q] = _ring_area(xy, ring_ptr[q], ring_ptr[q + 1])
    owner = np.full(n_ring, -1, dtype=np.int64)
    n_shell = 0
    shell_ids = np.empty(n_ring, dtype=np.int64)
    for q in range(n_ring):
        if area[q] > 0.0:
            owner[q] = q
            shell_ids[n_shell] = q
            n_shell += 1
    for q in range(n_ring):
        if area[q] > 0.0:
            continue
        if n_shell == 1:
            owner[q] = shell_ids[0]
            continue
        px = xy[ring_ptr[q], 0]
        py = xy[ring_ptr[q], 1]
        best = -1
        best_area = np.inf
        for w in range(n_shell):
            sh = shell_ids[w]
            if area[sh] < best_area and _inside(px, py, xy, ring_ptr[sh], ring_ptr[sh + 1]):
                best = sh
                best_area = area[sh]
        owner[q] = best
    # Emit: for each shell, the shell then its holes. Usually the tracing order is
    # already that (one shell, found first from the bottom row), and nothing is copied.
    order = np.empty(n_ring, dtype=np.int64)
    poly_of = np.empty(n_ring, dtype=np.int64)
    n_out = 0
    for w in range(n_shell):
        sh = shell_ids[w]
        order[n_out] = sh
        poly_of[n_out] = w
        n_out += 1
        for q in range(n_ring):
            if area[q] <= 0.0 and owner[q] == sh:
                order[n_out] = q
                poly_of[n_out] = w
                n_out += 1
    same = n_out == n_ring
    for q in range(n_out):
        if order[q] != q:
            same = False
            break
    if same:
        return xy[:n_xy], ring_ptr[: n_ring + 1], poly_of, n_shell
    out_xy = np.empty((n_xy, 2))
    out_ptr = np.empty(n_out + 1, dtype=np.int64)
    out_ptr[0] = 0
    n_pt = 0
    for q in range(n_out):
        lo = ring_ptr[order[q]]
        hi = ring_ptr[order[q] + 1]
        for r in range(lo, hi):
            out_xy[n_pt, 0] = xy[r, 0]
            out_xy[n_pt, 1] = xy[r, 1]
            n_pt += 1
        out_ptr[q + 1] = n_pt
    return out_xy[:n_pt], out_ptr, poly_of[:n_out], n_shell


@njit(cache=True, error_model="numpy", boundscheck=False)
def _heap_push(
    hd: npt.NDArray[np.float64], hn: npt.NDArray[np.int64], size: int, d: float, node: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], int]:  # pragma: no cover
    if size >= hd.shape[0]:
        hd2 = np.empty(2 * hd.shape[0])
        hn2 = np.empty(2 * hd.shape[0], dtype=np.int64)
        hd2[:size] = hd[:size]
        hn2[:size] = hn[:size]
        hd, hn = hd2, hn2
    k = size
    while k > 0:
        parent = (k - 1) >> 1
        if hd[parent] <= d:
            break
        hd[k] = hd[parent]
        hn[k] = hn[parent]
        k = parent
    hd[k] = d
    hn[k] = node
    return hd, hn, size + 1


@njit(cache=True, error_model="numpy", boundscheck=False)
def _heap_pop(
    hd: npt.NDArray[np.float64], hn: npt.NDArray[np.int64], size: int
) -> tuple[float, int, int]:  # pragma: no cover
    d = hd[0]
    node = hn[0]
    size -= 1
    if size > 0:
        ld = hd[size]
        ln = hn[size]
        k = 0
        while True:
            c = 2 * k + 1
            if c >= size:
                break
            if c + 1 < size and hd[c + 1] < hd[c]:
                c += 1
            if hd[c] >= ld:
                break
            hd[k] = hd[c]
            hn[k] = hn[c]
            k = c
        hd[k] = ld
        hn[k] = ln
    return d, node, size


@njit(cache=True, error_model="numpy", boundscheck=False)
def bounded_dijkstra(
    seed_node: npt.NDArray[np.int64],
    seed_dist: npt.NDArray[np.float64],
    cutoff_m: float,
    edge_u: npt.NDArray[np.int64],
    edge_v: npt.NDArray[np.int64],
    edge_len: npt.NDArray[np.float64],
    inc_ptr: npt.NDArray[np.int64],
    inc_edge: npt.NDArray[np.int64],
    dist: npt.NDArray[np.float64],
    touched: npt.NDArray[np.int64],
    hd: npt.NDArray[np.float64],
    hn: npt.NDArray[np.int64],
) -> tuple[
    int, npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]
]:  # pragma: no cover
    """Walking distances from seeds up to ``cutoff_m``, touching only what is reached.

    Hand-written because scipy's ``csgraph.dijkstra`` returns a dense row of graph size
    per source: for thousands of 15-minute searches on a 10⁶-node city that (or our
    batched work-around in :mod:`tuoyu.reach.engine`, ~0.26 ms per source) costs more than
    the whole polygon. This one reads the node → incident-edge lists (walking is
    undirected) and writes ``dist`` only at the nodes it reaches, listed in
    ``touched[:n]`` (the caller resets them to ``inf``). Tested equal to
    :func:`tuoyu.reach.engine.facility_reach` and to networkx.
    """
    n_touched = 0
    size = 0
    for k in range(seed_node.shape[0]):
        node = seed_node[k]
        d = seed_dist[k]
        if d > cutoff_m or d >= dist[node]:
            continue
        if not np.isfinite(dist[node]):
            touched = _grow1(touched, n_touched + 1)
            touched[n_touched] = node
            n_touched += 1
        dist[node] = d
        hd, hn, size = _heap_push(hd, hn, size, d, node)
    while size > 0:
        d, node, size = _heap_pop(hd, hn, size)
        if d > dist[node]:
            continue  # a stale entry
        for k in range(inc_ptr[node], inc_ptr[node + 1]):
            e = inc_edge[k]
            other = edge_u[e] + edge_v[e] - node
            nd = d + edge_len[e]
            if nd > cutoff_m or nd >= dist[other]:
                continue
            if not np.isfinite(dist[other]):
                touched = _grow1(touched, n_touched + 1)
                touched[n_touched] = other
                n_touched += 1
            dist[other] = nd
            hd, hn, size = _heap_push(hd, hn, size, nd, other)
    return n_touched, touched, hd, hn


@njit(cache=True, error_model="numpy", boundscheck=False)
def _emit_source(
    s: int,
    n_src: int,
    nodes: npt.NDArray[np.int64],
    dist: npt.NDArray[np.float64],
    thresholds_m: npt.NDArray[np.float64],
    start_edge: int,
    start_frac: float,
    access_m: float,
    has_src: bool,
    src_x: float,
    src_y: float,
    node_x: npt.NDArray[np.float64],
    node_y: npt.NDArray[np.float64],
    edge_u: npt.NDArray[np.int64],
    edge_v: npt.NDArray[np.int64],
    edge_len: npt.NDArray[np.float64],
    inc_ptr: npt.NDArray[np.int64],
    inc_edge: npt.NDArray[np.int64],
    buffer_m: float,
    cell_m: float,
    ox: float,
    oy: float,
    counts: npt.NDArray[np.int64],
    xy: npt.NDArray[np.float64],
    ring_ptr: npt.NDArray[np.int64],
    ring_poly: npt.NDArray[np.int64],
    poly_owner: npt.NDArray[np.int64],
    pieces: npt.NDArray[np.float64],
    slot: npt.NDArray[np.int32],
    ex_next: npt.NDArray[np.int64],
    ex_xy: npt.NDArray[np.float64],
    sign: npt.NDArray[np.uint8],
    fbuf: npt.NDArray[np.float64],
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int32],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.uint8],
    npt.NDArray[np.float64],
]:  # pragma: no cover
    """Append the rings of source ``s`` (every threshold) to the output buffers.

    ``counts`` holds the numbers of points, rings and polygons written so far.
    """
    n_t = thresholds_m.shape[0]
    for k in range(n_t):
        pieces, n = covered_pieces_kernel(
            thresholds_m[k],
            nodes,
            dist,
            node_x,
            node_y,
            edge_u,
            edge_v,
            edge_len,
            inc_ptr,
            inc_edge,
            start_edge,
            start_frac,
            access_m,
            has_src,
            src_x,
            src_y,
            pieces,
        )
        if n == 0:
            continue
        fbuf, sign, psi, i0, j0 = _signed_field(pieces, n, buffer_m, cell_m, ox, oy, fbuf, sign)
        need = 2 * psi.shape[0] * psi.shape[1]
        if slot.shape[0] < need:
            slot = np.empty(need, dtype=np.int32)
            ex_next = np.empty(need, dtype=np.int64)
            ex_xy = np.empty((need, 2))
        rxy, rptr, rpoly, n_shell = _trace(psi, i0, j0, cell_m, ox, oy, slot, ex_next, ex_xy, sign)
        m = rptr.shape[0] - 1
        n_xy, n_ring, n_poly = counts[0], counts[1], counts[2]
        if xy.shape[0] < n_xy + rxy.shape[0]:
            # Grow to what the sources so far project for all of them: one or two
            # copies instead of a doubling series (fresh pages are costly here).
            hint = int((n_xy + rxy.shape[0]) / (s + 1) * n_src * 1.1)
            xy = _grow2(xy, max(n_xy + rxy.shape[0], hint))
        for r in range(rxy.shape[0]):
            xy[n_xy + r, 0] = rxy[r, 0]
            xy[n_xy + r, 1] = rxy[r, 1]
        ring_ptr = _grow1(ring_ptr, n_ring + m + 1)
        ring_poly = _grow1(ring_poly, n_ring + m)
        for q in range(m):
            ring_ptr[n_ring + q + 1] = n_xy + rptr[q + 1]
            ring_poly[n_ring + q] = n_poly + rpoly[q]
        poly_owner = _grow1(poly_owner, n_poly + n_shell)
        for w in range(n_shell):
            poly_owner[n_poly + w] = s * n_t + k
        counts[0] = n_xy + rxy.shape[0]
        counts[1] = n_ring + m
        counts[2] = n_poly + n_shell
    return xy, ring_ptr, ring_poly, poly_owner, pieces, slot, ex_next, ex_xy, sign, fbuf


@njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
def grid_isochrones_kernel(
    route: bool,
    r_ptr: npt.NDArray[np.int64],
    r_node: npt.NDArray[np.int64],
    r_dist: npt.NDArray[np.float64],
    start_edge: npt.NDArray[np.int64],
    start_frac: npt.NDArray[np.float64],
    access_m: npt.NDArray[np.float64],
    has_src: npt.NDArray[np.bool_],
    src_x: npt.NDArray[np.float64],
    src_y: npt.NDArray[np.float64],
    thresholds_m: npt.NDArray[np.float64],
    node_x: npt.NDArray[np.float64],
    node_y: npt.NDArray[np.float64],
    edge_u: npt.NDArray[np.int64],
    edge_v: npt.NDArray[np.int64],
    edge_len: npt.NDArray[np.float64],
    inc_ptr: npt.NDArray[np.int64],
    inc_edge: npt.NDArray[np.int64],
    buffer_m: float,
    cell_m: float,
    ox: float,
    oy: float,
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:  # pragma: no cover
    """Gridded isochrone rings of every source × threshold.

    With ``route`` the reached nodes come from :func:`bounded_dijkstra` run here from
    each source's snapped point (``r_*`` ignored; ``start_edge < 0`` = off-network);
    without, from the given reaches (``r_ptr``, ``r_node``, ``r_dist``).

    Returns
    -------
    xy, ring_ptr, ring_poly, poly_owner
        Closed ring coordinates; ring offsets into ``xy``; the polygon of each ring
        (its first ring is the shell, the others holes); the owner of each polygon,
        ``source · n_thresholds + threshold``.
    """
    n_src = start_edge.shape[0]
    cutoff_m = thresholds_m.max() if thresholds_m.shape[0] else 0.0
    dist = np.full(node_x.shape[0], np.inf)
    pieces = np.empty((1024, 4))
    slot = np.empty(1 << 16, dtype=np.int32)
    ex_next = np.empty(1 << 16, dtype=np.int64)
    ex_xy = np.empty((1 << 16, 2))
    sign = np.empty(1 << 16, dtype=np.uint8)
    fbuf = np.empty(1 << 15)
    xy = np.empty((1 << 16, 2))
    ring_ptr = np.zeros(1024, dtype=np.int64)
    ring_poly = np.empty(1024, dtype=np.int64)
    poly_owner = np.empty(1024, dtype=np.int64)
    counts = np.zeros(3, dtype=np.int64)
    touched = np.empty(1024, dtype=np.int64)
    hd = np.empty(1024)
    hn = np.empty(1024, dtype=np.int64)
    seed_node = np.empty(2, dtype=np.int64)
    seed_dist = np.empty(2)
    for s in range(n_src):
        e = start_edge[s]
        if route:
            if e < 0:
                continue
            length = edge_len[e]
            seed_node[0] = edge_u[e]
            seed_node[1] = edge_v[e]
            seed_dist[0] = access_m[s] + start_frac[s] * length
            seed_dist[1] = access_m[s] + (1.0 - start_frac[s]) * length
            n_touched, touched, hd, hn = bounded_dijkstra(
                seed_node,
                seed_dist,
                cutoff_m,
                edge_u,
                edge_v,
                edge_len,
                inc_ptr,
                inc_edge,
                dist,
                touched,
                hd,
                hn,
            )
            nodes = touched[:n_touched]
        else:
            nodes = r_node[r_ptr[s] : r_ptr[s + 1]]
            for q in range(nodes.shape[0]):
                dist[nodes[q]] = r_dist[r_ptr[s] + q]
        xy, ring_ptr, ring_poly, poly_owner, pieces, slot, ex_next, ex_xy, sign, fbuf = (
            _emit_source(
                s,
                n_src,
                nodes,
                dist,
                thresholds_m,
                e,
                start_frac[s],
                access_m[s],
                has_src[s],
                src_x[s],
                src_y[s],
                node_x,
                node_y,
                edge_u,
                edge_v,
                edge_len,
                inc_ptr,
                inc_edge,
                buffer_m,
                cell_m,
                ox,
                oy,
                counts,
                xy,
                ring_ptr,
                ring_poly,
                poly_owner,
                pieces,
                slot,
                ex_next,
                ex_xy,
                sign,
                fbuf,
            )
        )
        for q in range(nodes.shape[0]):
            dist[nodes[q]] = np.inf
    n_xy, n_ring, n_poly = counts[0], counts[1], counts[2]
    return xy[:n_xy], ring_ptr[: n_ring + 1], ring_poly[:n_ring], poly_owner[:n_poly]
