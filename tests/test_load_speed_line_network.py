"""The fast paths of the road line loader give the network of the plain path, bit for bit.

A GeoParquet layer is read chunk by chunk and its plain LineStrings decoded straight from
the WKB; vertices are found by hashing; near lines of dangling ends are found without a
shapely line per segment. Each is checked here against the straightforward computation
it replaces (shapely decoding, ``np.unique(axis=0)``, an ``STRtree`` query).
"""

from __future__ import annotations

import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pytest
import shapely
from pyproj import CRS
from tuoyu.layers import line_network
from tuoyu.layers.line_network import LineNetworkReport, load_line_network
from tuoyu.network.walk_network import WalkNetwork

UTM50 = "EPSG:32650"
X0, Y0 = 448_000.0, 4_417_000.0
ARRAYS = ("node_id", "node_x_m", "node_y_m", "edge_u", "edge_v", "edge_length_m", "edge_way_id")


def _assert_same_network(a: WalkNetwork, b: WalkNetwork) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), name
    report_a, report_b = a.metadata["report"], b.metadata["report"]
    assert isinstance(report_a, LineNetworkReport) and isinstance(report_b, LineNetworkReport)
    assert report_a == report_b
    assert a.metadata["way_names"] == b.metadata["way_names"]


def _random_lines(seed: int, n: int) -> list[shapely.LineString]:
    """Short streets on a coarse grid (so many share vertices), some with repeats."""
    rng = np.random.default_rng(seed)
    lines: list[shapely.LineString] = []
    for _ in range(n):
        k = int(rng.integers(2, 5))
        xy = X0 + rng.integers(0, 12, size=(k, 2)).astype(float) * 25.0
        xy[:, 1] += Y0 - X0
        lines.append(shapely.LineString(xy))
    return lines


@pytest.fixture()
def mixed_layer() -> gpd.GeoDataFrame:
    """Plain lines, then rows the WKB fast path must leave to shapely: a null, an empty
    line, a MultiLineString, a 3D line, a -0.0 coordinate; each in its own chunk when
    chunks are 7 features long."""
    lines = _random_lines(seed=1, n=40)
    geoms: list[shapely.Geometry | None] = list(lines)
    geoms[9] = None
    geoms[10] = shapely.LineString()
    geoms[17] = shapely.MultiLineString([lines[17], lines[3]])
    geoms[24] = shapely.force_3d(lines[24], 7.0)
    geoms[31] = shapely.LineString([(X0, Y0), (X0, -0.0 + Y0), (X0 + 30.0, Y0)])
    names = [f"路{i % 9}" if i % 4 else None for i in range(len(geoms))]
    return gpd.GeoDataFrame(
        {"name": names, "kind": [i % 3 for i in range(len(geoms))]},
        geometry=gpd.GeoSeries(geoms),
        crs=UTM50,
    )


@pytest.mark.parametrize("join_tolerance_m", [None, 30.0])
def test_geoparquet_chunks_give_the_geopackage_network(
    mixed_layer: gpd.GeoDataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    join_tolerance_m: float | None,
) -> None:
    parquet, gpkg = tmp_path / "roads.parquet", tmp_path / "roads.gpkg"
    mixed_layer.to_parquet(parquet)
    mixed_layer.to_file(gpkg, driver="GPKG")
    expected = load_line_network(
        gpkg, crs=UTM50, exclude={"kind": [2]}, join_tolerance_m=join_tolerance_m
    )
    monkeypatch.setattr(line_network, "_CHUNK_FEATURES", 7)
    got = load_line_network(
        parquet, crs=UTM50, exclude={"kind": [2]}, join_tolerance_m=join_tolerance_m
    )
    _assert_same_network(expected, got)
    report = got.metadata["report"]
    assert isinstance(report, LineNetworkReport)
    assert report.lines_read == 40 and report.lines_without_geometry > 0


def test_geoparquet_of_plain_lines_is_decoded_without_shapely(tmp_path: Path) -> None:
    path = tmp_path / "roads.parquet"
    gpd.GeoDataFrame(geometry=_random_lines(seed=2, n=30), crs=UTM50).to_parquet(path)
    layer = line_network._read_layer(path)
    try:
        chunks = list(layer.chunks())
    finally:
        layer.close()
    assert [c.geoms is None and c.xy is not None for c in chunks] == [True]
    assert layer.crs is not None and layer.crs.to_epsg() == 32650


def test_geoparquet_refusals_name_the_row(tmp_path: Path) -> None:
    lines: list[shapely.Geometry] = list(_random_lines(seed=3, n=12))
    lines[5] = shapely.Point(X0, Y0)
    lines[8] = shapely.Point(X0, Y0)
    path = tmp_path / "points.parquet"
    gpd.GeoDataFrame(geometry=lines, crs=UTM50).to_parquet(path)
    with pytest.raises(Exception, match=r"row 6.*Point, not a LineString.*2 such features"):
        load_line_network(path, crs=UTM50)
    lines = list(_random_lines(seed=3, n=12))
    xy = shapely.get_coordinates(lines[4])
    xy[1, 0] = np.nan
    with np.errstate(invalid="ignore"):  # shapely warns of the NaN it is given
        lines[4] = shapely.LineString(xy)
    path = tmp_path / "nan.parquet"
    gpd.GeoDataFrame({"kind": [1] * 12}, geometry=lines, crs=UTM50).to_parquet(path)
    with pytest.raises(Exception, match=r"row 5.*non-finite"):
        load_line_network(path, crs=UTM50)


# ------------------------------------------------------------------------- WKB decoding


def _shapely_xy(wkb: pa.Array) -> npt.NDArray[np.float64]:
    return shapely.get_coordinates(shapely.from_wkb(np.array(wkb)))


def test_wkb_decoder_matches_shapely_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    lines = []
    for _ in range(200):
        k = int(rng.integers(2, 9))
        xy = rng.normal(0.0, 1e6, size=(k, 2)) * rng.choice([1e-9, 1.0, 1e3], size=(k, 1))
        xy[rng.random(k) < 0.1] = -0.0
        lines.append(shapely.LineString(xy))
    wkb = shapely.to_wkb(lines, byte_order=1)
    for array in (pa.array(wkb), pa.array(wkb, type=pa.large_binary()), pa.array(wkb)[37:151]):
        decoded = line_network._wkb_linestrings(array)
        assert decoded is not None
        xy, n_points = decoded
        expected = _shapely_xy(array)
        assert xy.tobytes() == expected.tobytes()
        assert (
            n_points.tolist() == shapely.get_num_points(shapely.from_wkb(np.array(array))).tolist()
        )


@pytest.mark.parametrize(
    "odd",
    [
        shapely.to_wkb(shapely.LineString([(0, 0), (1, 1)]), byte_order=0),  # big-endian
        shapely.to_wkb(shapely.LineString([(0, 0, 1), (1, 1, 2)]), byte_order=1),  # 3D
        shapely.to_wkb(
            shapely.set_srid(shapely.LineString([(0, 0), (1, 1)]), 4326),
            byte_order=1,
            include_srid=True,
        ),
        shapely.to_wkb(shapely.LineString(), byte_order=1),  # empty
        shapely.to_wkb(shapely.MultiLineString([[(0, 0), (1, 1)]]), byte_order=1),
        shapely.to_wkb(shapely.Point(0, 0), byte_order=1),
        b"\x01" + struct.pack("<II", 2, 1) + struct.pack("<dd", 0.0, 0.0),  # one point
        b"\x01" + struct.pack("<II", 2, 3) + struct.pack("<dddd", 0, 0, 1, 1),  # truncated
        None,
    ],
)
def test_wkb_decoder_leaves_anything_else_to_shapely(odd: bytes | None) -> None:
    plain = shapely.to_wkb(shapely.LineString([(0, 0), (2, 3)]), byte_order=1)
    assert line_network._wkb_linestrings(pa.array([plain, odd], type=pa.binary())) is None


# ------------------------------------------------------------------- vertex numbering


def _segments_by_sorting(
    xy: npt.NDArray[np.float64], pair: npt.NDArray[np.int64], row: npt.NDArray[np.int64]
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """The numbering as it was computed before: sort-based ``np.unique`` calls."""
    unique_xy, inverse = np.unique(xy + 0.0, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    u, v = inverse[pair], inverse[pair + 1]
    keep = u != v
    u, v, row = u[keep], v[keep], row[keep]
    key = np.minimum(u, v) * np.int64(unique_xy.shape[0]) + np.maximum(u, v)
    _, first = np.unique(key, return_index=True)
    first.sort()
    u, v, row = u[first], v[first], row[first]
    used, remap = np.unique(np.concatenate([u, v]), return_inverse=True)
    return unique_xy[used], remap[: u.size], remap[u.size :], row


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hashed_vertex_numbering_is_the_sorted_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    xy = rng.integers(-20, 20, size=(n, 2)).astype(float) * rng.choice([0.5, 1e-3, 7.25])
    xy[rng.random(n) < 0.05] *= -0.0  # signed zeros must meet their unsigned twins
    pair = np.flatnonzero(rng.random(n - 1) < 0.8).astype(np.int64)
    row = (pair // 3).astype(np.int64)
    dropped = np.zeros(int(row.max()) + 1, dtype=bool)
    dropped[::7] = True
    lines = line_network._Lines(
        has_geometry=np.ones(dropped.size, dtype=bool),
        xy=xy,
        pair=pair,
        pair_row=row,
        non_finite_rows=np.zeros(0, np.int64),
    )
    seg = line_network._segments(lines, dropped)
    keep = ~dropped[row]
    vertex_xy, u, v, kept_row = _segments_by_sorting(xy, pair[keep], row[keep])
    assert seg.vertex_xy.tobytes() == vertex_xy.tobytes()
    assert seg.u.tolist() == u.tolist() and seg.v.tolist() == v.tolist()
    assert seg.row.tolist() == kept_row.tolist()


# ---------------------------------------------------------------- near dangling ends


def _network(seed: int) -> WalkNetwork:
    """Random short segments, plus ends placed exactly 5 m from a segment."""
    rng = np.random.default_rng(seed)
    n = 400
    x = rng.uniform(0.0, 300.0, n).round(1)
    y = rng.uniform(0.0, 300.0, n).round(1)
    u = np.arange(0, n - 1, 2, dtype=np.int64)
    v = u + 1
    # Stubs whose free end lies exactly 5 m off the middle of an axis-parallel segment.
    x = np.concatenate([x, [100.0, 140.0, 120.0, 120.0, 200.0, 200.0, 195.0, 190.0]])
    y = np.concatenate([y, [50.0, 50.0, 55.0, 80.0, 10.0, 60.0, 35.0, 35.0]])
    extra_u = np.arange(n, n + 8, 2, dtype=np.int64)
    u, v = np.concatenate([u, extra_u]), np.concatenate([v, extra_u + 1])
    length = np.hypot(x[u] - x[v], y[u] - y[v])
    return WalkNetwork(
        node_id=np.arange(x.size, dtype=np.int64),
        node_x_m=x,
        node_y_m=y,
        edge_u=u,
        edge_v=v,
        edge_length_m=length,
        edge_way_id=np.arange(u.size, dtype=np.int64),
        crs=CRS.from_user_input(UTM50),
    )


@pytest.mark.parametrize(("seed", "distance_m"), [(0, 5.0), (1, 5.0), (2, 12.5), (3, 0.0)])
def test_near_segments_are_the_strtree_query(seed: int, distance_m: float) -> None:
    net = _network(seed)
    degree = np.bincount(np.concatenate([net.edge_u, net.edge_v]), minlength=net.n_nodes)
    ends = np.flatnonzero(degree == 1).astype(np.int64)
    tree = shapely.STRtree(np.asarray(shapely.linestrings(net.edge_segments()), dtype=object))
    query, edge = tree.query(
        shapely.points(net.node_xy()[ends]), predicate="dwithin", distance=distance_m
    )
    expected = pd.DataFrame({"node": ends[query], "edge": edge}).sort_values(["node", "edge"])
    node, got_edge = line_network._ends_near_segments(net, ends, distance_m)
    assert node.tolist() == expected["node"].tolist()
    assert got_edge.tolist() == expected["edge"].tolist()
    if distance_m == 5.0:
        assert len(node) > len(ends)  # the test does cover pairs beyond the own segment
