"""``GET /healthz``: liveness and database reachability."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from tuoyu import __version__

from tuoyu_api.deps import SessionDep
from tuoyu_api.errors import error_body
from tuoyu_api.routers import error_responses
from tuoyu_api.schemas import HealthInfo

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
