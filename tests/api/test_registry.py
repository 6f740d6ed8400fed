"""Registry service functions on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from sqlalchemy import func, select
from tuoyu.config.study_area import load_area
from tuoyu.crs.china import convert
from tuoyu.errors import ConflictError, InputValidationError, NotFoundError
from tuoyu_api.db import Database
from tuoyu_api.models import AuditEntry, Facility
from tuoyu_api.registry import (
    FacilityQuery,
    count_facilities,
    create_facility,
    delete_facility,
    get_facility,
    list_audit,
    list_facilities,
    parse_bbox,
    seed_from_file,
    update_facility,
)
from tuoyu_api.schemas import SAMPLE_FACILITY, FacilityIn
from tuoyu_api.validation import validate_facility_write

AREA = "chongqing-yuzhong"


def clean(**patch: Any) -> dict[str, Any]:
    """A validated record: the sample facility with some fields changed."""
    return validate_facility_write(FacilityIn.model_validate({**SAMPLE_FACILITY, **patch}))


def test_create_get_list_update_delete_with_audit(database: Database) -> None:
    calls: list[tuple[str, str, Any, Any]] = []

    def hook(area: str, action: str, before: Any, after: Any) -> None:
        calls.append((area, action, before, after))

    with database.session() as s:
        created = create_facility(s, AREA, clean(), actor="editor", on_change=hook)
        assert created["id"] == "YZ-TY-0001" and created["area"] == AREA
        assert get_facility(s, AREA, "YZ-TY-0001")["name"] == SAMPLE_FACILITY["name"]
        assert count_facilities(s, AREA) == 1 and count_facilities(s, "beijing-dongcheng") == 0

        updated = update_facility(
            s,
            AREA,
            "YZ-TY-0001",
            clean(slots_preschool=50, slots=90),
            actor="editor2",
            on_change=hook,
        )
        assert updated["slots"] == 90 and updated["created_at"] == created["created_at"]
        assert updated["updated_at"] >= created["updated_at"]

        removed = delete_facility(s, AREA, "YZ-TY-0001", actor="editor", on_change=hook)
        assert removed["slots"] == 90
        with pytest.raises(NotFoundError, match="YZ-TY-0001"):
            get_facility(s, AREA, "YZ-TY-0001")

        audit = list_audit(s, AREA)
    assert [a["action"] for a in audit] == ["delete", "update", "create"]
    assert [a["actor"] for a in audit] == ["editor", "editor2", "editor"]
    delete, update, create = audit
    assert create["before"] is None and create["after"]["slots"] == 80
    assert update["before"]["slots"] == 80 and update["after"]["slots"] == 90
    assert delete["before"]["slots"] == 90 and delete["after"] is None
    assert all(a["at"].endswith("+00:00") for a in audit)
    assert [c[1] for c in calls] == ["create", "update", "delete"]
    assert calls[1][2]["slots"] == 80 and calls[1][3]["slots"] == 90
    assert calls[0][0] == AREA


def test_duplicate_id_is_a_conflict_and_ids_are_per_area(database: Database) -> None:
    with database.session() as s:
        create_facility(s, AREA, clean(), actor="a")
        with pytest.raises(ConflictError, match="already exists"):
            create_facility(s, AREA, clean(), actor="a")
        other = create_facility(s, "beijing-dongcheng", clean(lon=116.41, lat=39.91), actor="a")
        assert other["id"] == "YZ-TY-0001"
        generated = create_facility(s, AREA, clean(id=None), actor="a")
        assert generated["id"].startswith("api-")
        assert count_facilities(s, AREA) == 2
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 3


def test_update_and_delete_of_missing_or_renamed_facility(database: Database) -> None:
    with database.session() as s:
        with pytest.raises(NotFoundError):
            update_facility(s, AREA, "nope", clean(id=None), actor="a")
        with pytest.raises(NotFoundError):
            delete_facility(s, AREA, "nope", actor="a")
        create_facility(s, AREA, clean(), actor="a")
        with pytest.raises(InputValidationError) as info:
            update_facility(s, AREA, "YZ-TY-0001", clean(id="OTHER"), actor="a")
        assert info.value.field == "id"
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 1


def test_failing_hook_rolls_the_write_back(database: Database) -> None:
    def broken(area: str, action: str, before: Any, after: Any) -> None:
        raise RuntimeError("reach update failed")

    with database.session() as s:
        with pytest.raises(RuntimeError, match="reach update failed"):
            create_facility(s, AREA, clean(), actor="a", on_change=broken)
        assert count_facilities(s, AREA) == 0
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0
        create_facility(s, AREA, clean(), actor="a")
        with pytest.raises(RuntimeError):
            delete_facility(s, AREA, "YZ-TY-0001", actor="a", on_change=broken)
    with database.session() as s:
        assert count_facilities(s, AREA) == 1


def _seed_set(database: Database) -> None:
    rows = [
        clean(
            id="A",
            kind="社区托育点",
            puhui=True,
            slots_infant=5,
            slots_toddler=0,
            slots_preschool=0,
            slots=5,
            service_modes=["全日托"],
            lon=106.55,
            lat=29.55,
        ),
        clean(
            id="B",
            kind="家庭托育点",
            puhui=False,
            slots_infant=None,
            slots_toddler=8,
            slots_preschool=None,
            slots=None,
            service_modes=["半日托", "计时托"],
            lon=106.58,
            lat=29.56,
        ),
        clean(
            id="C",
            kind="社区托育点",
            puhui=None,
            slots_infant=0,
            slots_toddler=0,
            slots_preschool=12,
            slots=12,
            service_modes=None,
            lon=106.52,
            lat=29.54,
        ),
    ]
    with database.session() as s:
        for r in rows:
            create_facility(s, AREA, r, actor="seed")


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        (FacilityQuery(), ["A", "B", "C"]),
        (FacilityQuery(kind="社区托育点"), ["A", "C"]),
        (FacilityQuery(puhui=True), ["A"]),
        (FacilityQuery(puhui=False), ["B"]),  # unknown (C) matches neither
        (FacilityQuery(age_class="slots_infant"), ["A"]),
        (FacilityQuery(age_class="托小班"), ["B"]),
        (FacilityQuery(age_class="托大班"), ["C"]),
        (FacilityQuery(service_mode="计时托"), ["B"]),
        (FacilityQuery(service_mode="全日托"), ["A"]),
        (FacilityQuery(bbox=(106.54, 29.545, 106.59, 29.57)), ["A", "B"]),
        (FacilityQuery(kind="社区托育点", bbox=(106.50, 29.50, 106.60, 29.60)), ["A", "C"]),
        (FacilityQuery(kind="照护驿站"), []),
    ],
)
def test_filters(database: Database, query: FacilityQuery, ids: list[str]) -> None:
    _seed_set(database)
    with database.session() as s:
        assert [r["id"] for r in list_facilities(s, AREA, query)] == ids
        assert count_facilities(s, AREA, query) == len(ids)


def test_paging(database: Database) -> None:
    _seed_set(database)
    with database.session() as s:
        assert [r["id"] for r in list_facilities(s, AREA, limit=2)] == ["A", "B"]
        assert [r["id"] for r in list_facilities(s, AREA, limit=2, offset=2)] == ["C"]
        assert list_facilities(s, "beijing-dongcheng") == []


@pytest.mark.parametrize(
    "text", ["1,2,3", "a,b,c,d", "106.6,29.5,106.5,29.6", "0,0,0,nan", "0,-91,1,1", ""]
)
def test_bad_bbox(text: str) -> None:
    with pytest.raises(InputValidationError) as info:
        parse_bbox(text)
    assert info.value.field == "bbox"


def test_seed_is_idempotent(database: Database) -> None:
    records = [
        {"id": "S1", "lon": 106.55, "lat": 29.55, "kind": "社区托育点", "crs": "gcj02"},
        {"id": "S2", "lon": 106.56, "lat": 29.56, "assumed_fields": ["puhui"], "puhui": True},
    ]
    with database.session() as s:
        assert seed_from_file(s, AREA, records, source="test.csv") == 2
        assert seed_from_file(s, AREA, records, source="test.csv") == 0
        assert count_facilities(s, AREA) == 2
        s1 = get_facility(s, AREA, "S1")
        assert s1["lon"] == 106.55 and s1["source_crs"] == "gcj02"
        assert get_facility(s, AREA, "S2")["assumed_fields"] == ["puhui"]
        audit = list_audit(s, AREA)
        assert {a["actor"] for a in audit} == {"seed"} and len(audit) == 2
        # Deleting everything through the API does not bring the file back on restart.
        delete_facility(s, AREA, "S1", actor="a")
        delete_facility(s, AREA, "S2", actor="a")
        assert seed_from_file(s, AREA, records) == 0
        assert count_facilities(s, AREA) == 0


def test_seed_skips_an_area_that_already_has_facilities(database: Database) -> None:
    with database.session() as s:
        create_facility(s, AREA, clean(), actor="a")
        assert seed_from_file(s, AREA, [{"id": "S1", "lon": 106.55, "lat": 29.55}]) == 0
        assert [r["id"] for r in list_facilities(s, AREA)] == ["YZ-TY-0001"]


def test_seed_refuses_bad_input_and_writes_nothing(database: Database) -> None:
    with database.session() as s:
        with pytest.raises(ConflictError, match="rows 1 and 2"):
            seed_from_file(s, AREA, [{"id": "X", "lon": 106.5, "lat": 29.5}] * 2)
        with pytest.raises(InputValidationError) as info:
            seed_from_file(
                s,
                AREA,
                [
                    {"id": "X", "lon": 106.5, "lat": 29.5},
                    {"id": "Y", "lon": 106.5, "lat": 29.5, "slots_infant": -1},
                ],
            )
        assert info.value.row == 2 and info.value.field == "slots_infant"
        assert count_facilities(s, AREA) == 0
        assert s.scalar(select(func.count()).select_from(Facility)) == 0


def test_seed_dongcheng_kindergartens(database: Database, data_dir: Path) -> None:
    """The 64 real kindergartens, through the facility loader, into the registry."""
    from tuoyu.layers.facilities import load_facilities

    area = load_area("beijing-dongcheng")
    assert area.facilities is not None and area.facilities.path is not None
    path = data_dir / area.facilities.path
    loaded = load_facilities(
        path,
        crs=area.facilities.crs,
        defaults=area.facilities.defaults,
        value_map=dict(area.facilities.value_map),  # type: ignore[arg-type]
    ).facilities
    raw = gpd.read_file(path)
    gcj_lon, gcj_lat = raw.geometry.x.to_numpy(), raw.geometry.y.to_numpy()
    wgs_lon, wgs_lat = convert(gcj_lon, gcj_lat, "gcj02", "wgs84")
    with database.session() as s:
        assert seed_from_file(s, "beijing-dongcheng", loaded, source=str(path)) == 64
        assert count_facilities(s, "beijing-dongcheng") == 64
        first = get_facility(s, "beijing-dongcheng", "DC-KG-001")
        assert first["jiedao"] == "龙潭街道" and first["kind"] == "托幼一体"
        assert first["puhui"] is True and first["assumed_fields"] == ["puhui"]
        assert first["slots"] is None  # unknown in the file: stays unknown
        # Stored in WGS84: the GCJ-02 offset in Beijing is a few hundred metres.
        assert abs(first["lon"] - gcj_lon[0]) > 1e-3
        assert abs(first["lon"] - float(wgs_lon[0])) < 1e-9
        assert abs(first["lat"] - float(wgs_lat[0])) < 1e-9
        in_box = list_facilities(
            s, "beijing-dongcheng", FacilityQuery(bbox=(116.40, 39.85, 116.50, 39.90))
        )
        expected = {
            fid
            for fid, x, y in zip(raw["id"], wgs_lon, wgs_lat, strict=True)
            if 116.40 <= x <= 116.50 and 39.85 <= y <= 39.90
        }
        assert {r["id"] for r in in_box} == expected
        assert {"DC-KG-001", "DC-KG-002", "DC-KG-003"} <= expected
        assert seed_from_file(s, "beijing-dongcheng", loaded) == 0


def test_seed_from_geodataframe_with_points(database: Database) -> None:
    gdf = gpd.GeoDataFrame(
        {"id": ["G1"], "name": ["重庆市渝中区示范托育园"]},
        geometry=gpd.points_from_xy([106.57], [29.56]),
        crs=4326,
    ).to_crs(32648)  # a metric CRS, as the loader returns
    with database.session() as s:
        assert seed_from_file(s, AREA, gdf) == 1
        g1 = get_facility(s, AREA, "G1")
    assert g1["lon"] == pytest.approx(106.57, abs=1e-9)
    assert g1["lat"] == pytest.approx(29.56, abs=1e-9)
