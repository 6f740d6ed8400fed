"""Peer implementations of walking reach, used only by ``benchmarks/reach.py``.

Each peer runs on a graph built independently from the same :class:`WalkNetwork` and
the same snapped facilities: every facility becomes a real node splitting its edge,
with a pendant node at the facility point joined by the access leg. On that graph the
peers' answers are exactly comparable with ours.

* networkx: ``multi_source_dijkstra_path_length`` with ``cutoff``;
* osmnx's isochrone recipe (osmnx examples, "isolines"): ``nx.ego_graph(G, node,
  radius, distance="length")`` per facility, then the convex hull of the reached nodes;
* pandana: ``Network`` (contraction hierarchies) + ``set_pois`` + ``nearest_pois``;
* a hand-written heap-based bounded Dijkstra over our CSR arrays, to compare with the
  KD-tree local-subgraph search used by :mod:`tuoyu.reach.engine`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt
import shapely
from tuoyu.network.graph import WalkGraph
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.types import SnappedPoints


@dataclass(frozen=True)
class SplitGraph:
    """The network with snapped points inserted as real nodes (integer ids).

    Nodes ``0..n-1`` are the network nodes; ``point_node[i]`` is the node at point
    ``i`` (``-1`` when off-network). ``x_m``/``y_m`` give every node's coordinates.
    """

    u: npt.NDArray[np.int64]
    v: npt.NDArray[np.int64]
    length_m: npt.NDArray[np.float64]
    x_m: npt.NDArray[np.float64]
    y_m: npt.NDArray[np.float64]
    point_node: npt.NDArray[np.int64]
    n_network_nodes: int

    def to_networkx(self) -> nx.Graph:
        """Undirected networkx graph with edge attribute ``length`` (parallel → shortest)."""
        order = np.argsort(-self.length_m, kind="stable")  # the shortest is added last
        graph = nx.Graph()
        graph.add_nodes_from(range(self.x_m.shape[0]))
        graph.add_weighted_edges_from(
            zip(
                self.u[order].tolist(),
                self.v[order].tolist(),
                self.length_m[order].tolist(),
                strict=True,
            ),
            weight="length",
        )
        return graph


def split_graph(network: WalkNetwork, points: SnappedPoints) -> SplitGraph:
    """Insert the on-network ``points`` into ``network`` as real nodes."""
    n = network.n_nodes
    on = np.flatnonzero(~points.off_network)
    k = on.shape[0]
    split_node = n + np.arange(k, dtype=np.int64)  # on the edge
    pend_node = n + k + np.arange(k, dtype=np.int64)  # at the point
    has_point = np.zeros(network.n_edges, dtype=bool)
    has_point[points.edge[on]] = True
    keep = ~has_point
    us = [network.edge_u[keep]]
    vs = [network.edge_v[keep]]
    ls = [network.edge_length_m[keep]]
    # Chains along the edges that carry points, points sorted by position.
    order = np.lexsort((points.fraction[on], points.edge[on]))
    e_sorted = points.edge[on][order]
    starts = np.flatnonzero(np.r_[True, e_sorted[1:] != e_sorted[:-1]])
    ends = np.r_[starts[1:], k]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        e = int(e_sorted[a])
        length = float(network.edge_length_m[e])
        chain_nodes = [int(network.edge_u[e])]
        chain_f = [0.0]
        for j in order[a:b].tolist():
            chain_nodes.append(int(split_node[j]))
            chain_f.append(float(points.fraction[on[j]]))
        chain_nodes.append(int(network.edge_v[e]))
        chain_f.append(1.0)
        us.append(np.array(chain_nodes[:-1], dtype=np.int64))
        vs.append(np.array(chain_nodes[1:], dtype=np.int64))
        ls.append(np.diff(np.array(chain_f)) * length)
    us.append(split_node)
    vs.append(pend_node)
    ls.append(points.access_m[on])
    point_node = np.full(len(points), -1, dtype=np.int64)
    point_node[on] = pend_node
    return SplitGraph(
        u=np.concatenate(us),
        v=np.concatenate(vs),
        length_m=np.concatenate(ls).astype(np.float64),
        x_m=np.concatenate([network.node_x_m, points.snap_x_m[on], points.x_m[on]]),
        y_m=np.concatenate([network.node_y_m, points.snap_y_m[on], points.y_m[on]]),
        point_node=point_node,
        n_network_nodes=n,
    )


# ----------------------------------------------------------------------------- networkx


def networkx_multisource(
    graph: nx.Graph, sources: list[int], cutoff_m: float, n_nodes: int
) -> npt.NDArray[np.float64]:
    """Distance from each of nodes ``0..n_nodes-1`` to the nearest source (``inf`` beyond)."""
    dist = nx.multi_source_dijkstra_path_length(graph, sources, cutoff=cutoff_m, weight="length")
    out = np.full(n_nodes, np.inf)
    for node, d in dist.items():
        if node < n_nodes:
            out[node] = d
    return out


def osmnx_isochrone_recipe(
    graph: nx.Graph,
    x_m: npt.NDArray[np.float64],
    y_m: npt.NDArray[np.float64],
    source: int,
    cutoff_m: float,
) -> tuple[list[int], Any]:
    """osmnx's isochrone example: ego graph by length, convex hull of the reached nodes.

    Returns the reached node ids and the hull (a shapely geometry).
    """
    sub = nx.ego_graph(graph, source, radius=cutoff_m, distance="length")
    nodes = list(sub.nodes)
    hull = shapely.convex_hull(shapely.multipoints(np.column_stack([x_m[nodes], y_m[nodes]])))
    return nodes, hull


# ----------------------------------------------------------------------------- pandana


def pandana_network(split: SplitGraph) -> object:
    """A pandana Network of the split graph (contraction hierarchies are built here)."""
    import pandana
    import pandas as pd

    ids = np.arange(split.x_m.shape[0], dtype=np.int64)
    return pandana.Network(
        pd.Series(split.x_m, index=ids),
        pd.Series(split.y_m, index=ids),
        pd.Series(split.u),
        pd.Series(split.v),
        pd.DataFrame({"length": split.length_m}),
        twoway=True,
    )


def pandana_nearest(
    net: object,
    poi_x_m: npt.NDArray[np.float64],
    poi_y_m: npt.NDArray[np.float64],
    cutoff_m: float,
    n_nodes: int,
) -> npt.NDArray[np.float64]:
    """``set_pois`` + ``nearest_pois(num_pois=1)``: distance per node ``0..n_nodes-1``."""
    import pandas as pd

    net.set_pois("facility", cutoff_m, 1, pd.Series(poi_x_m), pd.Series(poi_y_m))  # type: ignore[attr-defined]
    table = net.nearest_pois(cutoff_m, "facility", num_pois=1, include_poi_ids=True)  # type: ignore[attr-defined]
    dist = table[1].to_numpy(dtype=np.float64, copy=True)
    dist[table["poi1"].isna().to_numpy()] = np.inf
    out = np.full(n_nodes, np.inf)
    index = table.index.to_numpy()
    mask = index < n_nodes
    out[index[mask]] = dist[mask]
    return out


# ----------------------------------------------------------------------------- heap Dijkstra


def heap_bounded_dijkstra(
    graph: WalkGraph, starts: list[tuple[int, float]], cutoff_m: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Bounded Dijkstra with :mod:`heapq` over the CSR arrays, from start (node, metres).

    A deliberately plain pure-Python alternative to the KD-tree local subgraph + scipy
    search in :mod:`tuoyu.reach.engine`; only dictionaries of the visited nodes are kept.
    """
    indptr = graph.csr.indptr
    indices = graph.csr.indices
    data = graph.csr.data
    best: dict[int, float] = {}
    heap = [(d, node) for node, d in starts if d <= cutoff_m]
    heapq.heapify(heap)
    done: dict[int, float] = {}
    while heap:
        d, node = heapq.heappop(heap)
        if node in done:
            continue
        done[node] = d
        for pos in range(int(indptr[node]), int(indptr[node + 1])):
            nbr = int(indices[pos])
            nd = d + float(data[pos])
            if nd <= cutoff_m and nbr not in done and nd < best.get(nbr, np.inf):
                best[nbr] = nd
                heapq.heappush(heap, (nd, nbr))
    nodes = np.fromiter(done.keys(), dtype=np.int64, count=len(done))
    dist = np.fromiter(done.values(), dtype=np.float64, count=len(done))
    order = np.argsort(nodes)
    return nodes[order], dist[order]
