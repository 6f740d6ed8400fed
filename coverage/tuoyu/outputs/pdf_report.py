"""One-page district report (``report.pdf``): the 街道 map and the figures against targets.

A4 portrait, in Chinese, for a district health committee to file: the choropleth of
15-minute walking coverage per 街道, the headline figures against the profile's targets
(15-minute coverage, 普惠 街道 coverage, 托位 per 1,000 residents, 普惠 share — 不详 when
unknown), each target cited by 文号 and clause (:func:`tuoyu.indicators.citations.cite`),
and the 街道 that fail with by how much. Rendered with matplotlib's PDF backend (no
basemap, no extra dependency); Chinese text needs a CJK font, found through
:mod:`matplotlib.font_manager` — Debian's ``fonts-noto-cjk``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import matplotlib
import pandas as pd
from matplotlib import font_manager
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from tuoyu.errors import DataNotFoundError, InputValidationError
from tuoyu.indicators.citations import cite
from tuoyu.indicators.targets import Profile
from tuoyu.labels import UNKNOWN_ZH, status_zh, zh_text
from tuoyu.outputs.atomic import write_bytes_atomic

CJK_FONT_PACKAGE: Final = "fonts-noto-cjk"
"""Debian package that provides the CJK font the report needs."""
_PREFERRED_FONTS: Final = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Noto Serif CJK SC",
)
A4_PORTRAIT_IN: Final = (8.27, 11.69)
HEADLINE_INDICATORS: Final = (
    "coverage_pct",
    "puhui_jiedao_coverage",
    "slots_per_1000",
    "puhui_slot_share",
)
"""The four figures of the report, in the order printed."""
_STATUS_COLOURS: Final = {"达标": "#C6EFCE", "未达标": "#FFC7CE", "不详": "#EDEDED"}
_MAX_LISTED: Final = 8


def cjk_font_family() -> str:
    """The family name of a CJK font matplotlib knows (Noto Sans CJK SC preferred).

    Chosen by family name rather than file: Debian's Noto CJK is one ``.ttc`` collection
    whose first face is the Japanese one; the name selects the Simplified Chinese face.

    Raises
    ------
    DataNotFoundError
        No CJK font is installed; the message names the Debian package.
    """
    names = {entry.name for entry in font_manager.fontManager.ttflist}
    for name in _PREFERRED_FONTS:
        if name in names:
            return name
    for name in sorted(names):
        if "CJK" in name or "Hei" in name:
            return name
    raise DataNotFoundError(
        "no Chinese (CJK) font found for report.pdf: install the Debian package "
        f"{CJK_FONT_PACKAGE} (apt-get install -y {CJK_FONT_PACKAGE}), then delete "
        "matplotlib's font cache (~/.cache/matplotlib) so it is found"
    )


def _font(size: float, bold: bool = False) -> font_manager.FontProperties:
    return font_manager.FontProperties(
        family=cjk_font_family(), size=size, weight="bold" if bold else "normal"
    )


def _plain(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _is_false(value: Any) -> bool:
    """``False`` (also ``0`` or the text ``"False"`` read back from a GeoPackage)."""
    if isinstance(value, str):
        return value.strip().lower() in ("false", "0")
    number = _plain(value)
    return number is not None and number == 0


def _value_text(value: Any, unit: str) -> str:
    number = _plain(value)
    if number is None:
        return UNKNOWN_ZH
    if unit == "%":
        return f"{number:.1f}%"
    if unit == "托位/千人":
        return f"{number:.2f}个/千人"
    return f"{number:,.0f}{unit}"


def headline_rows(summary: Mapping[str, Any], profile: Profile) -> list[tuple[str, ...]]:
    """``(指标, 现状, 目标, 是否达标, 依据)`` of :data:`HEADLINE_INDICATORS`.

    The value is 不详 when the summary has none (e.g. 托位 not registered), never 0.
    """
    indicators: Mapping[str, Any] = summary.get("indicators") or {}
    rows: list[tuple[str, ...]] = []
    for key in HEADLINE_INDICATORS:
        entry: Mapping[str, Any] = indicators.get(key) or {}
        target = profile.target_for(key)
        unit = str(entry.get("unit") or (target.unit if target else ""))
        label = str(entry.get("label_zh") or key)
        value = _value_text(entry.get("value"), unit)
        if value == UNKNOWN_ZH and entry.get("reason"):
            value = f"{UNKNOWN_ZH}（{zh_text(str(entry['reason']))}）"
        rows.append((
            label,
            value,
            target.text if target is not None else "无量化目标",
            status_zh(entry.get("pass")) if target is not None else "—",
            cite(target) if target is not None else "",
        ))  # fmt: skip
    return rows


def _people(value: Any) -> str:
    number = _plain(value)
    return f"（{number:,.0f}人）" if number is not None else ""


def _no_registry(summary: Mapping[str, Any]) -> bool:
    return any(str(item.get("indicator")) == "facilities" for item in summary.get("skipped") or [])


def _shortfall_unknown_cause(frame: pd.DataFrame, summary: Mapping[str, Any]) -> str:
    if _no_registry(summary):
        return "未提供托育机构备案名录"
    if "population" in frame and frame["population"].isna().all():
        return "各街道人口不详（无街道边界，无法分配人口）"
    return "机构托位数未填报"


def failing_lines(table: pd.DataFrame, summary: Mapping[str, Any], profile: Profile) -> list[str]:
    """The 街道 behind each missed target, with by how much (most affected first)."""
    lines: list[str] = []
    if _no_registry(summary):
        lines.append("未提供托育机构备案名录：托位和覆盖率按0家登记机构计算，不代表实际情况")
    frame = pd.DataFrame(table)
    if "has_puhui" in frame and profile.target_for("puhui_jiedao_coverage") is not None:
        lacking = frame[[_is_false(v) for v in frame["has_puhui"]]]
        lacking = lacking.sort_values("population", ascending=False)
        if len(lacking):
            names = "、".join(
                str(r["name"]) + _people(r["population"])
                for _, r in lacking.head(_MAX_LISTED).iterrows()
            )
            more = f"等{len(lacking)}个" if len(lacking) > _MAX_LISTED else ""
            lines.append(f"无普惠托育机构：{names}{more}")
    if "slot_shortfall" in frame:
        short = frame[frame["slot_shortfall"].astype("Float64").fillna(0) >= 0.5]
        short = short.sort_values("slot_shortfall", ascending=False)
        if len(short):
            names = "、".join(
                f"{r['name']}缺{_plain(r['slot_shortfall']) or 0:,.0f}个"
                for _, r in short.head(_MAX_LISTED).iterrows()
            )
            lines.append(f"托位不足（按每千人口{profile.slots_per_1000_target():g}个）：{names}")
        elif frame["slot_shortfall"].isna().all():
            lines.append("托位缺口不详：" + _shortfall_unknown_cause(frame, summary))
    if "coverage_pct" in frame and "uncovered_population" in frame:
        known = frame.dropna(subset=["coverage_pct"])
        worst = known.sort_values("uncovered_population", ascending=False).head(5)
        worst = worst[worst["uncovered_population"].astype(float) >= 0.5]
        if len(worst):
            names = "、".join(
                f"{r['name']}（覆盖{float(r['coverage_pct']):.1f}%，"
                f"{float(r['uncovered_population']):,.0f}人在外）"
                for _, r in worst.iterrows()
            )
            lines.append(f"15分钟步行圈外人口最多：{names}")
    return lines


def coverage_line(table: pd.DataFrame) -> str:
    """Every unit with its 15-minute coverage, lowest first (不详 last).

    Examples
    --------
    >>> coverage_line(pd.DataFrame({"name": ["甲街道", "乙街道", "丙街道"],
    ...                             "coverage_pct": [80.04, None, 45.0]}))
    '丙街道45.0%、甲街道80.0%、乙街道不详'
    """
    pairs = [(str(n), _plain(v)) for n, v in zip(table["name"], table["coverage_pct"], strict=True)]
    known = sorted((p for p in pairs if p[1] is not None), key=lambda p: (p[1], p[0]))
    unknown = [p for p in pairs if p[1] is None]
    return "、".join([f"{n}{v:.1f}%" for n, v in known] + [f"{n}{UNKNOWN_ZH}" for n, _ in unknown])


def _draw_map(
    ax: Any, units: gpd.GeoDataFrame, table: pd.DataFrame, small: bool
) -> ScalarMappable | None:
    frame = units.reset_index(drop=True).copy()
    drawable = ~(frame.geometry.isna() | frame.geometry.is_empty)
    if not drawable.any():
        ax.text(0.5, 0.5, "街道无边界数据，无法绘制分区地图", ha="center", va="center",
                transform=ax.transAxes, fontproperties=_font(11), color="#595959")  # fmt: skip
        ax.set_axis_off()
        return None
    frame["coverage_pct"] = pd.to_numeric(
        pd.Series(table["coverage_pct"].to_numpy(dtype=object)), errors="coerce"
    )
    frame["name"] = table["name"].astype(str).to_numpy()
    norm = Normalize(vmin=0.0, vmax=100.0)
    cmap = matplotlib.colormaps["RdYlGn"]
    frame = frame[drawable.to_numpy()]
    known = frame[frame["coverage_pct"].notna()]
    unknown = frame[frame["coverage_pct"].isna()]
    if len(known):
        known.plot(ax=ax, column="coverage_pct", cmap=cmap, norm=norm, edgecolor="#404040",
                   linewidth=0.6)  # fmt: skip
    if len(unknown):
        unknown.plot(ax=ax, color="#D9D9D9", edgecolor="#404040", linewidth=0.6, hatch="///")
    if not small:
        for _, row in frame.iterrows():
            point = row.geometry.representative_point()
            value = row["coverage_pct"]
            text = row["name"].removesuffix("街道") + (
                f"\n{value:.0f}%" if not math.isnan(value) else f"\n{UNKNOWN_ZH}"
            )
            ax.annotate(text, (point.x, point.y), ha="center", va="center",
                        fontproperties=_font(6.5), color="#1a1a1a")  # fmt: skip
    ax.set_axis_off()
    ax.set_aspect("equal")
    return ScalarMappable(norm=norm, cmap=cmap)


def _draw_table(fig: Figure, rows: Sequence[tuple[str, ...]], top: float) -> float:
    """The headline figures as a bordered table; returns the y below it (figure units)."""
    headers = ("指标", "现状", "目标", "是否达标", "依据（文号、条款）")
    widths = (0.25, 0.2, 0.13, 0.08, 0.34)
    chars = (30, 24, 16, 8, 42)  # display columns per line at 7.5 pt
    cells = [["\n".join(_wrap(text, n)) for text, n in zip(row, chars, strict=True)]
             for row in rows]  # fmt: skip
    lines = [max(c.count("\n") + 1 for c in row) for row in cells]
    line_h = 0.0125
    heights = [0.022] + [line_h * n + 0.008 for n in lines]
    total = sum(heights)
    ax = fig.add_axes((0.05, top - total, 0.9, total))
    ax.set_axis_off()
    table = ax.table(
        cellText=cells, colLabels=list(headers), colWidths=list(widths),
        loc="upper left", cellLoc="left", bbox=Bbox.from_bounds(0, 0, 1, 1),
    )  # fmt: skip
    table.auto_set_font_size(False)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#A6A6A6")
        cell.set_height(heights[row] / total)
        cell.get_text().set_fontproperties(_font(7.5, bold=row == 0))
        if row == 0:
            cell.set_facecolor("#DDEBF7")
        elif col == 3:
            cell.set_facecolor(_STATUS_COLOURS.get(cell.get_text().get_text(), "white"))
    return top - total


def _wrap(text: str, width: int) -> list[str]:
    """Break Chinese text every ``width`` display columns (a CJK character counts two)."""
    lines: list[str] = []
    current, used = "", 0
    for ch in text:
        w = 2 if ord(ch) > 0x2E80 else 1
        if used + w > width:
            lines.append(current)
            current, used = "", 0
        current += ch
        used += w
    if current:
        lines.append(current)
    return lines


def _text_block(fig: Figure, title: str, lines: Sequence[str], top: float, size: float) -> float:
    fig.text(0.05, top, title, fontproperties=_font(size + 1.5, bold=True), va="top")
    y = top - 0.024
    step = size / 72.0 / A4_PORTRAIT_IN[1] * 1.45
    for line in lines:
        for i, piece in enumerate(_wrap(line, 118)):
            fig.text(0.06 if i == 0 else 0.075, y, ("• " if i == 0 else "") + piece,
                     fontproperties=_font(size), va="top")  # fmt: skip
            y -= step
    return y - 0.008


def build_figure(
    table: pd.DataFrame,
    summary: Mapping[str, Any],
    units_gdf: gpd.GeoDataFrame,
    profile: Profile,
) -> Figure:
    """The report page as a matplotlib figure (A4 portrait)."""
    if len(units_gdf) != len(table):
        raise InputValidationError(
            f"{len(units_gdf)} unit polygons but {len(table)} table rows", field="units"
        )
    area: Mapping[str, Any] = summary.get("area") or {}
    name = str(area.get("name") or "本区")
    # a bare Figure (no pyplot): no global state, no display backend needed
    fig = Figure(figsize=A4_PORTRAIT_IN)
    fig.text(0.5, 0.965, f"{name}15分钟托育服务圈评估", ha="center", va="top",
             fontproperties=_font(16, bold=True))  # fmt: skip
    fig.text(0.5, 0.94, f"对照：{profile.title}", ha="center", va="top",
             fontproperties=_font(9))  # fmt: skip
    small = len(table) > 30
    fig.text(0.5, 0.915, "各街道15分钟步行覆盖率（全部托育机构）", ha="center", va="top",
             fontproperties=_font(10, bold=True))  # fmt: skip
    ax = fig.add_axes((0.05, 0.47, 0.78, 0.43))
    mappable = _draw_map(ax, units_gdf, table, small)
    if mappable is not None:
        cax = fig.add_axes((0.86, 0.55, 0.018, 0.28))
        bar = fig.colorbar(mappable, cax=cax)
        bar.ax.set_title("覆盖率\n（%）", fontproperties=_font(7.5), pad=6)
        for tick in bar.ax.get_yticklabels():
            tick.set_fontproperties(_font(7))
    y = _draw_table(fig, headline_rows(summary, profile), 0.455)
    lines = failing_lines(table, summary, profile)
    y = _text_block(fig, "未达标的街道及差距", lines or ["无"], y - 0.015, 8)
    if not small:
        y = _text_block(fig, "各街道15分钟步行覆盖率（由低到高）", [coverage_line(table)], y, 8)
    notes = _footnotes(summary)
    _text_block(fig, "说明", notes, y - 0.01, 7)
    return fig


def _footnotes(summary: Mapping[str, Any]) -> list[str]:
    params: Mapping[str, Any] = summary.get("parameters") or {}
    data: Mapping[str, Any] = summary.get("data") or {}
    lines = []
    speed, metres = _plain(params.get("walk_speed_kmh")), _plain(params.get("threshold_m"))
    if speed is not None and metres is not None:
        lines.append(
            f"步行速度每小时{speed:g}千米，15分钟约{metres:,.0f}米，沿步行路网计算；"
            "覆盖率 = 15分钟内可步行到达托育机构的人口 ÷ 常住人口；“不详”表示数据缺失，不等于0。"
        )
    lines.extend(zh_text(str(a)) for a in data.get("facility_assumptions") or [])
    files = [str(f.get("path")) for f in data.get("files") or [] if f.get("path")]
    if files:
        lines.append("数据文件：" + "、".join(Path(f).name for f in files))
    if summary.get("attribution"):
        lines.append(f"数据署名：{summary['attribution']}")
    lines.append("逐街道数据见 jiedao.xlsx，月度推进表见 progress 表。")
    return lines


def write_district_report(
    out_path: str | Path,
    table: pd.DataFrame,
    summary: Mapping[str, Any],
    units_gdf: gpd.GeoDataFrame,
    profile: Profile,
) -> Path:
    """Write the one-page district report as a PDF (atomic, no creation date inside).

    Parameters
    ----------
    out_path
        Target file (``report.pdf``).
    table, summary
        :func:`~tuoyu.indicators.summary.unit_table` and
        :func:`~tuoyu.indicators.summary.district_summary` results.
    units_gdf
        The unit polygons, in the table's row order (any projected CRS).
    profile
        The target profile (targets cited by 文号 and clause).

    Returns
    -------
    pathlib.Path
        ``out_path``.

    Raises
    ------
    DataNotFoundError
        No CJK font installed (names the Debian package ``fonts-noto-cjk``).
    InputValidationError
        Polygons and table rows differ in number.
    """
    fig = build_figure(table, summary, units_gdf, profile)
    buffer = io.BytesIO()
    with PdfPages(buffer, metadata={"Creator": "tuoyu-coverage", "CreationDate": None}) as pdf:
        pdf.savefig(fig)
    return write_bytes_atomic(Path(out_path), buffer.getvalue())
