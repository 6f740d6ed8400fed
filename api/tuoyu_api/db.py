"""Database engine, sessions and programmatic Alembic migrations.

SQLite (the default) is opened in WAL mode with foreign keys on and a busy timeout, so
the service's readers never block on its writer; PostgreSQL uses the psycopg 3 driver
(``postgresql+psycopg://``) with the same models.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
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


MIGRATION_LOCK_KEY = int.from_bytes(hashlib.sha256(b"tuoyu-migrations").digest()[:4], "big")
"""PostgreSQL advisory-lock key held while migrating (one migrator at a time)."""


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on ``<database>.migrate-lock`` (several workers start together).

    Hand-written with ``fcntl.flock`` (the standard library) rather than a dependency:
    it is ten lines; where ``fcntl`` is missing (Windows) migrations run unlocked.
    """
    database = engine.url.database
    if database in (None, "", ":memory:"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux
        yield
        return
    path = Path(str(database)).expanduser().with_name(Path(str(database)).name + ".migrate-lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def upgrade_database(url: str | Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (idempotent).

    Several processes may call it at once (``tuoyu serve --workers N``): they migrate one
    after the other (a PostgreSQL advisory lock, a lock file beside a SQLite database),
    and the later ones find nothing to do.

    Parameters
    ----------
    url
        Database URL, or an engine made by :func:`make_engine`.
    revision
        Target revision; ``head`` by default.
    """
    engine = make_engine(url) if isinstance(url, str) else url
    try:
        guard = _sqlite_file_lock(engine) if engine.dialect.name == "sqlite" else _no_lock()
        with guard, engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Held until this transaction ends (after the migration commits).
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if isinstance(url, str):
            engine.dispose()


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


@dataclass
class Database:
    """An engine and its session factory, and a tiny separate engine for probes.

    ``probe`` (``None``: use ``engine``) serves the health check and the per-request
    change-sequence look-up: a pool of its own, so neither ever waits behind the
    connections that writes and slow reads hold.
    """

    engine: Engine
    sessions: sessionmaker[Session]
    probe: Engine | None = field(default=None)

    @property
    def probe_engine(self) -> Engine:
        """The engine of quick probes (its own small pool when there is one)."""
        return self.probe if self.probe is not None else self.engine

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
        if self.probe is not None:
            self.probe.dispose()


PROBE_POOL_SIZE = 2
"""Connections of the probe pool: one for the event loop, one for the health check."""


def pool_options(
    url: str, pool_size: int, max_connections: int, timeout_s: float
) -> dict[str, Any]:
    """Pool keyword arguments for :func:`make_engine`: ``pool_size`` kept, up to
    ``max_connections`` in all, ``timeout_s`` the longest wait for one.

    In-memory SQLite uses SQLAlchemy's single-connection pool, which takes none.

    Examples
    --------
    >>> pool_options("sqlite:///x.sqlite", 4, 24, 10.0)
    {'pool_size': 4, 'max_overflow': 20, 'pool_timeout': 10.0}
    >>> pool_options("sqlite://", 4, 24, 10.0)
    {}
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        return {}
    size = max(1, min(pool_size, max_connections))
    return {
        "pool_size": size,
        "max_overflow": max(0, max_connections - size),
        "pool_timeout": timeout_s,
    }


def open_database(
    url: str,
    *,
    upgrade: bool = True,
    pool_size: int = 5,
    max_connections: int = 15,
    pool_timeout_s: float = 30.0,
) -> Database:
    """Open the registry database, migrating it to the newest schema first.

    Parameters
    ----------
    url
        SQLAlchemy URL (see :func:`make_engine`).
    upgrade
        Run :func:`upgrade_database` before returning (default).
    pool_size, max_connections, pool_timeout_s
        The main pool (see :func:`pool_options`); the service sizes it for its worker
        threads. A probe pool of :data:`PROBE_POOL_SIZE` connections is made beside it.

    Returns
    -------
    Database
    """
    engine = make_engine(url, **pool_options(url, pool_size, max_connections, pool_timeout_s))
    if upgrade:
        upgrade_database(engine)
    probe_options = pool_options(url, PROBE_POOL_SIZE, PROBE_POOL_SIZE, 5.0)
    probe = make_engine(url, **probe_options) if probe_options else None
    return Database(
        engine=engine, sessions=sessionmaker(engine, expire_on_commit=False), probe=probe
    )
