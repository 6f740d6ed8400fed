"""HTTP endpoints through TestClient, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tuoyu_api.app import create_app
from tuoyu_api.db import open_database
from tuoyu_api.deps import install_state, set_registry_hook
from tuoyu_api.errors import install_error_handlers
from tuoyu_api.routers import facilities
from tuoyu_api.schemas import SAMPLE_FACILITY
from tuoyu_api.settings import ApiSettings, get_api_settings
from tuoyu_api.tokens import create_token, revoke_token

YZ = "/areas/chongqing-yuzhong/facilities"


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["message"]
    return dict(body["error"])


def test_healthz(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] in ("sqlite", "postgresql")


def test_areas(client: TestClient, auth: dict[str, str]) -> None:
    client.post(YZ, json=SAMPLE_FACILITY, headers=auth)
    areas = {a["slug"]: a for a in client.get("/areas").json()}
    assert set(areas) == {"beijing-dongcheng", "chongqing-yuzhong"}
    yz = areas["chongqing-yuzhong"]
    assert yz["name"] == "重庆市渝中区" and yz["code"] == "500103"
    assert yz["walk"] == {"speed_kmh": 4.0, "minutes": [5.0, 10.0, 15.0]}
    assert yz["layers"]["network"] is True and yz["layers"]["facilities"] is False
    # Regression: the registry is seeded from the area's file before the first listing
    # (it reported 0 until some other request happened to build the area).
    assert yz["facility_count"] == 1 and areas["beijing-dongcheng"]["facility_count"] == 64
    one = client.get("/areas/beijing-dongcheng").json()
    assert one["name_en"] == "Dongcheng District, Beijing" and one["layers"]["units"] is True
    _error(client.get("/areas/atlantis"), 404, "not_found")


def test_crud_flow(client: TestClient, auth: dict[str, str]) -> None:
    created = client.post(YZ, json=SAMPLE_FACILITY, headers=auth)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{YZ}/YZ-TY-0001"
    feature = created.json()
    assert feature["type"] == "Feature" and feature["id"] == "YZ-TY-0001"
    assert feature["geometry"] == {"type": "Point", "coordinates": [106.5775, 29.5583]}
    props = feature["properties"]
    assert props["name"] == "渝中区解放碑社区托育服务中心"
    assert props["kind_en"] == "Comprehensive childcare service centre"
    assert props["crs"] == "wgs84" and props["source_crs"] == "wgs84"

    got = client.get(f"{YZ}/YZ-TY-0001").json()
    assert got == feature

    changed = {**SAMPLE_FACILITY, "enrolled": 70, "puhui": False}
    updated = client.put(f"{YZ}/YZ-TY-0001", json=changed, headers=auth)
    assert updated.status_code == 200, updated.text
    assert updated.json()["properties"]["enrolled"] == 70
    assert updated.json()["properties"]["puhui"] is False

    assert client.delete(f"{YZ}/YZ-TY-0001", headers=auth).status_code == 204
    _error(client.get(f"{YZ}/YZ-TY-0001"), 404, "not_found")
    _error(client.delete(f"{YZ}/YZ-TY-0001", headers=auth), 404, "not_found")

    audit = client.get("/areas/chongqing-yuzhong/audit", headers=auth).json()
    assert [a["action"] for a in audit] == ["delete", "update", "create"]
    assert {a["actor"] for a in audit} == {"tester"}
    assert audit[1]["before"]["enrolled"] == 62 and audit[1]["after"]["enrolled"] == 70
    assert audit[0]["after"] is None and audit[2]["before"] is None
    only = client.get(
        "/areas/chongqing-yuzhong/audit", params={"facility_id": "nope"}, headers=auth
    ).json()
    assert only == []


def test_gcj02_write_is_stored_in_wgs84_with_area_defaults(
    client: TestClient, auth: dict[str, str]
) -> None:
    body = {
        "id": "DC-NEW-1",
        "name": "东四社区托育点",
        "lon": 116.4238,
        "lat": 39.9284,
        "crs": "gcj02",
        "kind": "社区托育点",
    }
    created = client.post("/areas/beijing-dongcheng/facilities", json=body, headers=auth)
    assert created.status_code == 201, created.text
    props = created.json()["properties"]
    assert props["source_crs"] == "gcj02" and props["crs"] == "wgs84"
    # GCJ-02 → WGS84 in Beijing moves the point ~0.006° west and ~0.001° south.
    assert 0.004 < body["lon"] - props["lon"] < 0.008
    assert 0.0 < body["lat"] - props["lat"] < 0.003
    assert props["puhui"] is True and props["assumed_fields"] == ["puhui"]


def test_list_filters_and_geojson(client: TestClient, auth: dict[str, str]) -> None:
    bodies = [
        {**SAMPLE_FACILITY},
        {
            "id": "YZ-2",
            "lon": 106.52,
            "lat": 29.54,
            "kind": "家庭托育点",
            "puhui": False,
            "slots_toddler": 5,
            "service_modes": ["计时托"],
        },
        {
            "id": "YZ-3",
            "lon": 106.585,
            "lat": 29.565,
            "kind": "综合托育服务中心",
            "puhui": True,
            "slots_infant": 0,
            "slots_toddler": 0,
            "slots_preschool": 20,
        },
    ]
    for body in bodies:
        assert client.post(YZ, json=body, headers=auth).status_code == 201
    everything = client.get(YZ).json()
    assert everything["type"] == "FeatureCollection" and everything["area"] == "chongqing-yuzhong"
    assert everything["numberMatched"] == everything["numberReturned"] == 3
    assert "tuoyu-coverage" in everything["attribution"]

    def ids(**params: Any) -> list[str]:
        response = client.get(YZ, params=params)
        assert response.status_code == 200, response.text
        return [f["id"] for f in response.json()["features"]]

    assert ids(kind="综合托育服务中心") == ["YZ-3", "YZ-TY-0001"]
    assert ids(puhui="true") == ["YZ-3", "YZ-TY-0001"]
    assert ids(puhui="false") == ["YZ-2"]
    assert ids(age_class="乳儿班") == ["YZ-TY-0001"]
    assert ids(age_class="slots_preschool") == ["YZ-3", "YZ-TY-0001"]
    assert ids(service_mode="计时托") == ["YZ-2"]
    assert ids(bbox="106.55,29.55,106.58,29.56") == ["YZ-TY-0001"]
    page = client.get(YZ, params={"limit": 1, "offset": 1}).json()
    assert page["numberMatched"] == 3 and [f["id"] for f in page["features"]] == ["YZ-3"]

    assert (
        _error(client.get(YZ, params={"bbox": "1,2,3"}), 422, "validation_error")["field"] == "bbox"
    )
    assert (
        _error(client.get(YZ, params={"kind": "幼儿园"}), 422, "validation_error")["field"]
        == "kind"
    )
    _error(client.get("/areas/atlantis/facilities"), 404, "not_found")


def test_dongcheng_attribution_names_the_source(client: TestClient) -> None:
    body = client.get("/areas/beijing-dongcheng/facilities").json()
    assert "harvestalot/dongcheng" in body["attribution"]
    assert "demonstration and testing only" in body["attribution"]


def test_writes_need_a_valid_token(client: TestClient, token: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": f"Bearer {token}x"},
    ):
        response = client.post(YZ, json=SAMPLE_FACILITY, headers=headers)
        _error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        _error(client.put(f"{YZ}/X", json=SAMPLE_FACILITY, headers=headers), 401, "unauthorized")
        _error(client.delete(f"{YZ}/X", headers=headers), 401, "unauthorized")
        _error(client.get("/areas/chongqing-yuzhong/audit", headers=headers), 401, "unauthorized")
    with client.app.state.tuoyu.database.session() as session:  # type: ignore[attr-defined]
        revoke_token(session, "tester")
    revoked = client.post(YZ, json=SAMPLE_FACILITY, headers={"Authorization": f"Bearer {token}"})
    assert "revoked" in _error(revoked, 403, "token_revoked")["message"]
    assert client.get(YZ).json()["numberMatched"] == 0  # nothing was written


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"lon": 200.0}, "lon"),
        ({"lon": "东经106度"}, "lon"),
        ({"lat": 95.0, "lon": 10.0}, "lat"),
        ({"lon": 29.5583, "lat": 106.5775}, "lat"),  # swapped
        ({"kind": "幼儿园"}, "kind"),
        ({"slots_infant": -1}, "slots_infant"),
        ({"slots": 99}, "slots"),  # classes add up to 80
        ({"slots": "30个"}, "slots"),
        ({"crs": "EPSG:3857"}, "crs"),
        ({"registered_on": "2024-13-45"}, "registered_on"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_validation_errors_name_the_field(
    client: TestClient, auth: dict[str, str], patch: dict[str, Any], field: str
) -> None:
    response = client.post(YZ, json={**SAMPLE_FACILITY, **patch}, headers=auth)
    error = _error(response, 422, "validation_error")
    assert error["field"] == field, error
    assert client.get(YZ).json()["numberMatched"] == 0


def test_write_outside_the_study_area_is_refused(
    client: TestClient, auth: dict[str, str], data_dir: Path
) -> None:
    """In Chongqing but west of 渝中区 (the loader's study-area check, district outline)."""
    outside = {**SAMPLE_FACILITY, "lon": 106.45, "lat": 29.55}
    error = _error(client.post(YZ, json=outside, headers=auth), 422, "validation_error")
    assert "outside the study area" in error["message"] and error["field"] == "lon/lat"
    assert client.post(YZ, json=SAMPLE_FACILITY, headers=auth).status_code == 201


def test_malformed_bodies_and_paths(client: TestClient, auth: dict[str, str]) -> None:
    _error(
        client.post(YZ, content=b"{not json", headers={**auth, "Content-Type": "application/json"}),
        422,
        "validation_error",
    )
    _error(client.post(YZ, json=[1, 2], headers=auth), 422, "validation_error")
    missing = _error(
        client.post(YZ, json={"name": "无坐标"}, headers=auth), 422, "validation_error"
    )
    assert missing["field"] in ("lon", "lat")
    client.post(YZ, json=SAMPLE_FACILITY, headers=auth)
    renamed = client.put(f"{YZ}/YZ-TY-0001", json={**SAMPLE_FACILITY, "id": "OTHER"}, headers=auth)
    assert _error(renamed, 422, "validation_error")["field"] == "id"
    _error(client.post(YZ, json=SAMPLE_FACILITY, headers=auth), 409, "conflict")
    _error(
        client.put(f"{YZ}/NOPE", json=SAMPLE_FACILITY | {"id": None}, headers=auth),
        404,
        "not_found",
    )
    _error(client.get("/no/such/route"), 404, "not_found")
    _error(client.patch(f"{YZ}/YZ-TY-0001", json={}), 405, "method_not_allowed")


def test_openapi_documents_examples_and_auth(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/areas/{area}/facilities"]["post"]
    examples = post["requestBody"]["content"]["application/json"]["examples"]
    assert examples["wgs84"]["value"]["name"] == "渝中区解放碑社区托育服务中心"
    assert {"401", "403", "409", "422"} <= set(post["responses"])
    assert post["security"] == [{"token": []}]
    assert spec["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert "get" in spec["paths"]["/areas/{area}/facilities/{facility_id}"]


def test_hook_sees_api_writes(api_settings: ApiSettings) -> None:
    seen: list[tuple[str, str, str | None, str | None]] = []

    def hook(area: str, action: str, before: Any, after: Any) -> None:
        seen.append((area, action, before and before["id"], after and after["id"]))

    app = create_app(api_settings, on_registry_change=hook)
    with TestClient(app) as client:
        with app.state.tuoyu.database.session() as session:
            auth = {"Authorization": f"Bearer {create_token(session, 'hooked')}"}
        client.post(YZ, json=SAMPLE_FACILITY, headers=auth)
        client.delete(f"{YZ}/YZ-TY-0001", headers=auth)
        set_registry_hook(app, None)
        client.post(YZ, json=SAMPLE_FACILITY, headers=auth)
    assert seen == [
        ("chongqing-yuzhong", "create", None, "YZ-TY-0001"),
        ("chongqing-yuzhong", "delete", "YZ-TY-0001", None),
    ]


def test_facilities_router_alone(tmp_path: Path) -> None:
    """A router works on a bare FastAPI app with the shared state installed."""
    settings = get_api_settings(state_dir=tmp_path, database_url=None)
    database = open_database(f"sqlite:///{tmp_path / 'alone.sqlite'}")
    app = FastAPI()
    install_state(app, settings, database)
    install_error_handlers(app)
    app.include_router(facilities.router)
    try:
        with database.session() as session:
            auth = {"Authorization": f"Bearer {create_token(session, 'solo')}"}
        client = TestClient(app)
        assert client.post(YZ, json=SAMPLE_FACILITY, headers=auth).status_code == 201
        assert client.get(YZ).json()["numberMatched"] == 1
        assert client.get("/healthz").status_code == 404  # not included here
    finally:
        database.dispose()


def test_cors_origins_from_settings(tmp_path: Path) -> None:
    settings = get_api_settings(
        state_dir=tmp_path, database_url=None, cors_origins=["https://map.example.cn"]
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/healthz", headers={"Origin": "https://map.example.cn"})
        assert response.headers["access-control-allow-origin"] == "https://map.example.cn"
        other = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
