"""Chinese and English labels of the columns people read (tables, maps, the API).

Labels carry the unit, so a header is enough to read a cell. ``meets_<indicator>``
columns get their label from the indicator (see :mod:`tuoyu.indicators.targets`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

import pandas as pd

from tuoyu.indicators.targets import INDICATORS
from tuoyu.layers.schema import FACILITY_FIELDS

Language = Literal["zh", "en"]

COLUMN_LABELS: Final[dict[str, tuple[str, str]]] = {
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
