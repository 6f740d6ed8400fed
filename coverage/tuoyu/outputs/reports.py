"""Report files: the tables, summary, maps layers and the monthly progress sheet.

Every writer is atomic (:mod:`tuoyu.outputs.atomic`) and deterministic: the same inputs give
byte-identical ``jiedao.csv``, ``jiedao.xlsx``, ``summary.json``, GeoJSON and progress
sheets (the workbook's creation/modification times and the zip entry times are fixed; no
run time is written anywhere). ``coverage.gpkg`` is written with GDAL's
``OGR_CURRENT_DATE`` fixed for the same reason.

Files (see :func:`write_reports`):

* ``jiedao.csv`` — the unit table, UTF-8 with BOM (Excel opens the Chinese names
  correctly), column keys as headers, empty cells for unknown values;
* ``jiedao.xlsx`` — the same table with Chinese headers, plus a 说明 sheet (parameters,
  assumptions, what was skipped);
* ``summary.json`` — :func:`tuoyu.indicators.summary.district_summary`, sorted keys, UTF-8;
* ``gaps.geojson``, ``isochrones.geojson`` — WGS84 (RFC 7946) with a top-level
  ``attribution`` member when OSM data was used;
* ``coverage.gpkg`` — layers ``units``, ``facilities``, ``population``, ``gaps``,
  ``isochrones`` (those given), in their metric CRS;
* ``progress_YYYY-MM.xlsx`` — 托位数发展工作落实情况推进表 in the layout of 附件2 of
  渝北府办发〔2022〕30号 (policy file 004).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from tuoyu.errors import InputValidationError
from tuoyu.labels import Language, label
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


def _number_format(column: str) -> str | None:
    if column in ("facilities", "puhui_facilities", "slots", "puhui_slots", "enrolled", "points"):
        return "0"
    if column.endswith(("_pct", "_share")) or column in ("utilisation", "slots_per_1000"):
        return "0.00"
    if column in ("population", "population_under3", "covered_population",
                  "uncovered_population", "slot_shortfall", "people_affected",
                  "target_slots"):  # fmt: skip
        return "0"
    return None


def write_xlsx(
    table: pd.DataFrame,
    path: str | Path,
    *,
    sheet_title: str = "街道指标",
    notes: Sequence[str] = (),
    language: Language = "zh",
    extra_sheets: Mapping[str, pd.DataFrame] | None = None,
) -> Path:
    """Write a table to Excel with Chinese (or English) headers, deterministically.

    Parameters
    ----------
    table
        The unit table (or any table); the geometry column is dropped.
    path
        Target file.
    sheet_title
        Name of the first sheet.
    notes
        Lines for a second sheet 说明 (parameters, assumptions, skipped steps).
    language
        Header language.
    extra_sheets
        More tables, sheet name → table (e.g. gaps ranked, slot shortfall).
    """
    wb = Workbook()
    ws = wb.active
    ws.title = sheet_title[:31]
    sheets: dict[str, pd.DataFrame] = {ws.title: table}
    for name, frame in (extra_sheets or {}).items():
        sheets[name[:31]] = frame
    first = True
    for name, frame in sheets.items():
        sheet = ws if first else wb.create_sheet(name)
        first = False
        data = _rounded(pd.DataFrame(frame).drop(columns=["geometry"], errors="ignore"))
        columns = [str(c) for c in data.columns]
        sheet.append([neutralise_text(label(c, language)) for c in columns])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
            cell.alignment = Alignment(wrap_text=True, vertical="center")
        for row in data.itertuples(index=False, name=None):
            sheet.append([neutralise_text(_plain_value(v)) for v in row])
        for idx, column in enumerate(columns, start=1):
            letter = get_column_letter(idx)
            sheet.column_dimensions[letter].width = max(10, min(28, len(label(column)) * 2))
            fmt = _number_format(column)
            if fmt:
                for (cell,) in sheet.iter_rows(min_row=2, min_col=idx, max_col=idx):
                    cell.number_format = fmt
        sheet.freeze_panes = "C2" if len(columns) > 2 else "A2"
    if notes:
        info = wb.create_sheet("说明")
        info.column_dimensions["A"].width = 120
        for line in notes:
            info.append([neutralise_text(line)])
    return _save_workbook(wb, Path(path))


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
            out[column] = pd.Series(
                [_plain_value(v) for v in series], index=out.index, dtype=object
            )
        elif isinstance(series.dtype, pd.Int64Dtype) or isinstance(series.dtype, pd.Float64Dtype):
            out[column] = series.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            out[column] = series.dt.strftime("%Y-%m-%d").astype(object)
        elif isinstance(series.dtype, pd.StringDtype):
            out[column] = pd.Series(
                [_plain_value(v) for v in series], index=out.index, dtype=object
            )
    return out


def write_geojson(
    gdf: gpd.GeoDataFrame,
    path: str | Path,
    *,
    attribution: str | None = None,
    name: str | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write a layer as RFC 7946 GeoJSON in WGS84 (coordinates rounded to 1e-7°).

    ``attribution`` (e.g. "© OpenStreetMap contributors"), ``name`` and ``notes`` become
    top-level members of the FeatureCollection.
    """
    if gdf.crs is None:
        raise InputValidationError(f"layer for {path} has no CRS", field="geometry")
    plain = _plain_frame(gdf.to_crs(4326))
    plain = plain.set_geometry(shapely.transform(plain.geometry.values, lambda xy: np.round(xy, 7)))
    collection: dict[str, Any] = plain.to_geo_dict(na="null", show_bbox=False, drop_id=True)
    if name:
        collection["name"] = name
    if attribution:
        collection["attribution"] = attribution
    if notes:
        collection["notes"] = list(notes)
    text = json.dumps(_json_ready(collection), ensure_ascii=False, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def write_gpkg(path: str | Path, layers: Mapping[str, gpd.GeoDataFrame | None]) -> Path:
    """Write several layers into one GeoPackage, atomically (all or nothing).

    Layers that are ``None`` are left out; empty layers are written (with their columns).
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
                    frame, building, layer=layer, driver="GPKG", geometry_type=geometry_type
                )
            if building.exists():
                os.replace(building, tmp)
        finally:
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})
            if building.exists():
                building.unlink()
    return target


# --- the monthly progress sheet (附件2 of policy file 004) --------------------------------


def _fmt(value: Any, digits: int = 0) -> str | None:
    v = _plain_value(value)
    if v is None:
        return None
    return f"{float(v):,.{digits}f}"


def _zh(text: str) -> str:
    """The Chinese half of a bilingual ``"English / 中文"`` sentence (else the text)."""
    return text.rsplit(" / ", 1)[-1] if " / " in text else text


def _indicator(summary: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    indicators: Mapping[str, Any] = summary.get("indicators", {})
    return indicators.get(key, {}) or {}


def _target_text(summary: Mapping[str, Any], key: str) -> str | None:
    target = _indicator(summary, key).get("target")
    return target.get("text") if target else None


def progress_rows(
    table: pd.DataFrame,
    summary: Mapping[str, Any],
    *,
    gaps: gpd.GeoDataFrame | None = None,
    lead_unit: str = "区卫生健康委",
    max_unit_rows: int = 60,
) -> list[dict[str, str]]:
    """Rows of the progress sheet, filled from the results.

    Three district rows (slots, 普惠 coverage of 街道, the 15-minute circle), then one row
    per unit led by the 街道 itself (附件1 item 7 of policy 004 gives 镇街 their own slot
    task) — unless there are more than ``max_unit_rows`` units (e.g. an H3 grid), where a
    row points to ``jiedao.xlsx`` instead. 联系人（电话） is left for the user.
    """
    totals: Mapping[str, Any] = summary.get("totals", {})
    params: Mapping[str, Any] = summary.get("parameters", {})
    data: Mapping[str, Any] = summary.get("data", {}) or {}
    remark = "；".join(_zh(a) for a in data.get("facility_assumptions", []) or [])
    per_1000 = params.get("slots_per_1000_for_shortfall", 4.5)
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
    task = f"托位数达到每千人口{per_1000:g}个" + (f"（约{target_slots}个）" if target_slots else "")
    if spk.get("value") is not None:
        done = f"现有托位{_fmt(totals.get('slots'))}个，每千人口{_fmt(spk['value'], 2)}个"
        if share.get("value") is not None:
            done += f"；普惠托位{_fmt(totals.get('puhui_slots'))}个，占比{_fmt(share['value'], 1)}%"
        if util.get("value") is not None:
            done += f"；在托{_fmt(totals.get('enrolled'))}人，使用率{_fmt(util['value'], 1)}%"
        shortfall = totals.get("slot_shortfall")
        if shortfall is not None and shortfall > 0:
            problem = f"托位缺口约{_fmt(shortfall)}个"
            worst = (
                table.dropna(subset=["slot_shortfall"])
                .sort_values(["slot_shortfall", "code"], ascending=[False, True])
                .head(3)
            )
            worst = worst[worst["slot_shortfall"] > 0]
            plan = (
                "优先在缺口最大的" + "、".join(worst["name"].astype(str)) + "增加托位"
                if len(worst)
                else "继续增加托位"
            )
        else:
            problem, plan = "无", "保持托位供给，提高普惠托位占比"
    else:
        done = "托位数不详：" + _zh(str(spk.get("reason", "数据缺失")))
        problem = "机构托位数未填报，无法核算每千人口托位数"
        plan = "补齐备案机构托位数、在托人数"
    rows.append({"牵头单位": lead_unit, "主要任务": task, "工作开展情况": done,
                 "存在问题": problem, "下一步工作计划": plan, "备注": remark})  # fmt: skip

    # 2. 普惠 coverage of 街道
    cov = _indicator(summary, "puhui_jiedao_coverage")
    n_units = totals.get("units", len(table))
    target_text = _target_text(summary, "puhui_jiedao_coverage")
    task = "街道普惠性托育机构覆盖" + (f"（目标{target_text}）" if target_text else "")
    if cov.get("value") is not None:
        done = (
            f"{totals.get('units_with_puhui')}/{n_units}个单位辖区内有普惠托育机构"
            f"（{_fmt(cov['value'], 1)}%）"
        )
        lacking = table[table["has_puhui"].eq(False).fillna(False).astype(bool)]
        names = "、".join(lacking["name"].astype(str).head(20))
        more = f"等{len(lacking)}个" if len(lacking) > 20 else ""
        problem = f"尚无普惠托育机构：{names}{more}" if len(lacking) else "无"
        plan = f"在{names}{more}布点普惠托育机构" if len(lacking) else "巩固普惠覆盖"
    else:
        done = "未计算：" + _zh(str(cov.get("reason", "数据缺失")))
        problem, plan = "机构普惠属性不详", "核实机构普惠认定情况"
    rows.append({"牵头单位": lead_unit, "主要任务": task, "工作开展情况": done,
                 "存在问题": problem, "下一步工作计划": plan, "备注": remark})  # fmt: skip

    # 3. the 15-minute circle
    walk = _indicator(summary, "coverage_pct")
    threshold_min = params.get("threshold_min")
    threshold_m = params.get("threshold_m")
    task = "建设15分钟托育服务圈"
    if walk.get("value") is not None:
        done = (
            f"步行{_fmt(threshold_min)}分钟（{_fmt(threshold_m)}米，"
            f"{params.get('walk_speed_kmh')}km/h）覆盖人口{_fmt(walk['value'], 1)}%"
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
        plan = "在缺口区域（见 gaps.geojson）新增托育点" if uncovered else "保持覆盖"
        if summary.get("approximate"):
            remark_walk = "直线距离估算，结果为近似值"
            rows_remark = f"{remark}；{remark_walk}" if remark else remark_walk
        else:
            rows_remark = remark
    else:
        done = "未计算：" + _zh(str(walk.get("reason", "无步行路网")))
        problem, plan, rows_remark = "缺少步行路网数据", "补充步行路网后测算", remark
    rows.append({"牵头单位": lead_unit, "主要任务": task, "工作开展情况": done,
                 "存在问题": problem, "下一步工作计划": plan, "备注": rows_remark})  # fmt: skip

    # 4. per unit
    if len(table) > max_unit_rows:
        rows.append({"牵头单位": "各单位", "主要任务": "逐单位托位与覆盖情况",
                     "工作开展情况": f"共{len(table)}个统计单位，逐单位结果见 jiedao.xlsx",
                     "存在问题": "", "下一步工作计划": "", "备注": remark})  # fmt: skip
        return rows
    for r in table.to_dict(orient="records"):
        target = _fmt((_plain_value(r["population"]) or 0) * per_1000 / 1000.0)
        task = f"辖区托位达到约{target}个（每千人口{per_1000:g}个）"
        parts = [f"托育机构{r['facilities']}家"]
        if _plain_value(r["puhui_facilities"]) is not None:
            parts[-1] += f"（普惠{r['puhui_facilities']}家）"
        parts.append(
            f"托位{_fmt(r['slots'])}个" if _plain_value(r["slots"]) is not None else "托位数不详"
        )
        if _plain_value(r["coverage_pct"]) is not None:
            parts.append(f"15分钟步行覆盖{_fmt(r['coverage_pct'], 1)}%")
        problems, plans = [], []
        shortfall = _plain_value(r["slot_shortfall"])
        if shortfall is not None and shortfall > 0:
            problems.append(f"托位缺口约{_fmt(shortfall)}个")
            plans.append(f"新增托位约{_fmt(shortfall)}个")
        elif _plain_value(r["slots"]) is None:
            problems.append("托位数未填报")
            plans.append("核实补报托位数")
        if _plain_value(r["has_puhui"]) is False:
            problems.append("辖区内无普惠托育机构")
            plans.append("引入普惠托育机构")
        uncovered = _plain_value(r["uncovered_population"])
        if uncovered:
            problems.append(f"{_fmt(uncovered)}人在15分钟步行范围外")
            plans.append("在未覆盖区域布点")
        rows.append({
            "牵头单位": str(r["name"]),
            "主要任务": task,
            "工作开展情况": "，".join(parts),
            "存在问题": "；".join(problems) or "无",
            "下一步工作计划": "；".join(plans) or "保持现有服务",
            "备注": remark,
        })  # fmt: skip
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
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for row in rows:
        ws.append([neutralise_text(row.get(h, "") or "") for h in PROGRESS_HEADERS])
    widths = (16, 30, 45, 40, 36, 16, 24)
    for idx, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(idx)].width = width
    for cells in ws.iter_rows(min_row=3):
        for cell in cells:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    return _save_workbook(wb, Path(path))


# --- everything at once -----------------------------------------------------------------


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
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    attribution = summary.get("attribution")
    notes = _notes(summary)
    written: dict[str, Path] = {
        "jiedao.csv": write_csv(table, out / "jiedao.csv"),
        "jiedao.xlsx": write_xlsx(
            table, out / "jiedao.xlsx", notes=notes, extra_sheets=extra_sheets
        ),
        "summary.json": write_summary_json(summary, out / "summary.json"),
    }
    approx = [summary["approximate_note"]] if summary.get("approximate_note") else []
    if gaps is not None:
        written["gaps.geojson"] = write_geojson(
            gaps, out / "gaps.geojson", attribution=attribution, name="gaps", notes=approx
        )
    if isochrones is not None:
        written["isochrones.geojson"] = write_geojson(
            isochrones, out / "isochrones.geojson", attribution=attribution,
            name="isochrones", notes=approx,
        )  # fmt: skip
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
    if any(v is not None for v in layers.values()):
        written["coverage.gpkg"] = write_gpkg(out / "coverage.gpkg", layers)
    area_name = (summary.get("area") or {}).get("name") or "XXX单位"
    rows = progress_rows(table, summary, gaps=gaps)
    written[f"progress_{month}.xlsx"] = write_progress_sheet(
        out / f"progress_{month}.xlsx",
        rows,
        reporting_unit=reporting_unit or area_name,
        month=month,
    )
    return written


def _notes(summary: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    area = summary.get("area") or {}
    profile = summary.get("profile") or {}
    params = summary.get("parameters") or {}
    if area.get("name"):
        lines.append(f"研究区 / Study area: {area.get('name')} ({area.get('code')})")
    if profile.get("name"):
        lines.append(f"目标方案 / Target profile: {profile.get('name')} — {profile.get('title')}")
        lines.append(
            f"依据 / Source: {profile.get('document') or ''} {profile.get('source') or ''}"
        )
    if params:
        lines.append(
            "步行参数 / Walking: "
            + ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if v is not None)
        )
    if summary.get("approximate_note"):
        lines.append(f"近似 / Approximate: {summary['approximate_note']}")
    data = summary.get("data") or {}
    if data.get("population_method"):
        lines.append(f"人口方法 / Population: {data['population_method']}")
    for item in data.get("assumptions") or []:
        lines.append(f"假定 / Assumption: {item}")
    for item in summary.get("skipped") or []:
        lines.append(f"未计算 / Skipped: {item.get('indicator')}: {item.get('reason')}")
    for key, count in sorted((summary.get("unusable") or {}).items()):
        if count:
            lines.append(f"不可用记录 / Unusable records: {key} = {count}")
    for item in data.get("files") or []:
        lines.append(
            f"数据 / Data: {item.get('role')}: {item.get('path')} sha256={item.get('sha256')}"
        )
    if summary.get("attribution"):
        lines.append(str(summary["attribution"]))
    return lines
