"""Typed settings, read from the environment (prefix ``TUOYU_``) by a factory.

Nothing is read at import time: call :func:`get_settings` where settings are needed,
and pass the result down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tuoyu.config.locations import default_cache_dir, default_state_dir, project_data_dir


class Settings(BaseSettings):
    """Run-time settings of the library, the command line and the service.

    Every field can be set with an environment variable ``TUOYU_<FIELD>``, e.g.
    ``TUOYU_DATA_DIR=/srv/tuoyu-data``.
    """

    model_config = SettingsConfigDict(env_prefix="TUOYU_", env_file=None, extra="ignore")

    data_dir: Path | None = Field(
        default=None,
        description="Directory holding external data (the shared study-area files). "
        "Default: ../shared/data beside the checkout when it exists.",
    )
    project_data_dir: Path = Field(
        default_factory=project_data_dir,
        description="The project's own data: data/areas, data/profiles, data/registry.toml.",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="On-disk cache of parsed networks (keyed by file hash).",
    )
    state_dir: Path = Field(
        default_factory=default_state_dir,
        description="Service state: the SQLite registry database, computed results.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the facility registry; default SQLite in state_dir.",
    )
    language: Literal["zh", "en"] = Field(default="zh", description="Label language.")
    tianditu_key: str | None = Field(
        default=None, description="天地图 API key; the 天地图 basemap is omitted without it."
    )
    max_snap_m: float = Field(default=300.0, gt=0, description="Snapping limit in metres.")
    verify_checksums: bool = Field(
        default=True, description="Check external files against data/registry.toml on load."
    )
    gpkg_layer_max_mb: float = Field(
        default=20.0,
        gt=0,
        description="Largest layer kept in coverage.gpkg (estimated MB); a bigger one is "
        "written as <layer>.parquet (GeoParquet). Raise it to keep every layer in the "
        "GeoPackage, for GIS software without the Parquet driver.",
    )


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides on top.

    Parameters
    ----------
    **overrides
        Field values that win over the environment (tests use this).

    Returns
    -------
    Settings
    """
    return Settings(**overrides)  # type: ignore[arg-type]
