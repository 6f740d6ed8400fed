"""The map side files in their compact form: ring starts as steps, a smaller walk lookup.

Two changes to what ``facilities.isochrones/``, ``facilities.layers/walk-*.js`` and
``gaps.layers/`` hold (on the big synthetic city: isochrones 26.2 → 22.5 MB, walk
lookup 18.2 → 10.6 MB):

* a ring of compact polygon text (``common.encode_geometries``) starts with the step
  from the first vertex of the previous ring of its row, not with an absolute pair
  (walk-field isochrones have dozens of holes each);
* the "walk from here" lookup writes no row numbers (the order written numbers the
  rows), positions in steps of 10⁻⁵° along a Hilbert curve inside each chunk, and one
  count per node some facility reaches (those come first).

Checked against references written here from the formats' descriptions, and in
headless Chromium against the page's own decoders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from tuoyu.outputs.maps import build_facility_map, common, save_map
from tuoyu.outputs.maps.common import _polygons_plain, encode_geometries
from tuoyu.outputs.maps.facility_map import (
    WalkLookup,
    _hilbert_keys,
    _walk_config,
    walk_lookup_arrays,
)
from tuoyu.synthetic import random_facilities, synthetic_city

from tests.test_maps import decode_geometry, lookup_rows_written, page_walk, synthetic_case
from tests.test_maps_browser import (  # noqa: F401  (browser: fixture)
    FULL_SCAN_JS,
    PAGE_ANSWERS_JS,
    MapPage,
    browser,
    full_scan_walk,
    random_queries,
)
from tests.test_maps_speed_vectorised import _plain_polygon_text

# --- ring starts as steps -------------------------------------------------------------------


def _holed_polygons(n: int, seed: int) -> list[Any]:
    """Random polygons and multipolygons with many holes (a walk-field isochrone's shape)."""
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for _ in range(n):
        parts = []
        for _ in range(int(rng.integers(1, 4))):
            cx, cy = 106.5 + rng.random() * 0.1, 29.5 + rng.random() * 0.1
            shell = shapely.Point(cx, cy).buffer(0.004 + 0.004 * rng.random(), quad_segs=8)
            holes = [
                shapely.Point(cx + dx, cy + dy).buffer(0.0002, quad_segs=2)
                for dx, dy in rng.uniform(-0.003, 0.003, (int(rng.integers(0, 12)), 2))
            ]
            part = shell.difference(shapely.union_all(holes)) if holes else shell
            parts += list(getattr(part, "geoms", [part]))
        out.append(parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts))
    return out


def _absolute_start_text(geom: Any, scale: float) -> str:
    """The former text of a (multi)polygon: every ring starting from an absolute pair."""
    polys = list(getattr(geom, "geoms", [geom]))
    texts = []
    for p in polys:
        rings = []
        for r in [p.exterior, *p.interiors]:
            ints = np.rint(np.asarray(r.coords) * scale).astype(np.int64)
            steps = ints.copy()
            steps[1:] -= ints[:-1]
            rings.append("[" + ",".join(map(str, steps[:-1].ravel().tolist())) + "]")
        texts.append("[" + ",".join(rings) + "]")
    return "[" + ",".join(texts) + "]"


def _same_rings(a: Any, b: Any) -> bool:
    """Same parts, same rings, same vertices in the same order."""
    pa, pb = list(getattr(a, "geoms", [a])), list(getattr(b, "geoms", [b]))
    if len(pa) != len(pb):
        return False
    for x, y in zip(pa, pb, strict=True):
        rx = [x.exterior, *x.interiors]
        ry = [y.exterior, *y.interiors]
        if len(rx) != len(ry):
            return False
        if not all(
            np.array_equal(np.asarray(u.coords), np.asarray(v.coords))
            for u, v in zip(rx, ry, strict=True)
        ):
            return False
    return True


def test_a_hole_starts_with_a_step_from_the_exterior() -> None:
    holed = shapely.Polygon(
        [(116.0, 39.0), (116.001, 39.0), (116.001, 39.001), (116.0, 39.001)],
        [[(116.0003, 39.0003), (116.0003, 39.0005), (116.0005, 39.0003)]],
    )
    second = shapely.box(116.002, 39.0, 116.003, 39.001)
    text = encode_geometries([shapely.MultiPolygon([holed, second])])[0]
    assert text is not None
    # the exterior starts absolute, the hole 30 units east and 30 north of it, the second
    # polygon (box() starts at its south-east corner) 270 east and 30 south of the hole's
    assert text == (
        "[[[11600000,3900000,100,0,0,100,-100,0],[30,30,0,20,20,-20]],"
        "[[270,-30,0,100,-100,0,0,-100]]]"
    )
    assert "11600030" not in text and "3900030" not in text  # no absolute hole start
    back = decode_geometry("polygon", json.loads(text), 10**5)
    assert _same_rings(back, shapely.MultiPolygon([holed, second]))


@pytest.mark.parametrize("block", [7, 300, 1 << 19])
def test_relative_starts_vectorised_plain_and_reference_agree(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Random multipolygons with holes, in blocks that split rows between passes."""
    monkeypatch.setattr(common, "ENCODE_BLOCK_COORDS", block)
    geoms = _holed_polygons(60, seed=1)
    assert sum(len(p.interiors) for g in geoms for p in getattr(g, "geoms", [g])) > 200
    arr = np.asarray(geoms, dtype=object)
    for decimals in (5, 6):
        scale = 10.0**decimals
        fast = encode_geometries(arr, "polygon", decimals)
        assert fast == _polygons_plain(arr, scale)  # the path for odd rows, on every row
        assert fast == [_plain_polygon_text(g, scale) for g in geoms]  # the definition
        for g, text in zip(geoms, fast, strict=True):
            back = decode_geometry("polygon", json.loads(str(text)), int(scale))
            expected = shapely.transform(g, lambda c, s=scale: np.rint(c * s) / s)
            assert _same_rings(back, expected)


def test_relative_starts_make_holed_text_smaller() -> None:
    geoms = _holed_polygons(60, seed=2)
    now = sum(len(str(t)) for t in encode_geometries(geoms, "polygon", 6))
    before = sum(len(_absolute_start_text(g, 1e6)) for g in geoms)
    n_rings = sum(1 + len(p.interiors) for g in geoms for p in getattr(g, "geoms", [g]))
    rows = len(geoms)
    # each later ring's start: two steps of a few digits instead of 17 digits (≈ 9 fewer)
    assert before - now > 6 * (n_rings - rows)


def _holed_isochrones(facilities: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Three areas per facility (metric); the 15-minute one with four holes and a second
    polygon beside it."""
    rows = []
    for fid, p in zip(facilities["id"], facilities.geometry, strict=True):
        for minutes, radius in ((5, 200.0), (10, 400.0), (15, 700.0)):
            shape = p.buffer(radius)
            if minutes == 15:
                holes = shapely.union_all(
                    [shapely.Point(p.x + dx, p.y + dy).buffer(30.0) for dx, dy in
                     ((250, 0), (-300, 100), (0, -350), (350, 350))]
                )  # fmt: skip
                beside = shapely.Point(p.x + 900.0, p.y).buffer(80.0)
                shape = shapely.MultiPolygon([shape.difference(holes), beside])
            rows.append({"facility_id": fid, "minutes": minutes, "geometry": shape})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=facilities.crs)


def test_page_decodes_holes_and_parts_as_written(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    case = synthetic_case()
    fac = case["facilities"]
    iso = _holed_isochrones(fac)
    path = save_map(build_facility_map(fac, iso, simplify_m=0.0), tmp_path / "f.html")
    folder = tmp_path / "f.isochrones"
    texts = [p.read_text(encoding="utf-8") for p in folder.glob("*.js")]
    chunks = [json.loads(t[t.index(", {") + 2 : t.rindex(");")]) for t in texts]
    i = 3
    enc = next(c[str(i)] for c in chunks if str(i) in c)
    fifteen = next(e for m, e in enc if m == 15)
    # the written text decodes (here, from the format's description) to the polygon
    expected = shapely.transform(
        iso[(iso["facility_id"] == fac["id"].iloc[i]) & (iso["minutes"] == 15)]
        .to_crs(4326)
        .geometry.iloc[0],
        lambda c: np.rint(c * 1e6) / 1e6,
    )
    ours = decode_geometry("polygon", fifteen, 10**6)
    assert ours.geom_type == "MultiPolygon" and len(ours.geoms[0].interiors) == 4
    assert ours.equals_exact(expected, 0)
    mp = MapPage(browser, path)
    try:
        page = mp.js("([enc]) => tuoyu.decodeGeometry('polygon', enc, 1e6)", [fifteen])
        assert shapely.from_geojson(json.dumps(page)).equals_exact(ours, 0)
        mp.js("([i]) => tuoyu.last.facMarkers[i].fire('click')", [i])
        mp.page.wait_for_function("() => tuoyu.last.isoDrawn === 3")
        drawn = mp.js(
            "() => tuoyu.last.isoGroup.getLayers().map(l => [l.tuoyuMinutes,"
            " l.toGeoJSON().features[0].geometry])"
        )
        shown = {m: shapely.from_geojson(json.dumps(g)) for m, g in drawn}
        assert shown[15].equals_exact(ours, 1e-9)
        mp.js(
            "([i]) => { const m = tuoyu.last.map; m.closePopup();"
            " m.setView(tuoyu.last.facMarkers[i].getLatLng(), 15, {animate: false}); }",
            [i],
        )
        mp.page.wait_for_function("() => !document.querySelector('.leaflet-popup')")
        mp.screenshot("facilities_holed_isochrones.png")
        mp.check_clean()
    finally:
        mp.close()


# --- the walk lookup ----------------------------------------------------------------------


def _xy2d(n: int, x: int, y: int) -> int:
    """The classic Hilbert ``xy2d`` loop, one point at a time."""
    d, s = 0, n // 2
    while s > 0:
        rx, ry = int(x & s > 0), int(y & s > 0)
        d += s * s * ((3 * rx) ^ ry)
        if ry == 0:
            if rx == 1:
                x, y = n - 1 - x, n - 1 - y
            x, y = y, x
        s //= 2
    return d


def test_hilbert_keys_are_the_classic_xy2d() -> None:
    rng = np.random.default_rng(0)
    for order in (1, 2, 3, 7, 16, 26, 31):
        n = 1 << order
        x, y = rng.integers(0, n, 500), rng.integers(0, n, 500)
        keys = _hilbert_keys(x, y, order)
        assert keys.tolist() == [_xy2d(n, int(a), int(b)) for a, b in zip(x, y, strict=True)]
    grid = np.arange(64)
    keys = _hilbert_keys(grid % 8, grid // 8, 3)
    assert sorted(keys.tolist()) == list(range(64))  # every cell once
    path = np.argsort(keys)
    steps = np.abs(np.diff(grid[path] % 8)) + np.abs(np.diff(grid[path] // 8))
    assert (steps == 1).all()  # a walk from cell to neighbouring cell


def _city_lookup(n_nodes: int, n_fac: int, seed: int) -> tuple[WalkLookup, list[str]]:
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.reach.engine import all_facility_reach

    net = synthetic_city(n_nodes, seed=seed)
    x, y = random_facilities(net, n_fac, seed=seed + 1)
    graph = build_graph(net)
    reaches = all_facility_reach(graph, snap_points(graph, x, y, 300.0), 1000.0)
    ids = [f"W{i:03d}" for i in range(n_fac)]
    return walk_lookup_arrays(net, reaches, ids, 4.0), ids


def _walk_chunks(lookup: WalkLookup, ids: list[str], **kw: Any) -> tuple[dict[str, Any], list[str]]:
    """The walk configuration and the JSON text of each chunk."""
    index_of = {f: i for i, f in enumerate(ids)}
    cfg, chunks = _walk_config(
        lookup, index_of, mode="lookup", speed_kmh=4.0, minutes=15.0, max_snap_m=300.0, **kw
    )
    assert chunks is not None
    return cfg, chunks.chunks


def test_walk_chunks_hold_no_rows_and_short_steps() -> None:
    lookup, ids = _city_lookup(20_000, 60, seed=31)
    cfg, texts = _walk_chunks(lookup, ids)
    chunks = [json.loads(t) for t in texts]
    assert cfg["scale"] == 10**5 and cfg["nodes"] == len(lookup)
    sizes = [len(c["x"]) for c in chunks]
    assert cfg["rowStarts"] == (np.cumsum(sizes) - sizes).tolist() and sum(sizes) == len(lookup)
    reached = np.bincount(lookup.pair_node, minlength=len(lookup)) > 0
    assert sum(len(c["n"]) for c in chunks) == int(reached.sum()) > 0
    for c in chunks:
        assert sorted(c) == ["f", "n", "t", "x", "y"]  # no "i": the order numbers the rows
        assert all(v > 0 for v in c["n"]) and len(c["f"]) == len(c["t"]) == sum(c["n"])
    # along a Hilbert curve both steps are short: a street crossing or two apart
    steps = np.abs(np.concatenate([np.r_[c["x"][1:], c["y"][1:]] for c in chunks]))
    assert np.median(steps) < 100  # 10⁻⁵° units (≈ 1 m): the next street node, not a
    # chunk across as in row order


def test_walk_lookup_bytes_shrink() -> None:
    """On a synthetic city: about 11 bytes a node, where row steps, micro-degrees in row
    order and a count for every node took 15.6."""
    lookup, ids = _city_lookup(20_000, 60, seed=31)
    _, texts = _walk_chunks(lookup, ids)
    assert sum(len(t) for t in texts) < 12.0 * len(lookup)


def _lookup_with_shared_places(seed: int) -> pd.DataFrame:
    """The synthetic lookup with nodes less than a metre from others (one place at 10⁻⁵°),
    some reached by no facility and listed before them, some reached and listed after."""
    lookup = synthetic_case()["lookup"]
    rng = np.random.default_rng(seed)
    reached = np.flatnonzero([len(items) > 0 for items in lookup["facilities"]])
    on = lookup.iloc[rng.choice(reached, 30, replace=False)].reset_index(drop=True)
    cell = np.round(on[["lon", "lat"]].to_numpy() * 1e5) / 1e5  # inside the same cell
    on["lon"], on["lat"] = cell[:, 0] + 2e-6, cell[:, 1] - 2e-6
    before = on.iloc[:15].assign(facilities=[[] for _ in range(15)])
    donors = rng.choice(reached, 15, replace=False)
    after = on.iloc[15:].assign(facilities=[lookup["facilities"].iloc[d] for d in donors])
    return pd.concat([before, lookup, after], ignore_index=True)


@pytest.mark.parametrize("chunk_nodes", [2_000, 25])
def test_walk_answers_are_the_scan_over_the_written_lookup(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    chunk_nodes: int,
) -> None:
    """The page's answers equal a scan over every written node; of nodes in one place
    (10⁻⁵°) the page takes the lowest row of the lookup some facility reaches."""
    case = synthetic_case()
    fac = case["facilities"]
    lookup = _lookup_with_shared_places(seed=7)
    m = build_facility_map(fac, None, lookup, walk_chunk_nodes=chunk_nodes, walk_inline_max_bytes=0)
    path = save_map(m, tmp_path / "f.html")
    walk = page_walk(path.read_text(encoding="utf-8"), tmp_path / "f.layers")
    source = lookup_rows_written(walk, lookup)
    added = pd.concat([lookup.iloc[:15], lookup.iloc[-15:]])
    places = list(
        zip(
            np.round(added["lon"].to_numpy() * 1e5).astype(np.int64).tolist(),
            np.round(added["lat"].to_numpy() * 1e5).astype(np.int64).tolist(),
            strict=True,
        )
    )
    queries = random_queries(lookup, 200, seed=8) + [(y / 1e5, x / 1e5, "wgs84") for x, y in places]
    mp = MapPage(browser, path)
    try:
        expected = mp.js(FULL_SCAN_JS, [full_scan_walk(lookup, fac["id"].tolist(), walk), queries])
        assert mp.js(PAGE_ANSWERS_JS, [queries]) == expected
        # the original node wins its place: over an unreached node listed before it, and
        # over a reached one listed after it
        winners = [source[e["node"]] for e in expected[-30:]]
        assert winners == [15 + _row_at(lookup.iloc[15:-15], p) for p in places]
        mp.check_clean()
    finally:
        mp.close()


def _row_at(lookup: pd.DataFrame, place: tuple[int, int]) -> int:
    """The one row of ``lookup`` at a place (10⁻⁵°)."""
    lon = np.round(lookup["lon"].to_numpy() * 1e5).astype(np.int64)
    lat = np.round(lookup["lat"].to_numpy() * 1e5).astype(np.int64)
    hits = np.flatnonzero((lon == place[0]) & (lat == place[1]))
    assert hits.size == 1
    return int(hits[0])


@pytest.mark.parametrize("chunk_nodes", [1, 2, 3, 100])
def test_nodes_in_one_place_keep_one_order_across_chunks(chunk_nodes: int) -> None:
    """Six nodes in one place, split into chunks of 1–3 or kept in one: the written
    order at that place is always reached nodes first, each by lookup row."""
    rng = np.random.default_rng(3)
    n = 40
    lon = 116.4 + rng.random(n) * 0.01
    lat = 39.9 + rng.random(n) * 0.01
    same = np.arange(10, 16)
    lon[same], lat[same] = 116.40501 + rng.uniform(-4e-6, 4e-6, 6), 39.90499
    reached_rows = [1, 12, 14, 20, 30]  # 12 and 14 in the shared place
    lookup = WalkLookup(
        lon=lon,
        lat=lat,
        facility_ids=("A", "B"),
        pair_node=np.array(reached_rows, dtype=np.int64),
        pair_facility=np.zeros(5, dtype=np.int64),
        pair_tenths=np.array([10, 20, 30, 40, 50], dtype=np.int64),
    )
    cfg, texts = _walk_chunks(lookup, ["A", "B"], chunk_nodes=chunk_nodes)
    written_n: list[int] = []  # facility count of each written node, in order
    written_at: list[tuple[int, int]] = []
    for text, box in zip(texts, cfg["bboxes"], strict=True):
        c = json.loads(text)
        xs = (box[0] + np.cumsum(c["x"])).tolist()
        ys = (box[1] + np.cumsum(c["y"])).tolist()
        written_n += c["n"] + [0] * (len(xs) - len(c["n"]))
        written_at += list(zip(xs, ys, strict=True))
    place = (11640501, 3990499)
    at_place = [j for j, p in enumerate(written_at) if p == place]
    assert len(at_place) == 6
    starts = cfg["rowStarts"]
    chunk_of = [int(np.searchsorted(starts, j, side="right")) - 1 for j in at_place]
    assert (len(set(chunk_of)) > 1) == (chunk_nodes < 6)  # the place split, or not
    assert [written_n[j] for j in at_place] == [1, 1, 0, 0, 0, 0]
    tenths = []
    for j in at_place[:2]:  # which reached node is which: by its walking time
        k = int(np.searchsorted(cfg["rowStarts"], j, side="right")) - 1
        c = json.loads(texts[k])
        first = j - cfg["rowStarts"][k]
        tenths.append(c["t"][sum(c["n"][:first])])
    assert tenths == [20, 30]  # row 12, then row 14
