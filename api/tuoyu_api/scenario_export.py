"""Exports of a saved scenario: CSV, XLSX (openpyxl) and GeoJSON.

* **CSV** — UTF-8 with BOM (Excel opens it as UTF-8): one row per 街道 and a district
  row, before and after in people and percentage points; headers "中文 / English".
* **XLSX** — the same table on sheet 街道对比, the added facilities (新增机构), the
  facilities left out (关闭机构) and a sheet 说明 with the name, author, time, note, how
  under-3 children are counted and the registry change the results were computed at.
* **GeoJSON** — WGS84: the added facilities (points), the facilities left out (points),
  the added facilities' isochrones and, where the area has 街道 polygons, each 街道 with
  its before/after figures.

Every text cell of the CSV and XLSX that holds user text (scenario name, note, author,
facility names) goes through :mod:`tuoyu.outputs.cells`, so a spreadsheet never runs it
as a formula.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from tuoyu.outputs.cells import neutralise_frame, neutralise_text

from tuoyu_api.scenario_service import CHANGE_LABELS

TABLE_FIELDS: Final = (
    "code",
    "name",
    "population",
    "population_under3",
    "covered_before",
    "covered_after",
    "covered_change",
    "under3_covered_before",
    "under3_covered_after",
    "under3_covered_change",
    "coverage_pct_before",
    "coverage_pct_after",
    "coverage_pp",
    "puhui_coverage_pct_before",
    "puhui_coverage_pct_after",
    "puhui_coverage_pp",
    "facilities_before",
    "facilities_after",
    "puhui_facilities_before",
    "puhui_facilities_after",
    "slots_before",
    "slots_after",
    "has_puhui_before",
    "has_puhui_after",
)
"""Columns of the per-街道 table, in order (after the scenario's name)."""

FACILITY_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "id": ("编号", "Id"),
    "name": ("名称", "Name"),
    "kind": ("机构类型", "Kind"),
    "puhui": ("普惠", "普惠 (subsidised)"),
    "slots": ("托位（个）", "Slots"),
    "lon_wgs84": ("经度（WGS84）", "Longitude (WGS84)"),
    "lat_wgs84": ("纬度（WGS84）", "Latitude (WGS84)"),
    "lon": ("经度（提交）", "Longitude (as submitted)"),
    "lat": ("纬度（提交）", "Latitude (as submitted)"),
    "crs": ("提交坐标系", "Submitted in"),
}
"""Columns of the facility sheets."""


def header(key: str, labels: Mapping[str, tuple[str, str]] = CHANGE_LABELS) -> str:
    """The bilingual header of a column, ``中文 / English``.

    >>> header("coverage_pp")
    '覆盖率变化（百分点） / Coverage change (percentage points)'
    """
    zh, en = labels[key]
    return f"{zh} / {en}"


def _yes_no(value: Any) -> Any:
    if value is True:
        return "是 / yes"
    if value is False:
        return "否 / no"
    return value


def results_frame(saved: Mapping[str, Any]) -> pd.DataFrame:
    """The per-街道 rows and the district row of a saved scenario (bilingual headers).

    ``saved`` is :class:`~tuoyu_api.schemas.SavedScenarioOut` as a dict.
    """
    rows: list[dict[str, Any]] = []
    district = saved.get("district")
    for change in [*saved.get("changes", []), *([district] if district else [])]:
        row: dict[str, Any] = {"方案 / Scenario": saved["name"]}
        for key in TABLE_FIELDS:
            value = change.get(key)
            row[header(key)] = _yes_no(value) if key.startswith("has_puhui") else value
        rows.append(row)
    columns = ["方案 / Scenario", *(header(k) for k in TABLE_FIELDS)]
    return pd.DataFrame(rows, columns=columns)


def _facility_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            header(k, FACILITY_FIELDS): _yes_no(r.get(k)) if k == "puhui" else r.get(k)
            for k in FACILITY_FIELDS
        }
        for r in records
    ]
    return pd.DataFrame(rows, columns=[header(k, FACILITY_FIELDS) for k in FACILITY_FIELDS])


def csv_bytes(saved: Mapping[str, Any]) -> bytes:
    """The per-街道 table as formula-safe UTF-8 CSV with BOM."""
    text = neutralise_frame(results_frame(saved)).to_csv(
        index=False, lineterminator="\n", na_rep=""
    )
    return text.encode("utf-8-sig")


def _sheet(wb: Workbook, title: str, frame: pd.DataFrame, *, first: bool = False) -> None:
    ws = wb.active if first else wb.create_sheet()
    assert ws is not None  # a new workbook has an active sheet
    ws.title = title
    safe = neutralise_frame(frame)
    ws.append([str(c) for c in safe.columns])
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
    for values in safe.itertuples(index=False):
        ws.append([None if v is None or (isinstance(v, float) and v != v) else v for v in values])
    for i, column in enumerate(safe.columns, start=1):
        width = max([len(str(column)), *(len(str(v)) for v in safe.iloc[:, i - 1].tolist())])
        ws.column_dimensions[get_column_letter(i)].width = min(max(10, width * 1.2), 50)
    ws.freeze_panes = "A2"


def xlsx_bytes(saved: Mapping[str, Any]) -> bytes:
    """The scenario as an Excel workbook (four sheets, every text cell formula-safe)."""
    wb = Workbook()
    _sheet(wb, "街道对比", results_frame(saved), first=True)
    _sheet(wb, "新增机构", _facility_frame(saved.get("add", [])))
    removed = saved.get("removed_records") or [{"id": fid} for fid in saved.get("remove", [])]
    _sheet(wb, "关闭机构", _facility_frame(removed))
    about = [
        ("方案 / Scenario", saved["name"]),
        ("编号 / Id", saved["id"]),
        ("研究区 / Area", saved["area"]),
        ("保存人 / Saved by", saved["author"]),
        ("保存时间（UTC）/ Saved at (UTC)", str(saved["created_at"])),
        ("备注 / Note", saved.get("note")),
        ("新增机构 / Facilities added", saved.get("additions")),
        ("关闭机构 / Facilities left out", saved.get("removals")),
        ("登记库变更序号 / Registry change number", saved.get("registry_seq")),
        ("3岁以下覆盖人数算法 / Under-3 covered", saved.get("under3_method")),
        (
            "说明 / Note",
            "情景模拟不修改托育机构登记库；结果为保存时计算 / a what-if never changes the "
            "facility registry; results as computed when saved",
        ),
    ]
    ws = wb.create_sheet("说明")
    for key, value in about:
        ws.append([neutralise_text(key), neutralise_text(value)])
    ws.column_dimensions["A"].width = 36
    ws.column_dimensions["B"].width = 80
    wb.properties.creator = "tuoyu-coverage"
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def geojson_bytes(saved: Mapping[str, Any], units: Mapping[str, Any] | None = None) -> bytes:
    """The scenario as a GeoJSON FeatureCollection (WGS84).

    Parameters
    ----------
    saved
        The saved scenario (:class:`~tuoyu_api.schemas.SavedScenarioOut` as a dict, with
        ``removed_records`` and ``isochrones`` from its stored results).
    units
        The area's 街道 polygons (GeoJSON FeatureCollection in WGS84, ``code`` property)
        or ``None``: each gets its before/after figures.
    """
    features: list[dict[str, Any]] = []
    base = {"scenario": saved["name"], "scenario_id": saved["id"]}
    for record in saved.get("add", []):
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [record.get("lon_wgs84"), record.get("lat_wgs84")],
                },
                "properties": {
                    **base,
                    "feature": "added",
                    "feature_zh": "新增机构",
                    **{k: record.get(k) for k in ("id", "name", "kind", "puhui", "slots")},
                    "submitted": {k: record.get(k) for k in ("lon", "lat", "crs")},
                },
            }
        )
    for record in saved.get("removed_records", []):
        has_point = record.get("lon") is not None and record.get("lat") is not None
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [record["lon"], record["lat"]]}
                if has_point
                else None,
                "properties": {
                    **base,
                    "feature": "removed",
                    "feature_zh": "关闭机构",
                    **{k: record.get(k) for k in ("id", "name", "kind", "puhui", "slots")},
                },
            }
        )
    for iso in (saved.get("isochrones") or {}).get("features", []):
        features.append(
            {
                "type": "Feature",
                "geometry": iso.get("geometry"),
                "properties": {
                    **base,
                    "feature": "isochrone",
                    "feature_zh": "新增机构等时圈",
                    **iso.get("properties", {}),
                },
            }
        )
    by_code = {str(c.get("code")): c for c in saved.get("changes", [])}
    for unit in (units or {}).get("features", []):
        code = str(unit.get("properties", {}).get("code"))
        change = by_code.get(code)
        if change is None:
            continue
        features.append(
            {
                "type": "Feature",
                "geometry": unit.get("geometry"),
                "properties": {**base, "feature": "jiedao", "feature_zh": "街道", **change},
            }
        )
    collection = {
        "type": "FeatureCollection",
        "name": f"{saved['area']} scenario {saved['id']}",
        "properties": {
            **base,
            "area": saved["area"],
            "author": saved["author"],
            "created_at": str(saved["created_at"]),
            "note": saved.get("note"),
            "district": saved.get("district"),
            "registry_seq": saved.get("registry_seq"),
            "crs": "WGS84 (EPSG:4326)",
        },
        "features": features,
    }
    return json.dumps(collection, ensure_ascii=False, default=str).encode("utf-8")


__all__ = ["csv_bytes", "geojson_bytes", "header", "results_frame", "xlsx_bytes"]
