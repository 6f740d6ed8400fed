"""Fixtures of the API tests: registry databases on SQLite and on a real PostgreSQL.

The PostgreSQL server is started by the test session itself (Debian's ``postgresql``
binaries under ``/usr/lib/postgresql/*/bin``): ``initdb`` in a temporary folder, a free
loopback port, the unix socket in that folder, stopped and removed at the end. As root
the server runs as the ``postgres`` (else ``nobody``) user, since postgres refuses root.
The PostgreSQL tests are skipped, with the reason, only when no server binary exists.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient will move from httpx to httpx2.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from tuoyu_api.app import create_app
from tuoyu_api.db import Database, make_engine, open_database, upgrade_database
from tuoyu_api.settings import ApiSettings, get_api_settings
from tuoyu_api.tokens import create_token

from tests.live_server import free_port

PG_GLOB = "/usr/lib/postgresql/*/bin"


def _pg_bindir() -> Path | None:
    candidates = sorted(
        (Path(p) for p in glob.glob(PG_GLOB)),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


@dataclass
class PgServer:
    """A running throw-away PostgreSQL server."""

    port: int
    user: str = "postgres"

    def url(self, database: str) -> str:
        """SQLAlchemy URL of a database on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement on the ``postgres`` database in autocommit mode."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """Start a PostgreSQL server for the session; skip when PostgreSQL is not installed."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb); "
            "install Debian's postgresql (bash scripts/system-deps.sh)"
        )
    base = Path(tempfile.mkdtemp(prefix="tuoyu-pg-"))
    data, sock, log = base / "data", base / "sock", base / "server.log"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        run_as = "postgres"
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            run_as = "nobody"
        entry = pwd.getpwnam(run_as)
        for path in (base, sock):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        base.chmod(0o700)
        prefix = ["runuser", "-u", run_as, "--"]
    port = free_port()
    subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    started = subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        detail = log.read_text("utf-8", "replace") if log.exists() else started.stderr
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {started.stderr}\n{detail}")
    server = PgServer(port=port)
    try:
        yield server
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


_db_counter = itertools.count()


@pytest.fixture()
def pg_empty_url(pg_server: PgServer) -> Iterator[str]:
    """URL of a new, empty PostgreSQL database (no tables)."""
    name = f"tuoyu_empty_{os.getpid()}_{next(_db_counter)}"
    pg_server.admin(f"CREATE DATABASE {name}")
    yield pg_server.url(name)
    pg_server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def pg_session_url(pg_server: PgServer) -> str:
    """URL of one migrated PostgreSQL database shared by the session's tests."""
    pg_server.admin("CREATE DATABASE tuoyu_test")
    url = pg_server.url("tuoyu_test")
    upgrade_database(url)
    return url


@pytest.fixture()
def pg_url(pg_session_url: str) -> str:
    """The migrated PostgreSQL database, emptied before the test.

    Emptying (TRUNCATE) takes milliseconds where creating a database per test takes
    about a second on a busy machine.
    """
    engine = make_engine(pg_session_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "TRUNCATE facilities, api_tokens, audit_log, area_seeds, registry_heads, "
                    "registry_changes, register_filings, register_audit, register_assessments, "
                    "saved_scenarios, scenario_audit "
                    "RESTART IDENTITY"
                )
            )
    finally:
        engine.dispose()
    return pg_session_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated registry database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
        upgrade_database(url)
        return url
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture()
def database(db_url: str) -> Iterator[Database]:
    """An open registry database on both engines."""
    db = open_database(db_url, upgrade=False)
    yield db
    db.dispose()


@pytest.fixture()
def api_settings(tmp_path: Path, db_url: str) -> ApiSettings:
    """Service settings with state in a temp folder and the parametrised database.

    The database is migrated by ``db_url`` already; start-up migration is tested in
    ``test_settings``/``test_live_server``/``test_schemathesis`` (default settings).
    """
    return get_api_settings(
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
        database_url=db_url,
        upgrade_database_on_start=False,  # db_url is migrated already
    )


@pytest.fixture()
def client(api_settings: ApiSettings) -> Iterator[TestClient]:
    """A TestClient of the full app on both engines."""
    app = create_app(api_settings)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture()
def token(client: TestClient) -> str:
    """A valid bearer token in the client's registry."""
    with client.app.state.tuoyu.database.session() as session:  # type: ignore[attr-defined]
        return create_token(session, "tester")


@pytest.fixture()
def auth(token: str) -> dict[str, str]:
    """Authorization header with a valid token."""
    return {"Authorization": f"Bearer {token}"}
