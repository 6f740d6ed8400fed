"""Benchmark: walking reach (ours) against scipy, networkx, pandana and osmnx's recipe.

One network, every facility count on it (prints one JSON object with ``--json``)::

    python -m benchmarks.reach --nodes 100000 --facilities 1000,5000 --json
    python -m benchmarks.reach --yuzhong --facilities 1000,5000

The matrix (each network in its own process, bounded by ``--timeout-s``) with the
machine description::

    python -m benchmarks.reach --all --networks yuzhong,100000,1000000  # → results/reach.json

How it is timed
---------------
Every comparison goes through :func:`benchmarks._common.alternating_rounds`: ours and
each peer in this one process, strictly alternating, ``--rounds`` rounds (at least 5),
medians of CPU time (``time.process_time``, all threads) and wall time, the 1-minute
load average recorded before the first and after the last round. A peer that is not
installed, fails, or is not run at a size (pandana above ``--pandana-max-nodes``) is
reported with its reason and gets no ratio: nothing is scaled or extrapolated. Graph
construction (ours and every peer's) is outside the timing and reported apart.

The peers run on the same network with the facilities inserted as real nodes (split
edge + access leg, :func:`benchmarks.peers.split_graph`), so their answers are exactly
comparable with ours and are compared node by node (``agreement``). The facilities are
random points near the streets (:func:`tuoyu.synthetic.random_facilities`), snapped with
a 300 m limit; a smaller facility count is the first points of the largest one, so one
split graph (and one pandana build) serves every count.

Two stages:

* ``nearest`` — walking distance from every node to its nearest facility, one bounded
  multi-source search: ours ``nearest_facility_times`` (a virtual source per mid-edge
  facility); scipy ``csgraph.dijkstra(min_only=True, limit=cutoff)``; networkx
  ``multi_source_dijkstra_path_length(cutoff)``; pandana ``set_pois`` +
  ``nearest_pois(num_pois=1)`` (its contraction-hierarchy ``Network()`` build is
  outside the timing; pandana keeps distances in single precision, a few cm).
* ``per_facility`` — each facility's own reach (the routing behind its isochrone) for
  the same ``--sample`` facilities in every tool: ours ``all_facility_reach``; the
  osmnx isochrone recipe's routing step ``nx.ego_graph(G, node, radius, distance=
  "length")`` (its convex hull is timed with the polygons in ``benchmarks.isochrones``);
  a plain ``heapq`` Dijkstra over our CSR arrays (a reference, not a library).

Networks are synthetic cities (:func:`tuoyu.synthetic.synthetic_city`: jittered street
grid, 50–150 m blocks, clearly synthetic) or the real Yuzhong OSM extract.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tuoyu.outputs.atomic import write_text_atomic

from benchmarks._common import (
    RESULTS_DIR,
    alternating_rounds,
    machine_description,
    measure,
    missing_module,
    not_run,
    peak_rss_mb,
    ratios_against,
)

RESULTS = RESULTS_DIR / "reach.json"
ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("numpy", "scipy", "shapely", "networkx", "osmnx", "pandana", "pandas", "igraph")
PEERS = ("scipy", "networkx", "pandana", "osmnx", "heapq", "igraph", "cityseer")
ALL_NETWORKS = ("yuzhong", "100000", "1000000")


# ----------------------------------------------------------------------------- setup


def _network(yuzhong: bool, nodes: int, seed: int) -> Any:
    if yuzhong:
        from tuoyu.config.data_registry import resolve_data_file
        from tuoyu.config.settings import get_settings
        from tuoyu.layers.osm_network import load_walk_network

        settings = get_settings()
        path = resolve_data_file("chongqing-yuzhong/yuzhong.osm.pbf", settings)
        return load_walk_network(path, settings=settings)
    from tuoyu.synthetic import synthetic_city

    return synthetic_city(nodes, seed=seed)


def _scipy_matrix(split: Any) -> Any:
    """Symmetric CSR of the split graph; parallel edges keep their shortest length."""
    import scipy.sparse as sp

    n = split.x_m.shape[0]
    rows = np.r_[split.u, split.v]
    cols = np.r_[split.v, split.u]
    w = np.r_[split.length_m, split.length_m]
    order = np.lexsort((w, cols, rows))
    rows, cols, w = rows[order], cols[order], w[order]
    first = np.r_[True, (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])]
    return sp.csr_array((w[first], (rows[first], cols[first])), shape=(n, n))


def _compare_dist(ours: np.ndarray, peer: np.ndarray) -> dict[str, Any]:
    both = np.isfinite(ours) & np.isfinite(peer)
    return {
        "nodes_compared": int(both.sum()),
        "reach_mismatch_nodes": int((np.isfinite(ours) != np.isfinite(peer)).sum()),
        "max_abs_diff_m": float(np.abs(ours[both] - peer[both]).max()) if both.any() else 0.0,
    }


# ----------------------------------------------------------------------------- one network


def run_network(args: argparse.Namespace) -> dict[str, Any]:
    """Both stages on one network, every facility count; returns the result object."""
    from scipy.sparse.csgraph import dijkstra
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.reach.engine import all_facility_reach, nearest_facility_times
    from tuoyu.synthetic import random_facilities

    from benchmarks.peers import (
        heap_bounded_dijkstra,
        networkx_multisource,
        pandana_nearest,
        pandana_network,
        split_graph,
    )

    counts = sorted({int(c) for c in str(args.facilities).split(",") if c})
    wanted = {p for p in args.peers.split(",") if p}
    cutoff = float(args.cutoff_m)
    setup: dict[str, Any] = {}
    setup["network_s"], net = measure(lambda: _network(args.yuzhong, args.nodes, args.seed))
    setup["graph_build_s"], graph = measure(lambda: build_graph(net))
    fx, fy = random_facilities(net, counts[-1], seed=args.seed + 1)
    setup["snap_s"], fac_all = measure(lambda: snap_points(graph, fx, fy, max_snap_m=300.0))
    setup["split_graph_s"], split = measure(lambda: split_graph(net, fac_all))
    n = net.n_nodes
    not_measured: dict[str, str] = {}
    nx_graph = matrix = pnet = None
    if "networkx" in wanted or "osmnx" in wanted:
        setup["networkx_graph_s"], nx_graph = measure(split.to_networkx)
    if "scipy" in wanted:
        setup["scipy_matrix_s"], matrix = measure(lambda: _scipy_matrix(split))
    if "pandana" in wanted:
        reason = missing_module("pandana")
        if reason is None and n > args.pandana_max_nodes:
            reason = (
                f"not run above {args.pandana_max_nodes:,} nodes (--pandana-max-nodes): its "
                "contraction-hierarchy build (pandana.Network) does not fit this benchmark's "
                "budget at this size"
            )
        if reason is None:
            setup["pandana_network_s"], pnet = measure(lambda: pandana_network(split))
        else:
            not_measured["pandana"] = reason
    for peer, module in (("igraph", "igraph"), ("cityseer", "cityseer")):
        if peer in wanted:
            not_measured[peer] = missing_module(module) or "installed, but no runner written"

    # ---- stage 1: nearest-facility distance of every node, per facility count
    def nearest_stage(k: int) -> dict[str, Any]:
        fac = snap_points(graph, fx[:k], fy[:k], max_snap_m=300.0)
        sources = split.point_node[:k]
        sources = sources[sources >= 0]
        answers: dict[str, np.ndarray] = {}

        def ours() -> None:
            answers["ours"] = nearest_facility_times(graph, fac, cutoff).dist_m

        tools: dict[str, Callable[[], None]] = {"ours": ours}
        if matrix is not None:

            def scipy_min_only() -> None:
                d = dijkstra(matrix, directed=False, indices=sources, limit=cutoff, min_only=True)
                answers["scipy_min_only"] = np.asarray(d)[:n]

            tools["scipy_min_only"] = scipy_min_only
        if nx_graph is not None and "networkx" in wanted:

            def networkx() -> None:
                answers["networkx_multisource"] = networkx_multisource(
                    nx_graph, sources.tolist(), cutoff, n
                )

            tools["networkx_multisource"] = networkx
        if pnet is not None:

            def pandana() -> None:
                answers["pandana_nearest_pois"] = pandana_nearest(
                    pnet, split.x_m[sources], split.y_m[sources], cutoff, n
                )

            tools["pandana_nearest_pois"] = pandana
        elif "pandana" in not_measured:
            tools["pandana_nearest_pois"] = not_run(not_measured["pandana"])
        for peer in ("igraph", "cityseer"):
            if peer in not_measured:
                tools[peer] = not_run(not_measured[peer])
        timings = alternating_rounds(tools, rounds=args.rounds)
        agreement = {
            name: _compare_dist(answers["ours"], answers[name])
            for name in answers
            if name != "ours"
        }
        return {
            "facilities": k,
            "facilities_on_network": int(sources.shape[0]),
            "nodes_reached": int(np.isfinite(answers["ours"]).sum()),
            "timings": timings,
            "ratios": ratios_against(timings, "ours"),
            "agreement": agreement,
        }

    nearest: list[dict[str, Any]] = []
    for k in counts:
        nearest.append(nearest_stage(k))
        print(_human_stage(f"nearest, {k} facilities", nearest[-1]), file=sys.stderr, flush=True)

    # ---- stage 2: per-facility reach of the same sample in every tool
    on = np.flatnonzero(~fac_all.off_network)
    rng = np.random.default_rng(args.seed + 2)
    pick = np.sort(rng.choice(on, size=min(args.sample, on.shape[0]), replace=False))
    fac_s = snap_points(graph, fx[pick], fy[pick], max_snap_m=300.0)
    got: dict[str, list[np.ndarray]] = {}

    def ours_per_facility() -> None:
        got["ours"] = [r.node for r in all_facility_reach(graph, fac_s, cutoff)]

    per_tools: dict[str, Callable[[], None]] = {"ours": ours_per_facility}
    if nx_graph is not None and "osmnx" in wanted:
        import networkx as nx

        sources_s = split.point_node[pick].tolist()

        def ego_graph() -> None:
            out = []
            for s in sources_s:
                sub = nx.ego_graph(nx_graph, s, radius=cutoff, distance="length")
                out.append(np.sort(np.fromiter((x for x in sub if x < n), dtype=np.int64)))
            got["osmnx_recipe_ego_graph"] = out

        per_tools["osmnx_recipe_ego_graph"] = ego_graph
    if "heapq" in wanted:
        starts = []
        for i in range(len(fac_s)):
            e = int(fac_s.edge[i])
            length = float(net.edge_length_m[e])
            a, f = float(fac_s.access_m[i]), float(fac_s.fraction[i])
            starts.append(
                [(int(net.edge_u[e]), a + f * length), (int(net.edge_v[e]), a + (1 - f) * length)]
            )

        def heapq_dijkstra() -> None:
            got["python_heapq_dijkstra"] = [
                heap_bounded_dijkstra(graph, s, cutoff)[0] for s in starts
            ]

        per_tools["python_heapq_dijkstra"] = heapq_dijkstra
    per_timings = alternating_rounds(per_tools, rounds=args.rounds)
    per_agree = {
        name: {
            "same_reached_nodes": sum(
                int(np.array_equal(np.sort(a), np.sort(b)))
                for a, b in zip(got["ours"], nodes, strict=True)
            ),
            "of": len(nodes),
        }
        for name, nodes in got.items()
        if name != "ours"
    }
    per_facility = {
        "sample": int(pick.shape[0]),
        "mean_nodes_per_facility": float(np.mean([a.shape[0] for a in got["ours"]]))
        if got.get("ours")
        else 0.0,
        "timings": per_timings,
        "ratios": ratios_against(per_timings, "ours"),
        "agreement": per_agree,
    }
    print(_human_stage("per-facility reach", per_facility), file=sys.stderr, flush=True)
    return {
        "case": "yuzhong (real OSM)" if args.yuzhong else "synthetic city",
        "nodes": "yuzhong" if args.yuzhong else args.nodes,
        "n_nodes": n,
        "n_edges": net.n_edges,
        "cutoff_m": cutoff,
        "rounds": args.rounds,
        "setup_s": setup,
        "not_measured": not_measured,
        "nearest": nearest,
        "per_facility": per_facility,
        "peak_rss_mb": peak_rss_mb(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ----------------------------------------------------------------------------- output


def _human_stage(title: str, stage: dict[str, Any]) -> str:
    t = stage["timings"]
    load = t["_load"]
    lines = [
        f"  {title}: {load['rounds']} rounds, load {load['load_1m_before']:.1f} → "
        f"{load['load_1m_after']:.1f}"
    ]
    for name, item in t.items():
        if name == "_load":
            continue
        if "error" in item:
            lines.append(f"    {name:<26} not measured: {item['error']}")
        else:
            lines.append(
                f"    {name:<26} CPU {item['cpu_s_median']:8.4f} s  wall "
                f"{item['wall_s_median']:8.4f} s  {stage['ratios'].get(name, '')}"
            )
    lines.append(f"    agreement: {stage['agreement']}")
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    info = machine_description(PACKAGES)
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        info["git_commit"] = None
    return info


def _run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every network of ``--networks`` in its own process; failures reported, not guessed."""
    cases: list[dict[str, Any]] = []
    for label in [x for x in args.networks.split(",") if x]:
        where = ["--yuzhong"] if label == "yuzhong" else ["--nodes", label]
        cmd = [sys.executable, "-m", "benchmarks.reach", *where, "--json"]
        cmd += ["--facilities", args.facilities, "--rounds", str(args.rounds)]
        cmd += ["--sample", str(args.sample), "--peers", args.peers, "--seed", str(args.seed)]
        cmd += ["--pandana-max-nodes", str(args.pandana_max_nodes)]
        cmd += ["--cutoff-m", str(args.cutoff_m)]
        print(f"== reach {label}", file=sys.stderr, flush=True)
        load = os.getloadavg()[0]
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=args.timeout_s
            )
        except subprocess.TimeoutExpired:
            cases.append(
                {"nodes": label, "not_measured": f"did not finish within {args.timeout_s:g} s"}
            )
            continue
        if proc.returncode != 0:
            cases.append({"nodes": label, "not_measured": f"exit code {proc.returncode}"})
            continue
        # pandana's C++ code writes progress to stdout too (without a final newline).
        case = json.loads(proc.stdout[proc.stdout.rindex('{"case"') :])
        case["load_1m_at_start"] = load
        cases.append(case)
    built = [c for c in cases if "pandana_network_s" in c.get("setup_s", {})]
    for case in cases:
        reason = case.get("not_measured", {})
        if built and isinstance(reason, dict) and "pandana" in reason:
            ref = built[-1]
            reason["pandana"] += (
                f" (its build took {ref['setup_s']['pandana_network_s']:.0f} s wall at "
                f"{ref['n_nodes']:,} nodes in this run)"
            )
    return {"benchmark": "reach", "machine": _machine(), "cases": cases}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.reach", description=(__doc__ or "").split("\n")[0]
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--nodes", type=int, default=100_000, help="synthetic city size")
    where.add_argument("--yuzhong", action="store_true", help="the real Yuzhong network")
    where.add_argument("--all", action="store_true", help="every --networks → results/reach.json")
    p.add_argument(
        "--networks", default=",".join(ALL_NETWORKS), help="--all: 'yuzhong' and node counts"
    )
    p.add_argument("--facilities", default="1000,5000", help="comma list of facility counts")
    p.add_argument("--cutoff-m", type=float, default=1_000.0, help="15 min at 4 km/h")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peers", default=",".join(PEERS), help="comma list of peers")
    p.add_argument("--sample", type=int, default=200, help="facilities of the per-facility stage")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (at least 5)")
    p.add_argument("--timeout-s", type=float, default=1_800.0, help="--all: per network")
    p.add_argument("--pandana-max-nodes", type=int, default=100_000)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", type=Path, default=RESULTS, help="--all output file")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.reach``."""
    args = _parser().parse_args(argv)
    if args.rounds < 5:
        raise SystemExit("--rounds must be at least 5")
    if args.all:
        payload = _run_all(args)
        write_text_atomic(args.out, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        print(json.dumps(payload) if args.json else f"wrote {args.out}")
        return 0
    result = run_network(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
