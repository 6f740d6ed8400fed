"""The planner's workbench API on Dongcheng (real network, 街道, kindergartens, population).

Checked: the page is served with Leaflet inlined (no CDN); the scenario endpoint reports
each 街道 before/after in people and percentage points, equal to what a real registry
write of the same facility gives, the planned facility's isochrone and (``gaps=true``)
the gap zones left after the change, whose residents outside the circle drop by exactly
the district's gain; GCJ-02 clicks give the same answer as the WGS84 point they stand
for; saved scenarios are stored with their author, listed, read, compared, exported
(CSV/XLSX/GeoJSON formula-safe, HTML self-contained, read-only and escaped) and deleted;
writes need a token and are audited; the facility registry never changes.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import openpyxl
import pytest
from shapely.geometry import Point, shape
from sqlalchemy import select
from tuoyu.config.settings import Settings
from tuoyu.crs.china import convert
from tuoyu.indicators.gaps import uncovered_areas
from tuoyu_api.app import create_app
from tuoyu_api.models import SavedScenario
from tuoyu_api.scenario_export import fmt_signed
from tuoyu_api.scenario_service import MAX_GAP_ZONES, gap_layer
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
    # the map setup it shares with the export page, once
    assert page.count("function tuoyuWorkbenchMap(") == 1
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
    point: dict[str, Any] = {
        "name": "规划点",
        "puhui": True,
        "slots": 40,
        "lon": 106.5520,
        "lat": 29.5560,
    }
    response = client.post(f"{yz}/scenarios?isochrone_minutes=10&gaps=true", json={"add": [point]})
    assert response.status_code == 200, response.text
    result = response.json()
    # The gap layer is there too: residents outside drop by the district's gain.
    assert result["gaps"]["residents_outside_change"] == pytest.approx(
        -result["district"]["covered_change"], abs=1.0
    )
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


# --- the gap layer ------------------------------------------------------------------------------


def _largest_zone_point(layer: dict[str, Any]) -> Point:
    """The centroid of the zone with the most residents (a point on it when the centroid
    of its irregular shape falls outside)."""
    zone = shape(layer["features"][0]["geometry"])
    centroid = zone.centroid
    return centroid if zone.contains(centroid) else zone.representative_point()


def test_gap_zones_now_match_the_gap_endpoint(dc: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = dc
    layer = client.get(f"{DC}/workbench/gaps").json()
    full = client.get(f"{DC}/gaps").json()
    assert layer["zones"] == len(full["features"]) > 10
    assert layer["shown"] == len(layer["features"]) == min(layer["zones"], MAX_GAP_ZONES)
    people = [f["properties"]["population"] for f in full["features"]]
    assert layer["residents_outside"] == pytest.approx(sum(people), abs=0.1)
    # The district's own count of residents outside the circle.
    totals = client.get(f"{DC}/summary").json()["totals"]
    assert layer["residents_outside"] == pytest.approx(totals["uncovered_population"], abs=0.1)
    assert layer["merge_distance_m"] == 150.0 and layer["method"] == "zones"
    assert layer["units"]["population"] == "人 / residents"
    assert layer["minutes"] == 15 and layer["walk_m"] == 1000.0
    shown = [f["properties"]["population"] for f in layer["features"]]
    assert shown == sorted(shown, reverse=True) and min(shown) > 0
    assert [f["properties"]["gap_id"] for f in layer["features"]] == list(
        range(1, layer["shown"] + 1)
    )
    assert layer["residents_outside_shown"] == pytest.approx(sum(shown), abs=1.0)
    assert layer["breaks"] == sorted(set(layer["breaks"])) and len(layer["colors"]) == 5
    for feature, original in zip(layer["features"], full["features"], strict=False):
        simplified, exact = shape(feature["geometry"]), shape(original["geometry"])
        assert simplified.is_valid and not simplified.is_empty
        # Simplified by 5 m for display: the same place, about the same size.
        assert simplified.area == pytest.approx(exact.area, rel=0.1)
        assert feature["properties"]["unit_codes"] == original["properties"]["unit_codes"]


def test_scenario_gaps_shrink_by_the_district_gain(
    dc: tuple[TestClient, dict[str, str]],
) -> None:
    """A planned 普惠 facility in the largest gap zone: the residents outside the circle
    drop by exactly the district's covered_change, the zone loses people, and the
    plain answer carries no gap layer."""
    client, _ = dc
    now = client.get(f"{DC}/workbench/gaps").json()
    where = _largest_zone_point(now)
    largest = shape(now["features"][0]["geometry"])
    planned = {**PLANNED, "lon": round(where.x, 6), "lat": round(where.y, 6)}
    response = client.post(f"{DC}/scenarios?gaps=true", json={"add": [planned]})
    assert response.status_code == 200, response.text
    result = response.json()
    gaps, district = result["gaps"], result["district"]
    assert gaps["residents_outside_before"] == now["residents_outside"]
    assert gaps["zones_before"] == now["zones"]
    gained = district["covered_change"]
    assert gained > 500  # the facility stands among many uncovered residents
    assert gaps["residents_outside_before"] - gaps["residents_outside"] == pytest.approx(
        gained, abs=1.0
    )
    assert gaps["residents_outside_change"] == pytest.approx(-gained, abs=1.0)
    assert gaps["under3_outside_change"] == pytest.approx(
        -district["under3_covered_change"], abs=1.0
    )
    # The people left in what was the largest zone: fewer than before.
    inside_after = sum(
        f["properties"]["population"]
        for f in gaps["features"]
        if shape(f["geometry"]).intersects(largest)
    )
    assert inside_after < now["features"][0]["properties"]["population"] - 500
    # The planned point is no longer in a gap: its own walk is 0 m.
    assert not any(shape(f["geometry"]).contains(where) for f in gaps["features"])
    assert gaps["merge_distance_m"] == 150.0 and gaps["shown"] == len(gaps["features"])
    # Off by default: the plain answer stays small.
    plain = client.post(f"{DC}/scenarios", json={"add": [planned]}).json()
    assert plain["gaps"] is None
    assert plain["district"]["covered_change"] == gained


def test_gap_layer_caps_the_zones_it_draws() -> None:
    """At most ``max_zones`` drawn, most people first; the totals count every zone."""
    xs = np.arange(12) * 1000.0
    points = gpd.GeoDataFrame(
        {"population": np.arange(1.0, 13.0), "population_under3": np.arange(1.0, 13.0) / 100},
        geometry=gpd.points_from_xy(xs + 500_000.0, np.full(12, 4_400_000.0)),
        crs="EPSG:32650",
    )
    zones = uncovered_areas(points, np.full(12, np.inf), threshold_m=1000.0)
    layer = gap_layer(zones, minutes=15, walk_m=1000.0, max_zones=5)
    assert (layer["zones"], layer["shown"], layer["max_zones"]) == (12, 5, 5)
    assert [f["properties"]["population"] for f in layer["features"]] == [12, 11, 10, 9, 8]
    assert layer["residents_outside"] == 78.0 and layer["residents_outside_shown"] == 50.0
    assert layer["under3_outside"] == pytest.approx(0.8)
    assert "5" in layer["note"] and "12" in layer["note"]
    lon, lat = layer["features"][0]["geometry"]["coordinates"][0][0]
    assert 116.9 < lon < 117.2 and 39.6 < lat < 39.8  # WGS84
    empty = gap_layer(zones.iloc[0:0], minutes=15, walk_m=1000.0)
    assert empty["features"] == [] and empty["residents_outside"] == 0.0


# --- the read-only HTML export ------------------------------------------------------------------

VOID = {"meta", "br", "img", "input", "link", "hr", "source", "wbr", "area", "col", "embed"}


class Node:
    """An element of a parsed page (tag, attributes, children and text)."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts) + "".join(c.text for c in self.children)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.walk()

    def find_all(self, tag: str) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag]

    def by_id(self, ident: str) -> Node:
        [node] = [n for n in self.walk() if n.attrs.get("id") == ident]
        return node


class Page(HTMLParser):
    """The standard library's HTML parser building a :class:`Node` tree."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.current = self.root
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.parts.append(data)


HOSTILE = '<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">方案'


def test_html_export_is_self_contained_read_only_and_escaped(
    dc: tuple[TestClient, dict[str, str]],
) -> None:
    client, auth = dc
    now = client.get(f"{DC}/workbench/gaps").json()
    where = _largest_zone_point(now)
    body: dict[str, Any] = {
        "name": HOSTILE,
        "note": "</script><script>window.__pwned=3</script> & 备注",
        "add": [
            {**PLANNED, **EAST, "name": "<b onmouseover=alert(1)>规划点</b>"},
            {**PLANNED, "lon": round(where.x, 6), "lat": round(where.y, 6)},
        ],
        "remove": ["DC-KG-004"],
    }
    saved = _save(client, auth, body)
    response = client.get(f"{DC}/saved-scenarios/{saved['id']}/export", params={"format": "html"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert f"scenario-{saved['id']}.html" in response.headers["content-disposition"]
    text = response.text
    root = Page(text).root

    # Self-contained: Leaflet inlined, nothing fetched but basemap tiles.
    assert "Leaflet 1.9.4" in text and "window.tuoyuScenarioView" in text
    assert text.count("function tuoyuWorkbenchMap(") == 1  # the map it shares with the workbench
    assert not [s for s in root.find_all("script") if s.attrs.get("src")]
    assert not root.find_all("link") and not root.find_all("iframe")
    # Read-only: no controls to edit with, no token.
    for tag in ("input", "button", "select", "textarea", "form"):
        assert root.find_all(tag) == [], tag
    assert "contenteditable" not in text and "Authorization" not in text
    # User text is text, never markup: no <img>, no <b> from the planned name, and no
    # script that would run carries the hostile code.
    assert root.find_all("img") == [] and root.find_all("b") == []
    scripts = root.find_all("script")
    running = [s for s in scripts if s.attrs.get("type") != "application/json"]
    assert len(running) == 3  # leaflet.js, tuoyu_maps.js and the page's own
    assert all("__pwned" not in s.text for s in running)
    [data_script] = [s for s in scripts if s.attrs.get("type") == "application/json"]
    assert "<" not in data_script.text and ">" not in data_script.text
    data = json.loads(data_script.text)
    assert data["name"] == HOSTILE
    assert root.by_id("meta-name").text == HOSTILE
    assert root.by_id("title-name").text == HOSTILE
    assert HOSTILE in root.find_all("title")[0].text
    assert root.by_id("meta-note").text == body["note"]
    added_names = [row.children[1].text for row in root.by_id("added").find_all("tr")[1:]]
    assert added_names[0] == body["add"][0]["name"]

    # The scenario's facts.
    assert root.by_id("meta-author").text == "planner"
    assert root.by_id("meta-seq").text == str(saved["registry_seq"])
    assert (
        root.by_id("meta-date").text
        == saved["created_at"][:10] + " " + saved["created_at"][11:16] + " UTC"
    )
    assert "北京市东城区" in root.by_id("meta-area").text
    assert "各街道前后对比" in text and "Before / after by 街道" in text
    # The per-街道 table carries the saved numbers, row by row, and the district.
    rows = {r.attrs["data-code"]: r for r in root.by_id("changes").find_all("tr")[1:]}
    assert len(rows) == 18
    saved_rows = {c["code"]: c for c in saved["changes"]} | {"district": saved["district"]}
    for code, change in saved_rows.items():
        cells = {(c.attrs.get("class") or "").split()[0]: c for c in rows[code].find_all("td")[1:]}
        for key in ("covered_before", "covered_after", "covered_change", "coverage_pp"):
            cell = cells[key.replace("_", "-")]
            assert float(cell.attrs["data-value"] or "nan") == pytest.approx(change[key])
        assert cells["covered-change"].text == fmt_signed(change["covered_change"])
    assert rows["district"].children[0].text == "全区 / District"
    assert root.by_id("district-covered").text == fmt_signed(saved["district"]["covered_change"])
    # The gap layer as saved: residents outside drop by what the district gains.
    gaps = data["gaps"]
    assert gaps["residents_outside_before"] - gaps["residents_outside"] == pytest.approx(
        saved["district"]["covered_change"], abs=1.0
    )
    assert root.by_id("gaps-outside").text == fmt_signed(gaps["residents_outside_change"])
    assert "150" in root.by_id("gap-note").text and "人" in root.by_id("gap-note").text
    assert len(data["isochrones"]["features"]) == 2 and len(gaps["features"]) == gaps["shown"]
    assert len(data["existing"]) == 64 and data["removed"] == ["DC-KG-004"]
    assert [a["id"] for a in data["added"]] == ["scenario-1", "scenario-2"]
    assert len(data["units"]["features"]) == 17
    # Data credits: the area's network and the facility records.
    credits = root.by_id("credits").text
    assert "道路中心线: 东城区城市体检" in credits and "registry" in credits
    # No 天地图 key travels in the file.
    assert [b["key"] for b in data["basemaps"]] == ["osm", "amap"]

    # The GeoJSON export carries the same gap zones.
    collection = client.get(
        f"{DC}/saved-scenarios/{saved['id']}/export", params={"format": "geojson"}
    ).json()
    zones = [f for f in collection["features"] if f["properties"]["feature"] == "gap"]
    assert len(zones) == gaps["shown"]
    assert sum(z["properties"]["population"] for z in zones) == pytest.approx(
        gaps["residents_outside_shown"], abs=1.0
    )


def test_html_export_of_a_scenario_saved_without_its_facilities(
    dc: tuple[TestClient, dict[str, str]],
) -> None:
    """Scenarios saved before the facilities and gap zones were kept with them still
    export: the map shows the registry's facilities (the same state here, so no note)
    and the page says the gap zones were not saved."""
    client, auth = dc
    saved = _save(client, auth, {"name": "旧方案", "add": [{**PLANNED, **SOUTH}]})
    database = client.app.state.tuoyu.database  # type: ignore[attr-defined]
    with database.session() as session:
        row = session.scalars(select(SavedScenario).where(SavedScenario.id == saved["id"])).one()
        row.results = {k: v for k, v in row.results.items() if k not in ("existing", "gaps")}
        session.commit()
    response = client.get(f"{DC}/saved-scenarios/{saved['id']}/export", params={"format": "html"})
    assert response.status_code == 200, response.text
    root = Page(response.text).root
    [data_script] = [s for s in root.find_all("script") if s.attrs.get("id") == "wb-export-data"]
    data = json.loads(data_script.text)
    assert len(data["existing"]) == 64 and data["gaps"] is None
    assert root.by_id("existing-note").text == ""
    assert "未记录缺口区" in root.by_id("gap-note").text
    rows = root.by_id("changes").find_all("tr")[1:]
    assert len(rows) == 18
