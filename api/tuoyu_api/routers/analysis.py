"""Analysis endpoints: nearest facilities, isochrones, per-unit table, summary, gaps, maps
and what-if scenarios — thin wrappers over :class:`tuoyu.workflow.core.AreaModel`.

Every endpoint reads the area's live analysis (built on first use from the registry,
kept in step with registry writes). Results are JSON (GeoJSON in WGS84 for geometries)
with Chinese and English column labels; errors go through :mod:`tuoyu_api.errors`.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Body, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse
from shapely.geometry import mapping
from tuoyu import OSM_ATTRIBUTION
from tuoyu.config.data_registry import load_registry, resolve_data_dir
from tuoyu.config.study_area import StudyArea
from tuoyu.errors import InputValidationError, TuoyuError
from tuoyu.labels import label
from tuoyu.siting.plan import data_credit, siting_summary
from tuoyu.workflow.core import AreaModel

from tuoyu_api.deps import (
    ActorDep,
    AnalysesDep,
    AnalysisAsyncDep,
    AnalysisDep,
    AreaAsyncDep,
    AreaDep,
    ClientKeyDep,
    SettingsDep,
    StateDep,
)
from tuoyu_api.public import scrub_paths
from tuoyu_api.request_limits import (
    MAX_NEAREST_K,
    MAX_NEAREST_MINUTES,
    MAX_SCENARIO_ADDITIONS,
    SITES_TIME_LIMIT_S,
)
from tuoyu_api.routers import error_responses
from tuoyu_api.routers.facilities import FacilityIdPath, facility_attribution
from tuoyu_api.scenario_service import evaluate_scenario
from tuoyu_api.schemas import (
    SCENARIO_EXAMPLE,
    UNIT_CODE_PATTERN,
    ColumnLabel,
    GapCollection,
    GapFeature,
    GapProperties,
    InputCRS,
    IsochroneFeature,
    NearestResponse,
    ScenarioIn,
    ScenarioOut,
    SitesIn,
    SitesOut,
    UnitResponse,
    UnitsResponse,
)
from tuoyu_api.serialize import json_ready, nearest_rows, sites_collection, table_records
from tuoyu_api.settings import ApiSettings
from tuoyu_api.shedding import run_expensive

router = APIRouter(tags=["analysis"])

MAP_NEAREST_URL = "../nearest?lon={lon}&lat={lat}&crs={crs}&minutes={minutes}"
MAP_ISOCHRONE_URL = "../facilities/{id}/isochrone?minutes={minutes}"
"""The isochrone URL template of the served facility map (fetched on click)."""
"""The nearest-facility URL template the served facility map calls: relative to the page
at ``/areas/{area}/maps/{name}`` it is ``/areas/{area}/nearest``, behind any proxy prefix."""

Minutes = Annotated[
    float,
    Query(
        gt=0,
        le=MAX_NEAREST_MINUTES,
        description=f"walking time in minutes (≤ {MAX_NEAREST_MINUTES:g}) / 步行时间（分钟）",
        examples=[15],
    ),
]

_NEAREST_EXAMPLE = {
    "area": "chongqing-yuzhong",
    "point": {
        "lon": 106.5785,
        "lat": 29.5583,
        "crs": "wgs84",
        "lon_wgs84": 106.5785,
        "lat_wgs84": 29.5583,
    },
    "minutes": 15.0,
    "speed_kmh": 4.0,
    "walk_limit_m": 1000.0,
    "method": "network",
    "facilities": [
        {
            "facility_id": "YZ-TY-0001",
            "name": "渝中区解放碑社区托育服务中心",
            "kind": "综合托育服务中心",
            "kind_en": "Comprehensive childcare service centre",
            "puhui": True,
            "walk_m": 312.4,
            "walk_min": 4.69,
            "lon": 106.5775,
            "lat": 29.5583,
            "approximate": False,
        }
    ],
    "attribution": "© OpenStreetMap contributors; tuoyu-coverage 托育机构登记 registry",
}


def _json_example(example: Any, description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"description": description, "content": {"application/json": {"example": example}}}
    }


def _columns(names: list[str]) -> list[ColumnLabel]:
    return [ColumnLabel(name=n, label_zh=label(n, "zh"), label_en=label(n, "en")) for n in names]


def area_attribution(analysis: AreaModel, area: StudyArea, settings: ApiSettings) -> str:
    """Data sources of an area's results: OSM when used, the data files, the registry.

    Computed once per analysis (the files do not change; the registry part is fixed text).
    """
    cached = _ATTRIBUTIONS.get(analysis)
    if cached is not None:
        return cached
    parts: list[str] = [OSM_ATTRIBUTION] if analysis.layers.osm_used else []
    try:
        root: Path | None = resolve_data_dir(settings).resolve()
    except TuoyuError:
        root = None
    registry = load_registry(settings.project_data_dir)
    for role, path in analysis.layers.files.items():
        if role == "facilities" or root is None:
            continue  # the facility part comes from facility_attribution below
        try:
            entry = registry.get(path.resolve().relative_to(root).as_posix())
        except ValueError:
            entry = None
        if entry is not None and not (entry.attribution or "").startswith(OSM_ATTRIBUTION):
            parts.append(f"{entry.attribution or entry.origin} ({entry.licence})")
    parts.append(facility_attribution(area, settings))
    text = "; ".join(dict.fromkeys(parts))
    _ATTRIBUTIONS[analysis] = text
    return text


_ATTRIBUTIONS: weakref.WeakKeyDictionary[AreaModel, str] = weakref.WeakKeyDictionary()


def _units_kind(analysis: AreaModel) -> Literal["jiedao", "jiedao_table", "h3", "none"]:
    kind = analysis.layers.units_kind
    return kind if kind in ("jiedao", "jiedao_table", "h3") else "none"  # type: ignore[return-value]


# --- nearest / isochrone --------------------------------------------------------------------


@router.get(
    "/areas/{area}/nearest",
    response_model=NearestResponse,
    summary="Facilities within a walk / 步行可达的托育机构",
    responses={
        **error_responses(400, 404, 422),
        **_json_example(_NEAREST_EXAMPLE, "facilities within the walk, nearest first"),
    },
)
async def get_nearest(
    request: Request,
    area: AreaAsyncDep,
    analysis: AnalysisAsyncDep,
    lon: Annotated[
        float,
        Query(ge=-180, le=180, description="longitude in `crs` / 经度", examples=[106.5785]),
    ],
    lat: Annotated[
        float, Query(ge=-90, le=90, description="latitude in `crs` / 纬度", examples=[29.5583])
    ],
    crs: Annotated[
        InputCRS,
        Query(description="system of lon/lat: wgs84, gcj02 (高德/腾讯), bd09 (百度)"),
    ] = "wgs84",
    minutes: Minutes = 15.0,
    k: Annotated[int, Query(ge=1, le=MAX_NEAREST_K, description="most facilities returned")] = 20,
) -> JSONResponse:
    """Facilities reachable on foot within ``minutes`` of a point, by walking time.

    Walking distances are shortest paths on the OSM walking network (the straight leg
    to the nearest walkable way counts). A point farther than the snapping limit from
    every way is refused (422 ``off_network``), a point outside the study area too
    (422); an area without a walking network answers 400 ``no_network``.
    """
    # The hot path of the public map: computed on the event loop (about a millisecond
    # on Yuzhong; a worker thread would add more than it saves under the GIL), and the
    # documented NearestResponse is written directly, not re-validated.
    rows = nearest_rows(analysis.nearest(lon, lat, crs=crs, minutes=minutes, k=k))
    point = analysis.locate(lon, lat, crs)
    lon84, lat84 = point.lon_wgs84, point.lat_wgs84
    walk = area.walk
    settings: ApiSettings = request.app.state.tuoyu.settings
    body = {
        "area": area.slug,
        "point": {"lon": lon, "lat": lat, "crs": crs, "lon_wgs84": lon84, "lat_wgs84": lat84},
        "minutes": minutes,
        "speed_kmh": walk.speed_kmh,
        "walk_limit_m": round(walk.metres_for(minutes), 1),
        "method": "straight_line" if analysis.mode == "straight_line" else "network",
        "facilities": rows,
        "attribution": area_attribution(analysis, area, settings),
    }
    return JSONResponse(body)


@router.get(
    "/areas/{area}/facilities/{facility_id}/isochrone",
    response_model=IsochroneFeature,
    summary="A facility's walking isochrone / 托育机构步行等时圈 (GeoJSON)",
    responses=error_responses(400, 404, 422, 429, 503),
)
async def get_isochrone(
    area: AreaAsyncDep,
    facility_id: FacilityIdPath,
    analysis: AnalysisAsyncDep,
    state: StateDep,
    client: ClientKeyDep,
    minutes: Minutes = 15.0,
) -> IsochroneFeature:
    """The area reachable on foot from the facility within ``minutes``.

    Exact edge-buffer isochrone: the walkable ways reached (partial ways cut at the
    remaining distance) buffered by the area's ``isochrone_buffer_m``. WGS84. An
    expensive request: rate-limited per client (429) and bounded per worker (503).
    """
    state.expensive_rate.check(client, "expensive")

    def compute() -> IsochroneFeature:
        feature = dict(state.analyses.isochrone_feature(analysis, facility_id, float(minutes)))
        attribution = area_attribution(analysis, area, state.settings)
        properties = {**feature["properties"], "attribution": attribution}
        return IsochroneFeature.model_validate({**feature, "properties": properties})

    return await run_expensive(
        state.slots["isochrone"], state.settings.expensive_time_limit_s, compute
    )


# --- current results --------------------------------------------------------------------------


@router.get(
    "/areas/{area}/units",
    response_model=UnitsResponse,
    summary="Per-街道 indicator table / 街道指标表",
    responses=error_responses(400, 404, 422),
)
def get_units(area: AreaDep, analysis: AnalysisDep, settings: SettingsDep) -> UnitsResponse:
    """The indicator table of every unit (街道, or H3 hexagons where no 街道 polygons
    exist), against the area's target profile; unknown values are null."""
    table = analysis.units()
    return UnitsResponse(
        area=area.slug,
        units_kind=_units_kind(analysis),
        version=analysis.version,
        columns=_columns([str(c) for c in table.columns]),
        units=table_records(table),
        unusable=json_ready(dict(table.attrs.get("unusable", {}))),
        skipped=json_ready(dict(table.attrs.get("skipped", {}))),
        attribution=area_attribution(analysis, area, settings),
    )


@router.get(
    "/areas/{area}/units/{code}",
    response_model=UnitResponse,
    summary="One unit's indicators / 单个街道指标",
    responses=error_responses(400, 404, 422),
)
def get_unit(
    area: AreaDep,
    analysis: AnalysisDep,
    code: Annotated[
        str,
        PathParam(
            pattern=UNIT_CODE_PATTERN,
            description="街道 code (9 digits) or H3 cell id",
            examples=["110101001"],
        ),
    ],
) -> UnitResponse:
    """One row of the indicator table."""
    row = table_records(analysis.unit(code).to_frame().T)[0]
    return UnitResponse(
        area=area.slug,
        units_kind=_units_kind(analysis),
        version=analysis.version,
        columns=_columns(list(row)),
        unit=row,
    )


def _public_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without server file-system paths anywhere in it (file names are
    kept): data sources, population assumptions, notes (:mod:`tuoyu_api.public`)."""
    out: dict[str, Any] = scrub_paths(summary)
    return out


_SUMMARY_EXAMPLE = {
    "area": {"name": "北京市东城区", "name_en": "Dongcheng District, Beijing", "code": "110101"},
    "profile": {"name": "beijing-2025-core", "title": "北京市核心区2025年托育服务目标"},
    "indicators": {
        "puhui_jiedao_coverage": {
            "label_zh": "有普惠托育机构的街道占比",
            "label_en": "Share of 街道 with a 普惠 facility",
            "unit": "%",
            "value": 100.0,
            "target": {"value": 100.0, "comparison": ">="},
            "pass": True,
        }
    },
    "version": 0,
}


@router.get(
    "/areas/{area}/summary",
    response_model=dict[str, Any],
    summary="District summary against the targets / 区级汇总与目标对照",
    responses={
        **error_responses(400, 404, 422),
        **_json_example(_SUMMARY_EXAMPLE, "indicators, targets, totals, data sources"),
    },
)
def get_summary(area: AreaDep, analysis: AnalysisDep, analyses: AnalysesDep) -> dict[str, Any]:
    """Every indicator of the district with its target, gap and pass/fail, the totals,
    the parameters and data sources, and what could not be computed (with the reason).

    ``version`` counts this worker's changes to its analysis; ``registry_seq`` is the
    number of the last registry write it reflects (the same in every worker)."""
    summary = _public_summary(json_ready(analysis.summary()))
    summary["version"] = analysis.version
    summary["registry_seq"] = analyses.seen_seq(area.slug)
    return summary


@router.get(
    "/areas/{area}/gaps",
    response_model=GapCollection,
    summary="People outside the 15-minute circle / 15分钟圈外的人口 (GeoJSON)",
    responses=error_responses(400, 404, 422),
)
def get_gaps(area: AreaDep, analysis: AnalysisDep, settings: SettingsDep) -> GapCollection:
    """Populated areas whose walk to the nearest facility exceeds the service circle,
    largest population first (WGS84). Empty, with the reason in ``skipped``, for areas
    without walking distances."""
    gaps = analysis.gaps()
    features = []
    properties = [c for c in gaps.columns if c != gaps.geometry.name]
    for row, geom in zip(table_records(pd.DataFrame(gaps[properties])), gaps.geometry, strict=True):
        features.append(
            GapFeature(
                geometry=mapping(geom) if geom is not None and not geom.is_empty else None,
                properties=GapProperties(**row),
            )
        )
    skipped = gaps.attrs.get("skipped")
    unknown = gaps.attrs.get("points_walk_unknown")
    return GapCollection(
        area=area.slug,
        version=analysis.version,
        threshold_m=analysis.cutoff_m,
        features=features,
        columns=_columns(properties),
        skipped=str(skipped) if skipped else None,
        points_walk_unknown=int(unknown) if unknown is not None else None,
        attribution=area_attribution(analysis, area, settings),
    )


@router.get(
    "/areas/{area}/maps/{name}",
    # Not response_class=HTMLResponse: FastAPI would then document the JSON errors as
    # text/html too. The page is returned as an HTMLResponse and documented here.
    response_class=Response,
    summary="Interactive maps / 交互地图 (facilities | dashboard | gaps)",
    responses={
        200: {
            "content": {"text/html": {"schema": {"type": "string"}}},
            "description": "a standalone Leaflet page",
        },
        **error_responses(400, 404, 422, 429, 503),
    },
)
async def get_map(
    area: AreaAsyncDep,
    analysis: AnalysisAsyncDep,
    state: StateDep,
    client: ClientKeyDep,
    name: Annotated[
        Literal["facilities", "dashboard", "gaps"],
        PathParam(
            description="facilities (备案机构电子地图), dashboard (街道达标看板) or gaps (缺口地图)"
        ),
    ],
    language: Annotated[
        Literal["zh", "en"] | None, Query(description="label language (default: settings)")
    ] = None,
) -> HTMLResponse:
    """A map built from the current state. On the facility map, "walk from here" asks
    this service's ``/areas/{area}/nearest``, so it follows registry writes."""
    state.expensive_rate.check(client, "expensive")
    settings = state.settings

    def build() -> str:
        return state.analyses.map_html(
            analysis,
            name,
            nearest_url=MAP_NEAREST_URL,
            isochrone_url=MAP_ISOCHRONE_URL,
            language=language or settings.language,
            attribution=facility_attribution(area, settings),
        )

    html = await run_expensive(state.slots["maps"], settings.expensive_time_limit_s, build)
    return HTMLResponse(html)


# --- what-if ---------------------------------------------------------------------------------


@router.post(
    "/areas/{area}/scenarios",
    response_model=ScenarioOut,
    summary="What-if: add or remove facilities / 情景模拟（不修改登记库）",
    responses=error_responses(400, 404, 409, 422, 429, 503),
)
async def post_scenario(
    area: AreaAsyncDep,
    analysis: AnalysisAsyncDep,
    state: StateDep,
    client: ClientKeyDep,
    body: Annotated[
        ScenarioIn,
        Body(
            openapi_examples={
                "add": {"summary": "one planned 普惠 point (WGS84)", "value": SCENARIO_EXAMPLE},
                "close": {
                    "summary": "close two facilities",
                    "value": {"add": [], "remove": ["YZ-TY-0001", "YZ-TY-0002"]},
                },
            }
        ),
    ],
    isochrone_minutes: Annotated[
        float | None,
        Query(
            gt=0,
            le=MAX_NEAREST_MINUTES,
            description="also return the added facilities' walking isochrones for this "
            "many minutes (GeoJSON, WGS84) / 同时返回新增机构的步行等时圈",
            examples=[15],
        ),
    ] = None,
    gaps: Annotated[
        bool,
        Query(
            description="also return the gap zones after the scenario (GeoJSON, WGS84, "
            "simplified; residents outside the circle before and after) / "
            "同时返回方案实施后的缺口区（15分钟圈外居民）",
        ),
    ] = False,
) -> ScenarioOut:
    """The district summary and per-unit coverage with the given facilities added and
    removed. Added facilities are validated like registry writes; the registry and the
    live analysis are not changed.

    ``changes`` gives each unit (街道) before and after in people (residents and
    children under 3 inside the service circle) and percentage points, ``district`` the
    same for the district; with ``isochrone_minutes`` the answer also carries the added
    facilities' isochrones, with ``gaps=true`` the gap zones left after the scenario."""
    state.expensive_rate.check(client, "expensive")
    if len(body.add) > MAX_SCENARIO_ADDITIONS:
        raise InputValidationError(
            f"a scenario adds at most {MAX_SCENARIO_ADDITIONS} facilities, got {len(body.add)}",
            field="add",
        )
    return await run_expensive(
        state.slots["scenarios"],
        state.settings.expensive_time_limit_s,
        lambda: evaluate_scenario(
            state, area, analysis, body, isochrone_minutes=isochrone_minutes, gaps=gaps
        ),
    )


@router.post(
    "/areas/{area}/sites",
    response_model=SitesOut,
    summary="Recommend new 普惠 sites (maximal covering) / 新增普惠托育点选址",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
async def post_sites(
    area: AreaAsyncDep,
    analysis: AnalysisAsyncDep,
    body: SitesIn,
    actor: ActorDep,
    state: StateDep,
) -> SitesOut:
    """The next ``p`` 普惠 sites that bring the most under-3 children (or residents)
    within the 15-minute walk, current facilities kept; with the per-unit table and
    district summary after adding them. The registry is not changed.

    Needs a bearer token (siting is expensive: rate-limited per token, 429, and one
    request at a time per worker, 503 with ``Retry-After`` beyond)."""
    state.expensive_rate.check(f"token:{actor}", "expensive")
    return await run_expensive(
        state.slots["sites"], state.settings.expensive_time_limit_s, _sites, area, analysis, body
    )


def _sites(area: StudyArea, analysis: AreaModel, body: SitesIn) -> SitesOut:
    plan = analysis.recommend_sites(
        body.p,
        solver=body.solver,
        weight=body.weight,
        require_puhui_per_jiedao=body.require_jiedao,
        min_spacing_m=body.min_spacing_m,
        time_limit_s=SITES_TIME_LIMIT_S,
    )
    table: pd.DataFrame = plan.after.table
    return SitesOut(
        area=area.slug,
        sites=sites_collection(plan.sites.to_crs(4326), data_credit(analysis.current_layers())),
        siting=json_ready(siting_summary(plan, analysis.current_layers())),
        summary=_public_summary(json_ready(plan.after.summary)),
        columns=_columns([str(c) for c in table.columns]),
        units=table_records(table),
    )
