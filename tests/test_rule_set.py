"""One registry rule set: the same records through the file loader and through the API.

Each record goes through both doors — :func:`tuoyu.layers.facilities.load_facilities` on
a CSV in ``tmp_path`` (columns = the record's fields, so a field left out of the record is
a column the file does not have) and a POST to the service — and must give the same
values, or be refused in both, naming the same field.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
from pyproj import CRS
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import load_area
from tuoyu.crs.china import convert
from tuoyu.errors import InputValidationError
from tuoyu.layers.facilities import (
    district_prefix,
    load_facilities,
    reconcile_class_slots,
    validate_facility_record,
)
from tuoyu.progress import SILENT
from tuoyu.workflow.layers import AreaLayers, load_registry_snapshot
from tuoyu_api.app import create_app
from tuoyu_api.db import upgrade_database
from tuoyu_api.settings import get_api_settings
from tuoyu_api.tokens import create_token

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient will move from httpx to httpx2.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

YZ = "/areas/chongqing-yuzhong/facilities"
YUZHONG_CODE = "500103"  # [area] code of data/areas/chongqing-yuzhong.toml
LON, LAT = 106.5775, 29.5583  # 解放碑, WGS84, inside 渝中区
BASE: dict[str, Any] = {"name": "测试托育点", "lon": LON, "lat": LAT}


def _file_door(
    record: dict[str, Any], folder: Path, outline: gpd.GeoDataFrame | None
) -> tuple[dict[str, Any] | None, list[str]]:
    """The loaded facility (schema fields) or None, and the fields rejected."""
    path = folder / f"{record['id']}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(record))
        writer.writeheader()
        writer.writerow(
            {
                k: "、".join(v) if isinstance(v, list) else ("" if v is None else v)
                for k, v in record.items()
            }
        )
    result = load_facilities(path, area_polygon=outline, area_code=YUZHONG_CODE)
    fields = result.rejects["field"].tolist()
    if not len(result.facilities):
        return None, fields
    row = result.facilities.iloc[0]
    out = {k: row[k] for k in ("slots", "puhui", "district_code", "lon", "lat", "enrolled")}
    modes = row["service_modes"]
    out["service_modes"] = None if modes is None or modes != modes else str(modes).split("、")
    return out, fields


def _api_door(
    record: dict[str, Any], client: TestClient, auth: dict[str, str]
) -> tuple[dict[str, Any] | None, str | None]:
    """The stored facility's values, or None and the field the 422 names."""
    response = client.post(YZ, json=record, headers=auth)
    if response.status_code != 201:
        assert response.status_code == 422, response.text
        return None, response.json()["error"]["field"]
    props = response.json()["properties"]
    out = {k: props[k] for k in ("slots", "puhui", "district_code", "lon", "lat", "enrolled")}
    out["service_modes"] = props["service_modes"]
    return out, None


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, list) and bool(pd.isna(value)))


def _same(a: Any, b: Any) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 1e-7
    return bool(a == b)


GLON, GLAT = (float(v) for v in convert(LON, LAT, "wgs84", "gcj02"))

ACCEPTED: list[tuple[dict[str, Any], dict[str, Any]]] = [
    # 托位 by class only: the total is their sum (the API read this as 托位数 不详)
    ({"id": "A1", **BASE, "slots_toddler": 40, "slots_preschool": 40}, {"slots": 80}),
    # a class sent but unknown: the total stays unknown, never a partial sum
    ({"id": "A2", **BASE, "slots_infant": None, "slots_toddler": 40}, {"slots": None}),
    # GCJ-02 (Amap) coordinates are stored in WGS84; 普惠 and service modes parsed alike
    (
        {
            "id": "A3",
            **BASE,
            "lon": GLON,
            "lat": GLAT,
            "crs": "gcj02",
            "puhui": True,
            "district_code": "500103",
            "slots": 60,
            "enrolled": 45,
            "service_modes": ["全日托", "临时托"],
        },
        {
            "slots": 60,
            "puhui": True,
            "district_code": "500103",
            "enrolled": 45,
            "lon": LON,
            "lat": LAT,
            "service_modes": ["全日托", "临时托"],
        },
    ),
]

REFUSED: list[tuple[dict[str, Any], set[str]]] = [
    ({"id": "R1", **BASE, "slots": 999_999_999_999}, {"slots"}),
    ({"id": "R2", **BASE, "slots_toddler": 2001}, {"slots_toddler"}),
    ({"id": "R3", **BASE, "enrolled": 50_000}, {"enrolled"}),
    ({"id": "R4", **BASE, "district_code": "abc"}, {"district_code"}),
    ({"id": "R5", **BASE, "district_code": "50010"}, {"district_code"}),
    (
        {
            "id": "R6",
            **BASE,
            "slots_infant": 10,
            "slots_toddler": 30,
            "slots_preschool": 40,
            "slots": 90,
        },
        {"slots"},
    ),
    ({"id": "R7", **BASE, "slots_toddler": 50, "slots": 40}, {"slots"}),
    ({"id": "R8", **BASE, "lon": LAT, "lat": LON}, {"lat", "lon/lat"}),  # swapped
    ({"id": "R9", **BASE, "lon": 2.35, "lat": 48.85}, {"lon", "lon/lat"}),  # Paris
    # issue 17: a Beijing (东城区) district code on a Yuzhong facility
    ({"id": "R10", **BASE, "district_code": "110101"}, {"district_code"}),
    # a 街道 code of another district, or of another district than the record's own
    ({"id": "R11", **BASE, "jiedao": "110101004"}, {"jiedao"}),
    ({"id": "R12", **BASE, "district_code": "500103", "jiedao": "500104001"}, {"jiedao"}),
]


@pytest.fixture()
def client(tmp_path: Path, data_dir: Path) -> Iterator[TestClient]:
    """The full service on a fresh SQLite registry (as ``tests/api/conftest.py`` builds it)."""
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    upgrade_database(url)
    settings = get_api_settings(
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
        database_url=url,
        upgrade_database_on_start=False,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture()
def auth(client: TestClient) -> dict[str, str]:
    with client.app.state.tuoyu.database.session() as session:  # type: ignore[attr-defined]
        return {"Authorization": f"Bearer {create_token(session, 'tester')}"}


@pytest.fixture(scope="module")
def outline(data_dir: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(data_dir / "chongqing-yuzhong" / "district.geojson")


@pytest.mark.parametrize(("record", "expected"), ACCEPTED, ids=[r["id"] for r, _ in ACCEPTED])
def test_same_values_through_both_doors(
    record: dict[str, Any],
    expected: dict[str, Any],
    client: TestClient,
    auth: dict[str, str],
    outline: gpd.GeoDataFrame,
    tmp_path: Path,
) -> None:
    from_file, rejected = _file_door(record, tmp_path, outline)
    from_api, refused = _api_door(record, client, auth)
    assert from_file is not None and not rejected, rejected
    assert from_api is not None and refused is None
    for key, value in from_api.items():
        assert _same(from_file[key], value), (key, from_file[key], value)
    for key, value in expected.items():
        assert _same(from_api[key], value), (key, from_api[key], value)


@pytest.mark.parametrize(("record", "fields"), REFUSED, ids=[r["id"] for r, _ in REFUSED])
def test_same_refusals_through_both_doors(
    record: dict[str, Any],
    fields: set[str],
    client: TestClient,
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    from_file, rejected = _file_door(record, tmp_path, None)
    from_api, refused = _api_door(record, client, auth)
    assert from_api is None and refused in fields, refused
    assert set(rejected) & fields, rejected
    if from_file is not None:  # a field refused in a file row is emptied, never kept
        field = next(iter(set(rejected) & fields))
        assert _same(from_file.get(field), None), from_file


def test_reconcile_class_slots_rules() -> None:
    assert reconcile_class_slots({"slots_toddler": 40, "slots_preschool": 40}, None)[0] == 80
    assert reconcile_class_slots({"slots_toddler": 40, "slots_infant": None}, None)[0] is None
    assert reconcile_class_slots({"slots_toddler": 40, "slots_infant": None}, 60)[0] == 60
    slots, _note, problem = reconcile_class_slots({"slots_toddler": 70, "slots_infant": None}, 60)
    assert slots is None and problem is not None and "exceed" in problem
    assert reconcile_class_slots({}, 30) == (30, None, None)


def test_district_code_message_names_the_area(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(YZ, json={"id": "D1", **BASE, "district_code": "110101"}, headers=auth)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "district_code"
    assert "110101" in response.text and "500103" in response.text
    # the area's own code and its 街道 codes are accepted
    record = {"id": "D2", **BASE, "district_code": "500103", "jiedao": "500103003"}
    assert client.post(YZ, json=record, headers=auth).status_code == 201


def test_command_line_door_uses_the_area_code(settings: Settings, tmp_path: Path) -> None:
    """The run's registry loader (CLI, batch) takes the district from ``[area] code``."""
    path = tmp_path / "registry.csv"
    path.write_text(
        "编号,经度,纬度,区县代码,街道\n"
        f"Y1,{LON},{LAT},500103,500103003\n"
        f"Y2,{LON},{LAT},110101,解放碑街道\n"
        f"Y3,{LON},{LAT},,110101004\n",
        encoding="utf-8",
    )
    layers = AreaLayers(
        area=load_area("chongqing-yuzhong"), settings=settings, metric_crs=CRS.from_epsg(32648)
    )
    result = load_registry_snapshot(layers, path, SILENT)
    facilities = result.facilities.set_index("id")
    assert facilities.loc["Y1", "district_code"] == "500103"
    assert facilities.loc["Y1", "jiedao"] == "500103003"
    assert _missing(facilities.loc["Y2", "district_code"])  # refused, emptied, reported
    assert _missing(facilities.loc["Y3", "jiedao"])
    rejects = result.rejects.set_index("row")
    assert rejects.loc[2, "field"] == "district_code"
    assert "not in the study area (500103)" in str(rejects.loc[2, "reason"])
    assert rejects.loc[3, "field"] == "jiedao"
    assert result.rejects["file"].eq(str(path)).all()


def test_district_prefix_rules() -> None:
    assert district_prefix("500103") == "500103"
    assert district_prefix("500100") == "5001"  # a city-level area takes its districts
    assert district_prefix("500000") == "50"
    assert district_prefix("000000") == ""  # no constraint
    assert district_prefix("yuzhong") is None and district_prefix(None) is None
    ok, rejects = validate_facility_record(
        {"id": "C1", **BASE, "district_code": "500105"}, area_code="500100"
    )
    assert ok is not None and not rejects
    _, rejects = validate_facility_record(
        {"id": "C2", **BASE, "district_code": "110101"}, area_code="500100"
    )
    assert [r.field for r in rejects] == ["district_code"]
    with pytest.raises(InputValidationError, match="defaults value '110101'"):
        validate_facility_record(BASE, defaults={"district_code": "110101"}, area_code="500103")
