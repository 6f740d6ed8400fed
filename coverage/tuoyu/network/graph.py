"""The walking network as a symmetric CSR matrix of edge lengths, with spatial indexes.

:func:`build_graph` turns a :class:`~tuoyu.network.walk_network.WalkNetwork` into a
:class:`WalkGraph` once; every routing function (snapping, reach, isochrones) reads it.
The CSR build is a few vectorised numpy passes (about 1 s for 10⁶ nodes, 15 ms for
Yuzhong), so it is kept in process only: the parsed network itself is what the loader
caches on disk.
The spatial indexes (a bucket grid of the edges for snapping and isochrones, a KD-tree of
the nodes for local searches, an STRtree of the edge segments for the few callers that
need GEOS geometries) and the connected components are built lazily on first use.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from tuoyu.errors import InputValidationError
from tuoyu.network.edge_grid import EdgeGrid
from tuoyu.network.walk_network import WalkNetwork


class WalkGraph:
    """A walking network ready for routing.

    Do not construct directly; use :func:`build_graph`.

    Attributes
    ----------
    network
        The network the graph was built from (nodes, segments, metric CRS).
    csr
        Symmetric ``(n, n)`` ``scipy.sparse.csr_array`` of float64 edge lengths in
        metres. Parallel segments between the same two nodes keep the shortest length;
        zero-length segments are stored as explicit zeros (``scipy.sparse.csgraph``
        treats stored zeros as edges), so never call ``eliminate_zeros`` on it.
    max_stretch
        Largest ratio of a segment's straight length in the CRS to its stored length
        (≥ 1). A walk of ``d`` metres never ends farther than ``d * max_stretch`` metres
        (straight line) from where it started; local searches use this to choose a
        search radius that is exact even when the loader's lengths are geodesic and a
        little shorter than the projected segments. ``inf`` when a segment of length 0
        joins two distinct points (local searches then use the whole graph).
    """

    def __init__(self, network: WalkNetwork, csr: sp.csr_array, max_stretch: float) -> None:
        self.network = network
        self.csr = csr
        self.max_stretch = max_stretch

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return self.network.n_nodes

    @cached_property
    def edge_lines(self) -> npt.NDArray[np.object_]:
        """The segments as shapely LineStrings (metric CRS), one per network edge."""
        lines: npt.NDArray[np.object_] = np.asarray(
            shapely.linestrings(self.network.edge_segments()), dtype=object
        )
        return lines

    @cached_property
    def edge_grid(self) -> EdgeGrid:
        """Square buckets of the edges (snapping, walk-field isochrones; built on first use)."""
        return EdgeGrid.build(self.network)

    @cached_property
    def edge_tree(self) -> shapely.STRtree:
        """STRtree over :attr:`edge_lines` (built on first use)."""
        return shapely.STRtree(self.edge_lines)

    @cached_property
    def node_tree(self) -> cKDTree:
        """KD-tree over the node coordinates (built on first use)."""
        return cKDTree(self.network.node_xy())

    @cached_property
    def component_labels(self) -> npt.NDArray[np.int64]:
        """Connected-component label of each node, shape (n,) (computed on first use).

        ``scipy.sparse.csgraph.connected_components`` on the CSR graph (stored zeros,
        i.e. zero-length segments, count as connections). Labels are ``0..c-1``.
        """
        _, labels = connected_components(self.csr, directed=False)
        out: npt.NDArray[np.int64] = np.asarray(labels, dtype=np.int64)
        return out

    @cached_property
    def component_n_nodes(self) -> npt.NDArray[np.int64]:
        """Number of nodes of each connected component, indexed by label, shape (c,)."""
        sizes: npt.NDArray[np.int64] = np.bincount(self.component_labels).astype(np.int64)
        return sizes

    @cached_property
    def edge_component_n_nodes(self) -> npt.NDArray[np.int64]:
        """Number of nodes of the component each edge belongs to, shape (m,)."""
        sizes: npt.NDArray[np.int64] = self.component_n_nodes[
            self.component_labels[self.network.edge_u]
        ]
        return sizes

    def effective_min_component_nodes(self, min_component_nodes: int) -> int:
        """The threshold actually applied: never above the largest component's size.

        So a study area whose whole network is smaller than the threshold still has its
        largest piece (all pieces of that largest size) to snap to.

        Examples
        --------
        >>> from tuoyu.synthetic import synthetic_city
        >>> g = build_graph(synthetic_city(30, seed=0, removed_share=0.0))
        >>> g.effective_min_component_nodes(40), g.effective_min_component_nodes(5)
        (30, 5)
        """
        if self.n_nodes == 0:
            return 0
        return int(min(int(min_component_nodes), int(self.component_n_nodes.max())))

    def main_edges(self, min_component_nodes: int) -> npt.NDArray[np.bool_]:
        """Mask of the edges whose component has at least ``min_component_nodes`` nodes.

        The threshold is capped at the largest component's size
        (:meth:`effective_min_component_nodes`), so some edge always qualifies when the
        network has edges.
        """
        threshold = self.effective_min_component_nodes(min_component_nodes)
        mask: npt.NDArray[np.bool_] = self.edge_component_n_nodes >= threshold
        return mask

    def __repr__(self) -> str:
        return (
            f"WalkGraph({self.network.n_nodes} nodes, {self.csr.nnz // 2} node pairs, "
            f"crs={self.network.crs.to_string()})"
        )


def build_graph(network: WalkNetwork) -> WalkGraph:
    """Build the symmetric CSR routing graph of ``network``.

    Parameters
    ----------
    network
        Nodes and straight undirected segments in a metric CRS.

    Returns
    -------
    WalkGraph

    Raises
    ------
    InputValidationError
        When an edge refers to a missing node, joins a node to itself, or has a
        negative or non-finite length.

    Examples
    --------
    >>> from tuoyu.synthetic import synthetic_city
    >>> graph = build_graph(synthetic_city(100, seed=0))
    >>> graph.csr.shape
    (100, 100)
    >>> bool((graph.csr != graph.csr.T).nnz == 0)
    True
    """
    n = network.n_nodes
    u = np.asarray(network.edge_u, dtype=np.int64)
    v = np.asarray(network.edge_v, dtype=np.int64)
    length_m = np.asarray(network.edge_length_m, dtype=np.float64)
    if not (u.shape == v.shape == length_m.shape):
        raise InputValidationError("edge_u, edge_v and edge_length_m differ in length")
    _check_edges(u, v, length_m, n)

    # Parallel segments between the same two nodes keep the shortest length. scipy's
    # COO→CSR conversion would *sum* duplicates, so reduce them first: sort the canonical
    # pair keys (one int64 sort) and take the minimum of each run.
    lo = np.minimum(u, v)
    hi = np.maximum(u, v)
    key = lo * np.int64(n) + hi
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    start = np.ones(key_sorted.shape[0], dtype=bool)
    start[1:] = key_sorted[1:] != key_sorted[:-1]
    if start.all():
        lo_u, hi_u, len_u = lo, hi, length_m
    else:
        run = np.flatnonzero(start)
        lo_u = lo[order[run]]
        hi_u = hi[order[run]]
        len_u = np.minimum.reduceat(length_m[order], run)
    # int32 indices halve the memory of large graphs (scipy.sparse.csgraph uses int32).
    small = max(n, 2 * lo_u.shape[0]) < np.iinfo(np.int32).max
    index_dtype = np.int32 if small else np.int64
    rows = np.concatenate([lo_u, hi_u]).astype(index_dtype)
    cols = np.concatenate([hi_u, lo_u]).astype(index_dtype)
    data = np.concatenate([len_u, len_u])
    # No duplicates remain, so COO→CSR (in C) is exact; it keeps stored zeros.
    csr = sp.csr_array(sp.coo_array((data, (rows, cols)), shape=(n, n)))
    csr.has_sorted_indices = False
    csr.sort_indices()
    return WalkGraph(network, csr, _max_stretch(network, u, v, length_m))


def _check_edges(
    u: npt.NDArray[np.int64],
    v: npt.NDArray[np.int64],
    length_m: npt.NDArray[np.float64],
    n: int,
) -> None:
    """Raise InputValidationError naming the first bad edge, if any."""
    bad = (u < 0) | (u >= n) | (v < 0) | (v >= n)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputValidationError(
            f"edge {i} refers to node index {int(u[i])}–{int(v[i])} outside 0..{n - 1}",
            row=i + 1,
            field="edge_u/edge_v",
        )
    loop = u == v
    if loop.any():
        i = int(np.flatnonzero(loop)[0])
        raise InputValidationError(
            f"edge {i} joins node {int(u[i])} to itself", row=i + 1, field="edge_u/edge_v"
        )
    invalid = ~np.isfinite(length_m) | (length_m < 0.0)
    if invalid.any():
        i = int(np.flatnonzero(invalid)[0])
        raise InputValidationError(
            f"edge {i} has length {length_m[i]!r}; lengths must be finite and >= 0 metres",
            row=i + 1,
            field="edge_length_m",
        )


def _max_stretch(
    network: WalkNetwork,
    u: npt.NDArray[np.int64],
    v: npt.NDArray[np.int64],
    length_m: npt.NDArray[np.float64],
) -> float:
    """Largest straight-length / stored-length ratio over the segments (at least 1)."""
    if u.shape[0] == 0:
        return 1.0
    straight_m = np.hypot(
        network.node_x_m[v] - network.node_x_m[u], network.node_y_m[v] - network.node_y_m[u]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(straight_m > 0.0, straight_m / length_m, 1.0)
    # A tiny relative margin absorbs rounding in the ratio and in later sums.
    return max(1.0, float(ratio.max())) * (1.0 + 1e-9)
