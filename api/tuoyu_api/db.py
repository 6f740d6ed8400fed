"""Database engine, sessions and programmatic Alembic migrations.

SQLite (the default) is opened in WAL mode with foreign keys on and a busy timeout, so
the service's readers never block on its writer; PostgreSQL uses the psycopg 3 driver
(``postgresql+psycopg://``) with the same models.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker
from tuoyu.errors import TuoyuError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Alembic script folder (``env.py`` and ``versions/``)."""

SQLITE_BUSY_TIMEOUT_MS = 5000


class DatabaseConfigError(TuoyuError):
    """The registry database URL is malformed or names a driver that is not installed."""


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, much faster commits
    finally:
        cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for the registry.

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path/registry.sqlite`` or
        ``postgresql+psycopg://user@host:port/db``.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine`.

    Returns
    -------
    sqlalchemy.Engine
        For SQLite, every new connection runs ``PRAGMA journal_mode=WAL``,
        ``foreign_keys=ON`` and a busy timeout; the parent folder is created.

    Raises
    ------
    DatabaseConfigError
        When the URL cannot be parsed or its driver is missing.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseConfigError(f"invalid database URL: {exc}") from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed, pool_pre_ping=True, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseConfigError(f"no driver for database URL {parsed!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration pointing at ``api/tuoyu_api/migrations`` (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal % (URL-escaped passwords) must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str | Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (idempotent).

    Parameters
    ----------
    url
        Database URL, or an engine made by :func:`make_engine`.
    revision
        Target revision; ``head`` by default.
    """
    engine = make_engine(url) if isinstance(url, str) else url
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if isinstance(url, str):
            engine.dispose()


@dataclass
class Database:
    """An engine and its session factory."""

    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session closed on exit (commit is the caller's business)."""
        session = self.sessions()
        try:
            yield session
        finally:
            session.close()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_database(url: str, *, upgrade: bool = True) -> Database:
    """Open the registry database, migrating it to the newest schema first.

    Parameters
    ----------
    url
        SQLAlchemy URL (see :func:`make_engine`).
    upgrade
        Run :func:`upgrade_database` before returning (default).

    Returns
    -------
    Database
    """
    engine = make_engine(url)
    if upgrade:
        upgrade_database(engine)
    return Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
