"""The service under load and faults: no 500s, nothing lost, every worker agrees.

Two kinds of tests, every one a regression test of a defect an audit found:

* in-process (``TestClient``): the write path never holds a pooled connection while it
  waits for its area, ``/healthz`` needs none of the main pool, a full server answers
  503 and a fast client 429 (both with ``Retry-After``), expensive requests have a time
  limit, two apps on one registry agree, no absolute path leaves the service;
* against real uvicorn servers on 127.0.0.1 (subprocesses): 200 concurrent valid writes
  on SQLite and on PostgreSQL (0 answers 500, every 2xx in the registry, the audit and
  ``/summary``, ``/healthz`` answering throughout), 4 workers after 400 mixed writes
  (every answer of ``/summary`` and ``/nearest`` agrees with the registry), ``kill -9``
  during a write burst (nothing acknowledged is lost) and a second server on the same
  state (consistent with the first).

Counts are the audit's (200 writes, 400 mixed, 4 workers); on a busy two-core machine the
module takes about two to three minutes. No latency is asserted (benchmarks do that).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tuoyu.config.settings import Settings
from tuoyu.errors import DataNotFoundError
from tuoyu_api.app import create_app
from tuoyu_api.db import open_database
from tuoyu_api.errors import error_body
from tuoyu_api.public import absolute_paths_in
from tuoyu_api.routers.analysis import _public_summary
from tuoyu_api.schemas import SAMPLE_FACILITY
from tuoyu_api.settings import ApiSettings, get_api_settings, resolve_database_url
from tuoyu_api.tokens import create_token

from tests.api.conftest import TestClient
from tests.live_server import free_port

pytestmark = pytest.mark.slow

YZ = "/areas/chongqing-yuzhong"
CENTRE = (SAMPLE_FACILITY["lon"], SAMPLE_FACILITY["lat"])  # 解放碑, on the network
START_TIMEOUT_S = 180.0
CLIENT_TIMEOUT_S = 180.0  # generous: a busy machine is slow, never a reason to fail
WRITES = 200
MIXED_UPDATES = 100
MIXED_DELETES = 100
WORKERS = 4
READS_PER_CHECK = 40


def _facility(i: int, rng: random.Random, prefix: str = "RL") -> dict[str, Any]:
    """A valid Yuzhong facility within ~300 m of 解放碑 (on the walking network)."""
    return {
        "id": f"{prefix}-{i:04d}",
        "name": f"压测托育点{i:04d}",
        "lon": round(CENTRE[0] + rng.uniform(-0.003, 0.003), 6),
        "lat": round(CENTRE[1] + rng.uniform(-0.002, 0.002), 6),
        "kind": "社区托育点",
        "puhui": bool(i % 2),
        "slots": 20 + i % 30,
    }


# --- in-process ------------------------------------------------------------------------------


def _app_settings(tmp_path: Path, settings: Settings, **overrides: Any) -> ApiSettings:
    return get_api_settings(
        data_dir=settings.data_dir,
        cache_dir=settings.cache_dir,
        state_dir=tmp_path / "state",
        database_url=f"sqlite:///{tmp_path / 'registry.sqlite'}",
        **overrides,
    )


@dataclass
class App:
    client: TestClient
    auth: dict[str, str]
    state: Any


@pytest.fixture()
def make_app(tmp_path: Path, settings: Settings) -> Iterator[Callable[..., App]]:
    """Factory of TestClient apps on one SQLite registry (closed at the end)."""
    opened: list[TestClient] = []

    def make(**overrides: Any) -> App:
        app = create_app(_app_settings(tmp_path, settings, **overrides))
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        with app.state.tuoyu.database.session() as session:
            token = create_token(session, f"editor{len(opened)}")
        return App(client, {"Authorization": f"Bearer {token}"}, app.state.tuoyu)

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def test_waiting_writes_hold_no_database_connection(make_app: Callable[..., App]) -> None:
    """Writes queued behind their area's lock hold no pooled connection (the audit's 500s:
    each held one while waiting, and the pool ran dry)."""
    app = make_app(worker_threads=8)
    c = app.client
    assert c.get(f"{YZ}/summary").status_code == 200  # analysis built: the hook runs
    lock = app.state.analyses.lock("chongqing-yuzhong")
    results: list[int] = []
    rng = random.Random(1)
    bodies = [_facility(i, rng) for i in range(12)]
    with lock:
        threads = [
            threading.Thread(
                target=lambda b=b: results.append(
                    c.post(f"{YZ}/facilities", json=b, headers=app.auth).status_code
                )
            )
            for b in bodies
        ]
        for t in threads:
            t.start()
        # Wait (bounded) until the writes queue: two wait on the lock, the rest in line.
        deadline = time.monotonic() + 60
        while app.state.analyses.queued_writes < len(bodies) - 2:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        assert app.state.database.engine.pool.checkedout() == 0
        assert app.client.get("/healthz").status_code == 200
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == [201] * len(bodies)
    summary = c.get(f"{YZ}/summary").json()
    assert summary["totals"]["facilities"] == len(bodies)


def test_healthz_needs_no_connection_of_the_main_pool(make_app: Callable[..., App]) -> None:
    app = make_app(worker_threads=4, db_pool_size=4, db_pool_timeout_s=1.0)
    engine = app.state.database.engine
    held = [engine.connect() for _ in range(4)]  # the whole main pool
    try:
        response = app.client.get("/healthz")
        assert response.status_code == 200, response.text
        # A request that needs the main pool now gets 503 with Retry-After, not a 500.
        busy = app.client.get(f"{YZ}/facilities")
        assert busy.status_code == 503, busy.text
        assert busy.json()["error"]["code"] == "service_busy"
        assert int(busy.headers["Retry-After"]) >= 1
    finally:
        for connection in held:
            connection.close()


def test_write_waiting_too_long_is_503_not_500(make_app: Callable[..., App]) -> None:
    app = make_app(write_queue_timeout_s=0.5)
    with app.state.analyses.lock("chongqing-yuzhong"):
        response = app.client.post(
            f"{YZ}/facilities", json=_facility(1, random.Random(2)), headers=app.auth
        )
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_busy"
    assert int(response.headers["Retry-After"]) >= 1
    # Nothing was written, and the next write goes through.
    assert app.client.get(f"{YZ}/facilities").json()["numberMatched"] == 0
    ok = app.client.post(f"{YZ}/facilities", json=_facility(1, random.Random(2)), headers=app.auth)
    assert ok.status_code == 201, ok.text


def test_write_rate_per_token_is_429(make_app: Callable[..., App]) -> None:
    app = make_app(write_rate_per_s=0.01, write_burst=2)
    rng = random.Random(3)
    codes = [
        app.client.post(f"{YZ}/facilities", json=_facility(i, rng), headers=app.auth)
        for i in range(3)
    ]
    assert [r.status_code for r in codes] == [201, 201, 429]
    assert codes[2].json()["error"]["code"] == "rate_limited"
    assert int(codes[2].headers["Retry-After"]) >= 1


def test_expensive_reads_rate_limited_and_bounded(make_app: Callable[..., App]) -> None:
    app = make_app(expensive_rate_per_s=0.01, expensive_burst=2)
    c = app.client
    url = f"{YZ}/facilities/NOPE-1/isochrone"
    assert [c.get(url).status_code for _ in range(2)] == [404, 404]
    limited = c.get(url)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    # Another client (token) has its own bucket.
    assert c.get(url, headers=app.auth).status_code == 404


def test_sites_needs_a_token_and_runs_one_at_a_time(make_app: Callable[..., App]) -> None:
    app = make_app()
    c = app.client
    assert c.post(f"{YZ}/sites", json={"p": 1}).status_code == 401
    slots = app.state.slots["sites"]
    assert slots.capacity == 1
    assert slots.try_acquire()  # another siting request is running
    try:
        busy = c.post(f"{YZ}/sites", json={"p": 1, "solver": "greedy"}, headers=app.auth)
    finally:
        slots.release()
    assert busy.status_code == 503, busy.text
    assert busy.json()["error"]["code"] == "service_busy"
    assert int(busy.headers["Retry-After"]) >= 1
    ok = c.post(f"{YZ}/sites", json={"p": 1, "solver": "greedy"}, headers=app.auth)
    assert ok.status_code == 200, ok.text


def test_expensive_request_past_its_time_limit_is_503(make_app: Callable[..., App]) -> None:
    app = make_app(expensive_time_limit_s=0.001)
    c = app.client
    assert c.get(f"{YZ}/summary").status_code == 200  # built outside the limit
    response = c.post(f"{YZ}/scenarios", json={"add": [SAMPLE_FACILITY], "remove": []})
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "request_timeout"
    assert int(response.headers["Retry-After"]) >= 1
    # The abandoned computation frees its slot when it ends (bounded wait).
    slots = app.state.slots["scenarios"]
    deadline = time.monotonic() + 120
    while slots.in_use and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slots.in_use == 0


def test_two_apps_on_one_registry_agree(make_app: Callable[..., App]) -> None:
    """The audit's drift: after writes through each, summaries disagreed and one still
    found a deleted facility."""
    a, b = make_app(), make_app()
    beside = {"lon": 106.5785, "lat": 29.5583}
    for app in (a, b):  # both build their analysis before any write
        assert app.client.get(f"{YZ}/nearest", params=beside).json()["facilities"] == []
    assert (
        a.client.post(f"{YZ}/facilities", json=SAMPLE_FACILITY, headers=a.auth).status_code == 201
    )
    other = {**SAMPLE_FACILITY, "id": "YZ-TY-0002", "lon": 106.5790}
    assert b.client.post(f"{YZ}/facilities", json=other, headers=b.auth).status_code == 201
    for app in (a, b):
        ids = [
            f["facility_id"]
            for f in app.client.get(f"{YZ}/nearest", params=beside).json()["facilities"]
        ]
        assert sorted(ids) == ["YZ-TY-0001", "YZ-TY-0002"]
    assert a.client.delete(f"{YZ}/facilities/YZ-TY-0002", headers=a.auth).status_code == 204
    moved = {**SAMPLE_FACILITY, "puhui": False}
    assert (
        b.client.put(f"{YZ}/facilities/YZ-TY-0001", json=moved, headers=b.auth).status_code == 200
    )
    answers = []
    for app in (a, b):
        near = app.client.get(f"{YZ}/nearest", params=beside).json()["facilities"]
        assert [(f["facility_id"], f["puhui"]) for f in near] == [("YZ-TY-0001", False)]
        summary = app.client.get(f"{YZ}/summary").json()
        answers.append({k: v for k, v in summary.items() if k != "version"})
        units = app.client.get(f"{YZ}/units").json()["units"]
        answers.append(units)
    assert _differences(answers[0], answers[2]) == [] and _differences(answers[1], answers[3]) == []
    assert answers[0]["totals"]["facilities"] == 1 and answers[0]["registry_seq"] == 4


def test_no_absolute_path_leaves_the_service(make_app: Callable[..., App]) -> None:
    app = make_app()
    c = app.client
    for area in ("chongqing-yuzhong", "beijing-dongcheng"):
        for path in ("summary", "units", "gaps"):
            response = c.get(f"/areas/{area}/{path}")
            assert response.status_code == 200, response.text
            assert absolute_paths_in(response.json()) == [], (area, path)
    scenario = c.post(f"{YZ}/scenarios", json={"add": [SAMPLE_FACILITY], "remove": []})
    assert absolute_paths_in(scenario.json()) == []
    # What the library writes when a study area takes unit totals from a file (the
    # audit's case): the population assumption names the file by its absolute path.
    summary = c.get("/areas/beijing-dongcheng/summary").json()
    source = "/srv/tuoyu-data/beijing-dongcheng/stats.csv"
    summary["data"]["assumptions"] = [f"unit totals from {source} / 单元人口总数来源 {source}"]
    public = _public_summary(summary)
    assert absolute_paths_in(public) == []
    assert public["data"]["assumptions"] == [
        "unit totals from stats.csv / 单元人口总数来源 stats.csv"
    ]
    # Error messages too (a missing data file is named by its path in the library).
    body = error_body("data_not_found", str(DataNotFoundError(f"no file {source}")))
    assert absolute_paths_in(body) == [] and "stats.csv" in body["error"]["message"]


# --- real servers ---------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=60)


@dataclass
class Servers:
    settings: Settings
    tmp: Path
    started: list[Server] = field(default_factory=list)

    def start(self, state: Path, *, workers: int = 1, database_url: str | None = None) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUOYU_")}
        env.update(
            TUOYU_STATE_DIR=str(state),
            TUOYU_DATA_DIR=str(self.settings.data_dir),
            TUOYU_CACHE_DIR=str(self.settings.cache_dir),
            TUOYU_PRELOAD_AREAS='["chongqing-yuzhong"]',
            # These tests measure consistency, not the per-token limits (tested above).
            TUOYU_WRITE_RATE_PER_S="100000",
            TUOYU_WRITE_BURST="100000",
            TUOYU_EXPENSIVE_RATE_PER_S="100000",
            TUOYU_EXPENSIVE_BURST="100000",
        )
        if database_url is not None:
            env["TUOYU_DATABASE_URL"] = database_url
        state.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = state / f"server-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    # What `tuoyu serve --workers N` runs, without the access log.
                    "from tuoyu_api.serve import serve; "
                    f"serve('127.0.0.1', {port}, {workers}, log_level='warning', "
                    "access_log=False)",
                ],
                cwd=state,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # kill -9 reaches the workers too
            )
        server = Server(proc, f"http://127.0.0.1:{port}", log)
        self.started.append(server)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {log.read_text('utf-8', 'replace')}")
            try:
                if httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start: {log.read_text('utf-8', 'replace')}")
            time.sleep(0.2)


@pytest.fixture()
def servers(tmp_path: Path, settings: Settings) -> Iterator[Servers]:
    pool = Servers(settings, tmp_path)
    try:
        yield pool
    finally:
        for server in pool.started:
            server.stop()


def _token(state: Path, database_url: str | None = None) -> dict[str, str]:
    settings = get_api_settings(state_dir=state, database_url=database_url)
    database = open_database(resolve_database_url(settings), upgrade=False)
    try:
        with database.session() as session:
            return {"Authorization": f"Bearer {create_token(session, 'reliability')}"}
    finally:
        database.dispose()


async def _send_all(
    base: str, requests: list[tuple[str, str, dict[str, Any] | None]], auth: dict[str, str]
) -> list[int]:
    """Send every request at once (one connection each); the statuses, 0 = no answer."""
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=CLIENT_TIMEOUT_S, limits=limits) as http:

        async def one(method: str, path: str, body: dict[str, Any] | None) -> int:
            try:
                response = await http.request(method, path, json=body, headers=auth)
            except httpx.HTTPError:
                return 0
            return response.status_code

        return list(await asyncio.gather(*(one(m, p, b) for m, p, b in requests)))


class HealthPoller:
    """Asks ``/healthz`` every half second from a thread until stopped (bounded)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
            for _ in range(2000):  # bounded: ~17 minutes at most
                if self._stop.is_set():
                    return
                try:
                    self.statuses.append(http.get(f"{self.base}/healthz").status_code)
                except httpx.HTTPError:
                    self.statuses.append(0)
                self._stop.wait(0.5)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=CLIENT_TIMEOUT_S + 10)


def _registry(http: httpx.Client, base: str, auth: dict[str, str]) -> dict[str, dict[str, Any]]:
    listed = http.get(f"{base}{YZ}/facilities").json()
    return {f["id"]: f["properties"] for f in listed["features"]}


def _audited(http: httpx.Client, base: str, auth: dict[str, str]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for offset in range(0, 10_000, 1000):
        page = http.get(
            f"{base}{YZ}/audit", params={"limit": 1000, "offset": offset}, headers=auth
        ).json()
        entries += page
        if len(page) < 1000:
            break
    return entries


def _concurrent_writes_case(servers: Servers, state: Path, database_url: str | None) -> None:
    server = servers.start(state, database_url=database_url)
    auth = _token(state, database_url)
    rng = random.Random(7)
    bodies = [_facility(i, rng) for i in range(WRITES)]
    with HealthPoller(server.base) as health:
        statuses = asyncio.run(
            _send_all(server.base, [("POST", f"{YZ}/facilities", b) for b in bodies], auth)
        )
    counts = {s: statuses.count(s) for s in set(statuses)}
    assert 500 not in counts, (counts, server.log.read_text("utf-8", "replace")[-3000:])
    assert set(counts) <= {201, 422, 429, 503}, counts  # refused, never failed
    assert counts.get(201, 0) >= WRITES // 2, counts  # the server took the load
    acknowledged = {b["id"] for b, s in zip(bodies, statuses, strict=True) if s == 201}
    assert health.statuses and set(health.statuses) == {200}, health.statuses
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
        registry = _registry(http, server.base, auth)
        assert acknowledged <= set(registry)
        audited = {
            e["facility_id"] for e in _audited(http, server.base, auth) if e["action"] == "create"
        }
        assert acknowledged <= audited
        summary = http.get(f"{server.base}{YZ}/summary").json()
        assert summary["totals"]["facilities"] == len(registry)


def test_200_concurrent_writes_sqlite(servers: Servers, tmp_path: Path) -> None:
    _concurrent_writes_case(servers, tmp_path / "sqlite", None)


@pytest.mark.postgres
def test_200_concurrent_writes_postgresql(
    servers: Servers, tmp_path: Path, pg_empty_url: str
) -> None:
    _concurrent_writes_case(servers, tmp_path / "pg", pg_empty_url)


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ (leaf paths with both values); empty when they agree.

    Floats agree within a relative 1e-9: the library's 2SFCA access index sums over the
    facilities in the order a model received them, so a worker that saw the writes in
    another order can differ in the last bit (reported to the library's owner).
    """
    if isinstance(a, float) and isinstance(b, float):
        return (
            [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else [f"{path}: {a!r} != {b!r}"]
        )
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(key), b.get(key), f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _agreeing_answers(base: str, path: str, params: dict[str, Any] | None = None) -> list[Any]:
    """``READS_PER_CHECK`` answers of ``GET path``, each on a fresh connection (so the
    kernel hands them to different workers)."""
    answers = []
    for _ in range(READS_PER_CHECK):
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
            response = http.get(f"{base}{path}", params=params)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def test_four_workers_agree_after_400_mixed_writes(servers: Servers, tmp_path: Path) -> None:
    state = tmp_path / "workers"
    server = servers.start(state, workers=WORKERS)
    auth = _token(state)
    rng = random.Random(11)
    bodies = [_facility(i, rng, "MX") for i in range(WRITES)]
    created = asyncio.run(
        _send_all(server.base, [("POST", f"{YZ}/facilities", b) for b in bodies], auth)
    )
    assert 500 not in created
    alive = [b for b, s in zip(bodies, created, strict=True) if s == 201]
    assert len(alive) >= WRITES // 2
    rng.shuffle(alive)
    deleted = alive[:MIXED_DELETES]
    updated = alive[MIXED_DELETES : MIXED_DELETES + MIXED_UPDATES]
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("DELETE", f"{YZ}/facilities/{b['id']}", None) for b in deleted
    ]
    requests += [
        ("PUT", f"{YZ}/facilities/{b['id']}", {**b, "puhui": not b["puhui"], "slots": 99})
        for b in updated
    ]
    # Reads between the writes, so every worker has a built analysis to keep in step.
    requests += [("GET", f"{YZ}/summary", None)] * 20
    rng.shuffle(requests)
    statuses = asyncio.run(_send_all(server.base, requests, auth))
    assert 500 not in statuses
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
        registry = _registry(http, server.base, auth)
    gone = {b["id"] for b in deleted} - set(registry)
    assert gone, "no delete went through"
    summaries = _agreeing_answers(server.base, f"{YZ}/summary")
    first = {k: v for k, v in summaries[0].items() if k != "version"}
    for summary in summaries:
        this = {k: v for k, v in summary.items() if k != "version"}
        assert _differences(first, this) == []
    assert first["totals"]["facilities"] == len(registry)
    assert first["totals"]["puhui_facilities"] == sum(1 for r in registry.values() if r["puhui"])
    # /nearest beside a few deleted facilities: never listed, the same everywhere.
    for body in [b for b in deleted if b["id"] in gone][:3]:
        point = {"lon": body["lon"], "lat": body["lat"], "k": 200}
        answers = _agreeing_answers(server.base, f"{YZ}/nearest", point)
        listed = [[f["facility_id"] for f in a["facilities"]] for a in answers]
        assert all(ids == listed[0] for ids in listed)
        assert set(listed[0]) <= set(registry) and body["id"] not in listed[0]


def test_kill_9_loses_nothing_and_a_second_server_agrees(servers: Servers, tmp_path: Path) -> None:
    state = tmp_path / "crash"
    first = servers.start(state)
    auth = _token(state)
    rng = random.Random(13)
    bodies = [_facility(i, rng, "KL") for i in range(WRITES)]
    acknowledged: list[str] = []
    ack_lock = threading.Lock()

    def writer(chunk: list[dict[str, Any]]) -> None:
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
            for body in chunk:
                try:
                    response = http.post(f"{first.base}{YZ}/facilities", json=body, headers=auth)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 201:
                    with ack_lock:
                        acknowledged.append(body["id"])

    threads = [threading.Thread(target=writer, args=(bodies[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < WRITES // 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(first.proc.pid, signal.SIGKILL)  # mid-burst, no shutdown of any kind
    first.proc.wait(timeout=60)
    for t in threads:
        t.join(timeout=CLIENT_TIMEOUT_S + 10)
    assert acknowledged, "no write was acknowledged before the kill"
    # Two servers on the same state: the restarted one and a second one beside it.
    again, second = servers.start(state), servers.start(state)
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
        registry = _registry(http, again.base, auth)
        assert set(acknowledged) <= set(registry)
        audited = {e["facility_id"] for e in _audited(http, again.base, auth)}
        assert set(acknowledged) <= audited
        # Write through one, read through the other: they agree, deletes included.
        victim = acknowledged[0]
        assert http.delete(f"{again.base}{YZ}/facilities/{victim}", headers=auth).status_code == 204
        extra = _facility(9999, rng, "KL")
        assert (
            http.post(f"{second.base}{YZ}/facilities", json=extra, headers=auth).status_code == 201
        )
        views = []
        for server in (again, second):
            summary = http.get(f"{server.base}{YZ}/summary").json()
            views.append({k: v for k, v in summary.items() if k != "version"})
            near = http.get(
                f"{server.base}{YZ}/nearest", params={"lon": CENTRE[0], "lat": CENTRE[1], "k": 200}
            ).json()
            assert victim not in {f["facility_id"] for f in near["facilities"]}
        assert _differences(views[0], views[1]) == []
        assert views[0]["totals"]["facilities"] == len(registry)  # −1 deleted, +1 created


def test_full_worker_refuses_at_once_but_answers_healthz() -> None:
    """Beyond ``max_in_flight_requests`` a request is a 503 before any work (the queue and
    so every latency stop growing under overload); ``/healthz`` still answers."""
    from starlette.types import Message, Receive, Scope, Send
    from tuoyu_api.limits import InFlightLimitMiddleware

    async def scenario() -> list[tuple[str, int, dict[str, str]]]:
        release = asyncio.Event()
        answered: list[tuple[str, int, dict[str, str]]] = []

        async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["path"] == "/slow":
                await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        middleware = InFlightLimitMiddleware(slow_app, max_in_flight=1)

        async def call(path: str) -> None:
            scope: Scope = {"type": "http", "path": path, "method": "GET", "headers": []}

            async def receive() -> Message:
                return {"type": "http.request", "body": b"", "more_body": False}

            start: dict[str, Any] = {}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    start.update(message)

            await middleware(scope, receive, send)
            headers = {k.decode(): v.decode() for k, v in start.get("headers", [])}
            answered.append((path, int(start["status"]), headers))

        first = asyncio.create_task(call("/slow"))
        await asyncio.sleep(0.05)
        await call("/areas")
        await call("/healthz")
        release.set()
        await first
        await call("/areas")
        return answered

    answered = asyncio.run(scenario())
    assert [(p, s) for p, s, _h in answered] == [
        ("/areas", 503),
        ("/healthz", 200),
        ("/slow", 200),
        ("/areas", 200),
    ]
    assert answered[0][2]["retry-after"] == "1"


def test_late_event_loop_sheds_and_recovers() -> None:
    """Overload of the hot path queues in socket buffers, unseen by any counter: while the
    event loop runs late, requests get 503 at once, and the worker recovers by itself."""
    from starlette.types import Message, Receive, Scope, Send
    from tuoyu_api.limits import InFlightLimitMiddleware

    async def scenario() -> list[int]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        middleware = InFlightLimitMiddleware(app, max_in_flight=100, max_loop_lag_s=0.1)

        async def call() -> int:
            scope: Scope = {"type": "http", "path": "/areas", "method": "GET", "headers": []}
            status: list[int] = []

            async def receive() -> Message:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status.append(int(message["status"]))

            await middleware(scope, receive, send)
            return status[0]

        codes = [await call()]  # starts the heartbeat
        for _ in range(3):  # three late heartbeats running: the loop is saturated
            time.sleep(0.3)  # blocks the loop, as a flood of on-loop requests does
            await asyncio.sleep(0.01)  # the overdue heartbeat runs, measuring the lag
        codes.append(await call())
        for _ in range(200):  # bounded: recovers once the loop is on time again
            await asyncio.sleep(0.06)
            if middleware.lag_s <= 0.1:
                break
        codes.append(await call())
        return codes

    assert asyncio.run(scenario()) == [200, 503, 200]


def test_tuoyu_serve_workers_announces_only_when_answering(
    tmp_path: Path, settings: Settings
) -> None:
    """``tuoyu serve --workers 2`` runs, and "serving on" is printed only once the server
    answers (it used to be printed ~20 s before)."""
    state = tmp_path / "serve"
    state.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUOYU_")}
    env.update(
        TUOYU_STATE_DIR=str(state),
        TUOYU_DATA_DIR=str(settings.data_dir),
        TUOYU_CACHE_DIR=str(settings.cache_dir),
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tuoyu.cli import main; raise SystemExit(main())",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        cwd=state,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    # A server that never announces is stopped, which ends the reading below.
    watchdog = threading.Timer(START_TIMEOUT_S, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    try:
        assert proc.stderr is not None
        for _ in range(10_000):  # bounded; ends at the announcement or at exit
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "serving on" in line:
                # Announced: it answers now, at once.
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
                assert response.status_code == 200
                break
        assert any("serving on" in line and "2 worker" in line for line in lines), lines
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
