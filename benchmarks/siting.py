"""Siting benchmark: our exact (HiGHS MILP) and greedy MCLP against PySAL spopt's MCLP.

One run, one instance, three solvers:

- ours, exact: sparse coverage matrix → ``highspy`` model (demand classes merged),
  warm-started from greedy; model build and solve timed separately;
- ours, greedy: lazy greedy (CELF) with its online upper bound;
- spopt: ``spopt.locate.MCLP.from_cost_matrix(cost_matrix, weights, radius, p)`` on the
  dense cost matrix (its documented door), solved with pulp's HiGHS (``pulp.HiGHS``,
  the same solver family; CBC when pulp has no HiGHS), model build and solve timed
  separately. spopt builds one constraint per demand point by looping in Python over
  every candidate (a dense n_demand × n_candidates loop), so at full size its build alone
  takes minutes: above ``--spopt-full-max-cells`` it is run on smaller demand sets (same
  candidates) and its build time is extrapolated linearly in the number of demand
  points (the loop is linear in it), which ``notes`` says. ``--spopt-full`` forces the
  full-size run (in a child process, stopped after ``--spopt-timeout-s``).

Instance (``--layout``): ``synthetic`` (default) puts demand and candidates near the
streets of ``tuoyu.synthetic.synthetic_city`` (a jittered street grid ~``--side-m``
wide); ``clustered`` / ``uniform`` draw points on a plane. Weights are lognormal (people
per point). Coverage is straight-line distance ≤ ``--radius-m`` (the same for every
solver; the walking-network reach engine is benchmarked on its own).

Usage::

    python -m benchmarks.siting --demand 10000 --candidates 1000 --p 20 --json
    python -m benchmarks.siting --demand 2000 --candidates 200 --p 10 --json   # quick
    python -m benchmarks.siting --demand 10000 --candidates 1000 --p 20 --json --write
    python -m benchmarks.siting --yuzhong --write   # greedy vs exact on real Yuzhong data

``--write`` stores the JSON in ``benchmarks/results/siting.json`` (``siting_yuzhong.json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree
from tuoyu.siting import SitingProblem, solve_mclp

from benchmarks._common import RESULTS_DIR, machine_description, peak_rss_mb, write_result

RESULTS = RESULTS_DIR / "siting.json"
PACKAGES = ("numpy", "scipy", "highspy", "pulp", "spopt")


# ------------------------------------------------------------------------------ instance
def make_instance(
    n_demand: int, n_candidates: int, *, layout: str, side_m: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Demand points, candidate points (metres) and demand weights."""
    rng = np.random.default_rng(seed)
    if layout == "synthetic":
        from tuoyu.synthetic import random_facilities, synthetic_city

        n_nodes = max(4, int((side_m / 100.0) ** 2))  # blocks of 50–150 m
        net = synthetic_city(n_nodes, seed=seed)
        dx, dy = random_facilities(net, n_demand, seed + 1, max_offset_m=40.0)
        cx, cy = random_facilities(net, n_candidates, seed + 2, max_offset_m=10.0)
        demand, cand = np.column_stack([dx, dy]), np.column_stack([cx, cy])
    elif layout == "clustered":
        k = max(1, n_demand // 500)
        centres = rng.uniform(0, side_m, (k, 2))
        n_bg = n_demand // 5
        which = rng.integers(0, k, n_demand - n_bg)
        pts = centres[which] + rng.normal(0, side_m / 25, (n_demand - n_bg, 2))
        demand = np.clip(np.vstack([pts, rng.uniform(0, side_m, (n_bg, 2))]), 0, side_m)
        cand = rng.uniform(0, side_m, (n_candidates, 2))
    elif layout == "uniform":
        demand = rng.uniform(0, side_m, (n_demand, 2))
        cand = rng.uniform(0, side_m, (n_candidates, 2))
    else:
        raise SystemExit(f"unknown layout {layout!r}")
    weights = rng.lognormal(mean=3.0, sigma=1.0, size=n_demand)
    return demand, cand, weights


def sparse_coverage(demand: np.ndarray, cand: np.ndarray, radius_m: float) -> sp.csr_matrix:
    """Candidates × demand boolean matrix of pairs within ``radius_m`` (KD-tree)."""
    pairs = cKDTree(cand).sparse_distance_matrix(
        cKDTree(demand), radius_m, output_type="coo_matrix"
    )
    # sparse_distance_matrix drops pairs at distance exactly 0; add them back.
    same = cKDTree(cand).query_ball_point(demand, r=0.0)
    rows = [j for js in same for j in js]
    cols = [i for i, js in enumerate(same) for _ in js]
    extra = sp.coo_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(cand.shape[0], demand.shape[0])
    )
    return sp.csr_matrix((pairs + extra).astype(bool))


# ----------------------------------------------------------------------------- ours
def run_ours(
    coverage: sp.csr_matrix, weights: np.ndarray, p: int, time_limit_s: float
) -> dict[str, Any]:
    problem = SitingProblem(coverage, weights)
    greedy = solve_mclp(problem, p, solver="greedy")
    exact = solve_mclp(problem, p, solver="exact", time_limit_s=time_limit_s)
    return {
        "greedy_s": greedy.wall_time_s,
        "greedy_objective": greedy.objective,
        "greedy_upper_bound": greedy.upper_bound,
        "exact_s": exact.wall_time_s,
        # Model build: demand classes + the sparse LP/MILP arrays; solve: everything else
        # (LP, restricted MILP, swaps, final MILP), the greedy warm start included.
        "exact_build_s": exact.timings_s.get("build", 0.0),
        "exact_solve_s": exact.wall_time_s - exact.timings_s.get("build", 0.0),
        "exact_timings_s": exact.timings_s,
        "exact_objective": exact.objective,
        "exact_upper_bound": exact.upper_bound,
        "exact_optimal": exact.optimal,
        "exact_mip_gap": exact.mip_gap,
        "exact_status": exact.status,
        "exact_model": exact.model_stats,
        "exact_chosen": sorted(exact.chosen.tolist()),
    }


# ---------------------------------------------------------------------------- spopt
def _spopt_solver(time_limit_s: float) -> tuple[Any, str]:
    import pulp

    available = pulp.listSolvers(onlyAvailable=True)
    if "HiGHS" in available:
        return pulp.HiGHS(msg=False, timeLimit=time_limit_s), "pulp.HiGHS (highspy)"
    if "HiGHS_CMD" in available:
        return pulp.HiGHS_CMD(msg=False, timeLimit=time_limit_s), "pulp.HiGHS_CMD"
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s), "pulp CBC (no HiGHS in pulp)"


def run_spopt(
    demand: np.ndarray,
    cand: np.ndarray,
    weights: np.ndarray,
    radius_m: float,
    p: int,
    time_limit_s: float,
    solve: bool = True,
) -> dict[str, Any]:
    """spopt's MCLP from the dense cost matrix: build and solve timed separately."""
    from scipy.spatial.distance import cdist
    from spopt.locate import MCLP

    t0 = time.perf_counter()
    cost = cdist(demand, cand)  # spopt's door takes the dense demand × facility matrix
    cost_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = MCLP.from_cost_matrix(cost, weights, service_radius=radius_m, p_facilities=p)
    build_s = time.perf_counter() - t0
    out: dict[str, Any] = {"cost_matrix_s": cost_s, "build_s": build_s}
    if not solve:
        return out
    solver, solver_name = _spopt_solver(time_limit_s)
    t0 = time.perf_counter()
    model.solve(solver, results=False)
    out["solve_s"] = time.perf_counter() - t0
    out["solver"] = solver_name
    chosen = [j for j, v in enumerate(model.fac_vars) if v.value() is not None and v.value() > 0.5]
    out["chosen"] = sorted(chosen)
    out["objective_reported"] = float(model.problem.objective.value())
    out["status"] = str(model.problem.status)
    return out


def _child(queue: Any, args: tuple[Any, ...]) -> None:
    try:
        queue.put(("ok", run_spopt(*args)))
    except Exception as exc:  # report any failure of the child to the parent
        queue.put(("error", repr(exc)))


def run_spopt_limited(args: tuple[Any, ...], timeout_s: float) -> dict[str, Any] | None:
    """Run spopt in a child process; None when it does not finish within ``timeout_s``."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, args))
    proc.start()
    try:
        kind, payload = queue.get(timeout=timeout_s)
    except Exception:
        proc.terminate()
        proc.join(10)
        return None
    proc.join(10)
    if kind != "ok":
        raise RuntimeError(f"spopt failed: {payload}")
    return dict(payload)


# --------------------------------------------------------------------------- Yuzhong
def yuzhong_gaps(spacing_m: float, ps: list[int], time_limit_s: float) -> dict[str, Any]:
    """Greedy (and greedy + 1-swap) against the exact optimum on the real Yuzhong data.

    Walking network and buildings from the shared OSM extract, population = the 2020
    census total spread over buildings by floor area, candidates sampled on the network
    every ``spacing_m``, coverage = walking distance ≤ 1,000 m (15 min at 4 km/h).
    """
    import geopandas as gpd
    from tuoyu.config.data_registry import resolve_data_file
    from tuoyu.config.settings import get_settings
    from tuoyu.layers.osm_features import load_osm_buildings
    from tuoyu.layers.osm_network import load_walk_network
    from tuoyu.layers.population import building_points
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.reach.engine import reach_matrix
    from tuoyu.siting.candidates import sample_on_network, to_snapped_points

    settings = get_settings()
    pbf = resolve_data_file("chongqing-yuzhong/yuzhong.osm.pbf", settings)
    net = load_walk_network(pbf)
    graph = build_graph(net)
    outline = gpd.read_file(resolve_data_file("chongqing-yuzhong/district.geojson", settings))
    people = building_points(
        load_osm_buildings(pbf, net.crs), 588_717, outline=outline.to_crs(net.crs)
    )
    demand = snap_points(graph, people.geometry.x.to_numpy(), people.geometry.y.to_numpy(), 300.0)
    cands = to_snapped_points(sample_on_network(net, spacing_m), 300.0)
    reach = reach_matrix(graph, cands, demand, 1_000.0)
    problem = SitingProblem(sp.csr_matrix(reach), people["population"].to_numpy(dtype=float))
    rows = []
    for p in ps:
        greedy = solve_mclp(problem, p)
        swapped = solve_mclp(problem, p, local_search=True)
        exact = solve_mclp(problem, p, solver="exact", time_limit_s=time_limit_s)
        rows.append(
            {
                "p": p,
                "greedy": greedy.objective,
                "greedy_swap": swapped.objective,
                "exact": exact.objective,
                "exact_optimal": exact.optimal,
                "greedy_gap": 1 - greedy.objective / exact.objective,
                "greedy_swap_gap": 1 - swapped.objective / exact.objective,
                "exact_s": exact.wall_time_s,
                "greedy_s": greedy.wall_time_s,
                "greedy_swap_s": swapped.wall_time_s,
            }
        )
    return {
        "benchmark": "siting-yuzhong",
        "instance": {
            "demand_points": len(demand),
            "candidates": len(cands),
            "candidate_spacing_m": spacing_m,
            "coverage_nnz": int(reach.nnz),
            "walk_cutoff_m": 1_000.0,
            "population": float(problem.total_weight),
        },
        "by_p": rows,
        "machine": machine_description(PACKAGES),
    }


# ------------------------------------------------------------------------------ main
def objective_of(coverage: sp.csr_matrix, weights: np.ndarray, chosen: list[int]) -> float:
    if not chosen:
        return 0.0
    covered = np.zeros(coverage.shape[1], dtype=bool)
    covered[coverage[chosen].indices] = True
    return float(weights[covered].sum())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demand", type=int, default=10_000)
    ap.add_argument("--candidates", type=int, default=1_000)
    ap.add_argument("--p", type=int, default=20)
    ap.add_argument("--radius-m", type=float, default=1_000.0)
    ap.add_argument("--side-m", type=float, default=10_000.0)
    ap.add_argument("--layout", choices=["synthetic", "clustered", "uniform"], default="synthetic")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--time-limit-s", type=float, default=60.0, help="HiGHS limit, ours and spopt's"
    )
    ap.add_argument("--skip-spopt", action="store_true")
    ap.add_argument(
        "--spopt-full-max-cells",
        type=float,
        default=2e6,
        help="largest demand × candidates that spopt runs at full size by default",
    )
    ap.add_argument("--spopt-full", action="store_true", help="run spopt at full size anyway")
    ap.add_argument("--spopt-timeout-s", type=float, default=900.0)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--write", action="store_true", help=f"write {RESULTS}")
    ap.add_argument(
        "--yuzhong",
        action="store_true",
        help="instead: greedy vs exact on the real Yuzhong network for p = 5, 10, 20",
    )
    ap.add_argument("--spacing-m", type=float, default=150.0, help="Yuzhong candidate spacing")
    args = ap.parse_args(argv)
    if args.yuzhong:
        out = yuzhong_gaps(args.spacing_m, [5, 10, 20], args.time_limit_s)
        print(json.dumps(out, indent=2, ensure_ascii=False, default=str))
        if args.write:
            write_result("siting_yuzhong", json.loads(json.dumps(out, default=str)))
        return out

    notes: list[str] = [
        "coverage: straight-line distance <= radius on the instance (same for every solver)"
    ]
    demand, cand, weights = make_instance(
        args.demand, args.candidates, layout=args.layout, side_m=args.side_m, seed=args.seed
    )
    t0 = time.perf_counter()
    coverage = sparse_coverage(demand, cand, args.radius_m)
    coverage_s = time.perf_counter() - t0
    ours = run_ours(coverage, weights, args.p, args.time_limit_s)

    spopt: dict[str, Any] | None = None
    spopt_build_s: float | None = None
    spopt_build_extrapolated = False
    by_size: list[dict[str, Any]] = []
    cells = args.demand * args.candidates
    if not args.skip_spopt:
        spopt_args = (demand, cand, weights, args.radius_m, args.p, args.time_limit_s)
        if cells <= args.spopt_full_max_cells or args.spopt_full:
            spopt = run_spopt_limited(spopt_args, args.spopt_timeout_s)
            if spopt is None:
                notes.append(
                    f"spopt did not finish build + solve within {args.spopt_timeout_s:g} s "
                    "at full size (stopped)"
                )
            else:
                spopt_build_s = spopt["build_s"]
                spopt["objective"] = objective_of(coverage, weights, spopt["chosen"])
        if spopt is None:
            # Build (and solve) spopt on smaller demand sets with the same candidates.
            sizes = sorted({max(50, args.demand // 16), max(100, args.demand // 8)})
            for n in sizes:
                sub = run_spopt(
                    demand[:n], cand, weights[:n], args.radius_m, args.p, args.time_limit_s
                )
                sub_cov = coverage[:, :n]
                sub_ours = run_ours(sp.csr_matrix(sub_cov), weights[:n], args.p, args.time_limit_s)
                sub["objective"] = objective_of(sp.csr_matrix(sub_cov), weights[:n], sub["chosen"])
                by_size.append({"demand": n, "spopt": sub, "ours": sub_ours})
            ns = np.array([row["demand"] for row in by_size], dtype=float)
            bs = np.array([row["spopt"]["build_s"] for row in by_size], dtype=float)
            per_point = float((ns @ bs) / (ns @ ns))  # least squares through the origin
            spopt_build_s = per_point * args.demand
            spopt_build_extrapolated = True
            notes.append(
                f"spopt build time at {args.demand} demand points extrapolated linearly from "
                f"runs at {', '.join(str(int(n)) for n in ns)} demand points (same candidates); "
                "spopt's full-size solve not run (see by_size for solve times at those sizes)"
            )

    spopt_solve_s = spopt.get("solve_s") if spopt else None
    exact_obj = ours["exact_objective"]
    result: dict[str, Any] = {
        "benchmark": "siting",
        "instance": {
            "demand": args.demand,
            "candidates": args.candidates,
            "p": args.p,
            "radius_m": args.radius_m,
            "side_m": args.side_m,
            "layout": args.layout,
            "seed": args.seed,
            "coverage_nnz": int(coverage.nnz),
            "coverage_build_s": coverage_s,
        },
        "ours_exact_s": ours["exact_s"],
        "ours_exact_build_s": ours["exact_build_s"],
        "ours_exact_solve_s": ours["exact_solve_s"],
        "ours_greedy_s": ours["greedy_s"],
        "spopt_build_s": spopt_build_s,
        "spopt_build_extrapolated": spopt_build_extrapolated,
        "spopt_solve_s": spopt_solve_s,
        "spopt_solver": (spopt or (by_size[0]["spopt"] if by_size else {})).get("solver"),
        "objectives": {
            "ours_exact": exact_obj,
            "ours_exact_upper_bound": ours["exact_upper_bound"],
            "ours_exact_optimal": ours["exact_optimal"],
            "ours_exact_mip_gap": ours["exact_mip_gap"],
            "ours_greedy": ours["greedy_objective"],
            "ours_greedy_upper_bound": ours["greedy_upper_bound"],
            "spopt": spopt["objective"] if spopt else None,
        },
        "ratios": {
            "greedy_over_exact_objective": (ours["greedy_objective"] / exact_obj)
            if exact_obj
            else None,
            "spopt_build_over_ours_exact_total": (spopt_build_s / ours["exact_s"])
            if spopt_build_s
            else None,
            "spopt_total_over_ours_exact_total": ((spopt_build_s + spopt_solve_s) / ours["exact_s"])
            if spopt_build_s and spopt_solve_s
            else None,
            "spopt_over_ours_exact_objective": (spopt["objective"] / exact_obj)
            if spopt and exact_obj
            else None,
            "ours_exact_over_greedy_time": ours["exact_s"] / ours["greedy_s"]
            if ours["greedy_s"]
            else None,
        },
        "ours_exact_timings_s": ours["exact_timings_s"],
        "ours_model": ours["exact_model"],
        "by_size": by_size,
        "notes": notes,
        "peak_rss_mb": peak_rss_mb(),
        "machine": machine_description(PACKAGES),
    }
    if spopt:
        result["spopt_detail"] = {k: v for k, v in spopt.items() if k != "chosen"}
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    else:
        print(
            f"ours exact {ours['exact_s']:.2f} s (build {ours['exact_build_s']:.2f}, solve "
            f"{ours['exact_solve_s']:.2f}, optimal {ours['exact_optimal']}), greedy "
            f"{ours['greedy_s']:.3f} s, greedy/exact objective "
            f"{result['ratios']['greedy_over_exact_objective']:.4f}; spopt build "
            f"{spopt_build_s}, solve {spopt_solve_s}"
        )
    if args.write:
        write_result("siting", json.loads(json.dumps(result, default=str)))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
