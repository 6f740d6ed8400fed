"""Alembic migrations create the registry on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from tuoyu_api.db import DatabaseConfigError, make_engine, open_database, upgrade_database
from tuoyu_api.models import Base
from tuoyu_api.settings import get_api_settings, resolve_database_url

TABLES = {
    "facilities",
    "api_tokens",
    "audit_log",
    "area_seeds",
    "registry_heads",
    "registry_changes",
    "register_filings",
    "register_audit",
    "register_assessments",
    "saved_scenarios",
    "scenario_audit",
    "alembic_version",
}


def _check_fresh_upgrade(url: str) -> None:
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == set()
        upgrade_database(url)
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) == TABLES
        columns = {c["name"] for c in inspector.get_columns("facilities")}
        assert {"area", "id", "lon", "lat", "kind", "puhui", "slots", "assumed_fields"} <= columns
        uniques = [
            sorted(u["column_names"]) for u in inspector.get_unique_constraints("facilities")
        ]
        assert ["area", "id"] in uniques
        audit = {c["name"] for c in inspector.get_columns("audit_log")}
        assert {"area", "facility_id", "action", "actor", "at", "before", "after"} <= audit
        saved = {c["name"] for c in inspector.get_columns("saved_scenarios")}
        assert {"id", "area", "name", "author", "created_at", "additions", "removals"} <= saved
        assert "results" in saved
        uniques = [
            sorted(u["column_names"]) for u in inspector.get_unique_constraints("saved_scenarios")
        ]
        assert ["area", "name"] in uniques
        token_cols = {c["name"] for c in inspector.get_columns("api_tokens")}
        assert "token_hash" in token_cols and "token" not in token_cols
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"
            # The migrated schema is exactly what the models describe.
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
        upgrade_database(url)  # a second run is a no-op
        assert set(inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


def test_migration_creates_tables_on_sqlite(tmp_path: Path) -> None:
    _check_fresh_upgrade(f"sqlite:///{tmp_path / 'nested' / 'registry.sqlite'}")


@pytest.mark.postgres
def test_migration_creates_tables_on_postgresql(pg_empty_url: str) -> None:
    _check_fresh_upgrade(pg_empty_url)


@pytest.mark.postgres
def test_postgresql_timestamps_are_timezone_aware(pg_empty_url: str) -> None:
    upgrade_database(pg_empty_url)
    engine = make_engine(pg_empty_url)
    try:
        columns = {c["name"]: c for c in inspect(engine).get_columns("audit_log")}
        assert getattr(columns["at"]["type"], "timezone", False) is True
    finally:
        engine.dispose()


def test_workbench_revision_upgrades_a_0003_database_and_downgrades(tmp_path: Path) -> None:
    """A registry at revision 0003 (with data) gains the scenario tables and keeps its
    rows; downgrading to 0003 removes exactly the two new tables."""
    from alembic import command
    from tuoyu_api.db import alembic_config

    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    upgrade_database(url, "0003")
    engine = make_engine(url)
    try:
        assert "saved_scenarios" not in inspect(engine).get_table_names()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_tokens (name, token_hash, created_at, revoked) "
                    "VALUES ('p', 'h', '2026-01-01 00:00:00', 0)"
                )
            )
        upgrade_database(url)
        assert {"saved_scenarios", "scenario_audit"} <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM api_tokens")).scalar() == 1
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0003")
        assert set(inspect(engine).get_table_names()) == TABLES - {
            "saved_scenarios",
            "scenario_audit",
        }
    finally:
        engine.dispose()


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'r.sqlite'}")
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()
    assert (tmp_path / "r.sqlite-wal").exists() or (tmp_path / "r.sqlite").exists()


def test_default_database_is_sqlite_in_state_dir(tmp_path: Path) -> None:
    settings = get_api_settings(state_dir=tmp_path / "state", database_url=None)
    url = resolve_database_url(settings)
    assert url == f"sqlite:///{(tmp_path / 'state' / 'registry.sqlite').resolve()}"
    assert (tmp_path / "state").is_dir()


def test_bare_postgresql_url_gets_psycopg_driver() -> None:
    settings = get_api_settings(database_url="postgres://u:p%40ss@db:5432/tuoyu")
    assert resolve_database_url(settings) == "postgresql+psycopg://u:p%40ss@db:5432/tuoyu"


def test_bad_database_url_is_a_clear_error() -> None:
    with pytest.raises(DatabaseConfigError, match="invalid database URL"):
        make_engine("not a url")
    with pytest.raises(DatabaseConfigError, match="no driver"):
        make_engine("oracle+nosuchdriver://x@y/z")
