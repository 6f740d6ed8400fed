"""Hand-made networks for the graph, snapping and reach tests."""

from __future__ import annotations

import numpy as np
from pyproj import CRS
from tuoyu.network.walk_network import WalkNetwork

X0, Y0 = 500_000.0, 3_300_000.0


def network(
    xy: list[tuple[float, float]],
    edges: list[tuple[int, int]],
    lengths: list[float] | None = None,
) -> WalkNetwork:
    """A network from node coordinates (offset to X0/Y0) and edges (Euclidean lengths)."""
    x = np.array([p[0] for p in xy], dtype=float) + X0
    y = np.array([p[1] for p in xy], dtype=float) + Y0
    u = np.array([e[0] for e in edges], dtype=np.int64)
    v = np.array([e[1] for e in edges], dtype=np.int64)
    length = np.hypot(x[v] - x[u], y[v] - y[u]) if lengths is None else np.asarray(lengths, float)
    return WalkNetwork(
        node_id=np.arange(len(xy), dtype=np.int64),
        node_x_m=x,
        node_y_m=y,
        edge_u=u,
        edge_v=v,
        edge_length_m=length,
        edge_way_id=np.full(len(edges), -1, dtype=np.int64),
        crs=CRS.from_epsg(32648),
        source="hand-made test network",
    )
