"""2SFCA by hand, with and without Gaussian decay."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from tuoyu.errors import InputValidationError
from tuoyu.indicators.access2sfca import (
    gaussian_decay,
    two_step_fca,
    two_step_fca_frame,
    unit_mean_access,
)

OFF = 1e-9

# Two facilities, three points (distances in m, cut-off 1000 m):
#   F0 (10 slots) → P0 at 0 m, P1 at 500 m
#   F1 (6 slots)  → P1 at 1000 m, P2 at 200 m
# demand (under-3): P0 4, P1 6, P2 2
DIST = np.array([[0.0, 500.0, np.nan], [np.nan, 1000.0, 200.0]])


def _matrix(dist: np.ndarray = DIST) -> sp.csr_matrix:
    rows, cols = np.nonzero(~np.isnan(dist))
    return sp.csr_matrix((dist[rows, cols] + OFF, (rows, cols)), shape=dist.shape)


def test_flat_catchment_by_hand() -> None:
    r = two_step_fca(_matrix(), [10.0, 6.0], [4.0, 6.0, 2.0])
    # R0 = 10 / (4 + 6) = 1.0 ; R1 = 6 / (6 + 2) = 0.75
    assert r.ratio.tolist() == pytest.approx([1.0, 0.75])
    # A0 = R0 = 1.0 ; A1 = R0 + R1 = 1.75 ; A2 = R1 = 0.75
    assert r.access.tolist() == pytest.approx([1.0, 1.75, 0.75])
    assert r.excluded_slots_unknown == 0 and r.facilities_without_demand == 0


def test_gaussian_decay_by_hand() -> None:
    d0 = 1000.0
    e = math.exp(-0.5)

    def g(d: float) -> float:  # G(d) = (exp(-½(d/d0)²) − e^-½) / (1 − e^-½)
        return (math.exp(-0.5 * (d / d0) ** 2) - e) / (1 - e)

    # G(0) = 1, G(500) = (e^-0.125 − e^-0.5)/(1 − e^-0.5) = 0.2760..., G(1000) = 0,
    # G(200) = (e^-0.02 − e^-0.5)/(1 − e^-0.5)
    g500, g200 = g(500.0), g(200.0)
    assert g500 == pytest.approx((0.8824969 - 0.6065307) / 0.3934693, rel=1e-6)
    assert gaussian_decay([0.0, 500.0, 1000.0, 1200.0], d0).tolist() == pytest.approx(
        [1.0, g500, 0.0, 0.0]
    )
    r = two_step_fca(_matrix(), [10.0, 6.0], [4.0, 6.0, 2.0], decay_d0_m=d0)
    # R0 = 10 / (1·4 + G500·6) ; R1 = 6 / (0·6 + G200·2)  (P1 at exactly d0 weighs 0)
    r0 = 10 / (4 + g500 * 6)
    r1 = 6 / (g200 * 2)
    assert r.ratio.tolist() == pytest.approx([r0, r1])
    # A0 = 1·R0 ; A1 = G500·R0 + 0·R1 ; A2 = G200·R1 = 3.0 exactly
    assert r.access.tolist() == pytest.approx([r0, g500 * r0, g200 * r1])
    assert r.access[2] == pytest.approx(3.0)
    assert r.decay_d0_m == d0


def test_unknown_slots_excluded_and_counted() -> None:
    r = two_step_fca(_matrix(), [np.nan, 6.0], [4.0, 6.0, 2.0])
    assert math.isnan(r.ratio[0])
    # only F1 counts: A = [0, 0.75, 0.75]
    assert r.access.tolist() == pytest.approx([0.0, 0.75, 0.75])
    assert r.excluded_slots_unknown == 1


def test_unknown_demand_propagates() -> None:
    r = two_step_fca(_matrix(), [10.0, 6.0], [np.nan, 6.0, 2.0])
    # P0's demand unknown → R0 unknown → A0, A1 unknown; A2 = R1 = 0.75 still known
    assert math.isnan(r.ratio[0]) and r.ratio[1] == pytest.approx(0.75)
    assert math.isnan(r.access[0]) and math.isnan(r.access[1])
    assert r.access[2] == pytest.approx(0.75)
    assert r.points_demand_unknown == 1


def test_facility_without_demand() -> None:
    r = two_step_fca(_matrix(), [10.0, 6.0], [0.0, 0.0, 2.0])
    # F0's catchment has no children: R0 undefined, adds nothing; R1 = 6/2 = 3
    assert math.isnan(r.ratio[0])
    assert r.access.tolist() == pytest.approx([0.0, 3.0, 3.0])
    assert r.facilities_without_demand == 1


def test_empty_inputs() -> None:
    r = two_step_fca(sp.csr_matrix((0, 3)), [], [1.0, 2.0, 3.0])
    assert r.access.tolist() == [0.0, 0.0, 0.0]
    r = two_step_fca(sp.csr_matrix((2, 0)), [1.0, 2.0], [])
    assert r.access.shape == (0,)


def test_bad_inputs() -> None:
    with pytest.raises(InputValidationError, match="2 facilities × 3 points"):
        two_step_fca(_matrix(), [1.0], [1.0, 1.0, 1.0])
    with pytest.raises(InputValidationError, match="slots must be"):
        two_step_fca(_matrix(), [-1.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(InputValidationError, match="d0"):
        gaussian_decay([1.0], 0.0)


def test_unit_mean_access() -> None:
    # group 0: (1·100 + 3·300) / 400 = 2.5 ; group 1: NaN member → NaN ; group 2: none → NaN
    out = unit_mean_access([1.0, 3.0, np.nan, 5.0, 9.0], [100, 300, 1, 1, 7], [0, 0, 1, 1, -1], 3)
    assert out[0] == pytest.approx(2.5)
    assert math.isnan(out[1]) and math.isnan(out[2])


def test_frame_door_matches_array_door() -> None:
    facilities = pd.DataFrame({"slots": pd.array([10, 6], dtype="Int64")})
    population = pd.DataFrame(
        {"population_under3": [4.0, 6.0, 2.0]}, index=pd.Index([10, 11, 12], name="pid")
    )
    series, result = two_step_fca_frame(facilities, population, _matrix())
    assert series.index.tolist() == [10, 11, 12]
    assert series.tolist() == pytest.approx([1.0, 1.75, 0.75])
    assert result.excluded_slots_unknown == 0
    with pytest.raises(InputValidationError, match="no column 'slots'"):
        two_step_fca_frame(pd.DataFrame({"x": [1]}), population, _matrix())


# --- order independence (issue 17: batch and single runs must agree bit for bit) -----------


def _random_case(
    seed: int, n_fac: int = 40, n_pts: int = 600
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense distances (NaN = out of reach), slots and demand with awkward magnitudes."""
    rng = np.random.default_rng(seed)
    dist = rng.uniform(0.0, 1000.0, size=(n_fac, n_pts))
    dist[rng.random((n_fac, n_pts)) < 0.3] = np.nan
    slots = rng.integers(1, 200, n_fac).astype(float)
    demand = rng.lognormal(0.0, 3.0, n_pts) * rng.choice([1e-3, 1.0, 1e3], n_pts)
    return dist, slots, demand


def _shuffled_csr(dist: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    """CSR of ``dist`` with its entries stored in a random order within each row."""
    rows, cols = np.nonzero(~np.isnan(dist))
    order = rng.permutation(rows.size)
    rows, cols = rows[order], cols[order]
    keep = np.argsort(rows, kind="stable")  # CSR groups by row, column order stays random
    rows, cols = rows[keep], cols[keep]
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=dist.shape[0]))))
    return sp.csr_matrix((dist[rows, cols] + OFF, cols, indptr), shape=dist.shape)


@pytest.mark.parametrize("decay", [None, 1000.0])
def test_result_does_not_depend_on_order(decay: float | None) -> None:
    """Shuffled facilities, points and stored entries give exactly the same numbers."""
    dist, slots, demand = _random_case(17)
    base = two_step_fca(_matrix(dist), slots, demand, decay_d0_m=decay)
    rng = np.random.default_rng(3)
    for _ in range(5):
        pf = rng.permutation(dist.shape[0])
        pp = rng.permutation(dist.shape[1])
        shuffled = two_step_fca(
            _shuffled_csr(dist[np.ix_(pf, pp)], rng), slots[pf], demand[pp], decay_d0_m=decay
        )
        # exactly equal, not approximately: the batch run must reproduce the single run
        assert shuffled.ratio.tolist() == base.ratio[pf].tolist()
        assert shuffled.access.tolist() == base.access[pp].tolist()


def test_unit_mean_access_does_not_depend_on_order() -> None:
    rng = np.random.default_rng(5)
    n = 5000
    access = rng.lognormal(0.0, 2.0, n)
    weights = rng.lognormal(3.0, 2.0, n)
    groups = rng.integers(0, 4, n)
    base = unit_mean_access(access, weights, groups, 4)
    for _ in range(5):
        p = rng.permutation(n)
        assert unit_mean_access(access[p], weights[p], groups[p], 4).tolist() == base.tolist()
