"""The 备案 register endpoints (tuoyu_api.routers.register) on SQLite and PostgreSQL:
token-protected writes with audit, refusals, committee reads, bulk import, and the
public view showing only the disclosed fields (JSON, CSV, GeoJSON, open-data files)."""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from tuoyu.register.disclosure import PUBLIC_FIELDS, write_open_data
from tuoyu.register.filings import REQUIRED_DOCUMENTS
from tuoyu.register.quality import DIMENSIONS

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from tuoyu_api.app import create_app
from tuoyu_api.deps import set_area_polygon
from tuoyu_api.register_models import AssessmentRow, FilingAudit, FilingRow
from tuoyu_api.routers import register
from tuoyu_api.settings import ApiSettings
from tuoyu_api.tokens import create_token

AREA = "chongqing-yuzhong"
BASE = f"/areas/{AREA}/register"
SECRET_NOTE = "联系人张三 13800000000"
FULL_RECORD: dict[str, Any] = {
    "id": "YZ-TY-0001",
    "name": "解放碑托育园",
    "address": "解放碑路1号",
    "jiedao": "解放碑街道",
    "district_code": "500103",
    "lon": 106.5786,
    "lat": 29.5583,
    "crs": "wgs84",
    "kind": "社区托育点",
    "puhui": True,
    "ownership": "民办",
    "slots_infant": 5,
    "slots_toddler": 20,
    "slots_preschool": 15,
    "slots": 40,
    "enrolled": 37,
    "service_modes": "全日托、半日托",
    "status": "待审",
    "registered_on": "2025-01-01",
}


@pytest.fixture()
def reg_client(api_settings: ApiSettings) -> Iterator[TestClient]:
    """The full app with the register router, its tables emptied (PostgreSQL is shared)."""
    app = create_app(api_settings)
    app.include_router(register.router)
    set_area_polygon(app, AREA, None)  # no layers read: the rule set still checks China
    with TestClient(app) as client:
        with app.state.tuoyu.database.session() as session:
            for table in (FilingRow, FilingAudit, AssessmentRow):
                session.execute(delete(table))
            session.commit()
        yield client


@pytest.fixture()
def reg_auth(reg_client: TestClient) -> dict[str, str]:
    with reg_client.app.state.tuoyu.database.session() as session:  # type: ignore[attr-defined]
        return {"Authorization": f"Bearer {create_token(session, 'clerk.wang')}"}


def _post(client: TestClient, path: str, auth: dict[str, str], body: dict[str, Any]) -> Any:
    r = client.post(BASE + path, json=body, headers=auth)
    assert r.status_code in (200, 201), r.text
    return r.json()


def _registered(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    _post(client, "/filings", auth, {
        "filing_id": "F-2025-001", "record": FULL_RECORD, "on": "2025-01-24",
        "documents": ["营业执照", "场地证明"], "note": SECRET_NOTE,
    })  # fmt: skip
    _post(client, "/filings/F-2025-001/transitions", auth, {
        "action": "issue_receipt", "on": "2025-02-07", "number": "渝中卫托备〔2025〕1号",
        "note": SECRET_NOTE,
    })  # fmt: skip
    return dict(_post(client, "/filings/F-2025-001/transitions", auth, {
        "action": "register", "on": "2025-02-10",
        "documents": ["人员资格与健康证明", "卫生评价报告", "消防安全检查"],
    }))  # fmt: skip


def _audit(client: TestClient) -> list[FilingAudit]:
    with client.app.state.tuoyu.database.session() as session:  # type: ignore[attr-defined]
        return list(session.scalars(select(FilingAudit).order_by(FilingAudit.id)))


def test_filing_life_cycle_through_the_api_is_audited(
    reg_client: TestClient, reg_auth: dict[str, str]
) -> None:
    done = _registered(reg_client, reg_auth)
    assert done["state"] == "registered" and done["registered_on"] == "2025-02-10"
    assert done["number"] == "渝中卫托备〔2025〕1号"
    assert done["next_actions"] == ["change", "close"]
    # the receipt was due 2025-02-07 (5 working days over the Spring Festival): met
    receipt = next(d for d in done["deadlines"] if d["kind"] == "receipt")
    assert receipt["due"] == "2025-02-07" and receipt["answered_on"] == "2025-02-07"
    changed = _post(reg_client, "/filings/F-2025-001/transitions", reg_auth, {
        "action": "change", "on": "2025-06-01", "changes": {"slots_toddler": 30},
    })  # fmt: skip
    assert changed["record"]["slots"] == 50
    rows = _audit(reg_client)
    assert [(r.action, r.actor) for r in rows] == [
        ("submit", "clerk.wang"), ("issue_receipt", "clerk.wang"), ("register", "clerk.wang"),
        ("change", "clerk.wang"),
    ]  # fmt: skip
    assert rows[0].before is None
    assert (rows[1].before or {})["state"] == "submitted"
    assert (rows[3].after or {})["state"] == "registered"


def test_refusals_name_the_action_or_field(
    reg_client: TestClient, reg_auth: dict[str, str]
) -> None:
    _post(reg_client, "/filings", reg_auth, {"filing_id": "F-1", "record": FULL_RECORD,
                                              "on": "2025-03-03"})  # fmt: skip
    r = reg_client.post(BASE + "/filings/F-1/transitions", headers=reg_auth,
                        json={"action": "close", "on": "2025-03-04"})  # fmt: skip
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["field"] == "action" and "'close'" in error["message"]
    r = reg_client.post(BASE + "/filings/F-1/transitions", headers=reg_auth,
                        json={"action": "return", "on": "2025-03-04"})  # fmt: skip
    assert r.status_code == 422 and r.json()["error"]["field"] == "reasons"
    r = reg_client.post(
        BASE + "/filings",
        headers=reg_auth,
        json={"filing_id": "F-2", "record": {**FULL_RECORD, "slots": 99}, "on": "2025-03-03"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "slots"
    r = reg_client.post(
        BASE + "/filings",
        headers=reg_auth,
        json={"filing_id": "F-1", "record": FULL_RECORD, "on": "2025-03-03"},
    )
    assert r.status_code == 409
    r = reg_client.post(BASE + "/filings/NOPE/transitions", headers=reg_auth,
                        json={"action": "close", "on": "2025-03-04"})  # fmt: skip
    assert r.status_code == 404
    assert [a.action for a in _audit(reg_client)] == ["submit"]  # refusals leave no trace


def test_district_of_another_area_is_refused(
    reg_client: TestClient, reg_auth: dict[str, str]
) -> None:
    """Issue 17: a Beijing (东城区 110101) district code on a Yuzhong (500103) filing."""
    beijing = {**FULL_RECORD, "district_code": "110101"}
    r = reg_client.post(BASE + "/filings", headers=reg_auth,
                        json={"filing_id": "F-9", "record": beijing, "on": "2025-03-03"})  # fmt: skip
    assert r.status_code == 422 and r.json()["error"]["field"] == "district_code", r.text
    assert "500103" in r.json()["error"]["message"]
    _registered(reg_client, reg_auth)
    r = reg_client.post(BASE + "/filings/F-2025-001/transitions", headers=reg_auth, json={
        "action": "change", "on": "2025-06-01", "changes": {"jiedao": "110101004"},
    })  # fmt: skip
    assert r.status_code == 422 and r.json()["error"]["field"] == "jiedao", r.text
    assert [a.action for a in _audit(reg_client)] == ["submit", "issue_receipt", "register"]


def test_writes_and_committee_reads_need_a_token(reg_client: TestClient) -> None:
    body = {"filing_id": "F-1", "record": FULL_RECORD, "on": "2025-03-03"}
    assert reg_client.post(BASE + "/filings", json=body).status_code == 401
    for path in ("/filings", "/overdue", "/monthly?month=2025-02", "/ratings"):
        assert reg_client.get(BASE + path).status_code == 401, path
    assert reg_client.get(BASE + "/public").status_code == 200
    assert reg_client.get(BASE + "/clerk").status_code == 200


def _check_public_record(item: dict[str, Any]) -> None:
    assert list(item) == list(PUBLIC_FIELDS)
    assert item["name"] == "解放碑托育园" and item["slots"] == 40
    assert item["ages"] == "6–36个月" and item["puhui"] is True
    assert item["registered_on"] == "2025-02-10"
    assert item["filing_number"] == "渝中卫托备〔2025〕1号"


def _no_secrets(text: str) -> None:
    for secret in ("张三", "13800000000", *REQUIRED_DOCUMENTS, "enrolled", "民办", "500103",
                   "clerk.wang", "YZ-TY-0001", "F-2025-001", "assumed_fields", "待审"):  # fmt: skip
        assert secret not in text, secret


def test_public_view_discloses_only_the_listed_fields(
    reg_client: TestClient, reg_auth: dict[str, str], tmp_path: Path
) -> None:
    _registered(reg_client, reg_auth)
    # before its registration date the facility is not public
    assert reg_client.get(BASE + "/public?on=2025-02-09").json() == []
    r = reg_client.get(BASE + "/public?on=2025-03-01")
    assert r.status_code == 200
    [item] = r.json()
    _check_public_record(item)
    _no_secrets(r.text)

    r = reg_client.get(BASE + "/public?on=2025-03-01&format=csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == list(PUBLIC_FIELDS.values())
    assert rows[1][0] == "解放碑托育园" and rows[1][3] == "是"
    _no_secrets(r.content.decode("utf-8-sig"))

    r = reg_client.get(BASE + "/public?on=2025-03-01&format=geojson")
    assert r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    [feature] = doc["features"]
    _check_public_record(feature["properties"])
    assert feature["geometry"]["coordinates"] == [106.5786, 29.5583]  # WGS84
    _no_secrets(r.text)

    # the open-data files written from the same records
    from tuoyu.register.filings import facilities_as_of
    from tuoyu_api.register_models import area_filings

    with reg_client.app.state.tuoyu.database.session() as session:  # type: ignore[attr-defined]
        import datetime as dt

        records = facilities_as_of(area_filings(session, AREA), dt.date(2025, 3, 1))
    files = write_open_data(records, tmp_path)
    text = files.csv.read_text("utf-8-sig")
    assert text.splitlines()[0].split(",") == list(PUBLIC_FIELDS.values())
    _no_secrets(text)
    geo = json.loads(files.geojson.read_text("utf-8"))
    _check_public_record(geo["features"][0]["properties"])
    _no_secrets(files.geojson.read_text("utf-8"))


def test_overdue_list_and_monthly_count(reg_client: TestClient, reg_auth: dict[str, str]) -> None:
    # submitted Friday 2025-01-24: 回执 due 2025-02-07 (1-26 Sun, 1-27, 2-5, 2-6, 2-7)
    _post(reg_client, "/filings", reg_auth, {"filing_id": "F-9", "record": FULL_RECORD,
                                              "on": "2025-01-24"})  # fmt: skip
    late = reg_client.get(BASE + "/overdue?on=2025-02-10", headers=reg_auth).json()
    # 2-8 (Saturday, a working day) and 2-10 → 2 working days late
    assert [(o["filing_id"], o["kind"], o["due"], o["working_days_late"]) for o in late] == [
        ("F-9", "receipt", "2025-02-07", 2)
    ]
    assert reg_client.get(BASE + "/overdue?on=2025-02-07", headers=reg_auth).json() == []
    listed = reg_client.get(BASE + "/filings?on=2025-02-10", headers=reg_auth).json()
    assert listed[0]["overdue"] is True and listed[0]["next_actions"] == ["issue_receipt", "return"]
    month = reg_client.get(BASE + "/monthly?month=2025-01", headers=reg_auth).json()
    assert month == {"month": "2025-01", "submitted": 1, "registered": 0, "returned": 0,
                     "overdue": 0}  # fmt: skip
    feb = reg_client.get(BASE + "/monthly?month=2025-02", headers=reg_auth).json()
    assert feb["overdue"] == 2  # 回执 (2-7) and correction notice (2-20) missed
    assert reg_client.get(BASE + "/monthly?month=2025-13", headers=reg_auth).status_code == 422


def test_quality_assessments_and_latest_ratings(
    reg_client: TestClient, reg_auth: dict[str, str]
) -> None:
    scores = dict.fromkeys(DIMENSIONS, 92.0)
    first = _post(reg_client, "/assessments", reg_auth, {
        "facility_id": "YZ-TY-0001", "assessed_on": "2025-01-10", "assessor": "区卫健委",
        "scores": scores,
    })  # fmt: skip
    assert first["overall"] == 92.0 and first["rating"] == "优秀"
    _post(reg_client, "/assessments", reg_auth, {
        "facility_id": "YZ-TY-0001", "assessed_on": "2025-07-10", "assessor": "专家组",
        "scores": {**scores, "安全保障": 30.0},
    })  # fmt: skip
    ratings = reg_client.get(BASE + "/ratings", headers=reg_auth).json()
    # mean of six 92s and one 30: (552 + 30) / 7 = 83.14… → 83.1, 良好
    assert ratings == [{"facility_id": "YZ-TY-0001", "assessed_on": "2025-07-10",
                        "assessor": "专家组", "overall": 83.1, "rating": "良好"}]  # fmt: skip
    r = reg_client.post(BASE + "/assessments", headers=reg_auth, json={
        "facility_id": "YZ-TY-0001", "assessed_on": "2025-07-10", "assessor": "x",
        "scores": {**scores, "照护活动": 120}})  # fmt: skip
    assert r.status_code == 422 and r.json()["error"]["field"] == "scores.照护活动"


GBK_CSV = (
    "机构名称,地址,街道,托位数,是否普惠,备案日期,备案编号,经度,纬度,坐标系\r\n"
    "甲托育园,解放碑路1号,解放碑街道,30,是,2024-05-06,B-001,106.5786,29.5583,wgs84\r\n"
    "乙托育园,较场口2号,七星岗街道,-3,否,2024-06-01,B-002,106.5750,29.5530,gcj02\r\n"
    "丙托育园,无坐标,七星岗街道,20,是,2024-07-01,B-003,,,wgs84\r\n"
    "丁托育园,无日期,七星岗街道,20,是,,B-004,106.57,29.55,wgs84\r\n"
).encode("gbk")


def test_bulk_import_upload(reg_client: TestClient, reg_auth: dict[str, str]) -> None:
    url = BASE + "/import?filename=渝中区备案表.csv&on=2025-01-02"
    r = reg_client.post(url, content=GBK_CSV, headers={**reg_auth, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["imported"] == 2 and body["filings"] == ["B-001", "B-002"]
    assert [(x["row"], x["field"]) for x in body["rejects"]] == [
        (2, "slots"), (3, "lon"), (4, "registered_on"),
    ]  # fmt: skip
    assert {x["file"] for x in body["rejects"]} == {"渝中区备案表.csv"}
    audit = _audit(reg_client)
    assert [(a.filing_id, a.action, a.actor) for a in audit] == [
        ("B-001", "import", "clerk.wang"), ("B-002", "import", "clerk.wang"),
    ]  # fmt: skip
    public = reg_client.get(BASE + "/public?on=2024-06-01").json()
    assert [p["name"] for p in public] == ["甲托育园", "乙托育园"]
    # the same file again: every row is already in the register
    again = reg_client.post(url, content=GBK_CSV, headers=reg_auth).json()
    assert again["imported"] == 0
    assert sum("already in the register" in x["reason"] for x in again["rejects"]) == 2


def test_bulk_import_limits(reg_client: TestClient, reg_auth: dict[str, str]) -> None:
    r = reg_client.post(BASE + "/import?filename=a.txt", content=GBK_CSV, headers=reg_auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "filename"
    r = reg_client.post(BASE + "/import?filename=a.csv", content=GBK_CSV)
    assert r.status_code == 401
    big = b"x" * (register.IMPORT_MAX_BYTES + 1)
    r = reg_client.post(BASE + "/import?filename=a.csv", content=big, headers=reg_auth)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert _audit(reg_client) == []


def test_clerk_page_is_plain_and_local(reg_client: TestClient) -> None:
    r = reg_client.get(BASE + "/clerk")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "托育机构备案办理" in page and "重庆市渝中区" in page
    assert "回执期限" in page and "逾期清单" in page
    assert "http://" not in page and "https://" not in page  # no CDN
    assert reg_client.get("/areas/no-such-area/register/clerk").status_code == 404
