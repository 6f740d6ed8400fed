"""Shared state of the app and the FastAPI dependencies built on it.

Routers reach settings, the database and the registry hook only through these
dependencies, so a router can be tested alone: make ``FastAPI()``, call
:func:`install_state`, include the router, use ``TestClient`` (or override a dependency
with ``app.dependency_overrides``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session
from tuoyu.config.study_area import StudyArea, list_areas, load_area
from tuoyu.errors import NotFoundError
from tuoyu.workflow.core import AreaModel

from tuoyu_api.analysis_service import AnalysisService
from tuoyu_api.db import Database
from tuoyu_api.registry import RegistryHook
from tuoyu_api.settings import ApiSettings
from tuoyu_api.shedding import Slots, TokenBucket
from tuoyu_api.tokens import hash_token, verify_token


@dataclass
class AppState:
    """Everything the routers need, kept on ``app.state.tuoyu``."""

    settings: ApiSettings
    database: Database
    on_registry_change: RegistryHook | None = None
    areas: dict[str, StudyArea] = field(default_factory=dict)
    area_polygons: dict[str, BaseGeometry | None] = field(default_factory=dict)
    analyses: AnalysisService = field(init=False)
    write_rate: TokenBucket = field(init=False)
    expensive_rate: TokenBucket = field(init=False)
    slots: dict[str, Slots] = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.analyses = AnalysisService(s, self.database, self.area_polygon)
        # Per worker process, in memory (see tuoyu_api.shedding).
        self.write_rate = TokenBucket(s.write_rate_per_s, s.write_burst)
        self.expensive_rate = TokenBucket(s.expensive_rate_per_s, s.expensive_burst)
        self.slots = {
            "sites": Slots("siting", s.max_concurrent_sites, retry_after_s=10.0),
            "scenarios": Slots("scenario", s.max_concurrent_scenarios, retry_after_s=5.0),
            "isochrone": Slots("isochrone", s.max_concurrent_isochrones, retry_after_s=1.0),
            "maps": Slots("map", s.max_concurrent_maps, retry_after_s=5.0),
        }

    def area(self, slug: str) -> StudyArea:
        """The study area ``slug`` (loaded once).

        Raises
        ------
        NotFoundError
            ``slug`` is not one of the shipped areas (``data/areas/*.toml``); only
            those names are accepted, never paths.
        """
        cached = self.areas.get(slug)
        if cached is not None:
            return cached
        known = list_areas(self.settings.project_data_dir)
        if slug not in known:
            raise NotFoundError(f"unknown study area '{slug}' (known: {', '.join(known)})")
        loaded = load_area(slug, self.settings.project_data_dir)
        self.areas[slug] = loaded
        return loaded

    def area_polygon(self, slug: str) -> BaseGeometry | None:
        """The WGS84 polygon of area ``slug`` (computed once; ``None`` if unknown)."""
        if slug not in self.area_polygons:
            self.area_polygons[slug] = self.analyses.area_polygon(self.area(slug))
        return self.area_polygons[slug]


def install_state(
    app: FastAPI,
    settings: ApiSettings,
    database: Database,
    on_registry_change: RegistryHook | None = None,
) -> AppState:
    """Attach the shared state to ``app`` and return it.

    The registry hook is the analyses' incremental update
    (:meth:`tuoyu_api.analysis_service.AnalysisService.on_registry_change`) followed by
    ``on_registry_change`` when one is given.
    """
    state = AppState(settings=settings, database=database)
    state.on_registry_change = chain_hooks(state.analyses.on_registry_change, on_registry_change)
    app.state.tuoyu = state
    return state


def chain_hooks(*hooks: RegistryHook | None) -> RegistryHook | None:
    """One registry hook calling ``hooks`` in order (``None`` entries skipped)."""
    active = [h for h in hooks if h is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]

    def chained(
        area: str, action: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        for hook in active:
            hook(area, action, before, after)

    return chained


def set_registry_hook(
    app: FastAPI, hook: RegistryHook | None, *, keep_analysis: bool = True
) -> None:
    """Plug (or unplug) the ``on_registry_change(area, action, before, after)`` hook.

    With ``keep_analysis`` (default) the analyses' incremental update runs first, so
    ``/nearest`` and ``/units`` keep following the registry; ``keep_analysis=False``
    replaces it too.
    """
    state: AppState = app.state.tuoyu
    first = state.analyses.on_registry_change if keep_analysis else None
    state.on_registry_change = chain_hooks(first, hook)


def set_area_polygon(app: FastAPI, slug: str, polygon: BaseGeometry | None) -> None:
    """Use ``polygon`` (WGS84) as area ``slug``'s extent for write checks (``None``: none)."""
    app.state.tuoyu.area_polygons[slug] = polygon


def get_state(request: Request) -> AppState:
    """The :class:`AppState` of the running app."""
    state: AppState = request.app.state.tuoyu
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings_dep(state: StateDep) -> ApiSettings:
    """The service settings."""
    return state.settings


def get_session(state: StateDep) -> Iterator[Session]:
    """A database session for one request (closed afterwards)."""
    with state.database.session() as session:
        yield session


def get_registry_hook(state: StateDep) -> RegistryHook | None:
    """The registry-change hook, or ``None``."""
    return state.on_registry_change


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings_dep)]
HookDep = Annotated[RegistryHook | None, Depends(get_registry_hook)]


def get_area(
    area: Annotated[
        str,
        PathParam(
            description="study-area slug / 研究区 (file name under data/areas/)",
            examples=["chongqing-yuzhong"],
        ),
    ],
    state: StateDep,
) -> StudyArea:
    """The study area named in the path; unknown names are a 404."""
    return state.area(area)


AreaDep = Annotated[StudyArea, Depends(get_area)]


def get_analyses(state: StateDep) -> AnalysisService:
    """The per-area analyses."""
    return state.analyses


def get_analysis(area: AreaDep, state: StateDep) -> AreaModel:
    """The live analysis of the area in the path (built on first use), with every
    committed registry write applied, whichever worker or host made it."""
    return state.analyses.current(area)


AnalysesDep = Annotated[AnalysisService, Depends(get_analyses)]
AnalysisDep = Annotated[AreaModel, Depends(get_analysis)]


# Async twins for the hot read path (``/nearest``): FastAPI runs a sync dependency in a
# worker thread, one thread hop per dependency per request; these run on the event loop
# (dictionary look-ups once the area is loaded) and hand only a first-use build to a
# thread.


async def get_area_async(
    area: Annotated[
        str,
        PathParam(
            description="study-area slug / 研究区 (file name under data/areas/)",
            examples=["chongqing-yuzhong"],
        ),
    ],
    request: Request,
) -> StudyArea:
    """:func:`get_area` without a thread hop once the area is loaded."""
    state = get_state(request)
    cached = state.areas.get(area)
    if cached is not None:
        return cached
    return await run_in_threadpool(state.area, area)


AreaAsyncDep = Annotated[StudyArea, Depends(get_area_async)]


async def get_analysis_async(area: AreaAsyncDep, request: Request) -> AreaModel:
    """:func:`get_analysis` without a thread hop once the analysis is built and no
    process wrote to the area since (one primary-key read on the probe pool)."""
    state = get_state(request)
    analysis = state.analyses.peek(area.slug)
    if analysis is not None and state.analyses.is_current(area.slug):
        return analysis
    return await run_in_threadpool(state.analyses.current, area)


AnalysisAsyncDep = Annotated[AreaModel, Depends(get_analysis_async)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="Bearer token created with `tuoyu token create NAME`.",
)


def require_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    state: StateDep,
) -> str:
    """Check the bearer token; returns its name (the audit actor).

    The look-up uses a session of its own, closed at once: a write never holds a pooled
    connection while it waits for its turn (:meth:`AnalysisService.write`).

    Raises ``InvalidTokenError`` (401) when missing or unknown, ``RevokedTokenError``
    (403) when revoked.
    """
    with state.database.session() as session:
        return verify_token(session, credentials.credentials if credentials else None)


ActorDep = Annotated[str, Depends(require_token)]


def client_key_of(request: Request) -> str:
    """Who sends ``request``, for rate limits: its bearer token (hashed) if it has one,
    else the client address.

    Examples
    --------
    >>> from starlette.requests import Request
    >>> scope = {"type": "http", "headers": [], "client": ("10.0.0.7", 5000)}
    >>> client_key_of(Request(scope))
    'addr:10.0.0.7'
    """
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return "token:" + hash_token(credentials.strip())[:16]
    host = request.client.host if request.client is not None else "unknown"
    return f"addr:{host}"


async def client_key(request: Request) -> str:
    """:func:`client_key_of` as a dependency (async: no thread hop)."""
    return client_key_of(request)


ClientKeyDep = Annotated[str, Depends(client_key)]
