"""The fast paths of the load stage outside the network give what the plain paths gave.

Numeric population weights are taken as a whole column (the cell-by-cell parse is kept
for text and for values to refuse); the facility check's reference points (network
nodes in WGS84) are transformed as arrays rather than as a million point geometries.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from tuoyu.crs.projection import WGS84
from tuoyu.errors import InputValidationError
from tuoyu.layers.population import _numeric_weights, _parse_number, load_weight_points


def _parsed_cell_by_cell(column: pd.Series) -> list[float | None]:
    return [_parse_number(v) for v in column.tolist()]


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([1.5, np.nan, 0.0, -0.0, 3e-300, 7.0]),
        pd.Series([3, 0, 12, 2**53 + 1], dtype=np.int64),
        pd.Series([1, 2], dtype=np.uint16),
        pd.Series(np.random.default_rng(0).random(1000) * 50),
    ],
)
def test_numeric_weights_are_the_cell_parse(column: pd.Series) -> None:
    fast = _numeric_weights(column)
    assert fast is not None
    slow = np.asarray(_parsed_cell_by_cell(column), dtype=np.float64)
    assert fast.tobytes() == slow.tobytes()


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([1.0, -2.0]),  # negative: refused, row named by the cell parse
        pd.Series([1.0, math.inf]),  # not a number
        pd.Series([True, False]),  # a boolean is not a weight
        pd.Series(["1", "2"]),  # text: parsed cell by cell
        pd.Series([1, None], dtype="Int64"),  # nullable integers: cell by cell
    ],
)
def test_numeric_weights_leave_the_rest_to_the_cell_parse(column: pd.Series) -> None:
    assert _numeric_weights(column) is None


def _write(path: Path, weights: list[object]) -> Path:
    features = [
        {
            "type": "Feature",
            "properties": {"weight": w},
            "geometry": {"type": "Point", "coordinates": [116.40 + 0.001 * i, 39.90]},
        }
        for i, w in enumerate(weights)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), "utf-8")
    return path


def test_numeric_and_text_weights_load_alike(tmp_path: Path) -> None:
    numbers = _write(tmp_path / "n.geojson", [3, None, 2.25, 0, None, 8])
    text = _write(tmp_path / "t.geojson", ["3", None, "2.25", "0", "", "8"])
    a = load_weight_points(numbers, "wgs84")
    b = load_weight_points(text, "wgs84")
    assert a["point_id"].tolist() == b["point_id"].tolist() == [1, 3, 4, 6]
    assert a["weight"].tolist() == b["weight"].tolist() == [3.0, 2.25, 0.0, 8.0]
    assert [r.row for r in a.attrs["rejects"]] == [r.row for r in b.attrs["rejects"]] == [2, 5]
    assert a.attrs["rejects"][0].reason == "empty weight (unknown); point left out"
    negative = _write(tmp_path / "neg.geojson", [1.5, None, -2.5, -1])
    with pytest.raises(InputValidationError, match=r"row 3.*weight -2\.5 is negative"):
        load_weight_points(negative, "wgs84")


def test_reference_points_transform_as_geopandas_does() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(400_000.0, 500_000.0, 5000)
    y = rng.uniform(4_400_000.0, 4_450_000.0, 5000)
    nodes = gpd.GeoSeries.from_xy(x, y, crs="EPSG:32650").to_crs(WGS84)
    lon, lat = Transformer.from_crs("EPSG:32650", WGS84, always_xy=True).transform(x, y)
    assert np.asarray(lon).tobytes() == nodes.x.to_numpy().tobytes()
    assert np.asarray(lat).tobytes() == nodes.y.to_numpy().tobytes()
