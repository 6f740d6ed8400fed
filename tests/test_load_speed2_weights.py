"""Round 2 of the load stage: the fast paths give what the geopandas paths gave, bit for bit.

Population weight points are converted on their coordinate arrays (not through
``GeoDataFrame.to_crs``, which rewrites every point twice), and the GCJ-02 check builds
its k-d tree of network nodes without balancing (the nearest distances are exact either
way).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import CRS, Transformer
from scipy.spatial.distance import cdist
from tuoyu.crs.china import convert, parse_crs_name
from tuoyu.crs.projection import WGS84, gdf_to_wgs84, utm_crs_for
from tuoyu.layers.facilities import gcj02_check
from tuoyu.layers.population import _points_to_metric, load_weight_points


def _points(crs: str, n: int = 500) -> np.ndarray:
    rng = np.random.default_rng(3)
    if crs.startswith("EPSG:32648"):
        return np.column_stack([rng.uniform(640e3, 700e3, n), rng.uniform(3.28e6, 3.33e6, n)])
    return np.column_stack([rng.uniform(106.4, 106.7, n), rng.uniform(29.4, 29.7, n)])


@pytest.mark.parametrize(
    ("declared", "metric"),
    [
        ("EPSG:32648", "EPSG:32648"),  # the big city's case: a round trip through WGS84
        ("EPSG:32648", "EPSG:32649"),
        ("wgs84", "EPSG:32648"),
        ("gcj02", "EPSG:32648"),
        ("bd09", None),  # metric CRS estimated from the points
        ("EPSG:4326", "EPSG:4326"),  # no transform at all
    ],
)
def test_points_to_metric_is_geopandas_to_crs(declared: str, metric: str | None) -> None:
    xy = _points(declared)
    columns = {"point_id": np.arange(1, len(xy) + 1), "weight": np.ones(len(xy))}
    frame = gpd.GeoDataFrame(columns, geometry=shapely.points(xy), crs="EPSG:4326")
    wgs = gdf_to_wgs84(frame, declared)
    target = CRS.from_user_input(metric) if metric else wgs.estimate_utm_crs()
    slow = wgs.to_crs(target).reset_index(drop=True)
    fast = _points_to_metric(columns, xy, parse_crs_name(declared), metric)
    assert fast.crs == slow.crs
    assert list(fast.columns) == list(slow.columns)
    assert fast.index.equals(slow.index)
    wkb_fast = shapely.to_wkb(np.asarray(fast.geometry.values))
    wkb_slow = shapely.to_wkb(np.asarray(slow.geometry.values))
    assert (wkb_fast == wkb_slow).all()


def _write_points(path: Path, coords: list[list[float]]) -> Path:
    features = [
        {
            "type": "Feature",
            "properties": {"weight": float(i + 1)},
            "geometry": {"type": "Point", "coordinates": c},
        }
        for i, c in enumerate(coords)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_weight_points_2d_and_3d_give_the_same_positions(tmp_path: Path) -> None:
    lonlat = _points("wgs84", 20).tolist()
    flat = load_weight_points(
        _write_points(tmp_path / "w2.geojson", lonlat), "gcj02", metric_crs="EPSG:32648"
    )
    high = load_weight_points(
        _write_points(tmp_path / "w3.geojson", [[x, y, 250.0] for x, y in lonlat]),
        "gcj02",
        metric_crs="EPSG:32648",
    )
    assert flat["point_id"].tolist() == list(range(1, 21))
    assert flat.crs == CRS.from_epsg(32648)
    xy2 = shapely.get_coordinates(np.asarray(flat.geometry.values))
    xy3 = shapely.get_coordinates(np.asarray(high.geometry.values))
    np.testing.assert_array_equal(xy2, xy3)
    lon, lat = convert(np.asarray(lonlat)[:, 0], np.asarray(lonlat)[:, 1], "gcj02", "wgs84")
    expected = gpd.GeoSeries.from_xy(lon, lat, crs="EPSG:4326").to_crs("EPSG:32648")
    np.testing.assert_array_equal(xy2, np.column_stack([expected.x, expected.y]))


def test_gcj02_check_scores_are_exact_nearest_distances() -> None:
    rng = np.random.default_rng(5)
    nodes = np.column_stack([106.5 + rng.random(3000) * 0.05, 29.5 + rng.random(3000) * 0.05])
    true = nodes[:40] + 0.00004
    points = np.column_stack(convert(true[:, 0], true[:, 1], "wgs84", "gcj02"))
    check = gcj02_check(points, nodes)
    assert check.suspected
    metric = utm_crs_for(float(np.median(points[:, 0])), float(np.median(points[:, 1])))
    to_m = Transformer.from_crs(WGS84, metric, always_xy=True)
    given = np.column_stack(to_m.transform(points[:, 0], points[:, 1]))
    ref = np.column_stack(to_m.transform(nodes[:, 0], nodes[:, 1]))
    assert check.score_as_given == float(np.median(cdist(given, ref).min(axis=1)))
