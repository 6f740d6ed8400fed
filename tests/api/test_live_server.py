"""The app under a real uvicorn server on a loopback port, driven over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tuoyu_api.app import create_app
from tuoyu_api.schemas import SAMPLE_FACILITY
from tuoyu_api.settings import get_api_settings
from tuoyu_api.tokens import create_token_cli

from tests.live_server import running_server


@pytest.fixture()
def live_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Base URL of a running server and a token made the way ``tuoyu token create`` does."""
    settings = get_api_settings(state_dir=tmp_path, database_url=None)
    token = create_token_cli("live-editor", settings)
    with running_server(create_app(settings)) as port:
        yield f"http://127.0.0.1:{port}", token


def test_register_read_and_delete_over_http(live_server: tuple[str, str]) -> None:
    base, token = live_server
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{base}/areas/chongqing-yuzhong/facilities"
    with httpx.Client(timeout=30) as http:
        assert http.get(f"{base}/healthz").json()["status"] == "ok"
        assert http.post(url, json=SAMPLE_FACILITY).status_code == 401
        created = http.post(url, json=SAMPLE_FACILITY, headers=auth)
        assert created.status_code == 201, created.text
        listed = http.get(url, params={"bbox": "106.57,29.55,106.58,29.56"}).json()
        assert [f["id"] for f in listed["features"]] == ["YZ-TY-0001"]
        assert http.delete(f"{url}/YZ-TY-0001", headers=auth).status_code == 204
        assert http.get(f"{url}/YZ-TY-0001").status_code == 404
        audit = http.get(f"{base}/areas/chongqing-yuzhong/audit", headers=auth).json()
        assert [(a["action"], a["actor"]) for a in audit] == [
            ("delete", "live-editor"),
            ("create", "live-editor"),
        ]
