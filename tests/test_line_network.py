"""Walking network from a road line layer: a hand-made layer and the real Dongcheng roads."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from pyproj import Transformer
from scipy.sparse.csgraph import dijkstra
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.settings import Settings, get_settings
from tuoyu.config.study_area import NetworkSection
from tuoyu.crs.china import wgs84_to_gcj02
from tuoyu.errors import AreaConfigError, CRSError, EmptyInputError, InputValidationError
from tuoyu.layers.line_network import LineNetworkReport, load_line_network
from tuoyu.layers.network_file import load_network_file
from tuoyu.network.graph import build_graph
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.progress import Progress

# The hand layer is written in UTM 50N metres (EPSG:32650) so every length is exact;
# offsets below are from this origin in central Beijing.
X0, Y0 = 448_000.0, 4_417_000.0
UTM50 = "EPSG:32650"

# (row name, kind, geometry type, offset coordinates). Expected network, by hand:
#   A, B, C, D form a block (A ─ B ─ C ─ D loop); E is a bridge from (50,-50) north to C's
#   vertex (50,100), crossing A at (50,0) with no shared vertex; H joins A at (0,0) and
#   repeats its first vertex (one zero-length segment); I repeats D backwards (one
#   duplicate); G ends at (201,50), 1 m short of D (a dangling end); J is a
#   MultiLineString island of two separate parts; K is an expressway (excluded).
HAND_LINES: list[tuple[str, str, str, object]] = [
    ("A", "street", "LineString", [(0, 0), (100, 0), (200, 0)]),
    ("B", "street", "LineString", [(100, 0), (100, 100)]),
    ("C", "street", "LineString", [(0, 100), (50, 100), (100, 100), (200, 100)]),
    ("D", "street", "LineString", [(200, 0), (200, 100)]),
    ("E", "bridge", "LineString", [(50, -50), (50, 100)]),
    ("G", "street", "LineString", [(300, 50), (201, 50)]),
    ("H", "street", "LineString", [(0, 0), (0, 0), (-100, 0)]),
    ("I", "street", "LineString", [(200, 100), (200, 0)]),
    (
        "J",
        "path",
        "MultiLineString",
        [[(1000, 1000), (1100, 1000)], [(1000, 1050), (1100, 1050)]],
    ),
    ("K", "expressway", "LineString", [(0, -200), (200, -200)]),
]
MAIN_M = 200 + 100 + 200 + 100 + 150 + 100  # A B C D E H
G_M = 99.0
ISLAND_M = 100.0  # each part of J


def _shift(coords: object) -> object:
    if isinstance(coords, tuple):
        return [X0 + coords[0], Y0 + coords[1]]
    return [_shift(c) for c in coords]  # type: ignore[attr-defined]


def _write_layer(path: Path, features: list[dict[str, object]]) -> Path:
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8"
    )
    return path


def _feature(name: str, kind: str, geom_type: str, coords: object) -> dict[str, object]:
    return {
        "type": "Feature",
        "properties": {"name": name, "kind": kind},
        "geometry": {"type": geom_type, "coordinates": coords},
    }


@pytest.fixture()
def hand_layer(tmp_path: Path) -> Path:
    features = [_feature(n, k, t, _shift(c)) for n, k, t, c in HAND_LINES]
    return _write_layer(tmp_path / "roads.geojson", features)


def _node(net: WalkNetwork, dx: float, dy: float) -> int:
    """Index of the node at offset (dx, dy); fails when there is none within 1 mm."""
    d = np.hypot(net.node_x_m - (X0 + dx), net.node_y_m - (Y0 + dy))
    i = int(np.argmin(d))
    assert d[i] < 1e-3, f"no node at ({dx}, {dy})"
    return i


def _walk_m(net: WalkNetwork, a: int, b: int) -> float:
    return float(dijkstra(build_graph(net).csr, directed=False, indices=a)[b])


def _load(path: Path, **kwargs: object) -> WalkNetwork:
    return load_line_network(path, crs=UTM50, exclude={"kind": ["expressway"]}, **kwargs)  # type: ignore[arg-type]


def _report(net: WalkNetwork) -> LineNetworkReport:
    report = net.metadata["report"]
    assert isinstance(report, LineNetworkReport)
    return report


# ----------------------------------------------------------------------------- by hand


def test_hand_layer_counts_and_report(hand_layer: Path) -> None:
    net = _load(hand_layer)
    assert net.crs.to_epsg() == 32650
    assert (net.n_nodes, net.n_edges) == (15, 12)
    assert net.total_length_m == pytest.approx(MAIN_M + G_M + 2 * ISLAND_M, abs=1e-6)
    report = _report(net)
    assert report.lines_read == 10
    assert report.lines_excluded == 1
    assert report.excluded_by_field == (("kind", 1),)
    assert report.segments_read == 14  # K's segment is not read
    assert report.zero_length_segments_dropped == 1  # H's repeated vertex
    assert report.duplicate_segments_dropped == 1  # I repeats D
    # main block, G, and the two parts of J (parts are not chained together)
    assert report.components == 4
    assert report.largest_component_share == pytest.approx(MAIN_M / (MAIN_M + G_M + 200))
    assert report.small_components == 3
    assert report.dangling_ends_near_lines == 1  # G's end, 1 m from D
    assert report.dangling_ends_joined == 0
    assert net.metadata["osm"] is False
    assert net.metadata["attribution"] is None  # not a registered file
    assert net.metadata["cache"] == "off"
    assert "not OSM" in net.source
    # Every segment keeps its feature row; K (row 9) is gone.
    assert set(net.edge_way_id.tolist()) == {0, 1, 2, 3, 4, 5, 6, 8}
    assert "4 connected pieces" in report.summary()


def test_shared_vertices_join_bridge_does_not(hand_layer: Path) -> None:
    net = _load(hand_layer)
    # No node where the bridge E crosses A at (50, 0).
    crossing = np.hypot(net.node_x_m - (X0 + 50), net.node_y_m - Y0)
    assert crossing.min() > 49.0
    # From E's south end to A's west end: up E (150), west on C to (0,100)? no line goes
    # down from there, so east on C to B (50), down B (100), west on A (100) = 400 m,
    # not the 100 m a join at the crossing would give.
    assert _walk_m(net, _node(net, 50, -50), _node(net, 0, 0)) == pytest.approx(400.0)
    # A joins B at its interior vertex (100, 0): degree 3 there.
    degree = np.bincount(np.concatenate([net.edge_u, net.edge_v]), minlength=net.n_nodes)
    assert degree[_node(net, 100, 0)] == 3
    # H's zero-length pair is gone but H still joins A at (0, 0).
    assert _walk_m(net, _node(net, -100, 0), _node(net, 200, 0)) == pytest.approx(300.0)


def test_dangle_joined_with_tolerance(hand_layer: Path) -> None:
    net = _load(hand_layer, join_tolerance_m=2.0)
    report = _report(net)
    assert report.dangling_ends_near_lines == 1
    assert report.dangling_ends_joined == 1
    assert report.connector_length_m == pytest.approx(1.0)
    assert report.components == 3
    assert report.largest_component_share == pytest.approx(
        (MAIN_M + G_M + 1) / (MAIN_M + G_M + 201)
    )
    # D was split at (200, 50) and G's end joined to it by a 1 m connector (row -1).
    assert (net.n_nodes, net.n_edges) == (16, 14)
    assert int(np.count_nonzero(net.edge_way_id == -1)) == 1
    assert _walk_m(net, _node(net, 300, 50), _node(net, 200, 0)) == pytest.approx(150.0)
    # Not joined without tolerance, nor with one below the 1 m gap.
    for tolerance in (None, 0.5):
        apart = _load(hand_layer, join_tolerance_m=tolerance)
        assert _report(apart).dangling_ends_joined == 0
        assert np.isinf(_walk_m(apart, _node(apart, 300, 50), _node(apart, 200, 0)))


def test_end_on_a_line_joins_at_tolerance_zero(tmp_path: Path) -> None:
    # A T-junction drawn without a shared vertex: the end lies exactly on the other line.
    layer = _write_layer(
        tmp_path / "t.geojson",
        [
            _feature("top", "street", "LineString", _shift([(0, 0), (200, 0)])),
            _feature("stem", "street", "LineString", _shift([(100, -100), (100, 0)])),
        ],
    )
    apart = load_line_network(layer, crs=UTM50)
    assert _report(apart).components == 2
    assert _report(apart).dangling_ends_near_lines == 1
    joined = load_line_network(layer, crs=UTM50, join_tolerance_m=0.0)
    assert _report(joined).components == 1
    assert _report(joined).connector_length_m == 0.0
    assert (joined.n_nodes, joined.n_edges) == (4, 3)  # top split at the stem's end
    assert _walk_m(joined, _node(joined, 100, -100), _node(joined, 0, 0)) == pytest.approx(200.0)


def test_exclude_off_and_missing_field(hand_layer: Path) -> None:
    everything = load_line_network(hand_layer, crs=UTM50)
    assert _report(everything).lines_excluded == 0
    assert _report(everything).components == 5  # K is its own piece
    by_text = load_line_network(hand_layer, crs=UTM50, exclude={"name": ["K", "J"]})
    assert _report(by_text).lines_excluded == 2
    assert _report(by_text).components == 2
    with pytest.raises(InputValidationError, match="field 'lanes'"):
        load_line_network(hand_layer, crs=UTM50, exclude={"lanes": [6]})


def test_gcj02_joins_decided_on_input_coordinates(tmp_path: Path) -> None:
    # Three streets meeting at one GCJ-02 vertex, and a fourth whose end is 1e-9 degrees
    # (0.1 mm) from the third's end: joined and not joined exactly as written.
    lon0, lat0 = 116.41, 39.91
    wgs = {
        "a": [(lon0, lat0), (lon0 + 0.002, lat0)],
        "b": [(lon0, lat0), (lon0, lat0 + 0.002)],
        "c": [(lon0, lat0), (lon0 - 0.002, lat0)],
        "d": [(lon0 - 0.002, lat0 + 1e-9 / 1.0), (lon0 - 0.004, lat0)],
    }
    features = []
    for name, coords in wgs.items():
        lon, lat = wgs84_to_gcj02([c[0] for c in coords], [c[1] for c in coords])
        features.append(
            _feature(name, "street", "LineString", [[x, y] for x, y in zip(lon, lat, strict=True)])
        )
    # The offset of d's first vertex must survive conversion to GCJ-02 bit-distinct.
    assert features[3]["geometry"]["coordinates"][0] != features[2]["geometry"]["coordinates"][1]  # type: ignore[index]
    layer = _write_layer(tmp_path / "gcj.geojson", features)
    net = load_line_network(layer, crs="gcj02")
    assert _report(net).components == 2
    degree = np.bincount(np.concatenate([net.edge_u, net.edge_v]), minlength=net.n_nodes)
    assert sorted(degree.tolist()) == [1, 1, 1, 1, 1, 3]
    # Nodes sit where the WGS84 originals project (GCJ-02 removed to < 1 cm).
    to_utm = Transformer.from_crs("EPSG:4326", net.crs, always_xy=True)
    x, y = to_utm.transform(lon0, lat0)
    centre = int(np.argmax(degree))
    assert np.hypot(net.node_x_m[centre] - x, net.node_y_m[centre] - y) < 0.01
    # Read as WGS84 by mistake the network lands hundreds of metres away.
    wrong = load_line_network(layer, crs="wgs84")
    assert np.hypot(wrong.node_x_m[centre] - x, wrong.node_y_m[centre] - y) > 100.0


def test_bad_geometry_names_file_and_row(tmp_path: Path) -> None:
    layer = _write_layer(
        tmp_path / "mixed.geojson",
        [
            _feature("a", "street", "LineString", _shift([(0, 0), (10, 0)])),
            _feature("b", "street", "LineString", _shift([(10, 0), (20, 0)])),
            _feature("p", "poi", "Point", _shift((5, 5))),
        ],
    )
    with pytest.raises(InputValidationError) as info:
        load_line_network(layer, crs=UTM50)
    assert info.value.row == 3
    assert info.value.field == "geometry"
    assert "mixed.geojson" in str(info.value)
    assert "Point" in str(info.value)


def test_projected_coordinates_under_a_datum_are_refused(hand_layer: Path) -> None:
    with pytest.raises(CRSError, match="not longitude/latitude"):
        load_line_network(hand_layer)  # default crs wgs84, but the file holds metres


def test_parameters_checked(hand_layer: Path) -> None:
    with pytest.raises(InputValidationError, match="join_tolerance_m"):
        load_line_network(hand_layer, crs=UTM50, join_tolerance_m=51.0)
    with pytest.raises(CRSError):
        load_line_network(hand_layer, crs="tokyo")
    with pytest.raises(CRSError):
        load_line_network(hand_layer, crs=UTM50, metric_crs="EPSG:4326")


def test_all_lines_excluded_is_empty(hand_layer: Path) -> None:
    with pytest.raises(EmptyInputError, match="10 excluded"):
        load_line_network(
            hand_layer, crs=UTM50, exclude={"kind": ["street", "bridge", "path", "expressway"]}
        )


def test_cache_hit_and_key(hand_layer: Path, tmp_path: Path) -> None:
    settings = get_settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "st")
    first = _load(hand_layer, settings=settings)
    second = _load(hand_layer, settings=settings)
    assert (first.metadata["cache"], second.metadata["cache"]) == ("written", "hit")
    for name in ("node_x_m", "node_y_m", "edge_u", "edge_v", "edge_length_m", "edge_way_id"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert second.metadata["report"] == first.metadata["report"]
    assert second.crs == first.crs
    # Another parameter is another entry.
    third = _load(hand_layer, settings=settings, join_tolerance_m=2.0)
    assert third.metadata["cache"] == "written"
    assert len(list((tmp_path / "cache" / "networks").glob("*.npz"))) == 2


def test_network_section_and_dispatch(hand_layer: Path) -> None:
    section = NetworkSection.model_validate(
        {"path": "x", "crs": UTM50, "exclude": {"kind": ["expressway"]}, "join_tolerance_m": 2}
    )
    net = load_network_file(hand_layer, section)
    assert _report(net).dangling_ends_joined == 1
    with pytest.raises(ValueError, match="join_tolerance_m"):
        NetworkSection.model_validate({"join_tolerance_m": 60})
    with pytest.raises(ValueError, match="unknown coordinate system"):
        NetworkSection.model_validate({"crs": "tokyo"})
    with pytest.raises(AreaConfigError, match="exclude"):
        load_network_file(Path("x.osm.pbf"), NetworkSection(exclude={"highway": ["motorway"]}))


# ----------------------------------------------------------------------------- Dongcheng


@pytest.fixture(scope="module")
def dongcheng_roads(data_dir: Path) -> Path:
    settings = get_settings(data_dir=data_dir)
    return resolve_data_file("beijing-dongcheng/roads.geojson", settings)


def test_dongcheng_roads(dongcheng_roads: Path, tmp_path: Path, data_dir: Path) -> None:
    settings: Settings = get_settings(
        data_dir=data_dir, cache_dir=tmp_path / "cache", state_dir=tmp_path / "st"
    )
    net = load_line_network(dongcheng_roads, crs="gcj02", settings=settings)
    report = _report(net)
    assert net.crs.to_epsg() == 32650
    # Every consecutive vertex pair of the 15,542 lines, none repeated or zero-length.
    assert report.lines_read == 15_542
    assert (report.segments_read, report.zero_length_segments_dropped) == (26_364, 0)
    assert report.duplicate_segments_dropped == 0
    assert (net.n_nodes, net.n_edges) == (22_427, 26_364)
    # The data README: 1,091 km, 31 connected pieces, the largest 98.8 % of the length.
    assert net.total_length_m / 1000 == pytest.approx(1091.2, abs=0.5)
    assert report.components == 31
    assert report.largest_component_share == pytest.approx(0.988, abs=0.0006)
    assert report.dangling_ends_near_lines == 7
    assert net.metadata["osm"] is False
    assert "dongcheng-professional-edition" in str(net.metadata["attribution"])
    again = load_line_network(dongcheng_roads, crs="gcj02", settings=settings)
    assert (net.metadata["cache"], again.metadata["cache"]) == ("written", "hit")
    np.testing.assert_array_equal(net.edge_length_m, again.edge_length_m)
    assert again.metadata["report"] == report


def test_dongcheng_join_tolerance(dongcheng_roads: Path) -> None:
    joined = load_line_network(dongcheng_roads, crs="gcj02", join_tolerance_m=2.0)
    report = _report(joined)
    assert report.dangling_ends_joined == 3
    assert report.components == 29
    assert report.connector_length_m < 3 * 2.0


@pytest.mark.parametrize(("name", "driver"), [("roads.gpkg", "GPKG"), ("roads.shp", None)])
def test_other_formats_give_the_same_network(
    hand_layer: Path, tmp_path: Path, name: str, driver: str | None
) -> None:
    frame = pyogrio.read_dataframe(hand_layer)
    target = tmp_path / name
    pyogrio.write_dataframe(frame, target, driver=driver)
    net = _load(target)
    expected = _load(hand_layer)
    assert (net.n_nodes, net.n_edges) == (expected.n_nodes, expected.n_edges)
    assert net.total_length_m == pytest.approx(expected.total_length_m)
    assert _report(net) == _report(expected)


def test_geoparquet_without_reader_says_how(tmp_path: Path) -> None:
    """A broken install (pyarrow is a dependency) gets the fix named, not a traceback."""
    import sys
    from unittest import mock

    if "Parquet" in pyogrio.list_drivers():
        pytest.skip("GDAL reads GeoParquet itself")
    target = tmp_path / "roads.parquet"
    target.write_bytes(b"PAR1")
    with (
        mock.patch.dict(sys.modules, {"pyarrow": None, "pyarrow.parquet": None}),
        pytest.raises(InputValidationError, match="pyarrow"),
    ):
        load_line_network(target, crs=UTM50)


def test_report_printed_through_progress(hand_layer: Path) -> None:
    stream = io.StringIO()
    net = _load(hand_layer, progress=Progress(stream))
    printed = stream.getvalue()
    for line in _report(net).summary().splitlines():
        assert line in printed
    assert "1 dangling ends within 5 m" in printed


def test_end_on_a_diagonal_line_joins_at_tolerance_zero(tmp_path: Path) -> None:
    # Regression: the stem ends at the exact midpoint (in degrees) of a diagonal street;
    # after projection the gap is float noise (not 0.0), which must still count as
    # touching at join_tolerance_m = 0.
    a, b = (116.4012345, 39.9012345), (116.4034567, 39.9023456)
    mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    layer = _write_layer(
        tmp_path / "diag.geojson",
        [
            _feature("top", "street", "LineString", [list(a), list(b)]),
            _feature("stem", "street", "LineString", [[mid[0], mid[1] - 0.001], list(mid)]),
        ],
    )
    joined = load_line_network(layer, join_tolerance_m=0.0)
    assert _report(joined).dangling_ends_joined == 1
    assert _report(joined).components == 1
    assert _report(joined).connector_length_m == 0.0


def test_unreadable_file_named(tmp_path: Path) -> None:
    target = tmp_path / "broken.geojson"
    target.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(InputValidationError, match=r"broken\.geojson.*cannot read"):
        load_line_network(target)
