"""What-if scenarios for the service: before/after per 街道 in people and percentage
points, and the walking isochrones of planned (not registered) facilities.

:meth:`tuoyu.workflow.core.AreaModel.scenario` gives the per-unit table and summary of a
scenario; this module adds what the planner's workbench shows next to the map:

* :func:`unit_changes` — each unit's residents and under-3 children inside the service
  circle, before and after, and the coverage change in percentage points;
* :func:`planned_isochrones` — the isochrone of each added facility (the same method as
  ``GET …/facilities/{id}/isochrone``, :meth:`AreaModel.point_isochrones`, one bounded search per
  planned point; a circle of walk ÷ detour factor in ``straight_line`` areas);
* :func:`gap_layer` — the contiguous gap zones (:func:`tuoyu.indicators.gaps.uncovered_areas`:
  where residents are outside the service circle) for display: WGS84, simplified
  :data:`GAP_SIMPLIFY_M`, at most :data:`MAX_GAP_ZONES` zones (most people first, the cap
  stated), people per zone, the totals of *all* zones and the merge distance;
* :func:`evaluate_scenario` — all of it, plus the existing summary comparison, as
  :class:`~tuoyu_api.schemas.ScenarioOut` (``POST /areas/{area}/scenarios`` and the
  saved scenarios of :mod:`tuoyu_api.routers.workbench`).

Neither the registry nor the live analysis is changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import geopandas as gpd
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
from tuoyu.outputs.maps.common import display_geometries, geojson_geometries
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
MAX_GAP_ZONES: Final = 300
"""Most gap zones one answer draws (those with the most people; the totals count all)."""
GAP_SIMPLIFY_M: Final = 5.0
"""Display simplification of the gap zones (metres, before reprojecting)."""
GAP_COLORS: Final = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
"""Fill of the gap zones, few → many people (ColorBrewer YlOrRd, as the gap map)."""
GAP_UNITS: Final[dict[str, str]] = {
    "population": "人 / residents",
    "population_under3": "人 / children under 3",
    "area_m2": "平方米 / m²",
    "merge_distance_m": "米 / m",
}

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


# --- the gap layer ------------------------------------------------------------------------------


def _nice(value: float) -> float:
    """``value`` rounded to two significant digits (legend breaks).

    >>> _nice(1234.5), _nice(87.0), _nice(0.0)
    (1200.0, 87.0, 0.0)
    """
    if value <= 0 or not math.isfinite(value):
        return 0.0
    digits = 1 - math.floor(math.log10(value))
    return float(round(value, digits))


def people_breaks(people: npt.ArrayLike, classes: int = len(GAP_COLORS)) -> list[float]:
    """Class breaks of people per zone: quantiles of the populated zones, rounded to two
    significant digits, strictly increasing (fewer when the zones are alike).

    >>> people_breaks([10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
    [28.0, 46.0, 64.0, 82.0]
    >>> people_breaks([])
    []
    """
    values = np.asarray(people, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return []
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, classes + 1)[1:-1])
    out: list[float] = []
    for q in quantiles:
        nice = _nice(float(q))
        if nice > 0 and (not out or nice > out[-1]):
            out.append(nice)
    return out


def _total(values: pd.Series) -> float | None:
    """Sum of a column, ``None`` when any value is unknown."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        return None
    return round(float(numbers.sum()), 1)


def gap_layer(
    gaps: gpd.GeoDataFrame,
    *,
    minutes: float,
    walk_m: float,
    max_zones: int = MAX_GAP_ZONES,
    simplify_m: float = GAP_SIMPLIFY_M,
) -> dict[str, Any]:
    """Gap zones for display, as a GeoJSON FeatureCollection (WGS84).

    Parameters
    ----------
    gaps
        :attr:`tuoyu.workflow.steps.IndicatorResults.gaps` (any CRS; ``gap_id`` 1 = most
        people, ``attrs`` with ``method``, ``merge_distance_m``, ``points_walk_unknown``
        and, when none were computed, ``skipped``).
    minutes, walk_m
        The service circle (walking minutes and metres) the zones are outside of.
    max_zones
        Zones drawn at most (the ones with the most people); the totals count every zone.
    simplify_m
        Douglas–Peucker tolerance for display (metres).

    Returns
    -------
    dict
        ``features`` (properties ``gap_id``, ``population``, ``population_under3``,
        ``points``, ``unit_codes``, ``unit_names``, ``area_m2``); ``zones`` (all),
        ``shown``, ``max_zones``; ``residents_outside`` and ``under3_outside`` (all zones;
        under-3 ``None`` when unknown somewhere), ``residents_outside_shown``;
        ``merge_distance_m``, ``method``, ``simplify_m``, ``minutes``, ``walk_m``;
        ``breaks`` and ``colors`` of the people per zone; ``units`` of the figures;
        ``skipped`` (why none were computed) and ``points_walk_unknown``.
    """
    ordered = gaps.sort_values("gap_id", kind="stable") if "gap_id" in gaps else gaps
    shown = gpd.GeoDataFrame(ordered.iloc[: max(0, int(max_zones))])
    shown.attrs = {}
    people = pd.to_numeric(ordered.get("population", pd.Series(dtype=float)), errors="coerce")
    merge = gaps.attrs.get("merge_distance_m")
    skipped = gaps.attrs.get("skipped")
    unknown = gaps.attrs.get("points_walk_unknown")
    n_zones, n_shown = len(ordered), len(shown)
    note = None
    if n_shown < n_zones:
        note = (
            f"显示居民最多的 {n_shown} 片缺口区（共 {n_zones} 片），合计数字含全部缺口区 / "
            f"the {n_shown} zones with the most residents are drawn (of {n_zones}); the "
            "totals count every zone"
        )
    features: list[dict[str, Any]] = []
    if n_shown:
        geoms = geojson_geometries(display_geometries(shown, simplify_m))
        for row, geom in zip(shown.to_dict("records"), geoms, strict=True):
            features.append(
                {
                    "type": "Feature",
                    "id": _int(row.get("gap_id")),
                    "geometry": geom,
                    "properties": {
                        "gap_id": _int(row.get("gap_id")),
                        "population": _round(_num(row.get("population")), 1),
                        "population_under3": _round(_num(row.get("population_under3")), 1),
                        "points": _int(row.get("points")),
                        "unit_codes": _text(row.get("unit_codes")),
                        "unit_names": _text(row.get("unit_names")),
                        "area_m2": _round(_num(row.get("area_m2")), 0),
                    },
                }
            )
    return {
        "type": "FeatureCollection",
        "features": features,
        "zones": n_zones,
        "shown": n_shown,
        "max_zones": int(max_zones),
        "residents_outside": round(float(people.sum()), 1) if n_zones else 0.0,
        "under3_outside": _total(ordered["population_under3"])
        if "population_under3" in ordered
        else None,
        "residents_outside_shown": round(float(people.iloc[:n_shown].sum()), 1) if n_zones else 0.0,
        "method": gaps.attrs.get("method"),
        "merge_distance_m": _num(merge),
        "simplify_m": float(simplify_m),
        "minutes": float(minutes),
        "walk_m": round(float(walk_m), 1),
        "breaks": people_breaks(people.to_numpy(dtype=float, na_value=np.nan)),
        "colors": list(GAP_COLORS),
        "units": dict(GAP_UNITS),
        "skipped": None if skipped is None else str(skipped),
        "points_walk_unknown": _int(unknown),
        "note": note,
    }


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def scenario_gaps(
    before: gpd.GeoDataFrame, after: gpd.GeoDataFrame, area: StudyArea
) -> dict[str, Any]:
    """The scenario's gap layer (:func:`gap_layer` of ``after``) with the residents and
    children under 3 outside the circle before and after.

    ``residents_outside_change`` is minus the district's ``covered_change`` (both count
    the same population points), up to rounding.
    """
    walk = area.walk
    minutes = float(walk.max_minutes)
    walk_m = walk.metres_for(minutes)
    layer = gap_layer(after, minutes=minutes, walk_m=walk_m)
    now = gap_layer(before, minutes=minutes, walk_m=walk_m, max_zones=0)
    layer["zones_before"] = now["zones"]
    layer["residents_outside_before"] = now["residents_outside"]
    layer["residents_outside_change"] = _round(
        _diff(layer["residents_outside"], now["residents_outside"]), 1
    )
    layer["under3_outside_before"] = now["under3_outside"]
    layer["under3_outside_change"] = _round(
        _diff(layer["under3_outside"], now["under3_outside"]), 1
    )
    return layer


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
    gaps: bool = False,
) -> ScenarioOut:
    """The scenario's summary, unit table, before/after per unit and (when asked)
    the added facilities' isochrones and the gap zones after the scenario; nothing is
    changed."""
    records = validated_additions(state, area, body)
    current_results = analysis.results()
    before_table = current_results.table.copy()
    current = json_ready(current_results.summary)
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
        gaps=scenario_gaps(current_results.gaps, result.results.gaps, area) if gaps else None,
        registry_seq=seq,
    )


__all__ = [
    "CHANGE_LABELS",
    "GAP_COLORS",
    "MAX_GAP_ZONES",
    "MAX_PLANNED_ISOCHRONES",
    "change_columns",
    "district_change",
    "evaluate_scenario",
    "gap_layer",
    "people_breaks",
    "planned_isochrones",
    "scenario_gaps",
    "under3_method",
    "unit_changes",
    "validated_additions",
]
