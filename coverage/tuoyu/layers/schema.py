"""Canonical field names and vocabularies shared by loaders, indicators, maps and the API.

The facility registry schema follows GUIDE §4 (托育机构备案). Unknown values stay null
(never 0); every indicator reports how many records it could not use.
"""

from __future__ import annotations

from typing import Final

# --- facility registry ------------------------------------------------------------------

FACILITY_KINDS: Final[dict[str, str]] = {
    "托幼一体": "Kindergarten nursery class (托幼一体 幼儿园托班)",
    "社区托育点": "Community childcare point",
    "用人单位办托": "Employer-run childcare",
    "社会力量办托": "Privately run childcare centre",
    "综合托育服务中心": "Comprehensive childcare service centre",
    "家庭托育点": "Home-based childcare",
    "照护驿站": "Care station",
}
"""Facility kinds (Chinese key → English label)."""

SERVICE_MODES: Final[dict[str, str]] = {
    "全日托": "full-day",
    "半日托": "half-day",
    "计时托": "hourly",
    "临时托": "temporary",
}

AGE_CLASSES: Final[dict[str, tuple[str, int, int]]] = {
    "slots_infant": ("乳儿班", 6, 12),
    "slots_toddler": ("托小班", 12, 24),
    "slots_preschool": ("托大班", 24, 36),
}
"""Slot columns by class: column → (Chinese class name, from month, to month)."""

OWNERSHIP: Final[dict[str, str]] = {"公办": "public", "民办": "private"}

FACILITY_FIELDS: Final[dict[str, tuple[str, str, str]]] = {
    # field: (dtype, Chinese label, English label)
    "id": ("str", "编号", "ID"),
    "name": ("str", "机构名称", "Name"),
    "address": ("str", "地址", "Address"),
    "jiedao": ("str", "街道", "Subdistrict"),
    "district_code": ("str", "区县代码", "District code"),
    "lon": ("float", "经度", "Longitude"),
    "lat": ("float", "纬度", "Latitude"),
    "crs": ("str", "坐标系", "Coordinate system"),
    "kind": ("str", "机构类型", "Kind"),
    "puhui": ("bool", "普惠", "Subsidised (普惠)"),
    "ownership": ("str", "公办/民办", "Public/private"),
    "slots_infant": ("int", "乳儿班托位", "Infant-class slots (6–12 m)"),
    "slots_toddler": ("int", "托小班托位", "Toddler-class slots (12–24 m)"),
    "slots_preschool": ("int", "托大班托位", "Pre-school-class slots (24–36 m)"),
    "slots": ("int", "托位数", "Slots"),
    "enrolled": ("int", "在托人数", "Children enrolled"),
    "service_modes": ("str", "服务模式", "Service modes"),
    "status": ("str", "备案状态", "Registration status"),
    "registered_on": ("date", "备案日期", "Registration date"),
}
"""Every facility field after loading (WGS84 lon/lat; geometry in the metric CRS)."""

MAX_SLOTS_PER_FACILITY: Final = 2000
"""Most 托位 one facility (and each of its classes) may register: more is a typing error."""

MAX_ENROLLED_PER_FACILITY: Final = 2000
"""Most children one facility may report as enrolled (在托)."""

DISTRICT_CODE_DIGITS: Final = 6
"""A district (区县) code is 6 digits (GB/T 2260)."""

ASSUMED_COLUMN: Final = "assumed_fields"
"""Facility column listing the fields filled from the area's ``[facilities] defaults``."""

# --- units, population, reach -----------------------------------------------------------

UNIT_CODE: Final = "code"
UNIT_NAME: Final = "name"
POPULATION: Final = "population"
POPULATION_UNDER3: Final = "population_under3"

ISOCHRONE_COLUMNS: Final = ("facility_id", "minutes", "geometry")
"""Columns of an isochrone GeoDataFrame: one row per facility and threshold."""

REJECTS_COLUMNS: Final = ("file", "row", "field", "value", "reason")
"""Columns of ``rejects.csv``."""
