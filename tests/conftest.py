"""Shared fixtures: settings, the data directory lookup and the real shared areas.

Tests that need the shared data use the same lookup as the library
(``tuoyu.config.data_registry.resolve_data_dir``) and are skipped, with the reason, when it finds
nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tuoyu.config.data_registry import resolve_data_dir
from tuoyu.config.settings import Settings, get_settings
from tuoyu.errors import DataNotFoundError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The external data directory (skips the test when none is configured)."""
    try:
        return resolve_data_dir()
    except DataNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Settings:
    """Settings pointing at the shared data, with caches and state in a temp folder."""
    base = tmp_path_factory.mktemp("tuoyu")
    return get_settings(data_dir=data_dir, cache_dir=base / "cache", state_dir=base / "state")


@pytest.fixture()
def fixtures_dir() -> Path:
    """Folder of small hand-made test inputs."""
    return FIXTURES


def area_without_network(name: str, folder: Path, extra: str = "") -> Path:
    """A copy of the shipped study area ``name`` without its ``[network]`` section.

    Paths inside stay relative to the data directory; ``extra`` TOML is appended (e.g. a
    straight-line ``[network]``). For tests of what an area without a walking network
    does.
    """
    from tuoyu.config.study_area import areas_dir

    kept: list[str] = []
    skipping = False
    for line in (areas_dir() / f"{name}.toml").read_text("utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            skipping = stripped == "[network]"
        if not skipping:
            kept.append(line)
    path = folder / f"{name}-no-network.toml"
    path.write_text("\n".join(kept) + "\n" + extra, "utf-8")
    return path
