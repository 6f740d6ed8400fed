"""Chinese and English labels of the columns people read (tables, maps, the API).

Labels carry the unit, so a header is enough to read a cell. ``meets_<indicator>``
columns get their label from the indicator (see :mod:`tuoyu.indicators.targets`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, Literal

import numpy as np
import pandas as pd

from tuoyu.indicators.targets import INDICATORS
from tuoyu.layers.schema import FACILITY_FIELDS

Language = Literal["zh", "en"]

COLUMN_LABELS: Final[dict[str, tuple[str, str]]] = {
    "unit_names": ("所在街道", "Sub-districts"),
    "new_slots": ("新增托位数（个，较基期）", "New slots since the baseline"),
    "new_puhui_facilities": (
        "新增普惠托育机构数（家，较基期）",
        "New 普惠 facilities since the baseline",
    ),
    # unit table (tuoyu.indicators.summary.UNIT_COLUMNS)
    "code": ("代码", "Code"),
    "name": ("名称", "Name"),
    "population": ("常住人口（人）", "Population"),
    "population_under3": ("3岁以下婴幼儿（人，估算）", "Children under 3 (estimated)"),
    "facilities": ("托育机构数（家）", "Facilities"),
    "puhui_facilities": ("普惠托育机构数（家）", "普惠 facilities"),
    "slots": ("托位数（个）", "Slots"),
    "puhui_slots": ("普惠托位数（个）", "普惠 slots"),
    "enrolled": ("在托人数（人）", "Children enrolled"),
    "slots_per_1000": ("每千人口托位数（个）", "Slots per 1,000 residents"),
    "slot_shortfall": ("托位缺口（个，负值为富余）", "Slot shortfall (negative = surplus)"),
    "puhui_slot_share": ("普惠托位占比（%）", "普惠 share of slots (%)"),
    "utilisation": ("托位使用率（%）", "Utilisation, enrolled ÷ slots (%)"),
    "covered_population": ("15分钟步行覆盖人口（人）", "Population within 15 min walk"),
    "coverage_pct": ("15分钟步行覆盖率（%，全部机构）", "15-min walk coverage, all (%)"),
    "puhui_coverage_pct": ("15分钟步行覆盖率（%，普惠机构）", "15-min walk coverage, 普惠 (%)"),
    "uncovered_population": ("15分钟步行未覆盖人口（人）", "Population outside 15 min walk"),
    "median_walk_min": (
        "到最近机构步行时间中位数（分钟）",
        "Median walk to nearest facility (min)",
    ),
    "has_puhui": ("辖区内有普惠机构", "Has a 普惠 facility"),
    "access_2sfca": ("可达托位指数（2SFCA，托位/婴幼儿）", "2SFCA access (slots per child)"),
    "area_m2": ("面积（平方米）", "Area (m²)"),
    "has_facility": ("辖区内有托育机构", "Has a facility"),
    # gaps
    "gap_id": ("缺口区编号", "Gap area"),
    "points": ("人口点数", "Population points"),
    "unit_codes": ("所在单位代码", "Unit codes"),
    "indicator": ("指标", "Indicator"),
    "label_zh": ("指标名称", "Indicator name"),
    "target": ("目标", "Target"),
    "value": ("现状值", "Value"),
    "people_affected": ("涉及人口（人）", "People affected"),
    "under3_affected": ("涉及3岁以下婴幼儿（人）", "Children under 3 affected"),
    "target_slots": ("目标托位数（个）", "Target slots"),
    "rank": ("排序", "Rank"),
    # population points, isochrones
    "point_id": ("人口点编号", "Population point"),
    "unit_code": ("所在单位代码", "Unit code"),
    "walk_m_all": ("到最近机构步行距离（米）", "Walk to nearest facility (m)"),
    "walk_m_puhui": ("到最近普惠机构步行距离（米）", "Walk to nearest 普惠 facility (m)"),
    "access_2sfca_point": ("可达托位指数（2SFCA）", "2SFCA access"),
    "facility_id": ("机构编号", "Facility"),
    "minutes": ("步行时间（分钟）", "Walking time (min)"),
    "method": ("等时圈算法", "Isochrone method"),
    "n_facilities": ("机构数（家）", "Facilities"),
    "assumed_fields": ("假定字段", "Assumed fields"),
}
"""Column → (Chinese label, English label)."""

for _field, (_dtype, _zh, _en) in FACILITY_FIELDS.items():
    COLUMN_LABELS.setdefault(_field, (_zh, _en))


def label(column: str, language: Language = "zh") -> str:
    """Label of one column; the column name itself when it has none.

    Examples
    --------
    >>> label("slots_per_1000")
    '每千人口托位数（个）'
    >>> label("meets_puhui_slot_share", "en")
    'Meets target: 普惠 share of slots'
    """
    idx = 0 if language == "zh" else 1
    if column in COLUMN_LABELS:
        return COLUMN_LABELS[column][idx]
    if column.startswith("meets_") and column[6:] in INDICATORS:
        ind = INDICATORS[column[6:]]
        return f"是否达标：{ind.label_zh}" if language == "zh" else f"Meets target: {ind.label_en}"
    return column


def labels_for(columns: Iterable[str], language: Language = "zh") -> dict[str, str]:
    """``{column: label}`` for several columns."""
    return {column: label(column, language) for column in columns}


def with_labels(df: pd.DataFrame, language: Language = "zh") -> pd.DataFrame:
    """A copy of ``df`` with its columns renamed to their labels."""
    return df.rename(columns=labels_for(df.columns.astype(str), language))


# --- Chinese wording for reports a committee files (jiedao.xlsx, 附件2, report.pdf) --------

STATUS_ZH: Final[dict[bool | None, str]] = {True: "达标", False: "未达标", None: "不详"}
"""Pass/fail of a target as a committee reads it."""

UNKNOWN_ZH: Final = "不详"
"""What a report prints for an unknown value (never 0)."""

SKIPPED_ZH: Final[dict[str, str]] = {
    "facilities": "托育机构",
    "population": "人口",
    "units": "统计单元",
    "network": "步行路网",
    "facility map": "机构分布图",
    "dashboard": "指标地图",
    "gaps": "覆盖缺口",
    "isochrones": "等时圈",
    "report.pdf": "区级一页报告",
    "coverage_pct per 街道": "各街道15分钟覆盖率",
    "slots_per_1000 per 街道": "各街道每千人口托位数",
}
"""Steps a run can skip (``summary["skipped"][i]["indicator"]`` that are not indicators)."""

UNUSABLE_ZH: Final[dict[str, str]] = {
    "facilities_2sfca_without_demand": "周边无需求人口、未计入可达托位指数的机构",
    "facilities_enrolled_unknown": "在托人数不详的机构",
    "facilities_excluded_2sfca_slots_unknown": "托位数不详、未计入可达托位指数的机构",
    "facilities_outside_units": "位于统计单元以外的机构",
    "facilities_puhui_unknown": "普惠属性不详的机构",
    "facilities_slots_unknown": "托位数不详的机构",
    "population_points_outside_units": "位于统计单元以外的人口点",
    "population_points_population_unknown": "人口数不详的人口点",
    "population_points_under3_unknown": "3岁以下人口不详的人口点",
    "population_points_walk_puhui_unknown": "到普惠机构步行距离不详的人口点",
    "population_points_walk_unknown": "步行距离不详的人口点（不在路网上）",
    "population_points_without_jiedao": "无街道归属的人口点",
    "facilities_jiedao_unmatched": "街道无法匹配的机构（未计入任何街道）",
    "facilities_new_slots_unknown": "新增托位不详的机构（某期托位数不详）",
    "facilities_new_puhui_unknown": "新增普惠情况不详的机构",
}
"""``summary["unusable"]`` keys → what was not usable, in Chinese."""

FILE_ROLES_ZH: Final[dict[str, str]] = {
    "facilities": "托育机构",
    "land use": "土地利用现状",
    "network": "步行路网",
    "population": "人口",
    "population cells": "人口网格",
    "population weights": "人口权重",
    "population totals": "人口总数",
    "units": "街道（统计单元）",
    "outline": "区界",
    "buildings": "建筑",
    "candidates": "候选选址",
}
"""``summary["data"]["files"][i]["role"]`` → Chinese."""

_REASONS_ZH: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(pattern), zh)
    for pattern, zh in (
        (r"^no walking network", "无步行路网，未计算15分钟指标"),
        (r"^no \[facilities\] file", "未提供托育机构名录，无登记机构"),
        (r"^no registered facilities to show", "无登记机构，未绘制机构分布图"),
        (r"^no units to show", "无统计单元，未绘制指标地图"),
        (r"^no \[population\] section", "未提供人口数据"),
        (r"^no population layer usable", "无可用人口数据"),
        (r"^no 街道 polygons, outline or network", "无街道边界、区界或路网，无法划分统计单元"),
        (r"^no units given", "未提供统计单元，无人口点"),
        (
            r"^under-3 population = ([\d.]+)% of the population where no per-unit",
            r"未提供分单元数据的，3岁以下人口按总人口的\1%估算",
        ),
        (r"^under-3 population = ([\d.]+)% of the population", r"3岁以下人口按总人口的\1%估算"),
        (r"^target has no number in the source", "目标无量化数值，不判定是否达标"),
        (r"^not computable from the inputs", "输入数据不足，无法计算"),
        (r"^(\d+) points on a shared border", r"\1个位于单元边界上的人口点计入第一个单元"),
        (r"^unit totals spread by point weights", "单元人口总数按人口点权重分配"),
    )
)


def skipped_label(key: str) -> str:
    """Chinese name of a skipped step: an indicator, ``"<indicator> per 街道"`` or a step.

    >>> skipped_label("coverage_pct per 街道"), skipped_label("facility map")
    ('15分钟步行覆盖人口占比（全部机构）（分街道）', '机构分布图')
    """
    base, per_unit = (key[: -len(" per 街道")], True) if key.endswith(" per 街道") else (key, False)
    if base in INDICATORS:
        return INDICATORS[base].label_zh + ("（分街道）" if per_unit else "")
    return SKIPPED_ZH.get(key, key)


def zh_text(text: str) -> str:
    """The Chinese wording of a reason or assumption the library wrote.

    Known English-only sentences are translated; a bilingual ``"English / 中文"``
    sentence gives its Chinese half; anything else is returned unchanged (so nothing is
    hidden, and the report tests catch a new untranslated sentence).

    Examples
    --------
    >>> zh_text("no walking network in the study area's data ([network] path): …")
    '无步行路网，未计算15分钟指标'
    >>> zh_text("no slots / 托位数为0")
    '托位数为0'
    >>> zh_text("区总人口按住宅建筑面积分配 / district total spread over residential buildings")
    '区总人口按住宅建筑面积分配'
    >>> zh_text("under-3 population = 1.50% of the population")
    '3岁以下人口按总人口的1.50%估算'
    """
    stripped = text.strip()
    for pattern, zh in _REASONS_ZH:
        match = pattern.match(stripped)
        if match:
            return match.expand(zh)
    if " / " in stripped:
        # bilingual either way round: keep the half with the most Chinese characters
        halves = [h.strip() for h in stripped.split(" / ")]
        return max(halves, key=lambda h: (sum("\u4e00" <= ch <= "\u9fff" for ch in h), -len(h)))
    return stripped


def status_zh(passed: object) -> str:
    """``True`` → 达标, ``False`` → 未达标, anything else (``None``, NA) → 不详.

    >>> status_zh(True), status_zh(False), status_zh(None)
    ('达标', '未达标', '不详')
    """
    if isinstance(passed, (bool, np.bool_)):
        return STATUS_ZH[bool(passed)]
    return STATUS_ZH[None]
