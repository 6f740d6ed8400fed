"""A city-size gap map: its big layers go beside the page and are read when switched on.

The layers are synthetic (no real place): 30,000 gap zones on a 150 m grid in UTM zone 48N
(around 106.5° E, 29.5° N, where GCJ-02 moves things by ~500 m) — circles of 45 m, every
tenth with a 20 m hole and every tenth (another) made of two small circles — and 80,000
population points, 70 % of them outside the walk, drawn as H3 resolution-10 hexagons.
That is about the gap layers of a 10⁵-node city and a third of the 10⁶-node audit case.

Without a browser: the page stays under :data:`PAGE_LIMIT_BYTES` and its layers are read
back from the files beside it, vertex for vertex. In Chromium (opened from ``file://``,
every outside request aborted, as in ``tests/test_maps_browser.py``): the zones are drawn
from those files on both the OpenStreetMap (WGS84) and the 高德 (GCJ-02) basemaps, holes
and multi-part zones included, at the positions ``tuoyu.crs.china.convert`` gives; the
hexagon layer is read only when switched on, and only the chunks on screen.
"""

from __future__ import annotations

import math
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from tuoyu.crs.china import convert
from tuoyu.outputs.maps import build_gap_map, save_map
from tuoyu.outputs.maps.common import (
    INLINE_LAYER_MAX_BYTES,
    LAYER_CHUNK_FEATURES,
    OSM_ATTRIBUTION,
    display_geometries,
)

from tests.test_maps import page_config, page_layer
from tests.test_maps_browser import MapPage, browser  # noqa: F401  (fixture)

CRS = "EPSG:32648"
X0, Y0 = 650_000.0, 3_260_000.0  # ≈ 106.55° E, 29.46° N
SPACING_M = 150.0
N_ZONES = 30_000
N_POINTS = 80_000
H3_RESOLUTION = 10
THRESHOLD_M = 1000.0
PAGE_LIMIT_BYTES = 1_000_000
"""The page itself (Leaflet and the script inlined, configuration, legends): under 1 MB,
whatever the size of the layers beside it."""


def _kind(i: int) -> str:
    return {3: "hole", 7: "multi"}.get(i % 10, "plain")


@cache
def synthetic_gap_layers() -> dict[str, Any]:
    """Gap zones, population points with walking distances, four 街道 (all synthetic)."""
    rng = np.random.default_rng(16)
    side = math.ceil(math.sqrt(N_ZONES))
    idx = np.arange(N_ZONES)
    cx = X0 + (idx % side) * SPACING_M
    cy = Y0 + (idx // side) * SPACING_M
    centres = np.asarray(shapely.points(cx, cy), dtype=object)
    zones = np.asarray(shapely.buffer(centres, 45.0, quad_segs=8), dtype=object)
    holes = idx % 10 == 3
    zones[holes] = shapely.difference(zones[holes], shapely.buffer(centres[holes], 20.0))
    multi = idx % 10 == 7
    zones[multi] = shapely.union(
        shapely.buffer(shapely.points(cx[multi] - 30.0, cy[multi]), 12.0),
        shapely.buffer(shapely.points(cx[multi] + 30.0, cy[multi]), 12.0),
    )
    people = np.round(rng.lognormal(4.0, 1.0, N_ZONES), 1)
    east = cx >= X0 + side * SPACING_M / 2
    north = cy >= Y0 + (N_ZONES // side) * SPACING_M / 2
    codes = np.where(north, np.where(east, "U4", "U3"), np.where(east, "U2", "U1"))
    gaps = gpd.GeoDataFrame(
        {
            "gap_id": idx + 1,
            "population": people,
            "population_under3": people * 0.015,
            "points": np.ones(N_ZONES, dtype=np.int64),
            "area_m2": shapely.area(zones),
            "unit_codes": codes,
        },
        geometry=zones,
        crs=CRS,
    )
    gaps.attrs["merge_distance_m"] = 150.0
    width, height = side * SPACING_M, (N_ZONES // side + 1) * SPACING_M
    px = X0 + rng.random(N_POINTS) * width
    py = Y0 + rng.random(N_POINTS) * height
    population = gpd.GeoDataFrame(
        {
            "population": rng.integers(1, 30, N_POINTS).astype(float),
            "population_under3": rng.random(N_POINTS),
            "walk_m_all": np.where(rng.random(N_POINTS) < 0.7, np.inf, 400.0),
        },
        geometry=shapely.points(px, py),
        crs=CRS,
    )
    half_w, half_h = width / 2, height / 2
    units = gpd.GeoDataFrame(
        {"code": ["U1", "U2", "U3", "U4"], "name": [f"合成街道{k}" for k in range(1, 5)]},
        geometry=[
            shapely.box(X0 + dx, Y0 + dy, X0 + dx + half_w, Y0 + dy + half_h)
            for dy in (0.0, half_h)
            for dx in (0.0, half_w)
        ],
        crs=CRS,
    )
    return {"gaps": gaps, "population": population, "units": units}


def _build(case: dict[str, Any]) -> Any:
    return build_gap_map(
        case["population"], case["gaps"], units=case["units"], threshold_m=THRESHOLD_M,
        h3_resolution=H3_RESOLUTION, area_name="合成城市 synthetic",
    )  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    case = synthetic_gap_layers()
    folder = tmp_path_factory.mktemp("bigmap")
    (folder / "gaps.layers").mkdir()
    (folder / "gaps.layers" / "gaps-999.js").write_text("stale", encoding="utf-8")
    (folder / "gaps.layers" / "notes.txt").write_text("not ours", encoding="utf-8")
    path = save_map(_build(case), folder / "gaps.html")
    return {"case": case, "path": path, "html": path.read_text(encoding="utf-8")}


@pytest.mark.slow
def test_big_gap_layers_go_beside_the_page(saved: dict[str, Any]) -> None:
    path, html, case = saved["path"], saved["html"], saved["case"]
    gaps = case["gaps"]
    assert path.stat().st_size < PAGE_LIMIT_BYTES
    folder = path.parent / "gaps.layers"
    cfg = page_config(html)
    layers = {g["key"]: g for g in cfg["geojson"]}
    n_zone_chunks = len(layers["gaps"]["chunked"]["bboxes"])
    n_hex_chunks = len(layers["uncovered"]["chunked"]["bboxes"])
    files = sorted(p.name for p in folder.iterdir())
    # every chunk written, the stale chunk removed, a file that is not ours kept
    assert files == sorted(
        [f"gaps-{k}.js" for k in range(n_zone_chunks)]
        + [f"uncovered-{k}.js" for k in range(n_hex_chunks)]
        + ["notes.txt"]
    )
    beside = sum(p.stat().st_size for p in folder.glob("*.js"))
    assert beside > 5 * path.stat().st_size  # the bulk is beside the page, not in it
    assert "tuoyu-layer-" in html and '-dir">"gaps.layers"</script>' in html

    # the zones read back from the files are the display zones at 5 decimals, vertex for
    # vertex, holes and multi-part zones included, each with its rank and people
    zones = page_layer(html, "gaps", folder)
    assert sorted(zones) == list(range(N_ZONES)) and cfg["counts"]["gaps"] == N_ZONES
    shown = display_geometries(gaps, 5.0, 5)
    for i, zone in zones.items():
        assert zone["geometry"].equals_exact(shown[i], 1e-9), i
        assert zone["values"][0] == str(gaps["gap_id"].iloc[i])
        assert zone["values"][1] == round(gaps["population"].iloc[i])
    kinds = {_kind(i): zones[i]["geometry"] for i in range(20)}
    assert len(kinds["hole"].interiors) == 1
    assert kinds["multi"].geom_type == "MultiPolygon" and len(kinds["multi"].geoms) == 2
    # spatial chunks: each holds at most LAYER_CHUNK_FEATURES, and their boxes barely
    # overlap (a zoomed-in view reads few of them)
    per_chunk = np.bincount([z["chunk"] for z in zones.values()])
    assert per_chunk.max() <= LAYER_CHUNK_FEATURES and n_zone_chunks >= N_ZONES / 1000
    boxes = np.array(layers["gaps"]["chunked"]["bboxes"])
    extent = (boxes[:, 2].max() - boxes[:, 0].min()) * (boxes[:, 3].max() - boxes[:, 1].min())
    assert ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum() < 1.1 * extent

    hexes = page_layer(html, "uncovered", folder)
    assert len(hexes) == cfg["counts"]["uncovered"] > 10_000
    outside = case["population"]["walk_m_all"] > THRESHOLD_M
    shown_people = sum(h["values"][0] for h in hexes.values())
    assert abs(shown_people - case["population"]["population"][outside].sum()) <= 0.5 * len(hexes)

    # WGS84 only for the big layers; the small 街道 layer keeps its GCJ-02 copy
    assert set(layers["gaps"]) >= {"chunked", "styles", "columns"}
    assert "wgs84" not in layers["gaps"] and "gcj02" not in layers["uncovered"]
    assert len(layers["units"]["gcj02"]) == 4
    # sources credited, legends kept (one per thematic layer)
    assert cfg["attributions"][0] == OSM_ATTRIBUTION
    legend = next(c["html"] for c in cfg["controls"] if c["cls"] == "tuoyu-legend")
    assert f"{N_ZONES:,} 片" in legend and "H3 第10级" in legend
    assert 'data-tuoyu-layer="gaps"' in legend and 'data-tuoyu-layer="uncovered"' in legend


@pytest.mark.slow
def test_small_layers_stay_inside_a_resaved_page(saved: dict[str, Any], tmp_path: Path) -> None:
    """Saving a small gap map over a big one removes the big one's files."""
    case = saved["case"]
    big = tmp_path / "gaps.html"
    shutil.copy(saved["path"], big)
    shutil.copytree(saved["path"].parent / "gaps.layers", tmp_path / "gaps.layers")
    (tmp_path / "gaps.layers" / "notes.txt").unlink()
    assert len(list((tmp_path / "gaps.layers").glob("*.js"))) > 10
    small = build_gap_map(
        case["population"].iloc[:500], case["gaps"].iloc[:200], threshold_m=THRESHOLD_M
    )
    save_map(small, big)
    assert not (tmp_path / "gaps.layers").exists()
    html = big.read_text(encoding="utf-8")
    assert len(page_layer(html, "gaps")) == 200  # read from inside the page
    assert len(html.encode("utf-8")) < INLINE_LAYER_MAX_BYTES * 2 + PAGE_LIMIT_BYTES
    assert [p.name for p in tmp_path.iterdir()] == ["gaps.html"]  # no temporary file left


# --- in Chromium -------------------------------------------------------------------------------

DRAWN = "(k) => tuoyu.last.layers[k].drawn"
LOADED = "(k) => tuoyu.last.layers[k].loadedChunks()"
# rings of feature i as drawn: [[lng, lat], ...] per ring (Leaflet leaves out the closing vertex)
DRAWN_RINGS = """([k, i]) => {
  const l = tuoyu.last.layers[k].layer.getLayers().find(l => l.feature.properties.i === i);
  const conv = (a) => Array.isArray(a) ? a.map(conv) : [a.lng, a.lat];
  return conv(l.getLatLngs());
}"""
# alpha of the thematic canvas at a [lat, lng] of the basemap's datum
ALPHA_AT = """async ([lat, lng]) => {
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const st = tuoyu.last, m = st.map, c = st.thematicRenderer._container;
  const p = m.latLngToContainerPoint([lat, lng]);
  const mr = m.getContainer().getBoundingClientRect(), cr = c.getBoundingClientRect();
  const x = Math.round((mr.left + p.x - cr.left) * c.width / cr.width);
  const y = Math.round((mr.top + p.y - cr.top) * c.height / cr.height);
  return c.getContext('2d').getImageData(x, y, 1, 1).data[3];
}"""
SET_VIEW = """async ([lat, lng, zoom]) => {
  tuoyu.last.map.setView([lat, lng], zoom, {animate: false});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
}"""


def _rings(geom: Any) -> list[np.ndarray]:
    """Rings of a (multi)polygon without their closing vertex, as Leaflet keeps them."""
    polys = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
    return [np.asarray(ring.coords)[:-1] for p in polys for ring in [p.exterior, *p.interiors]]


def _flat_rings(drawn: list[Any]) -> list[np.ndarray]:
    """Leaflet's nested [lng, lat] rings flattened to a list of (n, 2) arrays."""
    out: list[np.ndarray] = []
    for item in drawn:
        arr = np.asarray(item, dtype=float) if item and isinstance(item[0][0], float) else None
        if arr is not None and arr.ndim == 2:
            out.append(arr)
        else:
            out.extend(_flat_rings(item))
    return out


def _gcj(lonlat: np.ndarray) -> np.ndarray:
    lon, lat = convert(lonlat[:, 0], lonlat[:, 1], "wgs84", "gcj02")
    return np.column_stack([lon, lat])


def _centre_lonlat(i: int) -> tuple[float, float]:
    side = math.ceil(math.sqrt(N_ZONES))
    x = X0 + (i % side) * SPACING_M
    y = Y0 + (i // side) * SPACING_M
    pt = gpd.GeoSeries([shapely.Point(x, y)], crs=CRS).to_crs(4326)
    return float(pt.x.iloc[0]), float(pt.y.iloc[0])


def _ring_lonlat(i: int) -> tuple[float, float]:
    side = math.ceil(math.sqrt(N_ZONES))
    x = X0 + (i % side) * SPACING_M + 32.0
    y = Y0 + (i // side) * SPACING_M
    pt = gpd.GeoSeries([shapely.Point(x, y)], crs=CRS).to_crs(4326)
    return float(pt.x.iloc[0]), float(pt.y.iloc[0])


@pytest.mark.browser
@pytest.mark.slow
def test_gap_layers_drawn_from_files_on_both_basemaps(
    browser: Any,  # noqa: F811
    saved: dict[str, Any],
) -> None:
    path, html = saved["path"], saved["html"]
    folder = path.parent / "gaps.layers"
    zones = page_layer(html, "gaps", folder)
    hexes = page_layer(html, "uncovered", folder)
    cfg = page_config(html)
    n_zone_chunks = len(next(g for g in cfg["geojson"] if g["key"] == "gaps")["chunked"]["bboxes"])
    hex_boxes = np.array(
        next(g for g in cfg["geojson"] if g["key"] == "uncovered")["chunked"]["bboxes"]
    )
    side = math.ceil(math.sqrt(N_ZONES))
    middle = (N_ZONES // side // 2) * side + side // 2
    hole = middle - middle % 10 + 3  # a zone with a hole near the middle of the city
    multi = hole + 4  # a zone of two parts
    assert _kind(hole) == "hole" and _kind(multi) == "multi"

    mp = MapPage(browser, path)
    try:
        # the zones (shown first) are read from the files beside the page: all of them,
        # since the whole city is on screen; the hexagons are not read while off
        mp.page.wait_for_function(f"() => ({DRAWN})('gaps') === {N_ZONES}")
        assert mp.js(LOADED, "gaps") == list(range(n_zone_chunks))
        assert mp.js(DRAWN, "uncovered") == 0 and mp.js(LOADED, "uncovered") == []
        mp.screenshot("gaps_bigcity_zones.png")

        # OpenStreetMap: drawn in WGS84, vertex for vertex as in the files
        for i in (hole, multi):
            drawn = _flat_rings(mp.js(DRAWN_RINGS, ["gaps", i]))
            expected = _rings(zones[i]["geometry"])
            assert len(drawn) == len(expected) == 2  # outer + hole, or two parts
            for got, want in zip(drawn, expected, strict=True):
                np.testing.assert_allclose(got, want, atol=1e-9)
        lon, lat = _centre_lonlat(hole)
        rlon, rlat = _ring_lonlat(hole)
        mp.js(SET_VIEW, [lat, lon, 18])
        assert mp.js(ALPHA_AT, [lat, lon]) == 0  # the hole is empty
        assert mp.js(ALPHA_AT, [rlat, rlon]) > 100  # the ring around it is filled
        mp.screenshot("gaps_bigcity_hole_osm.png")

        # a tooltip through the 街道 outlines above the canvas
        xy = mp.js(
            "([lat, lng]) => { const m = tuoyu.last.map; const p = m.latLngToContainerPoint([lat, lng]);"
            " const r = m.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }",
            [rlat, rlon],
        )
        mp.page.mouse.move(xy[0], xy[1])
        mp.page.wait_for_selector(".leaflet-tooltip")
        tip = mp.page.inner_text(".leaflet-tooltip")
        assert "缺口区排名" in tip and str(hole + 1) in tip
        people = zones[hole]["values"][1]
        assert f"{people:,}" in tip and "合成街道" in tip
        mp.page.mouse.move(5, 400)

        # 高德 (GCJ-02): the same zones, converted by the page, where chinacrs puts them
        mp.switch_basemap("高德地图")
        mp.page.wait_for_function("() => tuoyu.last.datum === 'gcj02'")
        assert mp.js(DRAWN, "gaps") == N_ZONES
        for i in (hole, multi):
            drawn = _flat_rings(mp.js(DRAWN_RINGS, ["gaps", i]))
            expected = _rings(zones[i]["geometry"])
            for got, want in zip(drawn, expected, strict=True):
                np.testing.assert_allclose(got, _gcj(want), atol=1.5e-6)
                assert np.abs(got - want).max() > 0.002  # really moved (≈ 500 m)
        (glon, glat), (grlon, grlat) = _gcj(np.array([[lon, lat], [rlon, rlat]]))
        mp.js(SET_VIEW, [glat, glon, 18])
        assert mp.js(ALPHA_AT, [glat, glon]) == 0
        assert mp.js(ALPHA_AT, [grlat, grlon]) > 100
        mp.screenshot("gaps_bigcity_hole_amap.png")

        # switch the hexagons on while zoomed in: only the chunks on screen are read
        mp.page.locator(
            ".leaflet-control-layers-overlays label", has_text="15分钟步行范围外人口"
        ).click()
        mp.page.wait_for_function(f"() => ({DRAWN})('uncovered') > 0")
        mp.page.wait_for_function(
            "() => Object.keys(tuoyu.last.layers.uncovered.loading).length === 0"
        )
        assert not mp.js("() => tuoyu.last.map.hasLayer(tuoyu.last.layers.gaps.layer)")
        south, west, north, east = mp.js(
            "() => { const b = tuoyu.last.map.getBounds().pad(0.25);"
            " return [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()]; }"
        )
        (w, s), (e, n) = np.column_stack(
            convert(np.array([west, east]), np.array([south, north]), "gcj02", "wgs84")
        )
        on_screen = [
            k
            for k, (bw, bs, be, bn) in enumerate(hex_boxes)
            if not (bw > e or be < w or bs > n or bn < s)
        ]
        loaded = mp.js(LOADED, "uncovered")
        assert loaded == on_screen and 0 < len(loaded) < len(hex_boxes)
        in_view = [i for i, h in hexes.items() if h["chunk"] in loaded]
        assert mp.js(DRAWN, "uncovered") == len(in_view)
        i = in_view[0]
        drawn = _flat_rings(mp.js(DRAWN_RINGS, ["uncovered", i]))
        (want,) = _rings(hexes[i]["geometry"])
        np.testing.assert_allclose(drawn[0], _gcj(want), atol=1.5e-6)
        mp.screenshot("gaps_bigcity_hexagons_amap.png")

        # zoomed out, the rest is read; back on OpenStreetMap, WGS84 again
        mp.js("() => { tuoyu.last.map.fitBounds(tuoyu.last.cfg.bounds, {animate: false}); }")
        mp.page.wait_for_function(f"(n) => ({DRAWN})('uncovered') === n", arg=len(hexes))
        mp.switch_basemap("OpenStreetMap")
        mp.page.wait_for_function("() => tuoyu.last.datum === 'wgs84'")
        assert mp.js(DRAWN, "uncovered") == len(hexes)
        drawn = _flat_rings(mp.js(DRAWN_RINGS, ["uncovered", i]))
        np.testing.assert_allclose(drawn[0], want, atol=1e-9)
        assert mp.js("() => tuoyu.last.layers.uncovered.errors") == []
        mp.screenshot("gaps_bigcity_hexagons.png")
        mp.check_clean()
    finally:
        mp.close()
