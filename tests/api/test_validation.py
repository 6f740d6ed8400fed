"""Write validation: types (pydantic) and cross-field rules, coordinates to WGS84."""

from __future__ import annotations

import math
from typing import get_args

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from tuoyu.config.study_area import load_area
from tuoyu.crs.china import convert
from tuoyu.errors import InputValidationError
from tuoyu.layers.schema import AGE_CLASSES, FACILITY_KINDS, OWNERSHIP, SERVICE_MODES
from tuoyu_api.schemas import (
    SAMPLE_FACILITY,
    AgeClass,
    FacilityIn,
    FacilityKind,
    Ownership,
    ServiceMode,
)
from tuoyu_api.validation import (
    check_coordinates,
    check_slots,
    record_from_loaded,
    validate_facility_write,
)


def test_literal_vocabularies_match_the_shared_schema() -> None:
    assert list(get_args(FacilityKind)) == list(FACILITY_KINDS)
    assert list(get_args(ServiceMode)) == list(SERVICE_MODES)
    assert list(get_args(Ownership)) == list(OWNERSHIP)
    names = [v[0] for v in AGE_CLASSES.values()]
    assert list(get_args(AgeClass)) == [*AGE_CLASSES, *names]


def test_sample_is_valid_and_kept_in_wgs84() -> None:
    record = validate_facility_write(FacilityIn.model_validate(SAMPLE_FACILITY))
    assert record["lon"] == SAMPLE_FACILITY["lon"] and record["lat"] == SAMPLE_FACILITY["lat"]
    assert record["crs"] == "wgs84"
    assert record["slots"] == 80
    assert record["service_modes"] == ["全日托", "临时托"]
    assert record["assumed_fields"] == []


@pytest.mark.parametrize("crs", ["gcj02", "bd09", "GCJ-02"])
def test_china_datums_are_converted_to_wgs84(crs: str) -> None:
    wgs_lon, wgs_lat = 106.5775, 29.5583
    src = crs.lower().replace("-", "")
    lon, lat = convert(wgs_lon, wgs_lat, "wgs84", src)
    body = FacilityIn.model_validate({"lon": float(lon), "lat": float(lat), "crs": crs})
    record = validate_facility_write(body)
    # Back to the original point within 1e-7 degrees (~1 cm); the offset itself is ~300-600 m.
    assert abs(record["lon"] - wgs_lon) < 1e-7 and abs(record["lat"] - wgs_lat) < 1e-7
    assert abs(float(lon) - wgs_lon) > 1e-3
    assert record["crs"] == src


def test_swapped_coordinates_are_named() -> None:
    with pytest.raises(InputValidationError, match="swapped") as info:
        check_coordinates(29.5583, 106.5775)
    assert info.value.field == "lat"
    # A western-China point whose swapped latitude is still below 90°.
    with pytest.raises(InputValidationError, match="swapped"):
        check_coordinates(39.5, 75.9)


@pytest.mark.parametrize(
    ("lon", "lat", "field"), [(2.35, 48.85, "lon"), (-74.0, 40.7, "lon"), (110.0, -10.0, "lat")]
)
def test_points_outside_china_are_refused(lon: float, lat: float, field: str) -> None:
    with pytest.raises(InputValidationError, match="outside China") as info:
        check_coordinates(lon, lat)
    assert info.value.field == field


def test_slots_total_is_checked_and_derived() -> None:
    record = {"slots_infant": 5, "slots_toddler": 10, "slots_preschool": 15, "slots": None}
    check_slots(record)
    assert record["slots"] == 30
    with pytest.raises(InputValidationError, match="add up to 30") as info:
        check_slots({**record, "slots": 31})
    assert info.value.field == "slots"
    with pytest.raises(InputValidationError, match="exceed"):
        check_slots(
            {"slots_infant": 20, "slots_toddler": None, "slots_preschool": None, "slots": 10}
        )
    partial = {"slots_infant": 5, "slots_toddler": None, "slots_preschool": None, "slots": None}
    check_slots(partial)
    assert partial["slots"] is None  # unknown stays unknown


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"kind": "幼儿园"}, "kind"),
        ({"slots_toddler": -3}, "slots_toddler"),
        ({"slots": "30个"}, "slots"),
        ({"lon": float("nan")}, "lon"),
        ({"crs": "mars2000"}, "crs"),
        ({"service_modes": ["夜托"]}, "service_modes.0"),
        ({"name": "bad\x00name"}, "name"),
        ({"district_code": "5001"}, "district_code"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"id": "has/slash"}, "id"),
    ],
)
def test_bad_types_are_refused_with_the_field(patch: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        FacilityIn.model_validate({**SAMPLE_FACILITY, **patch})
    locs = [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]
    assert field in locs


def test_area_defaults_fill_missing_fields_only() -> None:
    dongcheng = load_area("beijing-dongcheng")  # defaults = { puhui = true }
    left_out = validate_facility_write(
        FacilityIn.model_validate({"lon": 116.41, "lat": 39.91, "crs": "gcj02"}), dongcheng
    )
    assert left_out["puhui"] is True and left_out["assumed_fields"] == ["puhui"]
    explicit_null = validate_facility_write(
        FacilityIn.model_validate({"lon": 116.41, "lat": 39.91, "puhui": None}), dongcheng
    )
    assert explicit_null["puhui"] is None and explicit_null["assumed_fields"] == []
    explicit = validate_facility_write(
        FacilityIn.model_validate({"lon": 116.41, "lat": 39.91, "puhui": False}), dongcheng
    )
    assert explicit["puhui"] is False and explicit["assumed_fields"] == []


def test_records_from_the_loader_are_normalised() -> None:
    raw = {
        "id": np.int64(17),
        "name": "七星岗托育园",
        "lon": np.float64(106.56),
        "lat": 29.55,
        "crs": "GCJ02",
        "kind": "社区托育点",
        "puhui": pd.NA,
        "slots": np.float64(30.0),
        "enrolled": math.nan,
        "service_modes": "全日托、计时托",
        "registered_on": pd.Timestamp("2023-06-01"),
        "assumed_fields": "kind;puhui",
    }
    record = record_from_loaded(raw, row=3)
    assert record["id"] == "17"
    assert record["lon"] == 106.56  # already WGS84: not converted again
    assert record["crs"] == "gcj02"  # the file's system, kept as the source system
    assert record["puhui"] is None and record["enrolled"] is None
    assert record["slots"] == 30
    assert record["service_modes"] == ["全日托", "计时托"]
    assert str(record["registered_on"]) == "2023-06-01"
    assert record["assumed_fields"] == ["kind", "puhui"]


def test_loader_records_errors_name_row_and_field() -> None:
    with pytest.raises(InputValidationError) as info:
        record_from_loaded({"id": "a", "lon": 106.5, "lat": 29.5, "slots": "30个"}, row=7)
    assert info.value.row == 7 and info.value.field == "slots"
    with pytest.raises(InputValidationError) as info:
        record_from_loaded({"id": "a", "lon": 29.5, "lat": 106.5}, row=2)
    assert info.value.row == 2 and info.value.field == "lat"
    with pytest.raises(InputValidationError, match="no id"):
        record_from_loaded({"lon": 106.5, "lat": 29.5}, row=1)
