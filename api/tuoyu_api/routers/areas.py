"""``GET /areas`` and ``GET /areas/{area}``: the study areas and their layers."""

from __future__ import annotations

from fastapi import APIRouter
from tuoyu.config.study_area import StudyArea, list_areas

from tuoyu_api.deps import AreaDep, SessionDep, StateDep
from tuoyu_api.registry import count_facilities
from tuoyu_api.routers import error_responses
from tuoyu_api.schemas import AreaInfo, WalkInfo

router = APIRouter(tags=["areas"])


def area_info(slug: str, area: StudyArea, facility_count: int) -> AreaInfo:
    """Describe a study area."""
    return AreaInfo(
        slug=slug,
        name=area.area.name,
        name_en=area.area.name_en,
        code=area.area.code,
        target_profile=area.area.target_profile,
        walk=WalkInfo(speed_kmh=area.walk.speed_kmh, minutes=area.walk.minutes),
        layers={
            "network": area.network is not None and area.network.path is not None,
            "units": area.units is not None and area.units.path is not None,
            "facilities": area.facilities is not None and area.facilities.path is not None,
            "population": area.population is not None,
        },
        facility_count=facility_count,
    )


@router.get("/areas", response_model=list[AreaInfo], summary="Study areas / 研究区列表")
def get_areas(state: StateDep, session: SessionDep) -> list[AreaInfo]:
    """Every shipped study area (``data/areas/*.toml``) with its registry size."""
    out = []
    for slug in list_areas(state.settings.project_data_dir):
        area = state.area(slug)
        state.analyses.seed_for_reading(area)
        out.append(area_info(slug, area, count_facilities(session, slug)))
    return out


@router.get(
    "/areas/{area}",
    response_model=AreaInfo,
    summary="One study area / 研究区",
    responses=error_responses(404),
)
def get_area_info(area: AreaDep, session: SessionDep, state: StateDep) -> AreaInfo:
    """One study area."""
    state.analyses.seed_for_reading(area)
    return area_info(area.slug, area, count_facilities(session, area.slug))
