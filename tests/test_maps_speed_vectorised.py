"""The map stage's vectorised paths write exactly what the plain Python ones wrote.

Each fast path (integer text, compact geometry, WGS84 boxes, spatial chunking, the
walk lookup as arrays, hexagon sums, popups) is checked against a plain reference —
the straightforward form it replaced — on inputs chosen to reach its edge cases; the
memory bounds are the reason for the change (a city's layers on a 2 GB budget).
"""

from __future__ import annotations

import gc
import json
import math
import tracemalloc
from functools import partial
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import shapely
from tuoyu.errors import InputValidationError
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.outputs.maps import common, gap_map
from tuoyu.outputs.maps.common import (
    display_geometries,
    encode_geometries,
    encode_layer,
    join_ints,
    render_ints,
    wgs84_bounds,
)
from tuoyu.outputs.maps.facility_map import (
    WalkLookup,
    _walk_config,
    facility_popup,
    facility_rows,
    tenths_of,
    walk_lookup_arrays,
    walk_lookup_from_reaches,
)
from tuoyu.types import LocalReach

UTM50 = 32650


def _ring_text(ring: npt.NDArray[np.int64], origin: npt.NDArray[np.int64]) -> str:
    """A ring's steps, its first vertex from ``origin`` (the previous ring's start)."""
    steps = ring.copy()
    steps[1:] -= ring[:-1]
    steps[:1] -= origin
    return "[" + ",".join(str(int(v)) for v in steps[:-1].ravel()) + "]"


def _plain_polygon_text(geom: Any, scale: float) -> str | None:
    """The compact polygon text spelled out geometry by geometry (the format's definition)."""
    if geom is None or geom.is_empty:
        return None
    parts = []
    stack = [geom]
    while stack:
        g = stack.pop(0)
        if g.geom_type in ("MultiPolygon", "GeometryCollection", "MultiLineString", "MultiPoint"):
            stack = list(g.geoms) + stack
        elif g.geom_type == "Polygon":
            parts.append(g)
    if not parts:
        return None
    texts = []
    origin = np.zeros(2, dtype=np.int64)  # the row's first ring starts from 0, 0
    for p in parts:
        rings = [] if p.is_empty else [p.exterior, *p.interiors]
        ring_texts = []
        for r in rings:
            ints = np.rint(np.asarray(r.coords)[:, :2] * scale).astype(np.int64)
            ring_texts.append(_ring_text(ints, origin))
            origin = ints[0]
        texts.append("[" + ",".join(ring_texts) + "]")
    return "[" + ",".join(texts) + "]"


def _odd_geometries() -> list[Any]:
    rng = np.random.default_rng(1)
    disc = shapely.Point(116.4, 39.9).buffer(0.01, quad_segs=64)
    holed = disc.difference(shapely.Point(116.401, 39.9).buffer(0.002))
    many = shapely.MultiPolygon(
        [shapely.Point(116 + 0.01 * i, 39.9).buffer(0.003 + 0.001 * rng.random()) for i in range(7)]
    )
    return [
        shapely.box(116.0, 39.0, 116.00002, 39.00001),
        None,
        shapely.from_wkt("POLYGON EMPTY"),
        holed,
        many,
        shapely.from_wkt(
            "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), EMPTY, ((5 5, 6 5, 6 6, 5 5), "
            "(5.2 5.1, 5.5 5.1, 5.5 5.3, 5.2 5.1)))"
        ),
        shapely.from_wkt(
            "GEOMETRYCOLLECTION (LINESTRING (0 0, 1 1), POLYGON ((0 0, 1 0, 1 1, 0 0)))"
        ),
        shapely.from_wkt("GEOMETRYCOLLECTION (LINESTRING (0 0, 1 1))"),
        shapely.Point(-116.123456789, -39.5).buffer(0.5),
        shapely.Point(1, 2),
    ]


# --- integer text -----------------------------------------------------------------------


def test_render_ints_writes_what_str_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "RENDER_BATCH", 7)  # many batches
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.integers(-(10**18), 10**18, 50),
            rng.integers(-1000, 1000, 50),
            [0, -1, 9, 10, 99, 100, -(2**63), 2**63 - 1, 10**18, -(10**19 // 10)],
        ]
    ).astype(np.int64)
    literals = ["", ",", "[[", "]", '{"a":[', "],"]
    prefix = np.asarray(rng.integers(0, len(literals), values.shape[0]), dtype=np.int8)
    suffix = np.asarray(rng.integers(0, len(literals), values.shape[0]), dtype=np.int8)
    text, ends = render_ints(values, prefix, suffix, literals)
    pieces = [
        literals[p] + str(int(v)) + literals[s]
        for v, p, s in zip(values.tolist(), prefix.tolist(), suffix.tolist(), strict=True)
    ]
    assert text == "".join(pieces)
    assert ends.tolist() == np.cumsum([len(p) for p in pieces]).tolist()
    assert join_ints(values) == ",".join(map(str, values.tolist()))
    assert (
        join_ints([]) == ""
        and render_ints(
            np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.int8), ["", ","]
        )[0]
        == ""
    )


# --- compact geometry -------------------------------------------------------------------


@pytest.mark.parametrize("block", [1, 5, 1 << 19])
def test_encode_geometries_matches_the_plain_form(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(common, "ENCODE_BLOCK_COORDS", block)
    geoms = _odd_geometries()
    polys = [g for g in geoms if not isinstance(g, shapely.Point)]
    for decimals in (5, 6):
        expected = [_plain_polygon_text(g, 10.0**decimals) for g in polys]
        assert encode_geometries(polys, "polygon", decimals) == expected
    points = [shapely.Point(116.397, 39.909), None, shapely.Point(-1.5, -0.00001)]
    assert encode_geometries([*points, shapely.from_wkt("POINT EMPTY")], "point") == [
        "[11639700,3990900]",
        None,
        "[-150000,-1]",
        None,
    ]


def test_encode_geometries_memory_is_bounded_by_blocks() -> None:
    """1.5 M coordinates: the old per-number Python lists peaked at ~180 MB."""
    rng = np.random.default_rng(0)
    centres = rng.random((3000, 2)) * 0.5 + [116.0, 39.7]
    geoms: npt.NDArray[Any] = np.asarray(
        shapely.buffer(shapely.points(centres), 0.002, quad_segs=128), dtype=object
    )
    assert shapely.get_num_coordinates(geoms).sum() > 1_500_000
    gc.collect()
    tracemalloc.start()
    try:
        texts = encode_geometries(geoms, "polygon", 6)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 90 * 2**20
    assert texts[17] == _plain_polygon_text(geoms[17], 1e6)


def _projected_layer() -> gpd.GeoDataFrame:
    geoms = [g for g in _odd_geometries() if not isinstance(g, shapely.Point)]
    wgs = gpd.GeoSeries(geoms, crs=4326)
    # in metres (UTM 50N), some simplifiable
    return gpd.GeoDataFrame({"k": range(len(geoms))}, geometry=wgs.to_crs(UTM50), crs=UTM50)


@pytest.mark.parametrize("simplify_m", [0.0, 5.0])
def test_encode_layer_is_display_then_encode(simplify_m: float) -> None:
    layer = _projected_layer()
    # the layer near Beijing, so the WGS84 numbers are ordinary
    layer = layer.set_geometry(
        shapely.transform(layer.geometry.values, lambda c: c * 0.01 + [450000.0, 4400000.0])
    )
    for decimals in (5, 6):
        texts, box = encode_layer(layer, simplify_m, decimals)
        shown = display_geometries(layer, simplify_m, decimals)
        assert texts == encode_geometries(shown, "polygon", decimals)
        assert box.tolist() == layer.to_crs(4326).total_bounds.tolist()


def _round_to(coords: npt.NDArray[np.float64], digits: int) -> npt.NDArray[np.float64]:
    return np.asarray(np.round(coords, digits), dtype=np.float64)


def test_display_geometries_is_to_crs_then_round() -> None:
    layer = _projected_layer()
    for decimals in (5, 6):
        got = display_geometries(layer, 0.0, decimals)
        want = shapely.transform(
            np.asarray(layer.to_crs(4326).geometry.values),
            partial(_round_to, digits=decimals),
        )
        assert (shapely.to_wkb(got) == shapely.to_wkb(want)).all()


def test_wgs84_bounds_are_to_crs_total_bounds() -> None:
    rng = np.random.default_rng(4)
    pts = gpd.GeoDataFrame(
        geometry=shapely.points(rng.random((500, 2)) * 20000 + [440000, 4410000]), crs=UTM50
    )
    layer = _projected_layer()
    boxes = [g.to_crs(4326).total_bounds for g in (pts, layer)]
    arr = np.vstack(boxes)
    want = [
        [round(float(arr[:, 1].min()), 6), round(float(arr[:, 0].min()), 6)],
        [round(float(arr[:, 3].max()), 6), round(float(arr[:, 2].max()), 6)],
    ]
    assert wgs84_bounds(pts, None, layer) == want
    empty = gpd.GeoDataFrame(geometry=[shapely.from_wkt("POINT EMPTY")], crs=UTM50)
    assert wgs84_bounds(empty) is None and wgs84_bounds(None) is None


# --- spatial chunks ---------------------------------------------------------------------


def _groups_by_sorting(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], size: int
) -> list[npt.NDArray[np.int64]]:
    """Median splits by stable sorts (what the chunks were defined as)."""
    groups = []
    stack = [np.arange(x.shape[0], dtype=np.int64)]
    coslat = math.cos(math.radians(float(np.mean(y)))) if y.size else 1.0
    while stack:
        idx = stack.pop()
        if idx.shape[0] <= size:
            groups.append(np.sort(idx))
            continue
        xs, ys = x[idx], y[idx]
        wide = (xs.max() - xs.min()) * coslat >= ys.max() - ys.min()
        order = idx[np.argsort(xs if wide else ys, kind="stable")]
        half = order.shape[0] // 2
        stack += [order[half:], order[:half]]
    return groups


def test_spatial_groups_match_stable_sort_splits_ties_included() -> None:
    rng = np.random.default_rng(3)
    for trial in range(150):
        n = int(rng.integers(1, 2500))
        size = int(rng.integers(1, 150))
        x = rng.random(n) * 0.3 + 116.0
        y = rng.random(n) * 0.2 + 39.0
        digits = trial % 4
        if digits:  # grids: many equal values across the splits
            x, y = np.round(x, digits), np.round(y, digits)
        if trial % 7 == 0:
            y[:] = 39.0
        if trial % 13 == 0:
            x[rng.random(n) < 0.2] = np.nan
        got = common._spatial_groups(x, y, size)
        want = _groups_by_sorting(x, y, size)
        assert len(got) == len(want)
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)), trial


# --- the walk lookup --------------------------------------------------------------------


def test_tenths_of_is_python_round() -> None:
    rng = np.random.default_rng(5)
    halves = np.arange(0, 200) / 10.0 + 0.05  # x.x5: half-way in decimal, not in binary
    values = np.concatenate([halves, rng.random(20000) * 15.0, [0.0, 15.0, 14.95, 0.25, 2.5]])
    assert tenths_of(values).tolist() == [round(round(float(t), 1) * 10) for t in values]


def _line_network(n: int) -> WalkNetwork:
    return WalkNetwork(
        node_id=np.arange(n),
        node_x_m=(500000.0 + 25.0 * np.arange(n)).astype(np.float64),
        node_y_m=(np.full(n, 3300000.0) + 7.0 * (np.arange(n) % 5)).astype(np.float64),
        edge_u=np.arange(n - 1),
        edge_v=np.arange(1, n),
        edge_length_m=np.full(n - 1, 25.0),
        edge_way_id=np.full(n - 1, -1),
        crs=gpd.GeoSeries([], crs=32648).crs,
    )


def _reaches(n_nodes: int, n_fac: int, seed: int) -> list[LocalReach]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_fac):
        centre = int(rng.integers(0, n_nodes))
        node = np.arange(max(0, centre - 60), min(n_nodes, centre + 60))
        dist = np.abs(node - centre) * 25.0 + rng.random() * 10
        dist[::7] = np.round(dist[::7] / 100.0 * 6, 0) * 100.0 / 6 + 5.0  # x.x5 minutes
        out.append(LocalReach(i, 1100.0, node, dist, 0, 0.0, 0.0))
    return out


def test_walk_lookup_arrays_make_the_same_page_as_the_table() -> None:
    net = _line_network(3000)
    reaches = _reaches(3000, 40, seed=6)
    ids = [f"F{i}" for i in range(40)]
    arrays = walk_lookup_arrays(net, reaches, ids, 4.0, 15.0)
    table = walk_lookup_from_reaches(net, reaches, ids, 4.0, 15.0)
    pd.testing.assert_frame_equal(arrays.to_frame(), table)
    # the table is what it always was: per node, (id, round(t, 1)) nearest first
    speed = 4.0 * 1000.0 / 60.0
    node = 1234
    pairs = sorted(
        (float(r.dist_m[k] / speed), i)
        for i, r in enumerate(reaches)
        for k in np.flatnonzero(r.node == node)
        if r.dist_m[k] / speed <= 15.0
    )
    assert table["facilities"][node] == [(ids[i], round(t, 1)) for t, i in pairs]
    index_of = {f: i for i, f in enumerate(ids)}
    for minutes in (15.0, 9.95, 4.0):
        a_cfg, a_chunks = _walk_config(
            arrays,
            index_of,
            mode="lookup",
            speed_kmh=4.0,
            minutes=minutes,
            max_snap_m=300.0,
            chunk_nodes=200,
        )
        t_cfg, t_chunks = _walk_config(
            table,
            index_of,
            mode="lookup",
            speed_kmh=4.0,
            minutes=minutes,
            max_snap_m=300.0,
            chunk_nodes=200,
        )
        assert a_cfg == t_cfg and a_chunks is not None and t_chunks is not None
        assert a_chunks.chunks == t_chunks.chunks
        assert all(json.loads(c) for c in a_chunks.chunks)
    # chunks with no facility at all still read as JSON
    lonely = WalkLookup(arrays.lon, arrays.lat, arrays.facility_ids, *(np.zeros(0, np.int64),) * 3)
    _, chunks = _walk_config(
        lonely,
        index_of,
        mode="lookup",
        speed_kmh=4.0,
        minutes=15.0,
        max_snap_m=300.0,
        chunk_nodes=500,
    )
    assert chunks is not None and json.loads(chunks.chunks[0])["f"] == []
    # a facility not on the map: the same error as the table's
    fewer = {f: i for i, f in enumerate(ids[:-1])}
    with pytest.raises(InputValidationError) as from_arrays:
        _walk_config(arrays, fewer, mode="lookup", speed_kmh=4.0, minutes=15.0, max_snap_m=300.0)
    with pytest.raises(InputValidationError) as from_table:
        _walk_config(table, fewer, mode="lookup", speed_kmh=4.0, minutes=15.0, max_snap_m=300.0)
    assert str(from_arrays.value) == str(from_table.value)


def test_walk_config_of_a_city_lookup_stays_small() -> None:
    """300,000 nodes without per-node Python objects: the table form peaks near 90 MB."""
    n = 300_000
    rng = np.random.default_rng(8)
    pairs = 120_000
    node = np.sort(rng.integers(0, n, pairs))
    lookup = WalkLookup(
        lon=116.0 + rng.random(n) * 0.3,
        lat=39.8 + rng.random(n) * 0.2,
        facility_ids=tuple(f"F{i}" for i in range(500)),
        pair_node=node,
        pair_facility=rng.integers(0, 500, pairs),
        pair_tenths=rng.integers(0, 151, pairs),
    )
    index_of = {f"F{i}": i for i in range(500)}
    gc.collect()
    tracemalloc.start()
    try:
        _, chunks = _walk_config(
            lookup, index_of, mode="lookup", speed_kmh=4.0, minutes=15.0, max_snap_m=300.0
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert chunks is not None and len(chunks.chunks) >= n // 2000
    assert peak < 70 * 2**20


# --- the gap map's hexagons and values ----------------------------------------------------


def _hexagon_sums_by_pandas(points: gpd.GeoDataFrame) -> pd.DataFrame:
    """The per-cell sums as the groupby with Python lambdas made them."""
    import h3

    wgs = points.geometry.to_crs(4326)
    cells = [h3.latlng_to_cell(la, lo, 9) for lo, la in zip(wgs.x, wgs.y, strict=True)]
    frame = pd.DataFrame(
        {
            "cell": cells,
            "population": points["population"].to_numpy(dtype=float),
            "population_under3": points["population_under3"].to_numpy(dtype=float),
        }
    )
    grouped = frame.groupby("cell", sort=True).agg(
        population=("population", lambda s: s.sum(min_count=len(s))),
        population_under3=("population_under3", lambda s: s.sum(min_count=len(s))),
        points=("population", "size"),
    )
    return grouped.sort_values(["population", "points"], ascending=False, na_position="last")


def test_hexagon_people_sums_are_pandas_sums_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    n = 6000
    xy = rng.random((n, 2)) * [0.01, 0.008] + [116.4, 39.9]
    xy[: n // 2] = rng.random((n // 2, 2)) * [0.3, 0.2] + [116.2, 39.8]  # few per cell
    people = rng.random(n) * 13.7
    people[rng.random(n) < 0.01] = np.nan
    under3 = rng.random(n) * 0.7
    under3[rng.random(n) < 0.03] = np.nan
    under3[rng.random(n) < 0.05] = -0.0
    points = gpd.GeoDataFrame(
        {"population": people, "population_under3": under3},
        geometry=shapely.points(xy),
        crs=4326,
    ).to_crs(UTM50)
    got = gap_map.hexagon_people(points)
    want = _hexagon_sums_by_pandas(points)
    assert (want["points"] >= 8).any() and (want["points"] < 8).any()  # both kinds of sum
    assert got["cell"].tolist() == want.index.tolist()
    for column in ("population", "population_under3"):
        a, b = got[column].to_numpy(), want[column].to_numpy(dtype=float)
        assert np.array_equal(a, b, equal_nan=True)
        assert (np.signbit(a) == np.signbit(b)).all()
    assert got["points"].tolist() == want["points"].tolist()
    import h3

    first = got["cell"].iloc[0]
    ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(first)]
    assert shapely.equals_exact(got.geometry.iloc[0], shapely.Polygon(ring), 0.0)


def test_num_and_rounded_keep_their_values() -> None:
    values = pd.Series([1.5, None, 2.0, float("nan")], dtype=object)
    plain = [np.nan if common.is_missing(v) else float(v) for v in values]
    assert np.array_equal(gap_map._num(values), np.array(plain), equal_nan=True)
    nullable = pd.Series([3, None, 5], dtype="Int64")
    assert np.array_equal(gap_map._num(nullable), np.array([3.0, np.nan, 5.0]), equal_nan=True)
    raw = np.array([0.5, 1.5, -0.4, np.nan, np.inf, 12.345, -0.04])
    assert gap_map._rounded(raw, 0) == [0, 2, 0, None, None, 12, 0]
    assert gap_map._rounded(raw, 1) == [0.5, 1.5, -0.4, None, None, 12.3, -0.0]
    assert all(type(v) is int for v in gap_map._rounded(raw, 0) if v is not None)


def test_values_json_cleans_only_when_needed() -> None:
    plain = [["1", 2, 3.5, None, True]]
    assert common._values_json(plain) == '["1",2,3.5,null,true]'.join("[]")
    odd = [[np.int64(3), float("nan"), pd.NA, np.float64(2.5), float("inf")]]
    assert common._values_json(odd) == "[[3,null,null,2.5,null]]"


def test_facility_rows_give_the_popups_of_iterrows() -> None:
    frame = gpd.GeoDataFrame(
        {
            "id": ["A", "B", "C"],
            "name": ["甲", None, "丙"],
            "kind": ["社区托育点", None, "托幼一体"],
            "puhui": [True, False, None],
            "slots_infant": [0, 5, None],
            "slots_toddler": [15.0, np.nan, 3.0],
            "slots": pd.array([15, None, 3], dtype="Int64"),
            "service_modes": ["全日托", "", None],
            "assumed_fields": ["puhui", None, "slots"],
        },
        geometry=shapely.points([[0, 0], [1, 1], [2, 2]]),
        crs=UTM50,
    )
    for lang in ("zh", "en"):
        want = [facility_popup(row, lang) for _, row in frame.iterrows()]
        assert [facility_popup(row, lang) for row in facility_rows(frame)] == want


# --- garbage collection while a map is built ------------------------------------------------
