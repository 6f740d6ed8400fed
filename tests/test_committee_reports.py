"""Reports a district health committee files unchanged: jiedao.xlsx, 附件2, report.pdf.

Checked on the hand-made four-街道 fixture (numbers by hand) and on the real Dongcheng and
Yuzhong runs. What a committee official found wrong is pinned here: English in cells,
fractional people, TRUE/FALSE, no 合计 row, shortfall sorted by code, machine paths and
``14.999999999999998`` in 说明, targets cited by file name, 2SFCA 0 where slots are
unknown, "见 gaps.geojson", a wrong reason on Yuzhong's 普惠 row, no print set-up.

The Latin-word rule (:func:`_latin_words`): a cell may hold Latin letters only as
  * codes and units: H3 cell ids (15 hex digits), "H3", "2SFCA" (the index's name in the
    literature), "m" (m² in an assumption), "km";
  * our own output file names the reader is pointed to (jiedao.xlsx, gaps.html,
    summary.json);
  * on the 说明 sheet's data-source lines (数据文件/数据署名) only: the words of the data
    files' relative paths and of their attribution (the licence requires "© OpenStreetMap
    contributors"; a source repository name is an origin name), and "ODbL".
Everything else — an English reason, a profile key, a column key — fails the test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from tuoyu.config.settings import Settings
from tuoyu.indicators.citations import cite, document_for, policy_documents
from tuoyu.indicators.summary import district_summary, unit_table
from tuoyu.indicators.targets import load_profile
from tuoyu.labels import zh_text
from tuoyu.outputs.pdf_report import coverage_line, write_district_report
from tuoyu.outputs.reports import apportion, progress_rows, write_reports
from tuoyu.progress import SILENT
from tuoyu.workflow.run import analyse_area
from tuoyu.workflow.steps import NO_NETWORK_REASON

from tests.test_indicators import build_fixture
from tests.test_reports import _results

MONTH = "2025-11"
HEX_ID = re.compile(r"^[0-9a-f]{15}$")
ALLOWED_WORDS = frozenset({"H3", "2SFCA", "m", "km", "jiedao.xlsx", "gaps.html", "summary.json"})
SOURCE_LINE = re.compile(r"^\s*数据(文件|署名)")
FLOAT_NOISE = re.compile(r"\d+\.\d{5,}")
FILLS = {"达标": "C6EFCE", "未达标": "FFC7CE", "不详": "EDEDED"}
PEOPLE_LABELS = frozenset(
    {"常住人口（人）", "3岁以下婴幼儿（人，估算）", "15分钟步行覆盖人口（人）",
     "15分钟步行未覆盖人口（人）", "涉及人口（人）", "涉及3岁以下婴幼儿（人）",
     "在托人数（人）"}
)  # fmt: skip


# --- helpers ------------------------------------------------------------------------------


def _cells(path: Path) -> Iterator[tuple[str, Any]]:
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.value is not None:
                    yield ws.title, cell


def _latin_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", text) if re.search("[A-Za-z]", w)]


def _source_words(summary: dict[str, Any]) -> set[str]:
    texts = [str(summary.get("attribution") or ""), "ODbL"]
    for item in (summary.get("data") or {}).get("files") or []:
        texts += [str(item.get("path") or ""), str(item.get("attribution") or "")]
    return {w for t in texts for w in _latin_words(t.replace("/", " "))}


def _code_columns(path: Path) -> set[tuple[str, str]]:
    """(sheet, column letter) of code columns (代码): identifiers from the data."""
    out = set()
    for ws in openpyxl.load_workbook(path).worksheets:
        for cell in ws[1]:
            if isinstance(cell.value, str) and cell.value.endswith("代码"):
                out.add((ws.title, cell.column_letter))
    return out


def _assert_chinese_only(path: Path, summary: dict[str, Any]) -> None:
    sources = _source_words(summary)
    codes = _code_columns(path)
    bad = []
    for sheet, cell in _cells(path):
        if not isinstance(cell.value, str) or (sheet, cell.column_letter) in codes:
            continue
        allowed = ALLOWED_WORDS | (
            sources if sheet == "说明" and SOURCE_LINE.match(cell.value) else set()
        )
        for word in _latin_words(cell.value.replace("/", " ")):
            if word not in allowed and not HEX_ID.match(word):
                bad.append((sheet, cell.coordinate, word, cell.value[:60]))
    assert bad == [], bad[:10]


def _assert_no_noise_no_paths(path: Path, *roots: Path) -> None:
    for sheet, cell in _cells(path):
        value = cell.value
        where = f"{path.name}:{sheet}!{cell.coordinate}"
        if isinstance(value, str):
            assert not FLOAT_NOISE.search(value), (where, value)
            assert not re.search(r"(^|[\s（(：:=])/(work|tmp|home|usr|root)/", value), (
                where,
                value,
            )
            for root in roots:
                assert str(root) not in value, (where, value)
        elif isinstance(value, float):
            assert round(value, 4) == value, (where, value)


def _sheet_rows(ws: Any) -> tuple[list[str], list[list[Any]]]:
    rows = [[c.value for c in r] for r in ws.iter_rows()]
    return [str(h) for h in rows[0]], rows[1:]


def _assert_unit_sheet(path: Path) -> None:
    """Whole people, 有/无 and 达标 text, 合计 = sum of rows, fills."""
    wb = openpyxl.load_workbook(path)
    ws = wb["街道指标"]
    headers, rows = _sheet_rows(ws)
    body, total = rows[:-1], rows[-1]
    assert total[0] == "合计"
    for label in PEOPLE_LABELS & set(headers) | {"托育机构数（家）", "托位数（个）"} & set(headers):
        col = headers.index(label)
        values = [r[col] for r in body]
        assert all(isinstance(v, int) or v == "不详" for v in values), (label, values)
        if all(isinstance(v, int) for v in values):
            assert total[col] == sum(values), label
        else:
            assert total[col] == "不详", label
    for col, header in enumerate(headers):
        if header.startswith("是否达标"):
            assert {r[col] for r in rows} <= {"达标", "未达标", "不详"}
    assert all(v is not True and v is not False for r in rows for v in r)
    for _, cell in _cells(path):
        if cell.value in FILLS and cell.parent.title != "说明":
            assert cell.fill.fgColor.rgb.endswith(FILLS[cell.value]), cell.coordinate


def _assert_print_setup(path: Path, title_rows: str = "1:1") -> None:
    for ws in openpyxl.load_workbook(path).worksheets:
        assert ws.page_setup.paperSize in (9, "9"), ws.title
        assert int(ws.page_setup.fitToWidth) == 1 and int(ws.page_setup.fitToHeight) == 0
        assert ws.sheet_properties.pageSetUpPr.fitToPage is True
        if ws.title != "说明":
            assert ws.page_setup.orientation == "landscape", ws.title
            assert ws.freeze_panes is not None, ws.title
            assert str(ws.print_title_rows).replace("$", "").endswith(title_rows), ws.title


def _shortfall_order(path: Path) -> list[tuple[bool, float, float]]:
    headers, rows = _sheet_rows(openpyxl.load_workbook(path)["托位缺口"])
    gap, need = headers.index("托位缺口（个，负值为富余）"), headers.index("目标托位数（个）")
    return [
        (isinstance(r[gap], int), r[gap] if isinstance(r[gap], int) else float("-inf"),
         r[need] if isinstance(r[need], int) else float("-inf"))
        for r in rows
    ]  # fmt: skip


def _assert_ranked_by_gap(path: Path) -> None:
    keys = _shortfall_order(path)
    assert keys == sorted(keys, key=lambda k: (not k[0], -k[1], -k[2]))
    ranks = [r[0] for r in _sheet_rows(openpyxl.load_workbook(path)["托位缺口"])[1]]
    assert ranks == list(range(1, len(ranks) + 1))


# --- small pieces -------------------------------------------------------------------------


def test_policy_documents_cite_by_number() -> None:
    docs = policy_documents()
    assert sorted(docs) == [
        "000_bff43468353cb89d.txt", "001_c480dc00c27401b7.txt", "002_30e7b644e3d11434.txt",
        "003_dc983b7d9fb3f730.txt", "004_c53cfe1bd3461456.txt",
    ]  # fmt: skip
    assert docs["000_bff43468353cb89d.txt"].number == "渝府办发〔2023〕77号"
    assert docs["001_c480dc00c27401b7.txt"].number == "忻政办发〔2020〕67号"
    assert docs["004_c53cfe1bd3461456.txt"].number == "渝北府办发〔2022〕30号"
    assert docs["003_dc983b7d9fb3f730.txt"].number == ""  # no 文号 in the text
    target = load_profile("beijing-2025-core").target_for("slots_per_1000")
    assert target is not None
    assert cite(target) == "京政办发〔2023〕6号 二、工作目标"
    zj = load_profile("zhejiang-2025").targets[0]
    assert cite(zj).startswith("《3岁以下婴幼儿托育服务业发展十四五规划》")
    # every shipped profile's targets resolve to a document
    for name in ("beijing-2025-core", "chongqing-2025", "yubei-2022", "zhejiang-2025"):
        for t in load_profile(name).targets:
            assert document_for(t.source_file) is not None, (name, t.source_file)
            assert ".txt" not in cite(t)


def test_policy_numbers_are_in_the_texts(data_dir: Path) -> None:
    policy = data_dir.parent / "policy"
    if not policy.is_dir():
        pytest.skip(f"no policy folder beside {data_dir}")
    for name, doc in policy_documents().items():
        text = (policy / name).read_text("utf-8")
        if doc.number:
            digits = re.findall(r"\d+", doc.number)
            assert all(d in text for d in digits), name
            assert doc.number in text or doc.number.replace("〔", "[").replace("〕", "]") in text


def test_apportion_keeps_the_total() -> None:
    known = [28196.4964, 56905.2335, 28192.8761, 43373.3571, 0.2]
    whole = apportion([*known, None])
    assert whole[-1] is None
    ints = [w for w in whole if w is not None]
    assert sum(ints) == round(sum(known)) == 156_668
    assert all(abs(w - v) < 1 for w, v in zip(ints, known, strict=True))


def test_english_reasons_are_translated() -> None:
    assert zh_text(NO_NETWORK_REASON) == "无步行路网，未计算15分钟指标"
    assert zh_text("no [facilities] file: no registered facilities").startswith("未提供")
    assert (
        zh_text("under-3 population = 1.50% of the population") == "3岁以下人口按总人口的1.50%估算"
    )


def test_progress_rows_translate_the_network_reason() -> None:
    # regression: "未计算：no walking network…" (the workflow's English-only reason)
    fx = build_fixture()
    profile = load_profile("beijing-2025-core")
    table = unit_table(fx["units"], fx["facilities"], fx["population"], None, None,
                       profile=profile, threshold_m=1000.0, speed_kmh=4.0)  # fmt: skip
    summary = district_summary(
        fx["units"], fx["facilities"], fx["population"], None, None, table=table,
        profile=profile, threshold_m=1000.0, speed_kmh=4.0, no_network_reason=NO_NETWORK_REASON,
    )  # fmt: skip
    rows = progress_rows(table, summary)
    assert rows[2]["工作开展情况"] == "未计算：无步行路网，未计算15分钟指标"
    for row in rows:
        for value in row.values():
            assert not [w for w in _latin_words(value) if w not in ALLOWED_WORDS], value


def test_progress_rows_for_hexagons_point_to_the_table() -> None:
    _, table, summary, gaps, *_ = _results()  # type: ignore[no-untyped-call]
    grid = table.assign(name=[f"H3 r8 8840196{i:02d}bfffff" for i in range(len(table))])
    rows = progress_rows(grid, summary, gaps=gaps)
    assert len(rows) == 4  # three district rows + one pointing to jiedao.xlsx
    assert "jiedao.xlsx" in rows[3]["工作开展情况"] and rows[3]["牵头单位"] == "区卫生健康委"


def test_coverage_line_lists_every_unit() -> None:
    _, table, *_ = _results()  # type: ignore[no-untyped-call]
    line = coverage_line(table)
    assert all(name in line for name in table["name"])


# --- the hand-made fixture ----------------------------------------------------------------


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], dict[str, Any]]:
    fx, table, summary, gaps, isochrones, extra = _results()  # type: ignore[no-untyped-call]
    # the fixture's own English notes are test data, not library wording: put them in Chinese
    summary = {**summary, "data": {**summary["data"], "population_method": "手工测试人口点",
                                   "assumptions": ["3岁以下人口占1.5%（测试）"]}}  # fmt: skip
    out = write_reports(
        tmp_path_factory.mktemp("committee"), table=table, summary=summary, month=MONTH,
        units=fx["units"], gaps=gaps, isochrones=isochrones, extra_sheets=extra,
        profile=load_profile("chongqing-2025"),
    )  # fmt: skip
    return out, summary


def test_handmade_workbook(handmade: tuple[dict[str, Path], dict[str, Any]]) -> None:
    out, summary = handmade
    path = out["jiedao.xlsx"]
    assert openpyxl.load_workbook(path).sheetnames == ["街道指标", "区级指标", "未达标街道",
                                                      "托位缺口", "说明"]  # fmt: skip
    _assert_unit_sheet(path)
    _assert_chinese_only(path, summary)
    _assert_no_noise_no_paths(path)
    _assert_print_setup(path)
    _assert_ranked_by_gap(path)
    headers, rows = _sheet_rows(openpyxl.load_workbook(path)["街道指标"])
    total = rows[-1]
    cov = headers.index("15分钟步行覆盖率（%，全部机构）")
    people = headers.index("常住人口（人）")
    covered = headers.index("15分钟步行覆盖人口（人）")
    # 105,000 of 145,000 people → 72.4 %, from the totals (the rows' mean would differ)
    assert total[people] == 145_000 and total[covered] == 105_000
    assert total[cov] == 72.4
    mean = sum(r[cov] for r in rows[:-1] if isinstance(r[cov], float)) / (len(rows) - 1)
    assert round(mean, 1) != 72.4
    # 托位: 150 slots for 145,000 people at 4.5 ‰ → shortfall 502.5 → 503 (rows add up)
    gap = headers.index("托位缺口（个，负值为富余）")
    assert total[gap] == sum(r[gap] for r in rows[:-1])
    # fill and number format of a percentage
    ws = openpyxl.load_workbook(path)["街道指标"]
    assert ws.cell(2, cov + 1).number_format == '0.0"%"'


def test_handmade_progress_sheet(handmade: tuple[dict[str, Path], dict[str, Any]]) -> None:
    out, summary = handmade
    path = out[f"progress_{MONTH}.xlsx"]
    _assert_chinese_only(path, summary)
    _assert_no_noise_no_paths(path)
    _assert_print_setup(path, title_rows="1:2")
    text = " ".join(str(c.value) for _, c in _cells(path))
    assert "gaps.geojson" not in text and "见缺口地图 gaps.html" in text
    assert "渝府办发〔2023〕77号" in text


def test_handmade_pdf(handmade: tuple[dict[str, Path], dict[str, Any]]) -> None:
    out, _ = handmade
    assert out["report.pdf"].read_bytes().startswith(b"%PDF")


# --- the real data ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dongcheng(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, data_dir: Path
) -> tuple[Any, Path]:
    out = tmp_path_factory.mktemp("dongcheng")
    run = analyse_area("beijing-dongcheng", out / "out", settings, SILENT, month=MONTH,
                       maps_dir=out / "maps")  # fmt: skip
    return run, out / "out"


def test_dongcheng_workbook(dongcheng: tuple[Any, Path], data_dir: Path) -> None:
    _run, out = dongcheng
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    path = out / "jiedao.xlsx"
    _assert_unit_sheet(path)
    _assert_chinese_only(path, summary)
    _assert_no_noise_no_paths(path, data_dir, Path.cwd())
    _assert_print_setup(path)
    _assert_ranked_by_gap(path)
    wb = openpyxl.load_workbook(path)
    headers, rows = _sheet_rows(wb["街道指标"])
    # whole people that add up to the census count, not 38890.1508
    assert rows[-1][headers.index("常住人口（人）")] == 708_829
    # regression: 2SFCA was 0.00 with all 64 facilities' slots unknown
    access = headers.index("可达托位指数（2SFCA，托位/婴幼儿）")
    assert {r[access] for r in rows} == {"不详"}
    # the shortfall is unknown everywhere: ranked by the slots needed, 和平里 (98,032) first
    _, short = _sheet_rows(wb["托位缺口"])
    assert short[0][2] == "和平里街道"
    notes = "\n".join(str(c.value) for c in wb["说明"]["A"])
    assert "14.99999" not in notes and "15分钟步行距离1,000米" in notes
    assert "京政办发〔2023〕6号" in notes
    text = " ".join(str(c.value) for _, c in _cells(path))
    assert "002_30e7b644e3d11434.txt" not in text
    assert "京政办发〔2023〕6号 二、工作目标" in text


def test_dongcheng_progress_sheet(dongcheng: tuple[Any, Path]) -> None:
    _, out = dongcheng
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    path = out / f"progress_{MONTH}.xlsx"
    _assert_chinese_only(path, summary)
    _assert_no_noise_no_paths(path)
    _assert_print_setup(path, title_rows="1:2")
    rows = [[c.value for c in r] for r in openpyxl.load_workbook(path).active.iter_rows(min_row=3)]
    assert len(rows) == 3 + 17
    assert "崇文门外街道" in rows[1][3]


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (pdftotext)")
def test_dongcheng_pdf(dongcheng: tuple[Any, Path], tmp_path: Path) -> None:
    run, _out = dongcheng
    table, summary = run.results.table, dict(run.results.summary)
    pdf = write_district_report(tmp_path / "report.pdf", table, summary, run.layers.units,
                                run.profile)  # fmt: skip
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    flat = re.sub(r"\s+", "", text)
    for name in table["name"]:
        assert name in flat, name
    for figure in ("77.6%", "94.1%", "≥100%", "京政办发〔2023〕6号二、工作目标", "不详", "未达标"):
        assert figure in flat, figure
    assert "崇文门外街道（43,373人）" in flat  # the failing 街道 and by how much
    png = subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(tmp_path / "page")],
                         capture_output=True, check=True)  # fmt: skip
    assert png.returncode == 0
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) == 1  # one page
    again = write_district_report(tmp_path / "again.pdf", table, summary, run.layers.units,
                                  run.profile)  # fmt: skip
    assert again.read_bytes() == pdf.read_bytes()


def test_yuzhong_progress_reasons(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings
) -> None:
    out = tmp_path_factory.mktemp("yuzhong")
    analyse_area("chongqing-yuzhong", out / "out", settings, SILENT, month=MONTH,
                 maps_dir=out / "maps")  # fmt: skip
    summary = json.loads((out / "out" / "summary.json").read_text("utf-8"))
    for name in ("jiedao.xlsx", f"progress_{MONTH}.xlsx"):
        _assert_chinese_only(out / "out" / name, summary)
        _assert_no_noise_no_paths(out / "out" / name)
    rows = [[c.value for c in r] for r in
            openpyxl.load_workbook(out / "out" / f"progress_{MONTH}.xlsx").active.iter_rows(min_row=3)]  # fmt: skip
    registry = any(s["indicator"] == "facilities" for s in summary.get("skipped") or [])
    text = " ".join(str(v) for r in rows for v in r if v)
    assert "机构普惠属性不详" not in text  # regression: the old, wrong reason on row 4
    assert "约0个" not in text and "托位缺口约0个" not in text
    if registry:  # no facility file: say so, never "0 slots" or "no 普惠 facility"
        assert "未提供托育机构备案名录" in rows[0][2] and "未提供托育机构备案名录" in rows[1][2]
        assert "辖区内无普惠托育机构" not in text
    if str(summary["indicators"]["puhui_jiedao_coverage"].get("reason", "")).startswith(
        "units are H3"
    ):
        assert "街道边界" in rows[1][3]


def test_no_cjk_font_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib import font_manager
    from tuoyu.errors import DataNotFoundError
    from tuoyu.outputs import pdf_report

    monkeypatch.setattr(font_manager.fontManager, "ttflist", [])
    with pytest.raises(DataNotFoundError, match="fonts-noto-cjk"):
        pdf_report.cjk_font_family()


def test_pdf_needs_matching_units(tmp_path: Path) -> None:
    from tuoyu.errors import InputValidationError

    fx, table, summary, *_ = _results()  # type: ignore[no-untyped-call]
    with pytest.raises(InputValidationError, match="unit polygons"):
        write_district_report(tmp_path / "r.pdf", table.iloc[:2], summary, fx["units"],
                              load_profile("chongqing-2025"))  # fmt: skip
    assert not (tmp_path / "r.pdf").exists()
