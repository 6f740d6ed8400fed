"""Per-unit (街道 or hexagon) indicators and the district summary against a target profile.

Pure computation on the validated layers (all in one metric CRS):

* ``units`` — ``code``, ``name``, ``area_m2``, polygons;
* ``facilities`` — the registry fields of :data:`tuoyu.layers.schema.FACILITY_FIELDS`, points;
* ``population`` — ``point_id``, ``unit_code``, ``population``, ``population_under3``
  (NaN = unknown), points; ``attrs["population_method"]``, ``attrs["assumptions"]``;
* ``walk_m_all`` / ``walk_m_puhui`` — walking distance (m) from each population point to
  the nearest facility of the set; ``inf`` = none within the search cut-off, NaN = unknown
  (e.g. off-network); ``None`` = no network, and then every 15-minute value is empty with
  the reason;
* ``reach_matrix`` — facilities × points CSR, walking distance + 1e-9 (for 2SFCA).

Rules for unknown inputs (GUIDE §4: unknown stays unknown, never 0):

* ``slots`` / ``enrolled`` of a unit are empty when any facility of the unit has an unknown
  value (no partial sums: a partial sum would read as a complete count);
* ``puhui_facilities`` is empty when any facility's 普惠 status is unknown; ``has_puhui``
  uses three-valued logic — true as soon as one 普惠 facility is known, false only when
  every status is known, else empty; ``puhui_slots`` is empty when a facility has unknown
  普惠 status or a 普惠 facility has unknown slots;
* ``population`` / ``population_under3`` are empty when a point of the unit is unknown;
* population points with an unknown walking distance (NaN) are left out of the coverage
  shares (numerator and denominator) and counted;
* a unit with no facilities has 0 facilities and 0 slots — a real zero, not a default —
  unless the facility layer carries no slot figure at all (every value unknown, as for
  kindergarten layers): then ``slots`` is empty everywhere (likewise ``enrolled``).

Shares (``puhui_slot_share``, ``utilisation``, ``*_pct``) are in per cent, like the targets.
``slot_shortfall`` is signed (``target × population / 1000 − slots``; negative = surplus).
``median_walk_min`` is the lower population-weighted median (the smallest walking time
such that at least half the unit's people walk no farther); it is empty when that median
lies beyond the search cut-off (``inf``).

Counts of records that could not be used are in ``table.attrs["unusable"]``; columns left
empty as a whole are in ``table.attrs["skipped"]`` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from tuoyu.config.study_area import StudyArea
from tuoyu.errors import CRSError, InputValidationError
from tuoyu.indicators.access2sfca import two_step_fca, unit_mean_access
from tuoyu.indicators.citations import cite
from tuoyu.indicators.targets import INDICATORS, Profile, Target
from tuoyu.layers.units import has_geometry, match_units

UNIT_COLUMNS: Final[tuple[str, ...]] = (
    "code",
    "name",
    "population",
    "population_under3",
    "facilities",
    "puhui_facilities",
    "slots",
    "puhui_slots",
    "enrolled",
    "slots_per_1000",
    "slot_shortfall",
    "puhui_slot_share",
    "utilisation",
    "covered_population",
    "coverage_pct",
    "puhui_coverage_pct",
    "uncovered_population",
    "median_walk_min",
    "has_puhui",
    "access_2sfca",
)
"""Columns of :func:`unit_table`, in order, before the ``meets_<indicator>`` columns."""

_INT_COLUMNS: Final = ("facilities", "puhui_facilities", "slots", "puhui_slots", "enrolled")
_BOOL_COLUMNS: Final = ("has_puhui",)
COVERAGE_COLUMNS: Final = (
    "covered_population",
    "coverage_pct",
    "puhui_coverage_pct",
    "uncovered_population",
    "median_walk_min",
)
NO_NETWORK_REASON: Final = (
    "no walking network: 15-minute indicators not computed / 无步行路网，未计算15分钟指标"
)
_NO_PUHUI_WALK: Final = "no walking distances to 普惠 facilities / 未提供到普惠机构的步行距离"
_NO_REACH: Final = "no facility reach matrix given / 未提供机构可达矩阵"
SLOTS_UNKNOWN_2SFCA: Final = (
    "托位 unknown for some facilities: capacity-aware access not computable / "
    "部分机构托位数不详，无法计算可达托位指数"
)
_NOT_JIEDAO: Final = (
    "units are H3 hexagons, not 街道: administrative coverage needs 街道 polygons "
    "([units] path) / 统计单元为六边形网格而非街道，无法计算街道覆盖率"
)
NO_JIEDAO_POINTS_REASON: Final = (
    "15-minute coverage per 街道 not computable: the 街道 are a table without polygons and "
    "the population points carry no 街道 / 街道无边界且人口点无街道归属，无法按街道计算15分钟覆盖率"
)
NO_JIEDAO_POPULATION_REASON: Final = (
    "population per 街道 unknown: the 街道 table gives none and the population points carry "
    "no 街道 / 街道人口不详（街道表未提供人口，人口点无街道归属）"
)
JIEDAO_INDICATORS: Final = frozenset({"puhui_jiedao_coverage", "facility_jiedao_coverage"})
"""Indicators that only mean something when the units are 街道."""
OSM_ATTRIBUTION: Final = "© OpenStreetMap contributors"
GUIDANCE_CENTRE_KIND: Final = "综合托育服务中心"
KINDERGARTEN_KIND: Final = "托幼一体"


# --- input checks ---------------------------------------------------------------------


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputValidationError(f"{what} lack column(s) {', '.join(missing)}", field=missing[0])


def _check_crs(units: gpd.GeoDataFrame, *others: tuple[gpd.GeoDataFrame, str]) -> None:
    if units.crs is None:
        raise CRSError("units have no CRS; set the metric CRS (e.g. units.set_crs(...))")
    if not units.crs.is_projected:
        raise CRSError(
            f"units are in {units.crs.name}, not a metric CRS; reproject all layers with "
            "tuoyu.crs.projection.estimate_metric_crs(...) first"
        )
    for frame, what in others:
        if frame.crs is None or not frame.crs.equals(units.crs):
            raise CRSError(
                f"{what} are in {frame.crs.name if frame.crs else 'no CRS'} but units are in "
                f"{units.crs.name}; reproject with {what}.to_crs(units.crs)"
            )


def _walk_array(walk: npt.ArrayLike | None, n: int, name: str) -> npt.NDArray[np.float64] | None:
    if walk is None:
        return None
    arr = np.asarray(walk, dtype=float).ravel()
    if arr.shape[0] != n:
        raise InputValidationError(
            f"{name} has {arr.shape[0]} values for {n} population points", field=name
        )
    if np.any(arr[~np.isnan(arr)] < 0):
        raise InputValidationError(f"{name} holds negative distances", field=name)
    return arr


def _float(values: pd.Series) -> npt.NDArray[np.float64]:
    """Numeric column → float array with NaN for unknown (NA, None, unparsable)."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _puhui_state(values: pd.Series) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(is 普惠, is unknown) from a bool / nullable-boolean / object column."""
    try:
        arr = pd.array(values.to_numpy(dtype=object), dtype="boolean")
    except (TypeError, ValueError) as exc:
        raise InputValidationError(
            f"facility 'puhui' must be true/false/empty: {exc}", field="puhui"
        ) from exc
    unknown = np.asarray(arr.isna(), dtype=bool)
    return np.asarray(arr.fillna(False), dtype=bool), unknown


# --- assignment to units --------------------------------------------------------------


def assign_points_to_units(units: gpd.GeoDataFrame, points: gpd.GeoSeries) -> npt.NDArray[np.int64]:
    """Position of the unit containing each point (``-1`` outside every unit).

    A point on a shared boundary goes to the first unit in ``units`` order, so the result
    does not depend on the spatial index.
    """
    out = np.full(len(points), -1, dtype=np.int64)
    if len(points) == 0 or len(units) == 0:
        return out
    pt_idx, unit_idx = units.sindex.query(points.values, predicate="intersects")
    if pt_idx.size:
        order = np.lexsort((unit_idx, pt_idx))
        pt_sorted, unit_sorted = pt_idx[order], unit_idx[order]
        first = np.r_[True, pt_sorted[1:] != pt_sorted[:-1]]
        out[pt_sorted[first]] = unit_sorted[first]
    return out


def assign_facilities_to_units(
    units: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame
) -> npt.NDArray[np.int64]:
    """Position of each facility's unit (``-1`` = none).

    By point-in-polygon when the units have polygons; for a 街道 table without polygons,
    by the facility's ``jiedao`` field (code or name, suffix variants accepted; see
    :func:`tuoyu.layers.units.match_units`).
    """
    if has_geometry(units):
        return assign_points_to_units(units, facilities.geometry)
    values = facilities["jiedao"].tolist() if "jiedao" in facilities else [None] * len(facilities)
    return match_units(values, units["code"].astype(str).tolist(), units["name"].tolist())


def points_carry_units(units: gpd.GeoDataFrame, population: gpd.GeoDataFrame) -> bool:
    """True when population points can be placed in units (polygons, or a ``unit_code``)."""
    if has_geometry(units):
        return True
    return "unit_code" in population.columns and bool(population["unit_code"].notna().any())


def _population_groups(
    units: gpd.GeoDataFrame, population: gpd.GeoDataFrame
) -> npt.NDArray[np.int64]:
    if not points_carry_units(units, population):
        return np.full(len(population), -1, dtype=np.int64)
    if "unit_code" in population.columns:
        codes = population["unit_code"]
        unit_index = pd.Index(units["code"].astype(str).to_numpy())
        values = codes.to_numpy(dtype=object)
        missing = codes.isna().to_numpy()
        if pd.api.types.infer_dtype(values[~missing], skipna=False) == "string":
            # text codes are their own ``str``: look up each distinct code once
            point_code, distinct = pd.factorize(values)
            positions = unit_index.get_indexer(np.asarray(distinct, dtype=object))
            found = np.where(point_code >= 0, positions[point_code], -1)
            return np.where(missing, -1, found).astype(np.int64)
        positions = unit_index.get_indexer(codes.astype(str).to_numpy())
        return np.where(missing, -1, positions).astype(np.int64)
    return assign_points_to_units(units, population.geometry)


# --- grouped sums with "any unknown → unknown" -------------------------------------------


def _strict_sum(
    values: npt.NDArray[np.float64], groups: npt.NDArray[np.int64], n: int
) -> npt.NDArray[np.float64]:
    """Sum per group; NaN when any member is NaN. Members with group -1 are ignored."""
    keep = groups >= 0
    v, g = values[keep], groups[keep]
    unknown = np.isnan(v)
    total = np.bincount(g, weights=np.where(unknown, 0.0, v), minlength=n)
    bad = np.bincount(g, weights=unknown.astype(float), minlength=n) > 0
    return np.where(bad, np.nan, total)


def _count(
    mask: npt.NDArray[np.bool_], groups: npt.NDArray[np.int64], n: int
) -> npt.NDArray[np.int64]:
    keep = groups >= 0
    return np.bincount(groups[keep], weights=mask[keep].astype(float), minlength=n).astype(np.int64)


def _ratio(
    num: npt.NDArray[np.float64], den: npt.NDArray[np.float64], scale: float
) -> npt.NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den * scale, np.nan)


def weighted_median(
    values: npt.ArrayLike, weights: npt.ArrayLike, groups: npt.ArrayLike, n_groups: int
) -> npt.NDArray[np.float64]:
    """Lower weighted median per group (vectorised).

    For each group, the smallest value ``v`` such that the weights of members ``≤ v``
    reach half the group's weight. NaN for a group with no weight or with any NaN value or
    weight. Members with group ``-1`` are ignored. ``inf`` values are allowed (and can be
    the median).

    Examples
    --------
    >>> weighted_median([1.0, 2.0, 3.0], [1.0, 1.0, 5.0], [0, 0, 0], 1).tolist()
    [3.0]
    """
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    g = np.asarray(groups, dtype=np.int64)
    keep = g >= 0
    v, w, g = v[keep], w[keep], g[keep]
    out = np.full(n_groups, np.nan)
    bad = np.bincount(g, weights=(np.isnan(v) | np.isnan(w)).astype(float), minlength=n_groups) > 0
    ok = ~bad[g] & (w > 0)
    v, w, g = v[ok], w[ok], g[ok]
    if v.size == 0:
        return out
    order = np.lexsort((v, g))
    v, w, g = v[order], w[order], g[order]
    total = np.bincount(g, weights=w, minlength=n_groups)
    cum = np.cumsum(w)
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    offset = np.repeat(cum[starts] - w[starts], np.diff(np.r_[starts, g.size]))
    within = cum - offset
    # relative tolerance: cumulative float sums must not miss an exact half
    reached = within >= 0.5 * total[g] * (1.0 - 1e-12)
    grp, first = np.unique(g[reached], return_index=True)
    out[grp] = v[reached][first]
    out[bad] = np.nan
    return out


# --- the aggregation shared by units and the district ------------------------------------


def _aggregate(
    facilities: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    fac_group: npt.NDArray[np.int64],
    pop_group: npt.NDArray[np.int64],
    n: int,
    walk_all: npt.NDArray[np.float64] | None,
    walk_puhui: npt.NDArray[np.float64] | None,
    access_point: npt.NDArray[np.float64] | None,
    *,
    threshold_m: float,
    speed_kmh: float,
    slots_target: float,
) -> dict[str, npt.NDArray[Any]]:
    slots = (
        _float(facilities["slots"]) if "slots" in facilities else np.full(len(facilities), np.nan)
    )
    enrolled = (
        _float(facilities["enrolled"])
        if "enrolled" in facilities
        else np.full(len(facilities), np.nan)
    )
    if "puhui" in facilities:
        is_puhui, puhui_unknown = _puhui_state(facilities["puhui"])
    else:
        is_puhui = np.zeros(len(facilities), dtype=bool)
        puhui_unknown = np.ones(len(facilities), dtype=bool)
    pop = _float(population["population"])
    under3 = (
        _float(population["population_under3"])
        if "population_under3" in population
        else np.full(len(population), np.nan)
    )

    out: dict[str, npt.NDArray[Any]] = {}
    n_fac = _count(np.ones(len(facilities), dtype=bool), fac_group, n)
    n_puhui = _count(is_puhui, fac_group, n)
    n_puhui_unknown = _count(puhui_unknown, fac_group, n)
    out["facilities"] = n_fac.astype(float)
    out["puhui_facilities"] = np.where(n_puhui_unknown > 0, np.nan, n_puhui.astype(float))
    out["has_puhui"] = np.where(n_puhui > 0, 1.0, np.where(n_puhui_unknown > 0, np.nan, 0.0))
    out["has_facility"] = (n_fac > 0).astype(float)
    out["slots"] = _strict_sum(slots, fac_group, n)
    # 普惠 slots: unknown when a status is unknown or a 普惠 facility's slots are unknown
    puhui_slot_values = np.where(puhui_unknown, np.nan, np.where(is_puhui, slots, 0.0))
    out["puhui_slots"] = _strict_sum(puhui_slot_values, fac_group, n)
    out["enrolled"] = _strict_sum(enrolled, fac_group, n)
    # A layer that carries no slot (enrolment) figure at all says nothing about slots, not
    # even "0 in units without facilities".
    if len(facilities) and np.isnan(slots).all():
        out["slots"] = np.full(n, np.nan)
        out["puhui_slots"] = np.full(n, np.nan)
    if len(facilities) and np.isnan(enrolled).all():
        out["enrolled"] = np.full(n, np.nan)
    out["kindergartens"] = _count(
        facilities["kind"].astype(object).to_numpy() == KINDERGARTEN_KIND
        if "kind" in facilities
        else np.zeros(len(facilities), dtype=bool),
        fac_group,
        n,
    ).astype(float)

    out["population"] = _strict_sum(pop, pop_group, n)
    out["population_under3"] = _strict_sum(under3, pop_group, n)
    out["slots_per_1000"] = _ratio(out["slots"], out["population"], 1000.0)
    out["slot_shortfall"] = slots_target * out["population"] / 1000.0 - out["slots"]
    out["puhui_slot_share"] = _ratio(out["puhui_slots"], out["slots"], 100.0)
    out["utilisation"] = _ratio(out["enrolled"], out["slots"], 100.0)

    nan = np.full(n, np.nan)
    for key in (*COVERAGE_COLUMNS, "under3_coverage_pct", "puhui_under3_coverage_pct",
                "puhui_covered_population"):  # fmt: skip
        out[key] = nan.copy()
    if walk_all is not None:
        known = ~np.isnan(walk_all)
        covered = known & (walk_all <= threshold_m)
        uncovered = known & ~covered
        out["covered_population"] = _strict_sum(np.where(covered, pop, 0.0), pop_group, n)
        out["uncovered_population"] = _strict_sum(np.where(uncovered, pop, 0.0), pop_group, n)
        out["coverage_pct"] = _ratio(
            out["covered_population"],
            out["covered_population"] + out["uncovered_population"],
            100.0,
        )
        cov3 = _strict_sum(np.where(covered, under3, 0.0), pop_group, n)
        unc3 = _strict_sum(np.where(uncovered, under3, 0.0), pop_group, n)
        out["under3_coverage_pct"] = _ratio(cov3, cov3 + unc3, 100.0)
        speed_m_per_min = speed_kmh * 1000.0 / 60.0
        median_min = weighted_median(
            np.where(known, walk_all / speed_m_per_min, 0.0),
            np.where(known, pop, 0.0),
            pop_group,
            n,
        )
        out["median_walk_min"] = np.where(np.isinf(median_min), np.nan, median_min)
    if walk_puhui is not None:
        known = ~np.isnan(walk_puhui)
        covered = known & (walk_puhui <= threshold_m)
        uncovered = known & ~covered
        cov = _strict_sum(np.where(covered, pop, 0.0), pop_group, n)
        unc = _strict_sum(np.where(uncovered, pop, 0.0), pop_group, n)
        out["puhui_covered_population"] = cov
        out["puhui_coverage_pct"] = _ratio(cov, cov + unc, 100.0)
        cov3 = _strict_sum(np.where(covered, under3, 0.0), pop_group, n)
        unc3 = _strict_sum(np.where(uncovered, under3, 0.0), pop_group, n)
        out["puhui_under3_coverage_pct"] = _ratio(cov3, cov3 + unc3, 100.0)
    out["access_2sfca"] = (
        unit_mean_access(access_point, pop, pop_group, n)
        if access_point is not None
        else nan.copy()
    )
    return out


# --- public: the unit table -------------------------------------------------------------


def _table_population(
    agg: dict[str, npt.NDArray[Any]], units: gpd.GeoDataFrame, slots_target: float
) -> dict[str, npt.NDArray[Any]]:
    """Per-unit values when population points carry no unit (a 街道 table).

    Population comes from the table (unknown when it gives none); every value computed
    from population points (coverage, median walk, 2SFCA) is unknown, not 0.
    """
    n = len(units)
    out = dict(agg)
    nan = np.full(n, np.nan)
    out["population"] = _float(units["population"]) if "population" in units else nan.copy()
    out["population_under3"] = (
        _float(units["population_under3"]) if "population_under3" in units else nan.copy()
    )
    out["slots_per_1000"] = _ratio(out["slots"], out["population"], 1000.0)
    out["slot_shortfall"] = slots_target * out["population"] / 1000.0 - out["slots"]
    for key in (*COVERAGE_COLUMNS, "under3_coverage_pct", "puhui_under3_coverage_pct",
                "puhui_covered_population", "puhui_coverage_pct", "access_2sfca"):  # fmt: skip
        out[key] = nan.copy()
    return out


def _meets(target: Target, values: npt.NDArray[np.float64]) -> pd.arrays.BooleanArray:
    column = INDICATORS[target.indicator].unit_column
    if column in ("has_puhui", "has_facility"):
        # A 街道 "meets" a 街道-coverage target when it has such a facility itself.
        result = [None if math.isnan(v) else bool(v) for v in values]
    else:
        result = [target.passes(v) for v in values]
    return pd.array(result, dtype="boolean")


def _prepare(
    units: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
) -> None:
    _require(units, ("code", "name"), "units")
    _require(population, ("population",), "population points")
    _check_crs(units, (facilities, "facilities"), (population, "population points"))


def _unusable(
    facilities: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    fac_group: npt.NDArray[np.int64],
    pop_group: npt.NDArray[np.int64],
    walk_all: npt.NDArray[np.float64] | None,
    walk_puhui: npt.NDArray[np.float64] | None,
) -> dict[str, int]:
    def nan_count(column: str, frame: pd.DataFrame) -> int:
        return int(np.isnan(_float(frame[column])).sum()) if column in frame else len(frame)

    puhui_unknown = (
        int(_puhui_state(facilities["puhui"])[1].sum())
        if "puhui" in facilities
        else len(facilities)
    )
    counts = {
        "facilities_outside_units": int((fac_group < 0).sum()),
        "facilities_slots_unknown": nan_count("slots", facilities),
        "facilities_enrolled_unknown": nan_count("enrolled", facilities),
        "facilities_puhui_unknown": puhui_unknown,
        "population_points_outside_units": int((pop_group < 0).sum()),
        "population_points_population_unknown": nan_count("population", population),
        "population_points_under3_unknown": nan_count("population_under3", population),
        "population_points_walk_unknown": (
            int(np.isnan(walk_all).sum()) if walk_all is not None else len(population)
        ),
        "population_points_walk_puhui_unknown": (
            int(np.isnan(walk_puhui).sum()) if walk_puhui is not None else len(population)
        ),
    }
    return counts


def _access_points(
    facilities: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    reach_matrix: sp.spmatrix | sp.sparray | None,
    decay_d0_m: float | None,
) -> tuple[npt.NDArray[np.float64] | None, dict[str, int]]:
    if reach_matrix is None:
        return None, {}
    slots = (
        _float(facilities["slots"]) if "slots" in facilities else np.full(len(facilities), np.nan)
    )
    demand = (
        _float(population["population_under3"])
        if "population_under3" in population
        else np.full(len(population), np.nan)
    )
    result = two_step_fca(reach_matrix, slots, demand, decay_d0_m=decay_d0_m)
    # Facilities without a registered 托位 are left out (counted in ``unusable``; the index
    # is then a lower bound). When no facility has one, the index is unknown, not 0.
    n_facilities = int(slots.shape[0])
    all_unknown = n_facilities > 0 and result.excluded_slots_unknown == n_facilities
    access = None if all_unknown else result.access
    return access, {
        "facilities_excluded_2sfca_slots_unknown": result.excluded_slots_unknown,
        "facilities_2sfca_without_demand": result.facilities_without_demand,
    }


def unit_table(
    units: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    walk_m_all: npt.ArrayLike | None,
    walk_m_puhui: npt.ArrayLike | None,
    *,
    profile: Profile,
    threshold_m: float,
    speed_kmh: float,
    reach_matrix: sp.spmatrix | sp.sparray | None = None,
    decay_d0_m: float | None = None,
    no_network_reason: str = NO_NETWORK_REASON,
    units_are_jiedao: bool = True,
) -> pd.DataFrame:
    """One row per unit with the indicators of issue 4 and one ``meets_<indicator>``
    column per per-unit target of ``profile``.

    Parameters
    ----------
    units, facilities, population
        The layers (see the module docstring), all in the same metric CRS.
    walk_m_all, walk_m_puhui
        Walking distance (m) per population point to the nearest facility (all / 普惠);
        ``inf`` = none within the cut-off, NaN = unknown; ``None`` = no network.
    profile
        The target profile (its ``slots_per_1000`` target sets the shortfall, else 4.5).
    threshold_m
        Service-circle distance (15 min × speed), inclusive.
    speed_kmh
        Walking speed, for ``median_walk_min``.
    reach_matrix
        Facilities × points CSR (distance + 1e-9) for ``access_2sfca``; ``None`` = empty.
    decay_d0_m
        Gaussian decay distance for 2SFCA; ``None`` = flat catchment.
    no_network_reason
        Reason recorded when ``walk_m_all`` is ``None``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`UNIT_COLUMNS` then ``meets_*``, one row per unit in ``units`` order
        (index = ``units.index``). ``attrs``: ``unusable`` (counts), ``skipped``
        (column → reason), ``threshold_m``, ``speed_kmh``, ``profile``.

    Raises
    ------
    CRSError
        Layers not in one metric CRS.
    InputValidationError
        Missing columns or walking arrays of the wrong length.
    """
    if not threshold_m > 0 or not speed_kmh > 0:
        raise InputValidationError("threshold_m and speed_kmh must be > 0")
    _prepare(units, facilities, population)
    n = len(units)
    walk_all = _walk_array(walk_m_all, len(population), "walk_m_all")
    walk_puhui = _walk_array(walk_m_puhui, len(population), "walk_m_puhui")
    fac_group = assign_facilities_to_units(units, facilities)
    pop_group = _population_groups(units, population)
    points_by_unit = points_carry_units(units, population)
    units_are_jiedao = units_are_jiedao or not has_geometry(units)  # a table is 街道
    access_point, access_counts = _access_points(facilities, population, reach_matrix, decay_d0_m)
    agg = _aggregate(
        facilities, population, fac_group, pop_group, n, walk_all, walk_puhui, access_point,
        threshold_m=threshold_m, speed_kmh=speed_kmh,
        slots_target=profile.slots_per_1000_target(),
    )  # fmt: skip
    if not points_by_unit:
        agg = _table_population(agg, units, profile.slots_per_1000_target())

    table = pd.DataFrame(index=units.index)
    table["code"] = units["code"].astype(str).to_numpy()
    table["name"] = units["name"].astype(str).to_numpy()
    for column in UNIT_COLUMNS[2:]:
        values = agg[column]
        if column in _INT_COLUMNS:
            table[column] = pd.array(
                [None if math.isnan(v) else round(v) for v in values], dtype="Int64"
            )
        elif column in _BOOL_COLUMNS:
            table[column] = pd.array(
                [None if math.isnan(v) else bool(v) for v in values], dtype="boolean"
            )
        else:
            table[column] = pd.array(values, dtype="Float64")  # NaN becomes NA
    for target in profile.unit_targets:
        unit_column = INDICATORS[target.indicator].unit_column
        if target.indicator in JIEDAO_INDICATORS and not units_are_jiedao:
            # Administrative coverage is a fact about 街道; a hexagon has no such target.
            table[f"meets_{target.indicator}"] = pd.array([None] * len(table), dtype="boolean")
        elif unit_column is not None:  # always true: unit_targets only holds such targets
            table[f"meets_{target.indicator}"] = _meets(target, agg[unit_column])

    skipped: dict[str, str] = {}
    if walk_all is None:
        skipped.update({c: no_network_reason for c in COVERAGE_COLUMNS})
    if walk_puhui is None:
        skipped["puhui_coverage_pct"] = no_network_reason if walk_all is None else _NO_PUHUI_WALK
    if reach_matrix is None:
        skipped["access_2sfca"] = no_network_reason if walk_all is None else _NO_REACH
    elif access_point is None:
        skipped["access_2sfca"] = SLOTS_UNKNOWN_2SFCA
    if not points_by_unit:
        skipped.update(
            {c: NO_JIEDAO_POINTS_REASON for c in (*COVERAGE_COLUMNS, "puhui_coverage_pct")}
        )
        skipped["access_2sfca"] = NO_JIEDAO_POINTS_REASON
        if table["population"].isna().all():
            for column in ("population", "slots_per_1000", "slot_shortfall"):
                skipped[column] = NO_JIEDAO_POPULATION_REASON
    unusable = _unusable(facilities, population, fac_group, pop_group, walk_all, walk_puhui)
    if not points_by_unit:
        unusable["population_points_outside_units"] = 0
        unusable["population_points_without_jiedao"] = len(population)
    unusable["facilities_jiedao_unmatched"] = (
        int((fac_group < 0).sum()) if not has_geometry(units) else 0
    )
    unusable.update(access_counts)
    table.attrs.update(
        unusable=unusable,
        skipped=skipped,
        threshold_m=float(threshold_m),
        speed_kmh=float(speed_kmh),
        profile=profile.name,
    )
    return table


# --- public: the district summary --------------------------------------------------------


def _none(value: float) -> float | None:
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )


def _target_entry(target: Target | None) -> dict[str, Any] | None:
    if target is None:
        return None
    return {
        "citation": cite(target),
        "value": target.value,
        "text": target.text,
        "comparison": target.comparison,
        "unit": target.unit,
        "year": target.year,
        "source_file": target.source_file,
        "clause": target.clause,
        "quote": target.quote,
        "note": target.note,
    }


def _gap(target: Target | None, value: float | None) -> float | None:
    """How far the value is from the target (0 once reached; ``None`` when unknown)."""
    if target is None or target.value is None or value is None:
        return None
    if target.comparison in (">=", ">"):
        return max(target.value - value, 0.0)
    return max(value - target.value, 0.0)


def _facility_assumptions(facilities: pd.DataFrame) -> list[str]:
    """One sentence per field filled from the area's defaults (``assumed_fields``)."""
    notes: list[str] = []
    if "assumed_fields" in facilities.columns and len(facilities):
        counts: dict[str, int] = {}
        for value in facilities["assumed_fields"]:
            if isinstance(value, str):
                fields = [f.strip() for f in value.replace(";", ",").split(",") if f.strip()]
            elif isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
                fields = [str(f) for f in value]
            else:
                fields = []
            for f in fields:
                counts[f] = counts.get(f, 0) + 1
        for f in sorted(counts):
            label = "普惠" if f == "puhui" else f
            notes.append(
                f"{label} assumed (area default, not in the data) for {counts[f]} of "
                f"{len(facilities)} facilities / {label} 为假定值（{counts[f]}/{len(facilities)} 家机构）"
            )
    return notes


def _population_assumptions(population: pd.DataFrame) -> list[str]:
    notes: list[str] = []
    raw = population.attrs.get("assumptions") if hasattr(population, "attrs") else None
    if isinstance(raw, str):
        notes.append(raw)
    elif isinstance(raw, Mapping):
        notes.extend(f"{k}: {v}" for k, v in sorted(raw.items()))
    elif isinstance(raw, Iterable):
        notes.extend(str(x) for x in raw)
    return notes


def district_summary(
    units: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    walk_m_all: npt.ArrayLike | None,
    walk_m_puhui: npt.ArrayLike | None,
    *,
    profile: Profile,
    threshold_m: float,
    speed_kmh: float,
    reach_matrix: sp.spmatrix | sp.sparray | None = None,
    decay_d0_m: float | None = None,
    table: pd.DataFrame | None = None,
    area: StudyArea | None = None,
    data_sources: Iterable[Mapping[str, Any]] = (),
    attributions: Iterable[str] = (),
    osm_used: bool = False,
    kindergartens_total: int | None = None,
    no_network_reason: str = NO_NETWORK_REASON,
    units_are_jiedao: bool = True,
    extra_skipped: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """District-level indicators against the profile, JSON-ready (GUIDE §2).

    Parameters
    ----------
    units, facilities, population, walk_m_all, walk_m_puhui, profile, threshold_m,
    speed_kmh, reach_matrix, decay_d0_m, no_network_reason
        As for :func:`unit_table`. District values use the records assigned to a unit.
    table
        The unit table already computed with the same inputs (recomputed when ``None``).
    area
        The study area: name, code, walking parameters, network mode.
    data_sources
        One record per input file (role, path relative to the data directory, sha256,
        origin, licence, attribution), as made by :func:`tuoyu.workflow.provenance.
        file_records`; recorded as given (this function reads no file).
    attributions
        Credits required by the sources (e.g. a road layer's origin).
    osm_used
        True when an OpenStreetMap layer was used (adds the OSM attribution).
    kindergartens_total
        Number of kindergartens in the district, for the 托班 share (skipped when unknown).
    extra_skipped
        ``{what: reason}`` of steps the caller skipped (added to ``skipped``).

    Returns
    -------
    dict
        ``area``, ``profile``, ``indicators`` (key → value, unit, labels, target, gap,
        pass, reason), ``totals``, ``parameters``, ``data``, ``unusable``, ``skipped``,
        ``attribution``, ``approximate``. Unknown values are ``None`` (JSON null).
    """
    if table is None:
        table = unit_table(
            units, facilities, population, walk_m_all, walk_m_puhui, profile=profile,
            threshold_m=threshold_m, speed_kmh=speed_kmh, reach_matrix=reach_matrix,
            decay_d0_m=decay_d0_m, no_network_reason=no_network_reason,
        )  # fmt: skip
    _prepare(units, facilities, population)
    walk_all = _walk_array(walk_m_all, len(population), "walk_m_all")
    walk_puhui = _walk_array(walk_m_puhui, len(population), "walk_m_puhui")
    units_are_jiedao = units_are_jiedao or not has_geometry(units)  # a table is 街道
    if has_geometry(units):
        fac_group = np.where(assign_points_to_units(units, facilities.geometry) >= 0, 0, -1)
    else:
        # a 街道 table places nothing: every facility loaded (inside the district) counts
        fac_group = np.zeros(len(facilities), dtype=np.int64)
    if points_carry_units(units, population):
        pop_group = np.where(_population_groups(units, population) >= 0, 0, -1)
    else:
        pop_group = np.zeros(len(population), dtype=np.int64)
    access_point, _ = _access_points(facilities, population, reach_matrix, decay_d0_m)
    agg = {
        k: v[0]
        for k, v in _aggregate(
            facilities, population, fac_group, pop_group, 1, walk_all, walk_puhui, access_point,
            threshold_m=threshold_m, speed_kmh=speed_kmh,
            slots_target=profile.slots_per_1000_target(),
        ).items()
    }  # fmt: skip
    unusable: dict[str, int] = dict(table.attrs.get("unusable", {}))
    n_fac = len(facilities)
    n_units = len(units)

    reasons: dict[str, str] = {}
    slots_reason = (
        f"托位数 unknown for {unusable.get('facilities_slots_unknown', 0)} of {n_fac} "
        f"facilities / {unusable.get('facilities_slots_unknown', 0)} 家机构托位数不详"
    )
    network_reason = no_network_reason
    if n_units == 0:
        reasons["puhui_jiedao_coverage"] = reasons["facility_jiedao_coverage"] = (
            "no units / 无统计单元"
        )
    elif not units_are_jiedao:
        reasons["puhui_jiedao_coverage"] = reasons["facility_jiedao_coverage"] = _NOT_JIEDAO
    if math.isnan(agg["slots"]):
        for key in ("slots_per_1000", "puhui_slot_share", "utilisation", "slots_total"):
            reasons[key] = slots_reason
    elif agg["slots"] == 0:
        reasons["puhui_slot_share"] = reasons["utilisation"] = "no slots / 托位数为0"
    if math.isnan(agg["puhui_slots"]) and not math.isnan(agg["slots"]):
        reasons["puhui_slot_share"] = (
            f"普惠 status unknown for {unusable.get('facilities_puhui_unknown', 0)} facilities "
            f"/ {unusable.get('facilities_puhui_unknown', 0)} 家机构普惠属性不详"
        )
    if math.isnan(agg["enrolled"]) and not math.isnan(agg["slots"]):
        reasons["utilisation"] = (
            f"在托人数 unknown for {unusable.get('facilities_enrolled_unknown', 0)} facilities "
            f"/ {unusable.get('facilities_enrolled_unknown', 0)} 家机构在托人数不详"
        )
    if math.isnan(agg["population"]):
        reasons.setdefault(
            "slots_per_1000", "population unknown for some points / 部分人口点人口不详"
        )
    if walk_all is None:
        for key in ("coverage_pct", "under3_coverage_pct", "median_walk_min"):
            reasons[key] = network_reason
    if walk_puhui is None:
        for key in ("puhui_coverage_pct", "puhui_under3_coverage_pct"):
            reasons[key] = network_reason if walk_all is None else _NO_PUHUI_WALK
    if math.isnan(agg["population_under3"]):
        for key in ("under3_coverage_pct", "puhui_under3_coverage_pct", "access_2sfca"):
            reasons.setdefault(
                key,
                "under-3 population unknown (no under-3 share or field) / 3岁以下人口不详",
            )
    if reach_matrix is None:
        reasons.setdefault("access_2sfca", network_reason if walk_all is None else _NO_REACH)
    elif access_point is None:
        reasons.setdefault("access_2sfca", SLOTS_UNKNOWN_2SFCA)

    has_puhui = table["has_puhui"] if "has_puhui" in table else pd.Series([], dtype="boolean")
    if n_units and has_puhui.isna().any():
        jiedao_puhui: float = math.nan
        reasons["puhui_jiedao_coverage"] = (
            f"普惠 status unknown for facilities in {int(has_puhui.isna().sum())} units / "
            f"{int(has_puhui.isna().sum())} 个单元的机构普惠属性不详"
        )
    else:
        jiedao_puhui = (
            float(has_puhui.fillna(False).sum()) / n_units * 100.0 if n_units else math.nan
        )
    jiedao_any = float((table["facilities"] > 0).sum()) / n_units * 100.0 if n_units else math.nan
    if not units_are_jiedao:
        jiedao_puhui = jiedao_any = math.nan
    if kindergartens_total:
        tuoban = agg["kindergartens"] / kindergartens_total * 100.0
    else:
        tuoban = math.nan
        reasons["kindergarten_tuoban_share"] = (
            "total number of kindergartens not given (only those offering 托班 are registered) / "
            "未提供幼儿园总数"
        )
    guidance = float(
        (facilities["kind"].astype(object) == GUIDANCE_CENTRE_KIND).sum()
        if "kind" in facilities
        else 0
    )

    values: dict[str, float] = {
        "slots_per_1000": agg["slots_per_1000"],
        "puhui_slot_share": agg["puhui_slot_share"],
        "utilisation": agg["utilisation"],
        "puhui_jiedao_coverage": jiedao_puhui,
        "facility_jiedao_coverage": jiedao_any,
        "kindergarten_tuoban_share": tuoban,
        "coverage_pct": agg["coverage_pct"],
        "puhui_coverage_pct": agg["puhui_coverage_pct"],
        "under3_coverage_pct": agg["under3_coverage_pct"],
        "puhui_under3_coverage_pct": agg["puhui_under3_coverage_pct"],
        "median_walk_min": agg["median_walk_min"],
        "access_2sfca": agg["access_2sfca"],
        "guidance_centres": guidance,
        "slots_total": agg["slots"],
        "new_slots_per_unit": math.nan,
    }
    reasons["new_slots_per_unit"] = (
        "needs the slots at the start of the period (a baseline registry); one snapshot "
        "cannot show new slots / 需要期初托位数据，单期数据无法计算新增托位"
    )
    notes: dict[str, str] = {
        "guidance_centres": f"counted as registry facilities of kind {GUIDANCE_CENTRE_KIND}; "
        "a centre outside the registry is not seen",
        "puhui_coverage_pct": "facilities with unknown 普惠 status are not in the 普惠 set: "
        "a lower bound when any status is unknown",
        "coverage_pct": "share of people with a known walking time (points off the network "
        "are counted in unusable)",
    }
    if math.isnan(agg["median_walk_min"]) and walk_all is not None:
        reasons.setdefault(
            "median_walk_min",
            "more than half of the people have no facility within the cut-off / "
            "半数以上人口在搜索范围内无机构",
        )
    if profile.target_for("slots_total") is None:
        # a district total is only meaningful against a target for that district
        values.pop("slots_total")

    indicators: dict[str, dict[str, Any]] = {}
    skipped: list[dict[str, str]] = []
    for key, raw_value in values.items():
        ind = INDICATORS[key]
        target = profile.target_for(key)
        value = _none(raw_value)
        entry: dict[str, Any] = {
            "label_zh": ind.label_zh,
            "label_en": ind.label_en,
            "unit": ind.unit,
            "value": value,
            "target": _target_entry(target),
            "gap": _gap(target, value),
            "pass": target.passes(value) if target is not None else None,
        }
        if key == "guidance_centres" and entry["pass"] is False:
            entry["pass"] = None  # absence from the registry is not proof of absence
            reasons[key] = "no 综合托育服务中心 in the registry / 备案中无综合托育服务中心"
        if key in notes:
            entry["note"] = notes[key]
        if value is None:
            entry["reason"] = reasons.get(key, "not computable from the inputs / 输入数据不足")
            skipped.append({"indicator": key, "reason": entry["reason"]})
        elif target is not None and target.value is None:
            entry["reason"] = "target has no number in the source: no pass/fail / 目标无量化数值"
        indicators[key] = entry
    if not points_carry_units(units, population) and n_units:
        skipped.append({"indicator": "coverage_pct per 街道", "reason": NO_JIEDAO_POINTS_REASON})
        if table["population"].isna().all():
            skipped.append(
                {"indicator": "slots_per_1000 per 街道", "reason": NO_JIEDAO_POPULATION_REASON}
            )
    for what, reason in sorted((extra_skipped or {}).items()):
        skipped.append({"indicator": what, "reason": reason})

    totals = {
        "units": n_units,
        "units_with_puhui": int(has_puhui.fillna(False).sum()),
        "units_puhui_unknown": int(has_puhui.isna().sum()),
        "facilities": int(agg["facilities"]),
        "puhui_facilities": _none(agg["puhui_facilities"]),
        "slots": _none(agg["slots"]),
        "puhui_slots": _none(agg["puhui_slots"]),
        "enrolled": _none(agg["enrolled"]),
        "population": _none(agg["population"]),
        "population_under3": _none(agg["population_under3"]),
        "covered_population": _none(agg["covered_population"]),
        "uncovered_population": _none(agg["uncovered_population"]),
        "puhui_covered_population": _none(agg["puhui_covered_population"]),
        "slot_shortfall": _none(agg["slot_shortfall"]),
        "kindergartens_offering_tuoban": int(agg["kindergartens"]),
    }

    facility_notes = _facility_assumptions(facilities)
    walk = area.walk if area is not None else None
    network = area.network if area is not None else None
    approximate = bool(network is not None and network.mode == "straight_line")
    parameters: dict[str, Any] = {
        "walk_speed_kmh": float(speed_kmh),
        "threshold_m": float(threshold_m),
        "threshold_min": float(threshold_m) / (speed_kmh * 1000.0 / 60.0),
        "walk_minutes": list(walk.minutes) if walk is not None else None,
        "max_snap_m": walk.max_snap_m if walk is not None else None,
        "isochrone_buffer_m": walk.isochrone_buffer_m if walk is not None else None,
        "isochrone_method": walk.isochrone_method if walk is not None else None,
        "network_mode": network.mode
        if network is not None
        else ("network" if walk_all is not None else None),
        "detour_factor": network.detour_factor if network is not None else None,
        "decay_d0_m": decay_d0_m,
        "slots_per_1000_for_shortfall": profile.slots_per_1000_target(),
    }
    files = [dict(record) for record in data_sources]
    credits = sorted(
        {str(f["attribution"]) for f in files if f.get("attribution")} | set(attributions)
    )
    if osm_used and OSM_ATTRIBUTION not in credits:
        credits.append(OSM_ATTRIBUTION)
    summary: dict[str, Any] = {
        "area": {
            "name": area.area.name if area is not None else None,
            "name_en": area.area.name_en if area is not None else None,
            "code": area.area.code if area is not None else None,
        },
        "profile": {
            "name": profile.name,
            "title": profile.title,
            "title_en": profile.title_en,
            "document": profile.document,
            "source": profile.source,
            "year": profile.year,
        },
        "indicators": indicators,
        "totals": totals,
        "parameters": parameters,
        "data": {
            "files": files,
            "population_method": population.attrs.get("population_method"),
            "assumptions": [*facility_notes, *_population_assumptions(population)],
            "facility_assumptions": facility_notes,
        },
        "unusable": unusable,
        "skipped": skipped,
        "attribution": "; ".join(credits) if credits else None,
        "approximate": approximate,
    }
    if approximate:
        summary["approximate_note"] = (
            f"walking distances are straight lines × detour factor {parameters['detour_factor']}, "
            "not network paths: approximate / 直线距离×绕行系数估算，结果为近似值"
        )
    return summary
