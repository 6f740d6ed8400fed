"""``POST /areas/{area}/sites``: siting through the API on the live analysis."""

from __future__ import annotations

from pathlib import Path

import pytest
from tuoyu.config.settings import Settings
from tuoyu_api.app import create_app
from tuoyu_api.schemas import SAMPLE_FACILITY
from tuoyu_api.settings import get_api_settings
from tuoyu_api.tokens import create_token

from tests.api.conftest import TestClient


@pytest.fixture()
def client(tmp_path: Path, settings: Settings):
    app = create_app(
        get_api_settings(
            data_dir=settings.data_dir,
            cache_dir=settings.cache_dir,
            state_dir=tmp_path / "state",
            database_url=f"sqlite:///{tmp_path / 'registry.sqlite'}",
        )
    )
    with TestClient(app) as c:
        with app.state.tuoyu.database.session() as session:
            yield c, {"Authorization": f"Bearer {create_token(session, 'planner')}"}


def test_sites_recommended_on_yuzhong(client) -> None:
    c, auth = client
    response = c.post("/areas/chongqing-yuzhong/sites", json={"p": 3}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["sites"]["features"]) == 3
    assert body["sites"]["attribution"] == "© OpenStreetMap contributors"
    assert body["siting"]["optimal"] is True and body["siting"]["solver"] == "exact"
    gains = [f["properties"]["added_under3"] for f in body["sites"]["features"]]
    assert all(g > 0 for g in gains)
    after = body["summary"]["indicators"]["coverage_pct"]["value"]
    assert after > 0
    # a registered 普惠 facility changes what the next site can add; the registry is unchanged
    assert (
        c.post(
            "/areas/chongqing-yuzhong/facilities", json=SAMPLE_FACILITY, headers=auth
        ).status_code
        == 201
    )
    again = c.post("/areas/chongqing-yuzhong/sites", json={"p": 3}, headers=auth).json()
    total_before = sum(gains)
    total_after = sum(f["properties"]["added_under3"] for f in again["sites"]["features"])
    assert total_after <= total_before + 1e-6
    listed = c.get("/areas/chongqing-yuzhong/facilities").json()["features"]
    assert len(listed) == 1


def test_sites_errors(client) -> None:
    c, auth = client
    # Siting is expensive: it needs a token (401 before the body is read).
    unauthenticated = c.post("/areas/chongqing-yuzhong/sites", json={"p": 2})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "unauthorized"
    assert c.post("/areas/chongqing-yuzhong/sites", json={"p": 0}, headers=auth).status_code == 422
    # Dongcheng walks on its road-centreline layer: siting works there (no OSM candidates).
    response = c.post(
        "/areas/beijing-dongcheng/sites", json={"p": 2, "solver": "greedy"}, headers=auth
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["sites"]["features"]) == 2
