"""OSM walking-network loader: hand-made fixtures and the real Yuzhong extract."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import geopandas as gpd
import numpy as np
import osmium
import pytest
import shapely
from pyproj import CRS, Geod, Transformer
from tuoyu.config.data_registry import file_sha256, resolve_data_file
from tuoyu.config.settings import Settings, get_settings
from tuoyu.errors import (
    CRSError,
    DataNotFoundError,
    EmptyInputError,
    InputValidationError,
)
from tuoyu.layers.osm_network import (
    WALK_FILTER,
    WALK_FILTER_KEYS,
    WALK_FILTER_VERSION,
    is_walkable,
    largest_component_share,
    load_walk_network,
    walk_rejection_reason,
)
from tuoyu.network.walk_network import WalkNetwork

OSM_FIXTURES = Path(__file__).parent / "fixtures" / "osm"
# Hand values (see the comment in fixtures/osm/walk.osm): metres per 0.001 degree.
NS_M = 110.845  # latitude, at 29.56 N
EW_M = 96.909  # longitude, at 29.562 N
GEOD = Geod(ellps="WGS84")
ARRAYS = ("node_id", "node_x_m", "node_y_m", "edge_u", "edge_v", "edge_length_m", "edge_way_id")


def _edges_by_osm_id(net: WalkNetwork) -> dict[tuple[int, int], tuple[float, int]]:
    a = net.node_id[net.edge_u]
    b = net.node_id[net.edge_v]
    return {
        (int(min(x, y)), int(max(x, y))): (float(length), int(way))
        for x, y, length, way in zip(a, b, net.edge_length_m, net.edge_way_id, strict=True)
    }


def _geodesic_lengths_m(net: WalkNetwork) -> np.ndarray:
    to_lonlat = Transformer.from_crs(net.crs, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(net.node_x_m, net.node_y_m)
    lon, lat = np.asarray(lon), np.asarray(lat)
    _, _, dist = GEOD.inv(lon[net.edge_u], lat[net.edge_u], lon[net.edge_v], lat[net.edge_v])
    return np.asarray(dist)


def _tmp_settings(tmp_path: Path, data_dir: Path | None = None) -> Settings:
    return get_settings(data_dir=data_dir, cache_dir=tmp_path / "cache", state_dir=tmp_path / "st")


# ----------------------------------------------------------------------------- filter


@pytest.mark.slow  # importing osmnx takes a few seconds
def test_walk_filter_is_osmnx_walk_filter() -> None:
    from osmnx import _overpass, settings

    assert settings.default_access == '["access"!~"private"]'
    assert _overpass._get_network_filter("walk") == WALK_FILTER


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({"highway": "footway"}, None),
        ({"highway": "steps"}, None),
        ({"highway": "service", "service": "parking_aisle"}, None),
        ({"highway": "residential", "access": "permissive", "foot": "yes"}, None),
        ({"highway": "track"}, None),
        ({"building": "yes"}, "no_highway"),
        ({"highway": "pedestrian", "area": "yes"}, "area_yes"),
        ({"highway": "service", "access": "private"}, "access_private"),
        ({"highway": "motorway"}, "highway_not_walkable"),
        ({"highway": "motorway_link"}, "highway_not_walkable"),  # unanchored regex
        ({"highway": "cycleway"}, "highway_not_walkable"),
        ({"highway": "construction"}, "highway_not_walkable"),
        ({"highway": "residential", "foot": "no"}, "foot_no"),
        ({"highway": "residential", "foot": "unknown"}, "foot_no"),  # "no" inside a value
        ({"highway": "service", "service": "private"}, "service_private"),
        ({"highway": "primary", "sidewalk": "separate"}, "sidewalk_separate"),
        ({"highway": "primary", "sidewalk:left": "separate"}, "sidewalk_separate"),
        ({"highway": "primary", "sidewalk": "both"}, None),
        ({"highway": "Motorway"}, None),  # Overpass regexes are case-sensitive
    ],
)
def test_rejection_reason(tags: dict[str, str], reason: str | None) -> None:
    assert walk_rejection_reason(tags) == reason
    assert is_walkable(tags) is (reason is None)


# ----------------------------------------------------------------------------- fixtures


def test_fixture_network_by_hand() -> None:
    net = load_walk_network(OSM_FIXTURES / "walk.osm")
    assert net.node_id.tolist() == [1, 2, 3, 4, 10]  # node 9 merged into 3
    edges = _edges_by_osm_id(net)
    assert set(edges) == {(1, 2), (2, 3), (3, 4), (3, 10)}
    assert {pair: way for pair, (_, way) in edges.items()} == {
        (1, 2): 101,
        (2, 3): 101,
        (3, 4): 102,
        (3, 10): 115,
    }
    for pair, expected_m in {(1, 2): NS_M, (2, 3): NS_M, (3, 4): EW_M, (3, 10): NS_M}.items():
        assert edges[pair][0] == pytest.approx(expected_m, rel=1e-3)
    assert net.total_length_m == pytest.approx(3 * NS_M + EW_M, rel=1e-3)
    assert net.crs.to_epsg() == 32648
    assert (net.edge_u != net.edge_v).all()
    assert net.edge_u.dtype == np.int64 and net.edge_length_m.dtype == np.float64
    meta = net.metadata
    assert meta["ways_read"] == 16 and meta["ways_kept"] == 7 and meta["ways_rejected"] == 9
    assert meta["ways_rejected_by_reason"] == {
        "access_private": 1,
        "area_yes": 1,
        "foot_no": 1,
        "highway_not_walkable": 3,
        "no_highway": 1,
        "service_private": 1,
        "sidewalk_separate": 1,
    }
    assert meta["self_loops_dropped"] == 1
    assert meta["zero_length_segments_contracted"] == 1
    assert meta["duplicate_segments_dropped"] == 1
    assert meta["missing_node_refs"] == 1
    assert meta["cache"] == "off"
    assert net.source.startswith(str(OSM_FIXTURES / "walk.osm"))
    assert file_sha256(OSM_FIXTURES / "walk.osm") in net.source


def test_fixture_lengths_agree_with_geodesic() -> None:
    net = load_walk_network(OSM_FIXTURES / "walk.osm")
    geodesic = _geodesic_lengths_m(net)
    assert np.abs(net.edge_length_m / geodesic - 1.0).max() < 1e-3


def test_given_crs_is_used() -> None:
    crs = CRS.from_epsg(4544)  # CGCS2000 / 3-degree Gauss-Kruger CM 105E
    net = load_walk_network(OSM_FIXTURES / "walk.osm", crs=crs)
    assert net.crs == crs
    assert net.total_length_m == pytest.approx(3 * NS_M + EW_M, rel=1e-3)


@pytest.mark.parametrize("bad", ["EPSG:4326", "not a crs"])
def test_non_metric_crs_refused(bad: str) -> None:
    with pytest.raises(CRSError):
        load_walk_network(OSM_FIXTURES / "walk.osm", crs=bad)


def test_largest_component_share_by_hand() -> None:
    net = load_walk_network(OSM_FIXTURES / "walk.osm")
    assert largest_component_share(net) == pytest.approx(1.0)
    # Two components: 30 m + 10 m in one, 60 m in the other -> 0.6.
    two = WalkNetwork(
        node_id=np.arange(5),
        node_x_m=np.array([0.0, 30.0, 40.0, 100.0, 160.0]),
        node_y_m=np.zeros(5),
        edge_u=np.array([0, 1, 3]),
        edge_v=np.array([1, 2, 4]),
        edge_length_m=np.array([30.0, 10.0, 60.0]),
        edge_way_id=np.full(3, -1),
        crs=CRS.from_epsg(32648),
    )
    assert largest_component_share(two) == pytest.approx(0.6)
    empty = dataclasses.replace(
        two,
        edge_u=np.array([], dtype=np.int64),
        edge_v=np.array([], dtype=np.int64),
        edge_length_m=np.array([]),
        edge_way_id=np.array([], dtype=np.int64),
    )
    assert largest_component_share(empty) == 0.0


# ----------------------------------------------------------------------------- errors


def test_missing_file_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.osm.pbf"
    with pytest.raises(DataNotFoundError, match=r"nowhere\.osm\.pbf"):
        load_walk_network(missing)


def test_unknown_extension_named(tmp_path: Path) -> None:
    path = tmp_path / "roads.txt"
    path.write_text("highway=footway\n", "utf-8")
    with pytest.raises(InputValidationError, match=r"roads\.txt.*unknown OSM file type"):
        load_walk_network(path)


def test_empty_osm_named() -> None:
    with pytest.raises(EmptyInputError, match=r"empty\.osm.*no walkable ways.*0 ways read"):
        load_walk_network(OSM_FIXTURES / "empty.osm")


def test_no_walkable_ways_lists_reasons() -> None:
    with pytest.raises(EmptyInputError) as info:
        load_walk_network(OSM_FIXTURES / "not_walkable.osm")
    message = str(info.value)
    assert "not_walkable.osm" in message
    assert "foot_no 1" in message and "highway_not_walkable 1" in message
    assert "no_highway 1" in message
    assert info.value.path == str(OSM_FIXTURES / "not_walkable.osm")


@pytest.mark.parametrize(
    ("name", "content"),
    [("zero.osm", b""), ("broken.osm", b"<osm><way id="), ("junk.osm.pbf", b"junk" * 50)],
)
def test_unreadable_file_named(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputValidationError, match=rf"{name}.*cannot read OSM data"):
        load_walk_network(path)


# ----------------------------------------------------------------------------- cache


def test_cache_hit_returns_identical_arrays(tmp_path: Path) -> None:
    settings = _tmp_settings(tmp_path)
    src = OSM_FIXTURES / "walk.osm"
    first = load_walk_network(src, settings=settings)
    assert first.metadata["cache"] == "written"
    files = list((tmp_path / "cache" / "networks").glob("*.npz"))
    assert [f.name for f in files] == [f"{file_sha256(src)}-walk{WALK_FILTER_VERSION}-utm.npz"]
    second = load_walk_network(src, settings=settings)
    assert second.metadata["cache"] == "hit"
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
        assert getattr(second, name).dtype == getattr(first, name).dtype
    assert second.crs == first.crs
    assert second.source == first.source
    assert second.metadata["ways_rejected_by_reason"] == first.metadata["ways_rejected_by_reason"]
    # The cache is really read: a tampered entry comes back as stored.
    with np.load(files[0]) as data:
        stored = {k: data[k] for k in data.files}
    stored["edge_length_m"] = stored["edge_length_m"] * 2.0
    with files[0].open("wb") as fh:
        np.savez(fh, **stored)
    third = load_walk_network(src, settings=settings)
    assert third.total_length_m == pytest.approx(2.0 * first.total_length_m)


def test_cache_key_depends_on_crs_and_damaged_entry_rebuilt(tmp_path: Path) -> None:
    settings = _tmp_settings(tmp_path)
    src = OSM_FIXTURES / "walk.osm"
    load_walk_network(src, settings=settings)
    load_walk_network(src, settings=settings, crs="EPSG:4544")
    files = sorted((tmp_path / "cache" / "networks").glob("*.npz"))
    assert len(files) == 2
    for f in files:
        f.write_bytes(b"not a zip file")
    again = load_walk_network(src, settings=settings)
    assert again.metadata["cache"] == "written"
    assert again.total_length_m == pytest.approx(3 * NS_M + EW_M, rel=1e-3)


# ----------------------------------------------------------------------------- Yuzhong


@pytest.fixture(scope="module")
def yuzhong_pbf(settings: Settings) -> Path:
    return resolve_data_file("chongqing-yuzhong/yuzhong.osm.pbf", settings)


@pytest.fixture(scope="module")
def yuzhong(yuzhong_pbf: Path) -> WalkNetwork:
    return load_walk_network(yuzhong_pbf)


def test_yuzhong_pbf_and_bz2_agree(settings: Settings, yuzhong: WalkNetwork) -> None:
    bz2 = load_walk_network(resolve_data_file("chongqing-yuzhong/yuzhong.osm.bz2", settings))
    assert (bz2.n_nodes, bz2.n_edges) == (yuzhong.n_nodes, yuzhong.n_edges)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(bz2, name), getattr(yuzhong, name))
    assert bz2.total_length_m == pytest.approx(yuzhong.total_length_m, rel=1e-12)


def test_yuzhong_counts_and_lengths(yuzhong: WalkNetwork) -> None:
    total_km = yuzhong.total_length_m / 1000.0
    print(
        f"Yuzhong walk network: {yuzhong.n_nodes} nodes, {yuzhong.n_edges} segments, "
        f"{total_km:.1f} km, CRS EPSG:{yuzhong.crs.to_epsg()}"
    )
    # The shared README: the extract's walk query holds 19,405 nodes / 3,148 ways.
    assert yuzhong.n_nodes == 19_405
    assert yuzhong.metadata["ways_kept"] == 3_148
    assert yuzhong.crs.to_epsg() == 32648  # UTM 48N
    # Metres, not degrees: a dense old city of 23.5 km2 has several hundred km of
    # walkable ways (about 689 km here); segments are metres to about a kilometre.
    assert 300.0 < total_km < 1500.0
    assert 5.0 < float(np.median(yuzhong.edge_length_m)) < 60.0
    assert (yuzhong.edge_length_m > 0).all() and yuzhong.edge_length_m.max() < 2000.0
    ratio = yuzhong.total_length_m / _geodesic_lengths_m(yuzhong).sum()
    assert abs(ratio - 1.0) < 1e-3  # UTM vs geodesic, < 0.1 %


def test_yuzhong_largest_component(yuzhong: WalkNetwork) -> None:
    share = largest_component_share(yuzhong)
    print(f"largest component holds {share:.1%} of the walkable length")
    assert share >= 0.90


def test_yuzhong_network_covers_district(settings: Settings, yuzhong: WalkNetwork) -> None:
    # Measure: share of the outline's area within the snapping limit (settings.max_snap_m,
    # 300 m) of a walkable segment, i.e. the part of the district where a home or a
    # facility can join the network; also at a stricter 150 m. A convex hull would say
    # 100 % even for a network of a few long roads; distance to the nearest segment does
    # not. Area is estimated on a 25 m grid of points inside the outline (37,608 points;
    # error of the order of the cell size along the border, far below the 10 % margin).
    # The outline holds parts of the Yangtze and Jialing rivers, crossed only by bridges.
    outline = gpd.read_file(resolve_data_file("chongqing-yuzhong/district.geojson", settings))
    district = outline.to_crs(yuzhong.crs).union_all()
    cell_m = 25.0
    x0, y0, x1, y1 = district.bounds
    gx, gy = np.meshgrid(
        np.arange(x0 + cell_m / 2, x1, cell_m), np.arange(y0 + cell_m / 2, y1, cell_m)
    )
    inside = shapely.contains_xy(district, gx.ravel(), gy.ravel())
    grid = shapely.points(gx.ravel()[inside], gy.ravel()[inside])
    assert grid.size * cell_m**2 == pytest.approx(district.area, rel=0.01)
    tree = shapely.STRtree(shapely.linestrings(yuzhong.edge_segments()))
    _, distance_m = tree.query_nearest(grid, return_distance=True, all_matches=False)
    shares = {
        width_m: float((distance_m <= width_m).mean()) for width_m in (150.0, settings.max_snap_m)
    }
    print("district area within d of the network:", {k: f"{v:.1%}" for k, v in shares.items()})
    assert shares[settings.max_snap_m] >= 0.90
    assert shares[150.0] >= 0.90


def test_yuzhong_no_unwalkable_ways(yuzhong_pbf: Path, yuzhong: WalkNetwork) -> None:
    # Raw tags read independently of the loader.
    tags_by_way = {
        w.id: dict(w.tags)
        for w in osmium.FileProcessor(str(yuzhong_pbf), osmium.osm.WAY)
        if w.is_way()
    }
    kept = set(np.unique(yuzhong.edge_way_id).tolist())
    buildings = {i for i, t in tags_by_way.items() if "building" in t and "highway" not in t}
    motorways = {i for i, t in tags_by_way.items() if t.get("highway", "").startswith("motorway")}
    foot_no = {i for i, t in tags_by_way.items() if t.get("foot") == "no"}
    assert len(buildings) == 2_005  # building ways in the extract
    assert not kept & buildings
    assert not kept & motorways
    assert not kept & foot_no
    assert all("highway" in tags_by_way[i] for i in kept)
    assert kept <= {i for i, t in tags_by_way.items() if is_walkable(t)}
    # osmnx's filter keeps a square tagged both highway=pedestrian and building=yes
    # (大唐广场, way 831047037): we follow osmnx, so it is in.
    assert 831047037 in kept


def test_yuzhong_cache_roundtrip(tmp_path: Path, data_dir: Path, yuzhong_pbf: Path) -> None:
    settings = _tmp_settings(tmp_path, data_dir)
    first = load_walk_network(yuzhong_pbf, settings=settings)
    second = load_walk_network(yuzhong_pbf, settings=settings)
    assert (first.metadata["cache"], second.metadata["cache"]) == ("written", "hit")
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))


@pytest.mark.slow  # osmnx parses the XML in Python: several seconds
def test_yuzhong_same_as_osmnx_walk(
    settings: Settings, yuzhong: WalkNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    # osmnx.graph_from_xml keeps every way; its walk filter is applied to the edges here
    # (the filter's tag keys are added to useful_tags_way so they reach the edges).
    import osmnx as ox

    tags = [*ox.settings.useful_tags_way, *WALK_FILTER_KEYS]
    monkeypatch.setattr(ox.settings, "useful_tags_way", tags)
    monkeypatch.setattr(ox.settings, "log_console", False)
    xml = resolve_data_file("chongqing-yuzhong/yuzhong.osm.bz2", settings)
    graph = ox.graph_from_xml(xml, bidirectional=True, simplify=False, retain_all=True)
    pairs = {
        (min(u, v), max(u, v)): data["length"]
        for u, v, data in graph.edges(data=True)
        if u != v and is_walkable(data)
    }
    ours = _edges_by_osm_id(yuzhong)
    assert set(pairs) == set(ours)
    nodes = {n for pair in pairs for n in pair}
    assert nodes == set(yuzhong.node_id.tolist())
    # osmnx lengths are great-circle on a sphere; ours are UTM: same to < 0.1 %.
    assert sum(pairs.values()) == pytest.approx(yuzhong.total_length_m, rel=1e-3)
