"""The vectorised GeoJSON writer (:func:`tuoyu.outputs.reports.write_geojson`)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from tuoyu.outputs.reports import GEOJSON_DECIMALS, write_geojson

OSM = "© OpenStreetMap contributors"


def _layer() -> gpd.GeoDataFrame:
    """Four rows in UTM 48N: a polygon with a hole, an empty polygon, no geometry, a point."""
    ring = shapely.box(500_000.0, 3_260_000.0, 500_333.3333, 3_260_250.1234)
    hole = shapely.box(500_100.0, 3_260_100.0, 500_120.0, 3_260_120.0)
    return gpd.GeoDataFrame(
        {
            "facility_id": ["甲-1", "乙-2", None, "丁-4"],
            "minutes": [15.0, 5.0, np.nan, 10.0],
            "count": np.array([1, 2, 3, 4], dtype=np.int64),
            "puhui": pd.array([True, None, False, True], dtype="boolean"),
        },
        geometry=[
            shapely.Polygon(ring.exterior, [hole.exterior]),
            shapely.Polygon(),
            None,
            shapely.Point(500_010.0, 3_260_010.0),
        ],
        crs="EPSG:32648",
    )


def test_members_values_and_types(tmp_path: Path) -> None:
    path = write_geojson(
        _layer(), tmp_path / "x.geojson", attribution=OSM, name="isochrones", notes=["近似"]
    )
    text = path.read_text(encoding="utf-8")
    assert "甲-1" in text and "近似" in text  # UTF-8, not \u-escaped
    data = json.loads(text)
    assert data["type"] == "FeatureCollection"
    assert (data["name"], data["attribution"], data["notes"]) == ("isochrones", OSM, ["近似"])
    assert "crs" not in data
    props = [f["properties"] for f in data["features"]]
    assert props[0] == {"facility_id": "甲-1", "minutes": 15.0, "count": 1, "puhui": True}
    assert props[1]["puhui"] is None and props[2]["minutes"] is None
    assert props[2]["facility_id"] is None
    geoms = [f["geometry"] for f in data["features"]]
    assert geoms[1] == {"type": "Polygon", "coordinates": []}
    assert geoms[2] is None
    assert geoms[3]["type"] == "Point"
    assert len(geoms[0]["coordinates"]) == 2  # shell and hole


def test_coordinates_rounded_to_stated_precision(tmp_path: Path) -> None:
    layer = _layer()
    data = json.loads(write_geojson(layer, tmp_path / "x.geojson").read_text(encoding="utf-8"))
    coords = np.array(data["features"][0]["geometry"]["coordinates"][0])
    expected = shapely.get_coordinates(layer.to_crs(4326).geometry.iloc[0].exterior)
    np.testing.assert_allclose(coords, expected, rtol=0.0, atol=0.5 * 10.0**-GEOJSON_DECIMALS)
    assert np.array_equal(coords, np.round(coords, GEOJSON_DECIMALS))


def test_reads_back_with_gdal_and_reruns_are_identical(tmp_path: Path) -> None:
    layer = _layer()
    first = write_geojson(layer, tmp_path / "a.geojson", attribution=OSM)
    second = write_geojson(layer, tmp_path / "b.geojson", attribution=OSM)
    assert first.read_bytes() == second.read_bytes()
    back = pyogrio.read_dataframe(first)
    assert back["facility_id"].tolist()[:2] == ["甲-1", "乙-2"]
    assert back["count"].tolist() == [1, 2, 3, 4]
    assert back.crs.to_epsg() == 4326


def test_empty_layer_and_no_crs(tmp_path: Path) -> None:
    empty = write_geojson(_layer().iloc[0:0], tmp_path / "e.geojson", attribution=OSM)
    data = json.loads(empty.read_text(encoding="utf-8"))
    assert data["features"] == [] and data["attribution"] == OSM
    with pytest.raises(ValueError, match="no CRS"):
        write_geojson(gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)]), tmp_path / "n.geojson")
