"""The walking network as plain arrays: nodes and straight undirected segments.

Every OSM way is kept as its consecutive node pairs (no topological simplification), so
each edge's geometry is the straight segment between its two end nodes and partial
edges can be cut exactly. All coordinates are in a metric CRS (UTM), lengths in metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pyproj import CRS


@dataclass(frozen=True)
class WalkNetwork:
    """An undirected walking network.

    Attributes
    ----------
    node_id
        OSM node ids (int64), shape (n,). Synthetic networks use 0..n-1.
    node_x_m, node_y_m
        Node coordinates in ``crs`` (metres), shape (n,).
    edge_u, edge_v
        Edge end points as indices into the node arrays (int64), shape (m,). Each
        undirected segment is stored once; ``edge_u != edge_v``.
    edge_length_m
        Segment lengths in metres (float64), shape (m,).
    edge_way_id
        The OSM way each segment belongs to (int64), shape (m,); -1 when synthetic.
    crs
        The metric CRS of the coordinates.
    source
        Where the network came from (file path and sha256, or "synthetic ...").
    """

    node_id: npt.NDArray[np.int64]
    node_x_m: npt.NDArray[np.float64]
    node_y_m: npt.NDArray[np.float64]
    edge_u: npt.NDArray[np.int64]
    edge_v: npt.NDArray[np.int64]
    edge_length_m: npt.NDArray[np.float64]
    edge_way_id: npt.NDArray[np.int64]
    crs: CRS
    source: str = ""
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.node_id.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of undirected segments."""
        return int(self.edge_u.shape[0])

    @property
    def total_length_m(self) -> float:
        """Sum of segment lengths in metres."""
        return float(self.edge_length_m.sum())

    def node_xy(self) -> npt.NDArray[np.float64]:
        """Node coordinates as an (n, 2) array."""
        return np.column_stack([self.node_x_m, self.node_y_m])

    def edge_segments(self) -> npt.NDArray[np.float64]:
        """Edge end coordinates as an (m, 2, 2) array ``[[x_u, y_u], [x_v, y_v]]``."""
        xy = self.node_xy()
        return np.stack([xy[self.edge_u], xy[self.edge_v]], axis=1)
