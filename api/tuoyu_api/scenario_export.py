"""Exports of a saved scenario: CSV, XLSX (openpyxl) and GeoJSON.

* **CSV** — UTF-8 with BOM (Excel opens it as UTF-8): one row per 街道 and a district
  row, before and after in people and percentage points; headers "中文 / English".
* **XLSX** — the same table on sheet 街道对比, the added facilities (新增机构), the
  facilities left out (关闭机构) and a sheet 说明 with the name, author, time, note, how
  under-3 children are counted and the registry change the results were computed at.
* **GeoJSON** — WGS84: the added facilities (points), the facilities left out (points),
  the added facilities' isochrones, the gap zones left after the scenario (when saved
  with it) and, where the area has 街道 polygons, each 街道 with its before/after figures.
* **HTML** — one self-contained read-only page (:func:`html_page`): the map (Leaflet
  inlined, no CDN; basemap tiles are the only requests it makes) with the existing and
  planned facilities, the planned isochrones, the gap zones and the 街道 coloured by
  their change; the per-街道 before/after table, the scenario's name, author, date, note
  and registry change number, the data credits; Chinese and English labels; no editing
  controls. Every piece of user text is HTML-escaped on the server and drawn with
  ``textContent`` by the page's script; the embedded JSON escapes ``<``, ``>`` and ``&``.

Every text cell of the CSV and XLSX that holds user text (scenario name, note, author,
facility names) goes through :mod:`tuoyu.outputs.cells`, so a spreadsheet never runs it
as a formula.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import math
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
    for zone in (saved.get("gaps") or {}).get("features", []):
        features.append(
            {
                "type": "Feature",
                "geometry": zone.get("geometry"),
                "properties": {
                    **base,
                    "feature": "gap",
                    "feature_zh": "缺口区（方案实施后15分钟圈外居民）",
                    **zone.get("properties", {}),
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


# --- the read-only HTML page --------------------------------------------------------------------

HTML_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "population": ("常住人口（人）", "residents"),
    "covered_before": ("覆盖居民（人）现状", "covered, now"),
    "covered_after": ("覆盖居民（人）方案", "covered, scenario"),
    "covered_change": ("变化（人）", "change"),
    "under3_covered_change": ("覆盖3岁以下变化（人）", "under-3 covered, change"),
    "coverage_pct_before": ("覆盖率（%）现状", "coverage, now"),
    "coverage_pct_after": ("覆盖率（%）方案", "coverage, scenario"),
    "coverage_pp": ("变化（百分点）", "change (pp)"),
    "puhui_coverage_pp": ("普惠覆盖率变化（百分点）", "普惠 coverage change (pp)"),
    "facilities_before": ("托育机构（家）现状", "facilities, now"),
    "facilities_after": ("托育机构（家）方案", "facilities, scenario"),
}
"""Columns of the per-街道 table of the HTML page (after the 街道's name), short
bilingual headers (the full ones are :data:`~tuoyu_api.scenario_service.CHANGE_LABELS`)."""
_PEOPLE: Final = frozenset({"population", "covered_before", "covered_after"})
_SIGNED_PEOPLE: Final = frozenset({"covered_change", "under3_covered_change"})
_PERCENT: Final = frozenset({"coverage_pct_before", "coverage_pct_after"})
_POINTS: Final = frozenset({"coverage_pp", "puhui_coverage_pp"})


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (``<``, ``>``, ``&`` escaped).

    >>> script_json({"name": "</script><b>"})
    '{"name": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    """
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _esc(value: Any) -> str:
    return "" if value is None else html.escape(str(value), quote=True)


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _half_up(value: float) -> int:
    """Whole number, halves rounded up (as the pages' ``Math.round``)."""
    return math.floor(value + 0.5)


def fmt_people(value: Any) -> str:
    """People as a whole number with thousands separators (``—`` unknown).

    >>> fmt_people(12345.6), fmt_people(None)
    ('12,346', '—')
    """
    number = _finite(value)
    return "—" if number is None else f"{_half_up(number):,}"


def fmt_signed(value: Any, digits: int = 0) -> str:
    """A change with its sign (``+1,234``, ``−0.25``, ``0``; ``—`` unknown).

    >>> fmt_signed(1234.4), fmt_signed(-0.254, 2), fmt_signed(0.004, 2)
    ('+1,234', '−0.25', '0.00')
    """
    number = _finite(value)
    if number is None:
        return "—"
    if digits:
        rounded = round(number, digits)
        if rounded == 0:
            return f"{0:.{digits}f}"
        return ("+" if rounded > 0 else "−") + f"{abs(rounded):,.{digits}f}"
    whole = _half_up(number)
    if whole == 0:
        return "0"
    return ("+" if whole > 0 else "−") + f"{abs(whole):,}"


def _fmt(key: str, value: Any) -> str:
    if key in _PEOPLE:
        return fmt_people(value)
    if key in _SIGNED_PEOPLE:
        return fmt_signed(value)
    if key in _POINTS:
        return fmt_signed(value, 2)
    number = _finite(value)
    if number is None:
        return "—"
    if key in _PERCENT:
        return f"{number:.2f}"
    return f"{_half_up(number):,}"


def _trend(key: str, value: Any) -> str:
    number = _finite(value)
    if key not in _SIGNED_PEOPLE | _POINTS or number is None:
        return ""
    return " up" if number > 1e-9 else " down" if number < -1e-9 else " same"


def _th(zh: str, en: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<th{klass}>{_esc(zh)}<br><span class="en">{_esc(en)}</span></th>'


def _changes_table(saved: Mapping[str, Any]) -> str:
    head = [_th("街道", "Sub-district (街道)", "text")]
    head += [_th(zh, en) for zh, en in HTML_FIELDS.values()]
    rows = []
    district = saved.get("district")
    entries = [(c, False) for c in saved.get("changes", [])]
    if district:
        entries.append((district, True))
    for change, is_district in entries:
        code = "district" if is_district else change.get("code")
        cells = [f'<td class="text name">{_esc(change.get("name") or change.get("code"))}</td>']
        for key in HTML_FIELDS:
            value = change.get(key)
            number = _finite(value)
            data = "" if number is None else repr(number)
            cells.append(
                f'<td class="{key.replace("_", "-")}{_trend(key, value)}" '
                f'data-value="{_esc(data)}">{_esc(_fmt(key, value))}</td>'
            )
        moved = (_finite(change.get("covered_change")) or 0.0) != 0.0 or change.get(
            "facilities_after"
        ) != change.get("facilities_before")
        klass = "district" if is_district else "changed" if moved else ""
        rows.append(f'<tr class="{klass}" data-code="{_esc(code)}">{"".join(cells)}</tr>')
    return (
        '<div class="scroll"><table id="changes"><thead><tr>'
        + "".join(head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )


def _facilities_table(records: Sequence[Mapping[str, Any]]) -> str:
    if not records:
        return '<p class="muted">无 <span class="en">none</span></p>'
    head = "".join(
        [
            _th("#", "", ""),
            _th("名称", "Name", "text"),
            _th("机构类型", "Kind", "text"),
            _th("普惠", "普惠 (subsidised)"),
            _th("托位（个）", "Slots"),
            _th("经度, 纬度（WGS84）", "lon, lat (WGS84)", "text"),
        ]
    )
    rows = []
    for i, r in enumerate(records, start=1):
        lon, lat = (
            _finite(r.get("lon_wgs84", r.get("lon"))),
            _finite(r.get("lat_wgs84", r.get("lat"))),
        )
        where = "—" if lon is None or lat is None else f"{lon:.6f}, {lat:.6f}"
        flag = r.get("puhui")
        puhui = "是 yes" if flag is True else "否 no" if flag is False else "不详 unknown"
        rows.append(
            f'<tr data-id="{_esc(r.get("id"))}"><td>{i}</td>'
            f'<td class="text">{_esc(r.get("name") or r.get("id"))}</td>'
            f'<td class="text">{_esc(r.get("kind") or "—")}</td><td>{_esc(puhui)}</td>'
            f"<td>{_esc(fmt_people(r.get('slots')))}</td>"
            f'<td class="text">{_esc(where)}</td></tr>'
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _line(zh: str, en: str, text: str, change: str | None = None, ident: str = "") -> str:
    ident_attr = f' id="{ident}"' if ident else ""
    tail = f"（<span{ident_attr}>{_esc(change)}</span>）" if change is not None else ""
    return f'<div>{_esc(zh)} <span class="en">{_esc(en)}</span>：{_esc(text)}{tail}</div>'


def _district_block(saved: Mapping[str, Any], minutes: str) -> str:
    d = saved.get("district") or {}
    lines = [
        _line(
            f"{minutes}分钟覆盖居民",
            "residents within the circle",
            f"{fmt_people(d.get('covered_before'))} → {fmt_people(d.get('covered_after'))} 人",
            fmt_signed(d.get("covered_change")),
            "district-covered",
        ),
        _line(
            "覆盖3岁以下婴幼儿",
            "children under 3 within the circle",
            f"{fmt_people(d.get('under3_covered_before'))} → "
            f"{fmt_people(d.get('under3_covered_after'))} 人",
            fmt_signed(d.get("under3_covered_change")),
            "district-under3",
        ),
        _line(
            "覆盖率",
            "coverage",
            f"{_fmt('coverage_pct_before', d.get('coverage_pct_before'))}% → "
            f"{_fmt('coverage_pct_after', d.get('coverage_pct_after'))}%",
            fmt_signed(d.get("coverage_pp"), 2) + " 个百分点 pp",
            "district-pp",
        ),
        _line(
            "普惠覆盖率",
            "普惠 coverage",
            f"{_fmt('coverage_pct_before', d.get('puhui_coverage_pct_before'))}% → "
            f"{_fmt('coverage_pct_after', d.get('puhui_coverage_pct_after'))}%",
            fmt_signed(d.get("puhui_coverage_pp"), 2) + " 个百分点 pp",
        ),
    ]
    gaps = saved.get("gaps")
    if gaps:
        lines.append(
            _line(
                f"{minutes}分钟圈外居民",
                "residents outside the circle",
                f"{fmt_people(gaps.get('residents_outside_before'))} → "
                f"{fmt_people(gaps.get('residents_outside'))} 人，"
                f"缺口区 {gaps.get('zones_before')} → {gaps.get('zones')} 片 / zones",
                fmt_signed(gaps.get("residents_outside_change")),
                "gaps-outside",
            )
        )
    return "".join(lines)


def _meta_rows(rows: Sequence[tuple[str, str, Any, str]]) -> str:
    out = []
    for zh, en, value, ident in rows:
        out.append(
            f'<tr><th class="text">{_esc(zh)} <span class="en">{_esc(en)}</span></th>'
            f'<td class="text" id="{ident}">{_esc(value if value is not None else "—")}</td></tr>'
        )
    return f'<table class="meta"><tbody>{"".join(out)}</tbody></table>'


def _utc_text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def html_page(
    saved: Mapping[str, Any],
    *,
    template: str,
    script: str,
    assets: str,
    area_name: str,
    area_name_en: str | None,
    attribution: str,
    map_data: Mapping[str, Any],
    existing_note: str | None = None,
    exported_at: dt.datetime | None = None,
) -> str:
    """The saved scenario as one self-contained read-only HTML page.

    Parameters
    ----------
    saved
        The saved scenario (:class:`~tuoyu_api.schemas.SavedScenarioOut` as a dict, with
        ``removed_records``, ``isochrones`` and ``gaps`` from its stored results).
    template, script, assets
        The page (``static_workbench/export.html``), its script (``export.js``) and the
        inlined Leaflet and map helpers (:func:`tuoyu.outputs.maps.common.assets_html`).
    area_name, area_name_en
        The study area's names.
    attribution
        The area's data credits (its data files, network included, and the registry).
    map_data
        What the script draws: ``bounds``, ``basemaps``, ``units`` (街道 polygons),
        ``existing`` facilities, ``minutes``, ``walkM`` (the rest comes from ``saved``).
    existing_note
        Said under the map when the existing facilities shown are not those the scenario
        was computed against.
    exported_at
        When the page was written (UTC; now by default).
    """
    exported = exported_at or dt.datetime.now(dt.UTC)
    minutes = f"{float(map_data.get('minutes') or 15):g}"
    gaps = saved.get("gaps")
    data = {
        **map_data,
        "name": saved["name"],
        "changes": {str(c.get("code")): c.get("covered_change") for c in saved.get("changes", [])},
        "added": [
            {
                k: r.get(k)
                for k in ("id", "name", "kind", "puhui", "slots", "lon_wgs84", "lat_wgs84")
            }
            for r in saved.get("add", [])
        ],
        "removed": list(saved.get("remove", [])),
        "isochrones": saved.get("isochrones"),
        "gaps": gaps,
    }
    meta = _meta_rows(
        [
            ("方案", "Scenario", saved["name"], "meta-name"),
            ("编号", "Id", saved["id"], "meta-id"),
            ("研究区", "Study area", f"{area_name} / {area_name_en or saved['area']}", "meta-area"),
            ("保存人", "Saved by", saved["author"], "meta-author"),
            ("保存时间", "Saved at", _utc_text(saved["created_at"]), "meta-date"),
            ("备注", "Note", saved.get("note"), "meta-note"),
            ("登记库变更序号", "Registry change number", saved.get("registry_seq"), "meta-seq"),
            (
                "新增 / 关闭机构",
                "Added / left out",
                f"+{saved.get('additions')} / −{saved.get('removals')}",
                "meta-count",
            ),
            ("导出时间", "Exported at", _utc_text(exported), "meta-exported"),
        ]
    )
    removed = saved.get("removed_records") or [{"id": fid} for fid in saved.get("remove", [])]
    if gaps:
        merge = _finite(gaps.get("merge_distance_m"))
        gap_note = (
            f"缺口区：方案实施后步行 {_fmt('population', gaps.get('minutes'))} 分钟（"
            f"{fmt_people(gaps.get('walk_m'))} 米）内无托育机构的常住人口点，相距不超过 "
            f"{'—' if merge is None else f'{merge:g}'} 米者合并为一片；颜色为每片居民人数。/ Gap "
            f"zones: population points with no facility within the walk after the scenario; "
            f"points within {'—' if merge is None else f'{merge:g}'} m of each other form one "
            "zone; colour = residents per zone."
        )
        if gaps.get("note"):
            gap_note += " " + str(gaps["note"])
    else:
        gap_note = "此方案保存时未记录缺口区 / gap zones were not saved with this scenario"
    replacements = {
        "{{TITLE}}": _esc(saved["name"]),
        "{{AREA_NAME}}": _esc(area_name),
        "{{AREA_NAME_EN}}": _esc(area_name_en or ""),
        "{{META}}": meta,
        "{{DISTRICT}}": _district_block(saved, minutes),
        "{{CHANGES}}": _changes_table(saved),
        "{{ADDED}}": _facilities_table(saved.get("add", [])),
        "{{REMOVED}}": _facilities_table(removed),
        "{{GAP_NOTE}}": _esc(gap_note),
        "{{EXISTING_NOTE}}": _esc(existing_note or ""),
        "{{UNDER3}}": _esc(saved.get("under3_method") or ""),
        "{{MINUTES}}": _esc(minutes),
        "{{CREDITS}}": _esc(attribution),
        "{{ASSETS}}": assets,
        "{{DATA}}": script_json(data),
        "{{SCRIPT}}": script.replace("</script", "<\\/script"),
    }
    # One pass, so text put in cannot be taken for a later placeholder.
    out: list[str] = []
    rest = template
    while "{{" in rest:
        before, _, after = rest.partition("{{")
        key, sep, tail = after.partition("}}")
        token = "{{" + key + "}}"
        out.append(before)
        if sep and token in replacements:
            out.append(replacements[token])
            rest = tail
        else:
            out.append("{{")
            rest = after
    out.append(rest)
    return "".join(out)


__all__ = [
    "csv_bytes",
    "fmt_people",
    "fmt_signed",
    "geojson_bytes",
    "header",
    "html_page",
    "results_frame",
    "script_json",
    "xlsx_bytes",
]
