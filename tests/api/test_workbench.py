"""The planner's workbench API on Dongcheng (real network, 街道, kindergartens, population).

Checked: the page is served with Leaflet inlined (no CDN); the scenario endpoint reports
each 街道 before/after in people and percentage points, equal to what a real registry
write of the same facility gives, and the planned facility's isochrone; GCJ-02 clicks
give the same answer as the WGS84 point they stand for; saved scenarios are stored with
their author, listed, read, compared, exported (CSV/XLSX/GeoJSON, formula-safe) and
deleted; writes need a token and are audited; the facility registry never changes.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from shapely.geometry import Point, shape
from tuoyu.config.settings import Settings
from tuoyu.crs.china import convert
from tuoyu_api.app import create_app
from tuoyu_api.settings import ApiSettings, get_api_settings
from tuoyu_api.tokens import create_token, revoke_token

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

DC = "/areas/beijing-dongcheng"
# Three points in Dongcheng (WGS84), each bringing people into the circle; EAST lies in
# 东华门街道 and reaches into 朝阳门街道.
EAST = {"lon": 116.4100, "lat": 39.9200}
NORTH = {"lon": 116.4180, "lat": 39.9330}
SOUTH = {"lon": 116.4250, "lat": 39.8950}
PLANNED = {"name": "规划社区托育点", "kind": "社区托育点", "puhui": True, "slots": 40}


def _settings(tmp: Path, settings: Settings) -> ApiSettings:
    return get_api_settings(
        data_dir=settings.data_dir,
        cache_dir=settings.cache_dir,
        state_dir=tmp / "state",
        database_url=f"sqlite:///{tmp / 'registry.sqlite'}",
    )


@pytest.fixture(scope="module")
def dc(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """One app (SQLite) for the module and a planner's Authorization header."""
    app = create_app(_settings(tmp_path_factory.mktemp("wb"), settings))
    with TestClient(app) as client:
        with app.state.tuoyu.database.session() as session:
            token = create_token(session, "planner")
        yield client, {"Authorization": f"Bearer {token}"}


def _scenario(client: TestClient, body: dict[str, Any], minutes: float | None = 15) -> Any:
    url = f"{DC}/scenarios" + (f"?isochrone_minutes={minutes}" if minutes else "")
    response = client.post(url, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _registry_state(client: TestClient, auth: dict[str, str]) -> tuple[Any, ...]:
    facilities = client.get(f"{DC}/facilities").json()
    units = client.get(f"{DC}/units").json()["units"]
    audit = client.get(f"{DC}/audit", headers=auth).json()
    summary = client.get(f"{DC}/summary").json()
    return facilities["numberMatched"], units, len(audit), summary["registry_seq"]


# --- the page -----------------------------------------------------------------------------------


def test_page_is_served_with_everything_inline(dc: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = dc
    response = client.get(f"{DC}/workbench")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "情景模拟工作台" in page and "Scenario workbench" in page and "北京市东城区" in page
    # Leaflet, the project's datum code and the workbench script are inlined: no CDN.
    assert "Leaflet 1.9.4" in page and "window.tuoyuWorkbench" in page and "T.toGcj" in page
    assert "<script src=" not in page and "<link " not in page
    config = json.loads(page.split('id="wb-config">', 1)[1].split("</script>", 1)[0])
    assert config["area"] == "beijing-dongcheng" and config["minutes"] == 15
    assert {b["key"]: b["datum"] for b in config["basemaps"]} == {"osm": "wgs84", "amap": "gcj02"}
    (south, west), (north, east) = config["bounds"]
    assert 116.3 < west < east < 116.5 and 39.8 < south < north < 40.0
    assert client.get("/areas/nowhere/workbench").status_code == 404


def test_units_are_the_jiedao_polygons(dc: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = dc
    units = client.get(f"{DC}/workbench/units").json()
    assert units["units_kind"] == "jiedao" and len(units["features"]) == 17
    table = {u["code"]: u["name"] for u in client.get(f"{DC}/units").json()["units"]}
    assert {f["properties"]["code"]: f["properties"]["name"] for f in units["features"]} == table
    east = Point(EAST["lon"], EAST["lat"])
    inside = [f for f in units["features"] if shape(f["geometry"]).contains(east)]
    assert [f["properties"]["name"] for f in inside] == ["东华门街道"]


# --- the scenario endpoint --------------------------------------------------------------------


def test_scenario_reports_people_points_and_isochrones(
    dc: tuple[TestClient, dict[str, str]],
) -> None:
    client, _ = dc
    result = _scenario(client, {"add": [{**PLANNED, **EAST}]})
    changes = {c["code"]: c for c in result["changes"]}
    units = {u["code"]: u for u in client.get(f"{DC}/units").json()["units"]}
    assert set(changes) == set(units)
    for code, c in changes.items():
        # "before" is the current table; "after" is the scenario's own table.
        assert c["covered_before"] == pytest.approx(units[code]["covered_population"], abs=0.06)
        after = next(u for u in result["units"] if u["code"] == code)
        assert c["covered_after"] == pytest.approx(after["covered_population"], abs=0.06)
        assert c["covered_change"] == pytest.approx(
            c["covered_after"] - c["covered_before"], abs=0.11
        )
        assert c["coverage_pp"] == pytest.approx(
            c["coverage_pct_after"] - c["coverage_pct_before"], abs=0.011
        )
        # Dongcheng's under-3 children are 1.5 % of every population point.
        assert c["under3_covered_change"] == pytest.approx(0.015 * c["covered_change"], abs=0.06)
        assert c["covered_change"] >= 0  # adding a facility never loses anyone
    gained = {changes[k]["name"] for k in changes if changes[k]["covered_change"] > 0}
    assert "朝阳门街道" in gained
    # The facility counts in the 街道 it stands in.
    moved = {c["name"] for c in changes.values() if c["facilities_after"] != c["facilities_before"]}
    assert moved == {"东华门街道"}
    district = result["district"]
    assert district["covered_change"] == pytest.approx(
        sum(c["covered_change"] for c in changes.values()), abs=1.0
    )
    assert district["coverage_pp"] > 0
    assert "精确" in result["under3_method"]
    assert district["facilities_after"] == district["facilities_before"] + 1

    iso = result["isochrones"]
    assert iso["minutes"] == 15 and iso["walk_m"] == 1000.0 and iso["skipped"] == 0
    [feature] = iso["features"]
    assert feature["id"] == result["added"][0] == "scenario-1"
    polygon = shape(feature["geometry"])
    assert polygon.contains(Point(EAST["lon"], EAST["lat"]))
    assert feature["properties"]["method"] == "walk_field"
    # At most a 1 km walk: never beyond a 1 km (+ buffer) circle around the point.
    assert 3e5 < feature["properties"]["area_m2"] < 3.2e6
    assert result["added_records"][0]["lon"] == EAST["lon"]
    # Without isochrone_minutes the answer carries none.
    assert _scenario(client, {"add": [{**PLANNED, **EAST}]}, minutes=None)["isochrones"] is None


def test_gcj02_click_is_the_same_place(dc: tuple[TestClient, dict[str, str]]) -> None:
    """A click on the 高德 basemap is sent in GCJ-02; the server converts it."""
    client, _ = dc
    lon, lat = convert(EAST["lon"], EAST["lat"], "wgs84", "gcj02")
    gcj = _scenario(
        client, {"add": [{**PLANNED, "lon": float(lon), "lat": float(lat), "crs": "gcj02"}]}
    )
    wgs = _scenario(client, {"add": [{**PLANNED, **EAST}]})
    assert gcj["added_records"][0]["lon"] == pytest.approx(EAST["lon"], abs=1e-6)
    assert gcj["added_records"][0]["lat"] == pytest.approx(EAST["lat"], abs=1e-6)
    assert gcj["district"]["covered_change"] == pytest.approx(
        wgs["district"]["covered_change"], abs=1.0
    )
    # The same numbers sent as WGS84 land ~500 m away: a different answer.
    shifted = _scenario(client, {"add": [{**PLANNED, "lon": float(lon), "lat": float(lat)}]})
    assert shifted["district"]["covered_change"] != pytest.approx(
        wgs["district"]["covered_change"], abs=1.0
    )


def test_scenario_equals_a_real_registry_write(tmp_path: Path, settings: Settings) -> None:
    """The 'after' per 街道 is what the area shows once the facility is really registered."""
    app = create_app(_settings(tmp_path, settings))
    with TestClient(app) as client:
        with app.state.tuoyu.database.session() as session:
            auth = {"Authorization": f"Bearer {create_token(session, 'clerk')}"}
        result = _scenario(client, {"add": [{**PLANNED, **NORTH}]}, minutes=None)
        written = client.post(f"{DC}/facilities", json={**PLANNED, **NORTH, "id": "DC-NEW-1"},
                              headers=auth)  # fmt: skip
        assert written.status_code == 201, written.text
        units = {u["code"]: u for u in client.get(f"{DC}/units").json()["units"]}
        for c in result["changes"]:
            assert c["covered_after"] == pytest.approx(
                units[c["code"]]["covered_population"], abs=0.06
            )
            assert c["coverage_pct_after"] == pytest.approx(
                units[c["code"]]["coverage_pct"], abs=0.006
            )
        assert any(c["covered_change"] > 100 for c in result["changes"])


# --- saved scenarios ----------------------------------------------------------------------


def _save(client: TestClient, auth: dict[str, str], body: dict[str, Any]) -> Any:
    response = client.post(f"{DC}/saved-scenarios", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def test_save_list_get_compare_and_registry_untouched(
    dc: tuple[TestClient, dict[str, str]],
) -> None:
    client, auth = dc
    before = _registry_state(client, auth)
    body_a = {"name": "方案A 朝阳门", "note": "一处", "add": [{**PLANNED, **EAST}]}
    body_b = {
        "name": "方案B 两处并关闭一处",
        "add": [{**PLANNED, **NORTH}, {**PLANNED, **SOUTH, "puhui": False, "slots": 90}],
        "remove": ["DC-KG-001"],
    }
    a = _save(client, auth, body_a)
    b = _save(client, auth, body_b)
    assert a["author"] == b["author"] == "planner"
    assert (a["additions"], a["removals"], b["additions"], b["removals"]) == (1, 0, 2, 1)
    # What was saved is what the scenario endpoint computes for the same body.
    live_a = _scenario(client, {"add": body_a["add"]}, minutes=None)
    assert a["changes"] == live_a["changes"] and a["district"] == live_a["district"]
    live_b = _scenario(client, {"add": body_b["add"], "remove": body_b["remove"]}, minutes=None)
    assert b["changes"] == live_b["changes"]
    assert b["add"][1]["puhui"] is False and b["add"][1]["slots"] == 90
    assert b["add"][0]["lon_wgs84"] == NORTH["lon"] and b["add"][0]["crs"] == "wgs84"

    listed = client.get(f"{DC}/saved-scenarios").json()
    names = [s["name"] for s in listed]
    assert names.index(b["name"]) < names.index(a["name"])  # newest first
    got = client.get(f"{DC}/saved-scenarios/{a['id']}").json()
    assert got == a
    assert client.get(f"{DC}/saved-scenarios/999999").status_code == 404
    # Another area does not see Dongcheng's scenarios.
    assert client.get(f"/areas/chongqing-yuzhong/saved-scenarios/{a['id']}").status_code == 404
    assert client.get("/areas/chongqing-yuzhong/saved-scenarios").json() == []

    compared = client.get(f"{DC}/saved-scenarios/compare", params={"a": a["id"], "b": b["id"]})
    assert compared.status_code == 200, compared.text
    cmp = compared.json()
    assert cmp["a"]["name"] == a["name"] and cmp["b"]["name"] == b["name"] and cmp["same_base"]
    by_code = {u["code"]: u for u in cmp["units"]}
    assert len(by_code) == 17
    for change in a["changes"]:
        assert by_code[change["code"]]["a"] == change
    for change in b["changes"]:
        assert by_code[change["code"]]["b"] == change
    assert cmp["district"]["a"] == a["district"] and cmp["district"]["b"] == b["district"]
    assert (
        client.get(f"{DC}/saved-scenarios/compare", params={"a": a["id"], "b": 999999}).status_code
        == 404
    )

    duplicate = client.post(f"{DC}/saved-scenarios", json=body_a, headers=auth)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "conflict"
    # The facility registry, its audit log and change sequence are as they were.
    assert _registry_state(client, auth) == before


def test_writes_need_a_token_and_are_audited(
    dc: tuple[TestClient, dict[str, str]],
) -> None:
    client, auth = dc
    body = {"name": "审计测试", "add": [{**PLANNED, **SOUTH}]}
    assert client.post(f"{DC}/saved-scenarios", json=body).status_code == 401
    bad = {"Authorization": "Bearer tuoyu_not-a-token"}
    assert client.post(f"{DC}/saved-scenarios", json=body, headers=bad).status_code == 401
    with client.app.state.tuoyu.database.session() as session:  # type: ignore[attr-defined]
        old = {"Authorization": f"Bearer {create_token(session, 'former')}"}
        revoke_token(session, "former")
    assert client.post(f"{DC}/saved-scenarios", json=body, headers=old).status_code == 403
    assert all(s["name"] != body["name"] for s in client.get(f"{DC}/saved-scenarios").json())

    saved = _save(client, auth, body)
    sid = saved["id"]
    assert client.delete(f"{DC}/saved-scenarios/{sid}").status_code == 401
    assert client.delete(f"{DC}/saved-scenarios/{sid}", headers=old).status_code == 403
    assert client.get(f"{DC}/saved-scenarios/audit").status_code == 401
    assert client.delete(f"{DC}/saved-scenarios/{sid}", headers=auth).status_code == 204
    assert client.get(f"{DC}/saved-scenarios/{sid}").status_code == 404
    assert client.delete(f"{DC}/saved-scenarios/{sid}", headers=auth).status_code == 404

    audit = client.get(f"{DC}/saved-scenarios/audit", headers=auth).json()
    mine = [e for e in audit if e["scenario_id"] == sid]
    assert [e["action"] for e in mine] == ["delete", "save"]
    assert {e["actor"] for e in mine} == {"planner"}
    assert mine[1]["before"] is None and mine[1]["after"]["name"] == "审计测试"
    assert mine[0]["after"] is None and mine[0]["before"]["add"][0]["lon"] == SOUTH["lon"]


def test_saving_refuses_bad_input(dc: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = dc

    def refused(body: dict[str, Any], status: int = 422) -> dict[str, Any]:
        response = client.post(f"{DC}/saved-scenarios", json=body, headers=auth)
        assert response.status_code == status, response.text
        error: dict[str, Any] = response.json()["error"]
        return error

    assert refused({"name": "  ", "add": []})["field"] == "name"
    assert refused({"name": "x" * 101})["field"] == "name"
    assert refused({"name": "ok", "extra": 1})["code"] == "validation_error"
    outside = refused({"name": "外", "add": [{**PLANNED, "lon": 116.20, "lat": 39.80}]})
    assert outside["field"].startswith("add.0")
    assert refused({"name": "无此机构", "remove": ["NOPE"]})["field"] == "remove"
    names = {s["name"] for s in client.get(f"{DC}/saved-scenarios").json()}
    assert not names & {"ok", "外", "无此机构"}


# --- exports ------------------------------------------------------------------------------


def test_exports_are_complete_and_formula_safe(dc: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = dc
    body: dict[str, Any] = {
        "name": '=HYPERLINK("http://evil.example","方案")',
        "note": "+cmd|' /C calc'!A0",
        "add": [{**PLANNED, **EAST, "name": "@SUM(1+1)"}],
        "remove": ["DC-KG-002"],
    }
    saved = _save(client, auth, body)
    url = f"{DC}/saved-scenarios/{saved['id']}/export"

    response = client.get(url, params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f"scenario-{saved['id']}.csv" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header, data = rows[0], rows[1:]
    assert (
        header[0] == "方案 / Scenario"
        and "覆盖率变化（百分点） / Coverage change (percentage points)" in header
    )
    assert len(data) == 18  # 17 街道 and the district
    assert all(r[0] == "'" + body["name"] for r in data)
    change = header.index("覆盖居民变化（人） / Change in residents covered")
    by_code = {c["code"]: c for c in saved["changes"]}
    for r in data[:-1]:
        assert float(r[change]) == pytest.approx(by_code[r[1]]["covered_change"])
    assert data[-1][2] == "全区 / District"
    assert float(data[-1][change]) == pytest.approx(saved["district"]["covered_change"])

    response = client.get(url, params={"format": "xlsx"})
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["街道对比", "新增机构", "关闭机构", "说明"]
    table = book["街道对比"]
    assert table.max_row == 19
    assert str(table["A2"].value).startswith("'=") and table["A2"].data_type == "s"
    added = book["新增机构"]
    assert added["B2"].value == "'@SUM(1+1)" and added["C2"].value == "社区托育点"
    assert added["F2"].value == pytest.approx(EAST["lon"])
    assert book["关闭机构"]["A2"].value == "DC-KG-002"
    about = {row[0].value: row[1].value for row in book["说明"].iter_rows()}
    assert about["备注 / Note"] == "'" + body["note"]
    assert about["保存人 / Saved by"] == "planner"
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for c in row:
                assert c.data_type != "f", (sheet.title, c.coordinate, c.value)

    response = client.get(url, params={"format": "geojson"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    collection = response.json()
    kinds = [f["properties"]["feature"] for f in collection["features"]]
    assert kinds.count("added") == 1 and kinds.count("removed") == 1
    assert kinds.count("isochrone") == 1 and kinds.count("jiedao") == 17
    point = next(f for f in collection["features"] if f["properties"]["feature"] == "added")
    assert point["geometry"]["coordinates"] == [EAST["lon"], EAST["lat"]]
    removed = next(f for f in collection["features"] if f["properties"]["feature"] == "removed")
    registry = client.get(f"{DC}/facilities/DC-KG-002").json()
    assert removed["geometry"]["coordinates"] == list(registry["geometry"]["coordinates"])
    jiedao = [f for f in collection["features"] if f["properties"]["feature"] == "jiedao"]
    assert sum(f["properties"]["covered_change"] for f in jiedao) == pytest.approx(
        sum(c["covered_change"] for c in saved["changes"])
    )
    assert collection["properties"]["author"] == "planner"
    assert client.get(url, params={"format": "pdf"}).status_code == 422


def test_saved_scenarios_on_both_engines(client: TestClient, auth: dict[str, str]) -> None:
    """Save, list, refuse a duplicate name, delete and audit on SQLite and PostgreSQL."""
    body = {
        "name": "双引擎方案",
        "note": "备注",
        "add": [{**PLANNED, **EAST}],
        "remove": ["DC-KG-003"],
    }
    saved = _save(client, auth, body)
    assert saved["add"][0]["lon_wgs84"] == EAST["lon"] and saved["remove"] == ["DC-KG-003"]
    assert saved["created_at"].endswith("Z") or saved["created_at"].endswith("+00:00")
    assert client.post(f"{DC}/saved-scenarios", json=body, headers=auth).status_code == 409
    assert [s["name"] for s in client.get(f"{DC}/saved-scenarios").json()] == ["双引擎方案"]
    assert client.get(f"{DC}/saved-scenarios/{saved['id']}").json() == saved
    assert client.delete(f"{DC}/saved-scenarios/{saved['id']}", headers=auth).status_code == 204
    assert client.get(f"{DC}/saved-scenarios").json() == []
    audit = client.get(f"{DC}/saved-scenarios/audit", headers=auth).json()
    assert [(e["action"], e["actor"]) for e in audit] == [("delete", "tester"), ("save", "tester")]


def test_area_without_jiedao_polygons(dc: tuple[TestClient, dict[str, str]]) -> None:
    """Yuzhong's 街道 are a table: no polygons and no per-街道 coverage, but the district
    before/after and the planned isochrone are there; nothing is made up per 街道."""
    client, _ = dc
    yz = "/areas/chongqing-yuzhong"
    units = client.get(f"{yz}/workbench/units").json()
    assert units["units_kind"] == "jiedao_table" and units["features"] == []
    point = {"name": "规划点", "puhui": True, "slots": 40, "lon": 106.5520, "lat": 29.5560}
    response = client.post(f"{yz}/scenarios?isochrone_minutes=10", json={"add": [point]})
    assert response.status_code == 200, response.text
    result = response.json()
    assert len(result["changes"]) == 11
    assert all(c["covered_change"] is None and c["coverage_pp"] is None for c in result["changes"])
    district = result["district"]
    assert district["covered_change"] > 0 and district["coverage_pp"] > 0
    assert district["covered_before"] == 0.0  # the registry starts empty
    [feature] = result["isochrones"]["features"]
    assert feature["properties"]["walk_m"] == pytest.approx(666.7, abs=0.1)
    polygon = shape(feature["geometry"])
    assert feature["properties"]["method"] == "walk_field" and not polygon.is_empty
    # Where the walk from the point reaches: near it, never beyond the 10-minute walk.
    metres_per_deg = 111_320.0
    assert polygon.distance(Point(point["lon"], point["lat"])) * metres_per_deg < 300.0
    x0, y0, x1, y1 = polygon.bounds
    assert (x1 - x0) * metres_per_deg * 0.87 < 2 * 666.7 + 50  # cos(29.6°) ≈ 0.87
    assert (y1 - y0) * metres_per_deg < 2 * 666.7 + 50
