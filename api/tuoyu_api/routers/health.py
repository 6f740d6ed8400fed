"""``GET /healthz``: liveness and database reachability, never queued behind the load.

The check runs on the event loop's side, not in the worker threads that writes and slow
reads fill: a ``SELECT 1`` on the database's probe pool (connections of its own,
:attr:`tuoyu_api.db.Database.probe`) in a thread of a one-thread limiter of its own, with a
deadline. So ``/healthz`` answers while 200 writes wait for their turn.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from tuoyu import __version__

from tuoyu_api.db import Database
from tuoyu_api.deps import StateDep
from tuoyu_api.errors import error_body
from tuoyu_api.routers import error_responses
from tuoyu_api.schemas import HealthInfo

router = APIRouter(tags=["health"])

HEALTH_TIMEOUT_S = 5.0
"""Longest the database check may take before ``/healthz`` answers 503."""

_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("tuoyu_health_limiter")


def _limiter() -> anyio.CapacityLimiter:
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(1)
        _LIMITER.set(limiter)
        return limiter


def _ping(database: Database) -> None:
    with database.probe_engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _unavailable(message: str) -> JSONResponse:
    return JSONResponse(
        error_body("database_unavailable", message), 503, headers={"Retry-After": "1"}
    )


@router.get(
    "/healthz",
    response_model=HealthInfo,
    summary="Health check / 健康检查",
    responses=error_responses(503),
)
async def healthz(state: StateDep) -> HealthInfo | JSONResponse:
    """Return ``ok`` when the registry database answers (within a few seconds)."""
    database = state.database
    try:
        with anyio.fail_after(HEALTH_TIMEOUT_S):
            await anyio.to_thread.run_sync(
                _ping, database, limiter=_limiter(), abandon_on_cancel=True
            )
    except TimeoutError:
        return _unavailable(f"registry database did not answer within {HEALTH_TIMEOUT_S:g} s")
    except SQLAlchemyError as exc:
        return _unavailable(f"registry database unavailable: {type(exc).__name__}")
    return HealthInfo(status="ok", version=__version__, database=database.dialect)
