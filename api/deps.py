"""Shared state of the app and the FastAPI dependencies built on it.

Routers reach settings, the database and the registry hook only through these
dependencies, so a router can be tested alone: make ``FastAPI()``, call
:func:`install_state`, include the router, use ``TestClient`` (or override a dependency
with ``app.dependency_overrides``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from api.area_polygon import study_area_polygon
from api.db import Database
from api.registry import RegistryHook
from api.settings import ApiSettings
from api.tokens import verify_token
from coverage.area import StudyArea, list_areas, load_area
from coverage.errors import NotFoundError


@dataclass
class AppState:
    """Everything the routers need, kept on ``app.state.tuoyu``."""

    settings: ApiSettings
    database: Database
    on_registry_change: RegistryHook | None = None
    areas: dict[str, StudyArea] = field(default_factory=dict)
    area_polygons: dict[str, BaseGeometry | None] = field(default_factory=dict)

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
            self.area_polygons[slug] = study_area_polygon(self.area(slug), self.settings)
        return self.area_polygons[slug]


def install_state(
    app: FastAPI,
    settings: ApiSettings,
    database: Database,
    on_registry_change: RegistryHook | None = None,
) -> AppState:
    """Attach the shared state to ``app`` and return it."""
    state = AppState(settings=settings, database=database, on_registry_change=on_registry_change)
    app.state.tuoyu = state
    return state


def set_registry_hook(app: FastAPI, hook: RegistryHook | None) -> None:
    """Plug (or unplug) the ``on_registry_change(area, action, before, after)`` hook."""
    app.state.tuoyu.on_registry_change = hook


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

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="Bearer token created with `tuoyu token create NAME`.",
)


def require_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    session: SessionDep,
) -> str:
    """Check the bearer token; returns its name (the audit actor).

    Raises ``InvalidTokenError`` (401) when missing or unknown, ``RevokedTokenError``
    (403) when revoked.
    """
    return verify_token(session, credentials.credentials if credentials else None)


ActorDep = Annotated[str, Depends(require_token)]
