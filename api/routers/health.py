"""``GET /healthz``: liveness and database reachability."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import SessionDep
from api.errors import error_body
from api.routers import error_responses
from api.schemas import HealthInfo
from coverage import __version__

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=HealthInfo,
    summary="Health check / 健康检查",
    responses=error_responses(503),
)
def healthz(session: SessionDep) -> HealthInfo | JSONResponse:
    """Return ``ok`` when the registry database answers."""
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return JSONResponse(
            error_body("database_unavailable", f"registry database unavailable: {exc}"), 503
        )
    dialect = session.get_bind().dialect.name
    return HealthInfo(status="ok", version=__version__, database=dialect)
