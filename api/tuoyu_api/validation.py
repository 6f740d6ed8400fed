"""Validation of registry writes: the same rules as the facility file loader.

Pydantic (:class:`tuoyu_api.schemas.FacilityIn`) checks types and vocabularies (with the
loader's bounds from :mod:`tuoyu.layers.schema`); this module adds the rules that look at
several fields and raises :class:`tuoyu.errors.InputValidationError` naming the field:

- lat/lon swapped, or a point outside China (checked in the submitted system);
- 托位 by class against the total (:func:`tuoyu.layers.facilities.reconcile_class_slots`:
  the classes sent are summed into a missing total, a total that differs is refused);
- fields left out of the body are filled from the area's ``[facilities] defaults`` and
  listed in ``assumed_fields``;
- coordinates converted to WGS84.

Every write is normalised by the file loader's own
:func:`tuoyu.layers.facilities.validate_facility_record` (one rule set: class sums,
ranges, 普惠 parsing, service modes, district code (6 digits, and of the study area's
district: ``[area] code``), datum conversion, the outside-China and swapped checks), so
the command line accepts nothing the service refuses and the same record gives the same
values through both doors.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError
from tuoyu.config.study_area import StudyArea
from tuoyu.crs.china import outside_china
from tuoyu.errors import AreaConfigError, InputValidationError
from tuoyu.layers.facilities import (
    FIELD_EMPTIED,
    ROW_SKIPPED,
    reconcile_class_slots,
    validate_facility_record,
)
from tuoyu.layers.schema import AGE_CLASSES, FACILITY_FIELDS, SERVICE_MODES

from tuoyu_api.schemas import CHINA_LAT, CHINA_LON, FacilityIn

RECORD_FIELDS: tuple[str, ...] = ("id", *[f for f in FACILITY_FIELDS if f != "id"])
"""Keys of a clean facility record (plus ``assumed_fields``)."""

_SPLIT_MODES = re.compile(r"[,，、;；/|\s]+")


def loader_validator() -> Callable[..., Any] | None:
    """The facility loader's ``validate_facility_record``, or ``None`` until it exists."""
    try:
        module = importlib.import_module("tuoyu.layers.facilities")
    except ImportError:
        return None
    func = getattr(module, "validate_facility_record", None)
    return func if callable(func) else None


def check_coordinates(lon: float, lat: float) -> None:
    """Refuse swapped or out-of-China coordinates, naming the field at fault.

    Raises
    ------
    InputValidationError
        ``field='lat'`` when lat/lon look swapped (the point is in China only with the
        two exchanged), ``field='lon'`` or ``'lat'`` for a point outside China.
    """
    if not bool(outside_china(lon, lat)):
        return
    if abs(lon) <= 90 and not bool(outside_china(lat, lon)):
        raise InputValidationError(
            f"lat/lon look swapped: lon={lon}, lat={lat} lies in China only with the two "
            "exchanged; send longitude (经度, ~73–135 in China) as lon",
            field="lat",
        )
    field = "lon" if not CHINA_LON[0] <= lon <= CHINA_LON[1] else "lat"
    raise InputValidationError(
        f"point lon={lon}, lat={lat} lies outside China "
        f"(lon {CHINA_LON[0]}–{CHINA_LON[1]}, lat {CHINA_LAT[0]}–{CHINA_LAT[1]})",
        field=field,
    )


def check_slots(record: dict[str, Any]) -> None:
    """Check 托位 by class against the total with the loader's rule (one rule set).

    The classes present in ``record`` are the classes given (see
    :func:`tuoyu.layers.facilities.reconcile_class_slots`). Modifies ``record`` in place
    when ``slots`` is unknown and every given class is known.

    Raises
    ------
    InputValidationError
        ``field='slots'`` when the classes do not add up to the given total.
    """
    classes = {name: record[name] for name in AGE_CLASSES if name in record}
    slots, _note, problem = reconcile_class_slots(classes, record.get("slots"))
    if problem is not None:
        raise InputValidationError(problem, field="slots")
    record["slots"] = slots


def _first_error(exc: ValidationError) -> InputValidationError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    return InputValidationError(first["msg"], field=field)


def _with_defaults(body: FacilityIn, area: StudyArea | None) -> tuple[FacilityIn, list[str]]:
    defaults = area.facilities.defaults if area is not None and area.facilities else {}
    missing = {k: v for k, v in defaults.items() if k not in body.model_fields_set}
    if not missing:
        return body, []
    unknown = sorted(set(missing) - set(FacilityIn.model_fields))
    if unknown:
        raise AreaConfigError(f"[facilities] defaults name unknown fields: {', '.join(unknown)}")
    data = body.model_dump(exclude_unset=True)
    data.update(missing)
    try:
        merged = FacilityIn.model_validate(data)
    except ValidationError as exc:
        raise AreaConfigError(f"[facilities] defaults are invalid: {_first_error(exc)}") from exc
    return merged, sorted(missing)


def _reason(text: str) -> str:
    """A loader reject's reason without what the file loader then did with the row."""
    for tail in (f"; {FIELD_EMPTIED}", f"; {ROW_SKIPPED}"):
        text = text.removesuffix(tail)
    return text


def _normalise(
    sent: dict[str, Any],
    crs: str,
    area: StudyArea | None,
    row: int | None,
    area_polygon: Any | None,
) -> dict[str, Any]:
    """The loader's :func:`validate_facility_record` on the fields sent; first reject → 422.

    Only the fields of the body (and the area defaults already merged into it) are
    given, so 托位 by class are summed exactly as for a file with those columns. Any
    reject refuses the write: a file row keeps going with the field emptied, an API
    client can fix and resend.
    """
    facilities = area.facilities if area is not None else None
    raw = dict(sent)
    if raw.get("service_modes") is not None:
        raw["service_modes"] = "、".join(raw["service_modes"])
    if raw.get("registered_on") is not None:
        raw["registered_on"] = raw["registered_on"].isoformat()
    raw["crs"] = crs
    value_map: dict[str, Mapping[object, object]] = {}
    for name, mapping in (facilities.value_map if facilities else {}).items():
        value_map[name] = {key: value for key, value in mapping.items()}  # widen the key type
    clean, rejects = validate_facility_record(
        raw,
        default_crs=crs,
        defaults={},
        value_map=value_map,
        source="api",
        row=row,
        area_polygon=area_polygon,
        area_code=area.area.code if area is not None else None,
    )
    if rejects:
        first = rejects[0]
        raise InputValidationError(_reason(first.reason), field=first.field, row=row)
    if clean is None:  # a record without rejects is always usable
        raise InputValidationError("record cannot be used", row=row)
    return clean


def validate_facility_write(
    body: FacilityIn,
    area: StudyArea | None = None,
    *,
    row: int | None = None,
    area_polygon: Any | None = None,
) -> dict[str, Any]:
    """Turn a parsed request body into a clean registry record.

    Parameters
    ----------
    body
        The parsed body (types already checked).
    area
        The study area (its ``[facilities] defaults`` fill fields left out).
    row
        Row number for error messages (seeding), ``None`` for API writes.
    area_polygon
        Study-area polygon (shapely, WGS84) when known: points outside it are refused by
        the loader's check.

    Returns
    -------
    dict
        ``RECORD_FIELDS`` plus ``assumed_fields``: ``lon``/``lat`` in WGS84, ``crs`` the
        system they were submitted in, ``service_modes`` a list in canonical order.

    Raises
    ------
    InputValidationError
        Swapped or out-of-China coordinates, inconsistent 托位 (field named).
        Any problem the facility loader reports (e.g. outside the study area).
    AreaConfigError
        The area's defaults are themselves invalid.
    """
    merged, assumed = _with_defaults(body, area)
    try:
        check_coordinates(merged.lon, merged.lat)
    except InputValidationError as exc:
        raise InputValidationError(exc.reason, field=exc.field, row=row) from exc
    sent = merged.model_dump(exclude_unset=True)
    clean = _normalise(sent, merged.crs, area, row, area_polygon)
    record: dict[str, Any] = {name: clean.get(name) for name in RECORD_FIELDS}
    record["id"] = merged.id  # generated on create when omitted, not by the loader
    record["crs"] = merged.crs  # the system it was submitted in; lon/lat are WGS84
    modes = clean.get("service_modes")
    record["service_modes"] = (
        [m for m in SERVICE_MODES if m in set(str(modes).split("、"))] if modes else None
    )
    record["lon"], record["lat"] = float(str(clean["lon"])), float(str(clean["lat"]))
    record["assumed_fields"] = assumed
    return record


# --- records from a loaded facility file (seeding) --------------------------------------


def _plain(value: Any) -> Any:
    """A plain Python value: NaN/NA/NaT → None, numpy scalars → Python, Timestamps → date."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, list | tuple | dict | str):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    type_name = type(value).__name__
    if type_name in ("NAType", "NaTType"):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if type_name == "Timestamp":
        return value.date()
    return value


def _as_list(value: Any) -> list[str] | None:
    value = _plain(value)
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p for p in _SPLIT_MODES.split(value.strip()) if p]
        return parts or None
    return [str(v) for v in value]


def record_from_loaded(raw: Mapping[str, Any], *, row: int) -> dict[str, Any]:
    """Validate one facility as produced by the file loader (WGS84 lon/lat).

    The loader has already converted coordinates to WGS84 and applied the area's
    defaults; its ``crs`` column (the file's system) is kept as the source system and
    ``assumed_fields`` is carried over.

    Raises
    ------
    InputValidationError
        Naming ``row`` and the field at fault.
    """
    data = {k: _plain(raw.get(k)) for k in RECORD_FIELDS if k in raw}
    source_crs = str(data.pop("crs", None) or "wgs84").strip().lower().replace("-", "")
    if source_crs not in ("wgs84", "gcj02", "bd09"):
        source_crs = "wgs84"
    if "service_modes" in data:
        data["service_modes"] = _as_list(data["service_modes"])
    if data.get("id") is not None:
        data["id"] = str(data["id"])
    if data.get("district_code") is not None:
        data["district_code"] = str(data["district_code"])
    for name in (*AGE_CLASSES, "slots", "enrolled"):
        value = data.get(name)
        if isinstance(value, float) and value.is_integer():
            data[name] = int(value)  # a count column with gaps arrives as floats
    data["crs"] = "wgs84"
    try:
        body = FacilityIn.model_validate(data)
    except ValidationError as exc:
        err = _first_error(exc)
        raise InputValidationError(err.reason, field=err.field, row=row) from exc
    if body.id is None:
        raise InputValidationError("facility has no id", field="id", row=row)
    record = body.model_dump()
    try:
        check_coordinates(record["lon"], record["lat"])
        check_slots(record)
    except InputValidationError as exc:
        raise InputValidationError(exc.reason, field=exc.field, row=row) from exc
    if record["service_modes"] is not None:
        record["service_modes"] = [m for m in SERVICE_MODES if m in set(record["service_modes"])]
    record["crs"] = source_crs
    record["assumed_fields"] = sorted(_as_list(raw.get("assumed_fields")) or [])
    return record
