"""Capacitated maximal covering: hand instances, brute force, max-flow evaluator, Dongcheng.

Every served total is checked against a *separate* computation: a transport LP solved
with ``scipy.optimize.linprog`` (no code shared with the model under test).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import load_area
from tuoyu.errors import InputValidationError
from tuoyu.siting import SitingProblem, solve_mclp
from tuoyu.siting.capacitated import (
    CapacitatedProblem,
    CapacitatedResult,
    evaluate_sites,
    solve_capacitated_exact,
    solve_capacitated_greedy,
)


def transport_lp(cover: sp.spmatrix, caps: np.ndarray, weights: np.ndarray) -> float:
    """Most demand served by sites with capacities ``caps`` (rows of ``cover``), by linprog."""
    a = sp.coo_matrix(cover)
    keep = a.data != 0
    site, point = a.row[keep], a.col[keep]
    n_var = site.size
    if n_var == 0:
        return 0.0
    var = np.arange(n_var)
    a_ub = sp.vstack(
        [
            sp.coo_matrix((np.ones(n_var), (point, var)), shape=(weights.size, n_var)),
            sp.coo_matrix((np.ones(n_var), (site, var)), shape=(caps.size, n_var)),
        ]
    ).tocsr()
    res = linprog(
        -np.ones(n_var), A_ub=a_ub, b_ub=np.r_[weights, caps], bounds=(0, None), method="highs"
    )
    assert res.status == 0
    return float(-res.fun)


def lp_value(problem: CapacitatedProblem, chosen: np.ndarray, sizes: np.ndarray) -> float:
    """Served total of a chosen set with existing facilities, by the separate transport LP."""
    cover = sp.vstack([problem.coverage[np.asarray(chosen, dtype=int)], problem.existing_matrix()])
    caps = np.r_[np.asarray(sizes, dtype=float), problem.existing_slots()]
    return transport_lp(cover, caps, problem.weights)


def assert_feasible(problem: CapacitatedProblem, r: CapacitatedResult) -> None:
    """The assignment respects coverage, every capacity and every demand weight."""
    cov = problem.coverage.toarray() > 0
    x = r.assignment.toarray()
    assert np.all(x >= -1e-9)
    assert np.all(x[~cov] <= 1e-9), "assignment outside coverage"
    caps = np.zeros(problem.n_candidates)
    caps[r.chosen] = r.chosen_slots
    assert np.all(x.sum(axis=1) <= caps + 1e-6), "a new site over capacity"
    e = r.existing_assignment.toarray()
    if problem.n_existing:
        assert np.all(e[~(problem.existing_matrix().toarray() > 0)] <= 1e-9)
        assert np.all(e.sum(axis=1) <= problem.existing_slots() + 1e-6)
    assert np.all(x.sum(axis=0) + e.sum(axis=0) <= problem.weights + 1e-6), "served twice"
    assert x.sum() + e.sum() == pytest.approx(r.served_total, abs=1e-4)
    assert r.served_by_site.sum() == pytest.approx(x.sum(), abs=1e-4)
    assert r.added_by_site.sum() == pytest.approx(r.served_total - r.baseline_served, abs=1e-3)
    if problem.p is not None:
        assert r.chosen.size <= problem.p
    if problem.max_total_slots is not None:
        assert r.total_slots <= problem.max_total_slots + 1e-9


# ------------------------------------------------------------------------ hand instances
def hand_problem() -> CapacitatedProblem:
    """5 demand points, 3 candidates, p = 2.

    ::

        d0 d1 d2 d3 d4   weights 10 10 10 6 6
        C0  x  x  x          capacity 10   (reaches 30 children)
        C1  x  x             capacity 20   (reaches 20)
        C2           x  x    capacity 20   (reaches 12)

    Uncapacitated (everyone within reach counts): {C0, C2} reaches 30 + 12 = 42, better
    than {C0, C1} = 30 and {C1, C2} = 32. With capacities: {C0, C2} serves
    min(10, 30) + min(20, 12) = 22; {C0, C1} serves 20 (C1 on d0, d1) + 10 (C0 on d2)
    = 30; {C1, C2} serves 20 + 12 = 32, the unique capacitated optimum.
    """
    a = sp.csr_matrix(np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 1, 1]], dtype=bool))
    w = np.array([10.0, 10.0, 10.0, 6.0, 6.0])
    return CapacitatedProblem(a, w, p=2, capacity=np.array([10.0, 20.0, 20.0]))


@pytest.mark.parametrize("warm_start", [True, False])
def test_exact_finds_the_hand_optimum_that_differs_from_uncapacitated(warm_start: bool) -> None:
    problem = hand_problem()
    r = solve_capacitated_exact(problem, warm_start=warm_start)
    assert sorted(r.chosen.tolist()) == [1, 2]
    assert r.served_total == pytest.approx(32.0)
    assert r.optimal and r.upper_bound == pytest.approx(32.0, abs=1e-6)
    assert r.added_by_site.tolist() == pytest.approx([20.0, 12.0])  # C1 first, then C2
    assert r.chosen.tolist() == [1, 2] and r.chosen_slots.tolist() == [20.0, 20.0]
    assert_feasible(problem, r)
    # The uncapacitated model on the same coverage picks {C0, C2} (42 reached).
    plain = solve_mclp(SitingProblem(problem.coverage, problem.weights), 2, solver="exact")
    assert sorted(plain.chosen.tolist()) == [0, 2] and plain.objective == 42.0
    assert evaluate_sites(problem, [0, 2], [10.0, 20.0]).served_total == pytest.approx(22.0)


def test_greedy_on_the_hand_instance() -> None:
    problem = hand_problem()
    g = solve_capacitated_greedy(problem)
    assert sorted(g.chosen.tolist()) == [1, 2] and g.served_total == pytest.approx(32.0)
    assert g.optimal  # the capacity bound 20 + 12 is met
    assert_feasible(problem, g)


def menu_problem(p: int | None) -> CapacitatedProblem:
    """Three separate neighbourhoods (50, 40, 25 children), menu 30/60 托位, budget 90.

    Budget only: three sites of 30 serve 30 + 30 + 25 = 85, better than 60 + 30 at the
    two largest (50 + 30 = 80) or 30 + 60 (30 + 40 = 70). With p = 2 as well: 80
    (C0 at 60, C1 at 30).
    """
    return CapacitatedProblem(
        sp.identity(3, format="csr", dtype=bool),
        np.array([50.0, 40.0, 25.0]),
        p=p,
        size_menu=(30.0, 60.0),
        max_total_slots=90.0,
    )


@pytest.mark.parametrize("solve", [solve_capacitated_exact, solve_capacitated_greedy])
def test_menu_sizing_with_a_slot_budget(solve: object) -> None:
    assert callable(solve)
    r = solve(menu_problem(None))
    assert r.served_total == pytest.approx(85.0)
    assert sorted(zip(r.chosen.tolist(), r.chosen_slots.tolist(), strict=True)) == [
        (0, 30.0),
        (1, 30.0),
        (2, 30.0),
    ]
    assert r.total_slots == 90.0
    assert_feasible(menu_problem(None), r)
    r2 = solve(menu_problem(2))
    assert r2.served_total == pytest.approx(80.0)
    assert dict(zip(r2.chosen.tolist(), r2.chosen_slots.tolist(), strict=True)) == {
        0: 60.0,
        1: 30.0,
    }


@pytest.mark.parametrize("solve", [solve_capacitated_exact, solve_capacitated_greedy])
def test_sites_open_at_the_smallest_size_that_serves_as_many(solve: object) -> None:
    # 40 children, one site, p = 1: 60 托位 serve them all; 90 or 120 would add nothing.
    problem = CapacitatedProblem(
        sp.csr_matrix(np.ones((1, 2), dtype=bool)),
        np.array([25.0, 15.0]),
        p=1,
        size_menu=(30, 60, 90, 120),
    )
    assert callable(solve)
    r = solve(problem)
    assert r.chosen_slots.tolist() == [60.0] and r.served_total == pytest.approx(40.0)
    assert_feasible(problem, r)


def test_existing_capacity_is_used_first_and_counts() -> None:
    # An existing facility (capacity 15) already serves d0/d1; the new site should go
    # where nobody is served: C1 on d2 (8 children) rather than C0 on d0/d1 (5 left).
    problem = CapacitatedProblem(
        sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]], dtype=bool)),
        np.array([10.0, 10.0, 8.0]),
        p=1,
        capacity=np.array([30.0, 30.0]),
        existing_coverage=sp.csr_matrix(np.array([[1, 1, 0]], dtype=bool)),
        existing_capacity=np.array([15.0]),
    )
    for solve in (solve_capacitated_exact, solve_capacitated_greedy):
        r = solve(problem)
        assert r.chosen.tolist() == [1]
        assert r.baseline_served == pytest.approx(15.0)
        assert r.served_total == pytest.approx(23.0)
        assert r.served_by_existing.tolist() == pytest.approx([15.0])
        assert_feasible(problem, r)


# ------------------------------------------------------------------- random vs brute force
def random_problem(seed: int) -> CapacitatedProblem:
    rng = np.random.default_rng(seed)
    n_dem, n_cand, n_ex = 7, 4, int(rng.integers(0, 3))
    cover = sp.csr_matrix(rng.random((n_cand, n_dem)) < 0.45)
    weights = rng.integers(0, 12, n_dem).astype(float) + rng.random(n_dem).round(2)
    kwargs: dict[str, object] = {}
    if seed % 2:
        kwargs["capacity"] = rng.integers(3, 25, n_cand).astype(float)
    else:
        kwargs["size_menu"] = (5.0, 10.0, 20.0)
    if seed % 3 == 0:
        kwargs["max_total_slots"] = 25.0
    return CapacitatedProblem(
        cover,
        weights,
        p=int(rng.integers(1, 3)) if seed % 3 != 2 or "max_total_slots" not in kwargs else None,
        existing_coverage=sp.csr_matrix(rng.random((n_ex, n_dem)) < 0.4),
        existing_capacity=rng.integers(2, 15, n_ex).astype(float),
        **kwargs,  # type: ignore[arg-type]
    )


def brute_force(problem: CapacitatedProblem) -> float:
    """Best served total over every choice of sizes (0 = closed), each by linprog."""
    choices = [np.r_[0.0, problem.sizes_of(j)] for j in range(problem.n_candidates)]
    best = 0.0
    for combo in itertools.product(*choices):
        sizes = np.asarray(combo)
        opened = np.flatnonzero(sizes > 0)
        if problem.p is not None and opened.size > problem.p:
            continue
        if problem.max_total_slots is not None and sizes.sum() > problem.max_total_slots:
            continue
        best = max(best, lp_value(problem, opened, sizes[opened]))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_random_instances_against_brute_force(seed: int) -> None:
    problem = random_problem(seed)
    best = brute_force(problem)
    exact = solve_capacitated_exact(problem)
    assert exact.optimal
    assert exact.served_total == pytest.approx(best, abs=1e-6)
    assert_feasible(problem, exact)
    greedy = solve_capacitated_greedy(problem)
    assert_feasible(problem, greedy)
    assert greedy.served_total <= best + 1e-6
    assert greedy.upper_bound >= best - 1e-6
    # The heuristic's objective is the max-flow value of its own set ...
    ev = evaluate_sites(problem, greedy.chosen, greedy.chosen_slots)
    assert greedy.served_total == ev.served_total
    # ... which the separate transport LP confirms (up to the flow's resolution).
    assert ev.served_total == pytest.approx(
        lp_value(problem, greedy.chosen, greedy.chosen_slots), abs=1e-4
    )


def test_flow_evaluation_of_totals_beyond_32_bits() -> None:
    """Regression: scipy's maximum_flow silently returns 0 for int64 capacities beyond
    2**31; the evaluator must scale down instead (here 3 billion residents)."""
    a = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=bool))
    w = np.array([1.5e9, 1.0e9, 0.7e9])
    problem = CapacitatedProblem(a, w, p=2, capacity=np.array([2.0e9, 2.0e9]))
    ev = evaluate_sites(problem, [0, 1], [2.0e9, 2.0e9])
    assert ev.served_total == pytest.approx(3.2e9, rel=1e-6)
    assert ev.served_total == pytest.approx(transport_lp(a, np.array([2e9, 2e9]), w), rel=1e-6)
    assert solve_capacitated_greedy(problem).served_total == pytest.approx(3.2e9, rel=1e-6)


def test_bad_inputs_name_the_field() -> None:
    a = sp.csr_matrix(np.ones((2, 2), dtype=bool))
    w = np.array([1.0, 2.0])
    with pytest.raises(InputValidationError, match="capacity"):
        CapacitatedProblem(a, w, p=1)
    with pytest.raises(InputValidationError, match="capacity"):
        CapacitatedProblem(a, w, p=1, capacity=np.ones(2), size_menu=(30,))
    with pytest.raises(InputValidationError, match="max_total_slots"):
        CapacitatedProblem(a, w, capacity=np.ones(2))
    with pytest.raises(InputValidationError, match=r"existing_capacity\[1\]"):
        CapacitatedProblem(
            a,
            w,
            p=1,
            capacity=np.ones(2),
            existing_coverage=a,
            existing_capacity=np.array([3.0, np.nan]),
        )
    with pytest.raises(InputValidationError, match="weights"):
        CapacitatedProblem(a, np.array([1.0, -1.0]), p=1, capacity=np.ones(2))
    with pytest.raises(InputValidationError, match="p must"):
        CapacitatedProblem(a, w, p=-1, capacity=np.ones(2))
    problem = CapacitatedProblem(a, w, p=1, capacity=np.ones(2))
    with pytest.raises(InputValidationError, match="twice"):
        evaluate_sites(problem, [0, 0], [1.0, 1.0])
    with pytest.raises(InputValidationError, match="time_limit_s"):
        solve_capacitated_exact(problem, time_limit_s=0)


def test_nothing_to_serve() -> None:
    problem = CapacitatedProblem(
        sp.csr_matrix((2, 3), dtype=bool), np.ones(3), p=2, size_menu=(30,)
    )
    for solve in (solve_capacitated_exact, solve_capacitated_greedy):
        r = solve(problem)
        assert r.chosen.size == 0 and r.served_total == 0.0 and r.optimal


# ----------------------------------------------------------------------------- Dongcheng
def test_dongcheng_five_sites_from_the_menu(settings: Settings) -> None:
    """Real Dongcheng: road network, land-use population, 64 kindergartens.

    The kindergartens carry no 托位 in the shared data: this test states 60 each.
    """
    from tuoyu.siting.capacitated_area import (
        CAPACITATED_SITE_COLUMNS,
        TARGET_COLUMNS,
        plan_capacitated_sites,
    )
    from tuoyu.workflow.core import AreaModel

    model = AreaModel.build(load_area("beijing-dongcheng"), settings)
    plan = plan_capacitated_sites(model, p=5, unknown_slots=60.0, solver="exact", time_limit_s=120)
    r = plan.result
    problem = plan.problem
    assert list(plan.sites.columns[:-1]) == list(CAPACITATED_SITE_COLUMNS)
    assert 1 <= len(plan.sites) <= 5
    assert set(plan.sites["slots"]) <= {30.0, 60.0, 90.0, 120.0}
    assert problem.n_existing == 64 and np.all(problem.existing_slots() == 60.0)
    assert any("assumed 60 托位" in n for n in plan.notes)
    # Separate check: the transport LP on the chosen sites plus the kindergartens.
    lp = lp_value(problem, r.chosen, r.chosen_slots)
    assert r.served_total == pytest.approx(lp, abs=1e-3)
    baseline = lp_value(problem, np.empty(0, dtype=int), np.empty(0))
    assert r.baseline_served == pytest.approx(baseline, abs=1e-3)
    # Nobody beyond the kindergartens' 64 × 60 托位 plus the new 托位.
    assert r.served_total <= 64 * 60 + r.total_slots + 1e-6
    assert r.served_total > r.baseline_served
    assert r.served_total <= r.upper_bound + 1e-6
    assert_feasible(problem, r)
    # Children each site adds sum to the gain; the table per 街道 adds their 托位.
    assert plan.sites["added_children"].sum() == pytest.approx(r.added_total, abs=0.05)
    t = plan.targets
    assert list(t.columns) == list(TARGET_COLUMNS) and len(t) == 17
    added = (t["slots_after"].astype(float) - t["slots_before"].astype(float)).sum()
    assert added == pytest.approx(r.total_slots)
    assert t["new_slots"].sum() == pytest.approx(r.total_slots)
    assert t["served_after"].sum() == pytest.approx(r.served_total, abs=0.1)
    assert t["served_before"].sum() == pytest.approx(r.baseline_served, abs=0.1)
    rate = t["slots_after"].astype(float) / t["population"] * 1000
    assert np.allclose(rate, t["slots_per_1000_after"].astype(float))
