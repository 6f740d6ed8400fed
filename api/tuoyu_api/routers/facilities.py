"""Facility registry endpoints: read (public) and write (bearer token, audited).

``GET /areas/{area}/facilities`` returns a GeoJSON FeatureCollection in WGS84 with the
data attribution; writes are validated like the file loader
(:func:`tuoyu_api.validation.validate_facility_write`), recorded in the audit log and passed to
the registry hook.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Query, Response, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from tuoyu.config.data_registry import load_registry
from tuoyu.config.study_area import StudyArea

from tuoyu_api.deps import (
    ActorDep,
    AppState,
    AreaAsyncDep,
    AreaDep,
    SessionDep,
    SettingsDep,
    StateDep,
)
from tuoyu_api.registry import (
    FacilityQuery,
    count_facilities,
    create_facility,
    delete_facility,
    get_facility,
    list_audit,
    list_facilities,
    parse_bbox,
    update_facility,
)
from tuoyu_api.routers import error_responses
from tuoyu_api.schemas import (
    ID_PATTERN,
    SAMPLE_FACILITY,
    AgeClass,
    AuditRecord,
    FacilityCollection,
    FacilityFeature,
    FacilityIn,
    FacilityKind,
    ServiceMode,
)
from tuoyu_api.settings import ApiSettings
from tuoyu_api.validation import validate_facility_write

router = APIRouter(tags=["facilities"])

REGISTRY_ATTRIBUTION = "tuoyu-coverage 托育机构登记 registry (records added or edited via the API)"

FacilityIdPath = Annotated[
    str,
    PathParam(pattern=ID_PATTERN, description="facility id / 编号", examples=["YZ-TY-0001"]),
]

_BODY_EXAMPLES: dict[str, Any] = {
    "wgs84": {
        "summary": "社区托育服务中心 (WGS84)",
        "value": SAMPLE_FACILITY,
    },
    "gcj02": {
        "summary": "家庭托育点, coordinates from Amap (GCJ-02)",
        "value": {
            "id": "YZ-JT-0007",
            "name": "大坪家庭托育点",
            "jiedao": "大坪街道",
            "lon": 106.5236,
            "lat": 29.5407,
            "crs": "gcj02",
            "kind": "家庭托育点",
            "puhui": False,
            "ownership": "民办",
            "slots_toddler": 5,
            "service_modes": ["全日托"],
        },
    },
}


def facility_attribution(area: StudyArea, settings: ApiSettings) -> str:
    """Where an area's facility records come from (file origin and licence, registry)."""
    parts: list[str] = []
    if area.facilities is not None and area.facilities.path is not None:
        entry = load_registry(settings.project_data_dir).get(area.facilities.path)
        if entry is not None:
            parts.append(f"{entry.attribution or entry.origin} ({entry.licence})")
        else:
            parts.append(f"facility file {area.facilities.path}")
    parts.append(REGISTRY_ATTRIBUTION)
    return "; ".join(parts)


def to_feature(record: dict[str, Any]) -> FacilityFeature:
    """A registry record as a GeoJSON Feature."""
    return FacilityFeature.model_validate(
        {
            "id": record["id"],
            "geometry": {"type": "Point", "coordinates": (record["lon"], record["lat"])},
            "properties": record,
        }
    )


@router.get(
    "/areas/{area}/facilities",
    response_model=FacilityCollection,
    summary="Facilities of an area / 托育机构列表 (GeoJSON)",
    responses=error_responses(404, 422),
)
def get_facilities(
    area: AreaDep,
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    kind: Annotated[FacilityKind | None, Query(description="机构类型 / kind")] = None,
    puhui: Annotated[bool | None, Query(description="普惠 / subsidised")] = None,
    age_class: Annotated[
        AgeClass | None,
        Query(description="facilities with 托位 in this class (乳儿班/托小班/托大班)"),
    ] = None,
    service_mode: Annotated[ServiceMode | None, Query(description="服务模式")] = None,
    bbox: Annotated[
        str | None,
        Query(
            description="minlon,minlat,maxlon,maxlat in WGS84",
            examples=["106.55,29.54,106.60,29.57"],
            max_length=200,
        ),
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> FacilityCollection:
    """List an area's facilities, filtered; a GeoJSON FeatureCollection in WGS84."""
    state.analyses.seed_for_reading(area)
    query = FacilityQuery(
        kind=kind,
        puhui=puhui,
        age_class=age_class,
        service_mode=service_mode,
        bbox=parse_bbox(bbox) if bbox is not None else None,
    )
    page = min(limit or settings.max_page_size, settings.max_page_size)
    records = list_facilities(session, area.slug, query, limit=page, offset=offset)
    matched = count_facilities(session, area.slug, query)
    return FacilityCollection(
        area=area.slug,
        features=[to_feature(r) for r in records],
        numberMatched=matched,
        numberReturned=len(records),
        attribution=facility_attribution(area, settings),
    )


@router.get(
    "/areas/{area}/facilities/{facility_id}",
    response_model=FacilityFeature,
    summary="One facility / 托育机构 (GeoJSON Feature)",
    responses=error_responses(404, 422),
)
def get_one_facility(
    area: AreaDep, facility_id: FacilityIdPath, session: SessionDep, state: StateDep
) -> FacilityFeature:
    """One facility as a GeoJSON Feature."""
    state.analyses.seed_for_reading(area)
    return to_feature(get_facility(session, area.slug, facility_id))


@router.post(
    "/areas/{area}/facilities",
    response_model=FacilityFeature,
    status_code=status.HTTP_201_CREATED,
    summary="Register a facility / 新增托育机构 (token)",
    responses=error_responses(400, 401, 403, 404, 409, 422, 429, 503),
)
async def post_facility(
    area: AreaAsyncDep,
    body: Annotated[FacilityIn, Body(openapi_examples=_BODY_EXAMPLES)],
    actor: ActorDep,
    state: StateDep,
    response: Response,
) -> FacilityFeature:
    """Add a facility; validated like the file loader, audited, passed to the hook.

    The area's live analysis follows at once (``/nearest``, ``/units``). A token sending
    more than its write rate gets 429, a full server 503 (both with ``Retry-After``).
    """
    state.write_rate.check(actor, "write")
    record = await _validated(state, body, area)
    stored = await state.analyses.write(
        area,
        lambda session: create_facility(
            session, area.slug, record, actor=actor, on_change=state.on_registry_change
        ),
    )
    # Header values are Latin-1 on the wire: a Chinese id such as 渝中-托育-0001 would
    # make the response fail after the commit, so the path segments are percent-encoded.
    response.headers["Location"] = (
        f"/areas/{quote(area.slug, safe='')}/facilities/{quote(str(stored['id']), safe='')}"
    )
    return to_feature(stored)


@router.put(
    "/areas/{area}/facilities/{facility_id}",
    response_model=FacilityFeature,
    summary="Replace a facility / 修改托育机构 (token)",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
async def put_facility(
    area: AreaAsyncDep,
    facility_id: FacilityIdPath,
    body: Annotated[FacilityIn, Body(openapi_examples=_BODY_EXAMPLES)],
    actor: ActorDep,
    state: StateDep,
) -> FacilityFeature:
    """Replace every field of a facility (fields left out become unknown or default)."""
    state.write_rate.check(actor, "write")
    record = await _validated(state, body, area)
    stored = await state.analyses.write(
        area,
        lambda session: update_facility(
            session,
            area.slug,
            facility_id,
            record,
            actor=actor,
            on_change=state.on_registry_change,
        ),
    )
    return to_feature(stored)


@router.delete(
    "/areas/{area}/facilities/{facility_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove a facility / 删除托育机构 (token)",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
async def remove_facility(
    area: AreaAsyncDep,
    facility_id: FacilityIdPath,
    actor: ActorDep,
    state: StateDep,
) -> Response:
    """Remove a facility (the audit log keeps its last record)."""
    state.write_rate.check(actor, "write")
    await state.analyses.write(
        area,
        lambda session: delete_facility(
            session, area.slug, facility_id, actor=actor, on_change=state.on_registry_change
        ),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _validated(state: AppState, body: FacilityIn, area: StudyArea) -> dict[str, Any]:
    """The write's record, validated in a worker thread before the write waits its turn."""

    def check() -> dict[str, Any]:
        return validate_facility_write(body, area, area_polygon=state.area_polygon(area.slug))

    return await run_in_threadpool(check)


@router.get(
    "/areas/{area}/audit",
    response_model=list[AuditRecord],
    summary="Registry audit log / 变更记录 (token)",
    responses=error_responses(401, 403, 404, 422),
)
def get_audit(
    area: AreaDep,
    actor: ActorDep,
    session: SessionDep,
    facility_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    """Writes to an area's registry, newest first (who, when, before, after)."""
    return list_audit(session, area.slug, facility_id=facility_id, limit=limit, offset=offset)
