"""Request and response models of the service (pydantic), with OpenAPI examples.

Field types and vocabularies come from :mod:`tuoyu.layers.schema`, so the API accepts exactly
what the file loader accepts. Types only are checked here; rules that look at several
fields (lat/lon swapped, outside China, 托位 totals) are in :mod:`tuoyu_api.validation` and
raise :class:`tuoyu.errors.InputValidationError` naming the field.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from tuoyu.layers.schema import (
    FACILITY_FIELDS,
    MAX_ENROLLED_PER_FACILITY,
    MAX_SLOTS_PER_FACILITY,
    SERVICE_MODES,
)

# The vocabularies of tuoyu.layers.schema written out as Literal types (mypy needs literal
# values); tests/api/test_schemas.py checks they equal the shared dictionaries.
FacilityKind = Literal[
    "托幼一体",
    "社区托育点",
    "用人单位办托",
    "社会力量办托",
    "综合托育服务中心",
    "家庭托育点",
    "照护驿站",
]
ServiceMode = Literal["全日托", "半日托", "计时托", "临时托"]
Ownership = Literal["公办", "民办"]
AgeClass = Literal["slots_infant", "slots_toddler", "slots_preschool", "乳儿班", "托小班", "托大班"]
InputCRS = Literal["wgs84", "gcj02", "bd09"]

CHINA_LON = (72.004, 137.8347)
CHINA_LAT = (0.8293, 55.8271)
"""The rough China rectangle of :func:`tuoyu.crs.china.outside_china` (degrees)."""

MAX_COUNT = 100_000
"""Upper bound of 托位 / enrolment counts (keeps values inside a 32-bit column)."""

ID_PATTERN = r"^[^\s/\\?#%\x00-\x1f\x7f]{1,64}$"
"""Facility ids: 1–64 characters, no whitespace, control characters or URL delimiters."""


def _clean_text(value: str) -> str:
    # Both databases refuse NUL and lone surrogates; refuse them here so bad input is a
    # 422, never a database error.
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("control characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text is not valid Unicode (lone surrogate)") from exc
    return _visible(value)


_BLANK_LETTERS = frozenset("\u115f\u1160\u2800\u3164\uffa0")
"""Hangul fillers and the braille blank: letters or symbols that render as nothing."""


def _visible(value: str) -> str:
    # Zero-width, whitespace and control characters only (e.g. "\u200b") would make an id
    # or name that looks empty in every list and map.
    if value and all(
        unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")
        or ch.isspace()
        or ch in _BLANK_LETTERS
        for ch in value
    ):
        raise ValueError(
            "text must contain a visible character (only whitespace, zero-width or "
            "control characters given)"
        )
    return value


def _crs_name(value: Any) -> Any:
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "")
        return {"wgs84": "wgs84", "epsg:4326": "wgs84", "gcj02": "gcj02", "bd09": "bd09"}.get(
            key, value
        )
    return value


def _date_input(value: Any) -> Any:
    # pydantic would read a number as a Unix timestamp; a registry date is written out.
    if isinstance(value, int | float):
        raise ValueError("a date is written as YYYY-MM-DD, not a number")
    return value


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


# Stripped, non-empty, printable strings of bounded length.
Text32 = Annotated[
    str, BeforeValidator(_strip), Field(min_length=1, max_length=32), AfterValidator(_clean_text)
]
Text64 = Annotated[
    str, BeforeValidator(_strip), Field(min_length=1, max_length=64), AfterValidator(_clean_text)
]
Text200 = Annotated[
    str, BeforeValidator(_strip), Field(min_length=1, max_length=200), AfterValidator(_clean_text)
]
Text300 = Annotated[
    str, BeforeValidator(_strip), Field(min_length=1, max_length=300), AfterValidator(_clean_text)
]


FacilityId = Annotated[
    str, Field(pattern=ID_PATTERN, examples=["YZ-TY-0001"]), AfterValidator(_visible)
]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT, strict=True)]
SlotCount = Annotated[int, Field(ge=0, le=MAX_SLOTS_PER_FACILITY, strict=True)]
"""托位 of one facility or class: the file loader's bound (one rule set)."""
EnrolledCount = Annotated[int, Field(ge=0, le=MAX_ENROLLED_PER_FACILITY, strict=True)]
"""Children enrolled in one facility: the file loader's bound."""


def _label(field: str) -> str:
    _dtype, zh, en = FACILITY_FIELDS[field]
    return f"{zh} / {en}"


SAMPLE_FACILITY: dict[str, Any] = {
    "id": "YZ-TY-0001",
    "name": "渝中区解放碑社区托育服务中心",
    "address": "重庆市渝中区民族路 188 号",
    "jiedao": "解放碑街道",
    "district_code": "500103",
    "lon": 106.5775,
    "lat": 29.5583,
    "crs": "wgs84",
    "kind": "综合托育服务中心",
    "puhui": True,
    "ownership": "公办",
    "slots_infant": 10,
    "slots_toddler": 30,
    "slots_preschool": 40,
    "slots": 80,
    "enrolled": 62,
    "service_modes": ["全日托", "临时托"],
    "status": "已备案",
    "registered_on": "2024-03-15",
}
"""A Chinese sample facility used in the OpenAPI examples and the tests."""


class FacilityIn(BaseModel):
    """A facility record as written by a client (POST / PUT).

    Coordinates may be WGS84, GCJ-02 (Amap/Tencent) or BD-09 (Baidu); they are stored
    in WGS84. Unknown values are ``null`` (never 0). Fields left out of the body are
    filled from the study area's ``[facilities] defaults`` and listed in
    ``assumed_fields``; fields sent as ``null`` stay unknown.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SAMPLE_FACILITY]})

    id: FacilityId | None = Field(
        default=None, description=_label("id") + " (generated when omitted on create)"
    )
    name: Text200 | None = Field(default=None, description=_label("name"))
    address: Text300 | None = Field(default=None, description=_label("address"))
    jiedao: Text64 | None = Field(default=None, description=_label("jiedao"))
    district_code: Annotated[str, Field(pattern=r"^\d{6}$")] | None = Field(
        default=None, description=_label("district_code") + " (6 digits)"
    )
    lon: float = Field(
        strict=True,
        allow_inf_nan=False,
        description=_label("lon") + " in the system named by `crs`",
        json_schema_extra={"minimum": CHINA_LON[0], "maximum": CHINA_LON[1]},
    )
    lat: float = Field(
        strict=True,
        allow_inf_nan=False,
        description=_label("lat") + " in the system named by `crs`",
        json_schema_extra={"minimum": CHINA_LAT[0], "maximum": CHINA_LAT[1]},
    )
    crs: Annotated[InputCRS, BeforeValidator(_crs_name)] = Field(
        default="wgs84", description=_label("crs") + ": wgs84, gcj02 (高德/腾讯) or bd09 (百度)"
    )
    kind: FacilityKind | None = Field(default=None, description=_label("kind"))
    puhui: bool | None = Field(default=None, strict=True, description=_label("puhui"))
    ownership: Ownership | None = Field(default=None, description=_label("ownership"))
    slots_infant: SlotCount | None = Field(default=None, description=_label("slots_infant"))
    slots_toddler: SlotCount | None = Field(default=None, description=_label("slots_toddler"))
    slots_preschool: SlotCount | None = Field(default=None, description=_label("slots_preschool"))
    slots: SlotCount | None = Field(
        default=None,
        description=_label("slots")
        + " (when omitted: the sum of the classes sent, if each of them is known; a total"
        " that differs from the classes is refused)",
    )
    enrolled: EnrolledCount | None = Field(default=None, description=_label("enrolled"))
    service_modes: list[ServiceMode] | None = Field(
        default=None, max_length=len(SERVICE_MODES), description=_label("service_modes")
    )
    status: Text32 | None = Field(default=None, description=_label("status"))
    registered_on: Annotated[dt.date, BeforeValidator(_date_input)] | None = Field(
        default=None, description=_label("registered_on") + " (YYYY-MM-DD)"
    )


class PointGeometry(BaseModel):
    """A GeoJSON point (WGS84 longitude, latitude)."""

    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float]


class FacilityProperties(BaseModel):
    """A stored facility: every registry field, coordinates in WGS84."""

    id: str
    area: str
    name: str | None = None
    address: str | None = None
    jiedao: str | None = None
    district_code: str | None = None
    lon: float = Field(description="WGS84 longitude")
    lat: float = Field(description="WGS84 latitude")
    crs: Literal["wgs84"] = Field(default="wgs84", description="system of lon/lat (always WGS84)")
    source_crs: InputCRS = Field(description="system the record was submitted in")
    kind: str | None = None
    kind_en: str | None = Field(default=None, description="English label of `kind`")
    puhui: bool | None = None
    ownership: str | None = None
    slots_infant: int | None = None
    slots_toddler: int | None = None
    slots_preschool: int | None = None
    slots: int | None = None
    enrolled: int | None = None
    service_modes: list[str] | None = None
    status: str | None = None
    registered_on: dt.date | None = None
    assumed_fields: list[str] = Field(
        default_factory=list, description="fields filled from the area's defaults (assumed)"
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class FacilityFeature(BaseModel):
    """A facility as a GeoJSON Feature."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: PointGeometry
    properties: FacilityProperties


class FacilityCollection(BaseModel):
    """Facilities of an area as a GeoJSON FeatureCollection (WGS84, RFC 7946)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    area: str
    features: list[FacilityFeature]
    numberMatched: int = Field(description="facilities matching the filters")
    numberReturned: int = Field(description="features in this page")
    attribution: str = Field(description="where the records come from / 数据来源")


class WalkInfo(BaseModel):
    """Walking parameters of an area."""

    speed_kmh: float
    minutes: list[float]


class AreaInfo(BaseModel):
    """A study area and which layers it has."""

    slug: str = Field(examples=["chongqing-yuzhong"])
    name: str = Field(examples=["重庆市渝中区"])
    name_en: str | None = Field(default=None, examples=["Yuzhong District, Chongqing"])
    code: str = Field(examples=["500103"])
    target_profile: str
    walk: WalkInfo
    layers: dict[str, bool] = Field(
        description="network / units / facilities / population: present in the definition"
    )
    facility_count: int = Field(description="facilities in the registry")


class AuditRecord(BaseModel):
    """One registry write."""

    id: int
    area: str
    facility_id: str
    action: Literal["create", "update", "delete"]
    actor: str
    at: dt.datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class HealthInfo(BaseModel):
    """Liveness and database reachability."""

    status: Literal["ok"]
    version: str
    database: str


class ErrorDetail(BaseModel):
    """The body of every error response."""

    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no facility 'YZ-TY-0009' in area 'chongqing-yuzhong'"])
    field: str | None = Field(default=None, description="the input field at fault, if any")
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail


# --- analysis endpoints -------------------------------------------------------------------

UNIT_CODE_PATTERN = r"^[0-9A-Za-z_.-]{1,32}$"
"""Unit codes: 9-digit 街道 codes or H3 cell ids."""


class NearestFacility(BaseModel):
    """A facility within the walk, with its walking distance and time."""

    facility_id: str = Field(examples=["YZ-TY-0001"])
    name: str | None = Field(default=None, examples=["渝中区解放碑社区托育服务中心"])
    kind: str | None = Field(default=None, examples=["综合托育服务中心"])
    kind_en: str | None = None
    puhui: bool | None = Field(default=None, description="普惠; null = unknown")
    walk_m: float = Field(description="walking distance in metres (network path)")
    walk_min: float = Field(description="walking time in minutes at the area's speed")
    lon: float = Field(description="facility longitude, WGS84")
    lat: float = Field(description="facility latitude, WGS84")
    approximate: bool = Field(description="true for straight-line × detour estimates")


class QueryPoint(BaseModel):
    """The query point as given and in WGS84."""

    lon: float
    lat: float
    crs: InputCRS
    lon_wgs84: float
    lat_wgs84: float


class NearestResponse(BaseModel):
    """Facilities within a walk of the point, nearest first (步行可达的托育机构)."""

    area: str
    point: QueryPoint
    minutes: float
    speed_kmh: float
    walk_limit_m: float = Field(description="minutes × speed: the walking budget in metres")
    method: Literal["network", "straight_line"]
    facilities: list[NearestFacility]
    attribution: str


class IsochroneProperties(BaseModel):
    """What an isochrone polygon means."""

    facility_id: str
    name: str | None = None
    minutes: float
    walk_m: float
    speed_kmh: float
    method: str = Field(description="edge_buffer (exact) or straight_line_circle (approximate)")
    buffer_m: float | None = None
    area_m2: float
    off_network: bool
    approximate: bool
    attribution: str | None = None


class IsochroneFeature(BaseModel):
    """A facility's walking isochrone as a GeoJSON Feature (WGS84)."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon, WGS84")
    properties: IsochroneProperties


class ColumnLabel(BaseModel):
    """A table column with its Chinese and English labels."""

    name: str = Field(examples=["coverage_pct"])
    label_zh: str = Field(examples=["15分钟步行覆盖率（%，全部机构）"])
    label_en: str = Field(examples=["15-min walk coverage, all (%)"])


class UnitsResponse(BaseModel):
    """The per-unit (街道 or H3 hexagon) indicator table."""

    area: str
    units_kind: Literal["jiedao", "jiedao_table", "h3", "none"]
    version: int = Field(description="facility changes applied since the analysis was built")
    columns: list[ColumnLabel]
    units: list[dict[str, Any]] = Field(description="one object per unit; null = unknown")
    unusable: dict[str, Any] = Field(description="records that could not be used, by reason")
    skipped: dict[str, Any] = Field(description="columns left empty, with the reason")
    attribution: str | None = None


class UnitResponse(BaseModel):
    """One unit's row of the indicator table."""

    area: str
    units_kind: Literal["jiedao", "jiedao_table", "h3", "none"]
    version: int
    columns: list[ColumnLabel]
    unit: dict[str, Any]


class GapProperties(BaseModel):
    """People outside the service circle in one connected area."""

    gap_id: int
    population: float | None = None
    population_under3: float | None = None
    points: int | None = None
    unit_codes: str | None = None
    area_m2: float | None = None


class GapFeature(BaseModel):
    """A gap area (GeoJSON Feature, WGS84)."""

    type: Literal["Feature"] = "Feature"
    geometry: dict[str, Any] | None
    properties: GapProperties


class GapCollection(BaseModel):
    """Populated areas outside the 15-minute circle (GeoJSON FeatureCollection, WGS84)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    area: str
    version: int
    threshold_m: float
    features: list[GapFeature]
    columns: list[ColumnLabel]
    skipped: str | None = Field(default=None, description="why no gaps were computed")
    points_walk_unknown: int | None = None
    attribution: str


SCENARIO_EXAMPLE: dict[str, Any] = {
    "add": [
        {
            "name": "规划新增社区托育点",
            "lon": 106.5520,
            "lat": 29.5560,
            "kind": "社区托育点",
            "puhui": True,
            "slots": 40,
        }
    ],
    "remove": [],
}


class ScenarioIn(BaseModel):
    """A what-if: facilities to add (same fields as a registry write) and ids to remove."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SCENARIO_EXAMPLE]})

    add: list[FacilityIn] = Field(
        default_factory=list, max_length=500, description="facilities to add (ids optional)"
    )
    remove: list[FacilityId] = Field(
        default_factory=list, max_length=10_000, description="ids of facilities to leave out"
    )


class IndicatorChange(BaseModel):
    """A district indicator now and in the scenario."""

    current: float | None
    scenario: float | None


class UnitChange(BaseModel):
    """One unit (or the district) before and after a scenario; ``null`` = unknown."""

    code: str | None = None
    name: str | None = None
    population: float | None = None
    population_under3: float | None = None
    covered_before: float | None = None
    covered_after: float | None = None
    covered_change: float | None = None
    under3_covered_before: float | None = None
    under3_covered_after: float | None = None
    under3_covered_change: float | None = None
    coverage_pct_before: float | None = None
    coverage_pct_after: float | None = None
    coverage_pp: float | None = None
    puhui_coverage_pct_before: float | None = None
    puhui_coverage_pct_after: float | None = None
    puhui_coverage_pp: float | None = None
    facilities_before: int | None = None
    facilities_after: int | None = None
    puhui_facilities_before: int | None = None
    puhui_facilities_after: int | None = None
    slots_before: int | None = None
    slots_after: int | None = None
    has_puhui_before: bool | None = None
    has_puhui_after: bool | None = None


class ScenarioOut(BaseModel):
    """The district summary and per-unit table of the scenario (registry unchanged)."""

    area: str
    version: int = Field(description="version of the state the scenario started from")
    added: list[str]
    removed: list[str]
    comparison: dict[str, IndicatorChange] = Field(
        description="district indicators, current vs scenario"
    )
    summary: dict[str, Any]
    columns: list[ColumnLabel]
    units: list[dict[str, Any]]
    changes: list[UnitChange] = Field(
        default_factory=list,
        description="per unit (街道): people and percentage points before and after",
    )
    district: UnitChange | None = Field(
        default=None, description="the whole district before and after"
    )
    change_columns: list[ColumnLabel] = Field(
        default_factory=list, description="labels of the fields of `changes`"
    )
    under3_method: str | None = Field(
        default=None, description="how under-3 children covered are counted"
    )
    added_records: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the added facilities as validated (lon/lat WGS84; `crs` as submitted)",
    )
    isochrones: dict[str, Any] | None = Field(
        default=None,
        description="GeoJSON FeatureCollection (WGS84) of the added facilities' walking "
        "isochrones, when `isochrone_minutes` was asked for",
    )
    gaps: dict[str, Any] | None = Field(
        default=None,
        description="with `gaps=true`: GeoJSON FeatureCollection (WGS84, simplified for "
        "display) of the contiguous gap zones after the scenario — where residents remain "
        "outside the service circle — most people first, at most `max_zones` drawn, people "
        "per zone; `residents_outside_before`/`residents_outside`/`residents_outside_change`"
        " count every zone; `merge_distance_m` is the distance within which uncovered "
        "population points form one zone",
    )
    registry_seq: int | None = Field(
        default=None, description="registry change number the scenario started from"
    )


class SitesIn(BaseModel):
    """Ask for the next ``p`` 普惠 sites that bring the most people inside 15 minutes."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"p": 5, "solver": "exact"}]}
    )

    p: int = Field(ge=1, le=100, description="number of new sites")
    solver: Literal["exact", "greedy"] = Field(
        default="exact", description="exact HiGHS MILP or lazy greedy (+1-swap)"
    )
    weight: Literal["under3", "population"] = Field(
        default="under3", description="maximise under-3 children or all residents"
    )
    require_jiedao: bool = Field(
        default=False, description="every 街道 without a 普惠 facility must receive a site"
    )
    min_spacing_m: float | None = Field(
        default=None, gt=0, le=3_000, description="no two new sites closer than this (m)"
    )


class SitesOut(BaseModel):
    """Recommended sites (GeoJSON, WGS84) and the indicators with them added."""

    area: str
    sites: dict[str, Any]
    siting: dict[str, Any]
    summary: dict[str, Any]
    columns: list[ColumnLabel]
    units: list[dict[str, Any]]


# --- saved scenarios (the planner's workbench) ------------------------------------------------

ScenarioName = Annotated[
    str, BeforeValidator(_strip), Field(min_length=1, max_length=100), AfterValidator(_clean_text)
]
Text500 = Annotated[
    str, BeforeValidator(_strip), Field(min_length=1, max_length=500), AfterValidator(_clean_text)
]


class SavedScenarioIn(BaseModel):
    """A scenario to save under a name: the additions and removals of ``ScenarioIn``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "方案A：解放碑新增一处", **SCENARIO_EXAMPLE}]},
    )

    name: ScenarioName = Field(description="name, unique within the area / 方案名称")
    note: Text500 | None = Field(default=None, description="note / 备注")
    add: list[FacilityIn] = Field(default_factory=list, max_length=500)
    remove: list[FacilityId] = Field(default_factory=list, max_length=10_000)


class SavedScenarioInfo(BaseModel):
    """A saved scenario in a list: who saved what, when, and its district result."""

    id: int
    area: str
    name: str
    author: str = Field(description="name of the token that saved it")
    created_at: dt.datetime
    note: str | None = None
    additions: int = Field(description="facilities added")
    removals: int = Field(description="facilities removed")
    district: UnitChange | None = None


class SavedScenarioOut(SavedScenarioInfo):
    """A saved scenario with what it adds and removes and its per-unit results."""

    add: list[dict[str, Any]] = Field(
        description="the additions as sent (lon/lat in `crs`), with lon_wgs84/lat_wgs84"
    )
    remove: list[str]
    changes: list[UnitChange]
    change_columns: list[ColumnLabel]
    under3_method: str | None = None
    registry_seq: int | None = Field(
        default=None, description="registry change number the results were computed at"
    )
    comparison: dict[str, IndicatorChange] = Field(default_factory=dict)


class ComparedUnit(BaseModel):
    """One unit in two saved scenarios side by side (changes against the same base)."""

    code: str | None = None
    name: str | None = None
    a: UnitChange | None = None
    b: UnitChange | None = None


class ScenarioComparison(BaseModel):
    """Two saved scenarios side by side, unit by unit and for the district."""

    area: str
    a: SavedScenarioInfo
    b: SavedScenarioInfo
    change_columns: list[ColumnLabel]
    units: list[ComparedUnit]
    district: ComparedUnit
    same_base: bool = Field(
        description="both were computed at the same registry change number (so their "
        "`before` figures are the same)"
    )


class ScenarioAuditRecord(BaseModel):
    """One save or deletion of a saved scenario."""

    id: int
    area: str
    scenario_id: int
    action: Literal["save", "delete"]
    actor: str
    at: dt.datetime
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
