"""Settings of the service: the library's settings plus API-only fields.

Created by :func:`get_api_settings`, never at import time (the titiler habit), so tests
and the command line can build as many independent configurations as they need.
"""

from __future__ import annotations

from pydantic import Field
from tuoyu.config.settings import Settings

SQLITE_FILE_NAME = "registry.sqlite"
"""File name of the default SQLite registry inside ``settings.state_dir``."""


class ApiSettings(Settings):
    """Settings of the FastAPI service (environment prefix ``TUOYU_``).

    Adds to :class:`tuoyu.config.settings.Settings` the fields only the service needs, e.g.
    ``TUOYU_CORS_ORIGINS='["https://map.example.cn"]'``.
    """

    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed by CORS (JSON list); empty = no CORS headers.",
    )
    max_page_size: int = Field(
        default=10_000, gt=0, le=100_000, description="Largest page of facilities returned."
    )
    preload_areas: list[str] = Field(
        default_factory=list,
        description="Study areas whose analysis is built at start-up (JSON list), instead "
        "of on first use, e.g. TUOYU_PRELOAD_AREAS='[\"chongqing-yuzhong\"]'.",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        gt=0,
        description="Largest request body accepted (bytes); larger ones get 413 before "
        "they are read (tuoyu_api.limits).",
    )
    upgrade_database_on_start: bool = Field(
        default=True, description="Run the Alembic migrations when the app is created."
    )
    max_in_flight_requests: int = Field(
        default=512,
        ge=1,
        description="Requests one worker serves at once; beyond, 503 with Retry-After at "
        "once (/healthz excepted).",
    )
    max_loop_lag_ms: float = Field(
        default=250.0,
        gt=0,
        description="While a worker's event loop runs later than this (overload), new "
        "requests get 503 with Retry-After at once (/healthz excepted).",
    )
    worker_threads: int = Field(
        default=24,
        ge=4,
        le=256,
        description="Threads of one worker process for blocking work (anyio's default "
        "limiter); the database pool is sized to match.",
    )
    db_pool_size: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Connections the pool keeps open; up to worker_threads are opened under "
        "load (overflow). With several workers on PostgreSQL keep workers × worker_threads "
        "below the server's max_connections.",
    )
    db_pool_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest wait for a pooled connection; then 503 with Retry-After.",
    )
    max_queued_writes: int = Field(
        default=256,
        ge=1,
        description="Registry writes one worker holds waiting for their area (beyond: 503 "
        "with Retry-After).",
    )
    write_queue_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest wait of a write for its turn (then 503 with Retry-After).",
    )
    write_rate_per_s: float = Field(
        default=20.0,
        gt=0,
        description="Registry writes per second per token (token bucket, per worker).",
    )
    write_burst: int = Field(
        default=100, ge=1, description="Writes a token may send at once before the rate applies."
    )
    expensive_rate_per_s: float = Field(
        default=2.0,
        gt=0,
        description="Expensive requests (sites, scenarios, isochrones, maps) per second per "
        "token or client address (token bucket, per worker).",
    )
    expensive_burst: int = Field(
        default=20, ge=1, description="Expensive requests a client may send at once."
    )
    max_concurrent_sites: int = Field(
        default=1, ge=1, description="Siting requests one worker runs at a time (beyond: 503)."
    )
    max_concurrent_scenarios: int = Field(
        default=2, ge=1, description="What-if scenarios one worker runs at a time."
    )
    max_concurrent_isochrones: int = Field(
        default=4, ge=1, description="Isochrones one worker computes at a time."
    )
    max_concurrent_maps: int = Field(
        default=2, ge=1, description="Map pages one worker builds at a time."
    )
    expensive_time_limit_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest an expensive request may take before it is answered 503 "
        "(the computation is then abandoned; its slot is freed when it ends).",
    )


def get_api_settings(**overrides: object) -> ApiSettings:
    """Build service settings from the environment, with explicit overrides on top.

    Parameters
    ----------
    **overrides
        Field values that win over the environment (tests use this).

    Returns
    -------
    ApiSettings
    """
    return ApiSettings(**overrides)  # type: ignore[arg-type]


def as_api_settings(settings: Settings | None) -> ApiSettings:
    """Return ``settings`` as :class:`ApiSettings` (library settings are extended).

    Fields the library settings do not carry come from the environment / defaults.
    """
    if settings is None:
        return get_api_settings()
    if isinstance(settings, ApiSettings):
        return settings
    return get_api_settings(**settings.model_dump())


def resolve_database_url(settings: Settings) -> str:
    """SQLAlchemy URL of the facility registry.

    ``settings.database_url`` when set (a bare ``postgresql://`` URL is given the
    psycopg 3 driver, the only PostgreSQL driver installed), else a SQLite file
    ``registry.sqlite`` in ``settings.state_dir`` (the folder is created).

    Examples
    --------
    >>> from pathlib import Path
    >>> s = get_api_settings(database_url="postgresql://u@localhost/tuoyu")
    >>> resolve_database_url(s)
    'postgresql+psycopg://u@localhost/tuoyu'
    """
    url = settings.database_url
    if url:
        for bare in ("postgresql://", "postgres://"):
            if url.startswith(bare):
                return "postgresql+psycopg://" + url[len(bare) :]
        return url
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(settings.state_dir / SQLITE_FILE_NAME).resolve()}"
