"""A big synthetic city end to end, stage by stage: what ``tuoyu run`` costs at city size.

The case of the speed audit: a synthetic city (``tuoyu.synthetic.synthetic_city``,
10⁶ nodes by default, about 1.95 M segments), 2,000 facilities, 200,000 population
weight points and 17 × 17 = 289 square 街道. Nothing here is a real place.

The inputs go through files, as a user's would: :func:`benchmarks.batch.write_synthetic_area`
writes the road line layer (GeoParquet, EPSG:32648), the 街道 (GeoJSON), the facility
registry (GeoJSON, WGS84), the population weights and 街道 totals, and the study-area TOML
that names them; writing them is timed apart and is not part of the run. The run then
follows :func:`tuoyu.workflow.run.analyse_area` step by step in one fresh (spawned)
process, so each step gets its own row:

* ``load`` — :func:`tuoyu.workflow.layers.load_layers` (road layer, 街道, registry,
  population);
* ``graph+snap+reach`` — :meth:`AreaModel.from_layers` (CSR graph, snapping, the
  multi-source reach of all facilities and of 普惠);
* ``isochrones`` — :meth:`AreaModel.isochrones` (``[walk] isochrone_method``, printed);
* ``indicators`` — :meth:`AreaModel.results`;
* ``map <name>`` — :meth:`AreaModel.build_map` + :func:`tuoyu.outputs.maps.save_map`
  (what ``write_maps`` does per map);
* ``reports`` — :func:`tuoyu.workflow.run.write_outputs` (every table and layer);
* ``isochrones.geojson alone`` — :func:`tuoyu.outputs.reports.write_geojson` of the
  isochrones once more, to a scratch file: the share of the reports step one writer takes
  (an extra row, not counted in the total).

Each row gives CPU seconds of the process (every thread: ``time.process_time``), wall
seconds and the peak RSS after the step; every output file is listed with its size::

    .venv/bin/python -m benchmarks.bigcity --nodes 100000 --json
    .venv/bin/python -m benchmarks.bigcity                      # 10⁶ nodes, the audit case
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

from benchmarks._common import RESULTS_DIR, machine_description, peak_rss_mb, write_result
from benchmarks.batch import write_synthetic_area

T = TypeVar("T")
MONTH = "2026-11"


class _Stages:
    """Rows of the stage table: CPU-s, wall-s and peak RSS after each step."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def run(self, name: str, fn: Callable[[], T], *, counted: bool = True) -> T:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = fn()
        self.rows.append(
            {
                "stage": name,
                "cpu_s": round(time.process_time() - cpu0, 2),
                "wall_s": round(time.perf_counter() - wall0, 2),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "counted": counted,
            }
        )
        return result


def _file_sizes(folder: Path) -> dict[str, int]:
    """Bytes per output file; a map's chunk folder (``*.isochrones/``) counts as one entry."""
    sizes: dict[str, int] = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(folder)
        key = rel.as_posix()
        if len(rel.parts) > 1 and rel.parts[-2].endswith((".isochrones", ".layers")):
            n = sum(1 for _ in p.parent.glob("*.js"))
            key = f"{Path(*rel.parts[:-1]).as_posix()}/ ({n} chunk files)"
        sizes[key] = sizes.get(key, 0) + p.stat().st_size
    return sizes


def _save_one_map(model: Any, name: str, folder: Path) -> Path:
    from tuoyu.outputs.maps import save_map

    return save_map(model.build_map(name), folder / f"{name}.html")


def run_city(toml: str, out_root: str, cache_dir: str) -> dict[str, Any]:
    """The run of one study area, step by step (module level: runs in a spawned child)."""
    from tuoyu.config.settings import get_settings
    from tuoyu.config.study_area import load_area
    from tuoyu.indicators.targets import load_profile
    from tuoyu.outputs.reports import write_geojson
    from tuoyu.progress import SILENT
    from tuoyu.workflow.core import MAP_NAMES, AreaModel
    from tuoyu.workflow.layers import load_layers
    from tuoyu.workflow.run import write_outputs

    settings = get_settings(cache_dir=Path(cache_dir))
    out = Path(out_root) / "out"
    maps = Path(out_root) / "maps"
    stages = _Stages()
    area = load_area(toml, settings.project_data_dir)
    profile = load_profile(area.area.target_profile, settings.project_data_dir)
    layers = stages.run("load", lambda: load_layers(area, settings, SILENT))
    model = stages.run(
        "graph+snap+reach", lambda: AreaModel.from_layers(layers, profile, progress=SILENT)
    )
    isochrones = stages.run("isochrones", model.isochrones)
    results = stages.run("indicators", model.results)
    for name in MAP_NAMES:
        stages.run(f"map {name}", functools.partial(_save_one_map, model, name, maps))
    stages.run(
        "reports",
        lambda: write_outputs(
            model.current_layers(),
            results,
            model.reach(),
            isochrones,
            out,
            month=MONTH,
            profile=model.profile,
            progress=SILENT,
        ),
    )
    scratch = Path(out_root) / "scratch"
    scratch.mkdir(exist_ok=True)
    if isochrones is not None:
        stages.run(
            "isochrones.geojson alone",
            lambda: write_geojson(isochrones, scratch / "isochrones.geojson", name="isochrones"),
            counted=False,
        )
    endpoint = _isochrone_endpoint(model)
    counted = [r for r in stages.rows if r["counted"]]
    attrs = {} if isochrones is None else dict(isochrones.attrs)
    return {
        "isochrone_endpoint": endpoint,
        "isochrone_method": area.walk.isochrone_method,
        "isochrone_accuracy": {
            k: attrs[k] for k in ("cell_m", "margin_m", "simplified_m", "buffer_m") if k in attrs
        },
        "n_nodes": layers.network.n_nodes if layers.network is not None else 0,
        "n_segments": layers.network.n_edges if layers.network is not None else 0,
        "n_facilities": len(model.facility_ids()),
        "n_isochrone_rows": 0 if isochrones is None else len(isochrones),
        "stages": stages.rows,
        "total_cpu_s": round(sum(r["cpu_s"] for r in counted), 2),
        "total_wall_s": round(sum(r["wall_s"] for r in counted), 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "output_bytes": {
            **_file_sizes(out),
            **{f"maps/{k}": v for k, v in _file_sizes(maps).items()},
        },
    }


def _isochrone_endpoint(model: Any, n_requests: int = 40) -> dict[str, Any]:
    """What ``GET /areas/{area}/facilities/{id}/isochrone?minutes=15`` costs once loaded.

    The service's work per request, without HTTP: the model's single-facility isochrone
    (one bounded search, the polygon, WGS84) and its GeoJSON feature
    (``tuoyu_api.serialize.isochrone_feature``). The first request builds the prepared
    indexes and is reported apart; then ``n_requests`` facilities spread over the list,
    each timed alone (wall ms, median and 95th percentile).
    """
    import numpy as np
    from tuoyu_api.serialize import isochrone_feature

    ids = model.facility_ids()
    if not ids:
        return {}
    t0 = time.perf_counter()
    isochrone_feature(model.facility_isochrone(ids[0], 15.0))
    first_ms = (time.perf_counter() - t0) * 1e3
    picks = [
        ids[i] for i in np.linspace(1, len(ids) - 1, min(n_requests, len(ids) - 1)).astype(int)
    ]
    times = []
    for fid in picks:
        t0 = time.perf_counter()
        isochrone_feature(model.facility_isochrone(fid, 15.0))
        times.append((time.perf_counter() - t0) * 1e3)
    return {
        "first_request_ms": round(first_ms, 1),
        "requests": len(times),
        "median_ms": round(float(np.median(times)), 1),
        "p95_ms": round(float(np.percentile(times, 95)), 1),
        "method": model.area.walk.isochrone_method,
    }


def peer_reach(
    n_nodes: int, n_facilities: int, seed: int, cutoff_m: float, rounds: int
) -> dict[str, Any]:
    """The one stage peers exist for, on the case's own network and facilities.

    Nearest-facility walking distance of every node (one bounded multi-source search):
    ours (``nearest_facility_times``, facilities as virtual mid-edge sources) against
    networkx ``multi_source_dijkstra_path_length`` and scipy's compiled
    ``csgraph.dijkstra(min_only=True, limit=…)`` on the network with the facilities
    inserted as real nodes (:func:`benchmarks.peers.split_graph`), strictly alternating
    in this process (:func:`benchmarks._common.alternating_rounds`). Graph construction
    is outside the timing for every tool. Answers are compared node by node.
    """
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.reach.engine import nearest_facility_times
    from tuoyu.synthetic import random_facilities, synthetic_city

    from benchmarks._common import alternating_rounds
    from benchmarks.peers import networkx_multisource, split_graph

    net = synthetic_city(n_nodes, seed=seed)  # as write_synthetic_area draws them
    graph = build_graph(net)
    fx, fy = random_facilities(net, n_facilities, seed + 1, max_offset_m=20.0)
    fac = snap_points(graph, fx, fy, max_snap_m=300.0)
    split = split_graph(net, fac)
    sources = split.point_node[split.point_node >= 0]
    n_all = split.x_m.shape[0]
    matrix = sp.coo_array(
        (np.concatenate([split.length_m] * 2), (np.r_[split.u, split.v], np.r_[split.v, split.u])),
        shape=(n_all, n_all),
    ).tocsr()
    nx_graph = split.to_networkx()
    answers: dict[str, Any] = {}

    def ours() -> None:
        answers["ours"] = nearest_facility_times(graph, fac, cutoff_m).dist_m

    def scipy_min_only() -> None:
        dist = dijkstra(matrix, directed=False, indices=sources, limit=cutoff_m, min_only=True)
        answers["scipy"] = np.asarray(dist)[: net.n_nodes]

    def networkx() -> None:
        answers["networkx"] = networkx_multisource(
            nx_graph, sources.tolist(), cutoff_m, net.n_nodes
        )

    timings = alternating_rounds(
        {"ours": ours, "scipy_min_only": scipy_min_only, "networkx_multisource": networkx},
        rounds=rounds,
    )
    mine = answers["ours"]
    agree = {}
    for name in ("scipy", "networkx"):
        other = answers.get(name)
        if other is None:
            continue
        finite = np.isfinite(mine) | np.isfinite(other)
        same_reach = bool(np.array_equal(np.isfinite(mine), np.isfinite(other)))
        diff = float(np.max(np.abs(mine[finite] - other[finite]))) if same_reach else None
        agree[name] = {"same_nodes_reached": same_reach, "max_abs_diff_m": diff}
    ratios = {}
    for name in ("scipy_min_only", "networkx_multisource"):
        if "cpu_s_median" in timings[name]:
            ratios[f"{name}_vs_ours_cpu"] = round(
                timings[name]["cpu_s_median"] / timings["ours"]["cpu_s_median"], 2
            )
            ratios[f"{name}_vs_ours_wall"] = round(
                timings[name]["wall_s_median"] / timings["ours"]["wall_s_median"], 2
            )
    return {
        "stage": "nearest-facility reach (multi-source, bounded)",
        "cutoff_m": cutoff_m,
        "timings": timings,
        "agreement": agree,
        "ratios": ratios,
    }


TARGETS = {"total_cpu_s": 30.0, "peak_rss_mb": 2048.0, "output_mb": 100.0, "map_page_mb": 20.0}
"""The issue's targets on the 2-core machine: CPU-s, peak RSS, all outputs, each map page."""


def targets_check(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with the measured value and whether it is met."""
    sizes = run["output_bytes"]
    pages = [v for k, v in sizes.items() if k.startswith("maps/") and k.endswith(".html")]
    measured = {
        "total_cpu_s": run["total_cpu_s"],
        "peak_rss_mb": run["peak_rss_mb"],
        "output_mb": round(sum(sizes.values()) / 1e6, 1),
        "map_page_mb": round(max(pages, default=0) / 1e6, 1),
    }
    return {
        k: {"target": TARGETS[k], "measured": measured[k], "met": measured[k] <= TARGETS[k]}
        for k in TARGETS
    }


def _accuracy(run: dict[str, Any]) -> str:
    acc = run.get("isochrone_accuracy") or {}
    if "margin_m" in acc:
        return (
            f" ({acc['cell_m']:g} m lattice, drawn frontier within {2 * acc['margin_m']:.0f} m "
            "of walking inside the exact one, every drawn point found by the search)"
        )
    if "cell_m" in acc:
        return f" ({acc['cell_m']:g} m lattice)"
    return ""


def _table(result: dict[str, Any]) -> str:
    run = result["run"]
    lines = [
        f"{run['n_nodes']:,} nodes, {run['n_segments']:,} segments, "
        f"{run['n_facilities']:,} facilities; isochrones: {run['isochrone_method']}"
        + _accuracy(run),
        f"{'stage':<28}{'CPU s':>9}{'wall s':>9}{'peak RSS MB':>13}",
    ]
    for row in run["stages"]:
        name = row["stage"] if row["counted"] else f"({row['stage']})"
        lines.append(
            f"{name:<28}{row['cpu_s']:>9.2f}{row['wall_s']:>9.2f}{row['peak_rss_mb']:>13.0f}"
        )
    lines.append(f"{'total':<28}{run['total_cpu_s']:>9.2f}{run['total_wall_s']:>9.2f}")
    ep = run.get("isochrone_endpoint") or {}
    if ep:
        lines.append(
            f"isochrone endpoint ({ep['method']}): first request {ep['first_request_ms']:.0f} ms "
            f"(prepares the indexes), then median {ep['median_ms']:.1f} ms, p95 "
            f"{ep['p95_ms']:.1f} ms over {ep['requests']} facilities"
        )
    lines.append("output files:")
    for name, size in run["output_bytes"].items():
        lines.append(f"  {name:<30}{size / 1e6:>10.2f} MB")
    lines.append("targets:")
    for name, t in targets_check(run).items():
        verdict = "met" if t["met"] else "NOT met"
        lines.append(f"  {name:<14} {t['measured']:>9} ≤ {t['target']:<8g} {verdict}")
    peers = result.get("peers")
    if peers:
        lines.append(f"peers, {peers['stage']} ({peers['timings']['_load']['rounds']} rounds):")
        for name, t in peers["timings"].items():
            if name == "_load":
                continue
            if "error" in t:
                lines.append(f"  {name:<24}could not run: {t['error']}")
            else:
                lines.append(
                    f"  {name:<24}median CPU {t['cpu_s_median']:.3f} s, wall {t['wall_s_median']:.3f} s"
                )
        lines.append(f"  ratios: {peers['ratios']}; agreement: {peers['agreement']}")
    lines.append(
        f"machine load (1 min) before {result['load_before']:.2f}, after "
        f"{result['machine']['load_average_1m']:.2f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Write the synthetic city, run it stage by stage in a fresh process, report."""
    import os

    parser = argparse.ArgumentParser(description="tuoyu big-city end-to-end benchmark")
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--facilities", type=int, default=2_000)
    parser.add_argument("--population", type=int, default=200_000)
    parser.add_argument("--units-per-side", type=int, default=17)
    parser.add_argument(
        "--isochrones", default="walk_field", choices=["walk_field", "exact", "grid"]
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the result JSON")
    parser.add_argument("--no-save", action="store_true", help="do not write results/bigcity.json")
    parser.add_argument("--keep", type=Path, default=None, help="copy the outputs here")
    parser.add_argument(
        "--peers", action="store_true", help="also time the reach stage against its peers"
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of --peers")
    parser.add_argument(
        "--label",
        default=None,
        help="store under this key in results/bigcity.json (default: the size)",
    )
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    base = Path(tempfile.mkdtemp(prefix="tuoyu-bigcity-"))
    try:
        t0 = time.perf_counter()
        toml = write_synthetic_area(
            base / "areas",
            "bigcity",
            n_nodes=args.nodes,
            n_facilities=args.facilities,
            n_population=args.population,
            seed=args.seed,
            units_per_side=args.units_per_side,
            isochrone_method=args.isochrones,
        )
        write_s = time.perf_counter() - t0
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            run = pool.submit(run_city, str(toml), str(base / "run"), str(base / "cache")).result()
            peers = None
            if args.peers:
                peers = pool.submit(
                    peer_reach, args.nodes, args.facilities, args.seed, 1000.0, args.rounds
                ).result()
        if args.keep is not None:
            shutil.copytree(base / "run", args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    result = {
        "case": {
            "nodes": args.nodes,
            "facilities": args.facilities,
            "population_points": args.population,
            "units": args.units_per_side**2,
            "isochrone_method": args.isochrones,
            "inputs": "files: GeoParquet roads (EPSG:32648), GeoJSON 街道/registry/weights, CSV totals",
            "synthetic": "tuoyu.synthetic.synthetic_city jittered grid (not a real place)",
        },
        "write_inputs_s": round(write_s, 2),
        "run": run,
        "targets": targets_check(run),
        "peers": peers,
        "load_before": load_before,
        "machine": machine_description(
            ("numpy", "scipy", "shapely", "geopandas", "pyogrio", "folium")
        ),
    }
    if not args.no_save:
        label = args.label or f"{args.isochrones}-{args.nodes}"
        target = RESULTS_DIR / "bigcity.json"
        stored = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else {}
        stored[label] = result
        write_result("bigcity", dict(sorted(stored.items())))
    print(_table(result))
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
