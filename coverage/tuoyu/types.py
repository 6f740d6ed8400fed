"""Data types exchanged between snapping, reach and isochrone building.

Kept apart so that the isochrone, indicator and siting modules depend only on these
shapes, not on how the reach engine computes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SnappedPoints:
    """Points joined to the walking network at the nearest point of the nearest edge.

    All arrays have shape (k,) for k input points; coordinates are in the network's
    metric CRS.

    Attributes
    ----------
    x_m, y_m
        The input points.
    edge
        Index of the nearest edge (into ``WalkNetwork.edge_*``), ``-1`` when off-network.
    fraction
        Position of the snapped point along the edge, 0 at ``edge_u`` and 1 at ``edge_v``.
    snap_x_m, snap_y_m
        The snapped point on the edge.
    access_m
        Straight access leg from the input point to the snapped point (counts as walking).
    off_network
        True where ``access_m`` exceeds ``max_snap_m``: such points are never snapped and
        have no walking time.
    max_snap_m
        The snapping limit used (metres).
    moved_from_island
        True where the nearest edge lies on an island (a connected piece of the network
        smaller than ``min_component_nodes``) and the point was therefore joined to the
        nearest edge of a large enough piece, or left off-network when that edge is
        beyond ``max_snap_m``. ``None`` when not recorded (points built by hand or
        re-assembled from other :class:`SnappedPoints`); see :attr:`n_moved_from_island`.
    min_component_nodes
        The island threshold the snapping applied (nodes; ``0`` when none was applied).
    """

    x_m: npt.NDArray[np.float64]
    y_m: npt.NDArray[np.float64]
    edge: npt.NDArray[np.int64]
    fraction: npt.NDArray[np.float64]
    snap_x_m: npt.NDArray[np.float64]
    snap_y_m: npt.NDArray[np.float64]
    access_m: npt.NDArray[np.float64]
    off_network: npt.NDArray[np.bool_]
    max_snap_m: float
    moved_from_island: npt.NDArray[np.bool_] | None = None
    min_component_nodes: int = 0

    def __len__(self) -> int:
        return int(self.x_m.shape[0])

    @property
    def n_moved_from_island(self) -> int:
        """How many points were moved away from a nearer island edge (0 if not recorded)."""
        if self.moved_from_island is None:
            return 0
        return int(np.count_nonzero(self.moved_from_island))


@dataclass(frozen=True)
class LocalReach:
    """What one source point reaches within a cut-off (bounded search, local arrays only).

    Attributes
    ----------
    source
        Index of the source among the snapped points it came from.
    cutoff_m
        The walking-distance cut-off of the search.
    node
        Indices of the reached nodes (int64), shape (r,).
    dist_m
        Walking distance from the source point to each reached node, access leg and the
        partial first edge included; every value ≤ ``cutoff_m``.
    start_edge, start_fraction, access_m
        Where the source joins the network (see :class:`SnappedPoints`); a source that is
        off-network reaches nothing (empty arrays).
    """

    source: int
    cutoff_m: float
    node: npt.NDArray[np.int64]
    dist_m: npt.NDArray[np.float64]
    start_edge: int
    start_fraction: float
    access_m: float
