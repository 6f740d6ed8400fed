"""Problem and result types of facility siting (maximal covering, MCLP).

The problem is posed on arrays only (spopt's "pure door"): a boolean coverage matrix
``A`` (scipy.sparse, candidates × demand points, ``A[j, i]`` true when candidate ``j``
reaches demand point ``i`` within the walking threshold), demand weights (population or
estimated under-3 population) and the demand that existing facilities already cover.
Adapters that build these arrays from layers and a walking network live elsewhere.

Options
-------
required_groups
    Candidate-index arrays; at least one chosen site must come from each (for example,
    for every 街道 without a 普惠 facility, the candidates located in that 街道 — the
    administrative target "every 街道 has one"). See :func:`required_groups_from_labels`.
min_spacing_m
    No two chosen sites closer than this (metres, needs candidate coordinates in a
    metric CRS).
Slots (托位)
    ``candidate_slots`` gives the 托位 a new site at each candidate would offer (use
    :func:`uniform_slots` for one ``slots_per_site`` everywhere). ``max_total_slots`` is a
    budget: the chosen sites may open at most this many 托位 in all.
    ``min_total_slots`` is a target: they must open at least this many, typically the
    shortfall towards 4.5 托位 per 1,000 residents (:func:`slot_shortfall`). With equal
    slots per site the target means "at least ``ceil(target / slots_per_site)`` sites",
    so ``p`` must allow that many (checked up front, with a clear error).

Sites that add no covered weight are not chosen unless a requirement needs them, so a
result may hold fewer than ``p`` sites (the result says so in ``notes``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree

from tuoyu.errors import InputValidationError, TuoyuError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SLOTS_PER_1000_TARGET = 4.5
"""托位 per 1,000 residents targeted by 2025 (GUIDE §2)."""


class SitingError(TuoyuError):
    """A siting problem cannot be solved as posed (solver failure, no solution in time)."""


class InfeasibleSitingError(SitingError):
    """The siting requirements cannot all be met (groups, spacing, slots, goal, ``p``)."""


RESULT_LABELS: dict[str, str] = {
    "rank": "排名 rank",
    "candidate": "候选点 candidate",
    "gain_weight": "新增覆盖 added covered weight",
    "cumulative_weight": "累计覆盖 cumulative covered weight",
    "cumulative_share": "累计覆盖率 cumulative covered share",
    "slots": "托位 slots",
}
"""Bilingual column labels of :meth:`SitingResult.to_frame` for tables people read."""


@dataclass(frozen=True)
class SitingProblem:
    """A maximal-covering siting problem on arrays.

    Parameters
    ----------
    coverage
        Boolean sparse matrix, shape (n_candidates, n_demand); stored as CSR with
        explicit zeros removed.
    weights
        Demand weights (people), shape (n_demand,), finite and ≥ 0.
    already_covered
        Demand already inside the threshold of an existing facility (no gain when
        covered again), shape (n_demand,); default none.
    candidate_x_m, candidate_y_m
        Candidate coordinates in a metric CRS (needed for ``min_spacing_m``).
    required_groups
        Candidate-index arrays; each must receive at least one chosen site.
    required_group_names
        A name per group for messages (for example the 街道 name).
    min_spacing_m
        Smallest allowed distance between two chosen sites, metres.
    candidate_slots
        托位 each candidate site would offer, shape (n_candidates,).
    max_total_slots, min_total_slots
        Budget and target on the sum of ``candidate_slots`` over the chosen sites.

    Raises
    ------
    InputValidationError
        When shapes, values or indices are inconsistent (names the field).
    """

    coverage: sp.csr_matrix
    weights: FloatArray
    already_covered: BoolArray | None = None
    candidate_x_m: FloatArray | None = None
    candidate_y_m: FloatArray | None = None
    required_groups: tuple[IntArray, ...] = ()
    required_group_names: tuple[str, ...] | None = None
    min_spacing_m: float | None = None
    candidate_slots: FloatArray | None = None
    max_total_slots: float | None = None
    min_total_slots: float | None = None
    _cache: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not sp.issparse(self.coverage) or len(self.coverage.shape) != 2:
            raise InputValidationError(
                "coverage must be a 2-D scipy.sparse matrix (candidates × demand)",
                field="coverage",
            )
        a = sp.csr_matrix(self.coverage, copy=True)
        a.data = (a.data != 0).astype(np.int8)
        a.eliminate_zeros()
        a.sum_duplicates()
        a.sort_indices()
        set_(self, "coverage", a)
        n_cand, n_dem = a.shape

        w = np.asarray(self.weights, dtype=np.float64).reshape(-1)
        if w.shape[0] != n_dem:
            raise InputValidationError(
                f"weights has {w.shape[0]} values but coverage has {n_dem} demand columns",
                field="weights",
            )
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InputValidationError("weights must be finite and >= 0", field="weights")
        set_(self, "weights", w)

        if self.already_covered is None:
            cov = np.zeros(n_dem, dtype=bool)
        else:
            cov = np.asarray(self.already_covered, dtype=bool).reshape(-1)
            if cov.shape[0] != n_dem:
                raise InputValidationError(
                    f"already_covered has {cov.shape[0]} values, expected {n_dem}",
                    field="already_covered",
                )
        set_(self, "already_covered", cov)

        for name in ("candidate_x_m", "candidate_y_m"):
            value = getattr(self, name)
            if value is not None:
                arr = np.asarray(value, dtype=np.float64).reshape(-1)
                if arr.shape[0] != n_cand or not np.all(np.isfinite(arr)):
                    raise InputValidationError(
                        f"{name} must hold {n_cand} finite values", field=name
                    )
                set_(self, name, arr)
        if (self.candidate_x_m is None) != (self.candidate_y_m is None):
            raise InputValidationError(
                "give both candidate_x_m and candidate_y_m or neither", field="candidate_x_m"
            )

        groups = []
        for k, g in enumerate(self.required_groups):
            arr = np.unique(np.asarray(g).reshape(-1).astype(np.int64))
            if arr.size and (arr[0] < 0 or arr[-1] >= n_cand):
                raise InputValidationError(
                    f"required group {k} holds a candidate index outside 0..{n_cand - 1}",
                    field="required_groups",
                )
            groups.append(arr)
        set_(self, "required_groups", tuple(groups))
        if self.required_group_names is not None:
            names = tuple(str(n) for n in self.required_group_names)
            if len(names) != len(groups):
                raise InputValidationError(
                    f"{len(names)} group names for {len(groups)} required groups",
                    field="required_group_names",
                )
            set_(self, "required_group_names", names)

        if self.min_spacing_m is not None:
            spacing = float(self.min_spacing_m)
            if not math.isfinite(spacing) or spacing < 0:
                raise InputValidationError(
                    "min_spacing_m must be finite and >= 0", field="min_spacing_m"
                )
            if spacing > 0 and self.candidate_x_m is None:
                raise InputValidationError(
                    "min_spacing_m needs candidate_x_m and candidate_y_m", field="min_spacing_m"
                )
            set_(self, "min_spacing_m", spacing if spacing > 0 else None)

        if self.candidate_slots is not None:
            slots = np.asarray(self.candidate_slots, dtype=np.float64).reshape(-1)
            if slots.shape[0] != n_cand or not np.all(np.isfinite(slots)) or np.any(slots < 0):
                raise InputValidationError(
                    f"candidate_slots must hold {n_cand} finite values >= 0",
                    field="candidate_slots",
                )
            set_(self, "candidate_slots", slots)
        for name in ("max_total_slots", "min_total_slots"):
            value = getattr(self, name)
            if value is not None:
                if self.candidate_slots is None:
                    raise InputValidationError(f"{name} needs candidate_slots", field=name)
                if not math.isfinite(float(value)) or float(value) < 0:
                    raise InputValidationError(f"{name} must be finite and >= 0", field=name)
                set_(self, name, float(value))

    # ------------------------------------------------------------------ sizes
    @property
    def n_candidates(self) -> int:
        """Number of candidate sites."""
        return int(self.coverage.shape[0])

    @property
    def n_demand(self) -> int:
        """Number of demand points."""
        return int(self.coverage.shape[1])

    @property
    def total_weight(self) -> float:
        """Sum of all demand weights."""
        return float(self.weights.sum())

    @property
    def baseline_weight(self) -> float:
        """Weight already covered by existing facilities."""
        assert self.already_covered is not None  # normalised in __post_init__
        return float(self.weights[self.already_covered].sum())

    def open_weights(self) -> FloatArray:
        """Weights of demand not yet covered (0 where already covered)."""
        assert self.already_covered is not None  # normalised in __post_init__
        return np.where(self.already_covered, 0.0, self.weights)

    def reachable_weight(self) -> float:
        """Largest newly coverable weight: open demand reached by some candidate."""
        reached = np.zeros(self.n_demand, dtype=bool)
        reached[self.coverage.indices] = True
        return float(self.open_weights()[reached].sum())

    def coverage_csc(self) -> sp.csc_matrix:
        """The coverage matrix in CSC form (demand columns), cached."""
        if "csc" not in self._cache:
            self._cache["csc"] = self.coverage.tocsc()
        out = self._cache["csc"]
        assert isinstance(out, sp.csc_matrix)
        return out

    def conflicts(self) -> tuple[IntArray, IntArray]:
        """Candidate pairs ``(a, b)``, ``a < b``, closer than ``min_spacing_m`` (cached)."""
        if "conflicts" not in self._cache:
            if self.min_spacing_m is None or self.candidate_x_m is None:
                empty = np.empty(0, dtype=np.int64)
                self._cache["conflicts"] = (empty, empty)
            else:
                assert self.candidate_y_m is not None
                self._cache["conflicts"] = conflict_pairs(
                    self.candidate_x_m, self.candidate_y_m, self.min_spacing_m
                )
        out = self._cache["conflicts"]
        assert isinstance(out, tuple)
        return out

    def group_name(self, k: int) -> str:
        """Readable name of required group ``k``."""
        if self.required_group_names is not None:
            return f"'{self.required_group_names[k]}'"
        return f"{k}"

    def slots_of(self, chosen: npt.ArrayLike) -> float:
        """Total 托位 of the chosen sites (0 when no slots are given)."""
        if self.candidate_slots is None:
            return 0.0
        return float(self.candidate_slots[np.asarray(chosen, dtype=np.int64)].sum())

    def check_basic_feasibility(self, p: int) -> None:
        """Raise :class:`InfeasibleSitingError` for requirements that no ``p`` sites can meet.

        Checks what is cheap to prove: an empty required group, disjoint required groups
        outnumbering ``p``, a slot target beyond the ``p`` largest sites.
        """
        for k, g in enumerate(self.required_groups):
            if g.size == 0:
                raise InfeasibleSitingError(
                    f"required group {self.group_name(k)} has no candidate site "
                    "(add candidates there or drop the requirement)"
                )
        if self.required_groups:
            members = np.concatenate(self.required_groups)
            disjoint = np.unique(members).size == members.size
            if disjoint and len(self.required_groups) > p:
                raise InfeasibleSitingError(
                    f"{len(self.required_groups)} required groups need at least "
                    f"{len(self.required_groups)} sites but p = {p}"
                )
        if self.min_total_slots is not None and self.min_total_slots > 0:
            assert self.candidate_slots is not None
            top = np.sort(self.candidate_slots)[::-1][: max(p, 0)]
            if float(top.sum()) < self.min_total_slots:
                raise InfeasibleSitingError(
                    f"the slot target {self.min_total_slots:g} 托位 cannot be reached with "
                    f"p = {p} sites (at most {float(top.sum()):g})"
                )

    def check_chosen(self, chosen: npt.ArrayLike) -> list[str]:
        """Requirements the chosen set violates (empty list when it meets them all)."""
        idx = np.asarray(chosen, dtype=np.int64)
        problems = []
        picked = np.zeros(self.n_candidates, dtype=bool)
        picked[idx] = True
        for k, g in enumerate(self.required_groups):
            if not picked[g].any():
                problems.append(f"required group {self.group_name(k)} has no chosen site")
        a, b = self.conflicts()
        if a.size and np.any(picked[a] & picked[b]):
            problems.append(f"two chosen sites are closer than {self.min_spacing_m:g} m")
        total = self.slots_of(idx)
        if self.max_total_slots is not None and total > self.max_total_slots + 1e-9:
            problems.append(f"{total:g} 托位 exceed the budget {self.max_total_slots:g}")
        if self.min_total_slots is not None and total < self.min_total_slots - 1e-9:
            problems.append(f"{total:g} 托位 fall short of the target {self.min_total_slots:g}")
        return problems

    def restrict(
        self, keep: npt.ArrayLike, must_choose: npt.ArrayLike | None = None
    ) -> SitingProblem:
        """The same problem on a subset of the candidates.

        Parameters
        ----------
        keep
            Candidate indices to keep (ascending); candidate ``keep[k]`` becomes ``k``.
        must_choose
            Original indices (a subset of ``keep``) that every answer must hold; each
            becomes a one-member required group.

        Returns
        -------
        SitingProblem
            Demand, weights and existing coverage unchanged; required groups cut to the
            kept candidates (a group may become empty: solving then raises).
        """
        idx = np.unique(np.asarray(keep, dtype=np.int64))
        new_of = np.full(self.n_candidates, -1, dtype=np.int64)
        new_of[idx] = np.arange(idx.size)
        groups = [new_of[g][new_of[g] >= 0] for g in self.required_groups]
        names = list(self.required_group_names) if self.required_group_names else None
        if must_choose is not None:
            for j in np.asarray(must_choose, dtype=np.int64).reshape(-1):
                groups.append(np.array([new_of[j]], dtype=np.int64))
                if names is not None:
                    names.append(f"candidate {int(j)}")
        return SitingProblem(
            coverage=self.coverage[idx],
            weights=self.weights,
            already_covered=self.already_covered,
            candidate_x_m=None if self.candidate_x_m is None else self.candidate_x_m[idx],
            candidate_y_m=None if self.candidate_y_m is None else self.candidate_y_m[idx],
            required_groups=tuple(groups),
            required_group_names=None if names is None else tuple(names),
            min_spacing_m=self.min_spacing_m,
            candidate_slots=None if self.candidate_slots is None else self.candidate_slots[idx],
            max_total_slots=self.max_total_slots,
            min_total_slots=self.min_total_slots,
        )

    def covered_mask(self, chosen: npt.ArrayLike) -> BoolArray:
        """Demand covered by the existing facilities or by any of the chosen sites."""
        idx = np.asarray(chosen, dtype=np.int64)
        assert self.already_covered is not None
        mask = self.already_covered.copy()
        if idx.size:
            mask[self.coverage[idx].indices] = True
        return mask

    def objective_of(self, chosen: npt.ArrayLike) -> float:
        """Newly covered weight of a chosen set (exact, from the matrix)."""
        idx = np.asarray(chosen, dtype=np.int64)
        if idx.size == 0:
            return 0.0
        newly = np.zeros(self.n_demand, dtype=bool)
        newly[self.coverage[idx].indices] = True
        return float(self.open_weights()[newly].sum())


@dataclass(frozen=True)
class SitingResult:
    """Chosen sites, in selection order, with what each adds.

    Attributes
    ----------
    chosen
        Candidate indices in selection order (greedy order; for the exact solver ranked by
        marginal gain among the chosen sites).
    gain_weight
        Weight each site adds given the sites before it.
    cumulative_weight
        Covered weight after each site, existing coverage included.
    cumulative_share
        ``cumulative_weight / total_weight``.
    objective
        Newly covered weight of the whole set (sum of ``gain_weight``).
    baseline_weight, total_weight
        Weight covered before any new site; weight of all demand.
    upper_bound
        No choice meeting the same requirements covers more new weight than this (HiGHS's
        dual bound for the exact solver; the online submodular bound for greedy).
    solver
        ``"greedy"`` or ``"exact"``.
    optimal
        True when the objective is proven optimal (greedy: when it meets its bound).
    mip_gap
        Exact solver: relative gap ``|upper_bound - objective| / |objective|`` (HiGHS's
        definition; HiGHS's own figure when it proved optimality); ``None`` for greedy.
    status
        The solver's status text.
    wall_time_s
        Time spent in the solver call, model build included.
    p
        Largest number of sites allowed (``None`` for the inverse question).
    goal_share
        Coverage goal of the inverse question (``None`` for MCLP).
    sites_lower_bound
        Inverse question: no fewer sites can reach the goal.
    total_slots
        托位 of the chosen sites (0 when no slots were given).
    notes
        Plain-language remarks (fewer sites than ``p``, time limit hit, ...).
    timings_s
        Named phases in seconds (exact solver: ``build``, ``solve``; ``warm_start``).
    model_stats
        Model sizes (exact solver: columns, rows, non-zeros, demand rows before and after
        aggregation).
    """

    chosen: IntArray
    gain_weight: FloatArray
    cumulative_weight: FloatArray
    cumulative_share: FloatArray
    objective: float
    baseline_weight: float
    total_weight: float
    upper_bound: float
    solver: str
    optimal: bool
    mip_gap: float | None
    status: str
    wall_time_s: float
    p: int | None = None
    goal_share: float | None = None
    sites_lower_bound: int | None = None
    total_slots: float = 0.0
    notes: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    model_stats: dict[str, int] = field(default_factory=dict)

    @property
    def n_sites(self) -> int:
        """Number of chosen sites."""
        return int(self.chosen.shape[0])

    @property
    def covered_share(self) -> float:
        """Share of all weight covered with the chosen sites (existing coverage included)."""
        if self.total_weight <= 0:
            return 0.0
        return (self.baseline_weight + self.objective) / self.total_weight

    @property
    def bound_gap(self) -> float:
        """``(upper_bound - objective) / upper_bound``: how far from optimal it may be."""
        if self.upper_bound <= 0:
            return 0.0
        return max(0.0, (self.upper_bound - self.objective) / self.upper_bound)

    def to_frame(self, slots: FloatArray | None = None) -> pd.DataFrame:
        """Ranked sites as a table (columns in :data:`RESULT_LABELS`, English keys).

        Parameters
        ----------
        slots
            托位 per candidate, to add a ``slots`` column.
        """
        frame = pd.DataFrame(
            {
                "rank": np.arange(1, self.n_sites + 1, dtype=np.int64),
                "candidate": self.chosen.astype(np.int64),
                "gain_weight": self.gain_weight,
                "cumulative_weight": self.cumulative_weight,
                "cumulative_share": self.cumulative_share,
            }
        )
        if slots is not None:
            frame["slots"] = np.asarray(slots, dtype=np.float64)[self.chosen]
        return frame


def marginal_order(problem: SitingProblem, chosen: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    """Order a chosen set greedily by marginal gain; return the order and each gain.

    Parameters
    ----------
    problem
        The problem the set was chosen for.
    chosen
        Candidate indices (any order).

    Returns
    -------
    order, gain_weight
        The same indices, each next one adding the most weight given those before it
        (ties: lower index first), and the weight each adds.
    """
    idx = np.asarray(chosen, dtype=np.int64)
    if idx.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    sub = problem.coverage[idx].astype(np.float64)
    open_w = problem.open_weights()
    remaining = list(range(idx.size))
    order: list[int] = []
    gains: list[float] = []
    # A handful of sites at most a few thousand: an O(k²) loop of sparse mat-vecs is enough.
    while remaining:
        rows = sub[remaining]
        g = rows @ open_w
        best = int(np.argmax(g))
        k = remaining.pop(best)
        order.append(int(idx[k]))
        gains.append(float(g[best]))
        open_w = open_w.copy()
        open_w[sub[k].indices] = 0.0
    return np.asarray(order, dtype=np.int64), np.asarray(gains, dtype=np.float64)


def build_result(
    problem: SitingProblem,
    order: IntArray,
    gains: FloatArray,
    *,
    upper_bound: float,
    solver: str,
    optimal: bool,
    mip_gap: float | None,
    status: str,
    wall_time_s: float,
    p: int | None = None,
    goal_share: float | None = None,
    sites_lower_bound: int | None = None,
    notes: Sequence[str] = (),
    timings_s: dict[str, float] | None = None,
    model_stats: dict[str, int] | None = None,
) -> SitingResult:
    """Assemble a :class:`SitingResult` from an ordered set and its marginal gains."""
    base = problem.baseline_weight
    total = problem.total_weight
    cum = base + np.cumsum(gains) if gains.size else np.empty(0, dtype=np.float64)
    share = cum / total if total > 0 else np.zeros_like(cum)
    objective = float(gains.sum())
    return SitingResult(
        chosen=order.astype(np.int64),
        gain_weight=gains.astype(np.float64),
        cumulative_weight=cum.astype(np.float64),
        cumulative_share=share.astype(np.float64),
        objective=objective,
        baseline_weight=base,
        total_weight=total,
        upper_bound=max(float(upper_bound), objective),
        solver=solver,
        optimal=optimal,
        mip_gap=mip_gap,
        status=status,
        wall_time_s=float(wall_time_s),
        p=p,
        goal_share=goal_share,
        sites_lower_bound=sites_lower_bound,
        total_slots=problem.slots_of(order),
        notes=tuple(notes),
        timings_s=dict(timings_s or {}),
        model_stats=dict(model_stats or {}),
    )


def empty_result(
    problem: SitingProblem,
    *,
    solver: str,
    wall_time_s: float = 0.0,
    p: int | None = None,
    goal_share: float | None = None,
    notes: Sequence[str] = (),
) -> SitingResult:
    """A result with no site (nothing to choose or nothing to gain), proven optimal."""
    empty_i = np.empty(0, dtype=np.int64)
    empty_f = np.empty(0, dtype=np.float64)
    return build_result(
        problem,
        empty_i,
        empty_f,
        upper_bound=0.0,
        solver=solver,
        optimal=True,
        mip_gap=None if solver == "greedy" else 0.0,
        status="empty",
        wall_time_s=wall_time_s,
        p=p,
        goal_share=goal_share,
        sites_lower_bound=0 if goal_share is not None else None,
        notes=notes,
    )


def goal_weight_needed(problem: SitingProblem, goal_share: float) -> float:
    """New weight the chosen sites must cover to reach ``goal_share`` of all weight.

    Raises
    ------
    InputValidationError
        When ``goal_share`` is not in [0, 1].
    InfeasibleSitingError
        When even every candidate together cannot reach the goal.
    """
    if not (0.0 <= float(goal_share) <= 1.0) or math.isnan(goal_share):
        raise InputValidationError(
            f"goal_share must be in [0, 1], got {goal_share}", field="goal_share"
        )
    total = problem.total_weight
    need = max(0.0, float(goal_share) * total - problem.baseline_weight)
    reachable = problem.reachable_weight()
    # Relative slack for the rounding of the sums above.
    if need > reachable + 1e-9 * max(total, 1.0):
        best = (problem.baseline_weight + reachable) / total if total > 0 else 0.0
        raise InfeasibleSitingError(
            f"a coverage goal of {goal_share:.1%} cannot be reached: all candidates together "
            f"cover at most {best:.1%}"
        )
    return min(need, reachable)


def singleton_lower_bound(problem: SitingProblem, need_weight: float) -> int:
    """Fewest sites that could cover ``need_weight``: the k largest single-site gains.

    Coverage is subadditive, so k sites never cover more than their k largest
    single-site gains together; the smallest such k is a lower bound on the answer.
    """
    if need_weight <= 0:
        return 0
    gains = np.sort(problem.coverage.astype(np.float64) @ problem.open_weights())[::-1]
    reached = np.cumsum(gains)
    k = int(np.searchsorted(reached, need_weight * (1 - 1e-12), side="left")) + 1
    return min(k, problem.n_candidates)


def conflict_pairs(
    x_m: npt.ArrayLike, y_m: npt.ArrayLike, min_spacing_m: float
) -> tuple[IntArray, IntArray]:
    """Pairs of points closer than ``min_spacing_m`` (KD-tree ``query_pairs``).

    Parameters
    ----------
    x_m, y_m
        Point coordinates in a metric CRS.
    min_spacing_m
        Pairs at a distance strictly below this are returned.

    Returns
    -------
    a, b
        Index arrays with ``a < b``, sorted by ``a`` then ``b``.
    """
    x = np.asarray(x_m, dtype=np.float64)
    y = np.asarray(y_m, dtype=np.float64)
    empty = np.empty(0, dtype=np.int64)
    if x.size < 2 or min_spacing_m <= 0:
        return empty, empty
    xy = np.column_stack([x, y])
    pairs = cKDTree(xy).query_pairs(r=float(min_spacing_m), output_type="ndarray")
    if pairs.size == 0:
        return empty, empty
    pairs = np.sort(pairs.astype(np.int64), axis=1)
    d = np.hypot(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T)
    pairs = pairs[d < min_spacing_m]
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def required_groups_from_labels(
    candidate_unit: Sequence[object] | npt.ArrayLike, units: Iterable[object]
) -> tuple[tuple[IntArray, ...], tuple[str, ...]]:
    """Required groups "one site in each of these units" from a per-candidate unit label.

    Parameters
    ----------
    candidate_unit
        The unit (for example the 街道 name or code) each candidate lies in.
    units
        Units that must receive a site (for example 街道 without a 普惠 facility).

    Returns
    -------
    groups, names
        One candidate-index array per unit (empty when no candidate lies there: solving
        then raises :class:`InfeasibleSitingError` naming the unit) and the unit names.
    """
    labels = pd.Series(np.asarray(candidate_unit, dtype=object)).astype(str)
    names = tuple(dict.fromkeys(str(u) for u in units))
    groups = tuple(np.flatnonzero(labels.to_numpy() == name).astype(np.int64) for name in names)
    return groups, names


def uniform_slots(n_candidates: int, slots_per_site: float) -> FloatArray:
    """The same 托位 count for every candidate site."""
    if slots_per_site < 0 or not math.isfinite(slots_per_site):
        raise InputValidationError("slots_per_site must be finite and >= 0", field="slots_per_site")
    return np.full(int(n_candidates), float(slots_per_site), dtype=np.float64)


def slot_shortfall(
    population: float, existing_slots: float, per_1000: float = SLOTS_PER_1000_TARGET
) -> float:
    """托位 still missing to reach ``per_1000`` per 1,000 residents (0 when met).

    Examples
    --------
    >>> slot_shortfall(100_000, 200)
    250.0
    """
    if population < 0 or existing_slots < 0 or per_1000 < 0:
        raise InputValidationError("population, slots and target must be >= 0")
    return max(0.0, per_1000 * float(population) / 1000.0 - float(existing_slots))
