"""Capacity-aware access: the two-step floating catchment area method (2SFCA).

GUIDE §3. With ``W`` the facility × point weight matrix (1 inside the catchment, or a
Gaussian distance decay), ``S_j`` the slots of facility *j* and ``D_i`` the demand
(estimated under-3 children) at population point *i*:

* step 1, per facility: ``R_j = S_j / Σ_i W_ji · D_i``  (slots per child in its catchment)
* step 2, per point:    ``A_i = Σ_j W_ji · R_j``        (slots per child within reach)

Gaussian decay (Dai 2010, the form used by ``access`` / PySAL), for a walking distance
``d ≤ d0``::

    G(d) = (exp(-½ (d/d0)²) − exp(-½)) / (1 − exp(-½))     and G(d) = 0 for d > d0,

so ``G(0) = 1`` and ``G(d0) = 0``. Without decay every pair within the cut-off weighs 1.

The reach matrix comes from the reach engine as a ``scipy.sparse`` CSR matrix (facilities
× points) whose stored value is the walking distance in metres **plus 1e-9**, so a
distance of 0 is representable; a missing entry means "not within the cut-off".

Unknowns are never taken as 0: a facility with unknown slots is excluded (counted in
``excluded_slots_unknown``, and the access values it would feed are a lower bound); a
point with unknown demand makes ``R_j`` of every facility that reaches it unknown, and
so ``A_i`` of every point those facilities reach. A facility whose catchment holds no
demand gets ``R_j = NaN`` and adds nothing to ``A_i`` (nobody with demand reaches it;
counted in ``facilities_without_demand``).

Hand-written on ``scipy.sparse`` rather than using PySAL ``access``: that package is not a
dependency and wants dense cost tables in DataFrames; the two weighted sums below are the
whole method.

The sums do not depend on the order of facilities or points (nor on how a batch run split
or reassembled the reach matrix): each facility's and each point's terms are sorted by
value before they are added (:func:`group_sums`), so the same inputs in any order give
bit-identical ``R_j`` and ``A_i``. A sparse matrix-vector product adds the terms in
storage order, and floating-point addition is not associative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from tuoyu.errors import InputValidationError

DISTANCE_OFFSET_M = 1e-9
"""Added to every stored walking distance by the reach engine (so 0 m is representable)."""

_EXP_HALF = float(np.exp(-0.5))


def gaussian_decay(distance_m: npt.ArrayLike, d0_m: float) -> npt.NDArray[np.float64]:
    """Gaussian distance-decay weight ``G(d)`` (1 at 0 m, 0 at and beyond ``d0_m``).

    Examples
    --------
    >>> gaussian_decay([0.0, 1000.0, 2000.0], 1000.0).round(6).tolist()
    [1.0, 0.0, 0.0]
    """
    if not d0_m > 0:
        raise InputValidationError(f"decay distance d0 must be > 0 m, got {d0_m}")
    d = np.asarray(distance_m, dtype=float)
    g = (np.exp(-0.5 * (d / d0_m) ** 2) - _EXP_HALF) / (1.0 - _EXP_HALF)
    return np.where(d <= d0_m, np.clip(g, 0.0, 1.0), 0.0)


@dataclass(frozen=True)
class TwoStepResult:
    """Result of :func:`two_step_fca`.

    Attributes
    ----------
    access
        ``A_i`` per population point (slots per child within reach), shape (P,); NaN
        where unknown.
    ratio
        ``R_j`` per facility, shape (F,); NaN for excluded facilities, facilities without
        demand in their catchment and facilities whose catchment demand is unknown.
    excluded_slots_unknown
        Facilities left out because their slots are unknown.
    facilities_without_demand
        Facilities whose catchment holds no demand.
    points_demand_unknown
        Points with unknown demand.
    decay_d0_m
        The Gaussian decay distance, ``None`` for a flat catchment.
    """

    access: npt.NDArray[np.float64]
    ratio: npt.NDArray[np.float64]
    excluded_slots_unknown: int
    facilities_without_demand: int
    points_demand_unknown: int
    decay_d0_m: float | None


def group_sums(
    groups: npt.ArrayLike, values: npt.ArrayLike, n_groups: int
) -> npt.NDArray[np.float64]:
    """Sum of ``values`` per group, independent of the order of the entries.

    The entries are sorted by group, then by value, and each group's run is added by
    :func:`numpy.add.reduceat`; the sum of a group therefore depends only on the values
    it holds, never on the order they came in (entries equal in group and value are
    interchangeable). Sorting small terms first also loses less precision.

    Parameters
    ----------
    groups
        Group index per entry in ``0..n_groups-1``.
    values
        Value per entry (finite).
    n_groups
        Number of groups; a group without entries sums to 0.

    Returns
    -------
    numpy.ndarray
        Shape (n_groups,).

    Examples
    --------
    >>> v = [1e16, 1.0, -1e16, 1.0]
    >>> group_sums([0, 0, 0, 0], v, 1).tolist() == group_sums([0, 0, 0, 0], v[::-1], 1).tolist()
    True
    """
    g = np.asarray(groups, dtype=np.int64).ravel()
    v = np.asarray(values, dtype=float).ravel()
    out = np.zeros(n_groups, dtype=float)
    if v.size == 0:
        return out
    # one int64 key per entry: group, then rank of the value (entries of equal value may
    # take either rank: they are interchangeable); cheaper than a two-key lexsort
    rank = np.empty(v.size, dtype=np.int64)
    rank[np.argsort(v)] = np.arange(v.size, dtype=np.int64)
    order = np.argsort(g * v.size + rank)
    g, v = g[order], v[order]
    starts = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
    out[g[starts]] = np.add.reduceat(v, starts)
    return out


def _weights(reach: sp.csr_matrix, decay_d0_m: float | None) -> sp.csr_matrix:
    w = reach.copy().astype(float)
    distance_m = np.maximum(w.data - DISTANCE_OFFSET_M, 0.0)
    w.data = (
        np.ones_like(distance_m) if decay_d0_m is None else gaussian_decay(distance_m, decay_d0_m)
    )
    w.eliminate_zeros()
    return w


def two_step_fca(
    reach: sp.spmatrix | sp.sparray,
    slots: npt.ArrayLike,
    demand: npt.ArrayLike,
    *,
    decay_d0_m: float | None = None,
) -> TwoStepResult:
    """2SFCA on arrays (the pure door).

    Parameters
    ----------
    reach
        Facilities × points sparse matrix; stored value = walking distance (m) + 1e-9.
    slots
        Slots per facility, shape (F,); NaN = unknown (the facility is excluded).
    demand
        Demand per point (estimated under-3 children), shape (P,); NaN = unknown.
    decay_d0_m
        Gaussian decay distance in metres (usually the 15-minute distance); ``None``
        weighs every reachable pair 1.

    Returns
    -------
    TwoStepResult

    Raises
    ------
    InputValidationError
        Shapes disagree, negative slots or demand, or non-positive stored distances.

    Examples
    --------
    One facility of 10 slots reaching two points with 4 and 1 children:

    >>> import scipy.sparse as sp
    >>> m = sp.csr_matrix(np.array([[100.0 + 1e-9, 300.0 + 1e-9]]))
    >>> two_step_fca(m, [10.0], [4.0, 1.0]).access.tolist()
    [2.0, 2.0]
    """
    matrix = sp.csr_matrix(reach)
    s = np.asarray(slots, dtype=float).ravel()
    d = np.asarray(demand, dtype=float).ravel()
    n_fac, n_pts = matrix.shape
    if s.shape[0] != n_fac or d.shape[0] != n_pts:
        raise InputValidationError(
            f"reach matrix is {n_fac} facilities × {n_pts} points but got {s.shape[0]} slot "
            f"values and {d.shape[0]} demand values",
            field="reach_matrix",
        )
    if np.any(s[~np.isnan(s)] < 0):
        raise InputValidationError("slots must be ≥ 0", field="slots")
    if np.any(d[~np.isnan(d)] < 0):
        raise InputValidationError("demand must be ≥ 0", field="population_under3")
    if matrix.nnz and not np.all(matrix.data > 0):
        raise InputValidationError(
            "reach matrix values must be walking distance + 1e-9 (> 0)", field="reach_matrix"
        )

    w = _weights(matrix, decay_d0_m)
    slots_unknown = np.isnan(s)
    demand_unknown = np.isnan(d)
    # one entry per reachable (facility, point) pair; sums go through group_sums so that
    # they do not depend on the order of facilities, points or stored entries
    fac = np.repeat(np.arange(n_fac, dtype=np.int64), np.diff(w.indptr))
    pts = w.indices.astype(np.int64)

    # Step 1: R_j = S_j / Σ_i W_ji D_i; unknown when any reached point's demand is unknown.
    catchment_demand = group_sums(fac, w.data * np.where(demand_unknown, 0.0, d)[pts], n_fac)
    catchment_unknown = np.bincount(fac[demand_unknown[pts]], minlength=n_fac) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(catchment_demand > 0, s / catchment_demand, np.nan)
    no_demand = (catchment_demand <= 0) & ~catchment_unknown & ~slots_unknown
    ratio[slots_unknown | catchment_unknown] = np.nan

    # Step 2: A_i = Σ_j W_ji R_j. Facilities without demand add nothing; unknown ratios
    # (unknown catchment demand) make A_i unknown; excluded facilities add nothing.
    ratio_unknown = catchment_unknown & ~slots_unknown
    access = group_sums(pts, w.data * np.where(np.isnan(ratio), 0.0, ratio)[fac], n_pts)
    access_unknown = np.bincount(pts[ratio_unknown[fac]], minlength=n_pts) > 0
    access = np.where(access_unknown, np.nan, access)

    return TwoStepResult(
        access=np.asarray(access, dtype=float),
        ratio=ratio,
        excluded_slots_unknown=int(slots_unknown.sum()),
        facilities_without_demand=int(no_demand.sum()),
        points_demand_unknown=int(demand_unknown.sum()),
        decay_d0_m=decay_d0_m,
    )


def unit_mean_access(
    access: npt.ArrayLike,
    weights: npt.ArrayLike,
    groups: npt.ArrayLike,
    n_groups: int,
) -> npt.NDArray[np.float64]:
    """Weighted mean of point access per group (population-weighted per unit).

    Parameters
    ----------
    access
        ``A_i`` per point (NaN = unknown).
    weights
        Weight per point (residents); NaN = unknown.
    groups
        Group index per point in ``0..n_groups-1``; ``-1`` = no group (ignored).
    n_groups
        Number of groups.

    Returns
    -------
    numpy.ndarray
        Shape (n_groups,); NaN for a group with no weight or with any unknown access or
        weight (unknowns are not averaged away). Independent of the order of the points
        (:func:`group_sums`).
    """
    a = np.asarray(access, dtype=float)
    w = np.asarray(weights, dtype=float)
    g = np.asarray(groups, dtype=np.int64)
    keep = g >= 0
    a, w, g = a[keep], w[keep], g[keep]
    unknown = np.isnan(a) | np.isnan(w)
    num = group_sums(g, np.where(unknown, 0.0, a * w), n_groups)
    den = group_sums(g, np.where(unknown, 0.0, w), n_groups)
    bad = np.bincount(g[unknown], minlength=n_groups) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((den > 0) & ~bad, num / den, np.nan)
    return np.asarray(out, dtype=float)


def two_step_fca_frame(
    facilities: pd.DataFrame,
    population: pd.DataFrame,
    reach: sp.spmatrix | sp.sparray,
    *,
    decay_d0_m: float | None = None,
    slots_column: str = "slots",
    demand_column: str = "population_under3",
) -> tuple[pd.Series, TwoStepResult]:
    """2SFCA on the facility and population layers (the GeoDataFrame door).

    The reach matrix rows follow ``facilities`` order and its columns ``population`` order.

    Returns
    -------
    (pandas.Series, TwoStepResult)
        ``A_i`` on ``population``'s index (name ``access_2sfca``, float with NaN), and the
        full result with the counts.
    """
    for frame, column, what in (
        (facilities, slots_column, "facilities"),
        (population, demand_column, "population points"),
    ):
        if column not in frame.columns:
            raise InputValidationError(f"{what} have no column '{column}'", field=column)
    slots = pd.to_numeric(facilities[slots_column], errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    demand = pd.to_numeric(population[demand_column], errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    result = two_step_fca(reach, slots, demand, decay_d0_m=decay_d0_m)
    return pd.Series(result.access, index=population.index, name="access_2sfca"), result
