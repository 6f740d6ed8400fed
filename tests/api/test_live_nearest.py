"""The real server (uvicorn in a subprocess, loopback port) follows registry writes.

A token is created on the server's own SQLite registry (``tuoyu_api.tokens.create_token``), a
facility is registered in Yuzhong over HTTP, ``/nearest`` from a point ~100 m beside it
lists it, and after the DELETE it is gone. The browser test opens the facility map the
server builds and runs "walk from here" against the same server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from tuoyu.config.settings import Settings
from tuoyu_api.db import open_database
from tuoyu_api.schemas import SAMPLE_FACILITY
from tuoyu_api.settings import get_api_settings, resolve_database_url
from tuoyu_api.tokens import create_token

from tests.browser_support import launched_chromium
from tests.live_server import free_port

pytestmark = pytest.mark.slow  # starts a server process (~10 s on a busy machine)

YZ = "/areas/chongqing-yuzhong"
BESIDE = {"lon": 106.5785, "lat": 29.5583}  # ~100 m east of SAMPLE_FACILITY (106.5775)
START_TIMEOUT_S = 120.0


@dataclass
class LiveServer:
    """A running server: base URL and a valid bearer token."""

    base: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[LiveServer]:
    """``uvicorn --factory tuoyu_api.app:create_app`` on a free loopback port, Yuzhong preloaded."""
    state = tmp_path_factory.mktemp("live-state")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUOYU_")}
    env.update(
        TUOYU_STATE_DIR=str(state),
        TUOYU_DATA_DIR=str(settings.data_dir),
        TUOYU_CACHE_DIR=str(settings.cache_dir),
        TUOYU_PRELOAD_AREAS='["chongqing-yuzhong"]',
    )
    port = free_port()
    log = state / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "tuoyu_api.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=state,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {log.read_text('utf-8', 'replace')}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start: {log.read_text('utf-8', 'replace')}")
            time.sleep(0.2)
        # The token goes into the database the server uses (same settings, same file).
        server_settings = get_api_settings(state_dir=state, database_url=None)
        database = open_database(resolve_database_url(server_settings), upgrade=False)
        try:
            with database.session() as session:
                token = create_token(session, "live-nearest")
        finally:
            database.dispose()
        yield LiveServer(base, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _nearest_ids(http: httpx.Client, base: str) -> list[str]:
    response = http.get(f"{base}{YZ}/nearest", params=BESIDE)
    assert response.status_code == 200, response.text
    return [f["facility_id"] for f in response.json()["facilities"]]


def test_register_find_and_delete_over_http(live: LiveServer) -> None:
    with httpx.Client(timeout=60) as http:
        assert _nearest_ids(http, live.base) == []
        created = http.post(f"{live.base}{YZ}/facilities", json=SAMPLE_FACILITY, headers=live.auth)
        assert created.status_code == 201, created.text
        response = http.get(f"{live.base}{YZ}/nearest", params=BESIDE).json()
        (row,) = response["facilities"]
        assert row["facility_id"] == "YZ-TY-0001" and row["name"] == SAMPLE_FACILITY["name"]
        assert 0 < row["walk_m"] <= 1000 and row["walk_min"] <= 15
        deleted = http.delete(f"{live.base}{YZ}/facilities/YZ-TY-0001", headers=live.auth)
        assert deleted.status_code == 204
        assert _nearest_ids(http, live.base) == []
        assert http.get(f"{live.base}{YZ}/facilities").json()["numberMatched"] == 0


# --- the served facility map in Chromium ---------------------------------------------------


@pytest.mark.browser
def test_served_map_walks_from_here_through_the_server(live: LiveServer) -> None:
    body = {**SAMPLE_FACILITY, "id": "YZ-MAP-1", "name": "地图测试托育点"}
    with httpx.Client(timeout=60) as http:
        created = http.post(f"{live.base}{YZ}/facilities", json=body, headers=live.auth)
        assert created.status_code == 201, created.text
    calls: list[str] = []
    errors: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith(live.base):
            calls.append(url)
            request_route.continue_()
        else:
            request_route.abort()  # map tiles: offline

    with launched_chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(0)  # no time limit that a busy machine could trip
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.route("**/*", route)
        page.goto(f"{live.base}{YZ}/maps/facilities")
        page.wait_for_function("() => window.tuoyu && tuoyu.last && tuoyu.last.ready")
        page.fill("input.tuoyu-lonlat", f"{BESIDE['lon']:.6f},{BESIDE['lat']:.6f}")
        page.click(".tuoyu-walk-form button")
        page.wait_for_function(
            "() => document.querySelectorAll('.tuoyu-walk-list li').length === 1"
        )
        assert "地图测试托育点" in page.inner_text(".tuoyu-walk-list")
    assert errors == []
    nearest = [urlparse(u) for u in calls if "/nearest" in u]
    assert nearest and nearest[-1].path == f"{YZ}/nearest"
    assert parse_qs(nearest[-1].query)["crs"] == ["wgs84"]
