"""The generated maps in real headless Chromium (Debian ``chromium``, driven by playwright).

Each page is opened from disk with every request to the outside aborted (tiles fail to
load, which is fine; vectors must draw). Checked: no JavaScript error in the console,
drawn markers / polygons equal the data, clicking a facility shows its isochrones,
filters and "walk from here" work, and switching basemaps moves every overlay to the
basemap's datum (GCJ-02 on Amap, WGS84 on OpenStreetMap / 天地图). Screenshots go to
``tests/_artifacts/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest
from tuoyu.crs.china import convert
from tuoyu.outputs.maps import build_dashboard_map, build_facility_map, build_gap_map, save_map
from tuoyu.outputs.maps.facility_map import WALK_CHUNK_NODES, WALK_INLINE_MAX_BYTES

from tests.browser_support import launched_chromium
from tests.test_maps import (
    GAP_THRESHOLD_M,
    dongcheng_case,
    lookup_rows_written,
    page_config,
    page_isochrones,
    page_walk,
    synthetic_case,
)

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent / "_artifacts"
TILE_HOSTS = ("tile.openstreetmap.org", "is.autonavi.com", "tianditu.gov.cn")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as b:
        yield b


class MapPage:
    """A map page in Chromium with its console errors and outside requests."""

    def __init__(self, browser: Any, path: Path, api: dict[str, Any] | None = None) -> None:
        self.page = browser.new_page(viewport={"width": 1200, "height": 800})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.api_calls: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.api = api
        self.page.route("**/*", self._route)
        self.page.goto(path.as_uri())
        self.page.wait_for_function("() => window.tuoyu && tuoyu.last && tuoyu.last.ready")

    def _console(self, msg: Any) -> None:
        # a tile that cannot load logs "Failed to load resource": expected offline
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.errors.append(msg.text)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
            return
        if self.api is not None and url.startswith(self.api["prefix"]):
            self.api_calls.append(url)
            route.fulfill(
                status=200, content_type="application/json", body=json.dumps(self.api["body"])
            )
            return
        self.outside.append(url)
        route.abort()

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def switch_basemap(self, text: str) -> None:
        self.page.locator(".leaflet-control-layers-base label", has_text=text).click()

    def check_clean(self) -> None:
        assert self.errors == []
        hosts = {urlparse(u).hostname or "" for u in self.outside}
        assert all(h.endswith(TILE_HOSTS) for h in hosts), hosts  # tiles only, no CDN

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        out = ARTIFACTS / name
        self.page.screenshot(path=str(out))
        return out

    def close(self) -> None:
        self.page.close()


MARKER_LATLNG = (
    "([i]) => { const ll = tuoyu.last.facMarkers[i].getLatLng(); return [ll.lat, ll.lng]; }"
)
ISO_FIRST_VERTEX = """() => {
  const layers = tuoyu.last.isoGroup.getLayers();
  const gj = layers[0].toGeoJSON().features[0].geometry;
  const ring = gj.type === 'Polygon' ? gj.coordinates[0] : gj.coordinates[0][0];
  return [layers[0].tuoyuMinutes, ring[0]];
}"""


def _expected_rows(cfg: dict[str, Any], walk: dict[str, Any], node: int) -> list[str]:
    flat = walk["reach"][node]
    return [cfg["facilities"]["names"][int(flat[k])] for k in range(0, len(flat), 2)]


def _pick_node(walk: dict[str, Any], taken: set[int]) -> int:
    """A node reached by ≥ 2 facilities, none of them near the 15-minute edge."""
    for j, flat in enumerate(walk["reach"]):
        times = flat[1::2]
        if (
            j not in taken
            and len(times) >= 2
            and max(times) < 14.5
            and len(set(times)) == len(times)
        ):
            return j
    raise AssertionError("no suitable lookup node")


def _walk_names(mp: MapPage) -> list[str]:
    return list(
        mp.js(
            "() => Array.from(document.querySelectorAll('.tuoyu-walk-list li a'))"
            ".map(a => a.textContent)"
        )
    )


def _walk_query(mp: MapPage, text: str, n_expected: int) -> list[str]:
    mp.page.fill("input.tuoyu-lonlat", text)
    mp.page.click(".tuoyu-walk-form button")
    mp.page.wait_for_function(
        "(n) => document.querySelectorAll('.tuoyu-walk-list li').length === n", arg=n_expected
    )
    return _walk_names(mp)


# --- the public facility map, synthetic city with isochrones and walk lookup ----------------


@pytest.mark.slow
def test_facility_map_synthetic(browser: Any, tmp_path: Path) -> None:
    case = synthetic_case()
    fac = case["facilities"]
    m = build_facility_map(
        fac, case["isochrones"], case["lookup"], cluster_over=8, tianditu_key="TESTKEY",
        area_name="合成城市 synthetic",
    )  # fmt: skip
    path = save_map(m, tmp_path / "facilities.html")
    cfg = page_config(path.read_text(encoding="utf-8"))
    mp = MapPage(browser, path)
    try:
        n = len(fac)
        assert mp.js("() => tuoyu.last.facContainer.getLayers().length") == n
        assert mp.js("() => tuoyu.last.facShown") == n
        assert mp.js("() => document.querySelectorAll('.leaflet-marker-icon').length") > 0
        attribution = mp.js(
            "() => document.querySelector('.leaflet-control-attribution').innerText"
        )
        assert "© OpenStreetMap contributors" in attribution

        # click a facility: its popup opens and its isochrones are read from the chunk
        # files beside the page and drawn
        i = 3
        iso = page_isochrones(path.read_text(encoding="utf-8"), tmp_path / "facilities.isochrones")
        rings = len(iso[i])
        assert rings == 3
        paths_before = mp.js("() => document.querySelectorAll('.leaflet-overlay-pane path').length")
        # Click the facility through Leaflet: a real pointer click would first need
        # MarkerCluster to uncluster it, which waits for animation frames that headless
        # Chromium does not always run (it hung CI).
        mp.js("([i]) => tuoyu.last.facMarkers[i].fire('click')", [i])
        mp.page.wait_for_function("(n) => tuoyu.last.isoDrawn === n", arg=rings)
        assert mp.js("() => tuoyu.last.isoGroup.getLayers().length") == rings
        paths_after = mp.js("() => document.querySelectorAll('.leaflet-overlay-pane path').length")
        assert paths_after - paths_before == rings
        popup = mp.js(
            "([i]) => { const p = tuoyu.last.facMarkers[i].getPopup();"
            " const c = p && p.getContent();"
            " return typeof c === 'string' ? c : (c && c.outerHTML) || ''; }",
            [i],
        )
        assert cfg["facilities"]["names"][i] in popup
        mp.screenshot("facilities_synthetic_isochrones.png")

        # WGS84 on OpenStreetMap, GCJ-02 on Amap, back again, WGS84 on 天地图
        wgs = fac.to_crs(4326).geometry
        lon6, lat6 = round(float(wgs.x.iloc[i]), 6), round(float(wgs.y.iloc[i]), 6)
        glon, glat = convert(lon6, lat6, "wgs84", "gcj02")
        assert np.allclose(mp.js(MARKER_LATLNG, [i]), [lat6, lon6], atol=1e-9)
        minutes_w, vertex_w = mp.js(ISO_FIRST_VERTEX)
        mp.switch_basemap("高德地图")
        mp.page.wait_for_function("() => tuoyu.last.datum === 'gcj02'")
        assert np.allclose(mp.js(MARKER_LATLNG, [i]), [float(glat), float(glon)], atol=1.5e-6)
        assert mp.js("() => tuoyu.last.facContainer.getLayers().length") == n
        minutes_g, vertex_g = mp.js(ISO_FIRST_VERTEX)
        vlon, vlat = convert(vertex_w[0], vertex_w[1], "wgs84", "gcj02")
        assert minutes_g == minutes_w == 15
        assert np.allclose(vertex_g, [float(vlon), float(vlat)], atol=2e-6)
        assert mp.js("() => tuoyu.last.isoGroup.getLayers().length") == rings
        mp.switch_basemap("OpenStreetMap")
        mp.page.wait_for_function("() => tuoyu.last.datum === 'wgs84'")
        assert np.allclose(mp.js(MARKER_LATLNG, [i]), [lat6, lon6], atol=1e-9)
        mp.switch_basemap("天地图")
        mp.page.wait_for_function(
            "() => tuoyu.last.map.getContainer().dataset.tuoyuDatum === 'wgs84'"
        )
        assert np.allclose(mp.js(MARKER_LATLNG, [i]), [lat6, lon6], atol=1e-9)

        # filters by kind and 普惠
        kinds = cfg["facilities"]["kinds"]
        mp.page.locator("input.tuoyu-kind[value='托幼一体']").uncheck()
        assert mp.js("() => tuoyu.last.facContainer.getLayers().length") == n - kinds.count(
            "托幼一体"
        )
        mp.page.locator("input.tuoyu-kind[value='托幼一体']").check()
        mp.page.select_option("select.tuoyu-puhui", "yes")
        assert mp.js("() => tuoyu.last.facContainer.getLayers().length") == cfg["facilities"][
            "puhui"
        ].count(1)
        mp.page.select_option("select.tuoyu-puhui", "no")
        assert mp.js("() => tuoyu.last.facContainer.getLayers().length") == cfg["facilities"][
            "puhui"
        ].count(0)
        mp.page.select_option("select.tuoyu-puhui", "all")

        # walk from here: a point copied from Amap (GCJ-02, the default for typed input)
        # gives the same answer on the OSM and the Amap basemap; WGS84 and BD-09 when
        # chosen beside the box; then a map click.
        mp.switch_basemap("OpenStreetMap")
        walk = page_walk(path.read_text(encoding="utf-8"))
        node = _pick_node(walk, set())
        lon, lat = walk["lonInt"][node] / walk["scale"], walk["latInt"][node] / walk["scale"]
        expected = _expected_rows(cfg, walk, node)
        glon_n, glat_n = (float(v) for v in convert(lon, lat, "wgs84", "gcj02"))
        blon_n, blat_n = (float(v) for v in convert(lon, lat, "wgs84", "bd09"))
        assert mp.page.input_value("select.tuoyu-typed-datum") == "gcj02"
        assert "GCJ-02" in mp.page.inner_text(".tuoyu-datum")
        assert _walk_query(mp, f"{glon_n:.6f},{glat_n:.6f}", len(expected)) == expected
        mp.page.select_option("select.tuoyu-typed-datum", "wgs84")
        assert _walk_query(mp, f"{lon:.6f},{lat:.6f}", len(expected)) == expected
        mp.page.select_option("select.tuoyu-typed-datum", "bd09")
        assert _walk_query(mp, f"{blon_n:.6f},{blat_n:.6f}", len(expected)) == expected
        mp.switch_basemap("高德地图")
        mp.page.select_option("select.tuoyu-typed-datum", "gcj02")
        mp.page.fill("input.tuoyu-lonlat", "")
        assert _walk_query(mp, f"{glon_n:.6f}，{glat_n:.6f}", len(expected)) == expected
        mp.page.fill("input.tuoyu-lonlat", "not a point")
        mp.page.click(".tuoyu-walk-form button")
        assert "116.40,39.91" in mp.page.inner_text(".tuoyu-walk-out")

        mp.switch_basemap("OpenStreetMap")
        clicked = None
        taken: set[int] = {node}
        for _ in range(20):
            other = _pick_node(walk, taken)
            taken.add(other)
            ll = [walk["latInt"][other] / walk["scale"], walk["lonInt"][other] / walk["scale"]]
            xy = mp.js(
                """async ([ll]) => { const m = tuoyu.last.map; m.setView(ll, 18, {animate: false});
                   await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                   const p = m.latLngToContainerPoint(ll); const r = m.getContainer().getBoundingClientRect();
                   const el = document.elementFromPoint(r.left + p.x, r.top + p.y);
                   const free = m.getContainer().contains(el) &&
                     !el.closest('.leaflet-marker-icon, .leaflet-control, .leaflet-popup');
                   return [r.left + p.x, r.top + p.y, free]; }""",
                [ll],
            )
            if xy[2]:
                clicked = (other, xy)
                break
        assert clicked is not None, "no free map spot over a lookup node"
        other, xy = clicked
        mp.page.mouse.click(xy[0], xy[1])
        expected_click = _expected_rows(cfg, walk, other)
        mp.page.wait_for_function(
            "(n) => document.querySelectorAll('.tuoyu-walk-list li').length === n",
            arg=len(expected_click),
        )
        assert _walk_names(mp) == expected_click
        mp.screenshot("facilities_synthetic_walk.png")
        mp.check_clean()
    finally:
        mp.close()


# --- "walk from here": the chunked lookup answers as the scan over every node did ------------

FULL_SCAN_JS = """([walk, queries]) => {
  // The page's lookup before it was chunked (tuoyu_maps.js up to issue 16): one linear
  // scan over every node (positions in units of 1 / walk.scale degrees, rows in the
  // order written); a GCJ-02 point is converted to WGS84 first.
  function localMetres(lat0, lon0, lat1, lon1) {
    var k = Math.PI / 180;
    var x = (lon1 - lon0) * Math.cos(((lat0 + lat1) / 2) * k) * 6371008.8 * k;
    var y = (lat1 - lat0) * 6371008.8 * k;
    return Math.sqrt(x * x + y * y);
  }
  function nearestNode(walk, datum, lat, lon) {
    var best = -1;
    var bestM = Infinity;
    if (datum === "gcj02") {
      var w = tuoyu.fromGcj(lon, lat);
      lon = w[0];
      lat = w[1];
    }
    for (var j = 0; j < walk.lonInt.length; j++) {
      var d = localMetres(lat, lon, walk.latInt[j] / walk.scale, walk.lonInt[j] / walk.scale);
      if (d < bestM) {
        bestM = d;
        best = j;
      }
    }
    return { index: best, metres: bestM };
  }
  const strings = tuoyu.last.cfg.strings;
  return queries.map(([lat, lon, datum]) => {
    var near = nearestNode(walk, datum, lat, lon);
    if (near.index < 0) {
      return { error: strings.no_walk_data };
    }
    if (near.metres > walk.maxSnapM) {
      return { error: strings.too_far.replace("{m}", Math.round(walk.maxSnapM)) };
    }
    var legMin = near.metres / ((walk.speedKmh * 1000) / 60);
    var pairs = walk.reach[near.index] || [];
    var rows = [];
    for (var p = 0; p + 1 < pairs.length; p += 2) {
      var t = pairs[p + 1] + legMin;
      if (t <= walk.minutes + 1e-9) {
        rows.push({ index: pairs[p], minutes: t });
      }
    }
    rows.sort(function (a, b) {
      return a.minutes - b.minutes || a.index - b.index;
    });
    return { rows: rows.map((r) => [r.index, r.minutes]), node: near.index };
  });
}"""

PAGE_ANSWERS_JS = """async ([queries]) => {
  const out = [];
  for (const [lat, lon, datum] of queries) {
    const r = await tuoyu.walkLookup(lat, lon, datum);
    out.push(r.error ? { error: r.error }
      : { rows: r.rows.map((x) => [x.index, x.minutes]), node: r.node });
  }
  return out;
}"""


def full_scan_walk(
    lookup: Any, ids: list[str], walk: dict[str, Any], *, minutes: float = 15.0,
    max_snap_m: float = 300.0, speed_kmh: float = 4.0,
) -> dict[str, Any]:  # fmt: skip
    """The lookup as one list of every node (flat reach), in the order the page wrote it.

    Positions and facilities come from ``lookup``, rounded as the page's (``1 /
    walk["scale"]`` degrees); ``walk`` (:func:`page_walk`) gives only the order, which
    numbers the rows (:func:`lookup_rows_written`).
    """
    index_of = {fid: i for i, fid in enumerate(ids)}
    source = lookup_rows_written(walk, lookup)
    scale = walk["scale"]
    reach = [
        [v for fid, t in items if t <= minutes for v in (index_of[str(fid)], round(t, 1))]
        for items in lookup["facilities"].iloc[source]
    ]
    return {
        "lonInt": np.round(lookup["lon"].to_numpy()[source] * scale).astype(np.int64).tolist(),
        "latInt": np.round(lookup["lat"].to_numpy()[source] * scale).astype(np.int64).tolist(),
        "scale": scale, "reach": reach, "minutes": minutes, "maxSnapM": max_snap_m,
        "speedKmh": speed_kmh,
    }  # fmt: skip


def random_queries(
    lookup: Any, n: int, seed: int, spread_m: float = 400.0
) -> list[tuple[float, float, str]]:
    """``(lat, lon, datum)``: on nodes, near nodes, and anywhere around the network
    (some too far from it); about half given in GCJ-02 (the page converts them)."""
    rng = np.random.default_rng(seed)
    lon = np.round(lookup["lon"].to_numpy() * 1e6) / 1e6
    lat = np.round(lookup["lat"].to_numpy() * 1e6) / 1e6
    pick = rng.integers(0, len(lookup), n)
    kind = rng.integers(0, 5, n)  # 0–1 on a node, 2–3 near one, 4 anywhere
    m_lat = 1.0 / 111_195.0
    m_lon = m_lat / np.cos(np.radians(lat.mean()))
    q_lon = lon[pick] + np.where(kind >= 2, rng.uniform(-spread_m, spread_m, n) * m_lon, 0.0)
    q_lat = lat[pick] + np.where(kind >= 2, rng.uniform(-spread_m, spread_m, n) * m_lat, 0.0)
    anywhere = kind == 4
    q_lon[anywhere] = rng.uniform(lon.min() - 0.01, lon.max() + 0.01, int(anywhere.sum()))
    q_lat[anywhere] = rng.uniform(lat.min() - 0.01, lat.max() + 0.01, int(anywhere.sum()))
    gcj = (rng.random(n) < 0.5) & (kind >= 2)
    g_lon, g_lat = convert(q_lon, q_lat, "wgs84", "gcj02")
    return [
        (float(g_lat[j]), float(g_lon[j]), "gcj02") if gcj[j]
        else (float(q_lat[j]), float(q_lon[j]), "wgs84")
        for j in range(n)
    ]  # fmt: skip


def _with_tied_nodes(lookup: Any, seed: int) -> Any:
    """The lookup with duplicates of some nodes (same place, other facilities) before and
    after it: a point on such a node is equally near both, and the lower row wins."""
    rng = np.random.default_rng(seed)
    reached = np.flatnonzero([len(items) > 0 for items in lookup["facilities"]])
    picks = rng.choice(reached, 20, replace=False)
    donors = rng.choice(reached, 20, replace=False)
    dups = lookup.iloc[picks].reset_index(drop=True)
    dups["facilities"] = [lookup["facilities"].iloc[d] for d in donors]
    return pd.concat([dups.iloc[:10], lookup, dups.iloc[10:]], ignore_index=True)


@pytest.mark.parametrize("beside", [False, True], ids=["inline", "beside"])
def test_walk_lookup_matches_the_full_scan(browser: Any, tmp_path: Path, beside: bool) -> None:
    case = synthetic_case()
    fac = case["facilities"]
    lookup = _with_tied_nodes(case["lookup"], seed=5)
    chunk_nodes, inline_max = (40, 0) if beside else (WALK_CHUNK_NODES, WALK_INLINE_MAX_BYTES)
    m = build_facility_map(
        fac, None, lookup, walk_chunk_nodes=chunk_nodes, walk_inline_max_bytes=inline_max
    )
    path = save_map(m, tmp_path / "f.html")
    html = path.read_text(encoding="utf-8")
    walk = page_walk(html, tmp_path / "f.layers")
    n_chunks = len(walk["bboxes"])
    assert (tmp_path / "f.layers").is_dir() == beside and (n_chunks > 10) == beside
    ids = fac["id"].tolist()
    queries = random_queries(lookup, 300, seed=6)
    scale = walk["scale"]
    dups = pd.concat([lookup.iloc[:10], lookup.iloc[-10:]])
    ties = [(lat / scale, lon / scale, "wgs84") for lon, lat in
            zip(np.round(dups["lon"].to_numpy() * scale).tolist(),
                np.round(dups["lat"].to_numpy() * scale).tolist(), strict=True)]  # fmt: skip
    mp = MapPage(browser, path)
    try:
        assert mp.js("() => Object.keys(tuoyu.last.walkChunks).length") == 0
        expected = mp.js(FULL_SCAN_JS, [full_scan_walk(lookup, ids, walk), queries + ties])
        got = mp.js(PAGE_ANSWERS_JS, [queries + ties])
        assert got == expected
        kinds = [("error" if "error" in e else "rows" if e["rows"] else "none") for e in expected]
        assert min(kinds.count(k) for k in ("error", "rows", "none")) >= 10, kinds
        # on a duplicated node the lower row of the lookup wins (rows are renumbered as
        # written, nodes in one place in lookup order): the copy before the lookup, the
        # original before the copy after it
        source = lookup_rows_written(walk, lookup)
        nodes = [source[e["node"]] for e in expected[-20:]]
        assert nodes[:10] == list(range(10))
        assert nodes[10:] == [int(i) + 10 for i in _tied_originals(lookup)]
        loaded = mp.js("() => Object.keys(tuoyu.last.walkChunks).length")
        assert loaded == n_chunks  # 300 points all over the network read every chunk
        mp.check_clean()
    finally:
        mp.close()


def _tied_originals(lookup: Any) -> list[int]:
    """Rows (in the original lookup) of the 10 nodes duplicated after it."""
    tail = lookup.iloc[-10:]
    body = lookup.iloc[10:-10]
    key = list(zip(body["lon"], body["lat"], strict=True))
    return [key.index((lon, lat)) for lon, lat in zip(tail["lon"], tail["lat"], strict=True)]


def test_facility_map_served_by_api(browser: Any, tmp_path: Path) -> None:
    case = synthetic_case()
    fac = case["facilities"]
    template = (
        "http://tuoyu.test/api/areas/synth/nearest?lon={lon}&lat={lat}&crs={crs}&minutes={minutes}"
    )
    m = build_facility_map(fac, nearest_url=template, basemap="amap")
    path = save_map(m, tmp_path / "facilities_api.html")
    answer = [{"facility_id": "F02", "walk_min": 2.5}, {"facility_id": "F07", "walk_min": 9.0}]
    mp = MapPage(
        browser, path, api={"prefix": "http://tuoyu.test/api/", "body": {"facilities": answer}}
    )
    try:
        assert mp.js("() => tuoyu.last.map.getContainer().dataset.nearestUrl") == template
        # Amap shown first: markers start at their GCJ-02 positions
        assert mp.js("() => tuoyu.last.datum") == "gcj02"
        wgs = fac.to_crs(4326).geometry
        glon, glat = convert(
            round(float(wgs.x.iloc[0]), 6), round(float(wgs.y.iloc[0]), 6), "wgs84", "gcj02"
        )
        assert np.allclose(mp.js(MARKER_LATLNG, [0]), [float(glat), float(glon)], atol=1.5e-6)
        names = _walk_query(mp, "106.41,29.45", 2)
        assert names == [fac.loc[2, "name"], fac.loc[7, "name"]]
        assert "9.0" in mp.page.inner_text(".tuoyu-walk-list")
        url = urlparse(mp.api_calls[-1])
        assert url.path == "/api/areas/synth/nearest"
        assert parse_qs(url.query) == {
            "lon": ["106.410000"], "lat": ["29.450000"], "crs": ["gcj02"], "minutes": ["15"],
        }  # fmt: skip
        mp.switch_basemap("OpenStreetMap")
        mp.page.wait_for_function("() => tuoyu.last.datum === 'wgs84'")
        _walk_query(mp, "106.42,29.46", 2)
        assert parse_qs(urlparse(mp.api_calls[-1]).query)["crs"] == ["wgs84"]
        mp.check_clean()
    finally:
        mp.close()


# --- the real Dongcheng layers ----------------------------------------------------------------


def test_facility_map_dongcheng(browser: Any, data_dir: Path, tmp_path: Path) -> None:
    case = dongcheng_case(data_dir)
    fac = case["facilities"]
    path = save_map(build_facility_map(fac, area_name="北京市东城区"), tmp_path / "facilities.html")
    raw = json.loads((data_dir / "beijing-dongcheng" / "kindergartens.geojson").read_text("utf-8"))
    file_gcj = np.array([f["geometry"]["coordinates"][:2] for f in raw["features"]], dtype=float)
    mp = MapPage(browser, path)
    try:
        assert mp.js("() => tuoyu.last.facContainer.getLayers().length") == len(fac) == 64
        all_latlng = "() => tuoyu.last.facMarkers.map(m => [m.getLatLng().lng, m.getLatLng().lat])"
        on_osm = np.array(mp.js(all_latlng))
        assert np.allclose(on_osm, fac[["lon", "lat"]].to_numpy(dtype=float), atol=1e-6)
        mp.screenshot("facilities_dongcheng_osm.png")
        mp.switch_basemap("高德地图")
        mp.page.wait_for_function("() => tuoyu.last.datum === 'gcj02'")
        on_amap = np.array(mp.js(all_latlng))
        # the file's own GCJ-02 coordinates: GCJ-02 → WGS84 (loader) → GCJ-02 (map) round trip
        nearest = np.abs(on_amap[:, None, :] - file_gcj[None, :, :]).max(axis=2).min(axis=1)
        assert nearest.max() < 2e-6
        assert np.abs(on_amap - on_osm).max() > 0.005  # Amap really moved them (~600 m)
        mp.screenshot("facilities_dongcheng_amap.png")
        mp.check_clean()
    finally:
        mp.close()


def test_dashboard_dongcheng(browser: Any, data_dir: Path, tmp_path: Path) -> None:
    case = dongcheng_case(data_dir)
    m = build_dashboard_map(
        case["unit_layer"], case["profile"], case["summary"], area_name="北京市东城区"
    )
    path = save_map(m, tmp_path / "dashboard.html")
    cfg = page_config(path.read_text(encoding="utf-8"))
    mp = MapPage(browser, path)
    try:
        paths = "() => document.querySelectorAll('.leaflet-overlay-pane path.leaflet-interactive').length"
        assert mp.js(paths) == 17
        red = mp.page.locator('.leaflet-overlay-pane path[stroke="#d7191c"]')
        assert red.count() == len(cfg["failing"]) >= 1
        failing_name = case["table"].set_index("code").loc[cfg["failing"][0], "name"]
        box = red.first.bounding_box()
        mp.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        mp.page.wait_for_selector(".leaflet-tooltip")
        assert failing_name in mp.page.inner_text(".leaflet-tooltip")
        assert "全区情况" in mp.page.inner_text(".tuoyu-summary")
        assert "京政办发〔2023〕6号" in mp.page.inner_text(".tuoyu-legend")
        mp.screenshot("dashboard_dongcheng.png")
        first = "() => { const l = tuoyu.last.layers.units.layer.getLayers()[0]; const r = l.getLatLngs()[0]; const p = Array.isArray(r[0]) ? r[0][0] : r[0]; return [p.lng, p.lat]; }"
        wgs_first = mp.js(first)
        mp.switch_basemap("高德地图")
        mp.page.wait_for_function("() => tuoyu.last.datum === 'gcj02'")
        glon, glat = convert(wgs_first[0], wgs_first[1], "wgs84", "gcj02")
        assert np.allclose(mp.js(first), [float(glon), float(glat)], atol=2e-6)
        assert mp.js(paths) == 17
        mp.check_clean()
    finally:
        mp.close()


def test_gap_map_dongcheng(browser: Any, data_dir: Path, tmp_path: Path) -> None:
    case = dongcheng_case(data_dir)
    m = build_gap_map(
        case["population"], case["gaps"], case["sites"], case["site_iso"],
        facilities=case["facilities"], units=case["units"], threshold_m=GAP_THRESHOLD_M,
        area_name="北京市东城区",
    )  # fmt: skip
    path = save_map(m, tmp_path / "gaps.html")
    counts = page_config(path.read_text(encoding="utf-8"))["counts"]
    mp = MapPage(browser, path)
    try:
        layer_count = "(k) => tuoyu.last.layers[k].layer.getLayers().length"
        for key in ("units", "gaps", "site_isochrones"):
            assert mp.js(layer_count, key) == counts[key], key
        # one thematic layer at a time: the gap zones first; the hexagons are read only
        # when switched on
        assert mp.js(layer_count, "uncovered") == 0
        # 街道 outlines (SVG, no clicks) over the zones (one canvas)
        outlines = "() => document.querySelectorAll('.leaflet-tuoyuContext-pane path').length"
        assert mp.js(outlines) == counts["units"]
        assert (
            mp.js("() => document.querySelectorAll('.leaflet-tuoyuThematic-pane canvas').length")
            == 1
        )
        assert mp.js("() => document.querySelectorAll('.tuoyu-site').length") == 3 + 1  # + legend
        assert (
            mp.js("() => document.querySelectorAll('.leaflet-marker-icon .tuoyu-dot').length") == 64
        )
        mp.screenshot("gaps_dongcheng.png")
        site = "() => { const ll = tuoyu.last.layers.sites.markers[0].getLatLng(); return [ll.lng, ll.lat]; }"
        wgs_site = mp.js(site)
        mp.switch_basemap("高德地图")
        mp.page.wait_for_function("() => tuoyu.last.datum === 'gcj02'")
        glon, glat = convert(wgs_site[0], wgs_site[1], "wgs84", "gcj02")
        assert np.allclose(mp.js(site), [float(glon), float(glat)], atol=2e-6)
        assert mp.js(outlines) == counts["units"]
        assert mp.js(layer_count, "gaps") == counts["gaps"]
        mp.check_clean()
    finally:
        mp.close()


def test_gap_map_points_on_canvas(browser: Any, data_dir: Path, tmp_path: Path) -> None:
    """People outside the walk as points (no zones given): drawn first, in both datums."""
    case = dongcheng_case(data_dir)
    pop = case["population"]
    m = build_gap_map(pop, population_display="points", threshold_m=GAP_THRESHOLD_M)
    path = save_map(m, tmp_path / "gaps_points.html")
    outside = pop[pop["walk_m_all"] > GAP_THRESHOLD_M].to_crs(4326).geometry
    mp = MapPage(browser, path)
    try:
        mp.page.wait_for_function(f"() => tuoyu.last.layers.uncovered.drawn === {len(outside)}")
        first = (
            "() => { const l = tuoyu.last.layers.uncovered.layer.getLayers()"
            ".find(l => l.feature.properties.i === 0); const ll = l.getLatLng();"
            " return [ll.lng, ll.lat, l.options.radius]; }"
        )
        lon5, lat5 = round(float(outside.x.iloc[0]), 5), round(float(outside.y.iloc[0]), 5)
        lng, lat, radius = mp.js(first)
        assert np.allclose([lng, lat], [lon5, lat5], atol=1e-9) and radius == 4
        mp.switch_basemap("高德地图")
        mp.page.wait_for_function("() => tuoyu.last.datum === 'gcj02'")
        glon, glat = convert(lon5, lat5, "wgs84", "gcj02")
        assert np.allclose(mp.js(first)[:2], [float(glon), float(glat)], atol=1.5e-6)
        assert mp.js("() => tuoyu.last.layers.uncovered.drawn") == len(outside)
        mp.check_clean()
    finally:
        mp.close()
