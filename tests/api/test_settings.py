"""Service settings: built by a factory from TUOYU_* variables, extending the library's."""

from __future__ import annotations

from pathlib import Path

import pytest
from tuoyu.config.settings import get_settings
from tuoyu_api.settings import ApiSettings, as_api_settings, get_api_settings


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TUOYU_CORS_ORIGINS", '["https://map.example.cn"]')
    monkeypatch.setenv("TUOYU_DATABASE_URL", "postgresql+psycopg://u@db/tuoyu")
    monkeypatch.setenv("TUOYU_STATE_DIR", str(tmp_path))
    settings = get_api_settings()
    assert settings.cors_origins == ["https://map.example.cn"]
    assert settings.database_url == "postgresql+psycopg://u@db/tuoyu"
    assert settings.state_dir == tmp_path
    # Explicit overrides win over the environment.
    assert get_api_settings(database_url=None).database_url is None


def test_library_settings_are_extended(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TUOYU_CORS_ORIGINS", raising=False)
    library = get_settings(state_dir=tmp_path, max_snap_m=120.0)
    api = as_api_settings(library)
    assert isinstance(api, ApiSettings)
    assert api.state_dir == tmp_path and api.max_snap_m == 120.0 and api.cors_origins == []
    assert as_api_settings(api) is api


def test_bad_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUOYU_MAX_PAGE_SIZE", "0")
    with pytest.raises(ValueError, match="max_page_size"):
        get_api_settings()
