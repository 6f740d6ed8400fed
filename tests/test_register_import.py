"""Bulk import of an existing 备案 spreadsheet (tuoyu.register.bulk_import) and
``tuoyu register import|deadlines`` (tuoyu.register.cli)."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from openpyxl import Workbook
from tuoyu.register.bulk_import import import_register
from tuoyu.register.cli import add_register_parser
from tuoyu.register.commands import load_filings
from tuoyu.register.filings import facilities_as_of

D = dt.date

HEADER = "机构名称,地址,街道,托位数,是否普惠,备案日期,备案编号,经度,纬度,坐标系,备注"
ROWS = [
    # 1: good, WGS84
    "解放碑托育园,解放碑路1号,解放碑街道,30,是,2024-05-06,YZ-BA-001,106.5786,29.5583,wgs84,",
    # 2: good, GCJ-02 (高德) converted, slots '40个' cleaned
    "较场口托育点,较场口2号,七星岗街道,40个,否,2024年6月1日,YZ-BA-002,106.5750,29.5530,高德,",
    # 3: negative 托位: the field is emptied, the row kept (as the loader does)
    "大坪托育园,大坪3号,大坪街道,-5,是,2024-07-01,YZ-BA-003,106.5200,29.5400,wgs84,",
    # 4: no coordinates: row skipped
    "无坐标托育园,某路4号,大坪街道,20,是,2024-07-01,YZ-BA-004,,,wgs84,",
    # 5: no 备案日期: row skipped
    "无日期托育园,某路5号,大坪街道,20,是,,YZ-BA-005,106.52,29.54,wgs84,",
    # 6: duplicate 备案编号 of row 1: row skipped
    "重复托育园,某路6号,大坪街道,20,是,2024-07-01,YZ-BA-001,106.52,29.54,wgs84,",
    # 7: lat/lon swapped: row skipped
    "颠倒托育园,某路7号,大坪街道,20,否,2024-07-01,YZ-BA-007,29.54,106.52,wgs84,",
    # 8: unknown 普惠 value: field emptied, row kept
    "未知普惠托育园,某路8号,大坪街道,25,也许,2024-08-01,YZ-BA-008,106.53,29.55,wgs84,",
]


def _gbk_csv(tmp_path: Path) -> Path:
    path = tmp_path / "渝中区备案表.csv"
    path.write_bytes(("\r\n".join([HEADER, *ROWS]) + "\r\n").encode("gbk"))
    return path


def test_gbk_csv_with_chinese_headers_and_bad_rows(tmp_path: Path) -> None:
    result = import_register(
        _gbk_csv(tmp_path), area="chongqing-yuzhong", actor="王科员", on=D(2025, 1, 2)
    )
    got = {f.filing_id: f for f in result.filings}
    assert list(got) == ["YZ-BA-001", "YZ-BA-002", "YZ-BA-003", "YZ-BA-008"]
    assert all(f.state == "registered" for f in result.filings)
    one = got["YZ-BA-001"]
    assert one.record["name"] == "解放碑托育园" and one.record["slots"] == 30
    assert one.record["puhui"] is True and one.record["jiedao"] == "解放碑街道"
    assert one.registered_on == D(2024, 5, 6) and one.number == "YZ-BA-001"
    two = got["YZ-BA-002"].record
    assert two["slots"] == 40 and two["crs"] == "wgs84" and two["lon"] != 106.5750
    assert got["YZ-BA-003"].record["slots"] is None  # unknown, never 0
    assert got["YZ-BA-008"].record["puhui"] is None

    rejects = result.rejects
    assert list(rejects.columns) == ["file", "row", "field", "value", "reason"]
    by_row = {
        int(row): (str(field), str(reason))
        for row, field, reason in zip(
            rejects["row"], rejects["field"], rejects["reason"], strict=True
        )
    }
    assert set(rejects["file"]) == {"渝中区备案表.csv"}
    assert by_row[3][0] == "slots" and "field left empty" in by_row[3][1]
    assert by_row[4][0] == "lon" and "row skipped" in by_row[4][1]
    assert by_row[5][0] == "registered_on" and "备案日期" in by_row[5][1]
    assert by_row[6][0] == "filing_number" and "first at row 1" in by_row[6][1]
    assert "swapped" in by_row[7][1]
    assert by_row[8][0] == "puhui"

    # one audit entry per imported record, naming file, row and actor
    assert [(a.filing_id, a.row, a.action, a.actor) for a in result.audit] == [
        ("YZ-BA-001", 1, "import", "王科员"),
        ("YZ-BA-002", 2, "import", "王科员"),
        ("YZ-BA-003", 3, "import", "王科员"),
        ("YZ-BA-008", 8, "import", "王科员"),
    ]
    assert result.audit[0].after["state"] == "registered"
    assert any("备注" in w for w in result.warnings)

    # they count from their 备案日期
    assert [r["id"] for r in facilities_as_of(result.filings, D(2024, 6, 1))] == [
        "YZ-BA-001",
        "YZ-BA-002",
    ]


def test_existing_filings_are_not_overwritten(tmp_path: Path) -> None:
    result = import_register(
        _gbk_csv(tmp_path), area="a", actor="c", on=D(2025, 1, 2), existing_ids={"YZ-BA-002"}
    )
    assert "YZ-BA-002" not in {f.filing_id for f in result.filings}
    row = result.rejects[result.rejects["row"] == 2].iloc[0]
    assert row["field"] == "filing_number" and "already in the register" in row["reason"]


def test_xlsx_register(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["机构名称", "托位数", "是否普惠", "备案日期", "备案编号", "经度", "纬度"])
    ws.append(["甲托育园", 30, "是", dt.datetime(2024, 5, 6), "B-1", 106.5786, 29.5583])
    ws.append(["乙托育园", "abc", "否", "2024-05-07", "B-2", 106.57, 29.55])
    path = tmp_path / "register.xlsx"
    wb.save(path)
    result = import_register(path, area="a", actor="c", on=D(2025, 1, 2))
    assert [f.filing_id for f in result.filings] == ["B-1", "B-2"]
    assert result.filings[0].registered_on == D(2024, 5, 6)
    assert result.rejects.iloc[0]["field"] == "slots"


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tuoyu")
    add_register_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_import_writes_filings_rejects_and_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = _run(
        ["register", "import", str(_gbk_csv(tmp_path)), "--area", "chongqing-yuzhong",
         "--out", str(out), "--actor", "王科员", "--on", "2025-01-02"]
    )  # fmt: skip
    assert code == 0
    assert "4 filing(s) imported" in capsys.readouterr().out
    filings = load_filings(out / "filings.json")
    assert [f.filing_id for f in filings] == ["YZ-BA-001", "YZ-BA-002", "YZ-BA-003", "YZ-BA-008"]
    with (out / "rejects.csv").open(encoding="utf-8-sig", newline="") as fh:
        rejects = list(csv.DictReader(fh))
    assert {r["row"] for r in rejects} == {"3", "4", "5", "6", "7", "8"}
    with (out / "filings.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["filing_id"] for r in rows] == [f.filing_id for f in filings]
    assert {r["state"] for r in rows} == {"registered"}
    audit = json.loads((out / "audit.json").read_text("utf-8"))
    assert len(audit) == 4 and audit[0]["source"] == "渝中区备案表.csv"


def test_cli_deadlines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tuoyu.register.filings import REQUIRED_DOCUMENTS, filing_to_dict, submit

    f = submit(
        {"编号": "A", "机构名称": "甲托育园", "经度": 106.5786, "纬度": 29.5583},
        filing_id="F-1", area="a", actor="c", on=D(2025, 1, 24), documents=REQUIRED_DOCUMENTS,
    )  # fmt: skip
    path = tmp_path / "filings.json"
    path.write_text(json.dumps([filing_to_dict(f)], ensure_ascii=False), "utf-8")
    assert (
        _run(["register", "deadlines", str(path), "--on", "2025-02-10", "--month", "2025-02"]) == 0
    )
    out = capsys.readouterr().out
    # 回执 due 2025-02-07; on 2-10: 2-8 (Saturday, working) and 2-10 → 2 working days late
    assert "1 deadline(s) overdue on 2025-02-10" in out
    assert "F-1\t甲托育园\t备案回执\t提交 2025-01-24\t应于 2025-02-07\t逾期 2 个工作日" in out
    # February: the 回执 (due 2-7) and the correction notice (due 2-20) were both missed
    assert "2025-02: 提交 0, 完成备案 0, 退回补正 0, 逾期 2" in out


def test_cli_import_into_the_service_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sqlalchemy")
    from tuoyu_api.db import open_database
    from tuoyu_api.register_models import FilingAudit, area_filings

    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    monkeypatch.setenv("TUOYU_DATABASE_URL", url)
    monkeypatch.setenv("TUOYU_STATE_DIR", str(tmp_path / "state"))
    argv = ["register", "import", str(_gbk_csv(tmp_path)), "--area", "chongqing-yuzhong",
            "--out", str(tmp_path / "out"), "--on", "2025-01-02", "--to-service-db"]  # fmt: skip
    assert _run(argv) == 0
    db = open_database(url, upgrade=False)
    try:
        with db.session() as session:
            stored = area_filings(session, "chongqing-yuzhong")
            assert [f.filing_id for f in stored] == [
                "YZ-BA-001", "YZ-BA-002", "YZ-BA-003", "YZ-BA-008",
            ]  # fmt: skip
            assert session.query(FilingAudit).count() == 4
    finally:
        db.dispose()
    # a second import rejects the rows already in the register (rows 1, 2, 3, 8 and
    # row 6, which repeats row 1's 备案编号)
    assert _run(argv) == 0
    with (tmp_path / "out" / "rejects.csv").open(encoding="utf-8-sig") as fh:
        assert fh.read().count("already in the register") == 5


def test_cli_import_refuses_another_districts_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tuoyu register import`` applies the area's district rule, as the service does.

    Regression: the command passed no area code, so a Yuzhong register row carrying
    Dongcheng's 区划代码 (110101) was imported as filed.
    """
    path = tmp_path / "register.csv"
    path.write_text(
        "机构名称,托位数,是否普惠,备案日期,备案编号,经度,纬度,行政区划代码\n"
        "甲托育园,30,是,2024-05-06,B-1,106.5786,29.5583,500103\n"
        "乙托育园,20,否,2024-05-07,B-2,106.5790,29.5590,110101\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code = _run(
        ["register", "import", str(path), "--area", "chongqing-yuzhong", "--out", str(out),
         "--actor", "王科员", "--on", "2025-01-02"]
    )  # fmt: skip
    assert code == 0
    capsys.readouterr()
    filings = {f.filing_id: f for f in load_filings(out / "filings.json")}
    assert filings["B-1"].record["district_code"] == "500103"
    with (out / "rejects.csv").open(encoding="utf-8-sig", newline="") as fh:
        rejects = list(csv.DictReader(fh))
    assert any(r["field"] == "district_code" and "110101" in r["reason"] for r in rejects), rejects
