"""Capacitated maximal covering: children *served within capacity* inside 15 minutes.

The uncapacitated model (:mod:`tuoyu.siting.model`) counts everyone within the walking
threshold of a facility as served, however many they are. Here every facility has a
capacity in 托位 and **one 托位 serves one child**, so a capacity in children equals the
托位 count. The model maximises the number of children (or residents, whatever the
weights are) who are *served within capacity by a facility inside the threshold*.

Model (all on arrays; the GeoDataFrame door is :mod:`tuoyu.siting.capacitated_area`)::

    max  Σ_ij x_ij + Σ_ik e_ik                         children served
    s.t. Σ_j x_ij + Σ_k e_ik ≤ w_i           ∀ i        nobody served twice
         Σ_i x_ij ≤ Σ_s s · z_js             ∀ j        new site j: capacity it opens with
         Σ_i e_ik ≤ cap_k                    ∀ k        existing facility k (always open)
         Σ_s z_js ≤ 1                        ∀ j        one size per site
         Σ_js z_js ≤ p                                 (optional) at most p new sites
         Σ_js s · z_js ≤ B                             (optional) slot budget
         x_ij ≤ min(w_i, s_max) Σ_s z_js               (optional, default) strong linking
         x_ij, e_ik ≥ 0 only where a_ij = 1 (a_ik = 1), z_js ∈ {0, 1}

``i`` demand points with weight ``w_i``, ``j`` candidate sites, ``k`` existing
facilities, ``s`` the sizes a candidate may open with: either one given capacity per
candidate (``capacity``) or a menu such as 30/60/90/120 托位 (``size_menu``) from which
the solver picks one size per opened site. The assignment variables exist only for
covered pairs (the non-zeros of the coverage matrices), and demand points with the same
covering set (new and existing sites) are merged into one class first
(:func:`tuoyu.siting.milp.demand_classes`): an assignment of a class splits back onto its
points in proportion to their weights, so the optimum is unchanged.

Two solvers:

- :func:`solve_capacitated_exact`: the MILP above with HiGHS (``highspy``), warm-started
  from the heuristic, with a time limit and MIP gap;
- :func:`solve_capacitated_greedy`: lazy greedy on the marginal served demand. For a
  fixed set of open sites the served total is a maximum flow on the bipartite network
  source → demand → site → sink (:func:`evaluate_sites`, scipy's
  ``csgraph.maximum_flow``), so the heuristic's reported objective is the exact optimum
  for its chosen set, not an estimate.

Flow resolution: ``maximum_flow`` takes 32-bit integer capacities (int64 input
silently overflows in scipy 1.17), so weights and capacities are scaled by a power of
two ``2**k``, the largest keeping the total demand below ``2**31``, and rounded down.
The flow is then feasible for the real data and below the real maximum by at most
``(number of demand classes + number of sites) / 2**k`` (for 10,000 children: ~1e-5
child per point); :attr:`FlowEvaluation.resolution` reports ``1 / 2**k``.

Examples
--------
Two demand points of 10 children, one candidate covering both with 15 托位:

>>> import numpy as np, scipy.sparse as sp
>>> a = sp.csr_matrix(np.array([[1, 1]], dtype=bool))
>>> problem = CapacitatedProblem(a, np.array([10.0, 10.0]), p=1, capacity=np.array([15.0]))
>>> solve_capacitated_exact(problem).served_total
15.0
>>> solve_capacitated_greedy(problem, lp_bound=False).served_total
15.0
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import maximum_flow

from tuoyu.errors import InputValidationError
from tuoyu.siting.milp import DemandClasses, demand_classes
from tuoyu.siting.model import FloatArray, IntArray, SitingError, SitingProblem

DEFAULT_SIZE_MENU: tuple[float, ...] = (30.0, 60.0, 90.0, 120.0)
"""托位 a new site may open with when the solver sizes it (community 托育点 to centre)."""

STRONG_LINKING_MAX_PAIRS = 50_000
"""Largest number of (new site, demand class) pairs for which the strong linking rows are
added by default: on 10,000 × 1,000 instances (~240,000 pairs) they made the LP take
over 60 s where the model without them solves in ~4 s (HiGHS IPM, 2 cores)."""

_INT32_MAX = 2**31 - 1
_FEASIBLE = 2  # HiGHS kSolutionStatusFeasible


def _coverage(matrix: object, name: str, n_demand: int | None) -> sp.csr_matrix:
    if not sp.issparse(matrix) or len(getattr(matrix, "shape", ())) != 2:
        raise InputValidationError(f"{name} must be a 2-D scipy.sparse matrix", field=name)
    a = sp.csr_matrix(matrix, copy=True)
    a.data = (a.data != 0).astype(np.int8)
    a.eliminate_zeros()
    a.sum_duplicates()
    a.sort_indices()
    if n_demand is not None and a.shape[1] != n_demand:
        raise InputValidationError(
            f"{name} has {a.shape[1]} demand columns but coverage has {n_demand}", field=name
        )
    return a


def _values(value: npt.ArrayLike, name: str, size: int) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape[0] != size:
        raise InputValidationError(f"{name} has {arr.shape[0]} values, expected {size}", field=name)
    bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
    if bad.size:
        raise InputValidationError(
            f"{name}[{int(bad[0])}] = {arr[bad[0]]!r}: values must be finite and >= 0 "
            "(give unknown 托位 a stated default or leave that facility out)",
            field=name,
        )
    return arr


@dataclass(frozen=True)
class CapacitatedProblem:
    """A capacitated maximal covering problem on arrays.

    Parameters
    ----------
    coverage
        Boolean sparse matrix, candidates × demand points: ``a_ij`` true when candidate
        ``j`` reaches demand point ``i`` within the threshold.
    weights
        Demand per point (children, or residents), finite and ≥ 0.
    p
        Largest number of new sites (``None``: no limit on the count).
    capacity
        托位 each candidate would open with (fixed sizes). Give this or ``size_menu``.
    size_menu
        Sizes (托位) the solver may choose from for each opened candidate.
    max_total_slots
        Budget: the new sites open at most this many 托位 in all (``None``: none).
    existing_coverage
        Boolean sparse matrix, existing facilities × demand points (kept open).
    existing_capacity
        托位 of each existing facility (finite ≥ 0; a facility whose 托位 are unknown
        must be given a stated default or left out by the caller).

    Raises
    ------
    InputValidationError
        When shapes or values are inconsistent, when neither or both of ``capacity`` and
        ``size_menu`` are given, or when neither ``p`` nor ``max_total_slots`` limits
        the new sites (names the field).
    """

    coverage: sp.csr_matrix
    weights: FloatArray
    p: int | None = None
    capacity: FloatArray | None = None
    size_menu: tuple[float, ...] | None = None
    max_total_slots: float | None = None
    existing_coverage: sp.csr_matrix | None = None
    existing_capacity: FloatArray | None = None
    _cache: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        a = _coverage(self.coverage, "coverage", None)
        set_(self, "coverage", a)
        n_cand, n_dem = a.shape
        set_(self, "weights", _values(self.weights, "weights", n_dem))
        if self.p is not None:
            if isinstance(self.p, bool) or int(self.p) != self.p or self.p < 0:
                raise InputValidationError(
                    f"p must be a whole number >= 0, got {self.p!r}", field="p"
                )
            set_(self, "p", int(self.p))
        if self.max_total_slots is not None:
            budget = float(self.max_total_slots)
            if not math.isfinite(budget) or budget < 0:
                raise InputValidationError(
                    "max_total_slots must be finite and >= 0", field="max_total_slots"
                )
            set_(self, "max_total_slots", budget)
        if self.p is None and self.max_total_slots is None:
            raise InputValidationError(
                "give p (number of new sites) or max_total_slots (slot budget)", field="p"
            )
        if (self.capacity is None) == (self.size_menu is None):
            raise InputValidationError(
                "give either capacity (托位 per candidate) or size_menu (sizes to choose "
                "from), not both or neither",
                field="capacity",
            )
        if self.capacity is not None:
            set_(self, "capacity", _values(self.capacity, "capacity", n_cand))
        if self.size_menu is not None:
            menu = _values(self.size_menu, "size_menu", len(tuple(self.size_menu)))
            menu = np.unique(menu[menu > 0])
            if menu.size == 0:
                raise InputValidationError("size_menu needs a size > 0", field="size_menu")
            set_(self, "size_menu", tuple(float(s) for s in menu))
        if (self.existing_coverage is None) != (self.existing_capacity is None):
            raise InputValidationError(
                "give both existing_coverage and existing_capacity or neither",
                field="existing_capacity",
            )
        if self.existing_coverage is None:
            set_(self, "existing_coverage", sp.csr_matrix((0, n_dem), dtype=np.int8))
            set_(self, "existing_capacity", np.empty(0, dtype=np.float64))
        else:
            e = _coverage(self.existing_coverage, "existing_coverage", n_dem)
            set_(self, "existing_coverage", e)
            set_(
                self,
                "existing_capacity",
                _values(self.existing_capacity, "existing_capacity", e.shape[0]),  # type: ignore[arg-type]
            )

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
    def n_existing(self) -> int:
        """Number of existing facilities."""
        return int(self.existing_matrix().shape[0])

    @property
    def total_weight(self) -> float:
        """Sum of all demand weights."""
        return float(self.weights.sum())

    def existing_matrix(self) -> sp.csr_matrix:
        """Existing facilities × demand coverage (empty when none were given)."""
        e = self.existing_coverage
        assert e is not None  # normalised in __post_init__
        return e

    def existing_slots(self) -> FloatArray:
        """托位 of each existing facility (empty when none were given)."""
        c = self.existing_capacity
        assert c is not None  # normalised in __post_init__
        return c

    def sizes_of(self, j: int) -> FloatArray:
        """Sizes (托位, ascending, > 0) candidate ``j`` may open with."""
        if self.capacity is not None:
            c = float(self.capacity[j])
            return np.array([c]) if c > 0 else np.empty(0)
        assert self.size_menu is not None
        return np.asarray(self.size_menu, dtype=np.float64)

    def classes(self) -> DemandClasses:
        """Demand merged by identical covering sets over candidates and existing (cached).

        Rows of the class coverage are the candidates, then the existing facilities.
        """
        if "classes" not in self._cache:
            both = sp.vstack([self.coverage, self.existing_matrix()], format="csr")
            self._cache["classes"] = demand_classes(SitingProblem(both, self.weights))
        out = self._cache["classes"]
        assert isinstance(out, DemandClasses)
        return out

    def _rows(self) -> sp.csr_matrix:
        if "rows" not in self._cache:
            self._cache["rows"] = sp.csr_matrix(self.classes().coverage)
        out = self._cache["rows"]
        assert isinstance(out, sp.csr_matrix)
        return out

    def scale(self) -> float:
        """Power of two the flow evaluation multiplies weights and capacities by."""
        total = float(self.classes().weight.sum())
        if total <= 0:
            return 1.0
        return float(2.0 ** math.floor(math.log2(_INT32_MAX / (total * (1 + 1e-9) + 1.0))))

    def flow_tolerance(self, value: float) -> float:
        """How far a max-flow total may sit below the real optimum of its set (rounding),
        plus a relative 1e-7 (the LP solver's own tolerance)."""
        arcs = self.classes().n_classes + self.n_candidates + self.n_existing
        return 1e-7 * max(abs(value), 1.0) + arcs / self.scale()

    def reachable_weight(self) -> float:
        """Demand within reach of some candidate or existing facility."""
        return float(self.classes().weight.sum())

    def catchment_weight(self) -> FloatArray:
        """Demand each candidate, then each existing facility, reaches (cached)."""
        if "catchment" not in self._cache:
            self._cache["catchment"] = np.asarray(
                self._rows() @ self.classes().weight, dtype=np.float64
            ).reshape(-1)
        out = self._cache["catchment"]
        assert isinstance(out, np.ndarray)
        return out

    def capacity_bound(self) -> float:
        """A cheap upper bound on the children served: capacity that can be used.

        Existing facilities serve at most ``min(cap_k, catchment_k)``; new sites at most
        the ``p`` largest ``min(largest size, catchment_j)`` (and at most the slot
        budget); nobody is served twice. It proves optimality at once when capacity,
        not reach, is what limits the answer.
        """
        reach = self.catchment_weight()
        n = self.n_candidates
        existing = float(np.minimum(self.existing_slots(), reach[n:]).sum())
        largest = np.array(
            [self.sizes_of(j)[-1] if self.sizes_of(j).size else 0.0 for j in range(n)]
        )
        if self.max_total_slots is not None:
            largest = np.minimum(largest, self.max_total_slots)
        useful = np.sort(np.minimum(largest, reach[:n]))[::-1]
        new = float(useful[: self.p].sum()) if self.p is not None else float(useful.sum())
        if self.max_total_slots is not None:
            new = min(new, self.max_total_slots)
        return min(existing + new, self.reachable_weight())


@dataclass(frozen=True)
class FlowEvaluation:
    """Children served by a fixed set of open sites (maximum flow).

    Attributes
    ----------
    served_total
        Children served within capacity (new and existing facilities).
    served_by_site
        Children each open candidate serves in the flow, aligned with the ``sites``
        given.
    served_by_existing
        Children each existing facility serves.
    assignment
        Candidates × demand points (CSR), children of point ``i`` served by ``j``.
    existing_assignment
        Existing facilities × demand points (CSR).
    resolution
        Smallest unit of the flow (children); see the module notes.
    """

    served_total: float
    served_by_site: FloatArray
    served_by_existing: FloatArray
    assignment: sp.csr_matrix
    existing_assignment: sp.csr_matrix
    resolution: float


def _class_flow(
    problem: CapacitatedProblem, rows: IntArray, caps: FloatArray, *, value_only: bool = False
) -> tuple[int, sp.coo_matrix]:
    """Integer max flow (scaled) from demand classes to the site ``rows`` of the class
    coverage with capacities ``caps``; returns the flow value and the class × row flow
    (COO over positions in ``rows``)."""
    classes = problem.classes()
    s = problem.scale()
    sub = problem._rows()[rows]
    m = len(rows)
    if sub.nnz == 0:
        return 0, sp.coo_matrix((classes.n_classes, m))
    used = np.unique(sub.indices)
    local = np.searchsorted(used, sub.indices)
    w = np.floor(classes.weight[used] * s).astype(np.int64)
    cap = np.floor(np.minimum(caps * s, _INT32_MAX)).astype(np.int64)
    n_u = used.size
    # Nodes: 0 source, 1..n_u classes, n_u+1..n_u+m sites, n_u+m+1 sink.
    sink = n_u + m + 1
    site_of_nz = np.repeat(np.arange(m), np.diff(sub.indptr))
    src = np.r_[np.zeros(n_u, np.int64), 1 + local, n_u + 1 + np.arange(m)]
    dst = np.r_[1 + np.arange(n_u), n_u + 1 + site_of_nz, np.full(m, sink)]
    val = np.r_[w, w[local], cap]
    graph = sp.csr_array(
        (val.astype(np.int32), (src, dst)), shape=(sink + 1, sink + 1), dtype=np.int32
    )
    result = maximum_flow(graph, 0, sink)
    if value_only:
        return int(result.flow_value), sp.coo_matrix((classes.n_classes, m))
    flow = sp.csr_array(result.flow)
    mid = np.asarray(flow[1 + local, n_u + 1 + site_of_nz]).reshape(-1)
    keep = mid > 0
    out = sp.coo_matrix(
        (mid[keep].astype(np.float64), (used[local[keep]], site_of_nz[keep])),
        shape=(classes.n_classes, m),
    )
    return int(result.flow_value), out


def _flow_value(problem: CapacitatedProblem, rows: IntArray, caps: FloatArray) -> int:
    return _class_flow(problem, rows, caps, value_only=True)[0]


def _disaggregate(
    problem: CapacitatedProblem, class_flow: sp.coo_matrix, n_rows: int
) -> sp.csr_matrix:
    """Spread class × site flows onto demand points in proportion to their weights."""
    classes = problem.classes()
    w = problem.weights
    member = np.flatnonzero(classes.class_of >= 0)
    cls = classes.class_of[member]
    share = np.zeros(problem.n_demand)
    cw = classes.weight[cls]
    share[member] = np.where(cw > 0, w[member] / np.where(cw > 0, cw, 1.0), 0.0)
    # class × point membership matrix, weighted by each point's share of its class.
    spread = sp.csr_matrix(
        (share[member], (cls, member)), shape=(classes.n_classes, problem.n_demand)
    )
    site_by_class = sp.csr_matrix(class_flow).T.tocsr()
    out = sp.csr_matrix(site_by_class @ spread)
    out.eliminate_zeros()
    return out


def _all_rows(problem: CapacitatedProblem, chosen: IntArray) -> IntArray:
    out: IntArray = np.r_[chosen, problem.n_candidates + np.arange(problem.n_existing)].astype(
        np.int64
    )
    return out


def evaluate_sites(
    problem: CapacitatedProblem, chosen: npt.ArrayLike, sizes: npt.ArrayLike
) -> FlowEvaluation:
    """Children served when ``chosen`` candidates open with ``sizes`` 托位 (max flow).

    Existing facilities are always open. The result is the best assignment for this
    set (a maximum flow), exact up to :attr:`FlowEvaluation.resolution`.

    Parameters
    ----------
    problem
        The capacitated problem.
    chosen
        Candidate indices (distinct).
    sizes
        托位 of each chosen site, ≥ 0.

    Returns
    -------
    FlowEvaluation

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> a = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=bool))
    >>> problem = CapacitatedProblem(a, np.array([4.0, 4.0, 4.0]), p=2, size_menu=(5,))
    >>> evaluate_sites(problem, [0, 1], [5, 5]).served_total
    10.0
    """
    idx = np.asarray(chosen, dtype=np.int64).reshape(-1)
    caps = np.asarray(sizes, dtype=np.float64).reshape(-1)
    if idx.shape != caps.shape:
        raise InputValidationError("chosen and sizes must have the same length", field="sizes")
    if idx.size and (idx.min() < 0 or idx.max() >= problem.n_candidates):
        raise InputValidationError("chosen holds an index outside the candidates", field="chosen")
    if np.unique(idx).size != idx.size:
        raise InputValidationError("chosen holds a candidate twice", field="chosen")
    if not np.all(np.isfinite(caps)) or np.any(caps < 0):
        raise InputValidationError("sizes must be finite and >= 0", field="sizes")
    rows = _all_rows(problem, idx)
    all_caps = np.r_[caps, problem.existing_slots()]
    value, class_flow = _class_flow(problem, rows, all_caps)
    s = problem.scale()
    class_flow = sp.coo_matrix(
        (class_flow.data / s, (class_flow.row, class_flow.col)), shape=class_flow.shape
    )
    by_row = np.bincount(class_flow.col, weights=class_flow.data, minlength=rows.size).astype(
        np.float64
    )
    # Place each flow column at its candidate / existing row.
    placed = sp.coo_matrix(
        (class_flow.data, (class_flow.row, rows[class_flow.col])),
        shape=(class_flow.shape[0], problem.n_candidates + problem.n_existing),
    )
    point_flow = _disaggregate(problem, placed, problem.n_candidates + problem.n_existing)
    return FlowEvaluation(
        served_total=value / s,
        served_by_site=by_row[: idx.size],
        served_by_existing=by_row[idx.size :],
        assignment=sp.csr_matrix(point_flow[: problem.n_candidates]),
        existing_assignment=sp.csr_matrix(point_flow[problem.n_candidates :]),
        resolution=1.0 / s,
    )


@dataclass(frozen=True)
class CapacitatedResult:
    """Chosen sites with their sizes, children served, and the solver's status.

    Attributes
    ----------
    chosen
        Candidate indices, ranked by what each adds (largest first, each given the
        ones before it).
    chosen_slots
        托位 each chosen site opens with.
    added_by_site
        Children each site adds to the served total given the sites ranked before it
        (max-flow evaluations); they sum to ``served_total - baseline_served``.
    served_by_site
        Children each site serves in the returned assignment.
    served_total
        Children served within capacity inside the threshold, existing facilities
        included (the objective).
    baseline_served
        Children the existing facilities serve on their own.
    assignment, existing_assignment
        Candidates × demand and existing × demand (CSR): who is served where.
    served_by_existing
        Children each existing facility serves in the assignment.
    upper_bound
        Proven bound on ``served_total`` (``inf`` when none was computed).
    optimal, mip_gap
        Proven optimal; relative gap ``(bound - objective) / objective``.
    solver, status, wall_time_s, notes, timings_s, model_stats
        What ran and how long it took.
    """

    chosen: IntArray
    chosen_slots: FloatArray
    added_by_site: FloatArray
    served_by_site: FloatArray
    served_total: float
    baseline_served: float
    assignment: sp.csr_matrix
    existing_assignment: sp.csr_matrix
    served_by_existing: FloatArray
    upper_bound: float
    optimal: bool
    mip_gap: float | None
    solver: str
    status: str
    wall_time_s: float
    notes: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    model_stats: dict[str, int] = field(default_factory=dict)

    @property
    def total_slots(self) -> float:
        """托位 opened by the new sites."""
        return float(self.chosen_slots.sum())

    @property
    def added_total(self) -> float:
        """Children served beyond what existing facilities serve alone."""
        return self.served_total - self.baseline_served


def _marginal_rank(
    problem: CapacitatedProblem, chosen: IntArray, sizes: FloatArray
) -> tuple[IntArray, FloatArray, FloatArray, float]:
    """Order sites by what each adds given the previous ones (max flow each step).

    Lazy (CELF): a site's gain only shrinks as others are placed before it (the served
    total is submodular in the open capacities), so a stale gain is an upper bound and
    only the top of the queue is re-evaluated. Ties go to the lower index.
    Returns the order, the sizes in that order, the additions and the baseline.
    """
    s = problem.scale()
    existing = problem.n_candidates + np.arange(problem.n_existing)
    ex_caps = problem.existing_slots()
    base = _flow_value(problem, existing, ex_caps)
    current = base
    order: list[int] = []
    gains: list[float] = []
    heap = [(-np.inf, k, -1) for k in range(chosen.size)]
    heapq.heapify(heap)
    while heap:
        neg_gain, k, seen = heapq.heappop(heap)
        if seen != len(order):
            picked = [*order, k]
            v = _flow_value(problem, np.r_[chosen[picked], existing], np.r_[sizes[picked], ex_caps])
            heapq.heappush(heap, (-(v - current), k, len(order)))
            continue
        order.append(k)
        gain = -neg_gain
        gains.append(gain / s)
        current += int(gain)
    o = np.asarray(order, dtype=np.int64)
    return chosen[o], sizes[o], np.asarray(gains, dtype=np.float64), base / s


def _result(
    problem: CapacitatedProblem,
    chosen: IntArray,
    sizes: FloatArray,
    *,
    served_total: float | None,
    assignment: tuple[sp.csr_matrix, sp.csr_matrix] | None,
    upper_bound: float,
    optimal: bool,
    mip_gap: float | None,
    solver: str,
    status: str,
    start: float,
    notes: Sequence[str],
    timings: dict[str, float],
    stats: dict[str, int],
) -> CapacitatedResult:
    keep = sizes > 0
    chosen, sizes = chosen[keep], sizes[keep]
    order, ordered_sizes, gains, base = _marginal_rank(problem, chosen, sizes)
    if assignment is None or served_total is None:
        ev = evaluate_sites(problem, order, ordered_sizes)
        served_total = ev.served_total
        new_a, ex_a = ev.assignment, ev.existing_assignment
    else:
        new_a, ex_a = assignment
    by_site = np.asarray(new_a.sum(axis=1)).reshape(-1)[order]
    by_existing = np.asarray(ex_a.sum(axis=1)).reshape(-1)
    ub = min(upper_bound, problem.reachable_weight())
    ub = max(ub, served_total)
    gap = mip_gap
    if gap is None and math.isfinite(ub):
        gap = max(0.0, ub - served_total) / max(abs(served_total), 1e-12)
    return CapacitatedResult(
        chosen=order,
        chosen_slots=ordered_sizes,
        added_by_site=gains,
        served_by_site=by_site,
        served_total=float(served_total),
        baseline_served=base,
        assignment=new_a,
        existing_assignment=ex_a,
        served_by_existing=by_existing,
        upper_bound=float(ub),
        optimal=optimal,
        mip_gap=gap,
        solver=solver,
        status=status,
        wall_time_s=time.perf_counter() - start,
        notes=tuple(notes),
        timings_s=timings,
        model_stats=stats,
    )


# ----------------------------------------------------------------------------- greedy
def _best_size(
    problem: CapacitatedProblem, j: int, current: float, headroom: float, budget_left: float
) -> tuple[tuple[float, float], float]:
    """Best size for candidate ``j`` given its headroom: ``((score, gain), size)``.

    With a fixed current size ``c0`` the served total is ``min(F_inf, K + c)`` in the
    site's capacity ``c`` (a max flow is a minimum over cuts, each linear in ``c`` with
    slope 0 or 1), so upgrading to ``s`` adds ``min(s - c0, headroom)``.
    """
    sizes = problem.sizes_of(j)
    steps = sizes[sizes > current] - current
    steps = steps[steps <= budget_left + 1e-9]
    if steps.size == 0 or headroom <= 0:
        return (0.0, 0.0), 0.0
    gains = np.minimum(steps, headroom)
    if problem.max_total_slots is None:
        # Most served; among equals the smallest size.
        k = int(np.flatnonzero(gains >= gains.max() - 1e-12)[0])
        return (float(gains[k]), float(gains[k])), current + float(steps[k])
    ratio = gains / steps
    best = ratio.max()
    tied = np.flatnonzero(ratio >= best - 1e-12)
    k = int(tied[np.argmax(gains[tied])])
    return (float(ratio[k]), float(gains[k])), current + float(steps[k])


def _greedy_sizes(problem: CapacitatedProblem) -> tuple[FloatArray, int]:
    """Lazy greedy over (candidate, size) on exact max-flow marginals; returns the size
    of every candidate (0 = closed) and the number of flows computed."""
    n = problem.n_candidates
    s = problem.scale()
    rows_csr = problem._rows()
    classes = problem.classes()
    existing = n + np.arange(problem.n_existing)
    ex_caps = problem.existing_slots()
    size = np.zeros(n)
    p_left = problem.p if problem.p is not None else n
    budget_left = problem.max_total_slots if problem.max_total_slots is not None else np.inf
    reach = np.asarray(rows_csr[:n] @ classes.weight).reshape(-1)  # headroom upper bound
    flows = 1
    value = _flow_value(problem, existing, ex_caps)

    def state() -> tuple[IntArray, FloatArray]:
        open_ = np.flatnonzero(size > 0)
        return np.r_[open_, existing], np.r_[size[open_], ex_caps]

    def headroom(j: int) -> float:
        nonlocal flows
        rows, caps = state()
        if size[j] > 0:
            caps = caps.copy()
            caps[int(np.searchsorted(rows[: rows.size - existing.size], j))] = reach[j] + 1.0
        else:
            rows, caps = np.r_[j, rows], np.r_[reach[j] + 1.0, caps]
        flows += 1
        return (_flow_value(problem, rows, caps) - value) / s

    stamp = 0
    heap: list[tuple[float, float, int, int]] = []
    for j in range(n):
        (score, gain), _ = _best_size(problem, j, 0.0, float(reach[j]), float(budget_left))
        if gain > 0:
            heap.append((-score, -gain, j, -1))  # stale: an upper bound
    heapq.heapify(heap)
    known: dict[int, float] = {}
    while heap:
        _, _, j, seen = heapq.heappop(heap)
        is_new = size[j] == 0
        if is_new and p_left <= 0:
            continue  # no new site can open any more; upgrades may still
        if seen != stamp:
            h = headroom(j)
            known[j] = h
            (score, gain), _ = _best_size(problem, j, float(size[j]), h, float(budget_left))
            if gain > 1e-12:
                heapq.heappush(heap, (-score, -gain, j, stamp))
            continue
        (score, gain), new_size = _best_size(
            problem, j, float(size[j]), known[j], float(budget_left)
        )
        if gain <= 1e-12:
            continue
        budget_left -= new_size - size[j]
        p_left -= int(is_new)
        size[j] = new_size
        rows, caps = state()
        value = _flow_value(problem, rows, caps)
        flows += 1
        stamp += 1
        known[j] -= gain
        if known[j] > 1e-12:
            (score, gain), _ = _best_size(problem, j, float(size[j]), known[j], float(budget_left))
            if gain > 1e-12:
                heapq.heappush(heap, (-score, -gain, j, stamp))
    return _trim(problem, size), flows


def _trim(problem: CapacitatedProblem, size: FloatArray) -> FloatArray:
    """Shrink each open site to the smallest allowed size that serves as many children.

    With the others fixed, the total is ``min(F_inf, K + c)``: the site needs only
    ``c ≥ F - K`` where ``K`` is the total without it (its marginal).
    """
    out = size.copy()
    n = problem.n_candidates
    existing = n + np.arange(problem.n_existing)
    ex_caps = problem.existing_slots()
    s = problem.scale()

    def value(sz: FloatArray) -> int:
        open_ = np.flatnonzero(sz > 0)
        return _flow_value(problem, np.r_[open_, existing], np.r_[sz[open_], ex_caps])

    total = value(out)
    for j in np.flatnonzero(out > 0):
        without = out.copy()
        without[j] = 0.0
        need = (total - value(without)) / s
        sizes = problem.sizes_of(int(j))
        fits = sizes[(sizes >= need - 1e-9) & (sizes <= out[j])]
        smaller = float(fits[0]) if need > 1e-12 and fits.size else 0.0
        trial = out.copy()
        trial[j] = smaller
        if value(trial) >= total:  # guards the rounding of the scaled flow
            out = trial
    return out


def solve_capacitated_greedy(
    problem: CapacitatedProblem, *, lp_bound: bool = True, time_limit_s: float = 60.0
) -> CapacitatedResult:
    """Lazy greedy on marginal served children, each marginal an exact max flow.

    At each step the (candidate, size) adding the most children is opened (with a slot
    budget: the most children per 托位, ties to the larger gain); stale gains are upper
    bounds because the served total is submodular in the sites' capacities, so only
    the top of the queue is re-evaluated. Sites are then shrunk to the smallest menu
    size that serves as many. The reported objective is the maximum flow of the chosen
    set (exact for that set).

    Parameters
    ----------
    problem
        The capacitated problem.
    lp_bound
        Also solve the LP relaxation (HiGHS) for an upper bound and the gap.
    time_limit_s
        Time limit of the LP bound.

    Returns
    -------
    CapacitatedResult
        ``optimal`` only when the bound proves it.
    """
    start = time.perf_counter()
    sizes, flows = _greedy_sizes(problem)
    timings = {"greedy": time.perf_counter() - start}
    chosen = np.flatnonzero(sizes > 0).astype(np.int64)
    notes: list[str] = []
    bound = problem.capacity_bound()
    stats: dict[str, int] = {"max_flows": flows}
    value = evaluate_sites(problem, chosen, sizes[chosen]).served_total
    if lp_bound and bound - value > problem.flow_tolerance(value):
        t0 = time.perf_counter()
        model = _build_model(problem, strong_linking=None)
        h = model.to_highs(time_limit_s, 0.0, relax=True)
        # Interior point: these degenerate LPs took HiGHS's dual simplex 6× longer.
        h.setOptionValue("solver", "ipm")
        h.run()
        if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            lp = float(h.getInfo().objective_function_value) * (1 + 1e-9) + 1e-7
            bound = min(bound, lp)
        else:
            notes.append("LP bound not solved in time")
        timings["lp_bound"] = time.perf_counter() - t0
        stats.update(model.stats())
    result = _result(
        problem,
        chosen,
        sizes[chosen],
        served_total=None,
        assignment=None,
        upper_bound=bound,
        optimal=False,
        mip_gap=None,
        solver="greedy",
        status="greedy (max-flow marginals)",
        start=start,
        notes=notes,
        timings=timings,
        stats=stats,
    )
    if result.upper_bound - result.served_total <= problem.flow_tolerance(result.served_total):
        met = "LP bound met" if "lp_bound" in timings else "capacity bound met"
        return dataclasses.replace(result, optimal=True, status=f"{result.status}, {met}")
    return result


# ------------------------------------------------------------------------------ exact
@dataclass
class _Model:
    """Column-wise MILP arrays for ``Highs.passModel``."""

    n_z: int
    opt_site: IntArray
    opt_size: FloatArray
    pair_row: IntArray  # class-coverage row (candidate, then existing) of each x
    pair_class: IntArray
    a: sp.csc_matrix
    row_lower: FloatArray
    row_upper: FloatArray
    col_upper: FloatArray

    def stats(self) -> dict[str, int]:
        return {
            "option_columns": int(self.n_z),
            "assignment_columns": int(self.pair_row.size),
            "rows": int(self.a.shape[0]),
            "nonzeros": int(self.a.nnz),
        }

    def to_highs(self, time_limit_s: float, mip_gap: float, *, relax: bool) -> highspy.Highs:
        n_col = int(self.a.shape[1])
        h = highspy.Highs()  # type: ignore[no-untyped-call]
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(max(time_limit_s, 0.01)))
        h.setOptionValue("random_seed", 0)
        if not relax:
            h.setOptionValue("mip_rel_gap", float(mip_gap))
        integrality = np.zeros(n_col, dtype=np.int32)
        if not relax:
            integrality[: self.n_z] = int(highspy.HighsVarType.kInteger)
        cost = np.r_[np.zeros(self.n_z), np.ones(self.pair_row.size)]
        status = h.passModel(
            n_col,
            int(self.a.shape[0]),
            int(self.a.nnz),
            int(highspy.MatrixFormat.kColwise),
            int(highspy.ObjSense.kMaximize),
            0.0,
            np.ascontiguousarray(cost),
            np.zeros(n_col),
            np.ascontiguousarray(self.col_upper),
            np.ascontiguousarray(self.row_lower),
            np.ascontiguousarray(self.row_upper),
            self.a.indptr[:-1].astype(np.int32),
            self.a.indices.astype(np.int32),
            self.a.data.astype(np.float64),
            integrality,
        )
        if status == highspy.HighsStatus.kError:
            raise SitingError("HiGHS refused the capacitated siting model (passModel failed)")
        return h


def _build_model(problem: CapacitatedProblem, *, strong_linking: bool | None) -> _Model:
    """Sparse MILP arrays: z (one per candidate and size), then x (one per covered pair)."""
    classes = problem.classes()
    rows = problem._rows().tocoo()
    n = problem.n_candidates
    reach = problem.catchment_weight()
    opt_site_l: list[IntArray] = []
    opt_size_l: list[FloatArray] = []
    useful = np.unique(rows.row[rows.row < n])
    for j in useful:
        sz = problem.sizes_of(int(j))
        if problem.max_total_slots is not None:
            sz = sz[sz <= problem.max_total_slots + 1e-9]
        opt_site_l.append(np.full(sz.size, j, dtype=np.int64))
        opt_size_l.append(sz)
    opt_site = np.concatenate(opt_site_l) if opt_site_l else np.empty(0, np.int64)
    opt_size = np.concatenate(opt_size_l) if opt_size_l else np.empty(0)
    has_opt = np.zeros(n, dtype=bool)
    has_opt[opt_site] = True
    # Pairs to sites that can never open are dropped (existing ones always stay).
    pair_ok = (rows.row >= n) | has_opt[np.minimum(rows.row, n - 1)] if n else rows.row >= n
    pair_row = rows.row[pair_ok].astype(np.int64)
    pair_class = rows.col[pair_ok].astype(np.int64)
    n_z, n_x = opt_site.size, pair_row.size
    max_size = np.zeros(n)
    np.maximum.at(max_size, opt_site, opt_size)

    blocks: list[sp.coo_matrix] = []
    lo: list[FloatArray] = []
    hi: list[FloatArray] = []
    n_col = n_z + n_x

    def add(
        r: npt.ArrayLike,
        c: npt.ArrayLike,
        v: npt.ArrayLike,
        n_rows: int,
        lo_: npt.ArrayLike,
        hi_: npt.ArrayLike,
    ) -> None:
        blocks.append(sp.coo_matrix((v, (r, c)), shape=(n_rows, n_col)))
        lo.append(np.broadcast_to(np.asarray(lo_, dtype=np.float64), n_rows).copy())
        hi.append(np.broadcast_to(np.asarray(hi_, dtype=np.float64), n_rows).copy())

    xcol = n_z + np.arange(n_x)
    # Demand: Σ x over a class ≤ its weight.
    add(pair_class, xcol, np.ones(n_x), classes.n_classes, -np.inf, classes.weight)
    # New-site capacity: Σ x_j − Σ s z_js ≤ 0 (rows indexed by candidate).
    is_new = pair_row < n
    cand_rows = np.unique(opt_site)
    r_of = np.full(n, -1, dtype=np.int64)
    r_of[cand_rows] = np.arange(cand_rows.size)
    add(
        np.r_[r_of[pair_row[is_new]], r_of[opt_site]],
        np.r_[xcol[is_new], np.arange(n_z)],
        # A site serves at most its catchment: min(s, R_j) is a valid, tighter coefficient.
        np.r_[np.ones(int(is_new.sum())), -np.minimum(opt_size, reach[opt_site])],
        cand_rows.size,
        -np.inf,
        0.0,
    )
    # Existing capacity.
    ex = ~is_new
    add(
        pair_row[ex] - n,
        xcol[ex],
        np.ones(int(ex.sum())),
        problem.n_existing,
        -np.inf,
        problem.existing_slots(),
    )
    # One size per site.
    add(r_of[opt_site], np.arange(n_z), np.ones(n_z), cand_rows.size, -np.inf, 1.0)
    if problem.p is not None:
        add(np.zeros(n_z, np.int64), np.arange(n_z), np.ones(n_z), 1, -np.inf, problem.p)
    if problem.max_total_slots is not None:
        add(np.zeros(n_z, np.int64), np.arange(n_z), opt_size, 1, -np.inf, problem.max_total_slots)
    col_upper = np.r_[np.ones(n_z), classes.weight[pair_class]]
    col_upper[n_z:][is_new] = np.minimum(col_upper[n_z:][is_new], max_size[pair_row[is_new]])
    if strong_linking is None:
        strong_linking = int(is_new.sum()) <= STRONG_LINKING_MAX_PAIRS
    if strong_linking and n_z:
        # x_jg ≤ u_jg Σ_s z_js: the LP cannot spread a site's capacity thinly over many
        # fractional openings (the classic strengthening of capacitated location).
        k = np.flatnonzero(is_new)
        u = col_upper[n_z + k]
        z_start = np.searchsorted(opt_site, pair_row[k], side="left")
        z_end = np.searchsorted(opt_site, pair_row[k], side="right")
        counts = z_end - z_start
        rr = np.r_[np.arange(k.size), np.repeat(np.arange(k.size), counts)]
        zc = (
            np.concatenate([np.arange(a, b) for a, b in zip(z_start, z_end, strict=True)])
            if k.size
            else np.empty(0, np.int64)
        )
        cc = np.r_[xcol[k], zc]
        vv = np.r_[np.ones(k.size), -np.repeat(u, counts)]
        add(rr, cc, vv, k.size, -np.inf, 0.0)
    a = sp.vstack(blocks, format="csc") if blocks else sp.csc_matrix((0, n_col))
    a.sum_duplicates()
    a.sort_indices()
    return _Model(
        n_z,
        opt_site,
        opt_size,
        pair_row,
        pair_class,
        sp.csc_matrix(a),
        np.concatenate(lo),
        np.concatenate(hi),
        col_upper,
    )


def _warm(h: highspy.Highs, model: _Model, problem: CapacitatedProblem, sizes: FloatArray) -> bool:
    """Start HiGHS from a heuristic answer: its options and its max-flow assignment."""
    n = problem.n_candidates
    z = np.zeros(model.n_z)
    for k in range(model.n_z):
        if sizes[model.opt_site[k]] == model.opt_size[k]:
            z[k] = 1.0
    open_ = np.flatnonzero(sizes > 0)
    rows = _all_rows(problem, open_)
    _, class_flow = _class_flow(problem, rows, np.r_[sizes[open_], problem.existing_slots()])
    s = problem.scale()
    flow = sp.csr_matrix(
        (class_flow.data / s, (rows[class_flow.col], class_flow.row)),
        shape=(n + problem.n_existing, problem.classes().n_classes),
    )
    x = np.asarray(flow[model.pair_row, model.pair_class]).reshape(-1)
    sol = highspy.HighsSolution()
    sol.col_value = np.r_[z, np.minimum(x, model.col_upper[model.n_z :])].tolist()
    sol.value_valid = True
    return bool(h.setSolution(sol) != highspy.HighsStatus.kError)


def _fixed_options(
    h: highspy.Highs, model: _Model, sizes: FloatArray, time_limit_s: float
) -> tuple[FloatArray, float]:
    """Best assignment with every option fixed to ``sizes`` (the MILP becomes an LP)."""
    z = (sizes[model.opt_site] == model.opt_size).astype(np.float64)
    idx = np.arange(model.n_z, dtype=np.int32)
    if model.n_z:
        h.changeColsIntegrality(model.n_z, idx, np.zeros(model.n_z, dtype=np.uint8))
        h.changeColsBounds(model.n_z, idx, z, z)
    h.setOptionValue("time_limit", float(max(time_limit_s, 1.0)))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise SitingError(
            "HiGHS did not solve the assignment of the chosen sites "
            f"({h.modelStatusToString(h.getModelStatus())})"
        )
    col = np.asarray(h.getSolution().col_value, dtype=np.float64)
    x = np.maximum(col[model.n_z :], 0.0)
    return x, float(x.sum())


def solve_capacitated_exact(
    problem: CapacitatedProblem,
    time_limit_s: float = 60.0,
    mip_gap: float = 0.0,
    *,
    warm_start: bool = True,
    strong_linking: bool | None = None,
) -> CapacitatedResult:
    """The capacitated maximal covering MILP, solved by HiGHS.

    Parameters
    ----------
    problem
        The capacitated problem.
    time_limit_s
        Wall-time budget (heuristic warm start included); on reaching it the best answer
        found is returned with ``optimal=False`` and the gap.
    mip_gap
        Relative gap at which HiGHS may stop (0: prove optimality).
    warm_start
        Start from :func:`solve_capacitated_greedy`'s answer (never worse than it).
    strong_linking
        Add ``x_ij ≤ u_ij Σ_s z_js`` rows (tighter LP bound, larger model); ``None``:
        when there are at most :data:`STRONG_LINKING_MAX_PAIRS` new pairs.

    Returns
    -------
    CapacitatedResult
        Ranked sites with their sizes, served totals, the assignment, optimal flag, MIP
        gap, bound and wall time.

    Raises
    ------
    InputValidationError
        For a negative time limit or gap.
    SitingError
        When HiGHS stops without any feasible answer.
    """
    start = time.perf_counter()
    if not (time_limit_s > 0 and math.isfinite(time_limit_s)):
        raise InputValidationError("time_limit_s must be finite and > 0", field="time_limit_s")
    if not (0 <= mip_gap < 1):
        raise InputValidationError("mip_gap must be in [0, 1)", field="mip_gap")
    timings: dict[str, float] = {}
    greedy_sizes: FloatArray | None = None
    greedy: CapacitatedResult | None = None
    if warm_start:
        greedy = solve_capacitated_greedy(problem, lp_bound=True, time_limit_s=time_limit_s)
        timings.update({f"warm_{k}": v for k, v in greedy.timings_s.items()})
        if greedy.optimal:
            # The heuristic met a bound (capacity or LP relaxation): no MILP needed.
            return dataclasses.replace(
                greedy,
                solver="exact",
                status="Optimal (" + greedy.status.split(", ")[-1] + ")",
                wall_time_s=time.perf_counter() - start,
                timings_s=timings,
            )
        greedy_sizes = np.zeros(problem.n_candidates)
        greedy_sizes[greedy.chosen] = greedy.chosen_slots
    t0 = time.perf_counter()
    model = _build_model(problem, strong_linking=strong_linking)
    left = time_limit_s - (time.perf_counter() - start)
    h = model.to_highs(left, mip_gap, relax=False)
    used_warm = False
    if greedy_sizes is not None and model.n_z:
        used_warm = _warm(h, model, problem, greedy_sizes)
    timings["build"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    h.run()
    timings["solve"] = time.perf_counter() - t0
    status = h.getModelStatus()
    text = h.modelStatusToString(status)
    info = h.getInfo()
    n = problem.n_candidates
    stats = {**model.stats(), "warm_start": int(used_warm)}
    if status != highspy.HighsModelStatus.kOptimal and info.primal_solution_status != _FEASIBLE:
        raise SitingError(
            f"HiGHS found no feasible choice of capacitated sites and stopped with status "
            f"'{text}' after {timings['solve']:.1f} s (time limit {time_limit_s:g} s); "
            "raise the time limit or use solve_capacitated_greedy"
        )
    col = np.asarray(h.getSolution().col_value, dtype=np.float64)
    z = col[: model.n_z] > 0.5
    sizes = np.zeros(n)
    sizes[model.opt_site[z]] = model.opt_size[z]
    x = np.maximum(col[model.n_z :], 0.0)
    optimal = status == highspy.HighsModelStatus.kOptimal
    objective = float(x.sum())
    bound = float(info.mip_dual_bound) if math.isfinite(info.mip_dual_bound) else math.inf
    trimmed = _trim(problem, sizes)
    if not np.array_equal(trimmed, sizes):
        # HiGHS is indifferent to sizes that serve nobody more: shrink them, then the
        # assignment of the shrunk set by the same model with the options fixed (an LP).
        t0 = time.perf_counter()
        x, objective = _fixed_options(h, model, trimmed, time_limit_s)
        sizes = trimmed
        timings["trim"] = time.perf_counter() - t0
    chosen = np.flatnonzero(sizes > 0).astype(np.int64)
    # Disaggregate the class assignment onto demand points.
    keep = x > 0
    class_flow = sp.coo_matrix(
        (x[keep], (model.pair_class[keep], model.pair_row[keep])),
        shape=(problem.classes().n_classes, n + problem.n_existing),
    )
    point_flow = _disaggregate(problem, class_flow, n + problem.n_existing)
    notes = [] if optimal else [f"HiGHS stopped with status '{text}' before proving optimality"]
    if greedy is not None:
        bound = min(bound, greedy.upper_bound)  # the LP bound of the warm start holds too
    gap = float(info.mip_gap) if optimal and math.isfinite(info.mip_gap) else None
    return _result(
        problem,
        chosen,
        sizes[chosen],
        served_total=objective,
        assignment=(
            sp.csr_matrix(point_flow[:n]),
            sp.csr_matrix(point_flow[n:]),
        ),
        upper_bound=bound,
        optimal=optimal,
        mip_gap=gap,
        solver="exact",
        status=text,
        start=start,
        notes=notes,
        timings=timings,
        stats=stats,
    )
