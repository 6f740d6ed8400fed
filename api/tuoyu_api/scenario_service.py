"""What-if scenarios for the service: before/after per 街道 in people and percentage
points, and the walking isochrones of planned (not registered) facilities.

:meth:`tuoyu.workflow.core.AreaModel.scenario` gives the per-unit table and summary of a
scenario; this module adds what the planner's workbench shows next to the map:

* :func:`unit_changes` — each unit's residents and under-3 children inside the service
  circle, before and after, and the coverage change in percentage points;
* :func:`planned_isochrones` — the isochrone of each added facility (the same method as
  ``GET …/facilities/{id}/isochrone``, :meth:`AreaModel.point_isochrones`, one bounded search per
  planned point; a circle of walk ÷ detour factor in ``straight_line`` areas);
* :func:`evaluate_scenario` — both, plus the existing summary comparison, as
  :class:`~tuoyu_api.schemas.ScenarioOut` (``POST /areas/{area}/scenarios`` and the
  saved scenarios of :mod:`tuoyu_api.routers.workbench`).

Neither the registry nor the live analysis is changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry import mapping
from tuoyu.config.study_area import StudyArea
from tuoyu.errors import InputValidationError
from tuoyu.isochrones.exact import METHOD_WALK_FIELD
from tuoyu.labels import label
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import AreaLayers

from tuoyu_api.deps import AppState
from tuoyu_api.public import scrub_paths
from tuoyu_api.schemas import (
    ColumnLabel,
    IndicatorChange,
    ScenarioIn,
    ScenarioOut,
    UnitChange,
)
from tuoyu_api.serialize import json_ready, table_records
from tuoyu_api.validation import validate_facility_write

MAX_PLANNED_ISOCHRONES: Final = 50
"""Most added facilities whose isochrones one scenario answer draws (the first ones)."""
ISOCHRONE_SIMPLIFY_M: Final = 2.0
"""Display simplification of planned isochrones (metres, before reprojecting)."""

CHANGE_LABELS: Final[dict[str, tuple[str, str]]] = {
    "code": ("街道代码", "Code"),
    "name": ("街道", "Sub-district (街道)"),
    "population": ("常住人口（人）", "Residents"),
    "population_under3": ("3岁以下婴幼儿（人，估算）", "Children under 3 (estimated)"),
    "covered_before": ("15分钟覆盖居民（人，现状）", "Residents within 15 min, now"),
    "covered_after": ("15分钟覆盖居民（人，方案）", "Residents within 15 min, scenario"),
    "covered_change": ("覆盖居民变化（人）", "Change in residents covered"),
    "under3_covered_before": (
        "15分钟覆盖3岁以下婴幼儿（人，现状）",
        "Children under 3 within 15 min, now",
    ),
    "under3_covered_after": (
        "15分钟覆盖3岁以下婴幼儿（人，方案）",
        "Children under 3 within 15 min, scenario",
    ),
    "under3_covered_change": ("覆盖3岁以下婴幼儿变化（人）", "Change in under-3 covered"),
    "coverage_pct_before": ("15分钟覆盖率（%，现状）", "15-min coverage, now (%)"),
    "coverage_pct_after": ("15分钟覆盖率（%，方案）", "15-min coverage, scenario (%)"),
    "coverage_pp": ("覆盖率变化（百分点）", "Coverage change (percentage points)"),
    "puhui_coverage_pct_before": ("普惠15分钟覆盖率（%，现状）", "普惠 coverage, now (%)"),
    "puhui_coverage_pct_after": ("普惠15分钟覆盖率（%，方案）", "普惠 coverage, scenario (%)"),
    "puhui_coverage_pp": ("普惠覆盖率变化（百分点）", "普惠 coverage change (pp)"),
    "facilities_before": ("托育机构（家，现状）", "Facilities, now"),
    "facilities_after": ("托育机构（家，方案）", "Facilities, scenario"),
    "puhui_facilities_before": ("普惠机构（家，现状）", "普惠 facilities, now"),
    "puhui_facilities_after": ("普惠机构（家，方案）", "普惠 facilities, scenario"),
    "slots_before": ("托位（个，现状）", "Slots, now"),
    "slots_after": ("托位（个，方案）", "Slots, scenario"),
    "has_puhui_before": ("有普惠机构（现状）", "Has a 普惠 facility, now"),
    "has_puhui_after": ("有普惠机构（方案）", "Has a 普惠 facility, scenario"),
}
"""Chinese and English labels of :class:`~tuoyu_api.schemas.UnitChange` fields."""

UNDER3_EXACT: Final = (
    "3岁以下覆盖人数 = 覆盖居民 × 该街道3岁以下人口占比；本区各人口点按统一比例估算3岁以下人口，"
    "故为精确值 / under-3 covered = residents covered × the unit's under-3 share; every "
    "population point of this area has the same share, so the figure is exact"
)
UNDER3_ESTIMATED: Final = (
    "3岁以下覆盖人数 = 覆盖居民 × 该街道3岁以下人口占比（人口点的比例不一，为估算值）/ "
    "under-3 covered = residents covered × the unit's under-3 share (the population points' "
    "shares differ, so this is an estimate)"
)
UNDER3_UNKNOWN: Final = "3岁以下人口不详 / under-3 population unknown"


def change_columns() -> list[ColumnLabel]:
    """Labels of the fields of :class:`~tuoyu_api.schemas.UnitChange`."""
    return [ColumnLabel(name=k, label_zh=zh, label_en=en) for k, (zh, en) in CHANGE_LABELS.items()]


def _num(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _num(value)
    return round(number) if number is not None else None


def _bool(value: Any) -> bool | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return bool(value)


def _diff(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _under3(covered: float | None, population: float | None, under3: float | None) -> float | None:
    """Children under 3 among ``covered`` residents at the unit's under-3 share."""
    if covered is None or population is None or under3 is None:
        return None
    if population <= 0:
        return 0.0 if covered == 0 else None
    return covered * under3 / population


def _change(before: Mapping[Any, Any], after: Mapping[Any, Any]) -> UnitChange:
    population = _num(after.get("population"))
    under3 = _num(after.get("population_under3"))
    cov_b = _num(before.get("covered_population"))
    cov_a = _num(after.get("covered_population"))
    u3_b = _under3(cov_b, population, under3)
    u3_a = _under3(cov_a, population, under3)
    pct_b = _num(before.get("coverage_pct"))
    pct_a = _num(after.get("coverage_pct"))
    p_b = _num(before.get("puhui_coverage_pct"))
    p_a = _num(after.get("puhui_coverage_pct"))
    code = after.get("code", before.get("code"))
    name = after.get("name", before.get("name"))
    return UnitChange(
        code=None if code is None else str(code),
        name=None if name is None or name is pd.NA else str(name),
        population=_round(population, 1),
        population_under3=_round(under3, 1),
        covered_before=_round(cov_b, 1),
        covered_after=_round(cov_a, 1),
        covered_change=_round(_diff(cov_a, cov_b), 1),
        under3_covered_before=_round(u3_b, 1),
        under3_covered_after=_round(u3_a, 1),
        under3_covered_change=_round(_diff(u3_a, u3_b), 1),
        coverage_pct_before=_round(pct_b, 2),
        coverage_pct_after=_round(pct_a, 2),
        coverage_pp=_round(_diff(pct_a, pct_b), 2),
        puhui_coverage_pct_before=_round(p_b, 2),
        puhui_coverage_pct_after=_round(p_a, 2),
        puhui_coverage_pp=_round(_diff(p_a, p_b), 2),
        facilities_before=_int(before.get("facilities")),
        facilities_after=_int(after.get("facilities")),
        puhui_facilities_before=_int(before.get("puhui_facilities")),
        puhui_facilities_after=_int(after.get("puhui_facilities")),
        slots_before=_int(before.get("slots")),
        slots_after=_int(after.get("slots")),
        has_puhui_before=_bool(before.get("has_puhui")),
        has_puhui_after=_bool(after.get("has_puhui")),
    )


def unit_changes(before: pd.DataFrame, after: pd.DataFrame) -> list[UnitChange]:
    """Each unit of ``after`` with its row of ``before`` (matched on ``code``).

    Parameters
    ----------
    before, after
        Unit tables (:data:`tuoyu.indicators.summary.UNIT_COLUMNS`) now and in the
        scenario.

    Returns
    -------
    list of UnitChange
        In the order of ``after``; covered people rounded to 0.1, percentages to 0.01.

    Examples
    --------
    >>> b = pd.DataFrame({"code": ["1"], "name": ["甲街道"], "population": [1000.0],
    ...     "population_under3": [15.0], "covered_population": [600.0], "coverage_pct": [60.0]})
    >>> a = b.assign(covered_population=[800.0], coverage_pct=[80.0])
    >>> c = unit_changes(b, a)[0]
    >>> c.covered_change, c.under3_covered_change, c.coverage_pp
    (200.0, 3.0, 20.0)
    """
    rows_before = {str(r.get("code")): r for r in before.to_dict("records")}
    return [
        _change(rows_before.get(str(row.get("code")), {}), row) for row in after.to_dict("records")
    ]


def district_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> UnitChange:
    """The district's figures before and after, from two summaries
    (:meth:`tuoyu.workflow.core.AreaModel.summary`)."""

    def flat(summary: Mapping[str, Any]) -> dict[str, Any]:
        totals = dict(summary.get("totals") or {})
        indicators = summary.get("indicators") or {}
        values = {
            key: (indicators.get(key) or {}).get("value")
            for key in ("coverage_pct", "puhui_coverage_pct")
        }
        return {
            **totals,
            **values,
            "code": (summary.get("area") or {}).get("code"),
            "name": "全区 / District",
        }

    return _change(flat(before), flat(after))


def under3_method(layers: AreaLayers) -> str:
    """How under-3 children covered are counted in this area (see :data:`UNDER3_EXACT`).

    Exact when every population point's under-3 count is the same share of its residents
    within each unit; otherwise an estimate.
    """
    population = layers.population
    if population is None or "population_under3" not in population:
        return UNDER3_UNKNOWN
    pop = pd.to_numeric(population["population"], errors="coerce").to_numpy(dtype=float)
    u3 = pd.to_numeric(population["population_under3"], errors="coerce").to_numpy(dtype=float)
    usable = np.isfinite(pop) & np.isfinite(u3) & (pop > 0)
    if not usable.any():
        return UNDER3_UNKNOWN
    ratio = u3[usable] / pop[usable]
    groups = (
        population["unit_code"].astype(str).to_numpy()[usable]
        if "unit_code" in population
        else np.zeros(int(usable.sum()), dtype=object)
    )
    spread = pd.Series(ratio).groupby(groups).agg(lambda r: float(r.max() - r.min()))
    return UNDER3_EXACT if float(spread.max()) <= 1e-9 else UNDER3_ESTIMATED


# --- isochrones of planned facilities --------------------------------------------------------


def planned_isochrones(
    model: AreaModel,
    records: Sequence[Mapping[str, Any]],
    ids: Sequence[str],
    minutes: float,
) -> dict[str, Any]:
    """Walking isochrones of planned facilities as a GeoJSON FeatureCollection (WGS84).

    Parameters
    ----------
    model
        The area's model (its network and walking parameters; its facilities are not
        used or changed).
    records
        The planned facilities (WGS84 ``lon``/``lat``), at most
        :data:`MAX_PLANNED_ISOCHRONES` are drawn.
    ids
        Their ids in the scenario (``scenario-N`` when generated).
    minutes
        Walking time.

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", "features": [...], "minutes", "method",
        "skipped"}``; each feature's properties: ``facility_id``, ``name``, ``minutes``,
        ``walk_m``, ``method``, ``off_network``, ``area_m2``.
    """
    if not minutes > 0 or not math.isfinite(minutes):
        raise InputValidationError("isochrone_minutes must be > 0", field="isochrone_minutes")
    walk = model.area.walk
    budget_m = walk.metres_for(minutes)
    drawn = list(records)[:MAX_PLANNED_ISOCHRONES]
    skipped = len(records) - len(drawn)
    out: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [],
        "minutes": float(minutes),
        "walk_m": round(budget_m, 1),
        "method": None,
        "skipped": skipped,
        "note": None,
    }
    if not drawn:
        return out
    metric = model.layers.metric_crs
    to_metric = Transformer.from_crs(4326, metric, always_xy=True)
    to_wgs = Transformer.from_crs(metric, 4326, always_xy=True)
    lon = np.array([float(r["lon"]) for r in drawn])
    lat = np.array([float(r["lat"]) for r in drawn])
    x, y = to_metric.transform(lon, lat)
    if model.mode == "none":
        out["skipped"] = len(records)
        out["note"] = "no walking network: no isochrones / 无步行路网，无法绘制等时圈"
        return out
    # The library's own method for points (the one the facility isochrone endpoint
    # draws, so planned and registered facilities look alike).
    geoms, off, method = model.point_isochrones(x, y, minutes)
    out["method"] = method

    def to_wgs84(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        lo, la = to_wgs.transform(xy[:, 0], xy[:, 1])
        return np.round(np.column_stack([lo, la]), 6)

    for record, fid, geom, is_off in zip(drawn, ids, geoms, off, strict=False):
        area_m2 = float(geom.area)
        # Walk-field polygons are already simplified (and must not be again: they stay
        # inside the searched area only up to their own margin).
        shown = (
            geom
            if method == METHOD_WALK_FIELD
            else shapely.simplify(geom, ISOCHRONE_SIMPLIFY_M, preserve_topology=True)
        )
        name = record.get("name")
        out["features"].append(
            {
                "type": "Feature",
                "id": str(fid),
                "geometry": mapping(shapely.transform(shown, to_wgs84)),
                "properties": {
                    "facility_id": str(fid),
                    "name": None if name is None else str(name),
                    "minutes": float(minutes),
                    "walk_m": round(budget_m, 1),
                    "method": out["method"],
                    "off_network": is_off,
                    "area_m2": round(area_m2, 1),
                },
            }
        )
    return out


# --- the whole answer -------------------------------------------------------------------------


def validated_additions(state: AppState, area: StudyArea, body: ScenarioIn) -> list[dict[str, Any]]:
    """The scenario's additions checked like registry writes (lon/lat become WGS84).

    Raises
    ------
    InputValidationError
        ``field`` names the addition (``add.<i>.<field>``).
    """
    polygon = state.area_polygon(area.slug)
    records = []
    for i, facility in enumerate(body.add):
        try:
            records.append(validate_facility_write(facility, area, area_polygon=polygon))
        except InputValidationError as exc:
            field = f"add.{i}.{exc.field}" if exc.field else f"add.{i}"
            raise InputValidationError(f"add[{i}]: {exc.reason}", field=field) from exc
    return records


def _columns(names: list[str]) -> list[ColumnLabel]:
    return [ColumnLabel(name=n, label_zh=label(n, "zh"), label_en=label(n, "en")) for n in names]


def evaluate_scenario(
    state: AppState,
    area: StudyArea,
    analysis: AreaModel,
    body: ScenarioIn,
    *,
    isochrone_minutes: float | None = None,
) -> ScenarioOut:
    """The scenario's summary, unit table, before/after per unit and (when asked)
    the added facilities' isochrones; nothing is changed."""
    records = validated_additions(state, area, body)
    before_table = analysis.units()
    current = json_ready(analysis.summary())
    seq = state.analyses.seen_seq(area.slug)
    result = analysis.scenario(add=records, remove=body.remove)
    table: pd.DataFrame = result.results.table
    summary: dict[str, Any] = scrub_paths(json_ready(result.results.summary))
    comparison = {
        key: IndicatorChange(
            current=current["indicators"].get(key, {}).get("value"),
            scenario=entry.get("value"),
        )
        for key, entry in summary.get("indicators", {}).items()
        if isinstance(entry, dict)
    }
    added = list(result.added)
    added_records = [
        json_ready({**record, "id": fid}) for record, fid in zip(records, added, strict=True)
    ]
    isochrones = (
        planned_isochrones(analysis, records, added, float(isochrone_minutes))
        if isochrone_minutes is not None
        else None
    )
    return ScenarioOut(
        area=area.slug,
        version=result.version,
        added=added,
        removed=list(result.removed),
        comparison=comparison,
        summary=summary,
        columns=_columns([str(c) for c in table.columns]),
        units=table_records(table),
        changes=unit_changes(before_table, table),
        district=district_change(current, summary),
        change_columns=change_columns(),
        under3_method=under3_method(analysis.layers),
        added_records=added_records,
        isochrones=isochrones,
        registry_seq=seq,
    )


__all__ = [
    "CHANGE_LABELS",
    "MAX_PLANNED_ISOCHRONES",
    "change_columns",
    "district_change",
    "evaluate_scenario",
    "planned_isochrones",
    "under3_method",
    "unit_changes",
    "validated_additions",
]
