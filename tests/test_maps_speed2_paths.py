"""Round 2 of the map stage's fast paths: each gives what the form it replaced gave.

Ring sizes read from WKB (not one geometry per ring), the WGS84 box from only the
coordinates that can be extreme, display text and bounds encoded without building the
WGS84 geometries, tooltip values as JSON text column by column, 32-bit digit writing,
H3 cells through the integer API, and the zones' 街道 texts worked out once per pair.
"""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from tuoyu.outputs.maps import common, gap_map
from tuoyu.outputs.maps.common import (
    EncodedGeometries,
    chunked_layer,
    display_geometries,
    encode_display,
    encode_geometries,
    json_numbers,
    json_rows,
    json_strings,
    render_ints,
    wgs84_box,
)

UTM48 = 32648


def _holed_polygons(rng: np.random.Generator, n: int) -> list[Any]:
    """Polygons around Chongqing (UTM 48N) with 0–5 holes, some multi-part, some empty."""
    out: list[Any] = []
    for i in range(n):
        x0 = 600_000 + rng.uniform(0, 50_000)
        y0 = 3_260_000 + rng.uniform(0, 50_000)
        shell = shapely.Point(x0, y0).buffer(
            rng.uniform(200, 800), quad_segs=int(rng.integers(2, 9))
        )
        holes = [
            shapely.Point(x0 + dx, y0 + dy).buffer(30, quad_segs=2)
            for dx, dy in rng.uniform(-150, 150, size=(int(rng.integers(0, 6)), 2))
        ]
        poly = shell.difference(shapely.union_all(holes)) if holes else shell
        if i % 7 == 3:
            poly = shapely.MultiPolygon(
                [*getattr(poly, "geoms", [poly]), shapely.box(x0 + 2000, y0, x0 + 2100, y0 + 90)]
            )
        if i % 11 == 5:
            poly = shapely.Polygon()
        out.append(poly)
    return out


def test_ring_sizes_match_get_rings() -> None:
    rng = np.random.default_rng(1)
    parts = shapely.get_parts(np.array(_holed_polygons(rng, 200), dtype=object))
    parts = np.concatenate([parts, np.array([shapely.Polygon()], dtype=object)])
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    counts, got_part = common._ring_sizes(parts)
    assert counts.tolist() == shapely.get_num_coordinates(rings).tolist()
    assert got_part.tolist() == ring_part.tolist()


def test_wgs84_box_filtered_equals_full_transform() -> None:
    rng = np.random.default_rng(2)
    n = 60_000
    xy = np.column_stack([rng.uniform(560_000, 640_000, n), rng.uniform(3_240_000, 3_340_000, n)])
    layer = gpd.GeoDataFrame(geometry=shapely.points(xy), crs=UTM48)
    assert np.array_equal(wgs84_box(layer), np.asarray(layer.to_crs(4326).total_bounds))
    polys = gpd.GeoDataFrame(geometry=_holed_polygons(rng, 300), crs=UTM48)
    assert np.array_equal(wgs84_box(polys), np.asarray(polys.to_crs(4326).total_bounds))
    # a non-finite coordinate: every coordinate transformed, as before
    bad = xy.copy()
    bad[5] = np.nan
    layer = gpd.GeoDataFrame(geometry=shapely.points(bad), crs=UTM48)
    assert np.allclose(wgs84_box(layer), layer.to_crs(4326).total_bounds, equal_nan=True)


@pytest.mark.parametrize("simplify_m", [0.0, 5.0])
def test_encode_display_equals_display_geometries(simplify_m: float) -> None:
    rng = np.random.default_rng(3)
    geoms = _holed_polygons(rng, 400)
    geoms[10] = None
    geoms[20] = shapely.GeometryCollection(
        [shapely.box(600_000, 3_260_000, 600_100, 3_260_100), shapely.LineString([(0, 0), (1, 1)])]
    )
    layer = gpd.GeoDataFrame(geometry=geoms, crs=UTM48)
    shown = display_geometries(layer, simplify_m, 5)
    encoded = encode_display(layer, simplify_m, 5)
    assert encoded.texts == encode_geometries(shown, "polygon", 5)
    assert np.array_equal(encoded.boxes, shapely.bounds(shown), equal_nan=True)


def test_encode_display_points() -> None:
    rng = np.random.default_rng(4)
    xy = np.column_stack([rng.uniform(560_000, 640_000, 500), rng.uniform(3.24e6, 3.34e6, 500)])
    layer = gpd.GeoDataFrame(geometry=[*shapely.points(xy), None], crs=UTM48)
    shown = display_geometries(layer, 0.0, 5)
    encoded = encode_display(layer, 0.0, 5, "point")
    assert encoded.texts == encode_geometries(shown, "point", 5)
    assert np.array_equal(encoded.boxes, shapely.bounds(shown), equal_nan=True)


def test_chunked_layer_encoded_and_value_texts_write_the_same() -> None:
    rng = np.random.default_rng(5)
    layer = gpd.GeoDataFrame(geometry=_holed_polygons(rng, 2_500), crs=UTM48)
    people = rng.uniform(0, 500, len(layer))
    people[::13] = np.nan
    under3 = people * 0.031
    ranks = [str(i + 1) for i in range(len(layer))]
    rows = [
        [r, p, u]
        for r, p, u in zip(
            ranks, gap_map._rounded(people, 0), gap_map._rounded(under3, 1), strict=True
        )
    ]
    classes = np.arange(len(layer)) % 3
    styles = [{"color": c} for c in ("#a", "#b", "#c")]
    spec, data = chunked_layer(
        "gaps", None, display_geometries(layer, 5.0, 5), styles=styles, classes=classes, values=rows
    )
    fast_spec, fast_data = chunked_layer(
        "gaps",
        None,
        encode_display(layer, 5.0, 5),
        styles=styles,
        classes=classes,
        value_texts=json_rows(
            [json_strings(ranks), json_numbers(people, 0), json_numbers(under3, 1)]
        ),
    )
    assert fast_spec == spec
    assert fast_data.chunks == data.chunks
    assert isinstance(encode_display(layer, 5.0, 5), EncodedGeometries)


def test_json_texts_are_json_dumps() -> None:
    raw = np.array([0.45, 1.5, -0.04, np.nan, np.inf, 12.25, 1e7 + 0.05, -3.0, 0.0])
    for digits in (0, 1, 2):
        want = [json.dumps(v) for v in gap_map._rounded(raw, digits)]
        assert json_numbers(raw, digits) == want
    strings = ["1", "区", 'a"b', "c\\d", "e\nf", ""]
    assert json_strings(strings) == [json.dumps(s, ensure_ascii=False) for s in strings]
    assert json_strings(["1", "22"]) == ['"1"', '"22"']


def test_render_ints_wide_and_narrow_values() -> None:
    values = np.array([0, 9, -10, 4_294_967_295, -4_294_967_296, 2**62, -(2**63), 7])
    prefix = np.ones(values.shape[0], dtype=np.int8)
    prefix[0] = 0
    suffix = np.zeros(values.shape[0], dtype=np.int8)
    text, _ = render_ints(values, prefix, suffix, ("", ","))
    assert text == ",".join(str(int(v)) for v in values)
    text, _ = render_ints(values[:3], prefix[:3], suffix[:3], ("", ","))
    assert text == "0,9,-10"


def test_hexagon_cells_as_the_string_api_gives() -> None:
    rng = np.random.default_rng(6)
    xy = np.column_stack([rng.uniform(590_000, 600_000, 3_000), rng.uniform(3.26e6, 3.27e6, 3_000)])
    points = gpd.GeoDataFrame(
        {"population": rng.uniform(0, 30, 3_000), "population_under3": rng.uniform(0, 1, 3_000)},
        geometry=shapely.points(xy),
        crs=UTM48,
    )
    got = gap_map.hexagon_people(points, 9)
    wgs = points.to_crs(4326)
    cells = pd.Series([h3.latlng_to_cell(p.y, p.x, 9) for p in wgs.geometry])
    sums = points.groupby(cells.to_numpy())["population"].sum()
    assert set(got["cell"]) == set(sums.index)
    assert np.allclose(got.set_index("cell")["population"].loc[sums.index], sums.to_numpy())
    for cell, geom in zip(got["cell"][:50], got.geometry[:50], strict=True):
        ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
        assert shapely.equals_exact(geom, shapely.Polygon(ring), 0.0)


def test_zone_unit_names_per_row_as_before() -> None:
    gaps = pd.DataFrame(
        {
            "unit_names": ["甲,乙", "甲,乙", None, "", None, "丙"],
            "unit_codes": ["1,2", "1,2", "3", "3", None, "4"],
        }
    )
    units = {"3": "丁"}
    distinct, index = gap_map._zone_unit_names(gaps, units)
    want = [gap_map._zone_units(row, units) for row in gaps.to_dict("records")]
    assert [distinct[i] for i in index.tolist()] == want
