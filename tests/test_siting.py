"""Siting: MCLP and fewest-sites solvers (greedy and exact) and candidate sampling."""

from __future__ import annotations

import itertools
import math

import geopandas as gpd
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.settings import Settings
from tuoyu.crs.china import convert
from tuoyu.crs.projection import utm_crs_for
from tuoyu.errors import InputValidationError, TuoyuError
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.siting import (
    InfeasibleSitingError,
    SitingProblem,
    demand_classes,
    min_sites_for_coverage,
    required_groups_from_labels,
    slot_shortfall,
    solve_mclp,
    uniform_slots,
)
from tuoyu.siting.candidates import (
    CANDIDATE_COLUMNS,
    dedupe,
    min_spacing_filter,
    sample_on_network,
    to_snapped_points,
)
from tuoyu.siting.greedy import swap_improve
from tuoyu.siting.milp import _solve_compact_mclp
from tuoyu.synthetic import synthetic_city

SOLVERS = ["greedy", "exact"]

# --------------------------------------------------------------------------- hand instance
# 6 candidates × 10 demand points. Weights d0..d9 = 1 1 1 1 1 1 2 1 1 2 (total 12).
#   C0 covers d0–d5          → 6   (the "central" site greedy takes first)
#   C1 covers d0 d1 d2 d6    → 5
#   C2 covers d3 d4 d5 d9    → 5
#   C3 covers d6 d7          → 3
#   C4 covers d8 d9          → 3
#   C5 covers d7 d8          → 2
# By hand: p=1 → {C0} = 6. p=2 → {C1, C2} = 10 (every pair with C0 reaches at most
# 6 + 3 = 9); greedy takes C0 then C3 (tie with C4, lower index) = 9: provably
# suboptimal. p=3 → 12 = everything ({C1, C2, C5} or {C0, C3, C4}).
HAND_COVER = [
    [0, 1, 2, 3, 4, 5],
    [0, 1, 2, 6],
    [3, 4, 5, 9],
    [6, 7],
    [8, 9],
    [7, 8],
]
HAND_W = np.array([1, 1, 1, 1, 1, 1, 2, 1, 1, 2], dtype=np.float64)


def _matrix(cover: list[list[int]], n_demand: int) -> sp.csr_matrix:
    rows = [j for j, c in enumerate(cover) for _ in c]
    cols = [i for c in cover for i in c]
    return sp.csr_matrix(
        (np.ones(len(rows), dtype=bool), (rows, cols)), shape=(len(cover), n_demand)
    )


def hand_problem(**kwargs: object) -> SitingProblem:
    return SitingProblem(_matrix(HAND_COVER, 10), HAND_W, **kwargs)  # type: ignore[arg-type]


def brute_force(problem: SitingProblem, p: int) -> tuple[float, tuple[int, ...] | None]:
    """Best objective over all subsets of at most p candidates that meet the requirements."""
    best, best_set = -1.0, None
    for k in range(min(p, problem.n_candidates) + 1):
        for subset in itertools.combinations(range(problem.n_candidates), k):
            if problem.check_chosen(list(subset)):
                continue
            value = problem.objective_of(list(subset))
            if value > best + 1e-9:
                best, best_set = value, subset
    return best, best_set


def brute_min_sites(problem: SitingProblem, goal_share: float) -> int | None:
    need = goal_share * problem.total_weight - problem.baseline_weight
    for k in range(problem.n_candidates + 1):
        for subset in itertools.combinations(range(problem.n_candidates), k):
            if problem.check_chosen(list(subset)):
                continue
            if problem.objective_of(list(subset)) >= need - 1e-9:
                return k
    return None


def assert_consistent(problem: SitingProblem, result: object) -> None:
    """Chosen set meets the requirements; gains, cumulative columns and objective agree."""
    from tuoyu.siting import SitingResult

    assert isinstance(result, SitingResult)
    assert problem.check_chosen(result.chosen) == []
    assert len(set(result.chosen.tolist())) == result.n_sites
    assert result.objective == pytest.approx(problem.objective_of(result.chosen))
    assert result.gain_weight.sum() == pytest.approx(result.objective)
    if result.n_sites:
        assert result.cumulative_weight[-1] == pytest.approx(
            problem.baseline_weight + result.objective
        )
        assert np.all(np.diff(result.cumulative_share) >= -1e-12)
    assert result.upper_bound >= result.objective - 1e-9


@pytest.mark.parametrize(("p", "expected"), [(1, 6.0), (2, 10.0), (3, 12.0)])
def test_exact_finds_hand_optimum(p: int, expected: float) -> None:
    problem = hand_problem()
    assert brute_force(problem, p)[0] == expected
    result = solve_mclp(problem, p, solver="exact")
    assert result.objective == expected
    assert result.optimal and result.solver == "exact"
    assert result.mip_gap is not None and result.mip_gap <= 1e-9
    assert result.upper_bound == pytest.approx(expected)
    assert_consistent(problem, result)
    if p == 2:
        assert sorted(result.chosen.tolist()) == [1, 2]


def test_greedy_is_provably_suboptimal_and_bound_says_so() -> None:
    problem = hand_problem()
    greedy = solve_mclp(problem, 2, solver="greedy")
    exact = solve_mclp(problem, 2, solver="exact")
    assert greedy.chosen.tolist() == [0, 3]
    assert greedy.gain_weight.tolist() == [6.0, 3.0]
    assert greedy.cumulative_weight.tolist() == [6.0, 9.0]
    assert greedy.cumulative_share.tolist() == pytest.approx([0.5, 0.75])
    assert greedy.objective == 9.0 < exact.objective == 10.0
    assert not greedy.optimal and greedy.mip_gap is None
    # The online bound must cover the true optimum (10) and cannot exceed all weight.
    assert 10.0 <= greedy.upper_bound <= 12.0
    assert greedy.bound_gap > 0
    # The greedy answer is used as HiGHS's starting point and the exact one beats it.
    assert exact.model_stats["warm_start"] == 1
    assert "warm_start" in exact.timings_s


def test_greedy_on_hand_instance_at_p1_p3_is_optimal() -> None:
    problem = hand_problem()
    r1 = solve_mclp(problem, 1)
    assert r1.chosen.tolist() == [0] and r1.objective == 6.0 and r1.optimal
    r3 = solve_mclp(problem, 3)
    assert r3.chosen.tolist() == [0, 3, 4] and r3.objective == 12.0
    assert r3.optimal  # bound = total weight is met


def test_exact_ranks_by_marginal_gain() -> None:
    result = solve_mclp(hand_problem(), 3, solver="exact")
    assert np.all(np.diff(result.gain_weight) <= 1e-12)
    assert result.gain_weight[0] == pytest.approx(
        max(HAND_W[c].sum() for c in (HAND_COVER[j] for j in result.chosen))
    )


@pytest.mark.parametrize("solver", SOLVERS)
def test_already_covered_demand_gives_no_gain(solver: str) -> None:
    covered = np.zeros(10, dtype=bool)
    covered[[0, 1, 2, 3, 4, 5]] = True  # all of C0's demand is already served
    problem = hand_problem(already_covered=covered)
    assert problem.baseline_weight == 6.0
    result = solve_mclp(problem, 2, solver=solver)
    assert 0 not in result.chosen.tolist()
    # Open demand: d6 (2) d7 d8 d9 (2) — C3 + C4 cover all 6 of it.
    assert result.objective == 6.0
    assert sorted(result.chosen.tolist()) == [3, 4]
    assert result.cumulative_weight[-1] == 12.0 and result.covered_share == 1.0
    r1 = solve_mclp(problem, 1, solver=solver)
    assert r1.objective == 3.0  # best single site: C3 (d6 + d7) or C4 (d8 + d9)


@pytest.mark.parametrize("solver", SOLVERS)
def test_required_groups_are_honoured(solver: str) -> None:
    groups, names = required_groups_from_labels(
        ["A", "A", "B", "C", "C", "D"], ["D"]
    )  # unit "D" (only C5) must get a site
    assert names == ("D",) and groups[0].tolist() == [5]
    problem = hand_problem(required_groups=groups, required_group_names=names)
    result = solve_mclp(problem, 2, solver=solver)
    assert 5 in result.chosen.tolist()
    best, _ = brute_force(problem, 2)
    assert best == 8.0  # C5 + C0
    if solver == "exact":
        assert result.objective == best
    else:
        assert result.objective <= best
    assert_consistent(problem, result)


@pytest.mark.parametrize("solver", SOLVERS)
def test_min_spacing_is_honoured(solver: str) -> None:
    # C1 and C2 only 50 m apart: with 100 m spacing the pair {C1, C2} is forbidden.
    x = np.array([0.0, 500.0, 550.0, 1000.0, 2000.0, 3000.0])
    y = np.zeros(6)
    problem = hand_problem(candidate_x_m=x, candidate_y_m=y, min_spacing_m=100.0)
    a, b = problem.conflicts()
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == [(1, 2)]
    result = solve_mclp(problem, 2, solver=solver)
    assert not {1, 2} <= set(result.chosen.tolist())
    assert result.objective == 9.0 == brute_force(problem, 2)[0]
    assert_consistent(problem, result)


@pytest.mark.parametrize("solver", SOLVERS)
def test_slot_budget_and_target(solver: str) -> None:
    slots = np.array([30.0, 20.0, 20.0, 10.0, 10.0, 10.0])
    budget = hand_problem(candidate_slots=slots, max_total_slots=35.0)
    r = solve_mclp(budget, 2, solver=solver)
    assert r.total_slots <= 35.0
    assert brute_force(budget, 2)[0] == 8.0
    if solver == "exact":
        assert r.objective == 8.0
    assert_consistent(budget, r)

    target = hand_problem(candidate_slots=slots, min_total_slots=60.0)
    r = solve_mclp(target, 3, solver=solver)
    assert r.total_slots >= 60.0
    assert_consistent(target, r)
    if solver == "exact":
        assert r.objective == brute_force(target, 3)[0]


def test_slot_helpers() -> None:
    assert slot_shortfall(588_717, 1_000) == pytest.approx(4.5 * 588.717 - 1_000)
    assert slot_shortfall(1_000, 100) == 0.0
    assert uniform_slots(3, 25).tolist() == [25.0, 25.0, 25.0]
    with pytest.raises(InputValidationError):
        uniform_slots(3, -1)


@pytest.mark.parametrize("solver", SOLVERS)
def test_p_larger_than_candidates(solver: str) -> None:
    problem = hand_problem()
    result = solve_mclp(problem, 50, solver=solver)
    assert result.objective == 12.0 and result.covered_share == 1.0
    # Sites adding nothing are left out, and the result says so.
    assert result.n_sites <= 4
    assert all(g > 0 for g in result.gain_weight)
    assert any("p = 50" in n for n in result.notes)


@pytest.mark.parametrize("solver", SOLVERS)
def test_empty_inputs(solver: str) -> None:
    no_candidates = SitingProblem(sp.csr_matrix((0, 4), dtype=bool), np.ones(4))
    r = solve_mclp(no_candidates, 3, solver=solver)
    assert r.n_sites == 0 and r.objective == 0.0 and r.optimal
    assert list(r.to_frame().columns) == [
        "rank",
        "candidate",
        "gain_weight",
        "cumulative_weight",
        "cumulative_share",
    ]
    no_demand = SitingProblem(sp.csr_matrix((5, 0), dtype=bool), np.empty(0))
    r = solve_mclp(no_demand, 2, solver=solver)
    assert r.n_sites == 0 and r.covered_share == 0.0
    r = solve_mclp(hand_problem(), 0, solver=solver)
    assert r.n_sites == 0
    r = min_sites_for_coverage(no_demand, 0.9, solver=solver)
    assert r.n_sites == 0 and r.sites_lower_bound == 0


@pytest.mark.parametrize("solver", SOLVERS)
def test_infeasible_requirements_raise_clear_errors(solver: str) -> None:
    # A required unit without any candidate.
    problem = hand_problem(
        required_groups=[np.array([], dtype=np.int64)], required_group_names=["朝阳门街道"]
    )
    with pytest.raises(InfeasibleSitingError, match="朝阳门街道"):
        solve_mclp(problem, 2, solver=solver)
    # Two required groups whose only candidates conflict by spacing.
    x = np.array([0.0, 500.0, 550.0, 1000.0, 2000.0, 3000.0])
    problem = hand_problem(
        required_groups=[np.array([1]), np.array([2])],
        candidate_x_m=x,
        candidate_y_m=np.zeros(6),
        min_spacing_m=100.0,
    )
    with pytest.raises(InfeasibleSitingError):
        solve_mclp(problem, 3, solver=solver)
    # More disjoint groups than sites.
    problem = hand_problem(required_groups=[np.array([0]), np.array([1]), np.array([2])])
    with pytest.raises(InfeasibleSitingError, match="p = 2"):
        solve_mclp(problem, 2, solver=solver)
    # A slot target beyond the p largest sites.
    problem = hand_problem(candidate_slots=uniform_slots(6, 20), min_total_slots=90)
    with pytest.raises(InfeasibleSitingError, match="托位"):
        solve_mclp(problem, 4, solver=solver)
    # The errors belong to the project's hierarchy (and so are ValueErrors).
    assert issubclass(InfeasibleSitingError, TuoyuError)


def test_bad_arguments() -> None:
    with pytest.raises(InputValidationError, match="weights"):
        SitingProblem(_matrix(HAND_COVER, 10), np.ones(9))
    with pytest.raises(InputValidationError, match="weights"):
        SitingProblem(_matrix(HAND_COVER, 10), -HAND_W)
    with pytest.raises(InputValidationError, match="outside"):
        hand_problem(required_groups=[np.array([6])])
    with pytest.raises(InputValidationError, match="min_spacing_m"):
        hand_problem(min_spacing_m=100.0)
    with pytest.raises(InputValidationError, match="candidate_slots"):
        hand_problem(max_total_slots=10.0)
    with pytest.raises(InputValidationError, match="solver"):
        solve_mclp(hand_problem(), 2, solver="cplex")  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="p must"):
        solve_mclp(hand_problem(), -1)
    with pytest.raises(InputValidationError, match="goal_share"):
        min_sites_for_coverage(hand_problem(), 1.5)
    with pytest.raises(InputValidationError, match="coverage"):
        SitingProblem(np.ones((2, 2)), np.ones(2))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- inverse question
@pytest.mark.parametrize(
    ("goal", "fewest"), [(0.0, 0), (0.5, 1), (0.75, 2), (10 / 12, 2), (1.0, 3)]
)
def test_exact_min_sites_matches_brute_force(goal: float, fewest: int) -> None:
    problem = hand_problem()
    assert brute_min_sites(problem, goal) == fewest
    result = min_sites_for_coverage(problem, goal, solver="exact")
    assert result.n_sites == fewest
    assert result.optimal and result.sites_lower_bound == fewest
    assert result.covered_share >= goal - 1e-12
    assert_consistent(problem, result)


def test_greedy_min_sites_and_its_lower_bound() -> None:
    problem = hand_problem()
    # Goal 10/12: exact needs 2 (C1, C2); greedy walks C0, C3, C4 → 3 sites.
    greedy = min_sites_for_coverage(problem, 10 / 12, solver="greedy")
    exact = min_sites_for_coverage(problem, 10 / 12, solver="exact")
    assert greedy.chosen.tolist() == [0, 3, 4]
    assert exact.n_sites == 2 and sorted(exact.chosen.tolist()) == [1, 2]
    assert greedy.sites_lower_bound is not None and greedy.sites_lower_bound <= 2
    assert not greedy.optimal
    one = min_sites_for_coverage(problem, 0.5, solver="greedy")
    assert one.n_sites == 1 and one.optimal


@pytest.mark.parametrize("solver", SOLVERS)
def test_min_sites_unreachable_goal(solver: str) -> None:
    problem = SitingProblem(_matrix([[0], [1]], 3), np.array([1.0, 1.0, 2.0]))
    with pytest.raises(InfeasibleSitingError, match=r"50\.0%"):
        min_sites_for_coverage(problem, 0.9, solver=solver)


def test_min_sites_with_required_group() -> None:
    # Goal 50 % alone needs C0; with unit D required the answer is {C0, C5}.
    groups = [np.array([5])]
    problem = hand_problem(required_groups=groups)
    for solver in SOLVERS:
        r = min_sites_for_coverage(problem, 0.5, solver=solver)  # type: ignore[arg-type]
        assert sorted(r.chosen.tolist()) == [0, 5]
    assert brute_min_sites(problem, 0.5) == 2


# ----------------------------------------------------------------- random cross-checks
@st.composite
def small_problems(draw: st.DrawFn) -> tuple[SitingProblem, int]:
    n_c = draw(st.integers(1, 7))
    n_d = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    dense = rng.random((n_c, n_d)) < draw(st.sampled_from([0.15, 0.3, 0.5]))
    weights = rng.integers(0, 6, n_d).astype(np.float64)
    kwargs: dict[str, object] = {}
    if draw(st.booleans()):
        kwargs["already_covered"] = rng.random(n_d) < 0.2
    if draw(st.booleans()):
        kwargs["candidate_x_m"] = rng.uniform(0, 300, n_c)
        kwargs["candidate_y_m"] = rng.uniform(0, 300, n_c)
        kwargs["min_spacing_m"] = 80.0
    if draw(st.booleans()):
        label = rng.integers(0, 3, n_c)
        kwargs["required_groups"] = [np.flatnonzero(label == 0)]
    slot_rule = draw(st.sampled_from(["none", "budget", "target"]))
    if slot_rule != "none":
        kwargs["candidate_slots"] = rng.integers(5, 30, n_c).astype(np.float64)
        kwargs["max_total_slots" if slot_rule == "budget" else "min_total_slots"] = 45.0
    p = draw(st.integers(0, 5))
    return SitingProblem(sp.csr_matrix(dense), weights, **kwargs), p  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(small_problems())
def test_random_instances_against_brute_force(case: tuple[SitingProblem, int]) -> None:
    problem, p = case
    best, best_set = brute_force(problem, p)
    if best_set is None:
        with pytest.raises(InfeasibleSitingError):
            solve_mclp(problem, p, solver="exact")
        return
    exact = solve_mclp(problem, p, solver="exact")
    assert exact.objective == pytest.approx(best)
    assert exact.optimal
    assert exact.n_sites <= p
    assert_consistent(problem, exact)
    try:
        greedy = solve_mclp(problem, p, solver="greedy")
    except InfeasibleSitingError:
        return  # greedy may miss a feasible choice under requirements; exact decides
    assert_consistent(problem, greedy)
    assert greedy.objective <= best + 1e-9
    assert greedy.upper_bound >= best - 1e-9  # the online bound is a true bound
    if greedy.optimal:
        assert greedy.objective == pytest.approx(best)


@settings(max_examples=40, deadline=None)
@given(small_problems(), st.sampled_from([0.3, 0.6, 0.9]))
def test_random_min_sites_against_brute_force(case: tuple[SitingProblem, int], goal: float) -> None:
    problem, _ = case
    fewest = brute_min_sites(problem, goal)
    reachable = problem.baseline_weight + problem.reachable_weight()
    if fewest is None or reachable < goal * problem.total_weight - 1e-9:
        with pytest.raises(InfeasibleSitingError):
            min_sites_for_coverage(problem, goal, solver="exact")
        return
    exact = min_sites_for_coverage(problem, goal, solver="exact")
    assert exact.optimal and exact.n_sites == fewest
    if problem.total_weight > 0:
        assert exact.covered_share >= goal - 1e-9
    assert_consistent(problem, exact)
    try:
        greedy = min_sites_for_coverage(problem, goal, solver="greedy")
    except InfeasibleSitingError:
        return
    assert greedy.n_sites >= fewest
    assert greedy.sites_lower_bound is not None and greedy.sites_lower_bound <= fewest
    assert_consistent(problem, greedy)


def test_demand_classes_merge_identical_columns() -> None:
    # Demand 0, 1, 4 are covered by {0, 1}; 2 by {1}; 3 by nobody; 5 already covered.
    cover = sp.csr_matrix(np.array([[1, 1, 0, 0, 1, 1], [1, 1, 1, 0, 1, 1]], dtype=bool))
    covered = np.array([False, False, False, False, False, True])
    problem = SitingProblem(
        cover, np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]), already_covered=covered
    )
    classes = demand_classes(problem)
    assert classes.n_classes == 2
    assert classes.class_of.tolist() == [0, 0, 1, -1, 0, -1]
    assert classes.weight.tolist() == [19.0, 4.0]
    assert classes.coverage.toarray().astype(int).tolist() == [[1, 0], [1, 1]]
    result = solve_mclp(problem, 1, solver="exact", warm_start=False)
    assert result.chosen.tolist() == [1] and result.objective == 23.0
    assert result.model_stats["demand_rows"] == 2
    assert result.model_stats["demand_in_model"] == 4


def test_exact_on_a_random_plane_instance_beats_or_ties_greedy() -> None:
    rng = np.random.default_rng(7)
    demand = rng.uniform(0, 4_000, (1_500, 2))
    cand = rng.uniform(0, 4_000, (150, 2))
    pairs = cKDTree(cand).sparse_distance_matrix(cKDTree(demand), 500.0, output_type="coo_matrix")
    problem = SitingProblem(sp.csr_matrix(pairs.astype(bool)), rng.lognormal(3, 1, 1_500))
    greedy = solve_mclp(problem, 8, solver="greedy")
    exact = solve_mclp(problem, 8, solver="exact", time_limit_s=30)
    assert exact.optimal
    assert greedy.objective <= exact.objective + 1e-6
    assert exact.objective <= greedy.upper_bound + 1e-6
    assert exact.upper_bound == pytest.approx(exact.objective, rel=1e-6)
    assert_consistent(problem, exact)


def _plane_problem(seed: int, with_rules: bool) -> SitingProblem:
    rng = np.random.default_rng(seed)
    demand = rng.uniform(0, 4_000, (1_500, 2))
    cand = rng.uniform(0, 4_000, (150, 2))
    pairs = cKDTree(cand).sparse_distance_matrix(cKDTree(demand), 600.0, output_type="coo_matrix")
    rules: dict[str, object] = {}
    if with_rules:
        cell = (cand[:, 0] // 1_000).astype(int) * 4 + (cand[:, 1] // 1_000).astype(int)
        rules = {
            "candidate_x_m": cand[:, 0],
            "candidate_y_m": cand[:, 1],
            "min_spacing_m": 400.0,
            "required_groups": [np.flatnonzero(cell == k) for k in (0, 5, 15)],
        }
    return SitingProblem(
        sp.csr_matrix(pairs.astype(bool)),
        rng.lognormal(3, 1, 1_500),
        **rules,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("seed", "with_rules"), [(0, False), (3, True)])
def test_lp_fixing_keeps_the_optimum(seed: int, with_rules: bool) -> None:
    """LP-bound fixing removes candidates yet finds the plain compact MILP's optimum."""
    problem = _plane_problem(seed, with_rules)
    result = solve_mclp(problem, 6, solver="exact", time_limit_s=60)
    plain, _ = _solve_compact_mclp(
        problem, 6, time_limit_s=60, mip_rel_gap=0.0, warm=None, what="plain"
    )
    assert plain.optimal and result.optimal
    assert result.objective == pytest.approx(problem.objective_of(plain.chosen), rel=1e-12)
    assert result.model_stats["fixed_out"] > 50  # most of the 150 candidates
    assert result.model_stats["final_candidates"] < 100
    assert set(result.timings_s) >= {"build", "lp", "restricted", "final"}
    assert_consistent(problem, result)


def test_time_limited_exact_returns_a_feasible_answer_and_its_gap() -> None:
    problem = _plane_problem(3, with_rules=True)
    greedy = solve_mclp(problem, 10)
    result = solve_mclp(problem, 10, solver="exact", time_limit_s=0.05)
    # Whatever the machine manages in the limit, the answer is feasible, never worse
    # than the greedy start, and honest about its gap.
    assert_consistent(problem, result)
    assert result.objective >= greedy.objective - 1e-9
    if result.optimal:
        assert result.upper_bound == pytest.approx(result.objective, rel=1e-6)
    else:
        assert result.mip_gap is not None and result.mip_gap >= 0
        assert result.upper_bound >= result.objective
        assert any("gap" in n for n in result.notes)


def test_swap_local_search() -> None:
    problem = hand_problem()
    # {C0, C3} is a 1-swap local optimum (9): no single exchange reaches {C1, C2} (10).
    assert sorted(swap_improve(problem, [0, 3]).tolist()) == [0, 3]
    better = swap_improve(problem, [0, 5])  # 8 → 9
    assert problem.objective_of(better) == 9.0 and better.size == 2
    # Swaps keep the requirements: with C5 required it stays.
    ruled = hand_problem(required_groups=[np.array([5])])
    assert 5 in swap_improve(ruled, [1, 5]).tolist()
    r = solve_mclp(_plane_problem(0, False), 6, local_search=True)
    g = solve_mclp(_plane_problem(0, False), 6)
    assert r.objective >= g.objective and "swap" in r.status


def test_exact_accepts_indices_as_warm_start() -> None:
    from tuoyu.siting.milp import exact_mclp

    r = exact_mclp(hand_problem(), 2, warm_start=[0, 3])
    assert r.objective == 10.0 and r.model_stats["warm_start"] == 1
    r = exact_mclp(hand_problem(), 2, warm_start=[0, 1, 2])  # too many sites: ignored
    assert r.objective == 10.0 and r.model_stats["warm_start"] == 0


# ------------------------------------------------------------------------- real data
def _dongcheng_points(settings: Settings) -> dict[str, object]:
    """Population grid (672 points in Dongcheng) and kindergartens, in UTM 50N metres."""
    grid = gpd.read_file(resolve_data_file("beijing-dongcheng/population_grid.geojson", settings))
    jiedao = gpd.read_file(resolve_data_file("beijing-dongcheng/jiedao.geojson", settings))
    kg = gpd.read_file(resolve_data_file("beijing-dongcheng/kindergartens.geojson", settings))
    # All three layers are GCJ-02: compare them in that system, then convert the points.
    inside = gpd.sjoin(grid, jiedao[["name", "geometry"]], predicate="within", how="inner")
    crs = utm_crs_for(116.41, 39.91)

    def to_metric(gdf: gpd.GeoDataFrame) -> np.ndarray:
        lon, lat = convert(gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy(), "gcj02")
        pts = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs="EPSG:4326").to_crs(crs)
        return np.column_stack([pts.x.to_numpy(), pts.y.to_numpy()])

    return {
        "demand_xy": to_metric(inside),
        "weight": inside["weight"].to_numpy(dtype=np.float64),
        "demand_jiedao": inside["name"].to_numpy(),
        "kg_xy": to_metric(kg),
        "jiedao_names": jiedao["name"].tolist(),
    }


def test_dongcheng_grid_siting_on_real_data(settings: Settings) -> None:
    """Straight-line 1,000 m stand-in (Dongcheng has no road network in the shared data)."""
    pts = _dongcheng_points(settings)
    demand_xy, weight = pts["demand_xy"], pts["weight"]
    assert isinstance(demand_xy, np.ndarray) and isinstance(weight, np.ndarray)
    assert demand_xy.shape[0] == 672 and weight.sum() == pytest.approx(316_532)
    kg_xy = pts["kg_xy"]
    assert isinstance(kg_xy, np.ndarray)
    demand_tree = cKDTree(demand_xy)
    # Existing kindergartens cover what lies within 1,000 m; candidates are grid points.
    existing = cKDTree(kg_xy).sparse_distance_matrix(demand_tree, 1_000.0, output_type="coo_matrix")
    covered = np.zeros(672, dtype=bool)
    covered[existing.col] = True
    cover = demand_tree.sparse_distance_matrix(demand_tree, 1_000.0, output_type="coo_matrix")
    # sparse_distance_matrix leaves out pairs at distance 0: a site covers its own point.
    cover = cover.tocsr() + sp.identity(672, format="csr")
    groups, names = required_groups_from_labels(
        pts["demand_jiedao"],
        sorted(set(pts["demand_jiedao"])),  # type: ignore[call-overload]
    )
    base = dict(
        coverage=sp.csr_matrix(cover.astype(bool)),
        weights=weight,
        candidate_x_m=demand_xy[:, 0],
        candidate_y_m=demand_xy[:, 1],
    )
    plain = SitingProblem(**base)  # type: ignore[arg-type]
    for p in (5, 10):
        greedy = solve_mclp(plain, p, solver="greedy")
        exact = solve_mclp(plain, p, solver="exact", time_limit_s=30)
        assert exact.optimal
        assert greedy.objective <= exact.objective + 1e-6 <= greedy.upper_bound + 1e-5
        assert greedy.objective >= 0.95 * exact.objective
    # Identical coverage columns are merged (672 points, far fewer rows).
    assert exact.model_stats["demand_rows"] <= exact.model_stats["demand_in_model"]

    # Every 街道 gets a site, at least 800 m apart, existing kindergartens kept.
    rules = SitingProblem(
        **base,  # type: ignore[arg-type]
        already_covered=covered,
        required_groups=groups,
        required_group_names=names,
        min_spacing_m=800.0,
    )
    assert len(groups) == 17
    r = solve_mclp(rules, 20, solver="exact", time_limit_s=30)
    assert_consistent(rules, r)
    label = np.asarray(pts["demand_jiedao"])
    assert set(label[r.chosen].tolist()) == set(names)
    g = solve_mclp(rules, 20, solver="greedy")
    assert_consistent(rules, g)
    assert g.objective <= r.upper_bound + 1e-6


# ----------------------------------------------------------------------------- candidates
def _line_network(length_m: float) -> WalkNetwork:
    from pyproj import CRS

    return WalkNetwork(
        node_id=np.array([0, 1], dtype=np.int64),
        node_x_m=np.array([0.0, length_m]),
        node_y_m=np.array([0.0, 0.0]),
        edge_u=np.array([0], dtype=np.int64),
        edge_v=np.array([1], dtype=np.int64),
        edge_length_m=np.array([length_m]),
        edge_way_id=np.array([-1], dtype=np.int64),
        crs=CRS.from_epsg(32648),
    )


def test_sample_on_a_straight_street() -> None:
    # 1,000 m street, spacing 100 m: dense samples at 25, 75, …, 975; thinning keeps
    # 25, 125, …, 925 (each exactly 100 m from the last kept, which is allowed).
    cands = sample_on_network(_line_network(1_000.0), 100.0)
    assert list(cands.columns) == CANDIDATE_COLUMNS
    assert cands["x_m"].tolist() == pytest.approx([25.0 + 100.0 * k for k in range(10)])
    assert cands["fraction"].tolist() == pytest.approx([0.025 + 0.1 * k for k in range(10)])
    assert (cands["edge"] == 0).all()
    snapped = to_snapped_points(cands, max_snap_m=50.0)
    assert len(snapped) == 10 and not snapped.off_network.any()
    assert snapped.access_m.sum() == 0.0


def test_sample_on_synthetic_city_respects_spacing() -> None:
    net = synthetic_city(2_000, seed=3)
    cands = sample_on_network(net, 200.0)
    xy = cands[["x_m", "y_m"]].to_numpy()
    d, _ = cKDTree(xy).query(xy, k=2)
    assert d[:, 1].min() >= 200.0 - 1e-9
    # Every node lies within 1.25 × spacing of a candidate.
    dn, _ = cKDTree(xy).query(net.node_xy())
    assert dn.max() <= 250.0
    # Candidates lie on their edge.
    seg = net.edge_segments()[cands["edge"].to_numpy()]
    t = cands["fraction"].to_numpy()[:, None]
    on_edge = seg[:, 0] + t * (seg[:, 1] - seg[:, 0])
    assert np.allclose(on_edge, xy)
    assert math.isclose(len(cands), len(cands.drop_duplicates()))


def test_sample_on_empty_network_and_bad_spacing() -> None:
    from pyproj import CRS

    e_i = np.empty(0, dtype=np.int64)
    e_f = np.empty(0, dtype=np.float64)
    empty = WalkNetwork(e_i, e_f, e_f, e_i, e_i, e_f, e_i, CRS.from_epsg(32648))
    out = sample_on_network(empty, 100.0)
    assert out.empty and list(out.columns) == CANDIDATE_COLUMNS
    with pytest.raises(InputValidationError, match="spacing_m"):
        sample_on_network(_line_network(100.0), 0.0)


def test_min_spacing_filter_with_priority_and_dedupe() -> None:
    x = [0.0, 60.0, 120.0, 500.0]
    y = [0.0, 0.0, 0.0, 0.0]
    assert min_spacing_filter(x, y, 100.0).tolist() == [0, 2, 3]
    # The middle point has the highest priority: it knocks out both neighbours.
    assert min_spacing_filter(x, y, 100.0, priority=[1, 5, 1, 1]).tolist() == [1, 3]
    assert min_spacing_filter(x, y, 0.0).tolist() == [0, 1, 2, 3]
    assert min_spacing_filter([], [], 100.0).tolist() == []
    kept, rep = dedupe([0.0, 0.0, 0.4, 3.0, 3.5], [0.0, 0.0, 0.0, 0.0, 0.0], tol_m=1.0)
    assert kept.tolist() == [0, 3] and rep.tolist() == [0, 0, 0, 3, 3]
    kept, rep = dedupe([0.0, 0.0, 0.4], [0.0, 0.0, 0.0], tol_m=0.0)
    assert kept.tolist() == [0, 2] and rep.tolist() == [0, 0, 2]
    with pytest.raises(InputValidationError):
        min_spacing_filter([0.0, np.nan], [0.0, 0.0], 10.0)


def test_result_table_has_bilingual_labels() -> None:
    from tuoyu.siting import RESULT_LABELS

    r = solve_mclp(hand_problem(candidate_slots=uniform_slots(6, 20)), 2)
    frame = r.to_frame(slots=uniform_slots(6, 20))
    assert frame["rank"].tolist() == [1, 2]
    assert frame["slots"].tolist() == [20.0, 20.0]
    assert set(frame.columns) <= set(RESULT_LABELS)
    assert "托位" in RESULT_LABELS["slots"]
    assert r.total_slots == 40.0
