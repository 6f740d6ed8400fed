"""Benchmark: walking reach (ours) against networkx, osmnx's isochrone recipe and pandana.

One case::

    python -m benchmarks.reach --nodes 100000 --facilities 1000 --json
    python -m benchmarks.reach --yuzhong --facilities 1000 --json

prints exactly one JSON object. The full matrix (Yuzhong, and synthetic cities of 10⁵ and
10⁶ nodes, each with 1,000 and 5,000 facilities) with the machine description::

    python -m benchmarks.reach --all            # writes benchmarks/results/reach.json

Every case runs each implementation in its own subprocess (``--worker``), so that each
peak RSS (``ru_maxrss``) belongs to one implementation only; the answers are written to
a temporary folder and compared in the parent. Networks are synthetic cities
(:func:`tuoyu.synthetic.synthetic_city`: jittered street grid, 50–150 m blocks) or the
real Yuzhong OSM extract; facilities are random points near the streets, snapped with a
300 m limit. What is timed is listed in the ``notes`` of every result.

Timing, RSS, machine description and result writing come from ``benchmarks._common``;
the workers are plain subprocesses (not ``run_isolated``) because they hand large answer
arrays to the parent for the agreement checks.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tuoyu.outputs.atomic import write_text_atomic

from benchmarks._common import RESULTS_DIR, machine_description, measure, peak_rss_mb

RESULTS = RESULTS_DIR / "reach.json"
ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("numpy", "scipy", "shapely", "networkx", "osmnx", "pandana", "pandas")
PEERS = ("networkx", "osmnx", "pandana")
ALL_CASES: list[tuple[int | str, int]] = [
    ("yuzhong", 1_000),
    ("yuzhong", 5_000),
    (100_000, 1_000),
    (100_000, 5_000),
    (1_000_000, 1_000),
    (1_000_000, 5_000),
]


# ----------------------------------------------------------------------------- helpers


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time in seconds of one call, and its result."""
    return measure(fn)


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, list[float], Any]:
    """Best wall time of ``repeat`` calls, all times, and the last result."""
    times: list[float] = []
    out = None
    for _ in range(max(1, repeat)):
        t, out = measure(fn)
        times.append(t)
    return min(times), times, out


def machine() -> dict[str, Any]:
    """Machine description (benchmarks._common) plus the git commit measured."""
    info = machine_description(PACKAGES)
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        info["git_commit"] = None
    return info


# ----------------------------------------------------------------------------- workers


def _setup(args: argparse.Namespace) -> dict[str, Any]:
    """Network, graph and snapped facilities of the case (same in every worker)."""
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.synthetic import random_facilities, synthetic_city

    if args.yuzhong:
        from tuoyu.config.data_registry import resolve_data_file
        from tuoyu.config.settings import get_settings
        from tuoyu.layers.osm_network import load_walk_network

        settings = get_settings()
        path = resolve_data_file("chongqing-yuzhong/yuzhong.osm.pbf", settings)
        gen_s, net = timed(lambda: load_walk_network(path, settings=settings))
    else:
        gen_s, net = timed(lambda: synthetic_city(args.nodes, seed=args.seed))
    graph_s, graph = timed(lambda: build_graph(net))
    fx, fy = random_facilities(net, args.facilities, seed=args.seed + 1)
    snap_s, fac = timed(lambda: snap_points(graph, fx, fy, max_snap_m=300.0))
    on = np.flatnonzero(~fac.off_network)
    rng = np.random.default_rng(args.seed + 2)
    sample = np.sort(rng.choice(on, size=min(args.sample, on.shape[0]), replace=False))
    return {
        "net": net,
        "graph": graph,
        "fac": fac,
        "on": on,
        "sample": sample,
        "times": {"network_s": gen_s, "graph_build_s": graph_s, "snap_s": snap_s},
    }


def _worker_ours(args: argparse.Namespace, case: dict[str, Any]) -> dict[str, Any]:
    from tuoyu.reach.engine import all_facility_reach, facility_reach, nearest_facility_times

    from benchmarks.peers import heap_bounded_dijkstra

    graph, fac = case["graph"], case["fac"]
    cutoff = args.cutoff_m
    ours_s, runs, reach = best_of(args.repeat, lambda: nearest_facility_times(graph, fac, cutoff))
    rss_multi = peak_rss_mb()
    tree_s, _ = timed(lambda: graph.node_tree)
    per_fac_s, reaches = timed(lambda: all_facility_reach(graph, fac, cutoff))
    sample = case["sample"]
    # Local search methods on the sample, one facility at a time: KD-tree subgraph +
    # scipy (ours) against a pure-Python heap Dijkstra. Both must give the same answer.
    kd_s, kd = timed(lambda: [facility_reach(graph, fac, int(i), cutoff) for i in sample])
    net = graph.network

    def heap_all() -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for i in sample.tolist():
            e = int(fac.edge[i])
            length = float(net.edge_length_m[e])
            a, f = float(fac.access_m[i]), float(fac.fraction[i])
            starts = [
                (int(net.edge_u[e]), a + f * length),
                (int(net.edge_v[e]), a + (1 - f) * length),
            ]
            out.append(heap_bounded_dijkstra(graph, starts, cutoff))
        return out

    heap_s, heap = timed(heap_all)
    heap_ok = all(
        np.array_equal(k.node, h[0]) and np.allclose(k.dist_m, h[1], atol=1e-6)
        for k, h in zip(kd, heap, strict=True)
    )
    sample_nodes = [reaches[int(i)].node for i in sample]
    np.savez(
        Path(args.workdir) / "ours.npz",
        node_dist=reach.dist_m,
        sample_offsets=np.r_[0, np.cumsum([s.shape[0] for s in sample_nodes])],
        sample_nodes=np.concatenate(sample_nodes) if sample_nodes else np.empty(0, np.int64),
    )
    return {
        "ours_s": ours_s,
        "ours_runs_s": runs,
        "ours_per_facility_s": per_fac_s,
        "node_tree_build_s": tree_s,
        "peak_rss_mb_multisource": rss_multi,
        "mean_nodes_per_facility": float(np.mean([r.node.shape[0] for r in reaches]))
        if reaches
        else 0.0,
        "local_search": {
            "sample": int(sample.shape[0]),
            "kdtree_subgraph_scipy_s": kd_s,
            "heapq_python_s": heap_s,
            "same_answer": heap_ok,
        },
        "nodes_reached": int(np.isfinite(reach.dist_m).sum()),
    }


def _worker_networkx(args: argparse.Namespace, case: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.peers import networkx_multisource, split_graph

    net, fac = case["net"], case["fac"]
    build_s, (split, graph) = timed(lambda: _split_nx(split_graph(net, fac)))
    sources = split.point_node[case["on"]].tolist()
    run_s, dist = timed(lambda: networkx_multisource(graph, sources, args.cutoff_m, net.n_nodes))
    np.savez(Path(args.workdir) / "networkx.npz", node_dist=dist)
    return {"networkx_multisource_s": run_s, "networkx_build_s": build_s}


def _split_nx(split: Any) -> tuple[Any, Any]:
    return split, split.to_networkx()


def _worker_osmnx(args: argparse.Namespace, case: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.peers import osmnx_isochrone_recipe, split_graph

    net, fac, sample = case["net"], case["fac"], case["sample"]
    build_s, (split, graph) = timed(lambda: _split_nx(split_graph(net, fac)))

    def run() -> list[tuple[list[int], Any]]:
        return [
            osmnx_isochrone_recipe(
                graph, split.x_m, split.y_m, int(split.point_node[i]), args.cutoff_m
            )
            for i in sample.tolist()
        ]

    run_s, out = timed(run)
    n = net.n_nodes
    nodes = [np.sort(np.array([x for x in nodes if x < n], dtype=np.int64)) for nodes, _ in out]
    np.savez(
        Path(args.workdir) / "osmnx.npz",
        sample_offsets=np.r_[0, np.cumsum([s.shape[0] for s in nodes])],
        sample_nodes=np.concatenate(nodes) if nodes else np.empty(0, np.int64),
    )
    per = run_s / max(1, sample.shape[0])
    return {
        "osmnx_egograph_hull_sample_s": run_s,
        "osmnx_sample": int(sample.shape[0]),
        "osmnx_egograph_hull_s": per * case["on"].shape[0],
        "osmnx_build_s": build_s,
        "hull_mean_area_m2": float(np.mean([h.area for _, h in out])) if out else 0.0,
    }


def _worker_pandana(args: argparse.Namespace, case: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.peers import pandana_nearest, pandana_network, split_graph

    net, fac, on = case["net"], case["fac"], case["on"]
    split = split_graph(net, fac)
    build_s, pnet = timed(lambda: pandana_network(split))
    node = split.point_node[on]
    run_s, dist = timed(
        lambda: pandana_nearest(pnet, split.x_m[node], split.y_m[node], args.cutoff_m, net.n_nodes)
    )
    np.savez(Path(args.workdir) / "pandana.npz", node_dist=dist)
    return {"pandana_s": run_s, "pandana_build_s": build_s}


WORKERS: dict[str, Callable[[argparse.Namespace, dict[str, Any]], dict[str, Any]]] = {
    "ours": _worker_ours,
    "networkx": _worker_networkx,
    "osmnx": _worker_osmnx,
    "pandana": _worker_pandana,
}


def run_worker(args: argparse.Namespace) -> None:
    """Run one implementation and write its JSON into ``args.workdir``."""
    case = _setup(args)
    out = WORKERS[args.worker](args, case)
    out.update(case["times"])
    out["n_nodes"] = case["net"].n_nodes
    out["n_edges"] = case["net"].n_edges
    out["facilities_on_network"] = int(case["on"].shape[0])
    out["peak_rss_mb"] = peak_rss_mb()
    (Path(args.workdir) / f"{args.worker}.json").write_text(json.dumps(out))


# ----------------------------------------------------------------------------- one case


def _spawn(worker: str, args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.reach",
        "--worker",
        worker,
        "--workdir",
        workdir,
        "--facilities",
        str(args.facilities),
        "--cutoff-m",
        str(args.cutoff_m),
        "--seed",
        str(args.seed),
        "--sample",
        str(args.sample),
        "--repeat",
        str(args.repeat),
    ]
    cmd += ["--yuzhong"] if args.yuzhong else ["--nodes", str(args.nodes)]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout_s, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{worker} worker failed ({proc.returncode}): {' | '.join(tail)}")
    return json.loads((Path(workdir) / f"{worker}.json").read_text())


def _compare_dist(ours: np.ndarray, peer: np.ndarray) -> dict[str, Any]:
    both = np.isfinite(ours) & np.isfinite(peer)
    return {
        "nodes_compared": int(both.sum()),
        "reach_mismatch_nodes": int((np.isfinite(ours) != np.isfinite(peer)).sum()),
        "max_abs_diff_m": float(np.abs(ours[both] - peer[both]).max()) if both.any() else 0.0,
    }


def run_case(args: argparse.Namespace) -> dict[str, Any]:
    """Run ours and the chosen peers on one case; returns the result object."""
    notes = [
        "ours_s: nearest_facility_times (one bounded multi-source Dijkstra, min_only, "
        "virtual source per mid-edge facility), best of --repeat runs; graph build and "
        "snapping (incl. STRtree build) are reported apart (graph_build_s, snap_s)",
        "ours_per_facility_s: all_facility_reach for every facility (routing only; the "
        "polygon step belongs to the isochrone benchmark)",
        "peers run on the same network with every facility inserted as a real node "
        "(split edge + access leg), so answers are exactly comparable; peer graph "
        "construction is not timed (reported as *_build_s)",
        "networkx_multisource_s: nx.multi_source_dijkstra_path_length(cutoff), one run",
        "pandana_s: set_pois + nearest_pois(num_pois=1); pandana_build_s is Network() "
        "(contraction hierarchies); pandana keeps distances in single precision (differences of a few cm)",
    ]
    peers = [p for p in args.peers.split(",") if p] if args.peers else []
    label = "yuzhong" if args.yuzhong else args.nodes
    result: dict[str, Any] = {
        "case": "yuzhong (real OSM)" if args.yuzhong else "synthetic city",
        "nodes": label,
        "facilities": args.facilities,
        "cutoff_m": args.cutoff_m,
    }
    peer_times: dict[str, float | None] = {
        "networkx_multisource_s": None,
        "osmnx_egograph_hull_s": None,
        "pandana_s": None,
    }
    with tempfile.TemporaryDirectory(prefix="tuoyu-bench-reach-") as workdir:
        ours = _spawn("ours", args, workdir)
        ours_npz = np.load(Path(workdir) / "ours.npz")
        result["n_nodes"] = ours["n_nodes"]
        result["n_edges"] = ours["n_edges"]
        result["facilities_on_network"] = ours["facilities_on_network"]
        result["ours_s"] = ours["ours_s"]
        extra = {
            k: ours[k]
            for k in (
                "ours_runs_s",
                "ours_per_facility_s",
                "graph_build_s",
                "snap_s",
                "network_s",
                "node_tree_build_s",
                "mean_nodes_per_facility",
                "local_search",
                "nodes_reached",
                "peak_rss_mb_multisource",
            )
        }
        extra["ours_with_graph_build_and_snap_s"] = (
            ours["graph_build_s"] + ours["snap_s"] + ours["ours_s"]
        )
        result["ours"] = extra
        result["peak_rss_mb"] = ours["peak_rss_mb"]
        peer_rss: dict[str, float] = {}
        checks: dict[str, Any] = {}
        peer_extra: dict[str, Any] = {}
        for peer in peers:
            try:
                out = _spawn(peer, args, workdir)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                notes.append(f"{peer}: not measured ({exc})")
                continue
            peer_rss[peer] = out["peak_rss_mb"]
            npz = np.load(Path(workdir) / f"{peer}.npz")
            if peer == "networkx":
                peer_times["networkx_multisource_s"] = out["networkx_multisource_s"]
                peer_extra["networkx_build_s"] = out["networkx_build_s"]
                checks["networkx"] = _compare_dist(ours_npz["node_dist"], npz["node_dist"])
            elif peer == "pandana":
                peer_times["pandana_s"] = out["pandana_s"]
                peer_extra["pandana_build_s"] = out["pandana_build_s"]
                peer_extra["pandana_with_build_s"] = out["pandana_build_s"] + out["pandana_s"]
                checks["pandana"] = _compare_dist(ours_npz["node_dist"], npz["node_dist"])
            elif peer == "osmnx":
                peer_times["osmnx_egograph_hull_s"] = out["osmnx_egograph_hull_s"]
                peer_extra["osmnx_sample_s"] = out["osmnx_egograph_hull_sample_s"]
                peer_extra["osmnx_hull_mean_area_m2"] = out["hull_mean_area_m2"]
                same = _same_sets(ours_npz, npz)
                checks["osmnx"] = {
                    "sample_facilities": out["osmnx_sample"],
                    "same_reached_nodes": same,
                }
                if out["osmnx_sample"] < ours["facilities_on_network"]:
                    notes.append(
                        f"osmnx_egograph_hull_s: measured on {out['osmnx_sample']} of "
                        f"{ours['facilities_on_network']} facilities and scaled linearly"
                    )
    result["peers"] = peer_times
    result["peers_extra"] = peer_extra
    result["ratios"] = _ratios(result["ours_s"], extra["ours_per_facility_s"], peer_times)
    result["answers_agree"] = checks
    result["peers_peak_rss_mb"] = peer_rss
    result["notes"] = notes
    return result


def _same_sets(ours: Any, peer: Any) -> int:
    """How many sampled facilities reach the same node set in both answers."""
    a_off, a_nodes = ours["sample_offsets"], ours["sample_nodes"]
    b_off, b_nodes = peer["sample_offsets"], peer["sample_nodes"]
    return sum(
        int(np.array_equal(a_nodes[a_off[i] : a_off[i + 1]], b_nodes[b_off[i] : b_off[i + 1]]))
        for i in range(len(a_off) - 1)
    )


def _ratios(
    ours_s: float, ours_per_facility_s: float, peers: dict[str, float | None]
) -> dict[str, float | None]:
    def ratio(peer: float | None, ours: float) -> float | None:
        return None if peer is None or ours <= 0 else round(peer / ours, 2)

    return {
        "networkx_multisource_vs_ours": ratio(peers["networkx_multisource_s"], ours_s),
        "pandana_vs_ours": ratio(peers["pandana_s"], ours_s),
        "osmnx_egograph_hull_vs_ours_per_facility_routing": ratio(
            peers["osmnx_egograph_hull_s"], ours_per_facility_s
        ),
    }


# ----------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.reach", description=__doc__.split("\n")[0]
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--nodes", type=int, default=100_000, help="synthetic city size")
    where.add_argument("--yuzhong", action="store_true", help="the real Yuzhong network")
    where.add_argument("--all", action="store_true", help="the full matrix → results/reach.json")
    p.add_argument("--facilities", type=int, default=1_000)
    p.add_argument("--cutoff-m", type=float, default=1_000.0, help="15 min at 4 km/h")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peers", default=",".join(PEERS), help="comma list; '' for none")
    p.add_argument("--sample", type=int, default=200, help="facilities for per-facility peers")
    p.add_argument("--repeat", type=int, default=3, help="runs of ours (best is kept)")
    p.add_argument("--timeout-s", type=float, default=7_200.0, help="per worker")
    p.add_argument(
        "--pandana-max-nodes",
        type=int,
        default=100_000,
        help="--all: skip pandana on synthetic cases larger than this (its build is slow)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", type=Path, default=RESULTS, help="--all output file")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    return p


def _human(result: dict[str, Any]) -> str:
    lines = [
        f"{result['case']}: {result['n_nodes']} nodes, {result['facilities']} facilities, "
        f"cut-off {result['cutoff_m']:g} m",
        f"  ours multi-source {result['ours_s']:.3f} s, per-facility "
        f"{result['ours']['ours_per_facility_s']:.3f} s, peak RSS {result['peak_rss_mb']:.0f} MB",
    ]
    for name, t in result["peers"].items():
        lines.append(f"  {name}: " + ("—" if t is None else f"{t:.3f} s"))
    lines.append(f"  ratios: {result['ratios']}")
    lines.append(f"  agreement: {result['answers_agree']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.reach``."""
    args = _parser().parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    if args.all:
        info = machine()
        results = []
        for nodes, facilities in ALL_CASES:
            peers = args.peers
            skip_pandana = (
                isinstance(nodes, int) and nodes > args.pandana_max_nodes and "pandana" in peers
            )
            if skip_pandana:
                peers = ",".join(p for p in peers.split(",") if p != "pandana")
            case_args = argparse.Namespace(
                **{
                    **vars(args),
                    "yuzhong": nodes == "yuzhong",
                    "nodes": nodes if nodes != "yuzhong" else 0,
                    "facilities": facilities,
                    "peers": peers,
                }
            )
            result = run_case(case_args)
            if skip_pandana:
                result.setdefault("notes", []).append(
                    f"pandana not run above {args.pandana_max_nodes:,} nodes: its contraction-"
                    "hierarchy build (Network()) grows faster than linearly (191 s at 10^5 nodes "
                    "on this machine) and does not fit the benchmark budget at 10^6"
                )
            results.append(result)
            print(_human(result), file=sys.stderr, flush=True)
        payload = {"benchmark": "reach", "machine": info, "cases": results}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        print(json.dumps(payload) if args.json else f"wrote {args.out}")
        return 0
    result = run_case(args)
    print(json.dumps(result) if args.json else _human(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
