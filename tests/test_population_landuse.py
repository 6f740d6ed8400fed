"""Population by land use (Dongcheng), buildings bounded by floor area (Yuzhong), plausibility."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import CRS
from shapely.geometry import Point, box
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.settings import Settings
from tuoyu.crs.projection import estimate_metric_crs, gdf_to_wgs84, utm_crs_for
from tuoyu.errors import CRSError, InputValidationError
from tuoyu.layers.h3units import h3_units
from tuoyu.layers.population import (
    POINT_COLUMNS,
    assign_units,
    building_points,
    grid_spacing_m,
    landuse_population_points,
    load_land_use,
    load_weight_points,
    plausibility,
    read_unit_totals,
    unit_population,
    water_fill,
)

UTM50 = 32650
CONTRACT = [*POINT_COLUMNS, "geometry"]
RES = "居住用地"


# --- hand-made grid, parcels and units --------------------------------------------------
#
#   y=100 +----------+----------+----------+----------+
#         | c0 (100) | c1 (40)  | c2 (60)  | c3 (30)  |     c4 (1000) at x=450 lies
#         | R25|R75  | shop     | R40  R20 | R30      |     outside the district
#   y=0   +----------+----------+----------+----------+
#         0         100        200        300        400
#          unit A = x 0..200             unit B = x 200..400
# c0: residential parcels x 0..25 and 25..100 (areas 1:3); c1: a shop parcel only;
# c2: residential x 200..240 and the left half of a parcel x 280..330 straddling c2|c3.


@pytest.fixture()
def units() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": ["A", "B"], "name": ["甲街道", "乙街道"]},
        geometry=[box(0, 0, 200, 100), box(200, 0, 400, 100)],
        crs=UTM50,
    )


@pytest.fixture()
def cells() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"point_id": [1, 2, 3, 4, 5], "weight": [100.0, 40.0, 60.0, 30.0, 1000.0]},
        geometry=gpd.points_from_xy([50, 150, 250, 350, 450], [50] * 5),
        crs=UTM50,
    )


@pytest.fixture()
def parcels() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"land_use": [RES, RES, "商业服务业设施用地", RES, RES, RES]},
        geometry=[
            box(0, 0, 25, 100),
            box(25, 0, 100, 100),
            box(100, 0, 200, 100),
            box(200, 0, 240, 100),
            box(280, 0, 330, 100),
            box(420, 0, 480, 100),  # in the outside cell: ignored
        ],
        crs=UTM50,
    )


def _by_place(out: gpd.GeoDataFrame) -> dict[str, float]:
    """People per hand-made place, keyed by where the point lies."""
    places = {
        "c0 x0-25": box(0, 0, 25, 100),
        "c0 x25-100": box(25, 0, 100, 100),
        "c1 point": Point(150, 50),
        "c2 x200-240": box(200, 0, 240, 100),
        "c2 x280-300": box(280, 0, 300, 100),
        "c3 x300-330": box(300, 0, 330, 100),
    }
    found: dict[str, float] = {}
    for point, people in zip(out.geometry, out["population"], strict=True):
        hits = [name for name, shape in places.items() if shape.covers(point)]
        assert len(hits) == 1, (point, hits)
        found[hits[0]] = found.get(hits[0], 0.0) + float(people)
    return found


def test_landuse_spreads_cells_over_residential_pieces(
    cells: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, units: gpd.GeoDataFrame
) -> None:
    out = landuse_population_points(cells, parcels, units)
    assert list(out.columns) == CONTRACT
    assert grid_spacing_m(cells) == 100.0 and out.attrs["cell_spacing_m"] == 100.0
    assert _by_place(out) == pytest.approx(
        {
            "c0 x0-25": 25.0,  # 1 : 3 by area
            "c0 x25-100": 75.0,
            "c1 point": 40.0,  # no residential land: the cell keeps its own point
            "c2 x200-240": 40.0,  # 4,000 m² : 2,000 m²
            "c2 x280-300": 20.0,  # the straddling parcel, split at the cell edge x=300
            "c3 x300-330": 30.0,
        },
        rel=1e-12,
    )
    # conservation: every person of the 4 cells inside, none of the outside cell
    assert out.attrs["cells_inside"] == 4
    assert out.attrs["residents_inside"] == 230.0
    assert out["population"].sum() == pytest.approx(230.0, rel=1e-12)
    assert out.attrs["residents_spread"] == pytest.approx(230.0, rel=1e-12)
    assert out.attrs["cells_on_own_point"] == 1 and out.attrs["residents_on_own_point"] == 40.0
    assert out.attrs["parcel_pieces"] == 5
    assert out.attrs["residential_area_m2"] == pytest.approx(2500 + 7500 + 4000 + 2000 + 3000)
    per_unit = unit_population(out).set_index("unit_code")["population"]
    assert per_unit.to_dict() == pytest.approx({"A": 140.0, "B": 90.0})
    assert math.isnan(out["population_under3"].iloc[0])
    assert "居住用地" in out.attrs["assumptions"][1]


def test_landuse_scales_to_unit_or_district_totals(
    cells: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, units: gpd.GeoDataFrame
) -> None:
    by_unit = landuse_population_points(cells, parcels, units, {"A": 280, "B": 45})
    places = _by_place(by_unit)
    assert places["c0 x25-100"] == pytest.approx(150.0)  # unit A doubled
    assert places["c2 x280-300"] == pytest.approx(10.0)  # unit B halved
    assert by_unit["population"].sum() == pytest.approx(325.0)
    district = landuse_population_points(
        cells, parcels, units, district_total=460, under3_share=0.02
    )
    assert _by_place(district)["c0 x0-25"] == pytest.approx(50.0)
    assert district["population"].sum() == pytest.approx(460.0, rel=1e-12)
    assert district["population_under3"].sum() == pytest.approx(9.2, rel=1e-12)
    assert district.attrs["residents_inside"] == 230.0  # before scaling
    # inputs untouched
    assert cells["weight"].tolist() == [100.0, 40.0, 60.0, 30.0, 1000.0]


def test_landuse_refuses_bad_inputs(
    cells: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, units: gpd.GeoDataFrame
) -> None:
    with pytest.raises(CRSError):
        landuse_population_points(cells.to_crs(4326), parcels, units)
    with pytest.raises(InputValidationError, match="weight"):
        landuse_population_points(cells.rename(columns={"weight": "w"}), parcels, units)
    with pytest.raises(InputValidationError, match="land_use"):
        landuse_population_points(cells, parcels.rename(columns={"land_use": "x"}), units)
    far = cells.set_geometry(gpd.points_from_xy([5000, 5100, 5200, 5300, 5400], [0] * 5))
    with pytest.raises(InputValidationError, match="inside the units"):
        landuse_population_points(far.set_crs(UTM50, allow_override=True), parcels, units)


def test_load_land_use_converts_and_checks(tmp_path: Path) -> None:
    good = gpd.GeoDataFrame(
        {"land_use": [RES, None]},
        geometry=[box(116.40, 39.90, 116.401, 39.901), box(116.41, 39.90, 116.411, 39.901)],
        crs=4326,
    )
    path = tmp_path / "lu.geojson"
    good.to_file(path, driver="GeoJSON")
    out = load_land_use(path, "gcj02", metric_crs=UTM50)
    assert out["land_use"].tolist() == [RES, None]
    assert out["parcel_id"].tolist() == [1, 2]
    assert out.crs == UTM50 and 8_000 < out.area.iloc[0] < 10_000
    bad = gpd.GeoDataFrame({"land_use": [RES]}, geometry=[Point(116.4, 39.9)], crs=4326)
    bad.to_file(tmp_path / "bad.geojson", driver="GeoJSON")
    with pytest.raises(InputValidationError, match="row 1"):
        load_land_use(tmp_path / "bad.geojson")
    with pytest.raises(InputValidationError, match="zoning"):
        load_land_use(path, field="zoning")


# --- buildings bounded by floor area per person -----------------------------------------


def test_water_fill_moves_excess_by_room_left() -> None:
    population = np.array([100.0, 0.0, 0.0])
    new, cut = water_fill(population, np.array([10.0, 20.0, 100.0]))
    assert new.tolist() == [10.0, 15.0, 75.0]  # 90 moved, 20 : 100 of room left
    assert cut.tolist() == [True, False, False]
    assert population.tolist() == [100.0, 0.0, 0.0]  # input untouched
    with pytest.raises(InputValidationError, match="cannot hold"):
        water_fill(np.array([10.0, 10.0]), np.array([5.0, 5.0]))


def _towers(levels: list[float | None]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"footprint_m2": [100.0] * len(levels), "levels": levels, "residential": True},
        geometry=[box(20 * i, 0, 20 * i + 10, 10) for i in range(len(levels))],
        crs=32648,
    )


def test_building_cap_moves_excess_out_of_the_tower() -> None:
    # tower: 100 m² × 10 storeys; the other building has no levels (median fill 10).
    # 100 people at 30 m² each need 3,000 m²: the tower holds 1,000 m² / 30 = 33.33;
    # the untagged building's room is taken at (3000 - 1000) / 100 = 20 storeys.
    uncapped = building_points(_towers([10.0, None]), 100)
    assert uncapped["population"].tolist() == [50.0, 50.0]
    out = building_points(_towers([10.0, None]), 100, min_m2_per_person=30)
    assert out["population"].tolist() == pytest.approx([100 / 3, 200 / 3], rel=1e-12)
    assert out["population"].sum() == pytest.approx(100.0, rel=1e-12)
    assert out.attrs["buildings_capped"] == 1
    assert out.attrs["people_moved"] == pytest.approx(50 / 3, rel=1e-12)
    assert out.attrs["unknown_levels_for_room"] == pytest.approx(20.0)
    assert out.attrs["cap_met"] is True


def test_building_cap_slack_and_impossible() -> None:
    slack = building_points(_towers([10.0, 2.0]), 20, min_m2_per_person=15)
    assert slack["population"].tolist() == pytest.approx([1000 / 60, 200 / 60])
    assert slack.attrs["buildings_capped"] == 0 and slack.attrs["people_moved"] == 0.0
    # every level known and 200 m² cannot hold 100 people at 15 m²: split kept, flagged
    full = building_points(_towers([1.0, 1.0]), 100, min_m2_per_person=15)
    assert full["population"].tolist() == [50.0, 50.0]
    assert full.attrs["cap_met"] is False
    assert "not met" in full.attrs["assumptions"][-1]
    with pytest.raises(InputValidationError, match="min_m2_per_person"):
        building_points(_towers([1.0]), 100, min_m2_per_person=0)


# --- plausibility -----------------------------------------------------------------------


def test_plausibility_warns_on_dense_hand_case(units: gpd.GeoDataFrame) -> None:
    points = gpd.GeoDataFrame(
        {
            "point_id": [7, 8, 9],
            "unit_code": [None, None, None],
            "population": [6000.0, 1000.0, 500.0],
            "population_under3": [np.nan] * 3,
        },
        geometry=[Point(50, 50), Point(150, 50), Point(300, 50)],
        crs=UTM50,
    )
    # unit A: 7,000 people on 0.02 km² = 350,000 /km²; B: 500 on 0.02 km² = 25,000 /km²
    check = plausibility(points, units, residential_area_m2=50_000)
    assert check.total == 7500.0 and check.points == 3
    assert check.people_per_km2_residential == pytest.approx(150_000.0)
    assert [u.code for u in check.densest_units] == ["A", "B"]
    assert check.densest_units[0].people_per_km2 == pytest.approx(350_000.0)
    assert check.largest_point == 6000.0 and check.largest_point_id == 7
    assert len(check.warnings) == 3  # residential land, unit A, the 6,000-person point
    lines = check.lines()
    assert any("居住用地人口密度" in line and "150,000" in line for line in lines)
    assert any("甲街道 A" in line for line in lines)
    assert sum(line.startswith("! ") for line in lines) == 3
    calm = plausibility(points.assign(population=[60.0, 10.0, 5.0]), units, 50_000)
    assert calm.warnings == ()
    with pytest.raises(InputValidationError):
        plausibility(points.drop(columns="population"))


# --- real data: Dongcheng by land use ---------------------------------------------------


@pytest.fixture(scope="module")
def dongcheng(settings: Settings) -> dict[str, object]:
    def data(name: str) -> Path:
        return resolve_data_file(f"beijing-dongcheng/{name}", settings)

    jiedao = gdf_to_wgs84(gpd.read_file(data("jiedao.geojson")), "gcj02")
    crs = estimate_metric_crs(jiedao)
    return {
        "units": jiedao.to_crs(crs),
        "cells": load_weight_points(data("resident_population.geojson"), "gcj02", "residents", crs),
        "parcels": load_land_use(data("land_use.geojson"), "gcj02", "land_use", crs),
        "totals": read_unit_totals(data("jiedao_stats.csv"), "code", "registered_population"),
    }


def test_dongcheng_by_land_use_conserves_and_scales(dongcheng: dict[str, object]) -> None:
    units, cells, parcels = dongcheng["units"], dongcheng["cells"], dongcheng["parcels"]
    assert isinstance(units, gpd.GeoDataFrame) and isinstance(cells, gpd.GeoDataFrame)
    assert isinstance(parcels, gpd.GeoDataFrame)
    assert len(cells) == 19701 - 48 and len(parcels) == 4153
    assert int((parcels["land_use"] == RES).sum()) == 1868

    raw = landuse_population_points(cells, parcels, units)
    # data README: 672 points inside Dongcheng sum to 850,805
    assert raw.attrs["cells_inside"] == 672
    assert raw.attrs["residents_inside"] == pytest.approx(850804.92339, abs=1e-6)
    assert raw["population"].sum() == pytest.approx(raw.attrs["residents_inside"], rel=1e-12)
    assert raw.attrs["cell_spacing_m"] == pytest.approx(250.0, abs=0.5)

    out = landuse_population_points(
        cells, parcels, units, district_total=708829, under3_share=0.015
    )
    assert list(out.columns) == CONTRACT
    assert out["population"].sum() == pytest.approx(708829, rel=1e-12)
    assert out.attrs["dropped_outside_units"] == 0
    district = units.union_all()
    assert bool(np.all(shapely.dwithin(np.asarray(out.geometry.values), district, 1e-6)))
    polygons = units.set_index("code").geometry
    assert all(polygons[c].covers(p) for c, p in zip(out["unit_code"], out.geometry, strict=True))

    check = plausibility(out, units)
    print("\n".join(check.lines()))
    density = check.people_per_km2_residential
    assert density is not None
    # Dongcheng's gross density is 708,829 / 41.84 km² ≈ 16,900 /km²; residential land is
    # about a third of the district (14.6 km² in the counted cells), so ~50,000 per km²
    # of it is expected; above 100,000 a planned neighbourhood cannot hold (plausibility).
    assert 30_000 < density < 100_000
    assert check.warnings == ()
    assert check.largest_point < 5_000


def test_dongcheng_by_land_use_to_jiedao_totals(dongcheng: dict[str, object]) -> None:
    units, cells, parcels = dongcheng["units"], dongcheng["cells"], dongcheng["parcels"]
    totals = dongcheng["totals"]
    assert isinstance(units, gpd.GeoDataFrame) and isinstance(cells, gpd.GeoDataFrame)
    assert isinstance(parcels, gpd.GeoDataFrame) and isinstance(totals, pd.DataFrame)
    out = landuse_population_points(cells, parcels, units, totals, district_total=708829)
    per_unit = unit_population(out).set_index("unit_code")["population"]
    registered = totals.set_index("code")["population"]
    for code, value in registered.items():
        assert per_unit[str(code)] == pytest.approx(value * 708829 / 967022, rel=1e-12)


# --- real data: Yuzhong buildings bounded -----------------------------------------------


def _densest_h3(points: gpd.GeoDataFrame, outline: gpd.GeoDataFrame, crs: CRS) -> float:
    hexes = h3_units(outline.to_crs(crs), 8, crs)
    per = unit_population(assign_units(points, hexes)).set_index("unit_code")
    area_km2 = hexes.set_index("code")["area_m2"] / 1e6
    return float((per["population"] / area_km2.reindex(per.index)).max())


def test_yuzhong_buildings_bounded_by_floor_area(settings: Settings) -> None:
    osm_features = pytest.importorskip("tuoyu.layers.osm_features")
    outline = gpd.read_file(resolve_data_file("chongqing-yuzhong/district.geojson", settings))
    pbf = resolve_data_file("chongqing-yuzhong/yuzhong.osm.pbf", settings)
    crs = utm_crs_for(106.57, 29.56)
    buildings = osm_features.load_osm_buildings(pbf, crs)
    before = building_points(buildings, 588717, outline=outline)
    after = building_points(buildings, 588717, outline=outline, min_m2_per_person=15)
    assert after["population"].sum() == pytest.approx(588717, rel=1e-12)
    room = after.attrs["room"]
    assert after.attrs["cap_met"] is True
    assert bool(np.all(after["population"].to_numpy() <= room * (1 + 1e-9)))
    assert after["population"].max() < before["population"].max()
    dense_before = _densest_h3(before, outline, crs)
    dense_after = _densest_h3(after, outline, crs)
    print(
        f"\nYuzhong largest building {before['population'].max():,.0f} -> "
        f"{after['population'].max():,.0f}; densest H3 r8 cell {dense_before:,.0f} -> "
        f"{dense_after:,.0f} /km²; {after.attrs['buildings_capped']} buildings capped, "
        f"{after.attrs['people_moved']:,.0f} people moved, untagged buildings' room at "
        f"{after.attrs['unknown_levels_for_room']:.2f} storeys"
    )
    assert dense_after < dense_before
    print("\n".join(plausibility(after).lines()))
