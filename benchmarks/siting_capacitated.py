"""Capacitated siting benchmark: our exact MILP and max-flow greedy against PuLP.

One run, one synthetic instance (``benchmarks.siting.make_instance``: demand and
candidates near the streets of ``tuoyu.synthetic.synthetic_city``), straight-line
coverage ≤ ``--radius-m`` (the same matrix for every solver). Children per demand point
are the lognormal people weights × ``--children-share``; ``--existing`` facilities at
random demand points keep ``--existing-slots`` 托位 each; new sites are sized from the
menu 30/60/90/120 托位, at most ``--p`` of them.

Three solvers, ``--rounds`` rounds (≥ 3) strictly alternating ours → PuLP, medians
reported:

- ours, exact: :func:`tuoyu.siting.capacitated.solve_capacitated_exact` (the greedy warm
  start and its LP bound included; demand classes merged; sparse arrays → highspy);
- ours, greedy: :func:`~tuoyu.siting.capacitated.solve_capacitated_greedy` (max-flow
  marginals; its LP bound included);
- PuLP: the same capacitated model written the ordinary way with PuLP (one assignment
  variable per covered point–site pair, no merging), solved by PuLP's HiGHS (CBC when
  PuLP has no HiGHS) with the same time limit; build and solve timed separately. Its
  chosen set is re-evaluated with our max-flow evaluator.

spopt (PySAL) has no capacitated MCLP to compare with: issue pysal/spopt#222 ("MCLP with
optional Capacity of Facilities Constraint", closed, deferred to GSoC) and #415
("additional capacitated versions of location models", open; MCLP unchecked).

Usage::

    python -m benchmarks.siting_capacitated --write           # 10,000 × 1,000, 3 rounds
    python -m benchmarks.siting_capacitated --demand 2000 --candidates 200 --p 10  # quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from tuoyu.siting.capacitated import (
    CapacitatedProblem,
    evaluate_sites,
    solve_capacitated_exact,
    solve_capacitated_greedy,
)

from benchmarks._common import RESULTS_DIR, machine_description, peak_rss_mb, write_result
from benchmarks.siting import make_instance, sparse_coverage

RESULTS = RESULTS_DIR / "siting_capacitated.json"
PACKAGES = ("numpy", "scipy", "highspy", "pulp", "spopt")
MENU = (30.0, 60.0, 90.0, 120.0)
SPOPT_NOTE = (
    "spopt has no capacitated MCLP: pysal/spopt#222 (closed, deferred) and #415 (open, "
    "MCLP not yet capacitated); the comparison is with the same model written in PuLP"
)


def build_problem(args: argparse.Namespace) -> tuple[CapacitatedProblem, dict[str, Any]]:
    demand, cand, people = make_instance(
        args.demand, args.candidates, layout="synthetic", side_m=args.side_m, seed=args.seed
    )
    children = people * args.children_share
    t0 = time.perf_counter()
    coverage = sparse_coverage(demand, cand, args.radius_m)
    rng = np.random.default_rng(args.seed + 10)
    at = rng.choice(args.demand, args.existing, replace=False)
    existing = sparse_coverage(demand, demand[at], args.radius_m)
    coverage_s = time.perf_counter() - t0
    problem = CapacitatedProblem(
        coverage,
        children,
        p=args.p,
        size_menu=MENU,
        existing_coverage=existing,
        existing_capacity=np.full(args.existing, float(args.existing_slots)),
    )
    info = {
        "demand": args.demand,
        "candidates": args.candidates,
        "existing": args.existing,
        "existing_slots_each": args.existing_slots,
        "p": args.p,
        "size_menu": list(MENU),
        "radius_m": args.radius_m,
        "side_m": args.side_m,
        "seed": args.seed,
        "children_total": float(children.sum()),
        "coverage_nnz": int(coverage.nnz),
        "existing_coverage_nnz": int(existing.nnz),
        "coverage_build_s": coverage_s,
        "demand_classes": problem.classes().n_classes,
    }
    return problem, info


def run_ours(problem: CapacitatedProblem, time_limit_s: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    greedy = solve_capacitated_greedy(problem, time_limit_s=time_limit_s)
    greedy_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact = solve_capacitated_exact(problem, time_limit_s)
    exact_s = time.perf_counter() - t0
    return {
        "greedy_s": greedy_s,
        "greedy_objective": greedy.served_total,
        "greedy_upper_bound": greedy.upper_bound,
        "greedy_gap": greedy.mip_gap,
        "greedy_timings_s": greedy.timings_s,
        "exact_s": exact_s,
        "exact_build_s": exact.timings_s.get("build", 0.0),
        "exact_timings_s": exact.timings_s,
        "exact_objective": exact.served_total,
        "exact_upper_bound": exact.upper_bound,
        "exact_optimal": exact.optimal,
        "exact_mip_gap": exact.mip_gap,
        "exact_status": exact.status,
        "exact_model": exact.model_stats,
        "exact_slots": exact.total_slots,
        "exact_sites": int(exact.chosen.size),
    }


def _pulp_solver(time_limit_s: float) -> tuple[Any, str]:
    import pulp

    available = pulp.listSolvers(onlyAvailable=True)
    if "HiGHS" in available:
        return pulp.HiGHS(msg=False, timeLimit=time_limit_s), "pulp.HiGHS (highspy)"
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s), "pulp CBC (no HiGHS in pulp)"


def run_pulp(problem: CapacitatedProblem, time_limit_s: float) -> dict[str, Any]:
    """The capacitated MCLP in PuLP, the ordinary way: x per covered pair, z per size."""
    import pulp

    t0 = time.perf_counter()
    w = problem.weights
    new = sp.coo_matrix(problem.coverage)
    old = sp.coo_matrix(problem.existing_matrix())
    m = pulp.LpProblem("capacitated_mclp", pulp.LpMaximize)
    z = {
        (j, s): pulp.LpVariable(f"z_{j}_{int(s)}", cat=pulp.LpBinary)
        for j in range(problem.n_candidates)
        for s in MENU
    }
    x = {
        (int(j), int(i)): pulp.LpVariable(f"x_{j}_{i}", lowBound=0)
        for j, i in zip(new.row, new.col, strict=True)
    }
    e = {
        (int(k), int(i)): pulp.LpVariable(f"e_{k}_{i}", lowBound=0)
        for k, i in zip(old.row, old.col, strict=True)
    }
    m += pulp.lpSum(x.values()) + pulp.lpSum(e.values())
    by_point: dict[int, list[Any]] = {}
    by_site: dict[int, list[Any]] = {}
    by_old: dict[int, list[Any]] = {}
    for (j, i), v in x.items():
        by_point.setdefault(i, []).append(v)
        by_site.setdefault(j, []).append(v)
    for (k, i), v in e.items():
        by_point.setdefault(i, []).append(v)
        by_old.setdefault(k, []).append(v)
    for i, vs in by_point.items():
        m += pulp.lpSum(vs) <= float(w[i])
    for j in range(problem.n_candidates):
        m += pulp.lpSum(z[j, s] for s in MENU) <= 1
        if j in by_site:
            m += pulp.lpSum(by_site[j]) <= pulp.lpSum(s * z[j, s] for s in MENU)
    for k, vs in by_old.items():
        m += pulp.lpSum(vs) <= float(problem.existing_slots()[k])
    assert problem.p is not None
    m += pulp.lpSum(z.values()) <= problem.p
    build_s = time.perf_counter() - t0
    solver, name = _pulp_solver(time_limit_s)
    t0 = time.perf_counter()
    m.solve(solver)
    solve_s = time.perf_counter() - t0
    chosen, sizes = [], []
    for (j, s), v in z.items():
        if v.value() is not None and v.value() > 0.5:
            chosen.append(j)
            sizes.append(s)
    value = m.objective.value()
    evaluated = evaluate_sites(problem, chosen, sizes).served_total if chosen else None
    return {
        "build_s": build_s,
        "solve_s": solve_s,
        "total_s": build_s + solve_s,
        "solver": name,
        # PuLP's HiGHS door reports status "Optimal" when the time limit stops HiGHS with
        # a feasible answer; the solution status tells them apart.
        "status": pulp.LpStatus[m.status],
        "solution_status": pulp.LpSolution.get(m.sol_status, str(m.sol_status)),
        "objective_reported": None if value is None else float(value),
        "objective_of_chosen_set": evaluated,
        "sites": len(chosen),
        "variables": len(z) + len(x) + len(e),
    }


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if isinstance(r.get(key), int | float)]
    return statistics.median(vals) if vals else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--demand", type=int, default=10_000)
    ap.add_argument("--candidates", type=int, default=1_000)
    ap.add_argument("--existing", type=int, default=40)
    ap.add_argument("--existing-slots", type=float, default=60.0)
    ap.add_argument("--p", type=int, default=30)
    ap.add_argument("--children-share", type=float, default=0.02)
    ap.add_argument("--radius-m", type=float, default=1_000.0)
    ap.add_argument("--side-m", type=float, default=10_000.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time-limit-s", type=float, default=60.0, help="HiGHS limit, both")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-pulp", action="store_true")
    ap.add_argument("--write", action="store_true", help=f"write {RESULTS}")
    args = ap.parse_args(argv)
    if args.rounds < 3:
        raise SystemExit("--rounds must be at least 3")
    problem, instance = build_problem(args)
    ours_rows: list[dict[str, Any]] = []
    pulp_rows: list[dict[str, Any]] = []
    for k in range(args.rounds):  # strictly alternating: ours, PuLP, ours, PuLP, …
        ours_rows.append(run_ours(problem, args.time_limit_s))
        print(f"round {k + 1}: ours {json.dumps(ours_rows[-1], default=str)}", file=sys.stderr)
        if not args.skip_pulp:
            pulp_rows.append(run_pulp(problem, args.time_limit_s))
            print(f"round {k + 1}: pulp {json.dumps(pulp_rows[-1])}", file=sys.stderr)
    last = ours_rows[-1]
    result: dict[str, Any] = {
        "benchmark": "siting_capacitated",
        "instance": instance,
        "time_limit_s": args.time_limit_s,
        "rounds": args.rounds,
        "order": "strictly alternating per round: ours (greedy, exact), then PuLP",
        "medians": {
            "ours_exact_s": _median(ours_rows, "exact_s"),
            "ours_exact_build_s": _median(ours_rows, "exact_build_s"),
            "ours_greedy_s": _median(ours_rows, "greedy_s"),
            "pulp_build_s": _median(pulp_rows, "build_s"),
            "pulp_solve_s": _median(pulp_rows, "solve_s"),
            "pulp_total_s": _median(pulp_rows, "total_s"),
        },
        "objectives": {
            "ours_exact": _median(ours_rows, "exact_objective"),
            "ours_exact_upper_bound": _median(ours_rows, "exact_upper_bound"),
            "ours_exact_optimal": last["exact_optimal"],
            "ours_exact_mip_gap": last["exact_mip_gap"],
            "ours_greedy": _median(ours_rows, "greedy_objective"),
            "ours_greedy_gap_to_lp_bound": last["greedy_gap"],
            "pulp_reported": _median(pulp_rows, "objective_reported"),
            "pulp_chosen_set_max_flow": _median(pulp_rows, "objective_of_chosen_set"),
            "pulp_solution_status": pulp_rows[-1]["solution_status"] if pulp_rows else None,
        },
        "ours_model": last["exact_model"],
        "rounds_ours": ours_rows,
        "rounds_pulp": pulp_rows,
        "notes": [
            SPOPT_NOTE,
            "coverage: straight-line distance <= radius (same matrix for every solver)",
            "served = children served within capacity inside the radius (one 托位 = one child)",
            "ours_exact includes its greedy warm start and the LP bound; PuLP's build is the "
            "Python model construction, its solve includes PuLP writing the model to HiGHS",
        ],
        "peak_rss_mb": peak_rss_mb(),
        "machine": machine_description(PACKAGES),
    }
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    if args.write:
        write_result("siting_capacitated", json.loads(json.dumps(result, default=str)))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
