"""Benchmark: per-facility isochrone polygons, ours against osmnx's isochrone recipe.

One case (prints one JSON object)::

    python -m benchmarks.isochrones --nodes 1000000 --facilities 1000 --json
    python -m benchmarks.isochrones --yuzhong --facilities 1000 --json

``--write`` also stores it in ``benchmarks/results/isochrones.json`` (atomically).

What is measured, on the same network and the same facilities:

* **ours**: ``tuoyu.reach.engine.facility_reach`` per facility (routing), then
  ``tuoyu.isochrones.exact.isochrone_polygons`` (exact edge-buffer polygon: reached
  edges cut at the exact remaining distance, buffered by ``--buffer-m``); timed
  separately (``ours_reach_s``, ``ours_polygons_s``) and in total (``ours_s``). The
  one-off network preparation (``IsochroneBuilder.clean``) is reported apart as
  ``ours_prepare_s``, like the peer's graph construction. ``ours_concave_s`` times the
  approximate variant (``concave_hull_polygons``) on the same reaches.
* **ours, gridded**: ``tuoyu.isochrones.grid.grid_facility_polygons``: routing and the
  gridded polygon (the same edge-buffer region traced on a ``--cell-m`` lattice,
  default half the buffer) in one compiled pass over all facilities, on one thread
  (``ours_grid_1_thread_s``) and on every core (``ours_grid_s``); best of
  ``--repeat`` rounds that time the peer and both of these in turn, after a first call that compiles the kernel (or loads numba's
  cache), reported apart (``ours_grid_first_call_s``). Its area error against the
  exact polygons is ``area_error.grid_ours``.
* **peer**: the osmnx isochrone example ("isolines and isochrones" notebook):
  ``nx.ego_graph(G, node, radius=cutoff_m, distance="length")`` per facility on an
  osmnx-style ``MultiDiGraph`` (both directions, node ``x``/``y``, edge ``length``),
  then ``gpd.GeoSeries([Point(x, y) ...]).union_all().convex_hull``. The facility is
  inserted as a real node (split edge + access leg, ``benchmarks.peers.split_graph``),
  so the peer reaches exactly the nodes we reach. Too slow for every facility on big
  networks: it runs on ``--peer-sample`` facilities and is scaled linearly (``notes``).
* **accuracy**: on the peer sample, the relative area error ``|A − A_exact| / A_exact``
  and the share of non-overlapping area ``area(A △ A_exact) / A_exact`` of the convex
  hull and of our concave variant, against our exact polygons. A literal
  union of per-segment buffers is also timed on ``--naive-sample`` facilities
  (``naive_union_s_per_facility``) to show what the face construction saves.

Networks are synthetic cities (``tuoyu.synthetic.synthetic_city``: jittered street
grid, 50–150 m blocks, clearly synthetic) or the real Yuzhong OSM extract. Facilities
are random points near the streets (``random_facilities``), snapped with a 300 m limit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from benchmarks._common import RESULTS_DIR, machine_description, measure, peak_rss_mb, write_result

RESULTS = RESULTS_DIR / "isochrones.json"
PACKAGES = ("numpy", "scipy", "shapely", "networkx", "geopandas", "osmnx")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time in seconds of one call, and its result (``_common.measure``)."""
    return measure(fn)


def _network(args: argparse.Namespace) -> Any:
    if args.yuzhong:
        from tuoyu.config.data_registry import resolve_data_file
        from tuoyu.config.settings import get_settings
        from tuoyu.layers.osm_network import load_walk_network

        settings = get_settings()
        path = resolve_data_file("chongqing-yuzhong/yuzhong.osm.pbf", settings)
        return load_walk_network(path, settings=settings)
    from tuoyu.synthetic import synthetic_city

    return synthetic_city(args.nodes, seed=args.seed)


def _osmnx_graph(split: Any) -> Any:
    """An osmnx-style MultiDiGraph (both directions) of the split network."""
    import networkx as nx

    g = nx.MultiDiGraph()
    g.add_nodes_from(
        (i, {"x": float(x), "y": float(y)})
        for i, (x, y) in enumerate(zip(split.x_m.tolist(), split.y_m.tolist(), strict=True))
    )
    u, v, length = split.u.tolist(), split.v.tolist(), split.length_m.tolist()
    g.add_edges_from((a, b, {"length": w}) for a, b, w in zip(u, v, length, strict=True))
    g.add_edges_from((b, a, {"length": w}) for a, b, w in zip(u, v, length, strict=True))
    return g


def _osmnx_recipe(graph: Any, node: int, cutoff_m: float) -> Any:
    """The osmnx example, verbatim apart from names: ego graph, then convex hull."""
    import geopandas as gpd
    import networkx as nx
    from shapely.geometry import Point

    subgraph = nx.ego_graph(graph, node, radius=cutoff_m, distance="length")
    node_points = [Point((data["x"], data["y"])) for _, data in subgraph.nodes(data=True)]
    return gpd.GeoSeries(node_points).union_all().convex_hull


def _errors(approx: list[Any], exact: list[Any]) -> dict[str, float | None]:
    import shapely

    rel, sym = [], []
    for a, e in zip(approx, exact, strict=True):
        if e.area <= 0.0:
            continue
        rel.append((a.area - e.area) / e.area)
        sym.append(shapely.symmetric_difference(a, e).area / e.area)
    if not rel:
        return {
            "mean_abs_rel_area_error": None,
            "mean_rel_area_error": None,
            "mean_sym_diff_share": None,
        }
    return {
        "mean_abs_rel_area_error": float(np.mean(np.abs(rel))),
        "mean_rel_area_error": float(np.mean(rel)),
        "mean_sym_diff_share": float(np.mean(sym)),
    }


def run_case(args: argparse.Namespace) -> dict[str, Any]:
    """Run ours and the osmnx recipe on one case; returns the result object."""
    import shapely
    from tuoyu.isochrones.exact import IsochroneBuilder, concave_hull_polygons, isochrone_polygons
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.reach.engine import facility_reach
    from tuoyu.synthetic import random_facilities

    from benchmarks.peers import split_graph

    cutoff_m = args.minutes * args.speed_kmh * 1000.0 / 60.0
    network_s, net = timed(lambda: _network(args))
    graph_s, graph = timed(lambda: build_graph(net))
    fx, fy = random_facilities(net, args.facilities, seed=args.seed + 1)
    snap_s, fac = timed(lambda: snap_points(graph, fx, fy, max_snap_m=300.0))
    on = np.flatnonzero(~fac.off_network)
    builder = IsochroneBuilder(net)
    prepare_s, _ = timed(lambda: builder.clean)

    # ---- ours, gridded (routing included, one compiled pass): first call compiles or
    # loads numba's cache; timed apart, then the measured runs.
    from tuoyu.isochrones.grid import grid_facility_polygons

    cores = os.cpu_count() or 1

    def grid(workers: int) -> list[Any]:
        out = grid_facility_polygons(
            net, fac, [cutoff_m], args.buffer_m, args.cell_m, builder=builder, workers=workers
        )
        return [out[int(i)][0] for i in on]

    grid_first_s, _ = timed(lambda: grid(1))
    grid_polys = grid(1)  # timed below, interleaved with the peer
    grid_polys_n = grid(cores)
    grid_same = all(a.equals(b) for a, b in zip(grid_polys[:50], grid_polys_n[:50], strict=False))
    grid_valid = int(np.count_nonzero(shapely.is_valid(np.array(grid_polys, dtype=object))))

    # ---- ours: routing, then polygons (timed apart and together)
    reach_s, reaches = timed(lambda: [facility_reach(graph, fac, int(i), cutoff_m) for i in on])

    def polygon(reach: Any) -> Any:
        (poly,) = isochrone_polygons(
            net,
            reach,
            [cutoff_m],
            args.buffer_m,
            quad_segs=args.quad_segs,
            points=fac,
            builder=builder,
        )
        return poly

    def all_polygons() -> list[Any]:
        if args.workers > 1:
            with ThreadPoolExecutor(args.workers) as pool:
                return list(pool.map(polygon, reaches))
        return [polygon(r) for r in reaches]

    poly_s, polys = timed(all_polygons)
    concave_s, concave = timed(
        lambda: [
            concave_hull_polygons(
                net, r, [cutoff_m], args.ratio, args.buffer_m, points=fac, builder=builder
            )[0]
            for r in reaches
        ]
    )
    rss_ours = peak_rss_mb()

    # ---- a literal union of per-segment buffers, on a few facilities (reference)
    from tuoyu.isochrones.exact import covered_pieces

    naive_n = min(args.naive_sample, len(reaches))

    def naive() -> None:
        for r in reaches[:naive_n]:
            pc = covered_pieces(net, r, cutoff_m, points=fac, builder=builder)
            lines = shapely.linestrings(np.stack([pc.start_xy, pc.end_xy], axis=1))
            shapely.union_all(shapely.buffer(lines, args.buffer_m, quad_segs=args.quad_segs))

    naive_s, _ = timed(naive) if naive_n else (0.0, None)
    naive_poly_s, _ = (
        timed(lambda: [polygon(r) for r in reaches[:naive_n]]) if naive_n else (0.0, None)
    )

    # ---- the osmnx recipe on a sample, scaled
    rng = np.random.default_rng(args.seed + 2)
    k = min(args.peer_sample, on.shape[0])
    sample = np.sort(rng.choice(on.shape[0], size=k, replace=False)) if k else np.empty(0, int)
    peer_build_s, (split, g) = timed(
        lambda: (lambda s: (s, _osmnx_graph(s)))(split_graph(net, fac))
    )
    # Timed in alternation, best of --repeat rounds each, so that a slow spell of the
    # machine cannot favour one side (the ratios quoted are from the same rounds).
    peer_times, grid_1_times, grid_n_times = [], [], []
    hulls: list[Any] = []
    for _ in range(max(1, args.repeat)):
        t, hulls = timed(
            lambda: [_osmnx_recipe(g, int(split.point_node[on[j]]), cutoff_m) for j in sample]
        )
        peer_times.append(t)
        grid_1_times.append(timed(lambda: grid(1))[0])
        grid_n_times.append(timed(lambda: grid(cores))[0])
    peer_sample_s = min(peer_times)
    grid_1_s, grid_n_s = min(grid_1_times), min(grid_n_times)
    peer_s = peer_sample_s / max(1, k) * on.shape[0]
    exact_sample = [polys[j] for j in sample]
    ours_s = reach_s + poly_s
    notes = [
        f"ours_s = ours_reach_s + ours_polygons_s over {on.shape[0]} on-network facilities, "
        f"one run, wall time, workers={args.workers}",
        "ours_prepare_s (IsochroneBuilder.clean, once per network) and the peer's graph "
        "construction (peer_build_s) are not in the ratio",
        "peer: osmnx isochrone example on an osmnx-style MultiDiGraph with every facility "
        "inserted as a node (same reached nodes as ours)",
        f"quad_segs={args.quad_segs}, buffer_m={args.buffer_m}, concave ratio={args.ratio}",
        f"ours_grid_s, ours_grid_1_thread_s and peer_sample_s: best of {args.repeat} rounds, "
        "the three timed in turn within each round; "
        "ours_grid_s: tuoyu.isochrones.grid.grid_facility_polygons (routing + gridded polygon, one "
        f"compiled pass, cell_m={args.cell_m or args.buffer_m / 2.0}) over every facility on {cores} threads; "
        "ours_grid_1_thread_s the same on one thread; ours_grid_first_call_s is the first "
        "call (numba compiles the kernel or loads it from its cache), not in the ratios",
    ]
    if k < on.shape[0]:
        notes.append(f"peer_s: measured on {k} of {on.shape[0]} facilities and scaled linearly")
    if naive_n:
        notes.append(
            f"naive_union_s_per_facility: shapely.union_all of per-segment buffers on "
            f"{naive_n} facilities; ours_polygon_s_per_facility_same_sample on the same ones"
        )
    return {
        "benchmark": "isochrones",
        "case": "yuzhong (real OSM)" if args.yuzhong else "synthetic city",
        "nodes": "yuzhong" if args.yuzhong else args.nodes,
        "n_nodes": net.n_nodes,
        "n_edges": net.n_edges,
        "facilities": args.facilities,
        "facilities_on_network": int(on.shape[0]),
        "minutes": args.minutes,
        "speed_kmh": args.speed_kmh,
        "cutoff_m": cutoff_m,
        "buffer_m": args.buffer_m,
        "ours_s": ours_s,
        "ours_reach_s": reach_s,
        "ours_polygons_s": poly_s,
        "ours_prepare_s": prepare_s,
        "ours_concave_s": concave_s,
        "peer_s": peer_s,
        "peer_sample": int(k),
        "peer_sample_s": peer_sample_s,
        "peer_build_s": peer_build_s,
        "ratio": peer_s / ours_s if ours_s > 0 else None,
        "ours_grid_s": grid_n_s,
        "ours_grid_workers": cores,
        "ours_grid_1_thread_s": grid_1_s,
        "ours_grid_first_call_s": grid_first_s,
        "grid_cell_m": args.cell_m if args.cell_m is not None else args.buffer_m / 2.0,
        "grid_valid_polygons": grid_valid,
        "grid_same_result_any_workers": bool(grid_same),
        "ratio_grid": peer_s / grid_n_s if grid_n_s > 0 else None,
        "ratio_grid_1_thread": peer_s / grid_1_s if grid_1_s > 0 else None,
        "rounds_s": {
            "peer_sample": peer_times,
            "ours_grid_1_thread": grid_1_times,
            "ours_grid": grid_n_times,
        },
        "ratio_concave": peer_s / (reach_s + concave_s) if reach_s + concave_s > 0 else None,
        "ratio_polygons_only": peer_s / poly_s if poly_s > 0 else None,
        "naive_union_s_per_facility": naive_s / naive_n if naive_n else None,
        "ours_polygon_s_per_facility_same_sample": naive_poly_s / naive_n if naive_n else None,
        "area_error": {
            "convex_hull_osmnx": _errors(hulls, exact_sample),
            "concave_hull_ours": _errors([concave[j] for j in sample], exact_sample),
            "grid_ours": _errors([grid_polys[j] for j in sample], exact_sample),
        },
        "mean_area_m2": {
            "exact": float(np.mean([p.area for p in exact_sample])) if k else None,
            "convex_hull_osmnx": float(np.mean([h.area for h in hulls])) if k else None,
        },
        "setup_s": {"network": network_s, "graph": graph_s, "snap": snap_s},
        "peak_rss_mb_ours": rss_ours,
        "peak_rss_mb": peak_rss_mb(),
        "notes": notes,
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.isochrones", description=__doc__.split("\n")[0]
    )
    p.add_argument("--nodes", type=int, default=100_000, help="synthetic city size")
    p.add_argument("--yuzhong", action="store_true", help="use the real Yuzhong network")
    p.add_argument("--facilities", type=int, default=1_000)
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--speed-kmh", type=float, default=4.0)
    p.add_argument("--buffer-m", type=float, default=25.0)
    p.add_argument("--quad-segs", type=int, default=8)
    p.add_argument("--ratio", type=float, default=0.1, help="concave hull ratio")
    p.add_argument(
        "--cell-m", type=float, default=None, help="lattice of the gridded polygons (buffer/2)"
    )
    p.add_argument("--peer-sample", type=int, default=200, help="facilities the peer runs on")
    p.add_argument("--naive-sample", type=int, default=20)
    p.add_argument("--workers", type=int, default=1, help="threads for our polygon step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--repeat", type=int, default=3, help="best of N for the gridded runs and the peer"
    )
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--write", action="store_true", help=f"store the result in {RESULTS}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run one case and print (and optionally store) its JSON."""
    args = _parser().parse_args(argv)
    info = machine_description(PACKAGES)
    result = run_case(args)
    result["machine"] = info
    text = json.dumps(result, ensure_ascii=False, indent=None if args.json else 2)
    if args.write:
        write_result("isochrones", result)
    print(text)
    if not args.json:
        print(
            f"ours {result['ours_s']:.2f} s (reach {result['ours_reach_s']:.2f} + polygons "
            f"{result['ours_polygons_s']:.2f}), osmnx recipe {result['peer_s']:.2f} s, "
            f"ratio {result['ratio']:.2f}; gridded {result['ours_grid_s']:.2f} s "
            f"(ratio {result['ratio_grid']:.1f}, one thread {result['ratio_grid_1_thread']:.1f})",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
