"""Round 2 of the gap-zone speed-ups gives what the per-zone unions gave, bit for bit.

``uncovered_areas`` (zones) no longer makes a disc object per point nor a ``union_all``
collection per zone: a one-point zone is its disc, a zone of several points is the union
of one multipolygon of its discs. These tests compare with the per-zone
``shapely.union_all`` of the buffered points, and check that GEOS's union of a single
polygon is a copy of it (what lets ``_dissolve`` skip one-cell groups).
"""

from __future__ import annotations

import geopandas as gpd
import h3
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import shapely
from tuoyu.indicators.gaps import (
    _DISC_QUAD_SEGS,
    _discs,
    _dissolve,
    _zone_parts,
    uncovered_areas,
)
from tuoyu.indicators.summary import _population_groups

CRS = "EPSG:32650"


def _reference_parts(
    xy: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], radius_m: float
) -> list[bytes]:
    """Per zone, the union of its points' buffers in point order (the first version)."""
    discs = shapely.buffer(shapely.points(xy), radius_m, quad_segs=_DISC_QUAD_SEGS)
    return [
        shapely.to_wkb(shapely.union_all(discs[labels == k])) for k in range(int(labels.max()) + 1)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_zone_parts_match_the_per_zone_union(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1200
    xy = rng.uniform(0, 9000, (n, 2)) + np.array([500_000.0, 3_300_000.0])
    xy[:100] = np.round(xy[:100])
    labels, parts = _zone_parts(xy[:, 0], xy[:, 1], 150.0)
    sizes = np.bincount(labels)
    assert (sizes == 1).any() and (sizes > 3).any()  # both paths are exercised
    assert parts.dtype == object and parts.shape == (sizes.size,)
    assert shapely.to_wkb(parts).tolist() == _reference_parts(xy, labels, 75.0)


@pytest.mark.parametrize(
    "xy",
    [
        np.array([[0.0, 0.0], [1000.0, 0.0], [3000.0, 5.5]]),  # only one-point zones
        np.array([[0.0, 0.0], [100.0, 0.0], [149.0, 30.0]]),  # only one zone
    ],
)
def test_zone_parts_with_one_kind_of_zone(xy: npt.NDArray[np.float64]) -> None:
    labels, parts = _zone_parts(xy[:, 0], xy[:, 1], 150.0)
    assert shapely.to_wkb(parts).tolist() == _reference_parts(xy, labels, 75.0)


def test_union_of_one_polygon_is_the_polygon() -> None:
    """GEOS copies a lone polygon: discs, grid squares and projected hexagons alike."""
    rng = np.random.default_rng(9)
    xy = rng.uniform(0, 1e6, (300, 2))
    discs = _discs(xy, 75.0)
    squares = shapely.box(xy[:, 0] - 52.5, xy[:, 1] - 52.5, xy[:, 0] + 52.5, xy[:, 1] + 52.5)
    cell = h3.latlng_to_cell(30.0, 106.5, 9)
    hexagon = shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])
    hexagons = gpd.GeoSeries([hexagon], crs=4326).to_crs(32648).values
    for cells in (discs, np.asarray(squares, dtype=object), np.asarray(hexagons, dtype=object)):
        unions = shapely.union_all(cells[:, np.newaxis], axis=1)
        assert shapely.to_wkb(unions).tolist() == shapely.to_wkb(cells).tolist()


def test_dissolve_keeps_lone_cells_and_unions_the_rest() -> None:
    rng = np.random.default_rng(4)
    cells = np.asarray(
        shapely.box(*rng.uniform(0, 500, (2, 60)), *rng.uniform(600, 900, (2, 60))),
        dtype=object,
    )
    cells[5] = shapely.Polygon()  # an empty cell alone in its group is still unioned
    group = np.concatenate([np.arange(30), rng.integers(30, 40, 30)]).astype(np.int64)
    got = _dissolve(cells, group, 41)  # group 40 has no cell
    expected = [shapely.union_all(cells[group == k]) for k in range(41)]
    assert shapely.to_wkb(got).tolist() == shapely.to_wkb(np.asarray(expected)).tolist()
    assert got[0] is cells[0]
    assert got[5].geom_type == "GeometryCollection" and got[40].is_empty


def test_uncovered_zones_keep_their_columns() -> None:
    rng = np.random.default_rng(12)
    n = 800
    xy = rng.uniform(0, 5000, (n, 2)) + np.array([450_000.0, 4_420_000.0])
    pop = gpd.GeoDataFrame(
        {"population": rng.uniform(1, 20, n), "unit_code": rng.choice(["A", "B", "C"], n)},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        crs=CRS,
    )
    walk = np.where(rng.random(n) < 0.6, np.inf, 10.0)
    zones = uncovered_areas(pop, walk, threshold_m=1000.0, unit_names={"A": "甲", "C": "丙"})
    uncovered = walk > 1000.0
    _, parts = _zone_parts(xy[uncovered, 0], xy[uncovered, 1], 150.0)
    assert sorted(shapely.to_wkb(zones.geometry.values).tolist()) == sorted(
        shapely.to_wkb(parts).tolist()
    )
    assert zones["points"].sum() == uncovered.sum()
    assert list(zones["gap_id"]) == list(range(1, len(zones) + 1))


def test_population_groups_by_text_code() -> None:
    units = gpd.GeoDataFrame({"code": ["0001", "0002", "7"]}, geometry=[None, None, None], crs=CRS)
    codes = ["0002", None, "0001", "9", np.nan, "0002", pd.NA]
    pop = gpd.GeoDataFrame(
        {"unit_code": pd.Series(codes, dtype=object)},
        geometry=gpd.points_from_xy(np.zeros(7), np.zeros(7)),
        crs=CRS,
    )
    assert _population_groups(units, pop).tolist() == [1, -1, 0, -1, -1, 1, -1]
    mixed = pop.assign(unit_code=pd.Series([7, None, "0001", 7.0, 1, "7", np.nan], dtype=object))
    # not all text: every code is compared as its str (7 → "7", 7.0 → "7.0")
    assert _population_groups(units, mixed).tolist() == [2, -1, 0, -1, -1, 2, -1]
