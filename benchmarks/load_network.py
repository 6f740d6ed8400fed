"""Loading the Yuzhong walking network: our pyosmium loader vs osmnx (and pyrosm).

Usage::

    python -m benchmarks.load_network            # table + ratios
    python -m benchmarks.load_network --json     # the same as JSON
    python -m benchmarks.load_network --write    # also store benchmarks/results/load_network.json

Each tool runs in its own fresh process (imports done before timing), ``--repeat`` times.

How the tools are made comparable
---------------------------------
* ours: ``load_walk_network`` on the PBF (and on the ``.osm.bz2``), cache off.
* osmnx: ``graph_from_xml`` on the ``.osm.bz2`` (same data). ``graph_from_xml`` does not
  filter by network type (it turns every way, buildings included, into edges), so the
  timed call also applies osmnx's own ``walk`` filter afterwards: the way tags it
  tests are added to ``settings.useful_tags_way`` so they reach the edges, and edges of
  ways failing the filter are removed, then isolated nodes. Arguments as for a walk
  network without topology changes: ``bidirectional=True`` (osmnx's default for
  ``walk``), ``simplify=False`` (our network is unsimplified too), ``retain_all=True``
  (we keep every component).
* pyrosm (optional): ``OSM(pbf).get_network("walking", nodes=True)``; its own walking
  filter differs slightly from osmnx's (counts are printed side by side).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import osmnx as ox
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.settings import get_settings
from tuoyu.layers.osm_network import WALK_FILTER, WALK_FILTER_KEYS, is_walkable, load_walk_network

from benchmarks._common import machine_description, run_isolated, write_result

try:  # optional comparison
    import pyrosm
except ImportError:  # pragma: no cover
    pyrosm = None

PBF = "chongqing-yuzhong/yuzhong.osm.pbf"
XML_BZ2 = "chongqing-yuzhong/yuzhong.osm.bz2"


def run_ours(path: str) -> dict[str, Any]:
    """Our loader, cache off."""
    net = load_walk_network(Path(path))
    return {"nodes": net.n_nodes, "edges": net.n_edges, "total_length_m": net.total_length_m}


def run_osmnx(path: str) -> dict[str, Any]:
    """osmnx.graph_from_xml plus osmnx's walk filter applied to the edges."""
    ox.settings.log_console = False
    ox.settings.useful_tags_way = sorted(set(ox.settings.useful_tags_way) | set(WALK_FILTER_KEYS))
    graph = ox.graph_from_xml(path, bidirectional=True, simplify=False, retain_all=True)
    drop = [
        (u, v, k) for u, v, k, data in graph.edges(keys=True, data=True) if not is_walkable(data)
    ]
    graph.remove_edges_from(drop)
    graph.remove_nodes_from([n for n, degree in graph.degree() if degree == 0])
    # Undirected segments, as ours: each node pair once, no self-loops.
    pairs: dict[tuple[int, int], float] = {}
    for u, v, data in graph.edges(data=True):
        if u != v:
            pairs.setdefault((min(u, v), max(u, v)), float(data["length"]))
    return {
        "nodes": graph.number_of_nodes(),
        "edges": len(pairs),
        "directed_edges": graph.number_of_edges(),
        "total_length_m": sum(pairs.values()),
        "edges_removed_by_walk_filter": len(drop),
    }


def run_pyrosm(path: str) -> dict[str, Any]:
    """pyrosm's walking network (nodes and edges GeoDataFrames)."""
    nodes, edges = pyrosm.OSM(path).get_network(network_type="walking", nodes=True)
    return {
        "nodes": len(nodes),
        "edges": len(edges),
        "total_length_m": float(edges["length"].sum()),
    }


def benchmark(repeat: int, *, with_pyrosm: bool = True) -> dict[str, Any]:
    """Run every tool in a fresh process; return times, summaries and ratios."""
    settings = get_settings()
    pbf = str(resolve_data_file(PBF, settings))
    xml = str(resolve_data_file(XML_BZ2, settings))
    results: dict[str, dict[str, Any]] = {
        "ours_pbf": run_isolated(run_ours, pbf, repeat=repeat),
        "ours_osm_bz2": run_isolated(run_ours, xml, repeat=repeat),
        "osmnx_graph_from_xml_walk": run_isolated(run_osmnx, xml, repeat=repeat),
    }
    if with_pyrosm and pyrosm is not None:
        results["pyrosm_walking"] = run_isolated(run_pyrosm, pbf, repeat=repeat)
    base = results["ours_pbf"]["seconds_best"]
    ratios = {
        f"{name} / ours_pbf": round(item["seconds_best"] / base, 2)
        for name, item in results.items()
        if name != "ours_pbf"
    }
    return {
        "benchmark": "load_network",
        "data": {"pbf": PBF, "xml": XML_BZ2},
        "repeat": repeat,
        "walk_filter": WALK_FILTER,
        "results": results,
        "ratios_best_time": ratios,
    }


def _print_table(payload: dict[str, Any]) -> None:
    print(f"Loading the Yuzhong walking network (best of {payload['repeat']}, fresh process each)")
    print(
        f"{'tool':28} {'best s':>8} {'first s':>8} {'peak MiB':>9} {'nodes':>7} {'edges':>7} {'km':>7}"
    )
    for name, item in payload["results"].items():
        s = item["summary"]
        print(
            f"{name:28} {item['seconds_best']:8.3f} {item['seconds_first']:8.3f} "
            f"{item['peak_rss_mb']:9.0f} {s['nodes']:7d} {s['edges']:7d} "
            f"{s['total_length_m'] / 1000:7.1f}"
        )
    for label, ratio in payload["ratios_best_time"].items():
        print(f"ratio {label}: {ratio}x")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--write", action="store_true", help="store results/load_network.json")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool (default 3)")
    parser.add_argument("--no-pyrosm", action="store_true", help="skip pyrosm")
    args = parser.parse_args(argv)
    payload = benchmark(max(1, args.repeat), with_pyrosm=not args.no_pyrosm)
    if args.write:
        payload["machine"] = machine_description()
        target = write_result("load_network", payload)
        print(f"written {target}", file=sys.stderr)
    if args.json:
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        _print_table(payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
