"""Exact maximal covering (and fewest sites for a goal) as a MILP solved by HiGHS.

The model is built from sparse arrays and passed to ``highspy`` in one row-wise
``passModel`` call (no dense matrix, no modelling layer):

- ``x_j ∈ {0, 1}``: open candidate ``j``; ``y_g ∈ [0, 1]``: demand class ``g`` covered.
  ``y`` may stay continuous: when maximising, ``y_g`` rises to ``min(1, Σ x)`` on its own.
- coverage rows ``y_g − Σ_{j covers g} x_j ≤ 0``;
- ``Σ x_j ≤ p`` (MCLP) or ``Σ_g W_g y_g ≥ need`` (fewest sites, objective ``min Σ x_j``);
- one row ``Σ_{j∈G} x_j ≥ 1`` per required group, ``x_a + x_b ≤ 1`` per pair of
  candidates closer than the minimum spacing (KD-tree ``query_pairs``), and one slot row
  ``min_total ≤ Σ s_j x_j ≤ max_total``.

Model reduction (a large speed-up on real instances): only demand that is not already
covered, has a positive weight and is reached by some candidate enters the model, and
demand points with the *same set of covering candidates* are merged into one row whose
weight is their sum ``W_g``. In a dense city most homes of a block see the same candidate
sites, so thousands of points collapse into a few hundred rows; the optimum is unchanged
because such points are always covered together.

Solving the MCLP (:func:`exact_mclp`) goes through the LP first. These LPs are very
degenerate: on a 10,000 × 1,000 instance (p = 20) HiGHS's MIP spent its whole first
minutes in presolve and the dual simplex of the root LP, while the interior-point method
solves the same LP in a few seconds and its bound is usually within 1–2 % of the optimum.
So the LP's duals give a bound and reduced costs; a small MILP on the LP's support plus
1-swap local search give a near-optimal incumbent; reduced-cost fixing removes every
candidate that provably cannot be in a better answer (typically 60–90 %); HiGHS then
solves the remaining MILP, warm-started (``setSolution``). Measured on this 2-core
machine under load: 5–35 s for instances that the plain model did not solve in 10 min.
The fewest-sites question (:func:`exact_min_sites`) uses the plain model, then this
MCLP for the best set of that size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from tuoyu.errors import InputValidationError
from tuoyu.siting.greedy import swap_improve
from tuoyu.siting.model import (
    FloatArray,
    InfeasibleSitingError,
    IntArray,
    SitingError,
    SitingProblem,
    SitingResult,
    build_result,
    empty_result,
    goal_weight_needed,
    marginal_order,
)

_FEASIBLE = 2  # HiGHS kSolutionStatusFeasible: a primal solution is available.


@dataclass(frozen=True)
class DemandClasses:
    """Open demand merged by identical covering-candidate sets.

    Attributes
    ----------
    coverage
        CSC matrix, candidates × classes, the covering set of each class.
    weight
        Summed open weight of each class.
    class_of
        For every demand point, its class, or -1 when it is not in the model (already
        covered, zero weight or reached by no candidate).
    """

    coverage: sp.csc_matrix
    weight: FloatArray
    class_of: IntArray

    @property
    def n_classes(self) -> int:
        """Number of merged demand rows."""
        return int(self.weight.shape[0])


def demand_classes(problem: SitingProblem) -> DemandClasses:
    """Merge open, reachable demand points with identical covering sets.

    Columns are grouped by a pair of random 64-bit set hashes plus their length and the
    grouping is then verified exactly (vectorised); on the (astronomically unlikely) hash
    collision the grouping falls back to comparing the index bytes in a plain loop.

    Parameters
    ----------
    problem
        The siting problem.

    Returns
    -------
    DemandClasses
        The merged classes, ordered by first occurrence.
    """
    csc = problem.coverage_csc()
    open_w = problem.open_weights()
    nnz_col = np.diff(csc.indptr)
    keep = np.flatnonzero((open_w > 0) & (nnz_col > 0))
    class_of = np.full(problem.n_demand, -1, dtype=np.int64)
    n_cand = problem.n_candidates
    if keep.size == 0:
        empty = sp.csc_matrix((n_cand, 0), dtype=np.int8)
        return DemandClasses(empty, np.empty(0, dtype=np.float64), class_of)
    sub = csc[:, keep]
    sub.sort_indices()
    lengths = np.diff(sub.indptr)
    rng = np.random.default_rng(20240607)
    keys = []
    for _ in range(2):
        r = rng.integers(0, np.iinfo(np.uint64).max, size=n_cand, dtype=np.uint64)
        # uint64 sums wrap modulo 2**64: a set hash independent of order.
        keys.append(np.add.reduceat(r[sub.indices], sub.indptr[:-1]))
    table = np.column_stack([keys[0], keys[1], lengths.astype(np.uint64)])
    _, first, inverse = np.unique(table, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    # Renumber classes by first occurrence so the model is stable across numpy versions.
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    cls = rank[inverse]
    rep = np.sort(first)  # representative column of each class, in class order
    if not _same_sets(sub, rep[cls]):
        cls, rep = _classes_by_bytes(sub)
    class_of[keep] = cls
    weight = np.bincount(cls, weights=open_w[keep], minlength=rep.size)
    cov = sub[:, rep]
    return DemandClasses(sp.csc_matrix(cov), weight.astype(np.float64), class_of)


def _same_sets(sub: sp.csc_matrix, rep_of_col: IntArray) -> bool:
    """True when every column holds exactly the indices of its representative column."""
    lengths = np.diff(sub.indptr)
    if np.any(lengths != lengths[rep_of_col]):
        return False
    pos = np.arange(sub.indices.size) - np.repeat(sub.indptr[:-1], lengths)
    rep_idx = sub.indices[np.repeat(sub.indptr[rep_of_col], lengths) + pos]
    return bool(np.array_equal(rep_idx, sub.indices))


def _classes_by_bytes(sub: sp.csc_matrix) -> tuple[IntArray, IntArray]:
    # Fallback only: exact grouping by the bytes of each column's sorted index list.
    seen: dict[bytes, int] = {}
    cls = np.empty(sub.shape[1], dtype=np.int64)
    rep: list[int] = []
    for c in range(sub.shape[1]):
        key = sub.indices[sub.indptr[c] : sub.indptr[c + 1]].tobytes()
        if key not in seen:
            seen[key] = len(rep)
            rep.append(c)
        cls[c] = seen[key]
    return cls, np.asarray(rep, dtype=np.int64)


@dataclass
class _Model:
    """Row-wise model arrays ready for ``Highs.passModel`` (all columns in [0, 1])."""

    n_x: int
    n_y: int
    cost: FloatArray
    row_lower: list[FloatArray]
    row_upper: list[FloatArray]
    blocks: list[sp.csr_matrix]

    def add(self, block: sp.spmatrix, lower: npt.ArrayLike, upper: npt.ArrayLike) -> None:
        mat = sp.csr_matrix(block, dtype=np.float64)
        self.blocks.append(mat)
        self.row_lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), mat.shape[0]))
        self.row_upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), mat.shape[0]))

    def matrix(self) -> tuple[sp.csr_matrix, FloatArray, FloatArray]:
        """The constraint matrix (CSR) and its row bounds."""
        n_col = self.n_x + self.n_y
        if not self.blocks:
            empty = np.empty(0, dtype=np.float64)
            return sp.csr_matrix((0, n_col), dtype=np.float64), empty, empty
        a = sp.vstack(self.blocks, format="csr")
        a.sum_duplicates()
        a.sort_indices()
        return a, np.concatenate(self.row_lower), np.concatenate(self.row_upper)

    def to_highs(
        self,
        sense: highspy.ObjSense,
        time_limit_s: float,
        mip_rel_gap: float,
        *,
        relax: bool = False,
    ) -> highspy.Highs:
        """A HiGHS instance holding the model (``relax``: the LP relaxation, by IPM)."""
        n_col = self.n_x + self.n_y
        a, lower, upper = self.matrix()
        h = highspy.Highs()  # type: ignore[no-untyped-call]
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(max(time_limit_s, 0.01)))
        h.setOptionValue("random_seed", 0)
        if relax:
            # These LPs are highly degenerate: dual simplex from a slack basis needed
            # minutes where the interior-point solver (with crossover for a vertex and
            # clean duals) takes seconds on 10,000 × 1,000 instances.
            h.setOptionValue("solver", "ipm")
            h.setOptionValue("run_crossover", "on")
        else:
            h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
            # Same reason for the MIP's root LP; HiGHS's presolve spent most of the time
            # on these models and removed almost nothing.
            h.setOptionValue("mip_lp_solver", "ipm")
            h.setOptionValue("presolve", "off")
        integrality = np.zeros(n_col, dtype=np.int32)
        if not relax:
            integrality[: self.n_x] = int(highspy.HighsVarType.kInteger)
        status = h.passModel(
            n_col,
            int(a.shape[0]),
            int(a.nnz),
            int(highspy.MatrixFormat.kRowwise),
            int(sense),
            0.0,
            np.ascontiguousarray(self.cost, dtype=np.float64),
            np.zeros(n_col, dtype=np.float64),
            np.ones(n_col, dtype=np.float64),
            np.ascontiguousarray(lower),
            np.ascontiguousarray(upper),
            a.indptr[:-1].astype(np.int32),
            a.indices.astype(np.int32),
            a.data.astype(np.float64),
            integrality,
        )
        if status == highspy.HighsStatus.kError:
            raise SitingError("HiGHS refused the siting model (passModel failed)")
        return h


def _base_model(problem: SitingProblem, classes: DemandClasses, cost: FloatArray) -> _Model:
    """Variables, coverage rows and the requirement rows shared by both questions."""
    n_x, n_y = problem.n_candidates, classes.n_classes
    model = _Model(n_x, n_y, cost, [], [], [])
    if n_y:
        # y_g - sum_j A[j, g] x_j <= 0
        cover = sp.hstack([-classes.coverage.T.tocsr(), sp.identity(n_y, format="csr")])
        model.add(cover, -np.inf, 0.0)
    for g in problem.required_groups:
        row = sp.csr_matrix(
            (np.ones(g.size), (np.zeros(g.size, dtype=np.int64), g)), shape=(1, n_x + n_y)
        )
        model.add(row, 1.0, np.inf)
    a, b = problem.conflicts()
    if a.size:
        rows = np.repeat(np.arange(a.size), 2)
        cols = np.column_stack([a, b]).reshape(-1)
        model.add(
            sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(a.size, n_x + n_y)),
            -np.inf,
            1.0,
        )
    if problem.candidate_slots is not None and (
        problem.max_total_slots is not None or problem.min_total_slots is not None
    ):
        row = sp.csr_matrix(np.r_[problem.candidate_slots, np.zeros(n_y)].reshape(1, -1))
        lo = problem.min_total_slots if problem.min_total_slots is not None else -np.inf
        hi = problem.max_total_slots if problem.max_total_slots is not None else np.inf
        model.add(row, lo, hi)
    return model


def _mclp_model(problem: SitingProblem, classes: DemandClasses, p: int) -> _Model:
    """MCLP: maximise covered class weight with at most ``p`` sites."""
    n_x, n_y = problem.n_candidates, classes.n_classes
    model = _base_model(problem, classes, np.r_[np.zeros(n_x), classes.weight])
    model.add(sp.csr_matrix(np.r_[np.ones(n_x), np.zeros(n_y)]), -np.inf, p)
    return model


def _warm_start(h: highspy.Highs, chosen: IntArray, classes: DemandClasses, n_x: int) -> bool:
    """Give HiGHS a starting solution: x from ``chosen``, y = covered by it."""
    x = np.zeros(n_x, dtype=np.float64)
    x[chosen] = 1.0
    y = (classes.coverage.T @ x > 0).astype(np.float64) if classes.n_classes else np.empty(0)
    sol = highspy.HighsSolution()
    sol.col_value = np.r_[x, y].tolist()
    sol.value_valid = True
    return bool(h.setSolution(sol) != highspy.HighsStatus.kError)


@dataclass(frozen=True)
class _Solved:
    chosen: IntArray
    optimal: bool
    mip_gap: float
    dual_bound: float
    status: str
    notes: tuple[str, ...]
    solve_s: float


def _run(h: highspy.Highs, n_x: int, what: str, time_limit_s: float) -> _Solved:
    t0 = time.perf_counter()
    h.run()
    solve_s = time.perf_counter() - t0
    status = h.getModelStatus()
    text = h.modelStatusToString(status)
    info = h.getInfo()
    if status == highspy.HighsModelStatus.kInfeasible:
        raise InfeasibleSitingError(
            f"no choice of sites meets the requirements ({what}): HiGHS proved the model "
            "infeasible — relax the spacing, the slot limits, the required groups or the goal"
        )
    if status != highspy.HighsModelStatus.kOptimal and info.primal_solution_status != _FEASIBLE:
        raise SitingError(
            f"HiGHS found no feasible choice ({what}) and stopped with status '{text}' "
            f"after {solve_s:.1f} s (time limit {time_limit_s:g} s); raise the time limit "
            "or use the greedy solver"
        )
    values = np.asarray(h.getSolution().col_value[:n_x], dtype=np.float64)
    chosen = np.flatnonzero(values > 0.5).astype(np.int64)
    optimal = status == highspy.HighsModelStatus.kOptimal
    notes: tuple[str, ...] = ()
    if not optimal:
        notes = (
            f"HiGHS stopped with status '{text}' before proving optimality ({what}) / 未证明最优",
        )
    gap = float(info.mip_gap) if math.isfinite(info.mip_gap) else float("inf")
    return _Solved(chosen, optimal, gap, float(info.mip_dual_bound), text, notes, solve_s)


def _solve_compact_mclp(
    problem: SitingProblem,
    p: int,
    *,
    time_limit_s: float,
    mip_rel_gap: float,
    warm: IntArray | None,
    what: str,
) -> tuple[_Solved, dict[str, int]]:
    """The compact MILP on ``problem`` (classes merged), optionally warm-started."""
    classes = demand_classes(problem)
    h = _mclp_model(problem, classes, p).to_highs(
        highspy.ObjSense.kMaximize, time_limit_s, mip_rel_gap
    )
    used_warm = False
    if warm is not None and warm.size <= p and not problem.check_chosen(warm):
        used_warm = _warm_start(h, warm, classes, problem.n_candidates)
    solved = _run(h, problem.n_candidates, what, time_limit_s)
    return solved, _stats(problem, classes, h, used_warm)


@dataclass(frozen=True)
class _LpBound:
    """LP relaxation of the MCLP with a dual bound valid for the integer problem."""

    x: FloatArray
    bound: float
    reduced_x: FloatArray
    build_s: float
    solve_s: float


def _lp_bound(
    problem: SitingProblem, classes: DemandClasses, p: int, time_limit_s: float
) -> _LpBound | None:
    """Solve the LP relaxation (IPM) and turn its duals into a bound and reduced costs.

    For any row multipliers ``pi`` the Lagrangian ``sum_r (pi_r * hi_r if pi_r > 0 else
    pi_r * lo_r) + sum_c max(0, d_c)``, with ``d = cost - A^T pi`` and every column in
    [0, 1], bounds the integer optimum from above; with ``x_j`` forced to 1 (0) the bound
    drops by ``max(0, -d_j)`` (``max(0, d_j)``). It is computed here in numpy from the
    duals HiGHS returns, so its validity does not rest on the LP solve's tolerances
    (both sign conventions are tried, the smaller bound is kept: both are valid).

    Returns ``None`` when the LP is not solved within the time limit.
    """
    t0 = time.perf_counter()
    model = _mclp_model(problem, classes, p)
    h = model.to_highs(highspy.ObjSense.kMaximize, time_limit_s, 0.0, relax=True)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    h.run()
    solve_s = time.perf_counter() - t0
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        raise InfeasibleSitingError(
            "no choice of sites meets the requirements: even the LP relaxation is "
            "infeasible — relax the spacing, the slot limits or the required groups"
        )
    if status != highspy.HighsModelStatus.kOptimal:
        return None
    sol = h.getSolution()
    a, lower, upper = model.matrix()
    duals = np.asarray(sol.row_dual, dtype=np.float64)
    best: tuple[float, FloatArray] | None = None
    for sign in (1.0, -1.0):
        pi = sign * duals
        pi = np.where((pi > 0) & ~np.isfinite(upper), 0.0, pi)
        pi = np.where((pi < 0) & ~np.isfinite(lower), 0.0, pi)
        d = model.cost - a.T @ pi
        rhs = np.where(pi > 0, pi * np.nan_to_num(upper, posinf=0.0), 0.0)
        rhs += np.where(pi < 0, pi * np.nan_to_num(lower, neginf=0.0), 0.0)
        value = float(rhs.sum() + np.maximum(d, 0.0).sum())
        if best is None or value < best[0]:
            best = (value, d)
    assert best is not None  # the loop runs twice
    x = np.asarray(sol.col_value[: problem.n_candidates], dtype=np.float64)
    return _LpBound(x, best[0], best[1][: problem.n_candidates], build_s, solve_s)


def _drop_idle_sites(problem: SitingProblem, order: IntArray, gains: FloatArray) -> IntArray:
    """Remove trailing sites that add nothing and that no requirement needs."""
    keep = order.copy()
    tol = 1e-12 * max(problem.total_weight, 1.0)
    for k in range(order.size - 1, -1, -1):
        if gains[k] > tol:
            break
        trial = np.delete(keep, np.flatnonzero(keep == order[k]))
        if not problem.check_chosen(trial):
            keep = trial
    return keep


def _check_args(time_limit_s: float, mip_rel_gap: float) -> None:
    if not (time_limit_s > 0):
        raise InputValidationError("time_limit_s must be > 0", field="time_limit_s")
    if not (0.0 <= mip_rel_gap < 1.0):
        raise InputValidationError("mip_rel_gap must be in [0, 1)", field="mip_rel_gap")


def exact_mclp(
    problem: SitingProblem,
    p: int,
    *,
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 0.0,
    warm_start: SitingResult | npt.ArrayLike | None = None,
) -> SitingResult:
    """Choose up to ``p`` sites maximising newly covered weight, exactly (HiGHS MILP).

    Steps (each timed in ``timings_s``):

    1. ``lp``: the LP relaxation by interior point, turned into a dual bound ``L`` and
       reduced costs (see :func:`_lp_bound`);
    2. ``restricted``: the MILP on the LP's support plus the warm start — usually the
       optimum or very near it, in well under a second — then ``swap``: 1-swap local
       search on all candidates (:func:`~tuoyu.siting.greedy.swap_improve`). The best
       of these is the incumbent, value ``LB``;
    3. if ``L - LB`` is within the tolerance, the incumbent is proven optimal; otherwise
       ``fixing``: a candidate whose bound when forced in is below ``LB`` cannot be in
       any better answer and is removed (one whose bound when left out is below ``LB``
       is forced in) — typically most candidates go;
    4. ``final``: the MILP on the remaining candidates, warm-started from the incumbent.
       Its optimum is the global optimum and its dual bound a global bound, because
       every removed choice is provably worse than the incumbent.

    Parameters
    ----------
    problem
        The siting problem.
    p
        Largest number of new sites (≥ 0).
    time_limit_s
        Wall-time budget for all steps; on reaching it the best answer found is
        returned with ``optimal=False`` and the gap.
    mip_rel_gap
        Relative gap at which the search may stop (0: prove optimality).
    warm_start
        A feasible answer (usually greedy's), or its candidate indices, to start from;
        ignored when it breaks a requirement.

    Returns
    -------
    SitingResult
        Chosen sites ranked by marginal gain, the status, gap and upper bound.

    Raises
    ------
    InfeasibleSitingError
        When no choice meets the requirements.
    SitingError
        When HiGHS stops without any feasible choice.
    """
    start = time.perf_counter()
    _check_args(time_limit_s, mip_rel_gap)
    if isinstance(p, bool) or int(p) != p or p < 0:
        raise InputValidationError(f"p must be a whole number >= 0, got {p!r}", field="p")
    p = int(p)
    p_eff = min(p, problem.n_candidates)
    problem.check_basic_feasibility(p_eff)
    has_req = bool(problem.required_groups) or bool(problem.min_total_slots)
    if p_eff == 0 or (problem.reachable_weight() <= 0 and not has_req):
        return empty_result(problem, solver="exact", wall_time_s=time.perf_counter() - start, p=p)

    def left_s() -> float:
        return time_limit_s - (time.perf_counter() - start)

    timings: dict[str, float] = {}
    tol = 1e-7 * max(problem.total_weight, 1.0)
    incumbent: IntArray | None = None
    if warm_start is not None:
        warm = warm_start.chosen if isinstance(warm_start, SitingResult) else warm_start
        warm_idx = np.unique(np.asarray(warm, dtype=np.int64).reshape(-1))
        in_range = warm_idx.size == 0 or (warm_idx[0] >= 0 and warm_idx[-1] < problem.n_candidates)
        if in_range and warm_idx.size <= p_eff and not problem.check_chosen(warm_idx):
            incumbent = warm_idx

    t0 = time.perf_counter()
    classes = demand_classes(problem)
    timings["build"] = time.perf_counter() - t0
    lp = _lp_bound(problem, classes, p_eff, left_s())
    if lp is not None:
        timings["build"] += lp.build_s
        timings["lp"] = lp.solve_s
    else:
        timings["lp"] = time.perf_counter() - t0 - timings["build"]
    stats: dict[str, int] = {
        "candidates": problem.n_candidates,
        "demand_points": problem.n_demand,
        "demand_in_model": int(np.count_nonzero(classes.class_of >= 0)),
        "demand_rows": classes.n_classes,
        "conflict_pairs": int(problem.conflicts()[0].size),
        "warm_start": int(incumbent is not None),
    }
    notes: list[str] = []

    if lp is None:
        # No LP in time: fall back to the compact MILP on everything.
        notes.append("LP relaxation not solved in time; compact MILP on all candidates")
        t0 = time.perf_counter()
        solved, final_stats = _solve_compact_mclp(
            problem,
            p_eff,
            time_limit_s=left_s(),
            mip_rel_gap=mip_rel_gap,
            warm=incumbent,
            what=f"p = {p}",
        )
        timings["final"] = time.perf_counter() - t0
        chosen, optimal, gap = solved.chosen, solved.optimal, solved.mip_gap
        bound = solved.dual_bound if math.isfinite(solved.dual_bound) else np.inf
        status = solved.status
        notes.extend(solved.notes)
        stats.update({f"final_{k}": v for k, v in final_stats.items()})
    else:
        # Step 2: restricted MILP on the LP support, then 1-swap local search.
        t0 = time.perf_counter()
        support = np.flatnonzero(lp.x > 1e-6)
        keep = support if incumbent is None else np.union1d(support, incumbent)
        stats["lp_support"] = int(support.size)
        if 0 < keep.size < problem.n_candidates:
            sub = problem.restrict(keep)
            warm_sub = None if incumbent is None else np.searchsorted(keep, incumbent)
            try:
                r_solved, _ = _solve_compact_mclp(
                    sub,
                    p_eff,
                    time_limit_s=max(0.01, 0.25 * left_s()),
                    mip_rel_gap=mip_rel_gap,
                    warm=warm_sub,
                    what="restricted",
                )
                candidate = keep[r_solved.chosen]
                if incumbent is None or problem.objective_of(candidate) > problem.objective_of(
                    incumbent
                ):
                    incumbent = candidate
            except (InfeasibleSitingError, SitingError):
                pass  # the support alone cannot meet the requirements: fixing decides
        timings["restricted"] = time.perf_counter() - t0
        if incumbent is not None:
            t0 = time.perf_counter()
            incumbent = swap_improve(problem, incumbent)
            timings["swap"] = time.perf_counter() - t0
        lb = problem.objective_of(incumbent) if incumbent is not None else -np.inf
        bound = lp.bound
        if incumbent is not None and lp.bound - lb <= tol + mip_rel_gap * abs(lb):
            chosen, optimal = incumbent, True
            gap = max(0.0, (lp.bound - lb) / max(abs(lb), 1e-12))
            status = "Optimal (LP bound met)"
        else:
            # Step 3: fixing by the Lagrangian bound, step 4: the final MILP.
            keep_mask = np.ones(problem.n_candidates, dtype=bool)
            forced = np.empty(0, dtype=np.int64)
            if incumbent is not None and lp.bound >= lb - tol:
                keep_mask = lp.bound + np.minimum(lp.reduced_x, 0.0) >= lb - tol
                forced = np.flatnonzero(lp.bound - np.maximum(lp.reduced_x, 0.0) < lb - tol)
                # In exact arithmetic the incumbent is never fixed out and holds every
                # forced site; these two lines only guard against rounding.
                keep_mask[incumbent] = True
                forced = np.intersect1d(forced, incumbent)
            kept = np.flatnonzero(keep_mask)
            stats["fixed_out"] = int(problem.n_candidates - kept.size)
            stats["fixed_in"] = int(forced.size)
            t0 = time.perf_counter()
            reduced = kept.size < problem.n_candidates or forced.size > 0
            final = problem.restrict(kept, must_choose=forced) if reduced else problem
            warm_final = None if incumbent is None else np.searchsorted(kept, incumbent)
            try:
                solved, final_stats = _solve_compact_mclp(
                    final,
                    p_eff,
                    time_limit_s=left_s(),
                    mip_rel_gap=mip_rel_gap,
                    warm=warm_final,
                    what=f"p = {p}",
                )
            except InfeasibleSitingError:
                if incumbent is None:
                    raise
                # Nothing better than the incumbent exists (fixing removed all else).
                solved = _Solved(
                    np.searchsorted(kept, incumbent), True, 0.0, lb, "Optimal", (), 0.0
                )
                final_stats = {}
            except SitingError:
                if incumbent is None:
                    raise
                # Out of time before HiGHS held any solution: keep the incumbent.
                gap_left = (lp.bound - lb) / max(abs(lb), 1e-12)
                solved = _Solved(
                    np.searchsorted(kept, incumbent),
                    False,
                    gap_left,
                    lp.bound,
                    "Time limit reached",
                    (f"time limit reached; best answer within {gap_left:.2%} of the bound",),
                    0.0,
                )
                final_stats = {}
            timings["final"] = time.perf_counter() - t0
            chosen = kept[solved.chosen]
            if incumbent is not None and problem.objective_of(incumbent) > problem.objective_of(
                chosen
            ):
                chosen = incumbent
            optimal, gap, status = solved.optimal, solved.mip_gap, solved.status
            notes.extend(solved.notes)
            sub_bound = solved.dual_bound if math.isfinite(solved.dual_bound) else np.inf
            bound = min(lp.bound, max(sub_bound, lb))
            stats.update({f"final_{k}": v for k, v in final_stats.items()})

    order, gains = marginal_order(problem, chosen)
    idle_free = _drop_idle_sites(problem, order, gains)
    if idle_free.size != order.size:
        order, gains = marginal_order(problem, idle_free)
    if order.size < p:
        notes.append(
            f"{order.size} of p = {p} sites chosen: further sites would add no covered "
            "weight / 其余候选点不再增加覆盖"
        )
    if isinstance(warm_start, SitingResult):
        bound = min(bound, warm_start.upper_bound)  # greedy's online bound is valid too
    bound = min(bound, problem.reachable_weight())
    objective = float(gains.sum())
    if not optimal:
        # HiGHS's definition, |bound - objective| / |objective|, on the combined bound.
        gap = max(0.0, bound - objective) / max(abs(objective), 1e-12)
        notes.append(f"relative gap to the proven bound: {gap:.2%}")
    return build_result(
        problem,
        order,
        gains,
        upper_bound=bound,
        solver="exact",
        optimal=optimal,
        mip_gap=gap,
        status=status,
        wall_time_s=time.perf_counter() - start,
        p=p,
        notes=notes,
        timings_s=timings,
        model_stats=stats,
    )


def exact_min_sites(
    problem: SitingProblem,
    goal_share: float,
    *,
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 0.0,
    warm_start: SitingResult | None = None,
    then_maximise: bool = True,
) -> SitingResult:
    """Fewest sites so that ``goal_share`` of all weight is covered (HiGHS MILP).

    Parameters
    ----------
    problem
        The siting problem.
    goal_share
        Coverage goal in [0, 1]; existing coverage counts towards it.
    time_limit_s
        Time limit shared by both stages.
    mip_rel_gap
        Relative gap at which HiGHS may stop.
    warm_start
        A feasible answer (usually greedy's) to start from.
    then_maximise
        With the fewest count ``k`` found, solve a second MILP for the ``k`` sites that
        cover the most (the first stage only asks for any ``k`` sites reaching the goal).

    Returns
    -------
    SitingResult
        ``optimal`` tells whether the count is proven minimal; ``sites_lower_bound`` is
        HiGHS's bound on the count.

    Raises
    ------
    InfeasibleSitingError
        When the goal or the requirements cannot be met.
    SitingError
        When HiGHS stops without any feasible choice.
    """
    start = time.perf_counter()
    _check_args(time_limit_s, mip_rel_gap)
    need = goal_weight_needed(problem, goal_share)
    has_req = bool(problem.required_groups) or bool(problem.min_total_slots)
    if need <= 0 and not has_req:
        return empty_result(
            problem, solver="exact", wall_time_s=time.perf_counter() - start, goal_share=goal_share
        )
    problem.check_basic_feasibility(problem.n_candidates)
    classes = demand_classes(problem)
    n_x = problem.n_candidates
    cost = np.r_[np.ones(n_x), np.zeros(classes.n_classes)]
    model = _base_model(problem, classes, cost)
    if need > 0:
        model.add(sp.csr_matrix(np.r_[np.zeros(n_x), classes.weight]), need, np.inf)
    h = model.to_highs(highspy.ObjSense.kMinimize, time_limit_s, mip_rel_gap)
    warm = False
    if warm_start is not None and not problem.check_chosen(warm_start.chosen):
        if problem.objective_of(warm_start.chosen) >= need:
            warm = _warm_start(h, warm_start.chosen, classes, n_x)
    build_s = time.perf_counter() - start
    solved = _run(h, n_x, f"goal {goal_share:.1%}", time_limit_s)
    stats = _stats(problem, classes, h, warm)
    k = int(solved.chosen.size)
    lower = k if solved.optimal else max(0, math.ceil(solved.dual_bound - 1e-6))
    chosen = solved.chosen
    notes = list(solved.notes)
    timings = {"build": build_s, "solve": solved.solve_s}

    bound_k = np.inf  # no bound on what k sites cover unless stage 2 gives one
    left_s = time_limit_s - (time.perf_counter() - start)
    if then_maximise and k > 0 and left_s > 0.1:
        # Stage 2: the best k sites. Warm-started from stage 1, whose cover already meets
        # the goal; a worse answer (time limit) is not taken.
        t2 = time.perf_counter()
        try:
            second = exact_mclp(
                problem, k, time_limit_s=left_s, mip_rel_gap=mip_rel_gap, warm_start=chosen
            )
        except SitingError:
            second = None  # keep the stage-1 answer
        if second is not None:
            if problem.objective_of(second.chosen) >= problem.objective_of(chosen):
                chosen = second.chosen
            bound_k = second.upper_bound
            if not second.optimal:
                notes.append(
                    f"the best {k} sites are not proven best (stage 2 stopped: {second.status})"
                )
        timings["maximise"] = time.perf_counter() - t2

    order, gains = marginal_order(problem, chosen)
    return build_result(
        problem,
        order,
        gains,
        upper_bound=min(bound_k, problem.reachable_weight()),
        solver="exact",
        optimal=solved.optimal,
        mip_gap=solved.mip_gap,
        status=solved.status,
        wall_time_s=time.perf_counter() - start,
        goal_share=goal_share,
        sites_lower_bound=min(lower, k),
        notes=notes,
        timings_s=timings,
        model_stats=stats,
    )


def _stats(
    problem: SitingProblem, classes: DemandClasses, h: highspy.Highs, warm: bool
) -> dict[str, int]:
    return {
        "candidates": problem.n_candidates,
        "demand_points": problem.n_demand,
        "demand_in_model": int(np.count_nonzero(classes.class_of >= 0)),
        "demand_rows": classes.n_classes,
        "columns": int(h.getNumCol()),
        "rows": int(h.getNumRow()),
        "nonzeros": int(h.getNumNz()),
        "conflict_pairs": int(problem.conflicts()[0].size),
        "warm_start": int(warm),
    }
