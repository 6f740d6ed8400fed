"""Facility registry (托育机构备案) loader: CSV, XLSX or GeoJSON → validated facilities.

Each record is validated field by field (:func:`validate_facility_record`, also used by
the API for writes). A value that cannot be used is set to null and reported; a row that
cannot be placed (no usable coordinates, lat/lon swapped, outside the study area,
duplicate id) is skipped and reported. Unknown values stay null, never 0 (GUIDE §4, §8).

Coordinates are converted to WGS84 (``lon``/``lat`` columns, ``crs`` then reads
``wgs84``) and the geometry to the local metric CRS. GCJ-02 coordinates declared as
WGS84 cannot be told apart one by one; :func:`detect_gcj02_declared_wgs84` tests a whole
layer against a reference (walking-network nodes, or the study-area polygon) and the
loader warns when the layer fits the reference much better once treated as GCJ-02.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias, cast

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

from tuoyu.crs.china import ChinaDatum, convert, outside_china, parse_crs_name
from tuoyu.crs.projection import WGS84, utm_crs_for
from tuoyu.errors import CRSError, DataNotFoundError, InputValidationError
from tuoyu.layers.read_vector import guarded_read
from tuoyu.layers.rejects import Reject, rejects_frame
from tuoyu.layers.schema import (
    AGE_CLASSES,
    ASSUMED_COLUMN,
    DISTRICT_CODE_DIGITS,
    FACILITY_FIELDS,
    FACILITY_KINDS,
    MAX_ENROLLED_PER_FACILITY,
    MAX_SLOTS_PER_FACILITY,
    OWNERSHIP,
    SERVICE_MODES,
)
from tuoyu.layers.tables import RawRow, RawTable, read_table

FIELDS: tuple[str, ...] = tuple(FACILITY_FIELDS)
CLASS_FIELDS: tuple[str, ...] = tuple(AGE_CLASSES)
_NO_DEFAULT = frozenset({"id", "lon", "lat", "crs"})
_MAX_TEXT = 500

ROW_SKIPPED = "row skipped (整行未用)"
FIELD_EMPTIED = "field left empty (该字段留空)"

# --- column headers -----------------------------------------------------------------------

_EXTRA_HEADERS: dict[str, tuple[str, ...]] = {
    "id": ("机构编号", "备案编号", "facility_id"),
    "name": ("名称", "托育机构名称", "机构全称", "facility_name"),
    "address": ("机构地址", "详细地址", "addr"),
    "jiedao": ("所属街道", "街道名称", "街道乡镇", "街乡", "subdistrict"),
    "district_code": ("行政区划代码", "区划代码", "adcode"),
    "lon": ("lng", "long", "longitude", "x"),
    "lat": ("latitude", "y"),
    "crs": ("坐标系统", "coordinate_system", "coord_sys", "srs"),
    "kind": ("类型", "托育机构类型", "机构性质类型", "type", "category"),
    "puhui": ("是否普惠", "普惠性", "普惠托育", "subsidised", "subsidized"),
    "ownership": ("公办民办", "性质", "举办性质", "办托性质"),
    "slots_infant": ("乳儿班", "乳儿班托位数"),
    "slots_toddler": ("托小班", "托小班托位数"),
    "slots_preschool": ("托大班", "托大班托位数"),
    "slots": ("托位", "总托位", "总托位数", "托位总数", "核定托位", "核定托位数", "capacity"),
    "enrolled": ("在托幼儿数", "在托", "实际在托人数", "enrolment", "enrollment"),
    "service_modes": ("服务方式", "托育服务模式", "modes"),
    "status": ("状态",),
    "registered_on": ("备案时间", "registration_date"),
}


def _header_key(header: str) -> str:
    text = unicodedata.normalize("NFKC", str(header)).casefold().strip()
    text = re.sub(r"\([^()]*\)$", "", text)  # unit suffix such as 托位数(个)
    return re.sub(r"[\s_\-.]+", "", text)


def _build_header_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for name, (_dtype, label_zh, label_en) in FACILITY_FIELDS.items():
        for alias in (name, label_zh, label_en, *_EXTRA_HEADERS.get(name, ())):
            index.setdefault(_header_key(alias), name)
    return index


_HEADER_INDEX = _build_header_index()


def field_for_header(header: str) -> str | None:
    """The schema field a column header stands for (Chinese or English), else ``None``.

    Examples
    --------
    >>> field_for_header("经度"), field_for_header("Longitude"), field_for_header("托位数(个)")
    ('lon', 'lon', 'slots')
    >>> field_for_header("备注") is None
    True
    """
    return _HEADER_INDEX.get(_header_key(header))


# --- value vocabularies ---------------------------------------------------------------------

_NULL_TOKENS = frozenset(
    {"", "-", "--", "—", "/", "n/a", "na", "nan", "null", "none", "未知", "不详", "暂无", "待定"}
)
_NULL_TOKEN_MAX_LEN = max(len(t) for t in _NULL_TOKENS)
_TRUE_TOKENS = frozenset({"是", "1", "true", "t", "yes", "y", "普惠", "普惠性", "普惠型", "√", "✓"})
_FALSE_TOKENS = frozenset(
    {"否", "0", "false", "f", "no", "n", "非普惠", "非普惠性", "非普惠型", "×", "✗"}
)
_OWNERSHIP_WORDS = {
    "公办": "公办",
    "公立": "公办",
    "public": "公办",
    "民办": "民办",
    "私立": "民办",
    "民营": "民办",
    "private": "民办",
}
_KIND_WORDS = {
    **{k.casefold(): k for k in FACILITY_KINDS},
    **{v.casefold(): k for k, v in FACILITY_KINDS.items()},
}
_MODE_WORDS = {
    **{k.casefold(): k for k in SERVICE_MODES},
    **{v.casefold(): k for k, v in SERVICE_MODES.items()},
}
_CRS_WORDS: dict[str, str] = {
    "wgs84": "wgs84",
    "wgs": "wgs84",
    "gps": "wgs84",
    "epsg4326": "wgs84",
    "4326": "wgs84",
    "gcj02": "gcj02",
    "gcj": "gcj02",
    "火星坐标": "gcj02",
    "火星坐标系": "gcj02",
    "国测局": "gcj02",
    "高德": "gcj02",
    "腾讯": "gcj02",
    "amap": "gcj02",
    "tencent": "gcj02",
    "bd09": "bd09",
    "bd09ll": "bd09",
    "百度": "bd09",
    "baidu": "bd09",
    "cgcs2000": "EPSG:4490",
}
_COUNT_RE = re.compile(r"^([+-]?\d+(?:\.\d+)?)\s*(个托位|个|人|名|位|张|托位|名额)?$")
_FLOAT_RE = re.compile(r"^([+-]?\d+(?:\.\d+)?)\s*°?\s*[EN]?$", re.IGNORECASE)
_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
_DATE_RES = (
    re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T].*)?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)
_MODE_SPLIT_RE = re.compile(r"[、,;/\s]+")


class _FieldError(Exception):
    """A value cannot be used; ``reason`` says why (English and Chinese)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _num(value: object) -> float:
    """A parsed numeric value (int or float) as float."""
    return float(cast(float, value))


def _nfkc(value: object) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip()


def _is_null(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if not isinstance(value, str):
        return False
    text = value.strip()
    # every null token is at most 4 characters: skip normalising longer text (speed)
    return not text or (len(text) <= _NULL_TOKEN_MAX_LEN and _nfkc(text).casefold() in _NULL_TOKENS)


@dataclass(frozen=True)
class _Parsed:
    value: object
    note: str | None = None


def _parse_count(value: object) -> _Parsed:
    """Whole non-negative number; '30个', '30 个', '３０' and '1,200' are cleaned."""
    if isinstance(value, bool):
        raise _FieldError("not a number (不是数字)")
    note = None
    if isinstance(value, int):
        number = float(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _FieldError("not a number (不是数字)")
        number = value
    else:
        original = str(value).strip()
        text = _nfkc(original)
        if _THOUSANDS_RE.match(text):
            text = text.replace(",", "")
        match = _COUNT_RE.match(text)
        if match is None:
            raise _FieldError("not a number (不是数字)")
        number = float(match.group(1))
        if original != match.group(1):
            note = f"'{original}' read as {int(number) if number.is_integer() else number}"
    if not number.is_integer():
        raise _FieldError("not a whole number (不是整数)")
    if number < 0:
        raise _FieldError("negative number (负数)")
    return _Parsed(int(number), note)


def _parse_slots(value: object) -> _Parsed:
    """托位 of a facility or of one class: a count from 0 to :data:`MAX_SLOTS_PER_FACILITY`."""
    parsed = _parse_count(value)
    if _num(parsed.value) > MAX_SLOTS_PER_FACILITY:
        raise _FieldError(
            f"more than {MAX_SLOTS_PER_FACILITY} 托位 for one facility "
            f"(单个机构托位数超过{MAX_SLOTS_PER_FACILITY})"
        )
    return parsed


def _parse_enrolled(value: object) -> _Parsed:
    """Children enrolled: a count from 0 to :data:`MAX_ENROLLED_PER_FACILITY`."""
    parsed = _parse_count(value)
    if _num(parsed.value) > MAX_ENROLLED_PER_FACILITY:
        raise _FieldError(
            f"more than {MAX_ENROLLED_PER_FACILITY} children enrolled in one facility "
            f"(单个机构在托人数超过{MAX_ENROLLED_PER_FACILITY})"
        )
    return parsed


def _parse_float(value: object) -> _Parsed:
    if isinstance(value, bool):
        raise _FieldError("not a number (不是数字)")
    if isinstance(value, int | float):
        number = float(value)
        note = None
    else:
        original = str(value).strip()
        match = _FLOAT_RE.match(_nfkc(original))
        if match is None:
            raise _FieldError("not a number (不是数字)")
        number = float(match.group(1))
        note = None if original == match.group(1) else f"'{original}' read as {number}"
    if not math.isfinite(number):
        raise _FieldError("not a finite number (不是有限数)")
    return _Parsed(number, note)


def _parse_text(value: object) -> _Parsed:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Excel stores codes and ids typed as numbers as floats
    text = str(value).strip()
    if len(text) > _MAX_TEXT:
        raise _FieldError(f"text longer than {_MAX_TEXT} characters (文本过长)")
    return _Parsed(text)


def _parse_district_code(value: object) -> _Parsed:
    text = str(_parse_text(value).value)
    if not (text.isascii() and text.isdigit() and len(text) == DISTRICT_CODE_DIGITS):
        raise _FieldError(
            f"district code is not {DISTRICT_CODE_DIGITS} digits "
            f"(区县代码应为{DISTRICT_CODE_DIGITS}位数字)"
        )
    return _Parsed(text)


_JIEDAO_CODE_DIGITS = (9, 12)
"""A 街道/乡镇 code is 9 digits (12 with the village level), its first 6 the district's."""


def district_prefix(area_code: object) -> str | None:
    """The leading digits every district code of a study area starts with, else ``None``.

    A GB/T 2260 code is ``PPCCDD`` (province, city, district); a city or province code
    ends in ``00``/``0000``. The study area's own code (``[area] code``) gives the
    prefix: ``500103`` (渝中区) → ``500103``, ``500100`` (重庆市辖区) → ``5001``. An area
    code that is not 6 digits (a custom area) gives ``None``: no district check.

    Examples
    --------
    >>> district_prefix("500103"), district_prefix("110100"), district_prefix("custom")
    ('500103', '1101', None)
    """
    if area_code is None:
        return None
    code = str(area_code).strip()
    if not (code.isascii() and code.isdigit() and len(code) == DISTRICT_CODE_DIGITS):
        return None
    while code.endswith("00"):
        code = code[:-2]
    return code


def _check_district(record: _Record, opts: _Options) -> None:
    """Refuse a district code, or a 街道 code, of another district than the study area's.

    Also a 街道 code that does not start with the record's own district code.
    """
    prefix = opts.district_prefix
    code = record.values["district_code"]
    if prefix is not None and code is not None and not str(code).startswith(prefix):
        record.reject_field(
            opts,
            "district_code",
            code,
            f"district code {code} is not in the study area ({opts.area_code}) "
            "(区县代码不属于本研究区)",
        )
        record.values["district_code"] = None
        code = None
    jiedao = record.values["jiedao"]
    text = str(jiedao) if jiedao is not None else ""
    if not (text.isascii() and text.isdigit() and len(text) in _JIEDAO_CODE_DIGITS):
        return
    if prefix is not None and not text.startswith(prefix):
        reason = (
            f"街道 code {text} is not in the study area ({opts.area_code}) (街道代码不属于本研究区)"
        )
    elif code is not None and not text.startswith(str(code)):
        reason = (
            f"街道 code {text} is not in district {code} given by district_code "
            "(街道代码与区县代码不符)"
        )
    else:
        return
    record.reject_field(opts, "jiedao", jiedao, reason)
    record.values["jiedao"] = None


def _parse_bool(value: object) -> _Parsed:
    if isinstance(value, bool):
        return _Parsed(value)
    if isinstance(value, int | float) and value in (0, 1):
        return _Parsed(bool(value))
    key = _nfkc(value).casefold()
    if key in _TRUE_TOKENS:
        return _Parsed(True)
    if key in _FALSE_TOKENS:
        return _Parsed(False)
    raise _FieldError("not yes/no (应为 是/否、普惠/非普惠、1/0、true/false)")


def _parse_kind(value: object) -> _Parsed:
    kind = _KIND_WORDS.get(_nfkc(value).casefold())
    if kind is None:
        allowed = "、".join(FACILITY_KINDS)
        raise _FieldError(f"unknown kind (未知机构类型); allowed: {allowed}")
    return _Parsed(kind)


def _parse_ownership(value: object) -> _Parsed:
    owner = _OWNERSHIP_WORDS.get(_nfkc(value).casefold())
    if owner is None:
        raise _FieldError(f"unknown ownership (应为 {'/'.join(OWNERSHIP)})")
    return _Parsed(owner)


def _parse_modes(value: object) -> _Parsed:
    parts = [p for p in _MODE_SPLIT_RE.split(_nfkc(value)) if p]
    modes: list[str] = []
    unknown: list[str] = []
    for part in parts:
        mode = _MODE_WORDS.get(part.casefold())
        if mode is None:
            unknown.append(part)
        elif mode not in modes:
            modes.append(mode)
    if unknown or not modes:
        allowed = "、".join(SERVICE_MODES)
        raise _FieldError(
            f"unknown service mode {'、'.join(unknown)} (未知服务模式); allowed: {allowed}"
        )
    return _Parsed("、".join(modes))


def _parse_date(value: object) -> _Parsed:
    if isinstance(value, dt.datetime):
        return _Parsed(value.date())
    if isinstance(value, dt.date):
        return _Parsed(value)
    text = _nfkc(value)
    for pattern in _DATE_RES:
        match = pattern.match(text)
        if match is not None:
            try:
                return _Parsed(dt.date(*(int(g) for g in match.groups()[:3])))
            except ValueError as exc:
                raise _FieldError(f"not a valid date (日期无效): {exc}") from exc
    raise _FieldError("not a date (应为日期, 如 2024-05-01 或 2024年5月1日)")


_PARSERS = {
    "id": _parse_text,
    "name": _parse_text,
    "address": _parse_text,
    "jiedao": _parse_text,
    "district_code": _parse_district_code,
    "kind": _parse_kind,
    "puhui": _parse_bool,
    "ownership": _parse_ownership,
    "slots_infant": _parse_slots,
    "slots_toddler": _parse_slots,
    "slots_preschool": _parse_slots,
    "slots": _parse_slots,
    "enrolled": _parse_enrolled,
    "service_modes": _parse_modes,
    "status": _parse_text,
    "registered_on": _parse_date,
}
"""Parser of every field but the coordinates (lon, lat, crs), handled together."""


def parse_row_crs(value: object) -> ChinaDatum | CRS:
    """Parse a per-row coordinate-system cell (``坐标系``).

    Accepts what :func:`tuoyu.crs.china.parse_crs_name` accepts plus common words:
    ``GPS``, ``高德``/``腾讯``/``火星坐标`` (GCJ-02), ``百度`` (BD-09), ``CGCS2000``.

    Raises
    ------
    CRSError
        When the value names no known coordinate system.

    Examples
    --------
    >>> parse_row_crs("高德"), parse_row_crs("GCJ-02"), parse_row_crs("百度")
    ('gcj02', 'gcj02', 'bd09')
    """
    key = re.sub(r"[\s_\-:]+", "", _nfkc(value).casefold())
    return parse_crs_name(_CRS_WORDS.get(key, _nfkc(value)))


def _crs_key(crs: ChinaDatum | CRS) -> str:
    return crs if isinstance(crs, str) else crs.to_string()


def _is_geographic(crs: ChinaDatum | CRS) -> bool:
    return isinstance(crs, str) or bool(crs.is_geographic)


# --- one record -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    source: str
    stem: str
    default_crs: ChinaDatum | CRS
    defaults: dict[str, object]
    value_map: dict[str, dict[str, object]]
    area_code: str | None = None
    district_prefix: str | None = None


def _options(
    source: str | Path,
    default_crs: str,
    defaults: Mapping[str, object] | None,
    value_map: Mapping[str, Mapping[object, object]] | None,
    area_code: str | None = None,
) -> _Options:
    crs = parse_crs_name(default_crs)
    clean_map: dict[str, dict[str, object]] = {}
    for name, mapping in (value_map or {}).items():
        if name not in FACILITY_FIELDS:
            raise InputValidationError(
                f"value_map names unknown field '{name}'; fields: {', '.join(FIELDS)}",
                field=name,
            )
        clean_map[name] = {_nfkc(k): v for k, v in mapping.items()}
    clean_defaults: dict[str, object] = {}
    for name, value in (defaults or {}).items():
        if name not in FACILITY_FIELDS or name in _NO_DEFAULT:
            raise InputValidationError(
                f"defaults cannot set '{name}': fields with defaults are "
                f"{', '.join(f for f in FIELDS if f not in _NO_DEFAULT)}",
                field=name,
            )
        if _is_null(value):
            continue
        try:
            clean_defaults[name] = _PARSERS[name](value).value
        except _FieldError as exc:
            raise InputValidationError(
                f"defaults value {value!r} is unusable: {exc.reason}", field=name
            ) from exc
    source_text = str(source)
    prefix = district_prefix(area_code)
    for name in ("district_code", "jiedao"):
        value = clean_defaults.get(name)
        if (
            prefix is not None
            and value is not None
            and str(value).isascii()
            and str(value).isdigit()
        ):
            if not str(value).startswith(prefix):
                raise InputValidationError(
                    f"defaults value {value!r} is not in the study area ({area_code})",
                    field=name,
                )
    return _Options(
        source_text,
        Path(source_text).stem,
        crs,
        clean_defaults,
        clean_map,
        area_code=str(area_code).strip() if prefix is not None else None,
        district_prefix=prefix,
    )


@dataclass
class _Record:
    row: int
    values: dict[str, object]
    crs: ChinaDatum | CRS
    present: frozenset[str]
    assumed: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    usable: bool = True
    declared_crs: ChinaDatum | CRS = "wgs84"
    raw_coords: tuple[object, object] = (None, None)

    def reject_field(self, opts: _Options, name: str, raw: object, reason: str) -> None:
        self.rejects.append(
            Reject(opts.source, self.row, name, _show(raw), f"{reason}; {FIELD_EMPTIED}")
        )

    def reject_row(self, opts: _Options, name: str, raw: object, reason: str) -> None:
        self.rejects.append(
            Reject(opts.source, self.row, name, _show(raw), f"{reason}; {ROW_SKIPPED}")
        )
        self.usable = False


def _show(raw: object) -> str:
    if raw is None:
        return ""
    if isinstance(raw, tuple):
        return ", ".join(_show(part) for part in raw)
    return str(raw)


def _mapped(opts: _Options, name: str, raw: object) -> object:
    mapping = opts.value_map.get(name)
    if mapping is None or raw is None:
        return raw
    key = _nfkc(raw)
    return mapping.get(key, raw)


def _parse_fields(
    fields: Mapping[str, object], row: int, opts: _Options, geometry_problem: str | None = None
) -> _Record:
    """Parse one record keyed by schema field (coordinates still in their own CRS)."""
    record = _Record(
        row=row, values=dict.fromkeys(FIELDS), crs=opts.default_crs, present=frozenset(fields)
    )
    missing: set[str] = set()
    for name, parser in _PARSERS.items():
        raw = _mapped(opts, name, fields.get(name))
        if _is_null(raw):
            missing.add(name)
            continue
        try:
            parsed = parser(raw)
        except _FieldError as exc:
            record.reject_field(opts, name, fields.get(name), exc.reason)
            continue
        record.values[name] = parsed.value
        if parsed.note:
            record.notes.append((name, parsed.note))
    _parse_coordinates(record, fields, opts, geometry_problem)
    _sum_classes(record, opts)
    _check_district(record, opts)
    for name in FIELDS:  # schema order, so assumed_fields reads the same in every row
        if name in opts.defaults and name in missing and record.values[name] is None:
            record.values[name] = opts.defaults[name]
            record.assumed.append(name)
    return record


def _parse_coordinates(
    record: _Record, fields: Mapping[str, object], opts: _Options, geometry_problem: str | None
) -> None:
    raw_crs = _mapped(opts, "crs", fields.get("crs"))
    if not _is_null(raw_crs):
        try:
            record.crs = parse_row_crs(raw_crs)
        except CRSError:
            record.reject_row(
                opts,
                "crs",
                fields.get("crs"),
                "unknown coordinate system (未知坐标系); use wgs84, gcj02, bd09 or EPSG:code",
            )
            return
    record.declared_crs = record.crs
    coords: list[float] = []
    for name in ("lon", "lat"):
        raw = _mapped(opts, name, fields.get(name))
        if _is_null(raw):
            if geometry_problem is not None:
                record.reject_row(opts, "geometry", geometry_problem, geometry_problem)
            else:
                record.reject_row(opts, name, raw, "no coordinates (缺少经纬度)")
            return
        try:
            parsed = _parse_float(raw)
        except _FieldError as exc:
            record.reject_row(opts, name, raw, exc.reason)
            return
        if parsed.note:
            record.notes.append((name, parsed.note))
        coords.append(_num(parsed.value))
    record.values["lon"], record.values["lat"] = coords
    record.values["crs"] = _crs_key(record.crs)
    record.raw_coords = (fields.get("lon"), fields.get("lat"))


def reconcile_class_slots(
    classes: Mapping[str, object], total: object
) -> tuple[int | None, str | None, str | None]:
    """托位 by class against the total: one rule for registry files and API writes.

    ``classes`` holds the classes a record gives (columns of the file, fields of the
    request; ``None`` = given but unknown). Their sum fills a missing total when each is
    known; a total that differs from that sum, or that known classes already exceed, is
    refused. A missing total stays unknown when a given class is unknown.

    Parameters
    ----------
    classes
        Class field → count (``slots_infant``, ``slots_toddler``, ``slots_preschool``).
    total
        The registered total (``None`` = not given).

    Returns
    -------
    tuple
        ``(slots, note, problem)``: the total to keep (``None`` = unknown), a remark when
        it was derived, and the reason it was refused (``None`` when it was not).

    Examples
    --------
    >>> reconcile_class_slots({"slots_toddler": 40, "slots_preschool": 40}, None)
    (80, 'slots = slots_toddler + slots_preschool = 80', None)
    >>> reconcile_class_slots({"slots_toddler": 40, "slots_infant": None}, None)
    (None, None, None)
    >>> reconcile_class_slots({"slots_toddler": 40, "slots_preschool": 40}, 90)[2]
    '托位 by class (slots_toddler + slots_preschool) add up to 80 but slots = 90 (托位数与分班合计不符)'
    """
    known = [name for name, value in classes.items() if value is not None]
    given_total = None if total is None else int(_num(total))
    if not known:
        return given_total, None, None
    partial = int(sum(_num(classes[name]) for name in known))
    complete = len(known) == len(classes)
    if given_total is None:
        if complete:
            return partial, f"slots = {' + '.join(known)} = {partial}", None
        return None, None, None
    if complete and given_total != partial:
        return (
            None,
            None,
            (
                f"托位 by class ({' + '.join(known)}) add up to {partial} but slots = "
                f"{given_total} (托位数与分班合计不符)"
            ),
        )
    if partial > given_total:
        return (
            None,
            None,
            (
                f"托位 of the known classes ({' + '.join(known)} = {partial}) exceed slots = "
                f"{given_total} (分班托位超过托位数)"
            ),
        )
    return given_total, None, None


def _sum_classes(record: _Record, opts: _Options) -> None:
    """Apply :func:`reconcile_class_slots` to a record (a refused total is emptied)."""
    if "slots" in {r.field for r in record.rejects}:
        return
    classes = {name: record.values[name] for name in CLASS_FIELDS if name in record.present}
    total = record.values["slots"]
    slots, note, problem = reconcile_class_slots(classes, total)
    record.values["slots"] = slots
    if note is not None:
        record.notes.append(("slots", note))
    if problem is not None:
        record.reject_field(opts, "slots", total, problem)


def _check_lonlat(
    members: list[_Record],
    lon: npt.NDArray[np.float64],
    lat: npt.NDArray[np.float64],
    opts: _Options,
) -> npt.NDArray[np.bool_]:
    """Reject swapped, out-of-range and (0, 0) longitude/latitude; return the kept mask."""
    outside = np.asarray(outside_china(lon, lat), dtype=bool)
    swapped = outside & ~np.asarray(outside_china(lat, lon), dtype=bool)
    in_range = (np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0)
    placeholder = (lon == 0.0) & (lat == 0.0)
    problems = (
        (swapped, "lat/lon swapped? (经纬度疑似颠倒)"),
        (~in_range, "longitude/latitude out of range (经纬度超出范围)"),
        (placeholder, "coordinates are (0, 0), a placeholder (坐标为0)"),
        (outside, "outside China (不在中国境内)"),
    )
    keep = np.ones(len(members), dtype=bool)
    for mask, reason in problems:
        for i in np.flatnonzero(mask & keep):
            members[int(i)].reject_row(opts, "lon/lat", members[int(i)].raw_coords, reason)
        keep &= ~mask
    return keep


def _to_wgs84(records: Sequence[_Record], opts: _Options) -> None:
    """Check and convert the coordinates of usable records to WGS84, grouped by CRS.

    Longitude/latitude (not projected coordinates) are first checked for swapped axes
    (a point outside China that lies inside once swapped), range and (0, 0).
    """
    groups: dict[str, list[_Record]] = {}
    for record in records:
        if record.usable:
            groups.setdefault(_crs_key(record.crs), []).append(record)
    for members in groups.values():
        crs = members[0].crs
        lon = np.array([_num(r.values["lon"]) for r in members])
        lat = np.array([_num(r.values["lat"]) for r in members])
        if _is_geographic(crs):
            keep = _check_lonlat(members, lon, lat, opts)
            members = [r for r, k in zip(members, keep, strict=True) if k]
            lon, lat = lon[keep], lat[keep]
        if not members:
            continue
        if isinstance(crs, str):
            lon_w, lat_w = convert(lon, lat, crs, "wgs84")
        else:
            transformer = Transformer.from_crs(crs, WGS84, always_xy=True)
            lon_w, lat_w = (np.asarray(a, dtype=float) for a in transformer.transform(lon, lat))
        for record, x, y in zip(members, lon_w, lat_w, strict=True):
            if not (math.isfinite(x) and math.isfinite(y)):
                record.reject_row(
                    opts,
                    "lon/lat",
                    (record.values["lon"], record.values["lat"]),
                    f"coordinates cannot be converted from {_crs_key(crs)} (坐标无法转换)",
                )
                continue
            record.values["lon"] = float(x)
            record.values["lat"] = float(y)
            record.values["crs"] = "wgs84"


AreaLike: TypeAlias = BaseGeometry | gpd.GeoSeries | gpd.GeoDataFrame
"""A study-area polygon: a shapely geometry in WGS84, or a layer with a CRS."""


def area_wgs84(area: AreaLike) -> BaseGeometry:
    """The study area as one shapely geometry in WGS84.

    A GeoSeries/GeoDataFrame is reprojected from its CRS (assumed WGS84 when it has
    none) and dissolved; a shapely geometry is taken to be WGS84 already.
    """
    if isinstance(area, gpd.GeoSeries | gpd.GeoDataFrame):
        layer = area.to_crs(WGS84) if area.crs is not None else area
        return cast(BaseGeometry, layer.union_all())
    return area


def _check_area(records: Sequence[_Record], area_polygon: BaseGeometry, opts: _Options) -> None:
    usable = [r for r in records if r.usable]
    if not usable:
        return
    lon = np.array([_num(r.values["lon"]) for r in usable])
    lat = np.array([_num(r.values["lat"]) for r in usable])
    inside = shapely.intersects_xy(area_polygon, lon, lat)
    if inside.all():
        return
    centre = area_polygon.centroid
    metric = utm_crs_for(centre.x, centre.y)
    to_metric = Transformer.from_crs(WGS84, metric, always_xy=True)
    area_m = shapely.transform(
        area_polygon, lambda xy: np.column_stack(to_metric.transform(xy[:, 0], xy[:, 1]))
    )
    px, py = to_metric.transform(lon[~inside], lat[~inside])
    gaps_m = shapely.distance(area_m, shapely.points(px, py))
    for record, gap_m in zip(
        (r for r, ok in zip(usable, inside, strict=True) if not ok), gaps_m, strict=True
    ):
        record.reject_row(
            opts,
            "lon/lat",
            (record.values["lon"], record.values["lat"]),
            f"outside the study area (不在研究区内), {gap_m:,.0f} m from its edge",
        )


def _generate_id(opts: _Options, row: int) -> str:
    return f"{opts.stem}-row-{row}" if opts.stem else f"row-{row}"


def _finish_record(record: _Record) -> dict[str, object]:
    out = dict(record.values)
    out[ASSUMED_COLUMN] = ",".join(record.assumed)
    return out


def _resolve_raw_keys(
    raw: Mapping[str, object], source: str
) -> tuple[dict[str, object], list[str]]:
    fields: dict[str, object] = {}
    notes: list[str] = []
    for key, value in raw.items():
        if key == ASSUMED_COLUMN:
            continue
        name = field_for_header(key)
        if name is None:
            notes.append(f"{source}: column '{key}' is not a registry field and is not used")
        elif name in fields:
            notes.append(f"{source}: columns for '{name}' appear twice; '{key}' is not used")
        else:
            fields[name] = value
    return fields, notes


def validate_facility_record(
    raw: Mapping[str, object],
    *,
    default_crs: str = "wgs84",
    defaults: Mapping[str, object] | None = None,
    value_map: Mapping[str, Mapping[object, object]] | None = None,
    source: str | Path = "",
    row: int | None = None,
    area_polygon: AreaLike | None = None,
    notes: list[str] | None = None,
    area_code: str | None = None,
) -> tuple[dict[str, object] | None, list[Reject]]:
    """Validate one facility record (a registry row, or a write to the API).

    Parameters
    ----------
    raw
        Values keyed by schema field or by a known column header (``经度``, ``托位数``,
        ``lon``, ...; see :func:`field_for_header`).
    default_crs
        Coordinate system of ``lon``/``lat`` when the record has no ``crs``/``坐标系``.
    defaults
        Values for fields the record leaves empty; they are listed in
        ``assumed_fields``.
    value_map
        Per field, file value → schema value (e.g. ``{"kind": {"幼儿园": "托幼一体"}}``).
    source, row
        File and 1-based row number, used in rejects and in a generated id.
    area_polygon
        Study-area polygon (shapely geometry in WGS84, or a GeoSeries/GeoDataFrame with
        a CRS); a point outside it is rejected.
    notes
        When given, remarks (cleaned numbers, generated id, ignored keys) are appended.
    area_code
        The study area's GB/T 2260 code (``[area] code``, e.g. ``500103``): a district
        code, or a 9/12-digit 街道 code, of another district is refused
        (:func:`district_prefix`).

    Returns
    -------
    tuple
        ``(record, rejects)``. ``record`` has every field of ``schema.FACILITY_FIELDS``
        (``lon``/``lat`` in WGS84, ``crs`` = ``"wgs84"``) plus ``assumed_fields`` (comma
        separated), or is ``None`` when the row cannot be used. Validating a returned
        record again gives the same schema fields.

    Raises
    ------
    CRSError
        Unknown ``default_crs``.
    InputValidationError
        Unusable ``defaults`` or ``value_map`` (not the record: its problems are rejects).

    Examples
    --------
    >>> rec, rej = validate_facility_record({"编号": "A1", "经度": 116.4, "纬度": 39.9, "托位数": "30个"})
    >>> rec["slots"], rec["crs"], rej
    (30, 'wgs84', [])
    """
    row_number = row if row is not None else 1
    opts = _options(source, default_crs, defaults, value_map, area_code)
    fields, key_notes = _resolve_raw_keys(raw, opts.source or "record")
    record = _parse_fields(fields, row_number, opts)
    _to_wgs84([record], opts)
    if area_polygon is not None:
        _check_area([record], area_wgs84(area_polygon), opts)
    if record.usable and record.values["id"] is None:
        record.values["id"] = _generate_id(opts, row_number)
        key_notes.append(f"no id; generated '{record.values['id']}'")
    if notes is not None:
        notes.extend(key_notes)
        notes.extend(f"{name}: {text}" for name, text in record.notes)
    return (_finish_record(record) if record.usable else None), record.rejects


# --- GCJ-02 declared as WGS84 ---------------------------------------------------------------

_GCJ_MIN_POINTS = 5
_GCJ_RATIO_POINTS = 0.6
_GCJ_GAIN_POINTS_M = 5.0
_GCJ_RATIO_AREA = 0.5
_GCJ_GAIN_AREA = 0.05
_GCJ_CONTROL_ANGLES_DEG = (45, 90, 135, 180, 225, 270, 315)


@dataclass(frozen=True)
class Gcj02Check:
    """Outcome of :func:`gcj02_check`.

    Attributes
    ----------
    suspected
        True when the points fit the reference clearly better once read as GCJ-02.
    method
        ``"nearest reference point"`` (score: median distance in metres),
        ``"inside reference area"`` (score: share of points outside), or
        ``"too few points"``.
    score_as_given, score_as_gcj02
        The score of the points as given and after GCJ-02 → WGS84 (lower is better).
    score_control
        The best score among control shifts of the same length in other directions.
    offset_m
        Median length of the GCJ-02 → WGS84 shift at these points (≈ 300–700 m in China).
    n_points
        Points tested.
    """

    suspected: bool
    method: str
    score_as_given: float
    score_as_gcj02: float
    score_control: float
    offset_m: float
    n_points: int


def gcj02_check(
    points_wgs84: npt.ArrayLike, reference_wgs84: npt.ArrayLike | BaseGeometry
) -> Gcj02Check:
    """Test whether points declared WGS84 are really GCJ-02, against a WGS84 reference.

    The points are scored as given and shifted by the inverse GCJ-02 offset (as if
    they were GCJ-02). Seven control shifts of the same length in other directions
    (45° steps) measure how much any shift of that size changes the score. GCJ-02 is
    suspected when the GCJ-02 reading scores at most ``0.6`` × (points) or ``0.5`` ×
    (area) the score as given, is no worse than every control, and gains at least
    5 m (points) or 5 percentage points (area).

    Scores, measured in the local UTM CRS:

    - reference **points** (``(m, 2)`` lon/lat, e.g. walking-network nodes): median
      distance from each point to the nearest reference point. Facilities stand near
      walkable streets, so the right reading lies closer to the nodes;
    - reference **polygon** (shapely geometry, e.g. the union of the 街道 or the
      district outline): share of points outside it. Unit boundaries alone are a poor
      reference because most facilities lie far from any boundary.

    Parameters
    ----------
    points_wgs84
        ``(n, 2)`` lon/lat as declared (WGS84).
    reference_wgs84
        ``(m, 2)`` lon/lat reference points, or a polygonal shapely geometry, in WGS84.

    Returns
    -------
    Gcj02Check
    """
    pts = np.asarray(points_wgs84, dtype=float).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    n = int(pts.shape[0])
    if n < _GCJ_MIN_POINTS:
        return Gcj02Check(False, "too few points", math.nan, math.nan, math.nan, 0.0, n)
    metric = utm_crs_for(float(np.median(pts[:, 0])), float(np.median(pts[:, 1])))
    to_metric = Transformer.from_crs(WGS84, metric, always_xy=True)

    def project(lonlat: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.column_stack(to_metric.transform(lonlat[:, 0], lonlat[:, 1]))

    given_m = project(pts)
    as_gcj = np.column_stack(convert(pts[:, 0], pts[:, 1], "gcj02", "wgs84"))
    gcj_m = project(as_gcj)
    shift_m = gcj_m - given_m
    offset_m = float(np.median(np.hypot(shift_m[:, 0], shift_m[:, 1])))
    if isinstance(reference_wgs84, BaseGeometry):
        area_m = shapely.transform(reference_wgs84, project)
        shapely.prepare(area_m)

        def score(xy: npt.NDArray[np.float64]) -> float:
            return float(1.0 - shapely.intersects_xy(area_m, xy[:, 0], xy[:, 1]).mean())

        method, ratio, gain = "inside reference area", _GCJ_RATIO_AREA, _GCJ_GAIN_AREA
    else:
        ref = np.asarray(reference_wgs84, dtype=float).reshape(-1, 2)
        ref = ref[np.isfinite(ref).all(axis=1)]
        if ref.shape[0] == 0:
            return Gcj02Check(False, "no reference", math.nan, math.nan, math.nan, offset_m, n)
        # Sliding-midpoint splits without shrunk node boxes build twice as fast on 10⁶
        # network nodes; a query still returns the exact nearest distance.
        tree = cKDTree(project(ref), balanced_tree=False, compact_nodes=False)

        def score(xy: npt.NDArray[np.float64]) -> float:
            return float(np.median(tree.query(xy)[0]))

        method, ratio, gain = "nearest reference point", _GCJ_RATIO_POINTS, _GCJ_GAIN_POINTS_M
    s_given = score(given_m)
    s_gcj = score(gcj_m)
    controls = []
    for angle in np.radians(_GCJ_CONTROL_ANGLES_DEG):
        c, s = math.cos(angle), math.sin(angle)
        rotated = np.column_stack(
            [c * shift_m[:, 0] - s * shift_m[:, 1], s * shift_m[:, 0] + c * shift_m[:, 1]]
        )
        controls.append(score(given_m + rotated))
    s_control = min(controls)
    suspected = (
        offset_m > 1.0
        and s_gcj <= ratio * s_given
        and s_gcj <= s_control
        and s_given - s_gcj >= gain
    )
    return Gcj02Check(bool(suspected), method, s_given, s_gcj, s_control, offset_m, n)


def detect_gcj02_declared_wgs84(
    points_wgs84: npt.ArrayLike, reference_points_wgs84: npt.ArrayLike | BaseGeometry
) -> bool:
    """True when points declared WGS84 look like GCJ-02 (Amap/Tencent) coordinates.

    A whole layer is tested, never one point: see :func:`gcj02_check` for the
    heuristic. ``reference_points_wgs84`` is either ``(m, 2)`` WGS84 lon/lat points
    where the points are expected nearby (walking-network nodes) or a polygonal
    shapely geometry in WGS84 expected to contain them (study area, union of 街道).

    Examples
    --------
    >>> import numpy as np
    >>> from tuoyu.crs.china import convert
    >>> rng = np.random.default_rng(0)
    >>> nodes = np.column_stack([116.40 + rng.random(400) * 0.02, 39.90 + rng.random(400) * 0.02])
    >>> true = nodes[:50] + 0.00005
    >>> gcj = np.column_stack(convert(true[:, 0], true[:, 1], "wgs84", "gcj02"))
    >>> detect_gcj02_declared_wgs84(gcj, nodes), detect_gcj02_declared_wgs84(true, nodes)
    (True, False)
    """
    return gcj02_check(points_wgs84, reference_points_wgs84).suspected


# --- whole file -----------------------------------------------------------------------------


@dataclass
class FacilityLoadResult:
    """What :func:`load_facilities` returns.

    Attributes
    ----------
    facilities
        One row per usable record: every field of ``schema.FACILITY_FIELDS``
        (``lon``/``lat`` WGS84), ``assumed_fields`` (comma-separated fields filled from
        ``defaults``) and point geometry in the metric CRS.
    rejects
        Columns ``file, row, field, value, reason`` (``schema.REJECTS_COLUMNS``).
    warnings
        Remarks for the run log: cleaned values, generated ids, unused columns,
        suspected GCJ-02 coordinates declared WGS84, ...
    """

    facilities: gpd.GeoDataFrame
    rejects: pd.DataFrame
    warnings: list[str]


def _column_mapping(
    table: RawTable, columns: Mapping[str, str] | None
) -> tuple[dict[str, list[str]], list[str]]:
    """Schema field → the file columns read for it, in order of preference.

    An explicit ``columns`` entry is the only column read for its field. Otherwise every
    recognised header is read, and a row takes the first non-empty one (GeoJSON features
    may name the same property differently, e.g. ``slots`` in one and ``托位数`` in
    another).
    """
    mapping: dict[str, list[str]] = {}
    notes: list[str] = []
    explicit: set[str] = set()
    for name, column in (columns or {}).items():
        if name not in FACILITY_FIELDS:
            raise InputValidationError(
                f"columns names unknown field '{name}'; fields: {', '.join(FIELDS)}",
                path=table.path,
                field=name,
            )
        if column not in table.columns:
            raise InputValidationError(
                f"columns maps '{name}' to '{column}', which the file lacks; "
                f"its columns: {', '.join(table.columns)}",
                path=table.path,
                field=column,
            )
        mapping[name] = [column]
        explicit.add(column)
    unused: list[str] = []
    for column in table.columns:
        if column in explicit:
            continue
        known = field_for_header(column)
        if known is None or (columns and known in columns):
            unused.append(column)
        else:
            mapping.setdefault(known, []).append(column)
    for name, cols in mapping.items():
        if len(cols) > 1:
            notes.append(
                f"{table.path}: columns {', '.join(cols)} all read as '{name}'; "
                "each row uses the first non-empty one"
            )
    if unused:
        notes.append(f"{table.path}: columns not used: {', '.join(unused)}")
    return mapping, notes


def _summarise_notes(records: Sequence[_Record], source: str) -> list[str]:
    by_field: dict[str, list[str]] = {}
    for record in records:
        for name, text in record.notes:
            by_field.setdefault(name, []).append(f"row {record.row}: {text}")
    out = []
    for name, items in by_field.items():
        shown = "; ".join(items[:3])
        more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
        out.append(f"{source}: {name}: {len(items)} value(s) cleaned or derived — {shown}{more}")
    return out


def _metric_crs(metric_crs: CRS | str | int | None) -> CRS | None:
    if metric_crs is None:
        return None
    crs = CRS.from_user_input(metric_crs)
    if not crs.is_projected:
        raise CRSError(f"metric_crs {crs.to_string()} is not a projected (metric) CRS")
    return crs


def records_frame(rows: Sequence[Mapping[str, object]], crs: CRS | None) -> gpd.GeoDataFrame:
    """Clean facility records (WGS84 ``lon``/``lat``) as the loader's typed GeoDataFrame.

    Shared by the file loader and the service (registry rows), so both give the same
    columns and dtypes. Points are projected to ``crs`` when given.
    """
    df = pd.DataFrame.from_records(rows, columns=[*FIELDS, ASSUMED_COLUMN])
    for name, (dtype, _zh, _en) in FACILITY_FIELDS.items():
        column = df[name]
        if dtype == "int":
            df[name] = pd.array(column.tolist(), dtype="Int64")
        elif dtype == "float":
            df[name] = column.astype("float64")
        elif dtype == "bool":
            df[name] = pd.array(column.tolist(), dtype="boolean")
        elif dtype == "date":
            df[name] = pd.to_datetime(pd.Series(column.tolist(), dtype=object)).astype(
                "datetime64[s]"
            )
        else:
            df[name] = column.astype("str").where(column.notna(), None)
    df[ASSUMED_COLUMN] = df[ASSUMED_COLUMN].astype("str")
    geometry = gpd.GeoSeries(shapely.points(df["lon"].to_numpy(), df["lat"].to_numpy()), crs=WGS84)
    gdf = gpd.GeoDataFrame(df, geometry=geometry)
    return gdf.to_crs(crs) if crs is not None else gdf


def load_facilities(
    path: str | Path,
    *,
    crs: str = "wgs84",
    defaults: Mapping[str, object] | None = None,
    columns: Mapping[str, str] | None = None,
    value_map: Mapping[str, Mapping[object, object]] | None = None,
    area_polygon: AreaLike | None = None,
    metric_crs: CRS | str | int | None = None,
    reference_points_wgs84: npt.ArrayLike | None = None,
    area_code: str | None = None,
) -> FacilityLoadResult:
    """Load and validate a facility registry (CSV, XLSX or GeoJSON).

    Parameters
    ----------
    path
        The registry file. CSV in UTF-8 (with or without BOM) or GBK/GB18030; XLSX (first
        worksheet with data); GeoJSON points (the geometry gives lon/lat).
    crs
        Coordinate system of the coordinates (``wgs84``, ``gcj02``, ``bd09``, EPSG code);
        a ``坐标系``/``crs`` column overrides it per row.
    defaults
        Values for fields a row leaves empty (e.g. ``{"puhui": True}``), listed per row
        in ``assumed_fields``.
    columns
        Schema field → file column, for headers the loader does not recognise.
    value_map
        Per field, file value → schema value (e.g. ``{"kind": {"幼儿园": "托幼一体"}}``).
    area_polygon
        Study area (shapely geometry in WGS84, or a GeoSeries/GeoDataFrame with a CRS,
        e.g. the loaded 街道): points outside are rejected; also the reference for the
        GCJ-02 check when no ``reference_points_wgs84`` are given.
    metric_crs
        Output CRS; default the UTM zone of the facilities.
    reference_points_wgs84
        ``(m, 2)`` WGS84 lon/lat of walking-network nodes, for the GCJ-02 check.
    area_code
        The study area's GB/T 2260 code (``[area] code``): a district code, or a 9/12-digit
        街道 code, of another district is rejected (the field is emptied and reported).

    Returns
    -------
    FacilityLoadResult

    Raises
    ------
    DataNotFoundError
        Missing file.
    EmptyInputError
        The file holds no data rows.
    CRSError
        Unknown ``crs`` or a geographic ``metric_crs``.
    InputValidationError
        Unreadable file (e.g. neither UTF-8 nor GBK), unknown fields in ``columns``,
        ``defaults`` or ``value_map``.
    """
    path = Path(path)
    declared = parse_crs_name(crs)
    out_crs = _metric_crs(metric_crs)
    area = area_wgs84(area_polygon) if area_polygon is not None else None
    if not path.is_file():
        raise DataNotFoundError(f"facility file not found: {path}")
    table = guarded_read(read_table, path)
    opts = _options(path, crs, defaults, value_map, area_code)
    mapping, warnings = _column_mapping(table, columns)
    warnings = [*table.notes, *warnings]
    if table.crs_hint is not None:
        try:
            hinted = parse_row_crs(table.crs_hint)
        except CRSError:
            hinted = None
        if hinted is not None and _crs_key(hinted) != _crs_key(declared):
            warnings.append(
                f"{path}: the file says its coordinates are {table.crs_hint}, but crs = "
                f"'{crs}' was declared; the declared one is used (文件自称坐标系与声明不一致)"
            )
    coordinate_columns = [c for f in ("lon", "lat") for c in mapping.get(f, [])]
    if table.kind == "geojson" and coordinate_columns:
        warnings.append(
            f"{path}: point geometries give the coordinates; columns "
            f"{', '.join(coordinate_columns)} are used only for features without geometry"
        )
    records = [_parse_raw_row(raw_row, mapping, opts) for raw_row in table.rows]
    _to_wgs84(records, opts)
    reference: npt.ArrayLike | BaseGeometry | None = (
        reference_points_wgs84 if reference_points_wgs84 is not None else area
    )
    if reference is not None:
        warnings.extend(_gcj_warning(records, reference, path))
    if area is not None:
        _check_area(records, area, opts)
    _reject_duplicates(records, opts)
    warnings.extend(_fill_ids(records, opts))
    warnings.extend(_summarise_notes(records, str(path)))
    usable = [r for r in records if r.usable]
    if out_crs is None and usable:
        lon = np.array([_num(r.values["lon"]) for r in usable])
        lat = np.array([_num(r.values["lat"]) for r in usable])
        out_crs = utm_crs_for(
            float((lon.min() + lon.max()) / 2.0), float((lat.min() + lat.max()) / 2.0)
        )
    elif out_crs is None and area is not None:
        out_crs = utm_crs_for(area.centroid.x, area.centroid.y)
    if not usable:
        warnings.append(f"{path}: no usable facility record (无可用记录); see the rejects")
    facilities = records_frame([_finish_record(r) for r in usable], out_crs)
    rejects = rejects_frame([rej for r in records for rej in r.rejects])
    return FacilityLoadResult(facilities, rejects, warnings)


def _parse_raw_row(raw_row: RawRow, mapping: Mapping[str, list[str]], opts: _Options) -> _Record:
    fields: dict[str, object] = {}
    for name, cols in mapping.items():
        if len(cols) == 1:
            if cols[0] in raw_row.values:
                fields[name] = raw_row.values[cols[0]]
            continue
        present = [c for c in cols if c in raw_row.values]
        if present:
            fields[name] = next(
                (raw_row.values[c] for c in present if not _is_null(raw_row.values[c])),
                raw_row.values[present[0]],
            )
    if raw_row.point is not None:
        fields["lon"], fields["lat"] = raw_row.point
    record = _parse_fields(fields, raw_row.number, opts, raw_row.geometry_problem)
    if raw_row.geometry_problem is not None and record.usable:
        record.notes.append(
            ("geometry", f"{raw_row.geometry_problem}; lon/lat columns used instead")
        )
    return record


def _gcj_warning(
    records: Sequence[_Record], reference: npt.ArrayLike | BaseGeometry, path: Path
) -> list[str]:
    declared_wgs = [r for r in records if r.usable and r.declared_crs == "wgs84"]
    if len(declared_wgs) < _GCJ_MIN_POINTS:
        return []
    pts = np.array([[_num(r.values["lon"]), _num(r.values["lat"])] for r in declared_wgs])
    check = gcj02_check(pts, reference)
    if not check.suspected:
        return []
    if check.method == "inside reference area":
        detail = (
            f"{check.score_as_given:.0%} of them lie outside the study area as given, "
            f"{check.score_as_gcj02:.0%} when read as GCJ-02"
        )
    else:
        detail = (
            f"median distance to the walking network {check.score_as_given:.0f} m as given, "
            f"{check.score_as_gcj02:.0f} m when read as GCJ-02"
        )
    return [
        f"{path}: {check.n_points} points declared WGS84 look like GCJ-02 (Amap/Tencent) "
        f"coordinates, systematically ~{check.offset_m:.0f} m off: {detail}. Check the "
        'source and declare crs = "gcj02" if so (坐标疑似为GCJ-02火星坐标却声明为WGS84)'
    ]


def _reject_duplicates(records: Sequence[_Record], opts: _Options) -> None:
    first_row: dict[str, int] = {}
    for record in records:
        fid = record.values["id"]
        if fid is None:
            continue
        key = str(fid)
        if key in first_row:
            record.reject_row(
                opts, "id", key, f"duplicate id (编号重复), first at row {first_row[key]}"
            )
        else:
            first_row[key] = record.row


def _fill_ids(records: Sequence[_Record], opts: _Options) -> list[str]:
    taken = {str(r.values["id"]) for r in records if r.values["id"] is not None}
    generated: list[str] = []
    for record in records:
        if not record.usable or record.values["id"] is not None:
            continue
        base = _generate_id(opts, record.row)
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}-{n}"
        record.values["id"] = candidate
        taken.add(candidate)
        generated.append(candidate)
    if not generated:
        return []
    return [
        f"{opts.source}: {len(generated)} row(s) without id got generated ids "
        f"(无编号, 已自动生成), e.g. '{generated[0]}'"
    ]


__all__ = [
    "AreaLike",
    "FacilityLoadResult",
    "Gcj02Check",
    "area_wgs84",
    "detect_gcj02_declared_wgs84",
    "district_prefix",
    "field_for_header",
    "gcj02_check",
    "load_facilities",
    "parse_row_crs",
    "reconcile_class_slots",
    "validate_facility_record",
]
