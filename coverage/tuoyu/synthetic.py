"""Synthetic city networks (clearly named as such) for tests and benchmarks.

A *synthetic city* is a jittered street grid with random 50–150 m blocks, a few streets
removed and a few diagonal short-cuts, placed in UTM zone 48N (EPSG:32648, the zone of
Chongqing). It is not a real place: its ``source`` says ``"synthetic city ..."``. Every
step is vectorised with numpy so that 10⁶ nodes take a few seconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pyproj import CRS

from tuoyu.errors import InputValidationError
from tuoyu.network.walk_network import WalkNetwork

SYNTHETIC_CRS = CRS.from_epsg(32648)
"""UTM zone 48N: the metric CRS of every synthetic city."""

_ORIGIN_X_M = 640_000.0
_ORIGIN_Y_M = 3_260_000.0


def synthetic_city(
    n_nodes: int,
    seed: int,
    block_m: tuple[float, float] = (50.0, 150.0),
    *,
    jitter_m: float | None = None,
    removed_share: float = 0.04,
    diagonal_share: float = 0.03,
) -> WalkNetwork:
    """A synthetic street grid with exactly ``n_nodes`` nodes (ids ``0..n_nodes-1``).

    Parameters
    ----------
    n_nodes
        Number of nodes (street crossings); at least 1.
    seed
        Seed of the random generator: the same seed gives the same city.
    block_m
        Range of block side lengths in metres; each grid row and column gets its own
        uniform random size in this range.
    jitter_m
        Each node moves by up to this many metres in x and y (default 10 % of the
        smallest block side).
    removed_share
        Share of grid streets removed (dead ends, blocked crossings).
    diagonal_share
        Share of blocks crossed by a diagonal path.

    Returns
    -------
    WalkNetwork
        Straight segments with Euclidean lengths in EPSG:32648; ``edge_way_id`` is -1.

    Examples
    --------
    >>> net = synthetic_city(1_000, seed=1)
    >>> net.n_nodes, net.crs.to_epsg()
    (1000, 32648)
    >>> bool(net.edge_length_m.min() > 0)
    True
    """
    if n_nodes < 1:
        raise InputValidationError(f"n_nodes must be at least 1, got {n_nodes}", field="n_nodes")
    lo_m, hi_m = float(block_m[0]), float(block_m[1])
    if not (0.0 < lo_m <= hi_m):
        raise InputValidationError(
            f"block_m must be (low, high) with 0 < low <= high, got {block_m}", field="block_m"
        )
    for name, share in (("removed_share", removed_share), ("diagonal_share", diagonal_share)):
        if not 0.0 <= share < 1.0:
            raise InputValidationError(f"{name} must be in [0, 1), got {share}", field=name)
    jitter = 0.1 * lo_m if jitter_m is None else float(jitter_m)
    if not 0.0 <= jitter < lo_m / 2.0:
        raise InputValidationError(
            f"jitter_m must be in [0, {lo_m / 2.0}) so streets keep their order, got {jitter}",
            field="jitter_m",
        )
    rng = np.random.default_rng(seed)
    n_rows = int(np.ceil(np.sqrt(n_nodes)))
    n_cols = int(np.ceil(n_nodes / n_rows))

    col_x_m = np.concatenate([[0.0], np.cumsum(rng.uniform(lo_m, hi_m, n_cols - 1))])
    row_y_m = np.concatenate([[0.0], np.cumsum(rng.uniform(lo_m, hi_m, n_rows - 1))])
    ids = np.arange(n_nodes, dtype=np.int64)
    row, col = np.divmod(ids, n_cols)
    x_m = _ORIGIN_X_M + col_x_m[col] + rng.uniform(-jitter, jitter, n_nodes)
    y_m = _ORIGIN_Y_M + row_y_m[row] + rng.uniform(-jitter, jitter, n_nodes)

    # Grid streets: to the right neighbour and to the neighbour in the next row.
    right = ids[(col < n_cols - 1) & (ids + 1 < n_nodes)]
    up = ids[ids + n_cols < n_nodes]
    grid_u = np.concatenate([right, up])
    grid_v = np.concatenate([right + 1, up + n_cols])
    keep = rng.random(grid_u.shape[0]) >= removed_share
    grid_u, grid_v = grid_u[keep], grid_v[keep]

    # Diagonals across some blocks (lower-left corner ``c``), either direction.
    corner = ids[(col < n_cols - 1) & (ids + n_cols + 1 < n_nodes)]
    corner = corner[rng.random(corner.shape[0]) < diagonal_share]
    flip = rng.random(corner.shape[0]) < 0.5
    diag_u = np.where(flip, corner + 1, corner)
    diag_v = np.where(flip, corner + n_cols, corner + n_cols + 1)

    edge_u = np.concatenate([grid_u, diag_u]).astype(np.int64)
    edge_v = np.concatenate([grid_v, diag_v]).astype(np.int64)
    length_m = np.hypot(x_m[edge_v] - x_m[edge_u], y_m[edge_v] - y_m[edge_u])
    return WalkNetwork(
        node_id=ids,
        node_x_m=x_m,
        node_y_m=y_m,
        edge_u=edge_u,
        edge_v=edge_v,
        edge_length_m=length_m,
        edge_way_id=np.full(edge_u.shape[0], -1, dtype=np.int64),
        crs=SYNTHETIC_CRS,
        source=f"synthetic city (jittered grid, {n_nodes} nodes, seed {seed}, blocks {lo_m:g}–{hi_m:g} m)",
        metadata={"synthetic": True, "seed": seed, "block_m": (lo_m, hi_m)},
    )


def random_facilities(
    network: WalkNetwork, k: int, seed: int, *, max_offset_m: float = 30.0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``k`` random points near the streets of ``network`` (synthetic facilities).

    Each point picks a street with probability proportional to its length, a uniform
    position along it, and moves sideways by up to ``max_offset_m`` metres.

    Parameters
    ----------
    network
        The network to place points along (metric CRS).
    k
        Number of points (0 gives empty arrays).
    seed
        Seed of the random generator.
    max_offset_m
        Largest sideways distance from the street.

    Returns
    -------
    x_m, y_m
        Point coordinates in ``network.crs``.
    """
    if k < 0:
        raise InputValidationError(f"k must be non-negative, got {k}", field="k")
    if k > 0 and network.n_edges == 0:
        raise InputValidationError("the network has no edges to place points along")
    rng = np.random.default_rng(seed)
    if k == 0:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.float64)
    weight = network.edge_length_m / network.edge_length_m.sum()
    edge = rng.choice(network.n_edges, size=k, p=weight)
    t = rng.random(k)
    xu = network.node_x_m[network.edge_u[edge]]
    yu = network.node_y_m[network.edge_u[edge]]
    dx = network.node_x_m[network.edge_v[edge]] - xu
    dy = network.node_y_m[network.edge_v[edge]] - yu
    seg_m = np.hypot(dx, dy)
    seg_m = np.where(seg_m > 0.0, seg_m, 1.0)
    offset_m = rng.uniform(-max_offset_m, max_offset_m, k)
    x_m = xu + t * dx - offset_m * dy / seg_m
    y_m = yu + t * dy + offset_m * dx / seg_m
    return x_m.astype(np.float64), y_m.astype(np.float64)
