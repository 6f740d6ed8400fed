"""Facility maps at city size: a big registry, and a big walking network's lookup.

A facility map of a big registry opens in Chromium and draws a clicked facility's isochrones.

10,000 synthetic facilities (random points along a synthetic city's streets, not real
places) with three isochrone stand-ins each (circles of 333 / 667 / 1,000 m: this test
is about the page, not the polygons). The page used to embed every polygon twice and
parse its data as one string; now it carries the positions once and reads the
isochrones of a clicked facility from the chunk files beside it. Harness as in
``tests/test_maps_browser.py`` (Debian chromium through playwright, every outside
request aborted); assertions are on the Leaflet state, never on time.

The "walk from here" lookup of a 150,000-node synthetic city (400 random facilities,
real 15-minute reaches) goes beside the page in spatial chunks; the page stays under
:data:`PAGE_LIMIT_BYTES`, reads only the chunks around a point asked, and answers as the
scan over every node it used to embed did (``FULL_SCAN_JS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from tuoyu.crs.china import convert
from tuoyu.outputs.maps import build_facility_map, save_map
from tuoyu.synthetic import SYNTHETIC_CRS, random_facilities, synthetic_city

from tests.test_maps import page_config, page_isochrones, page_walk
from tests.test_maps_browser import (  # noqa: F401  (browser: fixture)
    FULL_SCAN_JS,
    PAGE_ANSWERS_JS,
    MapPage,
    browser,
    full_scan_walk,
    random_queries,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_FACILITIES = 10_000
MINUTES = (5.0, 10.0, 15.0)
WALK_NODES = 150_000
WALK_FACILITIES = 400
PAGE_LIMIT_BYTES = 1_000_000
"""The page with a city's walk lookup beside it (Leaflet inlined, 400 facilities)."""


def _big_registry() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    net = synthetic_city(40_000, seed=11)
    x, y = random_facilities(net, N_FACILITIES, seed=12)
    ids = [f"F{i:05d}" for i in range(N_FACILITIES)]
    facilities = gpd.GeoDataFrame(
        {
            "id": ids,
            "name": [f"合成托育点{i:05d}" for i in range(N_FACILITIES)],
            "kind": ["社区托育点" if i % 2 else "托幼一体" for i in range(N_FACILITIES)],
            "puhui": pd.array([i % 3 != 0 for i in range(N_FACILITIES)], dtype="boolean"),
        },
        geometry=shapely.points(x, y),
        crs=SYNTHETIC_CRS,
    )
    centres = np.repeat(np.asarray(facilities.geometry.array, dtype=object), len(MINUTES))
    radii_m = np.tile([m * 4000.0 / 60.0 for m in MINUTES], N_FACILITIES)
    isochrones = gpd.GeoDataFrame(
        {"facility_id": np.repeat(ids, len(MINUTES)), "minutes": np.tile(MINUTES, N_FACILITIES)},
        geometry=shapely.buffer(centres, radii_m),
        crs=SYNTHETIC_CRS,
    )
    return facilities, isochrones


def test_ten_thousand_facilities_open_and_show_isochrones(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    facilities, isochrones = _big_registry()
    path = save_map(build_facility_map(facilities, isochrones), tmp_path / "facilities.html")
    html = path.read_text(encoding="utf-8")
    cfg = page_config(html)["facilities"]
    assert len(cfg["ids"]) == N_FACILITIES
    assert cfg["isoSource"]["mode"] == "chunks"
    folder = tmp_path / "facilities.isochrones"
    assert len(list(folder.glob("*.js"))) == cfg["isoSource"]["chunks"] > 100
    i = 9_876
    rings = page_isochrones(html, folder)[i]
    assert [r[0] for r in rings] == [5, 10, 15]

    mp = MapPage(browser, path)
    try:
        assert mp.js("() => tuoyu.last.facMarkers.length") == N_FACILITIES
        assert mp.js("() => tuoyu.last.facShown") == N_FACILITIES
        assert mp.js("() => Object.keys(tuoyu.last.isoChunks).length") == 0  # nothing read yet
        mp.js("([i]) => tuoyu.last.facMarkers[i].fire('click')", [i])
        mp.page.wait_for_function("([i]) => tuoyu.last.isoLoaded === i", arg=[i])
        assert mp.js("() => tuoyu.last.isoDrawn") == 3
        assert mp.js("() => tuoyu.last.isoGroup.getLayers().map(l => l.tuoyuMinutes)") == [
            15,
            10,
            5,
        ]
        # only the clicked facility's chunk was read and parsed
        assert mp.js("() => Object.keys(tuoyu.last.isoChunks)") == [str(i // 50)]
        bounds = mp.js(
            "() => { const b = tuoyu.last.isoGroup.getLayers()[0].getBounds();"
            " return [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()]; }"
        )
        expected = shapely.bounds(shapely.from_geojson(_json(rings[-1][1])))
        assert np.allclose(bounds, [expected[1], expected[0], expected[3], expected[2]], atol=2e-6)

        # on Amap the same polygon is drawn in GCJ-02, converted by the page
        mp.switch_basemap("高德地图")
        mp.page.wait_for_function("() => tuoyu.last.datum === 'gcj02'")
        mp.page.wait_for_function("([i]) => tuoyu.last.isoLoaded === i", arg=[i])
        assert mp.js("() => tuoyu.last.isoDrawn") == 3
        lat, lon = cfg["wgs84"][i]
        glon, glat = convert(lon, lat, "wgs84", "gcj02")
        marker = mp.js(
            "([i]) => { const ll = tuoyu.last.facMarkers[i].getLatLng(); return [ll.lat, ll.lng]; }",
            [i],
        )
        assert np.allclose(marker, [float(glat), float(glon)], atol=1.5e-6)
        mp.screenshot("facilities_10000.png")
        mp.check_clean()
    finally:
        mp.close()


def _walk_city() -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.outputs.maps import walk_lookup_from_reaches
    from tuoyu.reach.engine import all_facility_reach

    net = synthetic_city(WALK_NODES, seed=21)
    x, y = random_facilities(net, WALK_FACILITIES, seed=22)
    graph = build_graph(net)
    reaches = all_facility_reach(graph, snap_points(graph, x, y, 300.0), 1000.0)
    ids = [f"W{i:03d}" for i in range(WALK_FACILITIES)]
    facilities = gpd.GeoDataFrame(
        {"id": ids, "name": [f"合成托育点{i:03d}" for i in range(WALK_FACILITIES)]},
        geometry=shapely.points(x, y),
        crs=SYNTHETIC_CRS,
    )
    return facilities, walk_lookup_from_reaches(net, reaches, ids, 4.0)


def test_city_walk_lookup_beside_the_page(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    facilities, lookup = _walk_city()
    path = save_map(build_facility_map(facilities, None, lookup), tmp_path / "facilities.html")
    html = path.read_text(encoding="utf-8")
    assert path.stat().st_size < PAGE_LIMIT_BYTES
    folder = tmp_path / "facilities.layers"
    walk = page_walk(html, folder)
    n_chunks = len(walk["bboxes"])
    assert walk["nodes"] == WALK_NODES and n_chunks == len(list(folder.glob("walk-*.js"))) > 50
    beside = sum(p.stat().st_size for p in folder.glob("walk-*.js"))
    assert beside < 13 * WALK_NODES  # compact: under 13 bytes a node, facilities included
    ids = facilities["id"].tolist()
    full = full_scan_walk(lookup, ids, walk)

    # a point typed as Amap shows it (GCJ-02) on a node several facilities reach
    node = next(j for j, flat in enumerate(walk["reach"]) if len(flat) >= 6)
    lon, lat = walk["lonInt"][node] / walk["scale"], walk["latInt"][node] / walk["scale"]
    glon, glat = (float(v) for v in convert(lon, lat, "wgs84", "gcj02"))
    names = facilities["name"].tolist()
    flat = walk["reach"][node]
    expected = [names[int(flat[k])] for k in range(0, len(flat), 2)]
    mp = MapPage(browser, path)
    try:
        assert mp.js("() => Object.keys(tuoyu.last.walkChunks).length") == 0
        mp.page.fill("input.tuoyu-lonlat", f"{glon:.6f},{glat:.6f}")
        mp.page.click(".tuoyu-walk-form button")
        mp.page.wait_for_function(
            "(n) => document.querySelectorAll('.tuoyu-walk-list li').length === n",
            arg=len(expected),
        )
        shown = mp.js(
            "() => Array.from(document.querySelectorAll('.tuoyu-walk-list li a'))"
            ".map(a => a.textContent)"
        )
        assert shown == expected
        # only the chunks around the point were read (one to four of them)
        loaded = mp.js("() => Object.keys(tuoyu.last.walkChunks).map(Number)")
        assert walk["chunk"][node] in loaded and 1 <= len(loaded) <= 4
        mp.screenshot("facilities_walk_city.png")

        # 200 points on, near and around the network, half typed in GCJ-02: the answers
        # of the full scan over all 150,000 nodes, exactly
        queries = random_queries(lookup, 200, seed=23)
        assert mp.js(PAGE_ANSWERS_JS, [queries]) == mp.js(FULL_SCAN_JS, [full, queries])
        mp.check_clean()
    finally:
        mp.close()


def _json(geometry: dict[str, Any]) -> str:
    import json

    return json.dumps(geometry)
