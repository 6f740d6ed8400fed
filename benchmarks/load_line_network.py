"""Loading the Dongcheng road line layer: our loader vs momepy + networkx.

Usage::

    python -m benchmarks.load_line_network            # table + ratios
    python -m benchmarks.load_line_network --json     # the same as JSON
    python -m benchmarks.load_line_network --write    # also store results/load_line_network.json

How the tools are made comparable
---------------------------------
Both read ``beijing-dongcheng/roads.geojson`` (15,542 GCJ-02 lines), convert GCJ-02 to
WGS84 with the project's converter, project to UTM 50N and build a routable graph; the
timed call covers all of it.

* ours: ``load_line_network(path, crs="gcj02")`` (cache off; includes its report:
  components, dangling ends) and ``build_graph`` (the CSR routing graph).
* momepy: ``geopandas.read_file`` (pyogrio), ``gdf_to_wgs84(gdf, "gcj02")``,
  ``to_crs(UTM 50N)``, ``momepy.gdf_to_nx(approach="primal")`` (one networkx edge per
  line between its end points, as momepy builds street networks) and
  ``networkx.number_connected_components`` (what our report gives).

The two alternate strictly in one process (ours, momepy, ours, ...) after one warm-up
call each (imports and first-call caches), ``--rounds`` times (at least 5); medians of
wall and CPU time (``time.process_time``) and their ratios are reported. Summaries
(nodes, edges, components, km) are printed side by side: momepy joins lines at their end
points only, ours at every shared vertex; on this layer lines meet at end points, so
the component counts agree while the node and edge counts differ by design (ours keeps
every vertex pair as a segment).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import momepy
import networkx as nx
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.settings import get_settings
from tuoyu.crs.projection import gdf_to_wgs84
from tuoyu.layers.line_network import load_line_network
from tuoyu.network.graph import build_graph

from benchmarks._common import machine_description, write_result

ROADS = "beijing-dongcheng/roads.geojson"
UTM_50N = "EPSG:32650"
PACKAGES = ("numpy", "scipy", "shapely", "pyogrio", "geopandas", "momepy", "networkx")


def run_ours(path: str) -> dict[str, Any]:
    """Our loader (cache off) and the CSR routing graph."""
    net = load_line_network(Path(path), crs="gcj02")
    graph = build_graph(net)
    report = net.metadata["report"]
    return {
        "nodes": graph.n_nodes,
        "edges": net.n_edges,
        "components": getattr(report, "components", None),
        "total_length_m": net.total_length_m,
    }


def run_momepy(path: str) -> dict[str, Any]:
    """geopandas read, GCJ-02 → WGS84 → UTM, momepy primal graph, components."""
    gdf = gpd.read_file(path, engine="pyogrio")
    metric = gdf_to_wgs84(gdf, "gcj02").to_crs(UTM_50N)
    graph = momepy.gdf_to_nx(metric, approach="primal", length="length_m")
    return {
        "nodes": graph.number_of_nodes(),
        "edges": graph.number_of_edges(),
        "components": nx.number_connected_components(graph),
        "total_length_m": float(sum(d["length_m"] for _, _, d in graph.edges(data=True))),
    }


def _timed(fn: Callable[[str], dict[str, Any]], path: str) -> tuple[float, float, dict[str, Any]]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    summary = fn(path)
    return time.perf_counter() - wall0, time.process_time() - cpu0, summary


def benchmark(rounds: int) -> dict[str, Any]:
    """Alternate the two tools ``rounds`` times after a warm-up; medians and ratios."""
    path = str(resolve_data_file(ROADS, get_settings()))
    tools: dict[str, Callable[[str], dict[str, Any]]] = {
        "ours_load_line_network": run_ours,
        "momepy_gdf_to_nx": run_momepy,
    }
    for fn in tools.values():  # warm-up, not counted
        fn(path)
    wall: dict[str, list[float]] = {name: [] for name in tools}
    cpu: dict[str, list[float]] = {name: [] for name in tools}
    summaries: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for name, fn in tools.items():
            w, c, summaries[name] = _timed(fn, path)
            wall[name].append(w)
            cpu[name].append(c)
    results: dict[str, dict[str, Any]] = {
        name: {
            "wall_s_median": statistics.median(wall[name]),
            "cpu_s_median": statistics.median(cpu[name]),
            "wall_s_all": wall[name],
            "cpu_s_all": cpu[name],
            "summary": summaries[name],
        }
        for name in tools
    }
    ours, peer = results["ours_load_line_network"], results["momepy_gdf_to_nx"]
    return {
        "benchmark": "load_line_network",
        "data": ROADS,
        "rounds": rounds,
        "order": "strictly alternating in one process after one warm-up call each",
        "results": results,
        "ratio_momepy_over_ours": {
            "wall_median": round(peer["wall_s_median"] / ours["wall_s_median"], 2),
            "cpu_median": round(peer["cpu_s_median"] / ours["cpu_s_median"], 2),
        },
    }


def _print_table(payload: dict[str, Any]) -> None:
    print(f"Loading the Dongcheng road layer ({payload['rounds']} alternating rounds, medians)")
    print(f"{'tool':26} {'wall s':>8} {'cpu s':>8} {'nodes':>7} {'edges':>7} {'comp':>5} {'km':>8}")
    for name, item in payload["results"].items():
        s = item["summary"]
        print(
            f"{name:26} {item['wall_s_median']:8.3f} {item['cpu_s_median']:8.3f} "
            f"{s['nodes']:7d} {s['edges']:7d} {s['components']:5d} "
            f"{s['total_length_m'] / 1000:8.1f}"
        )
    ratio = payload["ratio_momepy_over_ours"]
    print(f"ratio momepy / ours: wall {ratio['wall_median']}x, cpu {ratio['cpu_median']}x")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--write", action="store_true", help="store results/load_line_network.json")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (min 5)")
    args = parser.parse_args(argv)
    payload = benchmark(max(5, args.rounds))
    if args.write:
        payload["machine"] = machine_description(PACKAGES)
        target = write_result("load_line_network", payload)
        print(f"written {target}", file=sys.stderr)
    if args.json:
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        _print_table(payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
