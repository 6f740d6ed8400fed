"""Lazy greedy (CELF) for maximal covering, with requirement-aware filters.

Covered weight is monotone submodular in the chosen set, so a site's marginal gain can
only fall as sites are added. CELF keeps every candidate in a priority queue under its
last computed ("stale") gain, which is an upper bound of its current gain: pop the top,
recompute its gain from its CSR row (one vectorised gather-and-sum), and accept it when
it still beats the next stale gain, else push it back. Most candidates are never
re-evaluated, so a step costs a few row sums instead of a full mat-vec.

Requirements are honoured as filters, which keeps greedy fast but means it can miss a
choice the exact solver finds (it then raises :class:`InfeasibleSitingError` saying so):

- spacing: a chosen site removes every candidate closer than ``min_spacing_m``;
- required groups: once the picks left equal the unmet groups, only members of unmet
  groups are taken, and a site whose spacing zone would empty an unmet group waits;
- slots: a site over the remaining budget is dropped; a site after which the slot target
  could no longer be reached with the largest remaining sites waits.

The upper bound is the standard online bound for submodular maximisation (Minoux;
Leskovec et al. 2007): for any set ``S``, ``OPT_p ≤ f(S) + sum of the p largest marginal
gains at S``. It is evaluated with one sparse mat-vec at steps 0, 1, 2, 4, 8, … and at the
end, and the smallest value is kept; it also holds with the requirements (they only
shrink the feasible sets).
"""

from __future__ import annotations

import heapq
import time
from typing import cast

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from tuoyu.errors import InputValidationError
from tuoyu.siting.model import (
    FloatArray,
    InfeasibleSitingError,
    IntArray,
    SitingProblem,
    SitingResult,
    build_result,
    empty_result,
    goal_weight_needed,
    marginal_order,
    singleton_lower_bound,
)

_REL_TOL = 1e-12


def greedy_mclp(problem: SitingProblem, p: int, *, local_search: bool = False) -> SitingResult:
    """Choose up to ``p`` sites greedily (CELF) to maximise newly covered weight.

    Parameters
    ----------
    problem
        The siting problem.
    p
        Largest number of new sites (≥ 0); more than the candidates is allowed.
    local_search
        Improve the greedy set by 1-swaps (:func:`swap_improve`) and report the sites in
        marginal-gain order; ``status`` says so.

    Returns
    -------
    SitingResult
        Sites in greedy order with their gains, the online upper bound, ``optimal`` when
        the objective meets that bound.

    Raises
    ------
    InfeasibleSitingError
        When the requirements cannot be met (provably, or by this greedy).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> A = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=bool))
    >>> r = greedy_mclp(SitingProblem(A, np.array([1.0, 2.0, 3.0])), 1)
    >>> r.chosen.tolist(), r.objective
    ([1], 5.0)
    """
    start = time.perf_counter()
    p = _check_p(p)
    p_eff = min(p, problem.n_candidates)
    problem.check_basic_feasibility(p_eff)
    if p_eff == 0 or (problem.n_demand == 0 and not _has_requirements(problem)):
        return empty_result(problem, solver="greedy", wall_time_s=time.perf_counter() - start, p=p)
    state = _Greedy(problem, max_sites=p_eff, need_weight=None)
    state.run()
    bound = state.upper_bound(p_eff)
    order = np.asarray(state.order, dtype=np.int64)
    gains = np.asarray(state.gains, dtype=np.float64)
    status = "greedy (CELF)"
    if local_search and order.size:
        improved = swap_improve(problem, order)
        if problem.objective_of(improved) > float(gains.sum()):
            order, gains = marginal_order(problem, improved)
        status = "greedy (CELF) + 1-swap local search"
    objective = float(gains.sum())
    optimal = objective >= bound - _tol(problem)
    notes = list(state.notes)
    if order.size < p:
        notes.append(
            f"{order.size} of p = {p} sites chosen: further sites would add no covered "
            "weight / 其余候选点不再增加覆盖"
        )
    return build_result(
        problem,
        order,
        gains,
        upper_bound=bound,
        solver="greedy",
        optimal=optimal,
        mip_gap=None,
        status=status,
        wall_time_s=time.perf_counter() - start,
        p=p,
        notes=notes,
    )


def greedy_min_sites(problem: SitingProblem, goal_share: float) -> SitingResult:
    """Add sites greedily until ``goal_share`` of all weight is covered.

    Parameters
    ----------
    problem
        The siting problem.
    goal_share
        Coverage goal in [0, 1] (existing coverage counts towards it), e.g. 0.9.

    Returns
    -------
    SitingResult
        The sites in greedy order; ``sites_lower_bound`` is a proven lower bound on the
        fewest sites (largest single-site gains, disjoint required groups, slot target),
        ``optimal`` when the count meets it.

    Raises
    ------
    InfeasibleSitingError
        When the goal or a requirement cannot be met.
    """
    start = time.perf_counter()
    need = goal_weight_needed(problem, goal_share)
    lower = _min_sites_lower_bound(problem, need)
    if need <= 0 and not _has_requirements(problem):
        return empty_result(
            problem, solver="greedy", wall_time_s=time.perf_counter() - start, goal_share=goal_share
        )
    problem.check_basic_feasibility(problem.n_candidates)
    state = _Greedy(problem, max_sites=problem.n_candidates, need_weight=need)
    state.run()
    k = len(state.order)
    bound = state.upper_bound(k)
    return build_result(
        problem,
        np.asarray(state.order, dtype=np.int64),
        np.asarray(state.gains, dtype=np.float64),
        upper_bound=bound,
        solver="greedy",
        optimal=k <= lower,
        mip_gap=None,
        status="greedy (CELF)",
        wall_time_s=time.perf_counter() - start,
        goal_share=goal_share,
        sites_lower_bound=min(lower, k),
        notes=state.notes,
    )


def swap_improve(
    problem: SitingProblem, chosen: npt.ArrayLike, *, max_rounds: int = 1_000, max_checks: int = 64
) -> IntArray:
    """Improve a chosen set by best-improvement 1-swaps (one site out, one in).

    Every round scores all swaps at once with sparse products: for chosen site ``s`` and
    outside candidate ``j``, the change is ``gain(j) - loss(s) + shared(j, s)``, where
    ``gain`` is the open weight ``j`` would add, ``loss`` the weight only ``s`` covers and
    ``shared`` the part of that weight ``j`` covers too (``A @ only_by_s``). The best
    swap that keeps the requirements is made (at most ``max_checks`` tried per round)
    until none improves.

    Parameters
    ----------
    problem
        The siting problem.
    chosen
        A set meeting the requirements.
    max_rounds
        Largest number of swaps.
    max_checks
        Improving swaps checked against the requirements per round.

    Returns
    -------
    numpy.ndarray
        The improved set (same size), never worse than ``chosen``.
    """
    current = np.asarray(chosen, dtype=np.int64).copy()
    k = current.size
    n = problem.n_candidates
    if k == 0 or k >= n or n * k > 20_000_000:  # the score table is n × k floats
        return current
    a = problem.coverage
    a_float = a.astype(np.float64)
    open_w = problem.open_weights()
    has_req = bool(problem.required_groups) or problem.min_spacing_m is not None
    has_req = has_req or problem.max_total_slots is not None or problem.min_total_slots is not None
    tol = _tol(problem)
    for _ in range(max_rounds):
        count = np.asarray(a[current].sum(axis=0)).ravel()
        gain = a_float @ np.where(count == 0, open_w, 0.0)
        only_w = np.where(count == 1, open_w, 0.0)
        only = a_float[current].multiply(only_w[None, :]).tocsr()
        loss = np.asarray(only.sum(axis=1)).ravel()
        shared = (a_float @ only.T).toarray()
        delta = gain[:, None] - loss[None, :] + shared
        delta[current, :] = -np.inf
        flat = delta.ravel()
        n_improving = int(np.count_nonzero(flat > tol))
        if n_improving == 0:
            break
        top = np.argpartition(-flat, min(n_improving, max_checks) - 1)[
            : min(n_improving, max_checks)
        ]
        top = top[np.argsort(-flat[top], kind="stable")]
        moved = False
        for pos in top:
            j, s = divmod(int(pos), k)
            trial = current.copy()
            trial[s] = j
            if has_req and problem.check_chosen(trial):
                continue
            current = trial
            moved = True
            break
        if not moved:
            break
    return current


def _check_p(p: int) -> int:
    if isinstance(p, bool) or int(p) != p or p < 0:
        raise InputValidationError(f"p must be a whole number >= 0, got {p!r}", field="p")
    return int(p)


def _tol(problem: SitingProblem) -> float:
    return 1e-9 * max(problem.total_weight, 1.0)


def _has_requirements(problem: SitingProblem) -> bool:
    return bool(problem.required_groups) or bool(problem.min_total_slots)


def _min_sites_lower_bound(problem: SitingProblem, need_weight: float) -> int:
    """Fewest sites any choice needs: coverage, disjoint groups and slot target bounds."""
    lower = singleton_lower_bound(problem, need_weight)
    if problem.required_groups:
        members = np.concatenate(problem.required_groups)
        if np.unique(members).size == members.size:
            lower = max(lower, len(problem.required_groups))
        else:
            lower = max(lower, 1)
    if problem.min_total_slots and problem.candidate_slots is not None:
        top = np.cumsum(np.sort(problem.candidate_slots)[::-1])
        lower = max(lower, int(np.searchsorted(top, problem.min_total_slots - 1e-9)) + 1)
    return min(lower, problem.n_candidates)


class _Greedy:
    """State of one CELF run (kept in one object so the loop reads plainly)."""

    def __init__(self, problem: SitingProblem, *, max_sites: int, need_weight: float | None):
        self.problem = problem
        self.max_sites = max_sites
        self.need_weight = need_weight
        a = problem.coverage
        self.indptr = a.indptr
        self.indices = a.indices
        self.a_float = a.astype(np.float64)
        self.open_w = problem.open_weights()
        n = problem.n_candidates
        self.allowed = np.ones(n, dtype=bool)
        self.order: list[int] = []
        self.gains: list[float] = []
        self.notes: list[str] = []
        self.covered_new = 0.0
        self.tol = _tol(problem)

        # Spacing: symmetric neighbour lists as CSR.
        ca, cb = problem.conflicts()
        self.has_conflicts = ca.size > 0
        if self.has_conflicts:
            nbr = sp.coo_matrix(
                (np.ones(2 * ca.size, dtype=np.int8), (np.r_[ca, cb], np.r_[cb, ca])), shape=(n, n)
            ).tocsr()
            self.nbr_ptr, self.nbr_idx = nbr.indptr, nbr.indices
        # Required groups: candidate → groups (CSR), alive member counts, unmet set.
        n_groups = len(problem.required_groups)
        self.unmet = np.ones(n_groups, dtype=bool)
        if n_groups:
            rows = np.concatenate(problem.required_groups)
            cols = np.repeat(np.arange(n_groups), [g.size for g in problem.required_groups])
            memb = sp.csr_matrix(
                (np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n_groups)
            )
            self.grp_ptr, self.grp_idx = memb.indptr, memb.indices
            self.alive = np.array([g.size for g in problem.required_groups], dtype=np.int64)
        self.slots = problem.candidate_slots
        self.slots_chosen = 0.0

        # Bound checkpoints: (covered new weight, sorted-descending gains at that point).
        self.checkpoints: list[tuple[float, FloatArray]] = []
        self.singleton = self.a_float @ self.open_w
        self._record_checkpoint(self.singleton)

    # ------------------------------------------------------------- helpers
    def _groups_of(self, j: int) -> IntArray:
        if not len(self.problem.required_groups):
            return np.empty(0, dtype=np.int64)
        return cast(IntArray, self.grp_idx[self.grp_ptr[j] : self.grp_ptr[j + 1]].astype(np.int64))

    def _blocked_by(self, j: int) -> IntArray:
        """Candidates that choosing ``j`` removes (itself and its spacing neighbours)."""
        if not self.has_conflicts:
            return np.array([j], dtype=np.int64)
        nb = self.nbr_idx[self.nbr_ptr[j] : self.nbr_ptr[j + 1]]
        return cast(IntArray, np.r_[np.int64(j), nb.astype(np.int64)])

    def _fresh_gain(self, j: int) -> float:
        return float(self.open_w[self.indices[self.indptr[j] : self.indptr[j + 1]]].sum())

    def _requirements_pending(self) -> bool:
        return bool(self.unmet.any()) or self._slots_needed() > 0

    def _slots_needed(self) -> float:
        if self.problem.min_total_slots is None:
            return 0.0
        return max(0.0, self.problem.min_total_slots - self.slots_chosen - 1e-9)

    def _goal_reached(self) -> bool:
        return self.need_weight is not None and self.covered_new >= self.need_weight - self.tol

    def _record_checkpoint(self, gains_now: FloatArray) -> None:
        top = np.sort(gains_now)[::-1][: self.max_sites]
        self.checkpoints.append((self.covered_new, top))

    def upper_bound(self, p: int) -> float:
        """Smallest online bound over the checkpoints, for ``p`` sites."""
        self._record_checkpoint(self.a_float @ self.open_w)
        reachable = self.problem.reachable_weight()
        best = reachable
        for covered, top in self.checkpoints:
            best = min(best, covered + float(top[:p].sum()))
        return best

    def _acceptable(self, j: int, forced_groups: bool, must_help: bool) -> str:
        """``"ok"``, ``"drop"`` (never acceptable again) or ``"wait"`` (maybe later)."""
        groups = self._groups_of(j)
        helps_group = bool(groups.size and self.unmet[groups].any())
        if forced_groups and not helps_group:
            return "wait"
        s_j = float(self.slots[j]) if self.slots is not None else 0.0
        if self.problem.max_total_slots is not None:
            if self.slots_chosen + s_j > self.problem.max_total_slots + 1e-9:
                return "drop"
        need_slots = self._slots_needed()
        if must_help and not (helps_group or (need_slots > 0 and s_j > 0)):
            return "wait"
        blocked = self._blocked_by(j)
        blocked = blocked[self.allowed[blocked]]
        if need_slots > s_j and self.slots is not None:
            # Can the picks left after j still reach the slot target?
            k_after = self.max_sites - len(self.order) - 1
            pool = self.allowed.copy()
            pool[blocked] = False
            rest = self.slots[pool]
            if k_after <= 0 or rest.size == 0:
                reach = 0.0
            elif rest.size <= k_after:
                reach = float(rest.sum())
            else:
                reach = float(np.partition(rest, rest.size - k_after)[-k_after:].sum())
            if reach < need_slots - s_j:
                return "wait"
        if self.unmet.any() and self.has_conflicts:
            # Would j's spacing zone empty a group that j itself does not satisfy?
            lost = np.zeros(self.unmet.size, dtype=np.int64)
            for b in blocked:
                lost[self._groups_of(int(b))] += 1
            at_risk = self.unmet & (self.alive - lost <= 0)
            at_risk[groups] = False
            if at_risk.any():
                return "wait"
        return "ok"

    def _accept(self, j: int, gain: float) -> None:
        self.order.append(j)
        self.gains.append(gain)
        self.covered_new += gain
        self.open_w[self.indices[self.indptr[j] : self.indptr[j + 1]]] = 0.0
        blocked = self._blocked_by(j)
        blocked = blocked[self.allowed[blocked]]
        self.allowed[blocked] = False
        if len(self.problem.required_groups):
            for b in blocked:
                self.alive[self._groups_of(int(b))] -= 1
            self.unmet[self._groups_of(j)] = False
        if self.slots is not None:
            self.slots_chosen += float(self.slots[j])
        k = len(self.order)
        if k & (k - 1) == 0:  # powers of two: a cheap, growing set of bound checkpoints
            self._record_checkpoint(self.a_float @ self.open_w)

    # ---------------------------------------------------------------- loop
    def run(self) -> None:
        """Pick sites until ``max_sites``, the goal, or no useful site is left."""
        heap = [(-float(g), int(j)) for j, g in enumerate(self.singleton)]
        heapq.heapify(heap)
        while len(self.order) < self.max_sites:
            if self._goal_reached() and not self._requirements_pending():
                break
            k_left = self.max_sites - len(self.order)
            forced_groups = bool(self.unmet.any()) and int(self.unmet.sum()) >= k_left
            waiting: list[tuple[float, int]] = []
            picked = False
            while heap:
                _, j = heapq.heappop(heap)
                if not self.allowed[j]:
                    continue
                gain = self._fresh_gain(j)
                if heap and gain < -heap[0][0] - _REL_TOL * max(gain, 1.0):
                    heapq.heappush(heap, (-gain, j))  # stale: reinsert under its fresh gain
                    continue
                gain_is_zero = gain <= 0.0
                if gain_is_zero and not self._requirements_pending():
                    heapq.heappush(heap, (-gain, j))
                    break  # nothing left to gain and nothing required
                # Past the coverage goal (inverse question) a site must serve a requirement.
                must_help = gain_is_zero or self._goal_reached()
                verdict = self._acceptable(j, forced_groups, must_help)
                if verdict == "drop":
                    self.allowed[j] = False
                    continue
                if verdict == "wait":
                    waiting.append((-gain, j))
                    continue
                self._accept(j, gain)
                picked = True
                break
            for item in waiting:
                heapq.heappush(heap, item)
            if not picked:
                break
        self._check_done()

    def _check_done(self) -> None:
        problem = self.problem
        missing = [problem.group_name(int(k)) for k in np.flatnonzero(self.unmet)]
        if missing:
            raise InfeasibleSitingError(
                "greedy could not give a site to required group(s) "
                f"{', '.join(missing)} within p = {self.max_sites} sites and the spacing "
                "rules; the exact solver (solver='exact') decides whether any choice can"
            )
        if self._slots_needed() > 0:
            raise InfeasibleSitingError(
                f"greedy reached {self.slots_chosen:g} 托位, short of the target "
                f"{problem.min_total_slots:g}; the exact solver (solver='exact') decides "
                "whether any choice can"
            )
        if self.need_weight is not None and not self._goal_reached():
            raise InfeasibleSitingError(
                "greedy could not reach the coverage goal under the spacing and slot rules; "
                "the exact solver (solver='exact') decides whether any choice can"
            )
