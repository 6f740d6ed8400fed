"""The planner's scenario workbench: a map page and saved what-if scenarios.

* ``GET /areas/{area}/workbench`` — the page (Leaflet inlined, no CDN): existing
  facilities and 街道 boundaries; a click adds a planned facility, a drag moves it, its
  popup removes it; every change asks ``POST /areas/{area}/scenarios`` and shows each
  街道 before and after in people and percentage points, with the planned facilities'
  isochrones and the gap zones left after the change (residents still outside the
  circle, before and after). Clicks are recorded in the datum of the basemap shown (WGS84 on
  OpenStreetMap and 天地图, GCJ-02 on 高德) and sent with that ``crs``, as the facility
  map does.
* ``GET /areas/{area}/workbench/units`` — the 街道 polygons (GeoJSON, WGS84).
* ``GET /areas/{area}/workbench/gaps`` — the gap zones as they are now (the layer the page
  shows before any change, in the form the scenario answer gives with ``gaps=true``).
* Saved scenarios (table ``saved_scenarios``, revision 0004): ``POST`` (token) computes
  the scenario and stores its additions, removals and per-街道 results with the token's
  name as author; ``GET`` lists, reads, compares two side by side and exports
  (``format=csv|xlsx|geojson|html``; ``html`` is a self-contained read-only page with the
  map, the table and the credits); ``DELETE`` (token). Saves and deletions leave one row
  each in ``scenario_audit`` (``GET …/saved-scenarios/audit``, token). The facility
  registry is never touched.
"""

from __future__ import annotations

import threading
import weakref
from importlib.resources import files
from typing import Annotated, Any, Final, Literal

import geopandas as gpd
from fastapi import APIRouter, Query, Response, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tuoyu.config.study_area import StudyArea
from tuoyu.errors import ConflictError, InputValidationError, NotFoundError
from tuoyu.layers.schema import FACILITY_KINDS
from tuoyu.outputs.maps.basemaps import basemaps
from tuoyu.outputs.maps.common import assets_html, display_geometries, geojson_geometries
from tuoyu.workflow.core import AreaModel

from tuoyu_api.analysis_service import AnalysisService
from tuoyu_api.deps import (
    ActorDep,
    AnalysisAsyncDep,
    AnalysisDep,
    AppState,
    AreaAsyncDep,
    AreaDep,
    SessionDep,
    StateDep,
)
from tuoyu_api.models import SavedScenario, ScenarioAudit, utc_now
from tuoyu_api.request_limits import MAX_SCENARIO_ADDITIONS
from tuoyu_api.routers import error_responses
from tuoyu_api.routers.analysis import area_attribution
from tuoyu_api.scenario_export import (
    csv_bytes,
    geojson_bytes,
    html_page,
    script_json,
    xlsx_bytes,
)
from tuoyu_api.scenario_service import change_columns, evaluate_scenario, gap_layer
from tuoyu_api.schemas import (
    ComparedUnit,
    ErrorResponse,
    IndicatorChange,
    SavedScenarioIn,
    SavedScenarioInfo,
    SavedScenarioOut,
    ScenarioAuditRecord,
    ScenarioComparison,
    ScenarioIn,
    ScenarioOut,
    UnitChange,
)
from tuoyu_api.serialize import json_ready
from tuoyu_api.shedding import run_expensive

router = APIRouter(tags=["workbench"])

PAGE: Final = "workbench.html"
SCRIPT: Final = "workbench.js"
EXPORT_PAGE: Final = "export.html"
EXPORT_SCRIPT: Final = "export.js"
MAP_SCRIPT: Final = "wb_map.js"
"""The map both pages draw on, inlined before each page's own script."""
UNIT_SIMPLIFY_M: Final = 5.0
"""Display simplification of the 街道 polygons (metres)."""


def _page_script(name: str) -> str:
    """A page's script with the shared map (:data:`MAP_SCRIPT`) before it."""
    folder = files("tuoyu_api").joinpath("static_workbench")
    return (
        folder.joinpath(MAP_SCRIPT).read_text("utf-8")
        + "\n"
        + folder.joinpath(name).read_text("utf-8")
    )


ScenarioIdPath = Annotated[
    int, PathParam(ge=1, le=2**31 - 1, description="saved scenario id / 方案编号", examples=[1])
]
ScenarioIdQuery = Annotated[int, Query(ge=1, le=2**31 - 1, description="saved scenario id")]

_UNITS: weakref.WeakKeyDictionary[AnalysisService, dict[str, dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)
"""The 街道 polygons served, per app (its analysis service) and area."""
_UNITS_GUARD = threading.Lock()


# --- the page ----------------------------------------------------------------------------------


def _html_text(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _bounds(state: AppState, area: StudyArea) -> list[list[float]] | None:
    polygon = state.area_polygon(area.slug)
    if polygon is None or polygon.is_empty:
        return None
    west, south, east, north = polygon.bounds
    return [[south, west], [north, east]]


def _basemaps(tianditu_key: str | None) -> list[dict[str, Any]]:
    return [
        {
            "key": b.key,
            "name": b.name_zh if b.name_zh == b.name_en else f"{b.name_zh} / {b.name_en}",
            "url": b.url,
            "labelUrl": b.label_url,
            "attribution": b.attribution,
            "datum": b.datum,
            "subdomains": b.subdomains,
            "maxZoom": b.max_zoom,
        }
        for b in basemaps("zh", tianditu_key)
    ]


def page_config(state: AppState, area: StudyArea) -> dict[str, Any]:
    """What the page needs besides the API: area, basemaps with their datum, walk, kinds."""
    walk = area.walk
    return {
        "area": area.slug,
        "name": area.area.name,
        "nameEn": area.area.name_en,
        "bounds": _bounds(state, area),
        "minutes": walk.max_minutes,
        "speedKmh": walk.speed_kmh,
        "walkM": round(walk.metres_for(walk.max_minutes), 1),
        "maxAdditions": MAX_SCENARIO_ADDITIONS,
        "kinds": [{"value": k, "en": en} for k, en in FACILITY_KINDS.items()],
        "basemaps": _basemaps(state.settings.tianditu_key),
    }


@router.get(
    "/areas/{area}/workbench",
    response_class=HTMLResponse,
    summary="Scenario workbench page / 情景模拟工作台",
    responses={
        404: {
            "model": ErrorResponse,
            "description": "Unknown area / 未找到",
            "content": {"application/json": {}},
        }
    },
)
def get_workbench(area: AreaDep, state: StateDep) -> HTMLResponse:
    """The planner's workbench: add, move and remove planned facilities on a map and
    see each 街道 before and after; save, reload, compare and export scenarios.

    A static page with Leaflet inlined (opens without any CDN); its data come from this
    API, and saving needs the token typed into it.
    """
    folder = files("tuoyu_api").joinpath("static_workbench")
    page = folder.joinpath(PAGE).read_text("utf-8")
    script = _page_script(SCRIPT)
    replacements = {
        "{{AREA_NAME}}": _html_text(area.area.name),
        "{{AREA_NAME_EN}}": _html_text(area.area.name_en or ""),
        "{{ASSETS}}": assets_html(cluster=False),
        "{{CONFIG}}": script_json(page_config(state, area)),
        "{{SCRIPT}}": script.replace("</script", "<\\/script"),
    }
    for key, value in replacements.items():
        page = page.replace(key, value)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


def units_geojson(state: AppState, area: StudyArea) -> dict[str, Any]:
    """The area's 街道 polygons in WGS84 (simplified for display), cached per area."""
    with _UNITS_GUARD:
        cached = _UNITS.get(state.analyses, {}).get(area.slug)
    if cached is not None:
        return cached
    layers = state.analyses.layers(area)
    units = layers.units
    features: list[dict[str, Any]] = []
    if units is not None and layers.units_kind == "jiedao" and len(units):
        frame = gpd.GeoDataFrame(units)
        geoms = geojson_geometries(display_geometries(frame, UNIT_SIMPLIFY_M))
        for (_, row), geom in zip(frame.iterrows(), geoms, strict=True):
            features.append(
                {
                    "type": "Feature",
                    "geometry": geom,
                    "properties": {"code": str(row["code"]), "name": json_ready(row.get("name"))},
                }
            )
    collection = {
        "type": "FeatureCollection",
        "area": area.slug,
        "units_kind": layers.units_kind,
        "features": features,
    }
    with _UNITS_GUARD:
        _UNITS.setdefault(state.analyses, {})[area.slug] = collection
    return collection


@router.get(
    "/areas/{area}/workbench/units",
    summary="街道 boundaries / 街道边界 (GeoJSON)",
    responses=error_responses(400, 404),
)
def get_workbench_units(area: AreaDep, state: StateDep) -> dict[str, Any]:
    """The 街道 polygons of the area (WGS84, simplified 5 m for display); empty when
    the area has no 街道 polygons (``units_kind`` says what it has)."""
    return units_geojson(state, area)


@router.get(
    "/areas/{area}/workbench/gaps",
    summary="Gap zones now, for display / 当前缺口区（15分钟圈外居民，GeoJSON）",
    responses=error_responses(400, 404),
)
def get_workbench_gaps(area: AreaDep, analysis: AnalysisDep) -> dict[str, Any]:
    """The contiguous gap zones as they are now — where residents are outside the
    service circle — as the scenario answer gives them with ``gaps=true``: WGS84,
    simplified for display, the zones with the most people first and at most
    ``max_zones`` of them drawn (the totals count all), people per zone, the merge
    distance and the class breaks of people per zone."""
    walk = area.walk
    layer = gap_layer(
        analysis.results().gaps,
        minutes=float(walk.max_minutes),
        walk_m=walk.metres_for(walk.max_minutes),
    )
    layer["area"] = area.slug
    layer["version"] = analysis.version
    return layer


# --- saved scenarios: helpers ---------------------------------------------------------------


def _info(row: SavedScenario) -> SavedScenarioInfo:
    district = row.results.get("district")
    return SavedScenarioInfo(
        id=row.id,
        area=row.area,
        name=row.name,
        author=row.author,
        created_at=row.created_at,
        note=row.note,
        additions=len(row.additions),
        removals=len(row.removals),
        district=UnitChange.model_validate(district) if district else None,
    )


def _out(row: SavedScenario) -> SavedScenarioOut:
    results = row.results
    info = _info(row)
    return SavedScenarioOut(
        **info.model_dump(),
        add=list(row.additions),
        remove=list(row.removals),
        changes=[UnitChange.model_validate(c) for c in results.get("changes", [])],
        change_columns=change_columns(),
        under3_method=results.get("under3_method"),
        registry_seq=results.get("registry_seq"),
        comparison={
            k: IndicatorChange.model_validate(v) for k, v in results.get("comparison", {}).items()
        },
    )


def _load(session: Session, area: str, scenario_id: int) -> SavedScenario:
    row = session.scalars(
        select(SavedScenario).where(SavedScenario.area == area, SavedScenario.id == scenario_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no saved scenario {scenario_id} in area '{area}'")
    return row


def _audit_view(row: SavedScenario) -> dict[str, Any]:
    """What the audit log keeps of a saved scenario (not its per-街道 results)."""
    district = row.results.get("district") or {}
    return {
        "id": row.id,
        "name": row.name,
        "author": row.author,
        "note": row.note,
        "add": row.additions,
        "remove": row.removals,
        "registry_seq": row.results.get("registry_seq"),
        "covered_change": district.get("covered_change"),
        "coverage_pp": district.get("coverage_pp"),
    }


def _removed_record(analysis: AreaModel, facility_id: str) -> dict[str, Any]:
    try:
        record = analysis.facility(facility_id)
    except NotFoundError:
        return {"id": facility_id}
    keys = ("id", "name", "kind", "puhui", "slots", "lon", "lat")
    out: dict[str, Any] = json_ready({k: record.get(k) for k in keys})
    out["lon_wgs84"], out["lat_wgs84"] = out.get("lon"), out.get("lat")
    out["crs"] = "wgs84"
    return out


def _additions(body: SavedScenarioIn, result: ScenarioOut) -> list[dict[str, Any]]:
    """The additions as sent, with their scenario id, WGS84 position and the values
    the scenario used (defaults of the area filled)."""
    out = []
    for sent, record in zip(body.add, result.added_records, strict=True):
        item: dict[str, Any] = sent.model_dump(mode="json", exclude_unset=True)
        item.setdefault("crs", "wgs84")
        for key in ("name", "kind", "puhui", "slots"):
            item[key] = record.get(key)
        item["id"] = record.get("id")
        item["lon_wgs84"] = record.get("lon")
        item["lat_wgs84"] = record.get("lat")
        out.append(item)
    return out


def _existing(analysis: AreaModel) -> list[dict[str, Any]]:
    """The facilities the scenario starts from, compact (for the read-only page's map)."""
    out = []
    for fid in analysis.facility_ids():
        record = analysis.facility(fid)
        out.append(
            {k: record.get(k) for k in ("id", "name", "kind", "puhui", "slots", "lon", "lat")}
        )
    dumped: list[dict[str, Any]] = json_ready(out)
    return dumped


def _results(
    result: ScenarioOut, removed: list[dict[str, Any]], existing: list[dict[str, Any]]
) -> dict[str, Any]:
    dumped: dict[str, Any] = json_ready(
        {
            "changes": [c.model_dump() for c in result.changes],
            "district": result.district.model_dump() if result.district else None,
            "under3_method": result.under3_method,
            "registry_seq": result.registry_seq,
            "version": result.version,
            "added": result.added,
            "removed_records": removed,
            "comparison": {k: v.model_dump() for k, v in result.comparison.items()},
            "isochrones": result.isochrones,
            "gaps": result.gaps,
            "existing": existing,
        }
    )
    return dumped


# --- saved scenarios: writes ----------------------------------------------------------------


@router.post(
    "/areas/{area}/saved-scenarios",
    response_model=SavedScenarioOut,
    status_code=status.HTTP_201_CREATED,
    summary="Save a scenario / 保存情景方案 (token)",
    responses=error_responses(400, 401, 403, 404, 409, 422, 429, 503),
)
async def post_saved_scenario(
    area: AreaAsyncDep,
    analysis: AnalysisAsyncDep,
    body: SavedScenarioIn,
    actor: ActorDep,
    state: StateDep,
    response: Response,
) -> SavedScenarioOut:
    """Compute the scenario and save it by name, with its per-街道 results, the token's
    name as author and an audit row. The facility registry is not changed.

    A name already saved in the area is a 409."""
    state.write_rate.check(actor, "write")
    state.expensive_rate.check(f"token:{actor}", "expensive")
    if len(body.add) > MAX_SCENARIO_ADDITIONS:
        raise InputValidationError(
            f"a scenario adds at most {MAX_SCENARIO_ADDITIONS} facilities, got {len(body.add)}",
            field="add",
        )
    scenario = ScenarioIn(add=body.add, remove=body.remove)

    def compute() -> tuple[ScenarioOut, list[dict[str, Any]], list[dict[str, Any]]]:
        removed = [_removed_record(analysis, fid) for fid in dict.fromkeys(body.remove)]
        existing = _existing(analysis)
        result = evaluate_scenario(
            state, area, analysis, scenario, isochrone_minutes=area.walk.max_minutes, gaps=True
        )
        return result, removed, existing

    result, removed, existing = await run_expensive(
        state.slots["scenarios"], state.settings.expensive_time_limit_s, compute
    )

    def store() -> SavedScenarioOut:
        with state.database.session() as session:
            taken = session.scalars(
                select(SavedScenario.id).where(
                    SavedScenario.area == area.slug, SavedScenario.name == body.name
                )
            ).first()
            if taken is not None:
                raise ConflictError(
                    f"a scenario named '{body.name}' is already saved in {area.slug} "
                    f"(id {taken}); choose another name"
                )
            row = SavedScenario(
                area=area.slug,
                name=body.name,
                author=actor,
                created_at=utc_now(),
                note=body.note,
                additions=_additions(body, result),
                removals=list(result.removed),
                results=_results(result, removed, existing),
            )
            session.add(row)
            try:
                session.flush()
                session.add(
                    ScenarioAudit(
                        area=area.slug,
                        scenario_id=row.id,
                        action="save",
                        actor=actor,
                        before=None,
                        after=_audit_view(row),
                    )
                )
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                raise ConflictError(
                    f"a scenario named '{body.name}' is already saved in {area.slug}"
                ) from exc
            return _out(row)

    saved = await run_in_threadpool(store)
    response.headers["Location"] = f"/areas/{area.slug}/saved-scenarios/{saved.id}"
    return saved


@router.delete(
    "/areas/{area}/saved-scenarios/{scenario_id:int}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a saved scenario / 删除情景方案 (token)",
    responses=error_responses(401, 403, 404, 422, 429),
)
def delete_saved_scenario(
    area: AreaDep, scenario_id: ScenarioIdPath, actor: ActorDep, state: StateDep
) -> Response:
    """Delete a saved scenario (the audit log keeps what it was)."""
    state.write_rate.check(actor, "write")
    with state.database.session() as session:
        row = _load(session, area.slug, scenario_id)
        session.add(
            ScenarioAudit(
                area=area.slug,
                scenario_id=row.id,
                action="delete",
                actor=actor,
                before=_audit_view(row),
                after=None,
            )
        )
        session.delete(row)
        session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- saved scenarios: reads ---------------------------------------------------------------------


@router.get(
    "/areas/{area}/saved-scenarios",
    response_model=list[SavedScenarioInfo],
    summary="Saved scenarios / 已保存的情景方案",
    responses=error_responses(404, 422),
)
def list_saved_scenarios(
    area: AreaDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[SavedScenarioInfo]:
    """The area's saved scenarios, newest first, with their district results."""
    rows = session.scalars(
        select(SavedScenario)
        .where(SavedScenario.area == area.slug)
        .order_by(SavedScenario.created_at.desc(), SavedScenario.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [_info(r) for r in rows]


@router.get(
    "/areas/{area}/saved-scenarios/audit",
    response_model=list[ScenarioAuditRecord],
    summary="Saved-scenario audit log / 情景方案变更记录 (token)",
    responses=error_responses(401, 403, 404, 422),
)
def get_scenario_audit(
    area: AreaDep,
    actor: ActorDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ScenarioAuditRecord]:
    """Saves and deletions of the area's scenarios, newest first (who, when, what)."""
    rows = session.scalars(
        select(ScenarioAudit)
        .where(ScenarioAudit.area == area.slug)
        .order_by(ScenarioAudit.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [
        ScenarioAuditRecord(
            id=r.id,
            area=r.area,
            scenario_id=r.scenario_id,
            action=r.action,  # type: ignore[arg-type]
            actor=r.actor,
            at=r.at,
            before=r.before,
            after=r.after,
        )
        for r in rows
    ]


@router.get(
    "/areas/{area}/saved-scenarios/compare",
    response_model=ScenarioComparison,
    summary="Two saved scenarios side by side / 两个方案并排比较",
    responses=error_responses(404, 422),
)
def compare_saved_scenarios(
    area: AreaDep, session: SessionDep, a: ScenarioIdQuery, b: ScenarioIdQuery
) -> ScenarioComparison:
    """Each 街道's change in people and percentage points under scenario ``a`` and
    ``b`` (as computed when each was saved), and the district's."""
    row_a = _load(session, area.slug, a)
    row_b = _load(session, area.slug, b)
    out_a, out_b = _out(row_a), _out(row_b)
    changes_b = {c.code: c for c in out_b.changes}
    seen: set[str | None] = set()
    units: list[ComparedUnit] = []
    for change in out_a.changes:
        seen.add(change.code)
        units.append(
            ComparedUnit(code=change.code, name=change.name, a=change, b=changes_b.get(change.code))
        )
    for change in out_b.changes:
        if change.code not in seen:
            units.append(ComparedUnit(code=change.code, name=change.name, a=None, b=change))
    district = ComparedUnit(code=None, name="全区 / District", a=out_a.district, b=out_b.district)
    return ScenarioComparison(
        area=area.slug,
        a=_info(row_a),
        b=_info(row_b),
        change_columns=change_columns(),
        units=units,
        district=district,
        same_base=out_a.registry_seq == out_b.registry_seq,
    )


@router.get(
    "/areas/{area}/saved-scenarios/{scenario_id:int}",
    response_model=SavedScenarioOut,
    summary="A saved scenario / 情景方案",
    responses=error_responses(404, 422),
)
def get_saved_scenario(
    area: AreaDep, scenario_id: ScenarioIdPath, session: SessionDep
) -> SavedScenarioOut:
    """A saved scenario: additions, removals and its per-街道 results when saved."""
    return _out(_load(session, area.slug, scenario_id))


EXPORT_TYPES: Final = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "geojson": "application/geo+json",
    "html": "text/html; charset=utf-8",
}


def _export_html(
    state: AppState, area: StudyArea, row: SavedScenario, saved: dict[str, Any]
) -> str:
    """The read-only page of a saved scenario (see :func:`tuoyu_api.scenario_export.html_page`)."""
    analysis = state.analyses.current(area)
    existing = row.results.get("existing")
    existing_note = None
    if existing is None:
        # Saved before the facilities were kept with the scenario: the registry now.
        existing = _existing(analysis)
        seq = state.analyses.seen_seq(area.slug)
        if seq != saved.get("registry_seq"):
            existing_note = (
                f"现有机构为导出时的登记库状态（变更序号 {seq}），方案计算于变更序号 "
                f"{saved.get('registry_seq')} / existing facilities as in the registry at "
                f"export (change {seq}); the scenario was computed at change "
                f"{saved.get('registry_seq')}"
            )
    walk = area.walk
    folder = files("tuoyu_api").joinpath("static_workbench")
    return html_page(
        saved,
        template=folder.joinpath(EXPORT_PAGE).read_text("utf-8"),
        script=_page_script(EXPORT_SCRIPT),
        assets=assets_html(cluster=False),
        area_name=area.area.name,
        area_name_en=area.area.name_en,
        attribution=area_attribution(analysis, area, state.settings),
        map_data={
            "area": area.slug,
            "bounds": _bounds(state, area),
            # No 天地图 key in a file that is passed around.
            "basemaps": _basemaps(None),
            "units": units_geojson(state, area),
            "existing": existing,
            "minutes": walk.max_minutes,
            "walkM": round(walk.metres_for(walk.max_minutes), 1),
        },
        existing_note=existing_note,
    )


@router.get(
    "/areas/{area}/saved-scenarios/{scenario_id:int}/export",
    response_class=Response,
    summary="Export a saved scenario / 导出情景方案 (CSV, XLSX, GeoJSON, HTML)",
    responses={
        200: {
            "description": "CSV (UTF-8 with BOM), XLSX, GeoJSON (WGS84) or a self-contained "
            "read-only HTML page",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                EXPORT_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
                "application/geo+json": {"schema": {"type": "object"}},
                "text/html": {"schema": {"type": "string"}},
            },
        },
        **error_responses(404, 422),
    },
)
def export_saved_scenario(
    area: AreaDep,
    scenario_id: ScenarioIdPath,
    session: SessionDep,
    state: StateDep,
    format: Annotated[Literal["csv", "xlsx", "geojson", "html"], Query()] = "csv",
) -> Response:
    """The scenario's per-街道 before/after table (CSV, XLSX with the facilities and a
    notes sheet), its facilities, isochrones, gap zones and 街道 results (GeoJSON), or
    a self-contained read-only page (HTML: the map, the table, the scenario's name,
    author, date and registry change number and the data credits; opens from a file
    without any server or CDN). Text a spreadsheet would run as a formula is
    neutralised; text in the page is HTML-escaped."""
    row = _load(session, area.slug, scenario_id)
    saved = _out(row).model_dump(mode="json")
    saved["removed_records"] = row.results.get("removed_records", [])
    saved["isochrones"] = row.results.get("isochrones")
    saved["gaps"] = row.results.get("gaps")
    if format == "csv":
        body = csv_bytes(saved)
    elif format == "xlsx":
        body = xlsx_bytes(saved)
    elif format == "html":
        body = _export_html(state, area, row, saved).encode("utf-8")
    else:
        body = geojson_bytes(saved, units_geojson(state, area))
    filename = f"{area.slug}-scenario-{row.id}.{format}"
    return Response(
        body,
        media_type=EXPORT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
