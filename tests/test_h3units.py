"""H3 hexagon units: cover the outline, tile it, valid codes, metric areas."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pytest
import shapely
from shapely.geometry import Point, box
from tuoyu.crs.projection import utm_crs_for
from tuoyu.errors import CRSError, InputValidationError
from tuoyu.layers.h3units import h3_units
from tuoyu.layers.population import assign_units, building_points

CRS48 = utm_crs_for(106.57, 29.56)


def _centre_metric(lon: float = 106.57, lat: float = 29.56) -> Point:
    return gpd.GeoSeries([Point(lon, lat)], crs=4326).to_crs(CRS48).iloc[0]


def _cells_per_point(cells: gpd.GeoDataFrame, pts: np.ndarray) -> np.ndarray:
    tree = shapely.STRtree(np.asarray(cells.geometry.values))
    point_idx, _ = tree.query(pts, predicate="intersects")
    return np.bincount(point_idx, minlength=len(pts))


def test_small_disc_hand_checked() -> None:
    centre = _centre_metric()
    disc = centre.buffer(1000)
    cells = h3_units(disc, 8, CRS48)
    assert list(cells.columns) == ["code", "name", "area_m2", "geometry"]
    assert cells.crs == CRS48
    assert cells["area_m2"].sum() == pytest.approx(disc.area, rel=1e-9)
    assert all(h3.is_valid_cell(c) and h3.get_resolution(c) == 8 for c in cells["code"])
    assert cells["code"].is_unique and cells["code"].is_monotonic_increasing
    # the cell holding the centre is the one h3 names for that lat/lng
    holder = cells[cells.covers(centre)]
    assert holder["code"].tolist() == [h3.latlng_to_cell(29.56, 106.57, 8)]
    assert holder["name"].iloc[0] == f"H3 r8 {holder['code'].iloc[0]}"
    # cells the disc does not cut keep their full size (h3's own area, up to UTM scale)
    hexagons = gpd.GeoSeries(
        [shapely.Polygon([(x, y) for y, x in h3.cell_to_boundary(c)]) for c in cells["code"]],
        crs=4326,
    ).to_crs(CRS48)
    full = cells[[disc.contains(g) for g in hexagons]]
    assert len(full) >= 1
    for code, area in zip(full["code"], full["area_m2"], strict=True):
        assert area == pytest.approx(h3.cell_area(code, unit="m^2"), rel=2e-3)
    assert cells.attrs["cells_clipped"] == len(cells) - len(full)


def test_outline_smaller_than_a_cell() -> None:
    tiny = _centre_metric().buffer(20)
    cells = h3_units(tiny, 7, CRS48)
    assert len(cells) in (1, 2) and cells["area_m2"].sum() == pytest.approx(tiny.area)


def test_bad_arguments() -> None:
    square = box(0, 0, 1000, 1000)
    with pytest.raises(InputValidationError, match="0–15"):
        h3_units(square, 16, CRS48)
    with pytest.raises(InputValidationError, match="integer"):
        h3_units(square, 8.5, CRS48)  # type: ignore[arg-type]
    with pytest.raises(CRSError, match="projected"):
        h3_units(square, 8, 4326)
    with pytest.raises(InputValidationError, match="coarser resolution"):
        h3_units(_centre_metric().buffer(20_000), 15, CRS48)
    empty = h3_units(shapely.Polygon(), 8, CRS48)
    assert list(empty.columns) == ["code", "name", "area_m2", "geometry"] and len(empty) == 0


# --- real data: Yuzhong -----------------------------------------------------------------


@pytest.fixture(scope="module")
def yuzhong_outline(data_dir: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(data_dir / "chongqing-yuzhong" / "district.geojson").to_crs(CRS48)


def test_yuzhong_r8_covers_outline(yuzhong_outline: gpd.GeoDataFrame) -> None:
    cells = h3_units(yuzhong_outline, 8, CRS48)  # GeoDataFrame input
    shape = yuzhong_outline.union_all()
    assert shape.area / 1e6 == pytest.approx(23.5, abs=0.1)  # data README: 23.5 km²
    union = cells.union_all()
    assert union.area >= shape.area * (1 - 1e-9)
    assert shape.difference(union).area < 1.0  # m²: nothing of the outline left out
    assert cells["area_m2"].sum() == pytest.approx(shape.area, rel=1e-9)  # no overlaps
    assert cells.attrs["h3_resolution"] == 8 and len(cells) > 30
    # random points inside the outline fall in exactly one cell each
    rng = np.random.default_rng(7)
    xmin, ymin, xmax, ymax = shape.bounds
    pts = shapely.points(rng.uniform(xmin, xmax, 4000), rng.uniform(ymin, ymax, 4000))
    pts = pts[shapely.contains(shape, pts)]
    assert len(pts) > 1000
    assert (_cells_per_point(cells, pts) == 1).all()


@pytest.mark.slow
def test_yuzhong_building_points_in_one_cell(
    data_dir: Path, yuzhong_outline: gpd.GeoDataFrame
) -> None:
    osm_features = pytest.importorskip(
        "tuoyu.layers.osm_features", reason="building loader not written yet"
    )
    buildings = osm_features.load_osm_buildings(
        data_dir / "chongqing-yuzhong" / "yuzhong.osm.pbf", CRS48
    )
    points = building_points(buildings, 588717, outline=yuzhong_outline, under3_share=0.015)
    cells = h3_units(yuzhong_outline, 8, CRS48)
    assert (_cells_per_point(cells, np.asarray(points.geometry.values)) == 1).all()
    assigned = assign_units(points, cells)
    assert assigned["unit_code"].notna().all()
    assert assigned.attrs["points_outside_units"] == 0
