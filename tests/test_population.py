"""Population points: weights loader, totals reader, dasymetric spread, buildings, units."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, box
from tuoyu.crs.china import convert
from tuoyu.crs.projection import estimate_metric_crs, gdf_to_wgs84, utm_crs_for
from tuoyu.errors import CRSError, DataNotFoundError, EmptyInputError, InputValidationError
from tuoyu.layers.population import (
    POINT_COLUMNS,
    assign_units,
    building_points,
    dasymetric_points,
    load_weight_points,
    read_unit_totals,
    unit_population,
)
from tuoyu.layers.rejects import Reject

UTM50 = 32650
CONTRACT = [*POINT_COLUMNS, "geometry"]


# --- small hand-made layers -------------------------------------------------------------


@pytest.fixture()
def units() -> gpd.GeoDataFrame:
    """Two 100 m squares side by side (A left, B right) and C further right."""
    return gpd.GeoDataFrame(
        {"code": ["A", "B", "C"], "name": ["甲", "乙", "丙"]},
        geometry=[box(0, 0, 100, 100), box(100, 0, 200, 100), box(200, 0, 300, 100)],
        crs=UTM50,
    )


def _weights(xy_w: list[tuple[float, float, float]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"point_id": np.arange(1, len(xy_w) + 1), "weight": [w for _, _, w in xy_w]},
        geometry=[Point(x, y) for x, y, _ in xy_w],
        crs=UTM50,
    )


def test_dasymetric_hand_checked(units: gpd.GeoDataFrame) -> None:
    # A: weights 1 and 3; B: no point; C: a point but no total; one point outside.
    weights = _weights([(10, 10, 1.0), (50, 50, 3.0), (250, 50, 7.0), (500, 50, 9.0)])
    out = dasymetric_points(weights, units, {"A": 400, "B": 50}, under3_share=0.02)
    assert list(out.columns) == CONTRACT
    assert out.crs.to_epsg() == UTM50
    by_id = out.set_index("point_id")
    assert by_id.loc[1, "population"] == pytest.approx(100.0)
    assert by_id.loc[2, "population"] == pytest.approx(300.0)
    assert by_id.loc[1, "population_under3"] == pytest.approx(2.0)
    assert by_id.loc[1, "unit_code"] == "A"
    # C has a point but no total: unknown, not zero
    assert math.isnan(by_id.loc[3, "population"]) and by_id.loc[3, "unit_code"] == "C"
    assert math.isnan(by_id.loc[3, "population_under3"])
    # B: one representative point inside B carries the whole total, with a fresh id
    b_rows = out[out["unit_code"] == "B"]
    assert len(b_rows) == 1 and b_rows["population"].iloc[0] == pytest.approx(50.0)
    assert units.geometry[1].contains(b_rows.geometry.iloc[0])
    assert b_rows["point_id"].iloc[0] == 5
    # the outside point is dropped and counted
    assert 4 not in by_id.index
    assert out.attrs["dropped_outside_units"] == 1
    assert out.attrs["dropped_weight"] == pytest.approx(9.0)
    assert out.attrs["units_without_total"] == ["C"]
    assert out.attrs["units_without_points"] == ["B"]
    text = " ".join(out.attrs["assumptions"])
    assert "representative point" in text and "2.00%" in text and "outside every unit" in text
    assert "dasymetric" in out.attrs["population_method"]


def test_dasymetric_district_total_rescales(units: gpd.GeoDataFrame) -> None:
    weights = _weights([(10, 10, 1.0), (50, 50, 3.0), (150, 50, 2.0)])
    totals = pd.DataFrame({"code": ["A", "B"], "population": [400.0, 100.0]})
    out = dasymetric_points(weights, units.iloc[:2], totals, district_total=1000)
    by_id = out.set_index("point_id")["population"]
    assert by_id.to_dict() == pytest.approx({1: 200.0, 2: 600.0, 3: 200.0})
    assert out["population"].sum() == pytest.approx(1000.0, rel=1e-12)
    assert out["population_under3"].isna().all()  # no share given: unknown
    text = " ".join(out.attrs["assumptions"])
    assert "500" in text and "factor 2.000000" in text


def test_dasymetric_under3_by_unit_with_share_fallback(units: gpd.GeoDataFrame) -> None:
    weights = _weights([(10, 10, 1.0), (50, 50, 3.0), (150, 50, 2.0)])
    out = dasymetric_points(
        weights,
        units.iloc[:2],
        {"A": 400, "B": 100},
        under3_by_unit={"A": 8.0},
        under3_share=0.05,
    )
    u3 = out.set_index("point_id")["population_under3"]
    assert u3.to_dict() == pytest.approx({1: 2.0, 2: 6.0, 3: 5.0})  # B: 100 × 5 %


def test_dasymetric_border_point_counted_once(units: gpd.GeoDataFrame) -> None:
    weights = _weights([(100, 50, 1.0), (150, 50, 1.0)])  # first point on the A|B border
    out = dasymetric_points(weights, units.iloc[:2], {"A": 10, "B": 20})
    assert out.set_index("point_id").loc[1, "unit_code"] == "A"
    assert out["population"].sum() == pytest.approx(30.0)
    assert out.attrs["points_in_several_units"] == 1


def test_dasymetric_zero_weights_split_evenly(units: gpd.GeoDataFrame) -> None:
    weights = _weights([(10, 10, 0.0), (50, 50, 0.0)])
    out = dasymetric_points(weights, units.iloc[:1], {"A": 10})
    assert out["population"].tolist() == pytest.approx([5.0, 5.0])
    assert any("evenly" in a for a in out.attrs["assumptions"])


def test_dasymetric_empty_and_bad_inputs(units: gpd.GeoDataFrame) -> None:
    empty_units = units.iloc[:0]
    out = dasymetric_points(_weights([(10, 10, 1.0)]), empty_units, {"A": 1})
    assert list(out.columns) == CONTRACT and len(out) == 0
    # no weights at all: each unit with a total still gets its representative point
    out = dasymetric_points(_weights([]), units, {"A": 4, "B": 6})
    assert sorted(out["unit_code"]) == ["A", "B"] and out["population"].sum() == 10
    with pytest.raises(CRSError, match="reproject"):
        dasymetric_points(_weights([(1, 1, 1.0)]).to_crs(32649), units, {"A": 1})
    with pytest.raises(CRSError, match="geographic"):
        dasymetric_points(_weights([(1, 1, 1.0)]).to_crs(4326), units, {"A": 1})
    with pytest.raises(InputValidationError, match="no unit code of the totals matches"):
        dasymetric_points(_weights([(1, 1, 1.0)]), units, {"110101001": 1})
    with pytest.raises(InputValidationError, match="none of the 1 weight points"):
        dasymetric_points(_weights([(900, 900, 1.0)]), units, {"A": 1})
    with pytest.raises(InputValidationError, match="under3_share"):
        dasymetric_points(_weights([(1, 1, 1.0)]), units, {"A": 1}, under3_share=1.5)
    with pytest.raises(InputValidationError, match="negative"):
        dasymetric_points(_weights([(1, 1, 1.0)]), units, {"A": -1})
    bad = _weights([(1, 1, 1.0)])
    bad["weight"] = -1.0
    with pytest.raises(InputValidationError, match="weight"):
        dasymetric_points(bad, units, {"A": 1})


# --- load_weight_points -----------------------------------------------------------------


def _write_points(path: Path, features: list[tuple[object, object]]) -> Path:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": geom,
                "properties": {"weight": w} if w is not ... else {},
            }
            for geom, w in features
        ],
    }
    path.write_text(json.dumps(fc, ensure_ascii=False), "utf-8")
    return path


def _pt(lon: float, lat: float) -> dict[str, object]:
    return {"type": "Point", "coordinates": [lon, lat]}


def test_load_weight_points_converts_gcj02(tmp_path: Path) -> None:
    lon, lat = 116.41, 39.91
    path = _write_points(tmp_path / "w.geojson", [(_pt(lon, lat), 5), (_pt(lon + 0.01, lat), "7")])
    out = load_weight_points(path, "gcj02")
    assert list(out.columns) == ["point_id", "weight", "geometry"]
    assert out["weight"].tolist() == [5.0, 7.0]
    assert out.crs.to_epsg() == UTM50
    lon_w, lat_w = convert(np.array([lon]), np.array([lat]), "gcj02", "wgs84")
    expected = gpd.GeoSeries([Point(lon_w[0], lat_w[0])], crs=4326).to_crs(UTM50)[0]
    assert out.geometry[0].distance(expected) < 0.01
    as_wgs = load_weight_points(path, "wgs84", metric_crs=UTM50)
    shift = out.geometry[0].distance(as_wgs.geometry[0])
    assert 100 < shift < 700  # the GCJ-02 offset in Beijing is a few hundred metres


def test_load_weight_points_warns_on_contradicting_file_crs(tmp_path: Path) -> None:
    path = _write_points(tmp_path / "w.geojson", [(_pt(116.41, 39.91), 1)])
    doc = json.loads(path.read_text("utf-8"))
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "coordinate_system": "GCJ-02",
                "features": doc["features"],
            }
        ),
        "utf-8",
    )
    with pytest.warns(
        UserWarning, match="says its coordinates are GCJ-02 but they were read as wgs84"
    ):
        out = load_weight_points(path, "wgs84")
    assert len(out.attrs["notes"]) == 1
    assert load_weight_points(path, "gcj02").attrs["notes"] == []


def test_load_weight_points_bad_rows(tmp_path: Path) -> None:
    good = (_pt(116.41, 39.91), 1)
    path = _write_points(tmp_path / "a.geojson", [good, (_pt(116.42, 39.91), "30个")])
    with pytest.raises(
        InputValidationError, match="row 2, field 'weight': weight '30个' is not a number"
    ):
        load_weight_points(path, "wgs84")
    path = _write_points(tmp_path / "b.geojson", [good, good, (_pt(116.42, 39.91), -3)])
    with pytest.raises(InputValidationError, match=r"row 3.*negative"):
        load_weight_points(path, "wgs84")
    path = _write_points(tmp_path / "c.geojson", [good, (_pt(116.42, 39.91), None)])
    out = load_weight_points(path, "wgs84")
    assert out["point_id"].tolist() == [1]
    assert out.attrs["rejects"] == [
        Reject(str(path), 2, "weight", "", "empty weight (unknown); point left out")
    ]
    line = {"type": "LineString", "coordinates": [[116.41, 39.91], [116.42, 39.91]]}
    path = _write_points(tmp_path / "d.geojson", [good, (line, 1)])
    with pytest.raises(InputValidationError, match=r"row 2.*LineString"):
        load_weight_points(path, "wgs84")
    path = _write_points(tmp_path / "e.geojson", [(_pt(116.41, 39.91), ...)])
    with pytest.raises(InputValidationError, match="no weight property 'weight'"):
        load_weight_points(path, "wgs84")
    path = _write_points(tmp_path / "f.geojson", [])
    with pytest.raises(EmptyInputError, match="no features"):
        load_weight_points(path, "wgs84")
    with pytest.raises(DataNotFoundError):
        load_weight_points(tmp_path / "missing.geojson", "wgs84")
    with pytest.raises(CRSError, match="mars"):
        load_weight_points(_write_points(tmp_path / "g.geojson", [good]), "mars")


# --- read_unit_totals -------------------------------------------------------------------


def test_read_unit_totals_gbk_and_utf8(tmp_path: Path) -> None:
    text = '代码,名称,人口,三岁以下\n0101,东华门街道,"67,803",900\n0102,景山街道,,\n'
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(text.encode("gbk"))
    bom = tmp_path / "bom.csv"
    bom.write_bytes(text.encode("utf-8-sig"))
    for path in (gbk, bom):
        out = read_unit_totals(path, "代码", "人口", under3_field="三岁以下")
        assert out["code"].tolist() == ["0101", "0102"]  # leading zeros kept
        assert out["population"].iloc[0] == 67803.0
        assert math.isnan(out["population"].iloc[1])  # blank = unknown, not 0
        assert out["population_under3"].iloc[0] == 900.0
    out = read_unit_totals(bom, "代码", "人口")
    assert list(out.columns) == ["code", "population", "population_under3"]
    assert out["population_under3"].isna().all()


def test_read_unit_totals_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    pd.DataFrame({"code": ["110101001", "110101002"], "pop": [10, 20]}).to_excel(path, index=False)
    out = read_unit_totals(path, "code", "pop")
    assert out["code"].tolist() == ["110101001", "110101002"]
    assert out["population"].tolist() == [10.0, 20.0]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("code,pop\n1,10\n1,20\n", r"row 2, field 'code': unit code '1' repeats row 1"),
        ("code,pop\n1,10\n2,-5\n", r"row 2, field 'pop': '-5' is negative"),
        ("code,pop\n1,30个\n", r"row 1, field 'pop': '30个' is not a number"),
        ("code,people\n1,10\n", r"field 'pop': no column 'pop'"),
        ("code,pop\n,10\n", r"row 1, field 'code': empty unit code"),
        ("code,pop,u3\n1,10,20\n", r"field 'u3': under-3 population 20 exceeds"),
    ],
)
def test_read_unit_totals_rejects(tmp_path: Path, body: str, match: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(body, "utf-8")
    with pytest.raises(InputValidationError, match=match):
        read_unit_totals(path, "code", "pop", under3_field="u3" if "u3" in body else None)


def test_read_unit_totals_empty_and_undecodable(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", "utf-8")
    with pytest.raises(EmptyInputError):
        read_unit_totals(empty, "code", "pop")
    header_only = tmp_path / "header.csv"
    header_only.write_text("code,pop\n", "utf-8")
    with pytest.raises(EmptyInputError, match="no data rows"):
        read_unit_totals(header_only, "code", "pop")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"code,pop\n\xff\xfe\xfa\xfb,1\n" + bytes(range(128, 256)))
    with pytest.raises(InputValidationError, match="neither UTF-8 nor GBK"):
        read_unit_totals(binary, "code", "pop")


# --- building_points --------------------------------------------------------------------


def _buildings() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "osm_id": [1, 2, 3, 4, 5],
            "building": ["residential", "apartments", "house", "commercial", "residential"],
            "levels": [2.0, np.nan, 4.0, 30.0, 5.0],
            "footprint_m2": [100.0, 200.0, 50.0, 1000.0, 100.0],
            "residential": [True, True, True, False, True],
        },
        geometry=[
            box(0, 0, 10, 10),
            box(20, 0, 40, 10),
            box(50, 0, 55, 10),
            box(60, 0, 100, 25),
            box(5000, 0, 5010, 10),  # outside the outline
        ],
        crs=32648,
    )


def test_building_points_hand_checked() -> None:
    outline = box(-10, -10, 200, 200)
    out = building_points(_buildings(), 1000, outline=outline, under3_share=0.01)
    assert list(out.columns) == CONTRACT
    # floor areas: 100×2, 200×median(2,4)=3, 50×4 → 200, 600, 200 of 1000
    assert out["population"].tolist() == pytest.approx([200.0, 600.0, 200.0])
    assert out["population"].sum() == pytest.approx(1000.0, rel=1e-12)
    assert out["population_under3"].tolist() == pytest.approx([2.0, 6.0, 2.0])
    assert out["unit_code"].isna().all()
    assert all(outline.contains(p) for p in out.geometry)
    assert out.attrs["buildings_outside_outline"] == 1
    assert out.attrs["buildings_used"] == 3
    assert (out.attrs["levels_known"], out.attrs["levels_assumed"]) == (2, 1)
    assert any("median of the known levels, 3" in a for a in out.attrs["assumptions"])
    stated = building_points(_buildings(), 1000, outline=outline, unknown_levels=1)
    assert stated["population"].tolist() == pytest.approx([1000 / 3, 1000 / 3, 1000 / 3])


def test_building_points_without_residential_and_empty() -> None:
    b = _buildings()
    b["residential"] = False
    out = building_points(b, 800, outline=gpd.GeoSeries([box(-10, -10, 200, 200)], crs=32648))
    assert len(out) == 4  # all buildings inside the outline
    assert out["population"].sum() == pytest.approx(800.0)
    assert out["population_under3"].isna().all()
    assert any("no residential building" in a for a in out.attrs["assumptions"])
    empty = building_points(b.iloc[:0], 800)
    assert list(empty.columns) == CONTRACT and len(empty) == 0
    with pytest.raises(InputValidationError, match="district_total"):
        building_points(b, 0)
    with pytest.raises(CRSError):
        building_points(b.to_crs(4326), 800)


# --- assign_units / unit_population -----------------------------------------------------


def test_assign_units_and_unit_population(units: gpd.GeoDataFrame) -> None:
    points = gpd.GeoDataFrame(
        {
            "point_id": [0, 1, 2, 3],
            "unit_code": [None] * 4,
            "population": [1.0, 2.0, 4.0, 8.0],
            "population_under3": [0.1, 0.2, np.nan, 0.8],
        },
        geometry=[Point(10, 10), Point(20, 20), Point(150, 50), Point(900, 0)],
        crs=UTM50,
    )
    points.attrs["population_method"] = "test"
    out = assign_units(points, units)
    assert out["unit_code"].tolist() == ["A", "A", "B", None]
    assert out.attrs["points_outside_units"] == 1 and out.attrs["population_method"] == "test"
    assert points["unit_code"].isna().all()  # input untouched
    table = unit_population(out)
    assert table["unit_code"].tolist() == ["A", "B"]
    assert table["population"].tolist() == pytest.approx([3.0, 4.0])
    assert table.loc[0, "population_under3"] == pytest.approx(0.3)
    assert math.isnan(table.loc[1, "population_under3"])  # one unknown → unknown
    assert table["points"].tolist() == [2, 1]
    assert table.attrs["population_outside_units"] == 8.0
    with pytest.raises(CRSError):
        assign_units(points.to_crs(32649), units)


# --- real data: Dongcheng ---------------------------------------------------------------


@pytest.fixture(scope="module")
def dongcheng(data_dir: Path) -> dict[str, object]:
    folder = data_dir / "beijing-dongcheng"
    jiedao = gdf_to_wgs84(gpd.read_file(folder / "jiedao.geojson"), "gcj02")
    crs = estimate_metric_crs(jiedao)
    return {
        "units": jiedao.to_crs(crs),
        "weights": load_weight_points(folder / "population_grid.geojson", "gcj02", "weight", crs),
        "totals": read_unit_totals(folder / "jiedao_stats.csv", "code", "registered_population"),
    }


def test_dongcheng_grid_inside_district(dongcheng: dict[str, object]) -> None:
    units = dongcheng["units"]
    weights = dongcheng["weights"]
    assert isinstance(units, gpd.GeoDataFrame) and isinstance(weights, gpd.GeoDataFrame)
    assert len(weights) == 19701 and weights.attrs["rejects"] == []
    inside = assign_units(weights, units)
    is_in = inside["unit_code"].notna()
    assert int(is_in.sum()) == 672  # data README: 672 points inside Dongcheng
    assert inside.loc[is_in, "weight"].sum() == 316532  # weights sum 316,532 there


@pytest.mark.parametrize("district_total", [None, 708829])
def test_dongcheng_dasymetric_sums_per_jiedao(
    dongcheng: dict[str, object], district_total: int | None
) -> None:
    units, weights, totals = dongcheng["units"], dongcheng["weights"], dongcheng["totals"]
    assert isinstance(units, gpd.GeoDataFrame) and isinstance(totals, pd.DataFrame)
    assert isinstance(weights, gpd.GeoDataFrame)
    out = dasymetric_points(
        weights, units, totals, district_total=district_total, under3_share=0.015
    )
    assert len(out) == 672 and out.attrs["dropped_outside_units"] == 19701 - 672
    assert out.attrs["units_without_points"] == [] and out.attrs["units_without_total"] == []
    registered = totals.set_index("code")["population"]
    assert registered.sum() == 967022
    factor = 1.0 if district_total is None else district_total / 967022
    per_unit = unit_population(out).set_index("unit_code")
    assert len(per_unit) == 17
    for code, value in registered.items():
        assert per_unit.loc[code, "population"] == pytest.approx(value * factor, rel=1e-12)
    expected_total = district_total or 967022
    assert out["population"].sum() == pytest.approx(expected_total, rel=1e-12)
    assert out["population_under3"].sum() == pytest.approx(0.015 * expected_total, rel=1e-12)
    # each point lies in the polygon of the 街道 it is credited to
    polygons = units.set_index("code").geometry
    assert all(polygons[c].covers(p) for c, p in zip(out["unit_code"], out.geometry, strict=True))


# --- real data: Yuzhong buildings -------------------------------------------------------


@pytest.mark.slow
def test_yuzhong_buildings_spread_census_total(data_dir: Path) -> None:
    osm_features = pytest.importorskip(
        "tuoyu.layers.osm_features", reason="building loader not written yet"
    )
    folder = data_dir / "chongqing-yuzhong"
    outline = gpd.read_file(folder / "district.geojson")
    crs = utm_crs_for(106.57, 29.56)
    buildings = osm_features.load_osm_buildings(folder / "yuzhong.osm.pbf", crs)
    out = building_points(buildings, 588717, outline=outline, under3_share=0.015)
    assert len(out) > 0
    assert out["population"].sum() == pytest.approx(588717, rel=1e-12)
    assert (out["population"] > 0).all()
    shape = outline.to_crs(crs).union_all()
    assert all(shape.covers(p) for p in out.geometry)
