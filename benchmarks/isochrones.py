"""Benchmark: per-facility isochrone polygons, our methods against osmnx's recipe.

One case (prints one JSON object)::

    python -m benchmarks.isochrones --nodes 100000 --facilities 200 --json
    python -m benchmarks.isochrones --yuzhong --facilities 200 --json

``--write`` also stores it in ``benchmarks/results/isochrones.json`` (atomically);
``python -m benchmarks.run_all --only isochrones`` runs the stored cases.

Every tool runs on the same facilities, all of them (no sample, nothing scaled), ``--rounds``
rounds (at least 5) strictly alternating in this process
(:func:`benchmarks._common.alternating_rounds`): medians of CPU time (all threads) and
wall time, the 1-minute load before the first and after the last round. A 15-minute
isochrone (``--minutes`` at ``--speed-kmh``) per facility:

* ``exact``: routing (``tuoyu.reach.engine.all_facility_reach``) then
  ``tuoyu.isochrones.exact.isochrone_polygons`` (reached edges cut at the exact remaining
  distance, buffered by ``--buffer-m``), one thread;
* ``walk_field_*`` (the default method): the same routing, then
  ``tuoyu.isochrones.walk_field.walk_field_polygons`` on a ``WalkFieldIndex`` built once
  (``WalkFieldIndex.build(graph, 40)``): the area the ``/nearest`` search answers for (a
  point joined to its nearest way, then walked; conservative, lattice
  ``--field-cell-m``), on one thread and on every core;
* ``grid_*``: ``tuoyu.isochrones.grid.grid_facility_polygons`` (routing and the gridded
  edge-buffer polygon in one compiled pass, lattice ``--cell-m``), one thread and every
  core;
* ``concave_hull``: routing then ``concave_hull_polygons`` (approximate);
* ``osmnx_recipe`` (the peer): the osmnx "isolines and isochrones" example,
  ``nx.ego_graph(G, node, radius=cutoff_m, distance="length")`` on an osmnx-style
  ``MultiDiGraph`` then ``gpd.GeoSeries(points).union_all().convex_hull``, with each
  facility inserted as a real node (``benchmarks.peers.split_graph``) so it reaches the
  nodes we reach.

One-off preparation (``IsochroneBuilder.clean``, ``WalkFieldIndex.build``, the peer's
graph) and the first call of each compiled kernel are timed apart, outside the ratios.
``area_vs_exact`` compares each method's polygons with the exact ones (relative area,
symmetric difference, share drawn inside the exact polygon).

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
from typing import Any

import numpy as np
from tuoyu.isochrones.walk_field import DEFAULT_FIELD_CELL_M

from benchmarks._common import (
    RESULTS_DIR,
    alternating_rounds,
    machine_description,
    measure,
    peak_rss_mb,
    ratios_against,
    write_result,
)

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


def _vs_exact(approx: list[Any], exact: list[Any]) -> dict[str, float | None]:
    """Area differences against the exact polygons, and the share drawn inside them."""
    import shapely

    out = _errors(approx, exact)
    inside = [
        shapely.intersection(a, e).area / a.area
        for a, e in zip(approx, exact, strict=True)
        if a.area > 0.0
    ]
    out["mean_share_inside_exact"] = float(np.mean(inside)) if inside else None
    return out


def run_case(args: argparse.Namespace) -> dict[str, Any]:
    """Every method of ours and the osmnx recipe on one case; returns the result object."""
    import shapely
    from tuoyu.isochrones.exact import IsochroneBuilder, concave_hull_polygons, isochrone_polygons
    from tuoyu.isochrones.grid import grid_facility_polygons
    from tuoyu.isochrones.walk_field import WalkFieldIndex, walk_field_polygons
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.reach.engine import all_facility_reach
    from tuoyu.synthetic import random_facilities

    from benchmarks.peers import split_graph

    cutoff_m = args.minutes * args.speed_kmh * 1000.0 / 60.0
    cores = os.cpu_count() or 1
    setup: dict[str, float] = {}
    setup["network_s"], net = timed(lambda: _network(args))
    setup["graph_s"], graph = timed(lambda: build_graph(net))
    fx, fy = random_facilities(net, args.facilities, seed=args.seed + 1)
    setup["snap_s"], fac = timed(lambda: snap_points(graph, fx, fy, max_snap_m=300.0))
    on = np.flatnonzero(~fac.off_network)
    builder = IsochroneBuilder(net)
    setup["exact_prepare_s"], _ = timed(lambda: builder.clean)
    setup["walk_field_index_s"], index = timed(
        lambda: WalkFieldIndex.build(graph, fac.min_component_nodes, builder=builder)
    )
    setup["peer_graph_s"], (split, g) = timed(
        lambda: (lambda sg: (sg, _osmnx_graph(sg)))(split_graph(net, fac))
    )
    cell_grid = args.cell_m if args.cell_m is not None else args.buffer_m / 2.0
    out: dict[str, list[Any]] = {}

    def reaches() -> list[Any]:
        every = all_facility_reach(graph, fac, cutoff_m)
        return [every[int(i)] for i in on]

    def exact() -> None:
        out["exact"] = [
            isochrone_polygons(
                net, r, [cutoff_m], args.buffer_m, quad_segs=args.quad_segs, points=fac,
                builder=builder,
            )[0]
            for r in reaches()
        ]  # fmt: skip

    def walk_field(workers: int) -> Callable[[], None]:
        def run() -> None:
            polys = walk_field_polygons(
                index, reaches(), [cutoff_m], args.buffer_m, args.field_cell_m, workers=workers
            )
            out[f"walk_field_{workers}"] = [p[0] for p in polys]

        return run

    def grid(workers: int) -> Callable[[], None]:
        def run() -> None:
            polys = grid_facility_polygons(
                net, fac, [cutoff_m], args.buffer_m, cell_grid, builder=builder, workers=workers
            )
            out[f"grid_{workers}"] = [polys[int(i)][0] for i in on]

        return run

    def concave() -> None:
        out["concave"] = [
            concave_hull_polygons(
                net, r, [cutoff_m], args.ratio, args.buffer_m, points=fac, builder=builder
            )[0]
            for r in reaches()
        ]

    sources = [int(split.point_node[i]) for i in on]

    def osmnx_recipe() -> None:
        out["osmnx_recipe"] = [_osmnx_recipe(g, s, cutoff_m) for s in sources]

    # First calls of the compiled kernels (numba compiles them or loads its cache): timed
    # apart, not in the rounds.
    first: dict[str, float] = {}
    first["walk_field_s"], _ = timed(walk_field(1))
    first["grid_s"], _ = timed(grid(1))
    tools: dict[str, Callable[[], None]] = {
        "exact": exact,
        "walk_field_1_thread": walk_field(1),
        f"walk_field_{cores}_threads": walk_field(cores),
        "grid_1_thread": grid(1),
        f"grid_{cores}_threads": grid(cores),
        "concave_hull": concave,
        "osmnx_recipe": osmnx_recipe,
    }
    if cores == 1:
        del tools["walk_field_1_threads"], tools["grid_1_threads"]
    timings = alternating_rounds(tools, rounds=args.rounds)
    ours = [name for name in tools if name != "osmnx_recipe"]
    ratios = {m: ratios_against(timings, m, ["osmnx_recipe"])["osmnx_recipe"] for m in ours}
    ref = out.get("exact", [])
    accuracy: dict[str, Any] = {}
    if ref:
        for label, key in (
            ("walk_field", "walk_field_1"),
            ("grid", "grid_1"),
            ("concave_hull", "concave"),
            ("osmnx_convex_hull", "osmnx_recipe"),
        ):
            if key in out:
                accuracy[label] = _vs_exact(out[key], ref)
    wf = out.get("walk_field_1", [])
    same_any_workers = {
        "walk_field": all(
            a.equals(b) for a, b in zip(wf, out.get(f"walk_field_{cores}", wf), strict=True)
        ),
        "grid": all(
            a.equals(b)
            for a, b in zip(out.get("grid_1", []), out.get(f"grid_{cores}", []), strict=True)
        ),
    }
    valid = {
        key: int(np.count_nonzero(shapely.is_valid(np.array(polys, dtype=object))))
        for key, polys in out.items()
    }
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
        "grid_cell_m": cell_grid,
        "walk_field_cell_m": args.field_cell_m,
        "rounds": args.rounds,
        "timings": timings,
        "ratios_osmnx_recipe_over": ratios,
        "first_call_s": first,
        "setup_s": setup,
        "area_vs_exact": accuracy,
        "mean_area_m2": {
            key: float(np.mean([p.area for p in polys])) if polys else None
            for key, polys in out.items()
        },
        "valid_polygons": valid,
        "same_result_any_workers": same_any_workers,
        "peak_rss_mb": peak_rss_mb(),
        "notes": [
            f"every tool on the same {on.shape[0]} on-network facilities, {args.rounds} rounds "
            "strictly alternating in one process (benchmarks._common.alternating_rounds), "
            "medians of CPU (all threads) and wall; ratios = osmnx recipe / ours",
            "exact, walk_field_*, concave_hull: routing (all_facility_reach) + polygons; "
            "grid_*: grid_facility_polygons (routing + polygon in one compiled pass); "
            "osmnx_recipe: nx.ego_graph by length + GeoSeries(points).union_all().convex_hull "
            "on an osmnx-style MultiDiGraph with the facilities inserted as nodes",
            "not in the rounds: network preparation (setup_s: IsochroneBuilder.clean, "
            "WalkFieldIndex.build, the peer's graph) and the first call of each compiled "
            "kernel (first_call_s)",
            "walk_field draws the area the /nearest search answers for (points snapped to "
            "their nearest way, conservative), a different region from the edge buffer: "
            "area_vs_exact is a difference, not an error, for it",
            f"quad_segs={args.quad_segs}, buffer_m={args.buffer_m}, concave ratio={args.ratio}",
        ],
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.isochrones", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--nodes", type=int, default=100_000, help="synthetic city size")
    p.add_argument("--yuzhong", action="store_true", help="use the real Yuzhong network")
    p.add_argument("--facilities", type=int, default=200)
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--speed-kmh", type=float, default=4.0)
    p.add_argument("--buffer-m", type=float, default=25.0)
    p.add_argument("--quad-segs", type=int, default=8)
    p.add_argument("--ratio", type=float, default=0.1, help="concave hull ratio")
    p.add_argument(
        "--cell-m", type=float, default=None, help="lattice of the gridded polygons (buffer/2)"
    )
    p.add_argument(
        "--field-cell-m",
        type=float,
        default=DEFAULT_FIELD_CELL_M,
        help="lattice of the walk-field polygons (default: the library's)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (at least 5)")
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--write", action="store_true", help=f"store the result in {RESULTS}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run one case and print (and optionally store) its JSON."""
    args = _parser().parse_args(argv)
    if args.rounds < 5:
        raise SystemExit("--rounds must be at least 5")
    info = machine_description(PACKAGES)
    result = run_case(args)
    result["machine"] = info
    text = json.dumps(result, ensure_ascii=False, indent=None if args.json else 2)
    if args.write:
        write_result("isochrones", result)
    print(text)
    if not args.json:
        load = result["timings"]["_load"]
        print(
            f"{result['facilities_on_network']} facilities, {load['rounds']} rounds, load "
            f"{load['load_1m_before']:.1f} → {load['load_1m_after']:.1f}",
            file=sys.stderr,
        )
        for name, item in result["timings"].items():
            if name == "_load":
                continue
            ratio = result["ratios_osmnx_recipe_over"].get(name, "")
            print(
                f"  {name:<22} "
                + (
                    f"not measured: {item['error']}"
                    if "error" in item
                    else f"CPU {item['cpu_s_median']:7.3f} s  wall {item['wall_s_median']:7.3f} s"
                    f"  osmnx/ours {ratio}"
                ),
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
