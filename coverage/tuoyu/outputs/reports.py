"""Report files: the tables, summary, maps layers and the monthly progress sheet.

Every writer is atomic (:mod:`tuoyu.outputs.atomic`) and deterministic: the same inputs give
byte-identical ``jiedao.csv``, ``jiedao.xlsx``, ``summary.json``, GeoJSON and progress
sheets (the workbook's creation/modification times and the zip entry times are fixed; no
run time is written anywhere). ``coverage.gpkg`` is written with GDAL's
``OGR_CURRENT_DATE`` fixed for the same reason.

Files (see :func:`write_reports`):

* ``jiedao.csv`` — the unit table, UTF-8 with BOM (Excel opens the Chinese names
  correctly), column keys as headers, empty cells for unknown values;
* ``jiedao.xlsx`` — sheets 街道指标 (the table with Chinese headers and a 合计 row),
  区级指标 (district values against targets), 未达标街道, 托位缺口 (largest gap first) and
  说明 (method, assumptions, data sources, in Chinese);
* ``summary.json`` — :func:`tuoyu.indicators.summary.district_summary`, sorted keys, UTF-8;
* ``gaps.geojson``, ``isochrones.geojson`` — WGS84 (RFC 7946) with a top-level
  ``attribution`` member when OSM data was used;
* ``coverage.gpkg`` — layers ``units``, ``facilities``, ``population``, ``gaps``,
  ``isochrones`` (those given), in their metric CRS; a layer estimated above
  :data:`GPKG_LAYER_MAX_BYTES` there is written as ``<layer>.parquet`` instead
  (GeoParquet, :func:`write_geoparquet`), and ``summary.json`` says so;
* ``progress_YYYY-MM.xlsx`` — 托位数发展工作落实情况推进表 in the layout of 附件2 of
  渝北府办发〔2022〕30号 (policy file 004);
* ``report.pdf`` — the one-page district report (:mod:`tuoyu.outputs.pdf_report`), when
  the unit polygons and the target profile are given.

``jiedao.xlsx`` and the progress sheet are meant to be filed unchanged by a district health
committee: Chinese only, whole people, percentages with one decimal, 达标/未达标/不详 on
green/red/grey, a 合计 row, targets cited by document number (文号) and clause, A4
landscape print set-up (:func:`print_setup`).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from copy import copy
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from tuoyu.errors import DataNotFoundError, InputValidationError
from tuoyu.indicators.citations import cite
from tuoyu.indicators.targets import INDICATORS, Profile
from tuoyu.labels import (
    FILE_ROLES_ZH,
    UNKNOWN_ZH,
    UNUSABLE_ZH,
    Language,
    label,
    skipped_label,
    status_zh,
    zh_text,
)
from tuoyu.outputs.atomic import atomic_path, write_bytes_atomic, write_text_atomic
from tuoyu.outputs.cells import neutralise_frame, neutralise_text

FIXED_TIMESTAMP: Final = datetime(2000, 1, 1)
"""Written as the workbook's created/modified time so reruns are byte-identical."""
_ZIP_TIME: Final = (1980, 1, 1, 0, 0, 0)
PROGRESS_HEADERS: Final = (
    "牵头单位",
    "主要任务",
    "工作开展情况",
    "存在问题",
    "下一步工作计划",
    "联系人（电话）",
    "备注",
)
"""Columns of 附件2 (托位数发展工作落实情况推进表) of policy file 004."""
GPKG_LAYERS: Final = ("units", "facilities", "population", "gaps", "isochrones")
_DECIMALS: Final = 4
_MONTH_RE: Final = re.compile(r"^(\d{4})-(\d{2})$")


# --- helpers ----------------------------------------------------------------------------


def _plain_value(value: Any) -> Any:
    """A cell value as a plain Python scalar; ``None`` for NA/NaN."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return ",".join(str(v) for v in value)
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    return value


def _rounded(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for column in out.columns:
        if column == getattr(out, "_geometry_column_name", None):
            continue
        dtype = out[column].dtype
        if pd.api.types.is_float_dtype(dtype):
            out[column] = out[column].round(_DECIMALS)
    return out


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return _plain_value(obj)


def _deterministic_zip(data: bytes) -> bytes:
    """Re-pack an xlsx with fixed entry times and fixed core-property dates."""
    stamp = FIXED_TIMESTAMP.strftime("%Y-%m-%dT%H:%M:%SZ")
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            payload = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                text = payload.decode("utf-8")
                text = re.sub(
                    r"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                    rf"\g<1>{stamp}\g<3>",
                    text,
                )
                payload = text.encode("utf-8")
            fixed = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            fixed.create_system = info.create_system
            dst.writestr(fixed, payload)
    return out.getvalue()


def _save_workbook(wb: Workbook, path: Path) -> Path:
    wb.properties.creator = "tuoyu-coverage"
    wb.properties.created = FIXED_TIMESTAMP
    wb.properties.modified = FIXED_TIMESTAMP
    buffer = io.BytesIO()
    wb.save(buffer)
    return write_bytes_atomic(path, _deterministic_zip(buffer.getvalue()))


# --- the unit table ---------------------------------------------------------------------


def write_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as UTF-8 CSV with BOM (column keys as headers, empty = unknown).

    Floats are rounded to 4 decimals; the geometry column, if any, is dropped; text a
    spreadsheet would run as a formula gets a leading ``'`` (:mod:`tuoyu.outputs.cells`).
    """
    frame = pd.DataFrame(table).drop(columns=["geometry"], errors="ignore")
    text = neutralise_frame(_rounded(frame)).to_csv(index=False, lineterminator="\n", na_rep="")
    return write_bytes_atomic(path, text.encode("utf-8-sig"))


# --- committee workbook formatting ------------------------------------------------------
#
# jiedao.xlsx is filed by a district health committee as it is: Chinese only, whole people,
# one decimal per percentage, 达标/未达标/不详 with fills, a 合计 row, A4 landscape. The
# cell values are rounded to what is shown, so a copied value has no float noise.

PEOPLE_COLUMNS: Final = frozenset({
    "population", "population_under3", "covered_population", "uncovered_population",
    "enrolled", "people_affected", "under3_affected",
})  # fmt: skip
"""Columns counting people: written as whole numbers."""
COUNT_COLUMNS: Final = frozenset({
    "facilities", "puhui_facilities", "slots", "puhui_slots", "points", "target_slots",
    "slot_shortfall", "rank", "n_facilities", "area_m2",
})  # fmt: skip
"""Other columns written as whole numbers (facilities, slots, ranks, m²)."""
PERCENT_COLUMNS: Final = frozenset(
    {"coverage_pct", "puhui_coverage_pct", "puhui_slot_share", "utilisation"}
)
"""Columns holding a percentage (0–100): one decimal, shown with ``%``."""
_DECIMALS_BY_COLUMN: Final = {"slots_per_1000": 2, "median_walk_min": 1, "access_2sfca": 3,
                              "minutes": 1, "walk_m_all": 0, "walk_m_puhui": 0}  # fmt: skip
_PERCENT_FORMAT: Final = '0.0"%"'
_INT_FORMAT: Final = "#,##0"
_BOOL_TEXT: Final = {"has_puhui": ("有", "无"), "has_facility": ("有", "无")}
_FILLS: Final = {
    "达标": ("C6EFCE", "006100"),
    "未达标": ("FFC7CE", "9C0006"),
    "不详": ("EDEDED", "595959"),
}
"""Status text → (fill colour, font colour): Excel's own Good / Bad / Neutral styles."""
_HEADER_FILL: Final = PatternFill("solid", fgColor="DDEBF7")
_THIN: Final = Side(style="thin", color="A6A6A6")
_BORDER: Final = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_TOTAL_BORDER: Final = Border(
    left=_THIN, right=_THIN, top=Side(style="medium"), bottom=Side(style="medium")
)
_H3_NAME: Final = re.compile(r"^H3 r(\d+) ([0-9a-f]{15})$")
TOTAL_LABEL: Final = "合计"


def status_fill(text: str) -> tuple[PatternFill, Font] | None:
    """Fill and font of a 达标/未达标/不详 cell (``None`` for other text)."""
    colours = _FILLS.get(text)
    if colours is None:
        return None
    return PatternFill("solid", fgColor=colours[0]), Font(color=colours[1], bold=text != "不详")


def _decimals(column: str) -> int | None:
    """Decimals a numeric column is shown (and rounded) with; ``None`` = leave as is."""
    if column in PEOPLE_COLUMNS or column in COUNT_COLUMNS:
        return 0
    if column in PERCENT_COLUMNS or column.endswith(("_pct", "_share")):
        return 1
    return _DECIMALS_BY_COLUMN.get(column)


def _number_format(column: str) -> str | None:
    digits = _decimals(column)
    if digits is None:
        return None
    if column in PERCENT_COLUMNS or column.endswith(("_pct", "_share")):
        return _PERCENT_FORMAT
    return _INT_FORMAT if digits == 0 else "0." + "0" * digits


def apportion(values: Sequence[float | None]) -> list[int | None]:
    """Whole numbers whose sum is the rounded sum of ``values`` (largest remainder).

    Rounding each 街道 on its own can make the rows add up to one person more or less
    than the district (708,830 instead of the census 708,829); Hamilton's largest-remainder
    rule keeps both the rows and their total whole and consistent. Unknown values
    (``None``/NaN) stay ``None``. Ties go to the earlier row. Hand-written: numpy has no
    apportionment and the rule is five lines.

    Examples
    --------
    >>> apportion([0.4, 0.4, 0.2, None])
    [1, 0, 0, None]
    >>> apportion([2.5, -1.25])
    [2, -1]
    """
    known = [(i, float(v)) for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    out: list[int | None] = [None] * len(values)
    if not known:
        return out
    floors = [math.floor(v) for _, v in known]
    short = round(math.fsum(v for _, v in known)) - sum(floors)
    order = sorted(range(len(known)), key=lambda k: (-(known[k][1] - floors[k]), k))
    bump = set(order[: max(0, short)])
    for k, (i, _) in enumerate(known):
        out[i] = floors[k] + (1 if k in bump else 0)
    return out


def _numbers(series: pd.Series) -> list[float | None] | None:
    """The column as floats (``None`` = unknown), or ``None`` when it holds text."""
    out: list[float | None] = []
    for value in series:
        v = _plain_value(value)
        if v is None:
            out.append(None)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(v))
        else:
            return None
    return out


def _whole_columns(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with people and count columns as apportioned whole numbers (object)."""
    out = data.copy()
    whole: dict[str, list[int | None]] = {}
    for column in out.columns:
        if _decimals(str(column)) == 0 and str(column) != "rank":
            numbers = _numbers(out[column])
            if numbers is not None:
                whole[str(column)] = apportion(numbers)
    if {"population", "covered_population", "uncovered_population"} <= set(whole):
        # keep covered + uncovered = population per row where the source says so
        raw = [_numbers(data[c]) for c in ("population", "covered_population",
                                           "uncovered_population")]  # fmt: skip
        pop, cov, unc = (
            whole["population"],
            whole["covered_population"],
            whole["uncovered_population"],
        )
        for i, (p, c, u) in enumerate(zip(*raw, strict=True)):  # type: ignore[misc]
            if p is not None and c is not None and u is not None and abs(p - c - u) < 1e-6:
                p_i, c_i = pop[i], cov[i]
                if p_i is not None and c_i is not None:
                    unc[i] = p_i - c_i
    for column, values in whole.items():
        out[column] = pd.Series(values, index=out.index, dtype=object)
    return out


def _unit_name(value: Any) -> Any:
    """An H3 cell name ``"H3 r8 884019…"`` as ``"H3网格（8级）884019…"``."""
    if isinstance(value, str):
        match = _H3_NAME.match(value)
        if match:
            return f"H3网格（{match.group(1)}级）{match.group(2)}"
    return value


def _cell(column: str, value: Any) -> Any:
    """The value written for one cell: rounded number, 有/无, 达标/未达标/不详, or text."""
    v = _plain_value(value)
    if column.startswith("meets_"):
        return status_zh(v)
    if column in _BOOL_TEXT:
        yes, no = _BOOL_TEXT[column]
        return UNKNOWN_ZH if v is None else (yes if v else no)
    if v is None:
        return UNKNOWN_ZH if _decimals(column) is not None else None
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, (int, float)):
        digits = _decimals(column)
        if digits == 0:
            return round(v)
        if digits is not None:
            return round(float(v), digits)
        return round(float(v), _DECIMALS) if isinstance(v, float) else v
    if column == "name":
        return _unit_name(v)
    return v


def _style_cell(cell: Any, column: str) -> None:
    value = cell.value
    cell.border = _BORDER
    if isinstance(value, str):
        styled = status_fill(value)
        if styled is not None:
            cell.fill, cell.font = styled
            cell.alignment = Alignment(horizontal="center", vertical="center")
            return
        cell.alignment = Alignment(vertical="center", wrap_text=len(value) > 30)
        return
    fmt = _number_format(column)
    if fmt and isinstance(value, (int, float)):
        cell.number_format = fmt


def _style_key(value: Any, number_format: str | None) -> tuple[Any, ...]:
    """What :func:`_style_cell` looks at in a cell of a column with ``number_format``.

    Two cells with the same key get the same border, fill, font, alignment and number
    format, so :func:`_write_frame` styles the first one and copies its style indices
    (openpyxl's ``StyleArray``) to the others: registering a style object hashes it, which
    cost more than writing the workbook.

    Examples
    --------
    >>> _style_key("达标", None), _style_key("x" * 31, None), _style_key(3, "#,##0")
    (('status', '达标'), ('text', True), ('number', '#,##0'))
    """
    if isinstance(value, str):
        if value in _FILLS:
            return ("status", value)
        return ("text", len(value) > 30)
    if number_format and isinstance(value, (int, float)):
        return ("number", number_format)
    return ("plain",)


def _text_width(text: str) -> int:
    """Display width: a CJK character counts two."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def print_setup(ws: Any, *, title_rows: str = "1:1", freeze: str | None = "A2") -> None:
    """A4 landscape, one page wide, header rows repeated on every page, frozen header.

    Parameters
    ----------
    ws
        An openpyxl worksheet (changed in place: it is being built).
    title_rows
        Rows repeated at the top of each printed page (``"1:1"``, ``"1:2"``).
    freeze
        Top-left cell of the scrolling area (``None``: nothing frozen).
    """
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = title_rows
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.6
    ws.oddFooter.center.text = "第 &P 页，共 &N 页"
    if freeze:
        ws.freeze_panes = freeze


def _write_frame(
    ws: Any,
    frame: pd.DataFrame,
    language: Language,
    *,
    total: Mapping[str, Any] | None = None,
    freeze: str | None = None,
) -> None:
    """Header row, then one row per record (and a bold 合计 row), formatted and styled."""
    data = _whole_columns(pd.DataFrame(frame).drop(columns=["geometry"], errors="ignore"))
    columns = [str(c) for c in data.columns]
    headers = [neutralise_text(label(c, language)) for c in columns]
    ws.append(headers)
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
        cell.border = _BORDER
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for row in data.itertuples(index=False, name=None):
        ws.append([neutralise_text(_cell(c, v)) for c, v in zip(columns, row, strict=True)])
    if total is not None:
        ws.append([neutralise_text(total.get(c)) for c in columns])
    last_row = ws.max_row  # once: openpyxl computes it over every cell on each call
    styles: dict[tuple[Any, ...], Any] = {}
    for idx, column in enumerate(columns, start=1):
        number_format = _number_format(column)
        for (cell,) in ws.iter_rows(min_row=2, min_col=idx, max_col=idx):
            is_total = total is not None and cell.row == last_row
            key = (_style_key(cell.value, number_format), is_total)
            known = styles.get(key)
            if known is not None:
                # the same style indices as styling the cell anew (see _style_key)
                cell._style = copy(known)
                continue
            _style_cell(cell, column)
            if is_total:
                cell.font = Font(bold=True, color=cell.font.color)
                cell.border = _TOTAL_BORDER
            styles[key] = copy(cell._style)
        longest = max(
            [_text_width(str(c.value)) for (c,) in ws.iter_rows(min_row=2, min_col=idx,
                                                                 max_col=idx) if c.value],
            default=4,
        )  # fmt: skip
        header_width = min(_text_width(headers[idx - 1]), 24)
        ws.column_dimensions[get_column_letter(idx)].width = max(8, min(40, longest + 2),
                                                                 header_width / 2 + 2)  # fmt: skip
    ws.row_dimensions[1].height = 48
    freeze_at = freeze or ("C2" if len(columns) > 2 else "A2")
    print_setup(ws, freeze=freeze_at)


def _sum_column(rows: pd.Series) -> int | None:
    values = [_plain_value(v) for v in rows]
    if not values or any(v is None for v in values):
        return None
    return int(sum(int(v) for v in values))


def total_row(table: pd.DataFrame, summary: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The 合计 row of the unit sheet: sums of the written rows, district ratios.

    People and counts are the sum of the (apportioned, whole) rows; every ratio is
    recomputed from the totals — the district value of ``summary["indicators"]`` when
    given, else the ratio of the column sums — never an average of the rows. A column
    with an unknown row has an unknown (不详) total.

    Examples
    --------
    >>> t = pd.DataFrame({"code": ["1", "2"], "name": ["甲", "乙"],
    ...                   "population": [100.4, 300.4], "covered_population": [50.0, 250.0],
    ...                   "coverage_pct": [49.8, 83.2]})
    >>> row = total_row(t)
    >>> row["population"], row["covered_population"], row["coverage_pct"]
    (401, 300, 74.8)
    """
    data = _whole_columns(pd.DataFrame(table).drop(columns=["geometry"], errors="ignore"))
    indicators: Mapping[str, Any] = (summary or {}).get("indicators", {}) or {}
    out: dict[str, Any] = {}
    for column in (str(c) for c in data.columns):
        if column == "code":
            out[column] = TOTAL_LABEL
        elif column == "name":
            area = (summary or {}).get("area") or {}
            out[column] = str(area.get("name") or "全区")
        elif column in PEOPLE_COLUMNS or column in COUNT_COLUMNS:
            out[column] = _sum_column(data[column])
        elif column in _BOOL_TEXT:
            known = [v for v in (_plain_value(x) for x in data[column]) if v is not None]
            out[column] = f"{sum(bool(v) for v in known)}/{len(data)}个有"
        elif column == "access_2sfca" and access_unknown(summary):
            out[column] = None
        elif column.startswith("meets_"):
            out[column] = status_zh((indicators.get(column[6:]) or {}).get("pass"))
        else:
            out[column] = _total_ratio(column, data, table, indicators)
        if out[column] is None:
            out[column] = UNKNOWN_ZH
    return out


def _ratio(numerator: int | None, denominator: int | None, scale: float) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator * scale


def _total_ratio(
    column: str, data: pd.DataFrame, table: pd.DataFrame, indicators: Mapping[str, Any]
) -> Any:
    digits = _decimals(column)
    if digits is None:
        return None
    value: float | None
    if column in indicators and (indicators[column] or {}).get("value") is not None:
        value = float(indicators[column]["value"])
    else:
        raw = pd.DataFrame(table)

        def total(name: str) -> int | None:
            return _sum_column(data[name]) if name in data else None

        ratios: dict[str, tuple[str, str, float]] = {
            "slots_per_1000": ("slots", "population", 1000.0),
            "puhui_slot_share": ("puhui_slots", "slots", 100.0),
            "utilisation": ("enrolled", "slots", 100.0),
            "coverage_pct": ("covered_population", "population", 100.0),
        }
        if column not in ratios or column not in raw:
            return None
        num, den, scale = ratios[column]
        value = _ratio(total(num), total(den), scale)
    return None if value is None or math.isnan(value) else round(value, digits)


def write_xlsx(
    table: pd.DataFrame,
    path: str | Path,
    *,
    sheet_title: str = "街道指标",
    notes: Sequence[str] = (),
    language: Language = "zh",
    extra_sheets: Mapping[str, pd.DataFrame] | None = None,
    summary: Mapping[str, Any] | None = None,
) -> Path:
    """Write a table to Excel, formatted for filing, deterministically.

    Every sheet: bold header (Chinese labels, or English with ``language="en"``), people
    and counts as whole numbers, percentages with one decimal (``0.0"%"``), other numbers
    rounded to what is shown, ``meets_*`` as 达标/未达标/不详 on green/red/grey, unknown
    numbers as 不详, frozen header, column widths, A4 landscape one page wide with the
    header repeated (:func:`print_setup`).

    Parameters
    ----------
    table
        The unit table (or any table); the geometry column is dropped.
    path
        Target file.
    sheet_title
        Name of the first sheet.
    notes
        Lines of the last sheet 说明 (parameters, assumptions, data sources).
    language
        Header language.
    extra_sheets
        More tables after the first, sheet name → table (e.g. failing units, shortfall).
    summary
        :func:`~tuoyu.indicators.summary.district_summary`; when given, the first sheet
        ends with a 合计 row (:func:`total_row`).
    """
    wb = Workbook()
    wb.remove(wb.active)
    ws = wb.create_sheet(sheet_title[:31])
    total = total_row(table, summary) if summary is not None else None
    _write_frame(ws, table, language, total=total)
    for name, frame in (extra_sheets or {}).items():
        _write_frame(wb.create_sheet(name[:31]), frame, language)
    if notes:
        info = wb.create_sheet("说明")
        info.column_dimensions["A"].width = 110
        for line in notes:
            info.append([neutralise_text(line)])
        for (cell,) in info.iter_rows():
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        info["A1"].font = Font(bold=True, size=13)
        print_setup(info, title_rows="1:1", freeze=None)
        info.page_setup.orientation = "portrait"
    return _save_workbook(wb, Path(path))


# --- committee sheets built from the results ----------------------------------------------


def _format_value(value: Any, unit: str) -> Any:
    v = _plain_value(value)
    if v is None:
        return UNKNOWN_ZH
    if unit == "%":
        return round(float(v), 1)
    if unit in ("个", "个/区县"):
        return round(float(v))
    return round(float(v), 2)


def district_indicator_sheet(summary: Mapping[str, Any]) -> pd.DataFrame:
    """区级指标: each indicator with a target — value, target, 达标, gap, citation.

    Columns are already Chinese (the sheet is written with its own headers).
    """
    rows: list[dict[str, Any]] = []
    for key, entry in (summary.get("indicators") or {}).items():
        entry = entry or {}
        target = entry.get("target")
        if not target and entry.get("value") is None:
            continue
        unit = str(entry.get("unit") or "")
        value = _format_value(entry.get("value"), unit)
        if key == "access_2sfca" and access_unknown(summary):
            value = UNKNOWN_ZH
        gap = entry.get("gap")
        rows.append({
            "指标": INDICATORS[key].label_zh if key in INDICATORS else str(entry.get("label_zh")),
            "现状值": value,
            "单位": unit,
            "目标": str(target.get("text")) if target else "无量化目标",
            "是否达标": status_zh(entry.get("pass")) if target else "—",
            "差距": _format_value(gap, unit) if gap is not None else "",
            "依据（文号、条款）": cite(target) if target else "",
            "政策原文": str(target.get("quote") or "") if target else "",
            "说明": zh_text(str(entry["reason"])) if entry.get("reason") else "",
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["指标", "现状值", "单位", "目标", "是否达标", "差距",
                                       "依据（文号、条款）", "政策原文", "说明"])  # fmt: skip


def failing_sheet(failing: pd.DataFrame, summary: Mapping[str, Any]) -> pd.DataFrame:
    """未达标街道 as filed: indicator key dropped, 有/无 for presence, the citation added."""
    frame = pd.DataFrame(failing).copy()
    indicators: Mapping[str, Any] = summary.get("indicators") or {}
    if "indicator" not in frame:
        return frame
    keys = frame["indicator"].astype(str)
    values: list[Any] = []
    for key, value in zip(keys, frame.get("value", pd.Series([None] * len(frame))), strict=True):
        column = INDICATORS[key].unit_column if key in INDICATORS else None
        if column in _BOOL_TEXT:
            v = _plain_value(value)
            values.append(UNKNOWN_ZH if v is None else _BOOL_TEXT[column][0 if v else 1])
        else:
            values.append(_cell(column or "value", value))
    frame["value"] = pd.Series(values, index=frame.index, dtype=object)
    frame["依据（文号、条款）"] = [
        cite(t) if (t := (indicators.get(k) or {}).get("target")) else "" for k in keys
    ]
    return frame.drop(columns=["indicator"])


def shortfall_sheet(shortfall: pd.DataFrame) -> pd.DataFrame:
    """托位缺口 ranked by the gap, largest first.

    Units with a known shortfall come first (largest first, surpluses last); units whose
    slots are unknown follow, ordered by the slots they need (target slots, largest
    first), so the sheet always reads from the biggest need down. ``rank`` is renumbered.
    """
    frame = pd.DataFrame(shortfall).copy()
    if "slot_shortfall" not in frame:
        return frame
    gap = frame["slot_shortfall"].astype("Float64")
    need = frame["target_slots"].astype("Float64") if "target_slots" in frame else gap
    order = pd.DataFrame({
        "known": gap.notna().to_numpy(), "gap": gap.fillna(-math.inf).to_numpy(dtype=float),
        "need": need.fillna(-math.inf).to_numpy(dtype=float),
        "code": frame["code"].astype(str).to_numpy() if "code" in frame else "",
    })  # fmt: skip
    order = order.sort_values(["known", "gap", "need", "code"],
                              ascending=[False, False, False, True], kind="stable")  # fmt: skip
    out = frame.iloc[order.index.to_numpy()].reset_index(drop=True)
    if "rank" in out:
        out["rank"] = np.arange(1, len(out) + 1, dtype=np.int64)
    return out


def _committee_extra_sheets(
    extra_sheets: Mapping[str, pd.DataFrame] | None, summary: Mapping[str, Any]
) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    for name, frame in (extra_sheets or {}).items():
        if "slot_shortfall" in frame and "target_slots" in frame:
            out[name] = shortfall_sheet(frame)
        elif "indicator" in frame and "people_affected" in frame:
            out[name] = failing_sheet(frame, summary)
        else:
            out[name] = frame
    return out


def write_summary_json(summary: Mapping[str, Any], path: str | Path) -> Path:
    """Write the summary as JSON: sorted keys, UTF-8 (not escaped), NaN as null."""
    text = json.dumps(
        _json_ready(summary), ensure_ascii=False, sort_keys=True, indent=2, allow_nan=False
    )
    return write_text_atomic(path, text + "\n")


# --- map layers -------------------------------------------------------------------------


def _plain_frame(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Nullable, list and datetime columns → plain values GDAL and JSON accept."""
    out = gdf.copy()
    for column in out.columns:
        if column == out.geometry.name:
            continue
        series = out[column]
        if isinstance(series.dtype, pd.BooleanDtype) or series.dtype == object:
            out[column] = pd.Series(_plain_values(series), index=out.index, dtype=object)
        elif isinstance(series.dtype, pd.Int64Dtype) or isinstance(series.dtype, pd.Float64Dtype):
            out[column] = series.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            out[column] = series.dt.strftime("%Y-%m-%d").astype(object)
        elif isinstance(series.dtype, pd.StringDtype):
            # text or missing: the text as it is, missing as None (what _plain_value gives)
            out[column] = pd.Series(
                series.to_numpy(dtype=object, na_value=None), index=out.index, dtype=object
            )
    return out


def _plain_values(series: pd.Series) -> list[Any]:
    """:func:`_plain_value` of each value; a column holding only text is kept as it is.

    Examples
    --------
    >>> _plain_values(pd.Series(["a", "b"], dtype=object))
    ['a', 'b']
    >>> _plain_values(pd.Series(["a", None, np.nan, np.int64(3)], dtype=object))
    ['a', None, None, 3]
    """
    values = series.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        return list(values)  # every value is a str, which _plain_value returns unchanged
    return [_plain_value(v) for v in values]


GEOJSON_DECIMALS: Final = 6
"""Decimals of WGS84 coordinates in GeoJSON exports: 1e-6° ≈ 0.1 m, finer than the data."""


def _geometry_json(geoms: gpd.GeoSeries) -> list[str]:
    """RFC 7946 geometry members, one JSON text per row (GEOS writer, vectorised).

    Coordinates are rounded to :data:`GEOJSON_DECIMALS`; missing geometries give
    ``null``; empty ones ``{"type": …, "coordinates": []}`` (GEOS would write an empty ring).
    """
    values = np.asarray(geoms.array, dtype=object)
    rounded = shapely.transform(values, lambda xy: np.round(xy, GEOJSON_DECIMALS))
    texts = np.asarray(shapely.to_geojson(rounded), dtype=object)
    missing = shapely.is_missing(values)
    empty = ~missing & shapely.is_empty(values)
    texts[missing] = "null"
    for i in np.flatnonzero(empty):
        kind = values[i].geom_type
        member = "geometries" if kind == "GeometryCollection" else "coordinates"
        texts[i] = json.dumps({"type": kind, member: []}, separators=(",", ":"))
    return [str(t) for t in texts]


def _properties_json(frame: pd.DataFrame) -> list[str]:
    """The attribute columns as one JSON object text per row (NaN/NA → ``null``)."""
    if frame.shape[1] == 0:
        return ["{}"] * len(frame)
    plain = frame.astype(object).where(frame.notna(), None)
    columns = [str(c) for c in plain.columns]
    return [
        json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False, allow_nan=False)
        for row in plain.itertuples(index=False, name=None)
    ]


def write_geojson(
    gdf: gpd.GeoDataFrame,
    path: str | Path,
    *,
    attribution: str | None = None,
    name: str | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write a layer as RFC 7946 GeoJSON in WGS84 (coordinates rounded to 1e-6° ≈ 0.1 m).

    ``attribution`` (e.g. "© OpenStreetMap contributors"), ``name`` and ``notes`` become
    top-level members of the FeatureCollection. Geometries are written by GEOS
    (``shapely.to_geojson``, vectorised) unsimplified; the same layer gives the same
    bytes on every run.

    Examples
    --------
    >>> import tempfile
    >>> gdf = gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.Point(116.4, 39.9)], crs=4326)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     text = write_geojson(gdf, Path(tmp) / "p.geojson", name="p").read_text()
    >>> json.loads(text)["features"][0]
    {'type': 'Feature', 'properties': {'n': 1}, 'geometry': {'type': 'Point', 'coordinates': [116.4, 39.9]}}
    """
    if gdf.crs is None:
        raise InputValidationError(f"layer for {path} has no CRS", field="geometry")
    plain = _plain_frame(gdf.to_crs(4326))
    geometry = _geometry_json(plain.geometry)
    properties = _properties_json(pd.DataFrame(plain.drop(columns=plain.geometry.name)))
    features = ",\n".join(
        f'{{"type": "Feature", "properties": {props}, "geometry": {geom}}}'
        for props, geom in zip(properties, geometry, strict=True)
    )
    members: dict[str, Any] = {}
    if name:
        members["name"] = name
    if attribution:
        members["attribution"] = attribution
    if notes:
        members["notes"] = [str(n) for n in notes]
    head = "".join(
        f", {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in members.items()
    )
    body = f"[\n{features}\n]" if features else "[]"
    text = f'{{"type": "FeatureCollection"{head}, "features": {body}}}'
    return write_text_atomic(path, text + "\n")


_ARROW_SAFE_DTYPES: Final = frozenset(
    {np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.int32)}
)


def _arrow_writes_same(frame: gpd.GeoDataFrame) -> bool:
    """Whether GDAL's Arrow write path gives this (plain) layer the same file bytes, faster.

    Only for points (no NULL geometry) with float, integer or all-text columns: GDAL types
    those fields alike on both paths (``REAL``, ``INTEGER``, ``TEXT``; NaN is NULL on
    both) and the rows and spatial index come out identical, while the Arrow path skips
    pyogrio's per-feature Python loop (200,000 population points: 0.65 → 0.50 CPU-s). A
    text column holding anything but ``str`` is typed differently (``TEXT`` here,
    ``BOOLEAN`` there), and polygons are slower through Arrow, so those keep the
    feature path. Checked in ``tests/test_reports_speed2_gpkg.py``.
    """
    if len(frame) == 0:
        return False
    kinds = shapely.get_type_id(np.asarray(frame.geometry.array, dtype=object))
    if not bool((kinds == shapely.GeometryType.POINT).all()):
        return False
    for column in frame.columns:
        if column == frame.geometry.name:
            continue
        dtype = frame[column].dtype
        if dtype in _ARROW_SAFE_DTYPES:
            continue
        if pd.api.types.is_object_dtype(dtype) and (
            pd.api.types.infer_dtype(frame[column].to_numpy(), skipna=False) == "string"
        ):
            continue
        return False
    return True


def write_gpkg(path: str | Path, layers: Mapping[str, gpd.GeoDataFrame | None]) -> Path:
    """Write several layers into one GeoPackage, atomically (all or nothing).

    Layers that are ``None`` are left out; empty layers are written (with their columns).
    Point layers of plain columns go through GDAL's Arrow path (:func:`_arrow_writes_same`:
    the same bytes).
    """
    target = Path(path)
    if all(gdf is None for gdf in layers.values()):
        raise InputValidationError(f"no layers to write into {target}")
    with atomic_path(target) as tmp:
        # GDAL wants a .gpkg extension: build the file beside the temporary path, then move
        # it onto the temporary path, which atomic_path renames onto the target.
        building = tmp.with_name(tmp.name + ".gpkg")
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2000-01-01T00:00:00Z"})
        try:
            for layer, gdf in layers.items():
                if gdf is None:
                    continue
                frame = _plain_frame(gdf)
                geometry_type = None
                if len(frame) == 0 or frame.geometry.isna().all():
                    geometry_type = "Unknown"
                pyogrio.write_dataframe(
                    frame,
                    building,
                    layer=layer,
                    driver="GPKG",
                    geometry_type=geometry_type,
                    use_arrow=_arrow_writes_same(frame),
                )
            if building.exists():
                os.replace(building, tmp)
        finally:
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})
            if building.exists():
                building.unlink()
    return target


GEOPARQUET_DECIMALS_M: Final = 1
"""Decimals of metric coordinates in a GeoParquet layer: 0.1 m. The layers' own accuracy is
metres (road centrelines, GCJ-02 conversion, a 5 m isochrone lattice, 75 m gap discs);
rounding lets zstd find the repeats (isochrones of the big city 21 → 14 MB) and moves no
vertex by more than 0.071 m, inside the 0.25 m the walk-field margin keeps against
rounding (:mod:`tuoyu.isochrones.walk_field`)."""
_GEOGRAPHIC_DECIMALS: Final = 7
"""Decimals of degrees (≈ 1 cm) when a layer is not in a metric CRS."""


def write_geoparquet(
    gdf: gpd.GeoDataFrame, path: str | Path, *, attribution: str | None = None
) -> Path:
    """Write one layer as GeoParquet 1.0 (zstd), atomically; return the path.

    Coordinates are rounded to :data:`GEOPARQUET_DECIMALS_M` decimals of a metre (to
    7 decimals of a degree in a geographic CRS); columns are made plain as for the
    GeoPackage. ``attribution`` is kept in the file's key-value metadata (key
    ``attribution``), where GDAL, DuckDB and pyarrow show it. Read it back with
    :func:`geopandas.read_parquet`, DuckDB, or QGIS / GDAL built with the Parquet driver.

    Examples
    --------
    >>> import tempfile, shapely
    >>> layer = gpd.GeoDataFrame(
    ...     {"gap_id": [1]}, geometry=[shapely.Point(500000.123, 3300000.987)], crs=32650
    ... )
    >>> folder = Path(tempfile.mkdtemp())
    >>> back = gpd.read_parquet(write_geoparquet(layer, folder / "gaps.parquet"))
    >>> back.geometry.iloc[0].wkt, back.crs.to_epsg()
    ('POINT (500000.1 3300001)', 32650)
    """
    import pyarrow.parquet as pq  # a dependency; imported when a big layer is written

    # geopandas' own GeoParquet table builder (the "geo" metadata: encoding, types, CRS,
    # box), as GeoDataFrame.to_parquet uses it; called directly so the attribution joins
    # the metadata without writing and reading the file twice (0.35 CPU-s per big layer).
    from geopandas.io.arrow import _geopandas_to_arrow

    target = Path(path)
    frame = _plain_frame(gdf)
    digits = (
        GEOPARQUET_DECIMALS_M
        if frame.crs is None or frame.crs.is_projected
        else _GEOGRAPHIC_DECIMALS
    )
    frame[frame.geometry.name] = shapely.transform(
        np.asarray(frame.geometry.values, dtype=object), lambda c: np.round(c, digits)
    )
    table = _geopandas_to_arrow(frame, index=False)
    if attribution:
        metadata = {**(table.schema.metadata or {}), b"attribution": attribution.encode()}
        table = table.replace_schema_metadata(metadata)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return target


GPKG_LAYER_MAX_BYTES: Final = 20_000_000
"""Largest layer :func:`write_reports` keeps in ``coverage.gpkg``; a bigger one is written as
``<layer>.parquet`` (:func:`write_geoparquet`), a third to a quarter of the size."""


def gpkg_size_estimate(layer: gpd.GeoDataFrame) -> int:
    """Bytes of a layer in a GeoPackage, roughly.

    16 per coordinate pair, 80 per row (record, geometry header, spatial index) and each
    column's width: 9 for a number, the mean length (of up to 1,000 rows) plus 2 for
    text. Calibrated on the big synthetic city (``benchmarks/bigcity.py``): 200,000
    population points 29 MB estimated / 28.5 MB written; 6,000 isochrones 49 / 56;
    64,214 gap zones 39 / 43.

    >>> import shapely
    >>> gpkg_size_estimate(gpd.GeoDataFrame({"id": ["F1"]}, geometry=[shapely.box(0, 0, 1, 1)]))
    164
    """
    coords = int(shapely.get_num_coordinates(np.asarray(layer.geometry.values)).sum())
    width = 80
    for column in layer.columns:
        if column == layer.geometry.name:
            continue
        series = layer[column]
        if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            width += 9
        elif len(series):
            sample = series.iloc[:1000].tolist()
            width += sum(len(str(v)) for v in sample) // len(sample) + 2
    return 16 * coords + width * len(layer)


# --- the monthly progress sheet (附件2 of policy file 004) --------------------------------


def _fmt(value: Any, digits: int = 0) -> str | None:
    v = _plain_value(value)
    if v is None:
        return None
    return f"{float(v):,.{digits}f}"


def _num(value: Any, digits: int = 1) -> str:
    """A parameter as people write it: rounded, no trailing zeros (15, 4, 0.5).

    >>> _num(14.999999999999998), _num(4.0), _num(1000.0), _num(300.0, 0), _num(0.25, 2)
    ('15', '4', '1000', '300', '0.25')
    """
    v = _plain_value(value)
    if v is None:
        return UNKNOWN_ZH
    text = f"{round(float(v), digits):.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _indicator(summary: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    indicators: Mapping[str, Any] = summary.get("indicators", {})
    return indicators.get(key, {}) or {}


def _target_text(summary: Mapping[str, Any], key: str) -> str | None:
    target = _indicator(summary, key).get("target")
    return target.get("text") if target else None


def _citation(summary: Mapping[str, Any], key: str) -> str:
    target = _indicator(summary, key).get("target")
    return f"依据{cite(target)}" if target else ""


def _task(base: str, *extras: str) -> str:
    """``base（extra；extra）`` with the empty extras left out."""
    inner = "；".join(e for e in extras if e)
    return f"{base}（{inner}）" if inner else base


def _skipped_steps(summary: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(item.get("indicator")): str(item.get("reason") or "")
        for item in summary.get("skipped") or []
    }


def no_facility_registry(summary: Mapping[str, Any]) -> bool:
    """Whether the run had no facility registry at all (not: a registry with 0 slots)."""
    return "facilities" in _skipped_steps(summary)


def units_are_grid(table: pd.DataFrame, summary: Mapping[str, Any]) -> bool:
    """Whether the units are H3 hexagons rather than 街道 (they cannot lead a task)."""
    reason = str(_indicator(summary, "puhui_jiedao_coverage").get("reason") or "")
    names = [str(n) for n in table["name"]] if "name" in table else []
    return reason.startswith("units are H3") or (
        bool(names) and all(_H3_NAME.match(n) for n in names)
    )


def access_unknown(summary: Mapping[str, Any] | None) -> bool:
    """2SFCA is unknown (不详, not 0) when any facility's slots are unknown."""
    unusable: Mapping[str, Any] = (summary or {}).get("unusable") or {}
    return bool(unusable.get("facilities_excluded_2sfca_slots_unknown") or 0)


def _row(lead: str, task: str, done: str, problem: str, plan: str, remark: str) -> dict[str, str]:
    return {"牵头单位": lead, "主要任务": task, "工作开展情况": done, "存在问题": problem,
            "下一步工作计划": plan, "备注": remark}  # fmt: skip


def progress_rows(
    table: pd.DataFrame,
    summary: Mapping[str, Any],
    *,
    gaps: gpd.GeoDataFrame | None = None,
    lead_unit: str = "区卫生健康委",
    max_unit_rows: int = 60,
) -> list[dict[str, str]]:
    """Rows of the progress sheet, filled from the results, every cell in Chinese.

    Three district rows (slots, 普惠 coverage of 街道, the 15-minute circle), then one row
    per 街道 led by the 街道 itself (附件1 item 7 of policy 004 gives 镇街 their own slot
    task) — unless the units are H3 hexagons (a hexagon leads nothing) or there are more
    than ``max_unit_rows`` of them, where one row points to ``jiedao.xlsx`` instead.
    Reasons come from :func:`tuoyu.labels.zh_text`; each task cites its policy by 文号.
    联系人（电话） is left for the user.
    """
    totals: Mapping[str, Any] = summary.get("totals", {})
    params: Mapping[str, Any] = summary.get("parameters", {})
    data: Mapping[str, Any] = summary.get("data", {}) or {}
    remark = "；".join(zh_text(a) for a in data.get("facility_assumptions", []) or [])
    per_1000 = params.get("slots_per_1000_for_shortfall", 4.5)
    no_registry = no_facility_registry(summary)
    rows: list[dict[str, str]] = []

    # 1. slots
    spk = _indicator(summary, "slots_per_1000")
    share = _indicator(summary, "puhui_slot_share")
    util = _indicator(summary, "utilisation")
    target_slots = (
        _fmt((totals.get("population") or 0) * per_1000 / 1000.0)
        if totals.get("population") is not None
        else None
    )
    task = _task(
        f"托位数达到每千人口{per_1000:g}个",
        f"约{target_slots}个" if target_slots else "",
        _citation(summary, "slots_per_1000"),
    )
    if no_registry:
        done = "未提供托育机构备案名录，现有托位数不详"
        problem = "缺少托育机构备案名录（位置、托位数、普惠属性）"
        plan = "收集辖区托育机构备案名录后重新测算"
    elif spk.get("value") is not None:
        done = f"现有托位{_fmt(totals.get('slots'))}个，每千人口{_fmt(spk['value'], 2)}个"
        if share.get("value") is not None:
            done += f"；普惠托位{_fmt(totals.get('puhui_slots'))}个，占比{_fmt(share['value'], 1)}%"
        if util.get("value") is not None:
            done += f"；在托{_fmt(totals.get('enrolled'))}人，使用率{_fmt(util['value'], 1)}%"
        shortfall = totals.get("slot_shortfall")
        if shortfall is not None and round(shortfall) > 0:
            problem = f"托位缺口约{_fmt(shortfall)}个"
            worst = (
                table.dropna(subset=["slot_shortfall"])
                .sort_values(["slot_shortfall", "code"], ascending=[False, True])
                .head(3)
            )
            worst = worst[worst["slot_shortfall"] >= 0.5]
            plan = (
                "优先在缺口最大的" + "、".join(_unit_name(n) for n in worst["name"].astype(str))
                + "增加托位"
                if len(worst)
                else "继续增加托位"
            )  # fmt: skip
        else:
            problem, plan = "无", "保持托位供给，提高普惠托位占比"
    else:
        done = "托位数不详：" + zh_text(str(spk.get("reason", "数据缺失")))
        problem = "机构托位数未填报，无法核算每千人口托位数"
        plan = "补齐备案机构托位数、在托人数"
    rows.append(_row(lead_unit, task, done, problem, plan, remark))

    # 2. 普惠 coverage of 街道
    cov = _indicator(summary, "puhui_jiedao_coverage")
    n_units = totals.get("units", len(table))
    target_text = _target_text(summary, "puhui_jiedao_coverage")
    task = _task(
        "街道普惠性托育机构覆盖",
        f"目标{target_text}" if target_text else "",
        _citation(summary, "puhui_jiedao_coverage"),
    )
    reason = str(cov.get("reason") or "")
    if no_registry:
        done = "未提供托育机构备案名录，无法核实各街道普惠托育机构"
        problem, plan = "缺少托育机构备案名录", "收集托育机构名录并核实普惠认定情况"
    elif cov.get("value") is not None:
        done = (
            f"{totals.get('units_with_puhui')}/{n_units}个街道辖区内有普惠托育机构"
            f"（{_fmt(cov['value'], 1)}%）"
        )
        lacking = table[table["has_puhui"].eq(False).fillna(False).astype(bool)]
        names = "、".join(lacking["name"].astype(str).head(20))
        more = f"等{len(lacking)}个" if len(lacking) > 20 else ""
        problem = f"尚无普惠托育机构：{names}{more}" if len(lacking) else "无"
        plan = f"在{names}{more}布点普惠托育机构" if len(lacking) else "巩固普惠覆盖"
    elif reason.startswith("units are H3"):
        done = "未计算：" + zh_text(reason)
        problem = "缺少街道边界数据，无法按街道统计普惠机构覆盖"
        plan = "补充街道边界后测算"
    else:
        done = "未计算：" + zh_text(reason or "数据缺失")
        problem, plan = "机构普惠属性不详", "核实机构普惠认定情况"
    rows.append(_row(lead_unit, task, done, problem, plan, remark))

    # 3. the 15-minute circle
    walk = _indicator(summary, "coverage_pct")
    threshold_min = params.get("threshold_min")
    threshold_m = params.get("threshold_m")
    task = _task("建设15分钟托育服务圈", _citation(summary, "coverage_pct"))
    rows_remark = remark
    if walk.get("value") is not None and no_registry:
        done = "未提供托育机构备案名录，无法测算服务圈覆盖"
        problem = f"{_fmt(totals.get('uncovered_population'))}人附近无登记托育机构"
        plan = "收集托育机构名录后测算；在人口密集处布点（见缺口地图 gaps.html）"
    elif walk.get("value") is not None:
        done = (
            f"步行{_num(threshold_min, 0)}分钟（{_fmt(threshold_m)}米，"
            f"每小时{_num(params.get('walk_speed_kmh'))}千米）覆盖人口{_fmt(walk['value'], 1)}%"
        )
        puhui = _indicator(summary, "puhui_coverage_pct")
        if puhui.get("value") is not None:
            done += f"，普惠机构覆盖{_fmt(puhui['value'], 1)}%"
        uncovered = totals.get("uncovered_population")
        problem = f"{_fmt(uncovered)}人在15分钟步行范围外" if uncovered else "无"
        if gaps is not None and len(gaps):
            biggest = gaps.iloc[0]
            problem += (
                f"，分布在{len(gaps)}个缺口区域（最大缺口区约{_fmt(biggest['population'])}人）"
            )
        plan = "在缺口区域新增托育点（见缺口地图 gaps.html）" if uncovered else "保持覆盖"
        if summary.get("approximate"):
            remark_walk = "直线距离估算，结果为近似值"
            rows_remark = f"{remark}；{remark_walk}" if remark else remark_walk
    else:
        done = "未计算：" + zh_text(str(walk.get("reason", "无步行路网")))
        problem, plan = "缺少步行路网数据", "补充步行路网后测算"
    rows.append(_row(lead_unit, task, done, problem, plan, rows_remark))

    # 4. per unit
    if units_are_grid(table, summary) or len(table) > max_unit_rows:
        kind = "六边形网格单元" if units_are_grid(table, summary) else "统计单元"
        rows.append(_row(lead_unit, "逐单元托位与覆盖情况",
                         f"共{len(table)}个{kind}，逐单元结果见 jiedao.xlsx", "", "", remark))  # fmt: skip
        return rows
    for r in table.to_dict(orient="records"):
        population = _plain_value(r["population"])
        if population is None:
            task = f"辖区托位达到每千人口{per_1000:g}个（人口不详，目标托位数无法核算）"
        else:
            task = (
                f"辖区托位达到约{_fmt(population * per_1000 / 1000.0)}个（每千人口{per_1000:g}个）"
            )
        if no_registry:
            rows.append(_row(str(r["name"]), task, "未提供托育机构备案名录，现有机构和托位不详",
                             "缺少托育机构备案名录", "报送辖区托育机构名录（位置、托位数、普惠属性）",
                             remark))  # fmt: skip
            continue
        parts = [f"托育机构{r['facilities']}家"]
        if _plain_value(r["puhui_facilities"]) is not None:
            parts[-1] += f"（普惠{_fmt(r['puhui_facilities'])}家）"
        parts.append(
            f"托位{_fmt(r['slots'])}个" if _plain_value(r["slots"]) is not None else "托位数不详"
        )
        if _plain_value(r["coverage_pct"]) is not None:
            parts.append(f"15分钟步行覆盖{_fmt(r['coverage_pct'], 1)}%")
        problems, plans = [], []
        shortfall = _plain_value(r["slot_shortfall"])
        if shortfall is not None and shortfall >= 0.5:
            problems.append(f"托位缺口约{_fmt(shortfall)}个")
            plans.append(f"新增托位约{_fmt(shortfall)}个")
        elif _plain_value(r["slots"]) is None:
            problems.append("托位数未填报")
            plans.append("核实补报托位数")
        if _plain_value(r["has_puhui"]) is False:
            problems.append("辖区内无普惠托育机构")
            plans.append("引入普惠托育机构")
        uncovered = _plain_value(r["uncovered_population"])
        if uncovered is not None and uncovered >= 0.5:
            problems.append(f"{_fmt(uncovered)}人在15分钟步行范围外")
            plans.append("在未覆盖区域布点（见缺口地图 gaps.html）")
        rows.append(_row(str(r["name"]), task, "，".join(parts), "；".join(problems) or "无",
                         "；".join(plans) or "保持现有服务", remark))  # fmt: skip
    return rows


def progress_title(reporting_unit: str, year: int, month: int) -> str:
    """``"<单位><YYYY>年<M>月托位数发展工作落实情况推进表"`` (附件2 of policy file 004)."""
    return f"{reporting_unit}{year}年{month}月托位数发展工作落实情况推进表"


def parse_month(month: str) -> tuple[int, int]:
    """``"2025-04"`` → ``(2025, 4)``; raises :class:`InputValidationError` otherwise."""
    match = _MONTH_RE.match(month)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise InputValidationError(f"month must look like 2025-04, got {month!r}", field="month")
    return int(match.group(1)), int(match.group(2))


def write_progress_sheet(
    path: str | Path,
    rows: Sequence[Mapping[str, str]],
    *,
    reporting_unit: str,
    month: str,
) -> Path:
    """Write 托位数发展工作落实情况推进表 (title row, then the seven columns of 附件2).

    A4 landscape, one page wide, title and header repeated on every page, header frozen,
    thin borders, wrapped text (:func:`print_setup`).

    Parameters
    ----------
    path
        Target ``.xlsx`` (conventionally ``progress_YYYY-MM.xlsx``).
    rows
        Mappings keyed by :data:`PROGRESS_HEADERS` (missing keys → empty cells).
    reporting_unit
        The "XXX单位" of the title (e.g. the area name or its health committee).
    month
        ``"YYYY-MM"``; the title shows ``YYYY年M月``.
    """
    year, mon = parse_month(month)
    wb = Workbook()
    ws = wb.active
    ws.title = f"{year}年{mon}月"
    ws.append([neutralise_text(progress_title(reporting_unit, year, mon))])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(PROGRESS_HEADERS))
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center", vertical="center")
    ws.row_dimensions[1].height = 30
    ws.append(list(PROGRESS_HEADERS))
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
        cell.border = _BORDER
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for row in rows:
        ws.append([neutralise_text(row.get(h, "") or "") for h in PROGRESS_HEADERS])
    widths = (16, 30, 45, 40, 36, 16, 24)
    for idx, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(idx)].width = width
    for cells in ws.iter_rows(min_row=3):
        for cell in cells:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
            cell.border = _BORDER
    print_setup(ws, title_rows="1:2", freeze="A3")
    return _save_workbook(wb, Path(path))


# --- everything at once -----------------------------------------------------------------


def committee_workbook_parts(
    table: pd.DataFrame,
    summary: Mapping[str, Any],
    extra_sheets: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The unit table and the sheets after it, as ``jiedao.xlsx`` files them.

    Sheets: 街道指标 (with 合计), 区级指标 (:func:`district_indicator_sheet`), then the
    extra sheets, then 说明 (:func:`committee_notes`).

    2SFCA is blanked (不详) when any facility's slots are unknown; the failing-unit sheet
    cites its targets by 文号; the shortfall sheet is ranked by the gap.
    """
    unit_table_out = pd.DataFrame(table).copy()
    if access_unknown(summary) and "access_2sfca" in unit_table_out:
        unit_table_out["access_2sfca"] = pd.array([None] * len(unit_table_out), dtype="Float64")
    return unit_table_out, {
        "区级指标": district_indicator_sheet(summary),
        **_committee_extra_sheets(extra_sheets, summary),
    }


GEOJSON_COPY_MAX_BYTES: Final = 20_000_000
"""Largest GeoJSON copy of a ``coverage.gpkg`` layer that :func:`write_reports` writes."""


def _geojson_size_estimate(layer: gpd.GeoDataFrame) -> int:
    """Bytes of a layer as GeoJSON, roughly: 21 per coordinate pair, 300 per feature."""
    coords = int(shapely.get_num_coordinates(np.asarray(layer.geometry.values)).sum())
    return 21 * coords + 300 * len(layer)


def write_reports(
    out_dir: str | Path,
    *,
    table: pd.DataFrame,
    summary: Mapping[str, Any],
    month: str,
    reporting_unit: str | None = None,
    units: gpd.GeoDataFrame | None = None,
    facilities: gpd.GeoDataFrame | None = None,
    population: gpd.GeoDataFrame | None = None,
    gaps: gpd.GeoDataFrame | None = None,
    isochrones: gpd.GeoDataFrame | None = None,
    extra_sheets: Mapping[str, pd.DataFrame] | None = None,
    profile: Profile | None = None,
    geojson_max_bytes: int = GEOJSON_COPY_MAX_BYTES,
    gpkg_layer_max_bytes: int = GPKG_LAYER_MAX_BYTES,
) -> dict[str, Path]:
    """Write every report file into ``out_dir``; return ``{file kind: path}``.

    Parameters
    ----------
    out_dir
        Output folder (created).
    table, summary
        :func:`~tuoyu.indicators.summary.unit_table` and
        :func:`~tuoyu.indicators.summary.district_summary` results.
    month
        ``"YYYY-MM"`` of the progress sheet (passed in, never read from the clock, so
        reruns are identical).
    reporting_unit
        The "XXX单位" of the progress sheet title (default: the area name in the summary).
    units
        Unit polygons; joined with ``table`` (by row order) for the ``units`` gpkg layer.
    facilities, population, gaps, isochrones
        Layers for ``coverage.gpkg`` and the GeoJSON files (files for missing layers are
        not written; ``gaps.geojson`` / ``isochrones.geojson`` are written empty when an
        empty layer is given).
    extra_sheets
        More tables for ``jiedao.xlsx`` (e.g. failing units, slot shortfall).
    profile
        The target profile; with ``units`` it adds the one-page ``report.pdf``
        (:func:`tuoyu.outputs.pdf_report.write_district_report`).
    geojson_max_bytes
        ``gaps.geojson`` / ``isochrones.geojson`` are copies of ``coverage.gpkg`` layers:
        a copy estimated above this size is not written (a big city's isochrones would
        be ~80 MB of text); ``summary.json`` says so and names the file holding the layer.
    gpkg_layer_max_bytes
        A layer estimated (:func:`gpkg_size_estimate`) above this size in a GeoPackage is
        written as ``<layer>.parquet`` instead (:func:`write_geoparquet`; a big city's
        isochrones: 56 MB in the GeoPackage, 14 MB as GeoParquet); ``summary.json`` says
        so. Every layer of a district stays in ``coverage.gpkg``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    attribution = summary.get("attribution")
    unit_layer = None
    if units is not None:
        if len(units) != len(table):
            raise InputValidationError(
                f"{len(units)} unit polygons but {len(table)} table rows", field="units"
            )
        unit_layer = gpd.GeoDataFrame(
            table.reset_index(drop=True),
            geometry=units.geometry.reset_index(drop=True),
            crs=units.crs,
        )
    layers = {
        "units": unit_layer,
        "facilities": facilities,
        "population": population,
        "gaps": gaps,
        "isochrones": isochrones,
    }
    as_parquet = {
        name: size
        for name, layer in layers.items()
        if layer is not None and (size := gpkg_size_estimate(layer)) > gpkg_layer_max_bytes
    }
    big = {
        name: size
        for name, layer in (("gaps", gaps), ("isochrones", isochrones))
        if layer is not None and (size := _geojson_size_estimate(layer)) > geojson_max_bytes
    }
    notes = [
        {
            "indicator": f"coverage.gpkg: {name}",
            "reason": (
                f"written as {name}.parquet (GeoParquet, coordinates to 0.1 m): about "
                f"{size / 1e6:.0f} MB as a GeoPackage layer (coverage.gpkg keeps layers up to "
                f"{gpkg_layer_max_bytes / 1e6:.0f} MB); QGIS and GDAL with the Parquet driver, "
                f"geopandas and DuckDB read it / 图层较大，已另存为 GeoParquet 文件 "
                f"{name}.parquet（坐标精确到 0.1 米），未写入 coverage.gpkg"
            ),
        }
        for name, size in as_parquet.items()
    ]
    for name, size in big.items():
        where_en, where_zh = (
            (f"{name}.parquet", f"{name}.parquet")
            if name in as_parquet
            else (f"coverage.gpkg, layer '{name}'", f"coverage.gpkg（{name}）")
        )
        notes.append(
            {
                "indicator": f"{name}.geojson",
                "reason": (
                    f"not written: about {size / 1e6:.0f} MB as GeoJSON (copies are written up "
                    f"to {geojson_max_bytes / 1e6:.0f} MB); the layer is in {where_en} / "
                    f"图层已写入 {where_zh}，不再另存 GeoJSON 副本"
                ),
            }
        )
    if notes:
        summary = {**summary, "skipped": [*(summary.get("skipped") or []), *notes]}
    pdf = units is not None and profile is not None
    if pdf:
        # matplotlib loads only when a report is written; without a Chinese font the PDF is
        # skipped with the reason (the tables do not need one).
        from tuoyu.outputs.pdf_report import cjk_font_family

        try:
            cjk_font_family()
        except DataNotFoundError as exc:
            pdf = False
            skipped = [
                *(summary.get("skipped") or []),
                {"indicator": "report.pdf", "reason": str(exc)},
            ]
            summary = {**summary, "skipped": skipped}
    unit_sheet, extra = committee_workbook_parts(table, summary, extra_sheets)
    written: dict[str, Path] = {
        "jiedao.csv": write_csv(table, out / "jiedao.csv"),
        "jiedao.xlsx": write_xlsx(
            unit_sheet,
            out / "jiedao.xlsx",
            notes=committee_notes(summary),
            extra_sheets=extra,
            summary=summary,
        ),
        "summary.json": write_summary_json(summary, out / "summary.json"),
    }
    approx = [summary["approximate_note"]] if summary.get("approximate_note") else []
    if gaps is not None and "gaps" not in big:
        written["gaps.geojson"] = write_geojson(
            gaps, out / "gaps.geojson", attribution=attribution, name="gaps", notes=approx
        )
    if isochrones is not None and "isochrones" not in big:
        written["isochrones.geojson"] = write_geojson(
            isochrones, out / "isochrones.geojson", attribution=attribution,
            name="isochrones", notes=approx,
        )  # fmt: skip
    for name in GPKG_LAYERS:
        # A copy left by an earlier run whose layer now fits the GeoPackage would
        # contradict it: the file name is this writer's own.
        if name not in as_parquet:
            (out / f"{name}.parquet").unlink(missing_ok=True)
    for name in as_parquet:
        layer = layers[name]
        assert layer is not None  # only layers given are estimated
        written[f"{name}.parquet"] = write_geoparquet(
            layer, out / f"{name}.parquet", attribution=attribution
        )
    in_gpkg = {name: layer for name, layer in layers.items() if name not in as_parquet}
    if any(v is not None for v in in_gpkg.values()):
        written["coverage.gpkg"] = write_gpkg(out / "coverage.gpkg", in_gpkg)
    if pdf and units is not None and profile is not None:
        from tuoyu.outputs.pdf_report import write_district_report

        written["report.pdf"] = write_district_report(
            out / "report.pdf", table, summary, units, profile
        )
    area_name = (summary.get("area") or {}).get("name") or "XXX单位"
    rows = progress_rows(table, summary, gaps=gaps)
    written[f"progress_{month}.xlsx"] = write_progress_sheet(
        out / f"progress_{month}.xlsx",
        rows,
        reporting_unit=reporting_unit or area_name,
        month=month,
    )
    return written


# --- the 说明 sheet ----------------------------------------------------------------------

_ISOCHRONE_METHODS_ZH: Final = {
    "walk_field": "步行时间场（与“步行可达机构”查询一致：按最近道路吸附并计入步行接入段，保守描绘）",
    "exact": "沿路网精确计算（道路按剩余距离截断后缓冲）",
    "grid": "网格追踪（近似）",
    "isogrid": "网格追踪（近似）",
    "concave": "凹包近似",
    "concave_hull": "凹包近似",
}
_LICENCES_ZH: Final = {
    "ODbL-1.0": "开放数据库许可 ODbL 1.0",
    "no stated licence; demonstration and testing only": "未声明许可，仅供演示和测试",
    "public administrative codes": "公开的行政区划代码",
}


def _data_file_line(item: Mapping[str, Any]) -> str:
    """One data file: role, path relative to the data directory, licence, attribution."""
    role = str(item.get("role") or "")
    path = str(item.get("path") or "")
    if Path(path).is_absolute():  # a user's file outside the data directory
        path = Path(path).name
    licence = str(item.get("licence") or "")
    parts = [f"数据文件：{FILE_ROLES_ZH.get(role, role)} {path}"]
    if licence:
        parts.append(f"许可：{_LICENCES_ZH.get(licence, licence)}")
    if item.get("attribution"):
        parts.append(f"署名：{item['attribution']}")
    return "；".join(parts)


def committee_notes(summary: Mapping[str, Any]) -> list[str]:
    """Lines of the 说明 sheet in plain Chinese: what was measured, how, from which data.

    No machine path (data files are named relative to the data directory, as
    ``summary["data"]["files"][i]["path"]`` gives them), no float noise (parameters are
    rounded where printed), no English but data origin names, file names and units.
    """
    area = summary.get("area") or {}
    profile = summary.get("profile") or {}
    params: Mapping[str, Any] = summary.get("parameters") or {}
    data: Mapping[str, Any] = summary.get("data") or {}
    name = str(area.get("name") or "本区")
    lines = [f"{name}15分钟托育服务圈测算说明"]
    lines.append(
        f"一、研究区：{name}" + (f"（区划代码{area['code']}）" if area.get("code") else "")
    )
    if profile.get("title"):
        lines.append(f"二、目标依据：{profile['title']}。")
        if profile.get("document"):
            lines.append(f"    文件：{profile['document']}")
        lines.append(
            "    各项目标的文号、条款和政策原文见“区级指标”表；市级目标用于本区为本工具的测算口径。"
        )
    lines.append("三、测算方法")
    if params:
        speed, minutes = params.get("walk_speed_kmh"), params.get("threshold_min")
        lines.append(
            f"    步行速度每小时{_num(speed)}千米，{_num(minutes, 0)}分钟步行距离"
            f"{_fmt(params.get('threshold_m'))}米；沿步行路网计算到最近托育机构的最短路径，"
            "人口点到路网的接入段计入距离。"
        )
        if params.get("max_snap_m") is not None:
            lines.append(
                f"    距步行路网超过{_num(params['max_snap_m'], 0)}米的人口点视为无法步行到达。"
            )
        if params.get("network_mode") == "straight_line" or summary.get("approximate"):
            lines.append(
                f"    无路网时按直线距离×绕行系数{_num(params.get('detour_factor'), 2)}估算，结果为近似值。"
            )
        method = str(params.get("isochrone_method") or "")
        if method:
            lines.append(f"    等时圈：{_ISOCHRONE_METHODS_ZH.get(method, '其他算法')}。")
        per_1000 = params.get("slots_per_1000_for_shortfall")
        if per_1000 is not None:
            lines.append(
                f"    托位缺口 = 常住人口 × {_num(per_1000, 2)} ÷ 1000 − 现有托位，负值为富余。"
            )
    lines.append("    15分钟步行覆盖率 = 步行15分钟内可到达托育机构的人口 ÷ 常住人口。")
    lines.append(
        "    人口、托位按整数列出（最大余数法取整，合计行等于各行之和）；百分比保留一位小数，"
        "合计行的比例按合计数重新计算，不是各街道的平均值。"
    )
    lines.append("    托位缺口表按缺口从大到小排序；托位数不详的街道按目标托位数从大到小排在其后。")
    if access_unknown(summary):
        n = int((summary.get("unusable") or {}).get("facilities_excluded_2sfca_slots_unknown") or 0)
        lines.append(f"    {n}家机构托位数不详，可达托位指数（2SFCA）无法计算，记为“不详”。")
    lines.append("    “不详”表示数据缺失、无法计算，不等于0。")
    if no_facility_registry(summary):
        lines.append(
            "    未提供托育机构备案名录：托位数、覆盖率等按0家登记机构计算，不代表实际情况。"
        )
    lines.append("四、人口与假定")
    if data.get("population_method"):
        lines.append(f"    人口分布：{zh_text(str(data['population_method']))}。")
    for item in data.get("assumptions") or []:
        lines.append(f"    假定：{zh_text(str(item))}")
    skipped = summary.get("skipped") or []
    if skipped:
        lines.append("五、未计算的内容")
        for item in skipped:
            what = skipped_label(str(item.get("indicator")))
            lines.append(f"    {what}：{zh_text(str(item.get('reason') or ''))}")
    unusable = [(k, c) for k, c in sorted((summary.get("unusable") or {}).items()) if c]
    if unusable:
        lines.append("六、未能使用的记录")
        for key, count in unusable:
            lines.append(f"    {UNUSABLE_ZH.get(key, key)}：{int(count):,}个")
    lines.append("七、数据来源（路径相对于数据目录；各文件的校验码见 summary.json）")
    for item in data.get("files") or []:
        lines.append("    " + _data_file_line(item))
    if summary.get("attribution"):
        lines.append(f"    数据署名：{summary['attribution']}")
    return lines
