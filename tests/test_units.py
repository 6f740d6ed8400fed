"""街道 units loader: real Dongcheng polygons, repairs, codes, formats and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.settings import Settings
from tuoyu.crs.china import convert
from tuoyu.errors import CRSError, DataNotFoundError, EmptyInputError, InputValidationError
from tuoyu.layers.units import check_overlap_with_network, load_units

FIXTURES = Path(__file__).parent / "fixtures" / "units"
DONGCHENG_UNITS = "beijing-dongcheng/jiedao.geojson"
YUZHONG_OUTLINE = "chongqing-yuzhong/district.geojson"


@pytest.fixture(scope="module")
def dongcheng(settings: Settings) -> gpd.GeoDataFrame:
    return load_units(resolve_data_file(DONGCHENG_UNITS, settings), crs="gcj02")


def _square(x0: float, y0: float, size: float = 0.01) -> dict[str, object]:
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def _write_geojson(path: Path, features: list[dict[str, object]]) -> Path:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": f["properties"], "geometry": f["geometry"]}
            for f in features
        ],
    }
    path.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    return path


# --- real data ---------------------------------------------------------------------------


def test_dongcheng_has_17_jiedao_with_the_official_area(dongcheng: gpd.GeoDataFrame) -> None:
    assert len(dongcheng) == 17
    assert list(dongcheng.columns) == ["code", "name", "area_m2", "geometry"]
    assert dongcheng.crs.to_epsg() == 32650  # UTM 50N, estimated from the data
    assert dongcheng["code"].is_unique
    assert all(len(c) == 9 and c.startswith("110101") for c in dongcheng["code"])
    assert dongcheng["name"].str.endswith("街道").all()
    union_km2 = dongcheng.union_all().area / 1e6
    assert union_km2 == pytest.approx(41.8, abs=0.3)
    np.testing.assert_allclose(dongcheng["area_m2"], dongcheng.area)
    assert set(dongcheng.geom_type) <= {"Polygon", "MultiPolygon"}
    assert dongcheng.attrs["repairs"] == []


def test_dongcheng_is_converted_from_gcj02(settings: Settings) -> None:
    """A vertex read as GCJ-02 lands where chinacrs puts it, ~0.5 km from the raw value."""
    path = resolve_data_file(DONGCHENG_UNITS, settings)
    raw = gpd.read_file(path)
    units = load_units(path, crs="gcj02", metric_crs="EPSG:32650")
    x, y = shapely.get_coordinates(raw.geometry.iloc[0])[0]
    wx, wy = convert(x, y, "gcj02", "wgs84")
    expected = gpd.GeoSeries([shapely.Point(float(wx), float(wy))], crs=4326).to_crs(32650)
    first = shapely.get_coordinates(units.geometry.iloc[0])[0]
    assert np.hypot(*(first - shapely.get_coordinates(expected.iloc[0])[0])) < 0.01
    as_wgs = load_units(path, crs="wgs84")
    shift_m = shapely.get_coordinates(as_wgs.geometry.iloc[0])[0] - first
    assert 400.0 < float(np.hypot(*shift_m)) < 700.0


def test_units_overlap_check(dongcheng: gpd.GeoDataFrame, settings: Settings) -> None:
    # an extent covering the district passes
    check_overlap_with_network(dongcheng, dongcheng.union_all().buffer(100.0))
    # a network elsewhere (Yuzhong, Chongqing) does not overlap at all: a clear error
    yuzhong = gpd.read_file(resolve_data_file(YUZHONG_OUTLINE, settings))
    with pytest.raises(InputValidationError, match=r"do not overlap .*gap [\d,.]+ km"):
        check_overlap_with_network(dongcheng, yuzhong)
    # mostly outside: a warning, not an error
    corner = shapely.box(*dongcheng.total_bounds).exterior.buffer(200.0)
    with pytest.warns(UserWarning, match="lies inside the walking network"):
        check_overlap_with_network(dongcheng, corner)
    # empty in, nothing to check
    check_overlap_with_network(dongcheng.iloc[:0], yuzhong)


def test_declared_crs_mistake_shows_as_no_overlap(tmp_path: Path) -> None:
    """Units written in metres but declared as an unrelated EPSG code miss the network."""
    units = load_units(FIXTURES / "valid.geojson")
    path = tmp_path / "metric.gpkg"
    units.to_file(path)
    with pytest.warns(UserWarning, match="the declared CRS is used"):
        wrong = load_units(path, crs="EPSG:32648", metric_crs=units.crs)  # zone 48, not 50
    with pytest.raises(InputValidationError, match="do not overlap"):
        check_overlap_with_network(wrong, units.union_all())


# --- small fixtures --------------------------------------------------------------------


def test_bow_tie_is_repaired_and_reported() -> None:
    with pytest.warns(UserWarning, match=r"repaired 1 invalid polygon.*110101902"):
        units = load_units(FIXTURES / "bowtie.geojson")
    assert units["code"].tolist() == ["110101901", "110101902"]
    assert units["name"].tolist() == ["正方形", "蝴蝶结"]
    assert shapely.is_valid(units.geometry.values).all()
    repairs = units.attrs["repairs"]
    assert len(repairs) == 1 and repairs[0]["code"] == "110101902" and repairs[0]["row"] == 2
    assert "Self-intersection" in repairs[0]["reason"]
    # the bow-tie becomes its two triangles: half the square's area
    bow = units.geometry.iloc[1]
    assert bow.geom_type == "MultiPolygon" and len(bow.geoms) == 2
    assert units["area_m2"].iloc[1] == pytest.approx(units["area_m2"].iloc[0] / 2, rel=0.01)
    assert units["area_m2"].iloc[0] == pytest.approx(854.0 * 1111.0, rel=0.02)  # 0.01°


def test_duplicate_code_names_file_row_and_field() -> None:
    with pytest.raises(InputValidationError) as info:
        load_units(FIXTURES / "duplicate_codes.geojson")
    err = info.value
    assert err.row == 3 and err.field == "code"
    assert err.path is not None and err.path.endswith("duplicate_codes.geojson")
    assert "first at row 1" in str(err)


def test_empty_code_is_refused(tmp_path: Path) -> None:
    path = _write_geojson(
        tmp_path / "u.geojson",
        [
            {"properties": {"code": "1", "name": "a"}, "geometry": _square(116.40, 39.90)},
            {"properties": {"code": " ", "name": "b"}, "geometry": _square(116.41, 39.90)},
        ],
    )
    with pytest.raises(InputValidationError, match="code is empty") as info:
        load_units(path)
    assert (info.value.row, info.value.field) == (2, "code")


def test_numeric_codes_and_custom_fields(tmp_path: Path) -> None:
    path = _write_geojson(
        tmp_path / "u.geojson",
        [
            {
                "properties": {"dm": 110101001, "mc": "东华门街道"},
                "geometry": _square(116.40, 39.9),
            },
            {"properties": {"dm": 110101002, "mc": None}, "geometry": _square(116.41, 39.9)},
        ],
    )
    with pytest.warns(UserWarning, match="1 unit"):
        units = load_units(path, code_field="dm", name_field="mc")
    assert units["code"].tolist() == ["110101001", "110101002"]
    assert units["name"].isna().tolist() == [False, True]
    with pytest.raises(InputValidationError, match=r"no column 'code'.*dm, mc") as info:
        load_units(path)
    assert info.value.field == "code"


def test_non_polygon_and_missing_geometry(tmp_path: Path) -> None:
    line = {"type": "LineString", "coordinates": [[116.4, 39.9], [116.5, 39.9]]}
    path = _write_geojson(
        tmp_path / "u.geojson",
        [
            {"properties": {"code": "1", "name": "a"}, "geometry": _square(116.40, 39.90)},
            {"properties": {"code": "2", "name": "b"}, "geometry": line},
        ],
    )
    with pytest.raises(InputValidationError, match="LineString") as info:
        load_units(path)
    assert (info.value.row, info.value.field) == (2, "geometry")


def test_gpkg_and_shapefile_read_alike(tmp_path: Path) -> None:
    source = gpd.read_file(FIXTURES / "valid.geojson")
    ref = load_units(FIXTURES / "valid.geojson", metric_crs=32650)
    for name in ("u.gpkg", "u.shp"):
        source.to_file(tmp_path / name)
        units = load_units(tmp_path / name, metric_crs=32650)
        assert units["code"].tolist() == ["110101901", "110101902"]
        np.testing.assert_allclose(units["area_m2"], ref["area_m2"], rtol=1e-9)


def test_projected_file_declared_as_lonlat_is_refused(tmp_path: Path) -> None:
    units = load_units(FIXTURES / "valid.geojson")
    path = tmp_path / "metric.gpkg"
    units.to_file(path)
    with pytest.raises(CRSError, match="projected"):
        load_units(path, crs="wgs84")
    as_declared = load_units(path, crs="EPSG:32650", metric_crs=32650)
    np.testing.assert_allclose(as_declared["area_m2"], units["area_m2"], rtol=1e-9)


def test_metric_crs_must_be_projected() -> None:
    with pytest.raises(CRSError, match="not a projected"):
        load_units(FIXTURES / "empty.geojson", metric_crs=4326)


def test_missing_empty_and_unknown_crs(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="not found"):
        load_units(tmp_path / "nope.geojson")
    with pytest.raises(EmptyInputError, match="no polygons"):
        load_units(FIXTURES / "empty.geojson")
    (tmp_path / "zero.geojson").write_bytes(b"")
    with pytest.raises(EmptyInputError, match="empty"):
        load_units(tmp_path / "zero.geojson")
    with pytest.raises(CRSError, match="mars2000"):
        load_units(FIXTURES / "bowtie.geojson", crs="mars2000")
    (tmp_path / "junk.geojson").write_text("this is not json", "utf-8")
    with pytest.raises(InputValidationError, match="cannot read"):
        load_units(tmp_path / "junk.geojson")
