"""Siting new facilities: maximal covering (MCLP) and the fewest sites for a goal.

One interface, two solvers: ``solver="greedy"`` (lazy greedy / CELF, fast on any size,
with an online upper bound telling how far from optimal it can be) and
``solver="exact"`` (a MILP solved by HiGHS through ``highspy`` on the sparse coverage
matrix, with a time limit and the MIP gap HiGHS reports). Both work on a
:class:`~tuoyu.siting.model.SitingProblem` built from arrays.

Examples
--------
>>> import numpy as np, scipy.sparse as sp
>>> A = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=bool))
>>> problem = SitingProblem(A, np.array([1.0, 1.0, 1.0, 1.0]))
>>> solve_mclp(problem, 2, solver="exact").chosen.tolist()
[0, 2]
>>> min_sites_for_coverage(problem, 0.75).n_sites
2
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Literal

from tuoyu.errors import InputValidationError
from tuoyu.siting.greedy import greedy_mclp, greedy_min_sites, swap_improve
from tuoyu.siting.milp import demand_classes, exact_mclp, exact_min_sites
from tuoyu.siting.model import (
    RESULT_LABELS,
    SLOTS_PER_1000_TARGET,
    InfeasibleSitingError,
    SitingError,
    SitingProblem,
    SitingResult,
    conflict_pairs,
    required_groups_from_labels,
    slot_shortfall,
    uniform_slots,
)

Solver = Literal["greedy", "exact"]

__all__ = [
    "RESULT_LABELS",
    "SLOTS_PER_1000_TARGET",
    "InfeasibleSitingError",
    "SitingError",
    "SitingProblem",
    "SitingResult",
    "Solver",
    "conflict_pairs",
    "demand_classes",
    "min_sites_for_coverage",
    "required_groups_from_labels",
    "slot_shortfall",
    "solve_mclp",
    "swap_improve",
    "uniform_slots",
]


def _check_solver(solver: str) -> None:
    if solver not in ("greedy", "exact"):
        raise InputValidationError(
            f"solver must be 'greedy' or 'exact', got {solver!r}", field="solver"
        )


def _greedy_start(run: Callable[[], SitingResult]) -> tuple[SitingResult | None, float]:
    """Run a greedy warm start; a greedy that cannot meet the requirements gives none."""
    t0 = time.perf_counter()
    try:
        result: SitingResult | None = run()
    except InfeasibleSitingError:
        result = None
    return result, time.perf_counter() - t0


def solve_mclp(
    problem: SitingProblem,
    p: int,
    solver: Solver = "greedy",
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 0.0,
    *,
    warm_start: bool = True,
    local_search: bool = False,
) -> SitingResult:
    """Choose up to ``p`` new sites that newly cover the most weight.

    Parameters
    ----------
    problem
        Coverage matrix, weights, existing coverage and requirements.
    p
        Largest number of new sites.
    solver
        ``"greedy"`` (CELF) or ``"exact"`` (HiGHS MILP).
    time_limit_s, mip_rel_gap
        Exact solver only: HiGHS time limit and the relative gap at which it may stop.
    warm_start
        Exact solver only: start HiGHS from the greedy answer (its time is reported in
        ``timings_s["warm_start"]`` and included in ``wall_time_s``).
    local_search
        Greedy solver only: improve the greedy set by 1-swaps (slower, usually closer
        to the optimum; ``status`` says so).

    Returns
    -------
    SitingResult
        Sites in selection order with their gains, cumulative coverage, bound, solver
        name and whether the answer is proven optimal.

    Raises
    ------
    InfeasibleSitingError
        When the requirements cannot be met.
    SitingError
        When HiGHS stops without a feasible choice.
    """
    _check_solver(solver)
    if solver == "greedy":
        return greedy_mclp(problem, p, local_search=local_search)
    start_result: SitingResult | None = None
    greedy_s = 0.0
    if warm_start and problem.n_candidates and p:
        start_result, greedy_s = _greedy_start(lambda: greedy_mclp(problem, p))
    result = exact_mclp(
        problem, p, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, warm_start=start_result
    )
    return _with_warm_time(result, greedy_s)


def min_sites_for_coverage(
    problem: SitingProblem,
    goal_share: float,
    solver: Solver = "greedy",
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 0.0,
    *,
    warm_start: bool = True,
    then_maximise: bool = True,
) -> SitingResult:
    """Fewest new sites so that at least ``goal_share`` of all weight is covered.

    Parameters
    ----------
    problem
        Coverage matrix, weights, existing coverage and requirements.
    goal_share
        Goal in [0, 1], e.g. 0.9; demand already covered counts towards it.
    solver
        ``"greedy"`` (add the best site until the goal is met) or ``"exact"``.
    time_limit_s, mip_rel_gap
        Exact solver only.
    warm_start
        Exact solver only: start from the greedy answer.
    then_maximise
        Exact solver only: among the fewest sites, pick those covering the most.

    Returns
    -------
    SitingResult
        The sites, with ``goal_share`` and ``sites_lower_bound`` set.

    Raises
    ------
    InfeasibleSitingError
        When the goal or a requirement cannot be met.
    """
    _check_solver(solver)
    if solver == "greedy":
        return greedy_min_sites(problem, goal_share)
    start_result: SitingResult | None = None
    greedy_s = 0.0
    if warm_start and problem.n_candidates:
        start_result, greedy_s = _greedy_start(lambda: greedy_min_sites(problem, goal_share))
    result = exact_min_sites(
        problem,
        goal_share,
        time_limit_s=time_limit_s,
        mip_rel_gap=mip_rel_gap,
        warm_start=start_result,
        then_maximise=then_maximise,
    )
    return _with_warm_time(result, greedy_s)


def _with_warm_time(result: SitingResult, greedy_s: float) -> SitingResult:
    if greedy_s <= 0:
        return result
    timings = dict(result.timings_s)
    timings["warm_start"] = greedy_s
    return dataclasses.replace(result, timings_s=timings, wall_time_s=result.wall_time_s + greedy_s)
