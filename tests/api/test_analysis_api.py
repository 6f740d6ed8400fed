"""The analysis endpoints with FastAPI's TestClient on the real shared data.

Yuzhong has the OSM walking network and no facility file: its registry starts empty and
facilities are added by POST with a token; every write must show in ``/nearest`` and
``/units`` at once. Dongcheng has 街道, kindergartens and population but no network:
``/nearest`` gives the ``no_network`` error, the table and summary work.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import shape
from tuoyu.config.settings import Settings
from tuoyu.crs.china import convert
from tuoyu.errors import ConflictError
from tuoyu_api.app import create_app
from tuoyu_api.schemas import SAMPLE_FACILITY
from tuoyu_api.settings import ApiSettings, get_api_settings
from tuoyu_api.tokens import create_token

from tests.api.conftest import TestClient

YZ = "/areas/chongqing-yuzhong"
DC = "/areas/beijing-dongcheng"
BESIDE = {"lon": 106.5785, "lat": 29.5583}  # ~100 m east of SAMPLE_FACILITY
OFF_NETWORK = {"lon": 106.5286, "lat": 29.5338}  # ~350 m from any walkable way (river)
ELSEWHERE = {"lon": 106.5520, "lat": 29.5560}  # ~2.5 km west


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code
    return body


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [f["facility_id"] for f in response.json()["facilities"]]


@pytest.fixture()
def sqlite_settings(tmp_path: Path, settings: Settings) -> ApiSettings:
    """Service settings on a fresh SQLite registry; the shared network cache."""
    return get_api_settings(
        data_dir=settings.data_dir,
        cache_dir=settings.cache_dir,
        state_dir=tmp_path / "state",
        database_url=f"sqlite:///{tmp_path / 'registry.sqlite'}",
    )


@pytest.fixture()
def yz(sqlite_settings: ApiSettings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A client of a fresh app (SQLite) and a valid Authorization header."""
    app = create_app(sqlite_settings)
    with TestClient(app) as client:
        with app.state.tuoyu.database.session() as session:
            yield client, {"Authorization": f"Bearer {create_token(session, 'planner')}"}


def _coverage(client: TestClient) -> dict[str, float]:
    units = client.get(f"{YZ}/units").json()["units"]
    return {u["code"]: u["coverage_pct"] for u in units if u["coverage_pct"] is not None}


def _facilities_by_unit(client: TestClient) -> dict[str, int]:
    units = client.get(f"{YZ}/units").json()["units"]
    return {u["code"]: u["facilities"] for u in units}


def _district_coverage(client: TestClient) -> float:
    return float(client.get(f"{YZ}/summary").json()["indicators"]["coverage_pct"]["value"])


def test_writes_show_in_nearest_and_units_at_once(
    client: TestClient, auth: dict[str, str], data_dir: Path
) -> None:
    """The whole flow on SQLite and on PostgreSQL.

    Yuzhong's 11 街道 are a table without polygons: a facility joins a 街道 by its
    ``jiedao`` field, 15-minute coverage is district-level only (not computable per 街道).
    """
    assert _ids(client.get(f"{YZ}/nearest", params=BESIDE)) == []
    assert client.get(f"{YZ}/units").json()["version"] == 0
    assert _coverage(client) == {}  # per 街道: not computable without polygons
    assert set(_facilities_by_unit(client).values()) == {0}
    assert _district_coverage(client) == 0.0

    assert client.post(f"{YZ}/facilities", json=SAMPLE_FACILITY, headers=auth).status_code == 201
    body = client.get(f"{YZ}/nearest", params=BESIDE).json()
    (row,) = body["facilities"]
    assert row["facility_id"] == "YZ-TY-0001" and row["name"] == SAMPLE_FACILITY["name"]
    assert row["puhui"] is True and 0 < row["walk_m"] <= 1000 and not row["approximate"]
    assert row["walk_min"] == pytest.approx(row["walk_m"] / (4000 / 60), abs=0.01)
    assert body["method"] == "network" and body["walk_limit_m"] == 1000.0
    assert "OpenStreetMap" in body["attribution"]
    # The same place given in GCJ-02 (as Amap shows it) finds the same facility.
    glon, glat = convert(BESIDE["lon"], BESIDE["lat"], "wgs84", "gcj02")
    gcj = client.get(
        f"{YZ}/nearest", params={"lon": float(glon), "lat": float(glat), "crs": "gcj02"}
    ).json()
    assert gcj["facilities"][0]["walk_m"] == pytest.approx(row["walk_m"], abs=0.5)
    assert gcj["point"]["lon_wgs84"] == pytest.approx(BESIDE["lon"], abs=1e-6)

    units = client.get(f"{YZ}/units").json()
    assert units["version"] == 1 and len(units["units"]) == 11
    jiefangbei = "500103003"  # 解放碑街道, the sample's 街道 field
    assert _facilities_by_unit(client)[jiefangbei] == 1
    one = client.get(f"{YZ}/units/{jiefangbei}").json()
    assert one["unit"]["facilities"] == 1 and one["unit"]["has_puhui"] is True
    assert one["unit"]["slots"] == SAMPLE_FACILITY["slots"]
    labels = {c["name"]: c for c in units["columns"]}
    assert labels["coverage_pct"]["label_zh"] == "15分钟步行覆盖率（%，全部机构）"
    summary = client.get(f"{YZ}/summary").json()
    assert summary["version"] == 1 and summary["facility_source"] == "registry"
    covered = _district_coverage(client)
    assert covered > 0

    moved = {**SAMPLE_FACILITY, **ELSEWHERE, "jiedao": None}
    put = client.put(f"{YZ}/facilities/YZ-TY-0001", json=moved, headers=auth)
    assert put.status_code == 200, put.text
    assert _ids(client.get(f"{YZ}/nearest", params=BESIDE)) == []
    near_new = {"lon": ELSEWHERE["lon"] + 0.001, "lat": ELSEWHERE["lat"]}
    assert _ids(client.get(f"{YZ}/nearest", params=near_new)) == ["YZ-TY-0001"]
    assert set(_facilities_by_unit(client).values()) == {0}  # no 街道 given: in none
    assert _district_coverage(client) != covered

    assert client.delete(f"{YZ}/facilities/YZ-TY-0001", headers=auth).status_code == 204
    assert _ids(client.get(f"{YZ}/nearest", params=near_new)) == []
    assert client.get(f"{YZ}/units").json()["version"] == 3
    assert _district_coverage(client) == 0.0


def test_live_results_equal_a_fresh_build(
    yz: tuple[TestClient, dict[str, str]], sqlite_settings: ApiSettings
) -> None:
    """After incremental writes, the table equals one built from the registry anew."""
    client, auth = yz
    assert client.get(f"{YZ}/units").json()["version"] == 0  # built before the writes
    for i, (lon, lat) in enumerate([(106.5775, 29.5583), (106.5520, 29.5560), (106.5650, 29.5530)]):
        body = {"id": f"YZ-{i}", "lon": lon, "lat": lat, "puhui": i != 1, "slots": 20 + i}
        assert client.post(f"{YZ}/facilities", json=body, headers=auth).status_code == 201
    client.put(f"{YZ}/facilities/YZ-1", json={"lon": 106.5600, "lat": 29.5550}, headers=auth)
    client.delete(f"{YZ}/facilities/YZ-0", headers=auth)
    live = client.get(f"{YZ}/units").json()
    assert live["version"] == 5
    with TestClient(create_app(sqlite_settings)) as fresh:
        rebuilt = fresh.get(f"{YZ}/units").json()
    assert rebuilt["version"] == 0
    _assert_close(rebuilt["units"], live["units"])


def _assert_close(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """Rows equal, numbers to 1e-9 relative."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra:
            if isinstance(ra[key], float) and isinstance(rb[key], float):
                assert ra[key] == pytest.approx(rb[key], rel=1e-9), key
            else:
                assert ra[key] == rb[key], key


def test_isochrone(yz: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = yz
    client.post(f"{YZ}/facilities", json=SAMPLE_FACILITY, headers=auth)
    response = client.get(f"{YZ}/facilities/YZ-TY-0001/isochrone", params={"minutes": 10})
    assert response.status_code == 200, response.text
    feature = response.json()
    assert feature["type"] == "Feature" and feature["id"] == "YZ-TY-0001"
    props = feature["properties"]
    assert props["minutes"] == 10 and props["walk_m"] == pytest.approx(666.7, abs=0.1)
    assert props["method"] == "walk_field" and props["area_m2"] > 0
    polygon = shape(feature["geometry"])
    assert polygon.geom_type in ("Polygon", "MultiPolygon")
    point = shapely.Point(SAMPLE_FACILITY["lon"], SAMPLE_FACILITY["lat"])
    assert polygon.distance(point) < 0.0005  # drawn along the road beside the facility
    smaller = shape(
        client.get(f"{YZ}/facilities/YZ-TY-0001/isochrone", params={"minutes": 5}).json()[
            "geometry"
        ]
    )
    assert smaller.area < polygon.area
    _error(client.get(f"{YZ}/facilities/NOPE/isochrone"), 404, "not_found")
    for minutes in (0, -1, 61, "x"):
        _error(
            client.get(f"{YZ}/facilities/YZ-TY-0001/isochrone", params={"minutes": minutes}),
            422,
            "validation_error",
        )


def test_scenario_changes_nothing(yz: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = yz
    client.post(f"{YZ}/facilities", json=SAMPLE_FACILITY, headers=auth)
    before_units = client.get(f"{YZ}/units").json()
    body = {
        "add": [{"name": "规划点", "lon": 106.5520, "lat": 29.5560, "puhui": True, "slots": 40}],
        "remove": ["YZ-TY-0001"],
    }
    response = client.post(f"{YZ}/scenarios", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["added"] == ["scenario-1"] and result["removed"] == ["YZ-TY-0001"]
    coverage = result["comparison"]["coverage_pct"]
    assert coverage["current"] > 0
    assert coverage["scenario"] is not None and coverage["scenario"] != coverage["current"]
    assert len(result["units"]) == len(before_units["units"])
    # Registry and live analysis unchanged.
    assert client.get(f"{YZ}/facilities").json()["numberMatched"] == 1
    assert client.get(f"{YZ}/units").json() == before_units
    assert _ids(client.get(f"{YZ}/nearest", params=BESIDE)) == ["YZ-TY-0001"]

    bad = client.post(f"{YZ}/scenarios", json={"add": [{"lon": 10.0, "lat": 29.5}]})
    assert _error(bad, 422, "validation_error")["field"] == "add.0.lon"
    outside = client.post(f"{YZ}/scenarios", json={"add": [{"lon": 106.40, "lat": 29.50}]})
    assert _error(outside, 422, "validation_error")["field"].startswith("add.0")
    _error(client.post(f"{YZ}/scenarios", json={"remove": ["NOPE"]}), 422, "validation_error")
    dup = {"add": [{"id": "YZ-TY-0001", "lon": 106.55, "lat": 29.556}]}
    _error(client.post(f"{YZ}/scenarios", json=dup), 409, "conflict")
    _error(client.post(f"{YZ}/scenarios", json={"extra": 1}), 422, "validation_error")
    _error(client.post(f"{YZ}/scenarios", json={"add": [{}] * 501}), 422, "validation_error")


def test_gaps_and_maps(yz: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = yz
    gaps = client.get(f"{YZ}/gaps").json()
    assert gaps["type"] == "FeatureCollection" and gaps["threshold_m"] == 1000.0
    assert gaps["features"] and "© OpenStreetMap contributors" in gaps["attribution"]
    people = sum(f["properties"]["population"] for f in gaps["features"])
    assert people == pytest.approx(588_717, rel=0.01)  # no facility: everyone is a gap
    first = shape(gaps["features"][0]["geometry"])
    assert 106.4 < first.centroid.x < 106.7 and 29.4 < first.centroid.y < 29.7  # WGS84
    client.post(f"{YZ}/facilities", json=SAMPLE_FACILITY, headers=auth)
    after = client.get(f"{YZ}/gaps").json()
    assert sum(f["properties"]["population"] for f in after["features"]) < people

    page = client.get(f"{YZ}/maps/facilities")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '"nearestUrl":"../nearest?lon={lon}&lat={lat}&crs={crs}&minutes={minutes}"' in page.text
    assert "YZ-TY-0001" in page.text
    response = client.get(f"{YZ}/maps/gaps", params={"language": "en"})
    assert response.status_code == 200 and "<html" in response.text[:500].lower()
    # Yuzhong's 街道 come as a table without polygons: no dashboard, and it says why.
    body = _error(client.get(f"{YZ}/maps/dashboard"), 404, "not_found")
    assert "polygons" in body["message"]
    assert client.get(f"{DC}/maps/dashboard").status_code == 200
    _error(client.get(f"{YZ}/maps/other"), 422, "validation_error")
    _error(client.get(f"{YZ}/maps/gaps", params={"language": "fr"}), 422, "validation_error")


def test_dongcheng_on_its_road_layer(yz: tuple[TestClient, dict[str, str]]) -> None:
    """The flagship through the service: the road-centreline network, 64 kindergartens."""
    client, auth = yz
    facilities = client.get(f"{DC}/facilities").json()
    assert facilities["numberMatched"] == 64  # seeded from the file
    first = facilities["features"][0]
    lon, lat = first["geometry"]["coordinates"]
    near = client.get(f"{DC}/nearest", params={"lon": lon, "lat": lat})
    assert near.status_code == 200, near.text
    body = near.json()
    assert body["method"] == "network"
    assert body["facilities"][0]["facility_id"] == first["id"]
    assert "OpenStreetMap" not in body["attribution"]  # the road layer is not OSM data
    assert "东城区城市体检" in body["attribution"]
    units = client.get(f"{DC}/units").json()
    assert units["units_kind"] == "jiedao" and len(units["units"]) == 17
    assert sum(u["facilities"] for u in units["units"]) == 64
    assert all(u["coverage_pct"] is not None for u in units["units"])
    code = units["units"][0]["code"]
    assert client.get(f"{DC}/units/{code}").json()["unit"]["name"] == units["units"][0]["name"]
    summary = client.get(f"{DC}/summary").json()
    assert summary["indicators"]["puhui_jiedao_coverage"]["value"] is not None
    assert 0 < summary["indicators"]["coverage_pct"]["value"] < 100
    assert all(not Path(f["path"]).is_absolute() for f in summary["data"]["files"])
    gaps = client.get(f"{DC}/gaps").json()
    assert gaps["features"] and not gaps["skipped"]
    iso = client.get(f"{DC}/facilities/{first['id']}/isochrone")
    assert iso.status_code == 200 and iso.json()["properties"]["method"] == "walk_field"
    assert client.get(f"{DC}/maps/dashboard").status_code == 200
    page = client.get(f"{DC}/maps/facilities")
    assert page.status_code == 200 and '"nearestUrl":"../nearest?' in page.text
    # the served page fetches a clicked facility's isochrones instead of carrying them all
    assert "../facilities/{id}/isochrone?minutes={minutes}" in page.text
    # A write follows in the table at once.
    new = {"id": "DC-NEW-1", "lon": 116.4238, "lat": 39.9284, "crs": "gcj02"}
    assert client.post(f"{DC}/facilities", json=new, headers=auth).status_code == 201
    after = client.get(f"{DC}/units").json()
    assert sum(u["facilities"] for u in after["units"]) == 65 and after["version"] == 1


def test_first_write_seeds_the_registry(yz: tuple[TestClient, dict[str, str]]) -> None:
    """A write before any analysis use does not stop the file from being seeded."""
    client, auth = yz
    new = {"id": "DC-NEW-2", "lon": 116.4238, "lat": 39.9284, "crs": "gcj02"}
    assert client.post(f"{DC}/facilities", json=new, headers=auth).status_code == 201
    assert client.get(f"{DC}/facilities").json()["numberMatched"] == 65
    assert sum(u["facilities"] for u in client.get(f"{DC}/units").json()["units"]) == 65


def test_bad_queries_are_4xx(yz: tuple[TestClient, dict[str, str]]) -> None:
    client, _auth = yz
    near = f"{YZ}/nearest"
    for params in (
        {"lon": "abc", "lat": 29.55},
        {"lon": 106.55},
        {"lon": 106.55, "lat": 100},
        {"lon": 106.55, "lat": 29.55, "crs": "epsg:3857"},
        {"lon": 106.55, "lat": 29.55, "minutes": 0},
        {"lon": 106.55, "lat": 29.55, "minutes": 100},
        {"lon": 106.55, "lat": 29.55, "k": 0},
        {"lon": "nan", "lat": 29.55},
    ):
        _error(client.get(near, params=params), 422, "validation_error")
    outside = _error(
        client.get(near, params={"lon": 106.40, "lat": 29.50}), 422, "validation_error"
    )
    assert "outside study area" in outside["message"] and outside["field"] == "lon"
    off = _error(client.get(near, params=OFF_NETWORK), 422, "off_network")
    assert "snapping limit" in off["message"]
    _error(client.get("/areas/atlantis/nearest", params=BESIDE), 404, "not_found")
    _error(client.get(f"{YZ}/units/nope"), 404, "not_found")
    _error(client.get(f"{YZ}/units/bad%20code"), 422, "validation_error")
    _error(client.get("/areas/atlantis/summary"), 404, "not_found")


def test_failed_write_drops_the_analysis(sqlite_settings: ApiSettings) -> None:
    """A write rolled back after the analysis followed it: the analysis is rebuilt."""

    def refuse(area: str, action: str, before: Any, after: Any) -> None:
        if after is not None and after["id"] == "REFUSED":
            raise ConflictError("refused by a later hook")

    app = create_app(sqlite_settings, on_registry_change=refuse)
    with TestClient(app) as client:
        with app.state.tuoyu.database.session() as session:
            auth = {"Authorization": f"Bearer {create_token(session, 'x')}"}
        assert client.get(f"{YZ}/units").json()["version"] == 0  # built
        body = {**SAMPLE_FACILITY, "id": "REFUSED"}
        _error(client.post(f"{YZ}/facilities", json=body, headers=auth), 409, "conflict")
        assert client.get(f"{YZ}/facilities").json()["numberMatched"] == 0
        assert _ids(client.get(f"{YZ}/nearest", params=BESIDE)) == []
        assert (
            client.post(f"{YZ}/facilities", json=SAMPLE_FACILITY, headers=auth).status_code == 201
        )
        assert _ids(client.get(f"{YZ}/nearest", params=BESIDE)) == ["YZ-TY-0001"]


def test_openapi_documents_the_analysis_endpoints(yz: tuple[TestClient, dict[str, str]]) -> None:
    client, _auth = yz
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/areas/{area}/nearest",
        "/areas/{area}/facilities/{facility_id}/isochrone",
        "/areas/{area}/units",
        "/areas/{area}/units/{code}",
        "/areas/{area}/summary",
        "/areas/{area}/gaps",
        "/areas/{area}/maps/{name}",
    ):
        assert "get" in paths[path], path
    nearest = paths["/areas/{area}/nearest"]["get"]
    assert {p["name"] for p in nearest["parameters"]} >= {"lon", "lat", "crs", "minutes"}
    example = nearest["responses"]["200"]["content"]["application/json"]["example"]
    assert example["facilities"][0]["walk_min"] > 0
    scenario = paths["/areas/{area}/scenarios"]["post"]
    assert "add" in scenario["requestBody"]["content"]["application/json"]["examples"]
    maps = paths["/areas/{area}/maps/{name}"]["get"]["responses"]
    assert list(maps["200"]["content"]) == ["text/html"]
    assert list(maps["404"]["content"]) == ["application/json"]
