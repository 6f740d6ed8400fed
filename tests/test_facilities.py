"""Facility registry loader, per-record validation, GCJ-02 detection and rejects.csv."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.settings import Settings
from tuoyu.crs.china import convert
from tuoyu.errors import CRSError, DataNotFoundError, EmptyInputError, InputValidationError
from tuoyu.layers.facilities import (
    FacilityLoadResult,
    detect_gcj02_declared_wgs84,
    field_for_header,
    gcj02_check,
    load_facilities,
    validate_facility_record,
)
from tuoyu.layers.rejects import REJECTS_FILE, Reject, rejects_frame, write_rejects
from tuoyu.layers.schema import ASSUMED_COLUMN, FACILITY_FIELDS, REJECTS_COLUMNS
from tuoyu.layers.units import load_units

FIXTURES = Path(__file__).parent / "fixtures" / "facilities"
UTF8_CSV = FIXTURES / "registry_utf8.csv"
GBK_CSV = FIXTURES / "registry_gbk.csv"
KINDERGARTENS = "beijing-dongcheng/kindergartens.geojson"
JIEDAO = "beijing-dongcheng/jiedao.geojson"
YUZHONG_PBF = "chongqing-yuzhong/yuzhong.osm.pbf"
DONGCHENG_OPTIONS = {"defaults": {"puhui": True}, "value_map": {"kind": {"幼儿园": "托幼一体"}}}


@pytest.fixture(scope="module")
def jiedao(settings: Settings) -> gpd.GeoDataFrame:
    return load_units(resolve_data_file(JIEDAO, settings), crs="gcj02")


@pytest.fixture(scope="module")
def dongcheng_wgs84(jiedao: gpd.GeoDataFrame) -> shapely.Geometry:
    """The district (union of the 17 街道), properly converted to WGS84."""
    return jiedao.to_crs(4326).union_all()


@pytest.fixture(scope="module")
def registry() -> FacilityLoadResult:
    return load_facilities(UTF8_CSV)


def _reasons(result: FacilityLoadResult, row: int) -> dict[str, str]:
    rows = result.rejects[result.rejects["row"] == row]
    return dict(zip(rows["field"], rows["reason"], strict=True))


def _by_id(result: FacilityLoadResult) -> pd.DataFrame:
    return result.facilities.set_index("id")


# --- real data: Dongcheng kindergartens -----------------------------------------------------


def test_dongcheng_kindergartens_lie_in_the_jiedao_they_name(
    settings: Settings, jiedao: gpd.GeoDataFrame
) -> None:
    path = resolve_data_file(KINDERGARTENS, settings)
    result = load_facilities(path, crs="gcj02", **DONGCHENG_OPTIONS)
    kg = result.facilities
    assert len(kg) == 64 and result.rejects.empty and result.warnings == []
    assert kg["id"].is_unique
    assert kg.crs.to_epsg() == 32650
    assert list(kg.columns) == [*FACILITY_FIELDS, ASSUMED_COLUMN, "geometry"]
    assert (kg["kind"] == "托幼一体").all()
    assert kg["puhui"].all() and (kg[ASSUMED_COLUMN] == "puhui").all()
    assert kg["slots"].isna().all()  # unknown stays unknown, never 0
    assert (kg["crs"] == "wgs84").all()
    joined = gpd.sjoin(kg, jiedao[["name", "geometry"]], predicate="within", how="left")
    assert (joined["jiedao"] == joined["name_right"]).sum() == 64
    # lon/lat are the GCJ-02 coordinates converted to WGS84
    raw = gpd.read_file(path)
    lon, lat = convert(raw.geometry.x.to_numpy(), raw.geometry.y.to_numpy(), "gcj02", "wgs84")
    np.testing.assert_allclose(kg["lon"], lon, atol=1e-12)
    np.testing.assert_allclose(kg["lat"], lat, atol=1e-12)
    # the check is discriminating: read as WGS84 many land in another 街道
    wrong = load_facilities(path, crs="wgs84", **DONGCHENG_OPTIONS).facilities
    joined = gpd.sjoin(wrong, jiedao[["name", "geometry"]], predicate="within", how="left")
    assert (joined["jiedao"] == joined["name_right"]).sum() < 50


def test_gcj02_declared_wgs84_is_detected_against_the_jiedao(
    settings: Settings, dongcheng_wgs84: shapely.Geometry
) -> None:
    path = resolve_data_file(KINDERGARTENS, settings)
    raw = gpd.read_file(path)
    gcj = np.column_stack([raw.geometry.x, raw.geometry.y])
    good = np.column_stack(convert(gcj[:, 0], gcj[:, 1], "gcj02", "wgs84"))
    assert detect_gcj02_declared_wgs84(gcj, dongcheng_wgs84)
    assert not detect_gcj02_declared_wgs84(good, dongcheng_wgs84)
    check = gcj02_check(gcj, dongcheng_wgs84)
    assert check.method == "inside reference area" and check.n_points == 64
    assert 400.0 < check.offset_m < 700.0  # the systematic ~0.5 km offset
    assert check.score_as_given > 0.15 and check.score_as_gcj02 == 0.0

    declared_wgs = load_facilities(path, crs="wgs84", area_polygon=dongcheng_wgs84)
    (warning,) = [w for w in declared_wgs.warnings if "look like GCJ-02" in w]
    assert "64 points" in warning and 'crs = "gcj02"' in warning
    assert any("the file says its coordinates are GCJ-02" in w for w in declared_wgs.warnings)
    outside = declared_wgs.rejects["reason"].str.contains("outside the study area")
    assert outside.sum() == 64 - len(declared_wgs.facilities) > 0
    right = load_facilities(path, crs="gcj02", area_polygon=dongcheng_wgs84, **DONGCHENG_OPTIONS)
    assert len(right.facilities) == 64 and right.rejects.empty and right.warnings == []


def _yuzhong_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(amenity/shop nodes, nodes of highway ways) of the Yuzhong extract, WGS84."""
    osmium = pytest.importorskip("osmium")
    highway_nodes: set[int] = set()
    for obj in osmium.FileProcessor(str(path), osmium.osm.WAY):
        if "highway" in obj.tags:
            highway_nodes.update(n.ref for n in obj.nodes)
    amenities, nodes = [], []
    for obj in osmium.FileProcessor(str(path), osmium.osm.NODE):
        xy = (obj.location.lon, obj.location.lat)
        if obj.id in highway_nodes:
            nodes.append(xy)
        if "amenity" in obj.tags or "shop" in obj.tags:
            amenities.append(xy)
    return np.array(amenities), np.array(nodes)


def test_gcj02_declared_wgs84_is_detected_against_network_nodes(
    settings: Settings, tmp_path: Path
) -> None:
    amenities, nodes = _yuzhong_points(resolve_data_file(YUZHONG_PBF, settings))
    assert len(amenities) > 40 and len(nodes) > 10_000
    as_gcj = np.column_stack(convert(amenities[:, 0], amenities[:, 1], "wgs84", "gcj02"))
    assert not detect_gcj02_declared_wgs84(amenities, nodes)
    assert detect_gcj02_declared_wgs84(as_gcj, nodes)
    check = gcj02_check(as_gcj, nodes)
    assert check.method == "nearest reference point"
    assert check.score_as_gcj02 < 0.6 * check.score_as_given
    # a control: the same points shifted ~500 m in a non-GCJ direction are not flagged
    moved = amenities + np.array([0.0, 0.0045])
    assert not detect_gcj02_declared_wgs84(moved, nodes)
    # through the loader, with the network as reference
    csv = tmp_path / "amap.csv"
    pd.DataFrame({"经度": as_gcj[:, 0], "纬度": as_gcj[:, 1]}).to_csv(csv, index=False)
    result = load_facilities(csv, reference_points_wgs84=nodes)
    assert any("look like GCJ-02" in w and "walking network" in w for w in result.warnings)
    assert len(result.facilities) == len(amenities)
    # too few points are never judged
    assert not detect_gcj02_declared_wgs84(as_gcj[:4], nodes)


# --- the hand-made registry -----------------------------------------------------------------


def test_registry_rows(registry: FacilityLoadResult) -> None:
    fac = _by_id(registry)
    assert sorted(fac.index) == [
        "A01", "A02", "A03", "A04", "A05", "A07", "A11", "A12", "A14", "A15",
        "registry_utf8-row-9",
    ]  # fmt: skip
    assert fac.loc["A01", "slots"] == 30  # "30个"
    assert fac.loc["A02", "slots"] == 25  # 0 + 10 + 15 from the classes
    assert fac.loc["A02", "slots_infant"] == 0  # a real zero stays zero
    assert fac.loc["A03", "slots"] == 30  # full-width "３０"
    assert fac.loc["registry_utf8-row-9", "slots"] == 30  # "30 个"
    assert pd.isna(fac.loc["A04", "slots"]) and pd.isna(fac.loc["A05", "slots"])
    assert pd.isna(fac.loc["registry_utf8-row-9", "puhui"])  # unknown 普惠 stays unknown
    assert fac.loc["A01", "puhui"] and not fac.loc["A02", "puhui"] and fac.loc["A03", "puhui"]
    assert not fac.loc["A05", "puhui"] and fac.loc["A04", "puhui"]  # 非普惠, 1
    assert pd.isna(fac.loc["A07", "kind"]) and fac.loc["A03", "kind"] == "托幼一体"
    assert fac.loc["A01", "service_modes"] == "全日托、半日托"
    assert fac.loc["A03", "service_modes"] == "计时托、临时托"
    assert fac.loc["A01", "registered_on"] == pd.Timestamp("2023-05-01")
    assert fac.loc["A02", "registered_on"] == pd.Timestamp("2024-03-05")  # 2024年3月5日
    assert fac.loc["A03", "registered_on"] == pd.Timestamp("2023-01-02")  # 20230102
    assert fac.loc["A01", "enrolled"] == 25 and fac.loc["A01", "jiedao"] == "东华门街道"
    # per-row coordinate systems
    gcj = convert(116.43, 39.89, "gcj02", "wgs84")
    assert fac.loc["A11", ["lon", "lat"]].tolist() == pytest.approx([float(v) for v in gcj])
    bd = convert(116.4365, 39.896, "bd09", "wgs84")
    assert fac.loc["A12", ["lon", "lat"]].tolist() == pytest.approx([float(v) for v in bd])
    assert fac.loc["A01", ["lon", "lat"]].tolist() == [116.41, 39.915]
    assert set(fac["crs"]) == {"wgs84"}
    assert registry.facilities.crs.to_epsg() == 32650


def test_registry_rejects(registry: FacilityLoadResult) -> None:
    rej = registry.rejects
    assert list(rej.columns) == list(REJECTS_COLUMNS)
    assert len(rej) == 9
    assert set(rej["file"]) == {str(UTF8_CSV)}
    assert "lat/lon swapped?" in _reasons(registry, 6)["lon/lat"]
    assert "row skipped" in _reasons(registry, 6)["lon/lat"]
    assert "negative" in _reasons(registry, 4)["slots"]
    assert "field left empty" in _reasons(registry, 4)["slots"]
    assert "not a number" in _reasons(registry, 5)["slots"]
    assert "unknown kind" in _reasons(registry, 7)["kind"]
    assert "duplicate id" in _reasons(registry, 8)["id"] and "row 1" in _reasons(registry, 8)["id"]
    assert "no coordinates" in _reasons(registry, 10)["lon"]
    assert "unknown coordinate system" in _reasons(registry, 13)["crs"]
    assert set(_reasons(registry, 14)) == {"service_modes", "registered_on"}
    values = dict(zip(rej["row"], rej["value"], strict=False))
    assert values[4] == "-5" and values[5] == "很多" and values[13] == "mars2000"


def test_registry_warnings(registry: FacilityLoadResult) -> None:
    text = "\n".join(registry.warnings)
    assert "columns not used: 备注" in text
    assert "registry_utf8-row-9" in text  # generated id noted
    assert "'30个' read as 30" in text and "'３０' read as 30" in text
    assert "slots = slots_infant + slots_toddler + slots_preschool = 25" in text


def test_gbk_csv_reads_like_utf8(registry: FacilityLoadResult) -> None:
    gbk = load_facilities(GBK_CSV)
    renamed = gbk.facilities.replace({"id": {"registry_gbk-row-9": "registry_utf8-row-9"}})
    pd.testing.assert_frame_equal(renamed, registry.facilities)
    pd.testing.assert_frame_equal(
        gbk.rejects.drop(columns="file"), registry.rejects.drop(columns="file")
    )


def test_utf8_with_bom(tmp_path: Path, registry: FacilityLoadResult) -> None:
    path = tmp_path / "registry_utf8.csv"
    path.write_bytes(b"\xef\xbb\xbf" + UTF8_CSV.read_bytes())
    pd.testing.assert_frame_equal(load_facilities(path).facilities, registry.facilities)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("編號,機構名稱,經度,緯度\nB1,東城區陽光托育中心,116.41,39.915\n", "big5"),
        ("番号,施設名,経度,緯度\nJ1,ひまわり保育園,139.70,35.60\n", "shift_jis"),
        ("id,name,lon,lat\n1,Crèche Zoé Müller,116.41,39.915\n", "cp1252"),
    ],
    ids=["big5", "shift_jis", "cp1252"],
)
def test_text_neither_utf8_nor_gbk_is_refused(tmp_path: Path, text: str, encoding: str) -> None:
    path = tmp_path / "registry.csv"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(InputValidationError, match="neither UTF-8 nor GBK") as info:
        load_facilities(path)
    assert "looks like" in str(info.value) and "CSV UTF-8" in str(info.value)
    assert info.value.path == str(path)


def test_committed_big5_fixture_is_refused() -> None:
    with pytest.raises(InputValidationError, match="looks like big5"):
        load_facilities(FIXTURES / "registry_big5.csv")


def test_binary_file_named_csv_is_refused(tmp_path: Path) -> None:
    xlsx = _write_xlsx(tmp_path / "r.xlsx", [["id", "lon", "lat"], ["1", 116.41, 39.915]])
    fake = tmp_path / "r.csv"
    fake.write_bytes(xlsx.read_bytes())
    with pytest.raises(InputValidationError, match="binary"):
        load_facilities(fake)


def test_area_polygon_rejects_points_outside(
    dongcheng_wgs84: shapely.Geometry, jiedao: gpd.GeoDataFrame
) -> None:
    result = load_facilities(UTF8_CSV, area_polygon=dongcheng_wgs84)
    # the 街道 layer itself (metric CRS) works as the area too
    from_layer = load_facilities(UTF8_CSV, area_polygon=jiedao)
    pd.testing.assert_frame_equal(from_layer.facilities, result.facilities)
    assert "A15" not in set(result.facilities["id"])
    assert len(result.facilities) == 10
    reason = _reasons(result, 15)["lon/lat"]
    assert "outside the study area" in reason
    gap_m = float(reason.split("), ")[1].split(" m")[0].replace(",", ""))
    assert 5_000 < gap_m < 20_000  # 116.60° E is well east of Dongcheng
    assert not any("GCJ-02" in w for w in result.warnings)


# --- other formats ---------------------------------------------------------------------------


def _write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def test_xlsx_registry(tmp_path: Path) -> None:
    path = _write_xlsx(
        tmp_path / "registry.xlsx",
        [
            ["编号", "Name", "Longitude", "Latitude", "托位数(个)", "普惠", "区县代码", "备案日期"],
            [101, "甲托育", 116.41, 39.915, 20.0, "否", 110101, dt.datetime(2023, 5, 1)],
            [None, None, None, None, None, None, None, None],
            [102, "乙托育", 116.42, 39.95, "30个", "是", 110101, "2024/3/5"],
            [103, "丙托育", 116.42, 39.95, 2.5, "maybe", "11O101", None],
        ],
    )
    result = load_facilities(path)
    fac = _by_id(result)
    assert fac.index.tolist() == ["101", "102", "103"]
    assert fac.loc["101", "slots"] == 20 and fac.loc["102", "slots"] == 30
    assert fac.loc["101", "district_code"] == "110101"
    assert fac.loc["101", "registered_on"] == pd.Timestamp("2023-05-01")
    assert fac.loc["102", "registered_on"] == pd.Timestamp("2024-03-05")
    assert not fac.loc["101", "puhui"] and fac.loc["102", "puhui"]
    reasons = _reasons(result, 4)  # the blank row still counts
    assert set(reasons) == {"slots", "puhui", "district_code"}
    assert "whole number" in reasons["slots"]


def test_geojson_registry() -> None:
    result = load_facilities(FIXTURES / "registry.geojson")
    fac = _by_id(result)
    assert fac.index.tolist() == ["G1", "G3"]
    assert fac.loc["G1", "kind"] == "社区托育点"  # English label accepted
    assert fac.loc["G1", "ownership"] == "公办" and fac.loc["G1", "puhui"]
    assert fac.loc["G1", "slots"] == 12
    # G3 has no geometry: its 经度/纬度 and 托位数 properties are used
    assert fac.loc["G3", ["lon", "lat"]].tolist() == [116.42, 39.95]
    assert fac.loc["G3", "slots"] == 18 and not fac.loc["G3", "puhui"]
    assert "expected Point" in _reasons(result, 2)["geometry"]
    assert "no coordinates" in _reasons(result, 4)["lon"]


def test_explicit_columns_and_value_map(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "机构,X坐标,Y坐标,容量,属性,性质\n"
        "甲,116.41,39.915,20,托育园,普惠园\n"
        "乙,116.42,39.95,15,社区点,非普惠\n",
        "utf-8",
    )
    result = load_facilities(
        path,
        columns={
            "name": "机构",
            "lon": "X坐标",
            "lat": "Y坐标",
            "slots": "容量",
            "kind": "属性",
            "puhui": "性质",
        },
        value_map={
            "kind": {"托育园": "社会力量办托", "社区点": "社区托育点"},
            "puhui": {"普惠园": True},
        },
    )
    fac = result.facilities
    assert fac["kind"].tolist() == ["社会力量办托", "社区托育点"]
    assert fac["puhui"].tolist() == [True, False]
    assert fac["slots"].tolist() == [20, 15] and result.rejects.empty
    with pytest.raises(InputValidationError, match="unknown field 'capacity'"):
        load_facilities(path, columns={"capacity": "容量"})
    with pytest.raises(InputValidationError, match="lacks") as info:
        load_facilities(path, columns={"slots": "托位"})
    assert info.value.field == "托位"
    with pytest.raises(InputValidationError, match="value_map names unknown field"):
        load_facilities(path, value_map={"type": {"a": "b"}})


def test_defaults_fill_only_missing_values(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "编号,经度,纬度,普惠,机构类型\n"
        "1,116.41,39.915,,\n"
        "2,116.41,39.915,否,社区托育点\n"
        "3,116.41,39.915,maybe,未知\n",
        "utf-8",
    )
    result = load_facilities(path, defaults={"puhui": True, "kind": "托幼一体"})
    fac = _by_id(result)
    assert fac.loc["1", "puhui"] and fac.loc["1", "kind"] == "托幼一体"
    assert fac.loc["1", ASSUMED_COLUMN] == "kind,puhui"  # schema order
    assert not fac.loc["2", "puhui"] and fac.loc["2", ASSUMED_COLUMN] == ""
    # an invalid value is rejected and stays null; "未知" is unknown and takes the default
    assert pd.isna(fac.loc["3", "puhui"]) and fac.loc["3", "kind"] == "托幼一体"
    assert fac.loc["3", ASSUMED_COLUMN] == "kind"
    with pytest.raises(InputValidationError, match="unusable") as info:
        load_facilities(path, defaults={"kind": "幼儿园"})
    assert info.value.field == "kind"
    with pytest.raises(InputValidationError, match="cannot set 'id'"):
        load_facilities(path, defaults={"id": "x"})


@pytest.mark.parametrize(
    "content",
    [b"", b"  \r\n", "编号,经度,纬度\n".encode(), b'{"type": "FeatureCollection", "features": []}'],
)
def test_empty_files(tmp_path: Path, content: bytes) -> None:
    suffix = ".geojson" if content.startswith(b"{") else ".csv"
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(content)
    with pytest.raises(EmptyInputError):
        load_facilities(path)


def test_empty_xlsx(tmp_path: Path) -> None:
    with pytest.raises(EmptyInputError, match="no data rows"):
        load_facilities(_write_xlsx(tmp_path / "e.xlsx", [["编号", "经度", "纬度"]]))


def test_missing_file_unknown_crs_and_formats(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="not found"):
        load_facilities(tmp_path / "nope.csv")
    with pytest.raises(CRSError, match="mars2000"):
        load_facilities(UTF8_CSV, crs="mars2000")
    with pytest.raises(CRSError, match="not a projected"):
        load_facilities(UTF8_CSV, metric_crs=4326)
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputValidationError, match=r"\.xls"):
        load_facilities(tmp_path / "old.xls")
    (tmp_path / "broken.xlsx").write_bytes(b"not a zip file")
    with pytest.raises(InputValidationError, match=r"not a readable \.xlsx"):
        load_facilities(tmp_path / "broken.xlsx")
    (tmp_path / "r.parquet").write_bytes(b"PAR1")
    with pytest.raises(InputValidationError, match="unsupported file type"):
        load_facilities(tmp_path / "r.parquet")


def test_all_rows_rejected_gives_empty_frame_with_columns(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("编号,经度,纬度\n1,39.9,116.4\n2,,\n", "utf-8")
    result = load_facilities(path)
    assert result.facilities.empty
    assert list(result.facilities.columns) == [*FACILITY_FIELDS, ASSUMED_COLUMN, "geometry"]
    assert len(result.rejects) == 2 and any("no usable" in w for w in result.warnings)


def test_metric_crs_is_honoured() -> None:
    result = load_facilities(UTF8_CSV, metric_crs="EPSG:4547")  # CGCS2000 / 3-degree GK CM 114E
    assert result.facilities.crs.to_epsg() == 4547
    back = result.facilities.to_crs(4326)
    np.testing.assert_allclose(back.geometry.x, result.facilities["lon"], atol=1e-7)


# --- one record (the API's door) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30个", 30), ("30 个", 30), ("３０", 30), ("３０个", 30), ("1,200", 1200), (30.0, 30),
     ("30.0", 30), (0, 0), ("12人", 12)],
)  # fmt: skip
def test_counts_are_cleaned(value: object, expected: int) -> None:
    record, rejects = validate_facility_record({"lon": 116.41, "lat": 39.915, "slots": value})
    assert rejects == [] and record is not None and record["slots"] == expected


@pytest.mark.parametrize("value", ["-5", "很多", "2.5", True, "三十", "30个 托位 以上"])
def test_bad_counts_reject_the_field_not_the_row(value: object) -> None:
    record, rejects = validate_facility_record(
        {"lon": 116.41, "lat": 39.915, "slots": value}, source="api", row=7
    )
    assert record is not None and record["slots"] is None
    assert [(r.file, r.row, r.field) for r in rejects] == [("api", 7, "slots")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("是", True), ("否", False), ("1", True), (0, False), ("true", True), ("FALSE", False),
     ("普惠", True), ("非普惠", False), (True, True), ("未知", None), ("", None)],
)  # fmt: skip
def test_puhui_vocabulary(value: object, expected: bool | None) -> None:
    record, rejects = validate_facility_record({"lon": 116.41, "lat": 39.915, "普惠": value})
    assert rejects == [] and record is not None and record["puhui"] is expected


def test_validate_facility_record() -> None:
    notes: list[str] = []
    record, rejects = validate_facility_record(
        {"机构名称": "甲", "经度": "116.4300", "纬度": "39.8900", "坐标系": "高德", "托位数": "30个",
         "备注": "x"},
        source="api", row=3, notes=notes, defaults={"puhui": True},
    )  # fmt: skip
    assert rejects == [] and record is not None
    assert record["id"] == "api-row-3" and record["slots"] == 30 and record["crs"] == "wgs84"
    assert record["puhui"] is True and record[ASSUMED_COLUMN] == "puhui"
    expected = convert(116.43, 39.89, "gcj02", "wgs84")
    assert (record["lon"], record["lat"]) == pytest.approx(tuple(float(v) for v in expected))
    assert any("'30个' read as 30" in n for n in notes)
    assert any("备注" in n for n in notes) and any("api-row-3" in n for n in notes)
    again, again_rejects = validate_facility_record(record)
    assert again_rejects == []
    assert {k: again[k] for k in FACILITY_FIELDS} == {k: record[k] for k in FACILITY_FIELDS}


def test_validate_record_row_level_problems(dongcheng_wgs84: shapely.Geometry) -> None:
    record, rejects = validate_facility_record({"经度": 39.9, "纬度": 116.4})
    assert record is None and "lat/lon swapped?" in rejects[0].reason
    record, rejects = validate_facility_record({"lon": 0, "lat": 0})
    assert record is None and "placeholder" in rejects[0].reason
    record, rejects = validate_facility_record({"lon": 200, "lat": 10})
    assert record is None and "out of range" in rejects[0].reason
    record, rejects = validate_facility_record(
        {"lon": 116.6, "lat": 39.95}, area_polygon=dongcheng_wgs84
    )
    assert record is None and "outside the study area" in rejects[0].reason
    record, rejects = validate_facility_record({"lon": 116.41, "lat": 39.915, "crs": "EPSG:4490"})
    assert rejects == [] and record is not None  # CGCS2000 lon/lat ≈ WGS84
    assert record["lon"] == pytest.approx(116.41, abs=1e-6)
    with pytest.raises(CRSError):
        validate_facility_record({"lon": 116.41, "lat": 39.915}, default_crs="mars")


def test_projected_coordinates() -> None:
    x, y = gpd.GeoSeries([shapely.Point(116.41, 39.915)], crs=4326).to_crs(32650).iloc[0].coords[0]
    record, rejects = validate_facility_record({"x": x, "y": y, "crs": "EPSG:32650"})
    assert rejects == [] and record is not None
    assert (record["lon"], record["lat"]) == pytest.approx((116.41, 39.915), abs=1e-9)


def test_field_for_header() -> None:
    assert field_for_header(" 经度 ") == "lon" and field_for_header("LAT") == "lat"
    assert field_for_header("机构名称") == "name" and field_for_header("托位数（个）") == "slots"
    assert field_for_header("乳儿班") == "slots_infant" and field_for_header("坐标系") == "crs"
    assert field_for_header("备注") is None


# --- rejects.csv -------------------------------------------------------------------------------


def test_write_rejects_merges_sorts_and_marks_for_excel(
    tmp_path: Path, registry: FacilityLoadResult
) -> None:
    units_rejects = rejects_frame(
        [Reject("a_units.geojson", 2, "geometry", "=HYPERLINK(1)", "x"),
         Reject("a_units.geojson", None, "code", "", "file-level")]
    )  # fmt: skip
    path = write_rejects([registry.rejects, units_rejects], tmp_path / "out")
    assert path == tmp_path / "out" / REJECTS_FILE
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # BOM for Excel
    back = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(back.columns) == list(REJECTS_COLUMNS)
    assert len(back) == len(registry.rejects) + 2
    units_back = back[back["file"] == "a_units.geojson"]
    assert units_back["row"].tolist() == ["", "2"]  # file-level first, then by row
    assert units_back["value"].iloc[1] == "'=HYPERLINK(1)"  # not run as a formula
    assert back["file"].is_monotonic_increasing
    assert "-5" in set(back["value"])  # a plain negative number is left alone
    registry_rows = back[back["file"] == str(UTF8_CSV)]["row"].astype(int).tolist()
    assert registry_rows == sorted(registry_rows)
    # stable: the two rejects of row 14 keep their recorded order
    row14 = back[(back["file"] == str(UTF8_CSV)) & (back["row"] == "14")]["field"].tolist()
    assert row14 == registry.rejects[registry.rejects["row"] == 14]["field"].tolist()
    assert [p.name for p in path.parent.iterdir()] == [REJECTS_FILE]  # no temp files left


def test_write_rejects_empty_writes_header(tmp_path: Path) -> None:
    path = write_rejects(rejects_frame([]), tmp_path)
    assert path.read_text("utf-8-sig").strip() == ",".join(REJECTS_COLUMNS)
    with pytest.raises(ValueError, match="lacks columns"):
        write_rejects(pd.DataFrame({"file": ["a"]}), tmp_path)


def test_rejects_keep_chinese_text(tmp_path: Path) -> None:
    """Chinese reasons survive the round trip through rejects.csv."""
    frame = rejects_frame(
        [Reject("r.csv", 1, "lon/lat", "39.9, 116.4", "lat/lon swapped? (经纬度疑似颠倒)")]
    )
    back = pd.read_csv(write_rejects(frame, tmp_path), encoding="utf-8-sig")
    assert back["reason"].iloc[0] == "lat/lon swapped? (经纬度疑似颠倒)"
    assert back["value"].iloc[0] == "39.9, 116.4"
