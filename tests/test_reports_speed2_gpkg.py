"""``write_gpkg`` sends plain point layers through GDAL's Arrow path: the same file bytes.

The Arrow path skips pyogrio's per-feature Python loop (a big city's 200,000 population
points); it is taken only where GDAL types the fields as the feature path does. These
tests write the same layers both ways and compare the files byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from tuoyu.outputs import reports
from tuoyu.outputs.reports import _arrow_writes_same, _plain_frame, write_gpkg

CRS = "EPSG:32648"


def _points(n: int = 3000) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(2)
    return gpd.GeoDataFrame(
        {
            "point_id": np.arange(n, dtype=np.int64),
            "unit_code": np.array([f"00{i % 13:02d}" for i in range(n)], dtype=object),
            "population": rng.uniform(0, 50, n),
            "population_under3": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 2, n)),
            "walk_m_all": np.where(rng.random(n) < 0.3, np.inf, rng.uniform(0, 1000, n)),
            "label": np.array(["合成" if i % 2 else "" for i in range(n)], dtype=object),
            "small": np.arange(n, dtype=np.int32),
        },
        geometry=gpd.points_from_xy(rng.uniform(6e5, 7e5, n), rng.uniform(3.2e6, 3.3e6, n)),
        crs=CRS,
    )


def _layers() -> dict[str, gpd.GeoDataFrame]:
    points = _points()
    facilities = points.iloc[:40].assign(puhui=[True, False, None, True] * 10)
    zones = gpd.GeoDataFrame(
        {"gap_id": pd.array(np.arange(1, 41), dtype="Int64"), "unit_codes": ["A"] * 40},
        geometry=shapely.buffer(points.geometry.values[:40], 80.0),
        crs=CRS,
    )
    return {"facilities": facilities, "population": points, "gaps": zones}


def test_plain_points_take_the_arrow_path() -> None:
    layers = _layers()
    assert _arrow_writes_same(_plain_frame(layers["population"]))
    # text column holding booleans and None: GDAL would type it BOOLEAN through Arrow
    assert not _arrow_writes_same(_plain_frame(layers["facilities"]))
    assert not _arrow_writes_same(_plain_frame(layers["gaps"]))
    assert not _arrow_writes_same(_points().iloc[:0])
    missing = _points(10)
    missing.loc[3, "geometry"] = None
    assert not _arrow_writes_same(missing)


def test_gpkg_bytes_equal_the_feature_path(tmp_path: Path) -> None:
    layers = _layers()
    fast = write_gpkg(tmp_path / "fast.gpkg", {**layers, "none": None})
    with mock.patch.object(reports, "_arrow_writes_same", return_value=False) as chooser:
        slow = write_gpkg(tmp_path / "slow.gpkg", {**layers, "none": None})
    assert chooser.call_count == 3
    assert fast.read_bytes() == slow.read_bytes()
    back = pyogrio.read_dataframe(fast, layer="population")
    assert back["unit_code"].tolist() == layers["population"]["unit_code"].tolist()
    assert (
        np.isnan(back["population_under3"]).sum()
        == np.isnan(layers["population"]["population_under3"]).sum()
    )


@pytest.mark.parametrize("n", [1, 70_000])
def test_point_layer_bytes_equal_the_feature_path(tmp_path: Path, n: int) -> None:
    layer = {"population": _points(n)}
    fast = write_gpkg(tmp_path / "fast.gpkg", layer)
    with mock.patch.object(reports, "_arrow_writes_same", return_value=False) as chooser:
        slow = write_gpkg(tmp_path / "slow.gpkg", layer)
    assert chooser.called
    assert fast.read_bytes() == slow.read_bytes()
