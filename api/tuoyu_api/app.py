"""The application factory: ``create_app(settings=None) -> FastAPI``.

Run with ``uvicorn --factory tuoyu_api.app:create_app`` (``tuoyu serve``). Nothing is read at
import time; the database is migrated when the app is created.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from tuoyu import __version__
from tuoyu.config.settings import Settings

from tuoyu_api.db import open_database
from tuoyu_api.deps import install_state
from tuoyu_api.docs import install_docs
from tuoyu_api.errors import install_error_handlers
from tuoyu_api.limits import InFlightLimitMiddleware, RequestLimitMiddleware
from tuoyu_api.registry import RegistryHook
from tuoyu_api.routers import analysis, areas, facilities, health, register, workbench
from tuoyu_api.settings import as_api_settings, resolve_database_url
from tuoyu_api.validation import loader_validator

DESCRIPTION = """
15分钟托育服务圈 — walking access to childcare for Chinese cities.

* Read endpoints are public; writes to the facility registry need a bearer token
  (`tuoyu token create NAME`), are validated like the file loader and kept in an audit log.
* Coordinates in responses are WGS84 (GeoJSON); writes accept WGS84, GCJ-02 (高德/腾讯)
  or BD-09 (百度) with `crs`.
* Analysis (`/nearest`, `/units`, `/summary`, `/gaps`, `/maps`, isochrones, `/scenarios`)
  runs on a live per-area analysis built from the registry on first use; registry writes
  update it incrementally, so results reflect a write at once — in every worker and on
  every host sharing the registry (each catches up with the registry's change sequence
  before answering).
* The planner's workbench page `/areas/{area}/workbench` draws planned facilities on a map
  and shows each 街道 before and after; scenarios are saved by name under
  `/saved-scenarios` (saving and deleting need a token and are audited; they never touch
  the registry), compared side by side and exported as CSV, XLSX or GeoJSON.
* Expensive requests (`/sites` (token), `/scenarios`, isochrones, maps) are rate-limited
  per token or client (429) and bounded per worker (503); both carry `Retry-After`.
* Errors: `{"error": {"code": ..., "message": ..., "field": ...}}` with
  400/401/403/404/409/422/429/503.
"""


def create_app(
    settings: Settings | None = None, *, on_registry_change: RegistryHook | None = None
) -> FastAPI:
    """Build the FastAPI application.

    Parameters
    ----------
    settings
        Library or service settings; from the environment (``TUOYU_*``) when omitted.
    on_registry_change
        Called as ``hook(area, action, before, after)`` inside each registry write,
        before the commit (see :mod:`tuoyu_api.registry`); replace it later with
        :func:`tuoyu_api.deps.set_registry_hook`.

    Returns
    -------
    fastapi.FastAPI
    """
    api_settings = as_api_settings(settings)
    url = resolve_database_url(api_settings)
    database = open_database(
        url,
        upgrade=api_settings.upgrade_database_on_start,
        # One connection per worker thread at most, so a thread never waits for one
        # (plus the probe pool of /healthz and the change-sequence look-ups).
        pool_size=api_settings.db_pool_size,
        max_connections=api_settings.worker_threads,
        pool_timeout_s=api_settings.db_pool_timeout_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = api_settings.worker_threads
        state = app.state.tuoyu
        for slug in api_settings.preload_areas:
            # Build before serving, off the event loop (about a second per district).
            await anyio.to_thread.run_sync(state.analyses.get, state.area(slug))
        yield
        database.dispose()

    app = FastAPI(
        title="tuoyu-coverage 托育服务圈 API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local assets by install_docs (no CDN)
        redoc_url=None,
    )
    install_docs(app)
    install_state(app, api_settings, database, on_registry_change)
    loader_validator()  # import the facility loader now, not on the first write
    install_error_handlers(app)
    # Body limit and write-token check before any body byte is read (tuoyu_api.limits);
    # added before CORS so that CORS stays outermost and its headers reach these answers.
    app.add_middleware(RequestLimitMiddleware, max_body_bytes=api_settings.max_body_bytes)
    # Outside the body limit: a full worker refuses before reading anything.
    app.add_middleware(
        InFlightLimitMiddleware,
        max_in_flight=api_settings.max_in_flight_requests,
        max_loop_lag_s=api_settings.max_loop_lag_ms / 1000.0,
    )
    if api_settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=api_settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(health.router)
    app.include_router(areas.router)
    app.include_router(facilities.router)
    app.include_router(analysis.router)
    app.include_router(register.router)
    app.include_router(workbench.router)
    return app
