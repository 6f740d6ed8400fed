"""The HTML maps without a browser: embedded data, both datums, labels, sizes, errors.

Fixtures: a small synthetic city (real reach, isochrones and walk lookup) and the real
Dongcheng layers (街道, kindergartens, population grid) with indicators from
``tuoyu.indicators.summary``. Dongcheng has no walking network, so the gap-map test uses a
straight-line stand-in for walking distances (1.3 × straight line), named as such.
The builders are shared with ``tests/test_maps_browser.py``.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.spatial import cKDTree
from shapely.geometry import mapping
from tuoyu.crs.china import convert
from tuoyu.errors import CRSError, InputValidationError
from tuoyu.indicators.targets import Profile, Target, load_profile
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.outputs.maps import (
    OSM_ATTRIBUTION,
    build_dashboard_map,
    build_facility_map,
    build_gap_map,
    facility_popup,
    hexagon_people,
    save_map,
    uncovered_points,
    walk_lookup_from_reaches,
)
from tuoyu.outputs.maps.basemaps import basemaps
from tuoyu.outputs.maps.common import (
    GCJ02_EMBED_MAX_COORDS,
    MAX_MAP_BYTES,
    display_geometries,
    dual_geojson,
    dual_latlng,
    encode_geometries,
)
from tuoyu.outputs.maps.dashboard_map import FAIL_OUTLINE, choose_indicator
from tuoyu.types import LocalReach

KINDS = [
    "托幼一体",
    "社区托育点",
    "用人单位办托",
    "社会力量办托",
    "综合托育服务中心",
    "家庭托育点",
    "照护驿站",
]
N_SYNTH = 12
SYNTH_MINUTES = (5, 10, 15)
STAND_IN_DETOUR = 1.3
"""Dongcheng has no walking network: walking distance stand-in = 1.3 × straight line."""
GAP_THRESHOLD_M = 1000.0


# --- shared builders (also used by the browser tests) ---------------------------------------


@cache
def synthetic_case() -> dict[str, Any]:
    """12 facilities on a 600-node synthetic city with real isochrones and walk lookup."""
    from tuoyu.isochrones.exact import facility_isochrones
    from tuoyu.network.graph import build_graph
    from tuoyu.network.snap import snap_points
    from tuoyu.reach.engine import all_facility_reach
    from tuoyu.synthetic import SYNTHETIC_CRS, random_facilities, synthetic_city

    net = synthetic_city(600, seed=3)
    graph = build_graph(net)
    x, y = random_facilities(net, N_SYNTH, seed=4)
    snapped = snap_points(graph, x, y, 300.0)
    reaches = all_facility_reach(graph, snapped, 1000.0)
    ids = [f"F{i:02d}" for i in range(N_SYNTH)]
    iso = facility_isochrones(net, reaches, ids, SYNTH_MINUTES, 4.0, points=snapped)
    lookup = walk_lookup_from_reaches(net, reaches, ids, 4.0)
    facilities = gpd.GeoDataFrame(
        {
            "id": ids,
            "name": [None if i == 5 else f"测试托育园{i}" for i in range(N_SYNTH)],
            "address": [f"测试路{i}号" for i in range(N_SYNTH)],
            "kind": [KINDS[i % len(KINDS)] for i in range(N_SYNTH)],
            "puhui": pd.array(
                [[True, False, None][i % 3] for i in range(N_SYNTH)], dtype="boolean"
            ),
            "ownership": ["公办" if i % 2 else "民办" for i in range(N_SYNTH)],
            "slots_infant": pd.array([0 if i % 2 else 10 for i in range(N_SYNTH)], dtype="Int64"),
            "slots_toddler": pd.array([20] * N_SYNTH, dtype="Int64"),
            "slots_preschool": pd.array([None] * N_SYNTH, dtype="Int64"),
            "slots": pd.array([None] * N_SYNTH, dtype="Int64"),
            "service_modes": ["全日托、计时托"] * N_SYNTH,
            "assumed_fields": ["ownership" if i == 0 else "" for i in range(N_SYNTH)],
        },
        geometry=shapely.points(x, y),
        crs=SYNTHETIC_CRS,
    )
    return {"net": net, "facilities": facilities, "isochrones": iso, "lookup": lookup}


@cache
def dongcheng_case(data_dir: Path) -> dict[str, Any]:
    """The real Dongcheng layers, indicators, and a straight-line gap stand-in."""
    from tuoyu.config.study_area import load_area
    from tuoyu.indicators.gaps import uncovered_areas
    from tuoyu.indicators.summary import district_summary, unit_table
    from tuoyu.layers.facilities import load_facilities
    from tuoyu.layers.population import dasymetric_points, load_weight_points, read_unit_totals
    from tuoyu.layers.units import load_units

    area = load_area("beijing-dongcheng")
    folder = data_dir / "beijing-dongcheng"
    units = load_units(folder / "jiedao.geojson", crs="gcj02")
    facilities = load_facilities(
        folder / "kindergartens.geojson",
        crs="gcj02",
        defaults={"puhui": True},
        value_map={"kind": {"幼儿园": "托幼一体"}},
        metric_crs=units.crs,
    ).facilities
    weights = load_weight_points(
        folder / "population_grid.geojson", crs="gcj02", metric_crs=units.crs
    )
    totals = read_unit_totals(folder / "jiedao_stats.csv", "code", "registered_population")
    population = dasymetric_points(
        weights, units, totals, district_total=708829, under3_share=0.015
    )
    profile = load_profile("beijing-2025-core")
    kwargs: dict[str, Any] = {"profile": profile, "threshold_m": 1000.0, "speed_kmh": 4.0}
    table = unit_table(units, facilities, population, None, None, **kwargs)
    summary = district_summary(
        units, facilities, population, None, None, table=table, area=area, **kwargs
    )
    unit_layer = units[["geometry"]].join(table)
    tree = cKDTree(np.column_stack([facilities.geometry.x, facilities.geometry.y]))
    dist, _ = tree.query(np.column_stack([population.geometry.x, population.geometry.y]))
    population = population.assign(walk_m_all=STAND_IN_DETOUR * dist)
    gaps = uncovered_areas(
        population, population["walk_m_all"].to_numpy(), threshold_m=GAP_THRESHOLD_M
    )
    top = gaps.sort_values("population", ascending=False).head(3)
    sites = gpd.GeoDataFrame(
        {
            "rank": [1, 2, 3],
            "added_population": top["population"].to_numpy(),
            "cumulative_share": np.cumsum(top["population"].to_numpy()) / gaps["population"].sum(),
        },
        geometry=top.geometry.representative_point().to_numpy(),
        crs=units.crs,
    )
    # hand-made circles standing in for the sites' isochrones (5/10/15 min at 4 km/h)
    site_iso = gpd.GeoDataFrame(
        {
            "rank": np.repeat([1, 2, 3], 3),
            "minutes": np.tile([5.0, 10.0, 15.0], 3),
        },
        geometry=[p.buffer(r) for p in sites.geometry for r in (333.3, 666.7, 1000.0)],
        crs=units.crs,
    )
    return {
        "area": area,
        "units": units,
        "unit_layer": unit_layer,
        "facilities": facilities,
        "population": population,
        "table": table,
        "summary": summary,
        "profile": profile,
        "gaps": gaps,
        "sites": sites,
        "site_iso": site_iso,
    }


_DATA_RE = re.compile(r'<script type="application/json" id="tuoyu-data-[^"]+">(.*?)</script>', re.S)


def page_config(html: str) -> dict[str, Any]:
    """The configuration JSON embedded in a map page."""
    found = _DATA_RE.findall(html)
    assert len(found) == 1
    config: dict[str, Any] = json.loads(found[0])
    return config


_CHUNK_RE = re.compile(
    r'<script type="application/json" id="tuoyu-chunk-[^"]+-(\d+)">(.*?)</script>', re.S
)
_CREDIT = r"/\* tuoyu-coverage map data\. © OpenStreetMap contributors[^\n]* \*/\n"
_CHUNK_FILE_RE = re.compile(rf"^{_CREDIT}tuoyu\.isoChunk\(\"[^\"]+\", (\d+), (.*)\);\n$", re.S)


def page_isochrones(html: str, folder: Path | None = None) -> dict[int, list[list[Any]]]:
    """Facility index → ``[[minutes, WGS84 GeoJSON geometry], ...]`` of a facility map's chunks.

    The chunks hold compact integer geometry (decoded here by :func:`decode_geometry`).

    Read from the JSON elements inside the page, or, for a page saved with
    :func:`save_map`, from the chunk scripts in ``folder`` beside it.
    """
    out: dict[int, list[list[Any]]] = {}
    texts: list[str] = [text for _, text in _CHUNK_RE.findall(html)]
    if folder is not None:
        assert not texts, "a saved page reads its chunks from files"
        for path in sorted(folder.glob("*.js"), key=lambda p: int(p.stem)):
            found = _CHUNK_FILE_RE.match(path.read_text(encoding="utf-8"))
            assert found is not None and int(found.group(1)) == int(path.stem)
            texts.append(found.group(2))
    scale = page_config(html)["facilities"]["isoSource"]["scale"] if texts else 1
    for text in texts:
        for k, rings in json.loads(text).items():
            out[int(k)] = [
                [minutes, None if enc is None else mapping(decode_geometry("polygon", enc, scale))]
                for minutes, enc in rings
            ]
    return out


_LAYER_RE = re.compile(
    r'<script type="application/json" id="tuoyu-layer-[^"]+?-([A-Za-z0-9_]+)-(\d+)">(.*?)</script>',
    re.S,
)
_LAYER_FILE_RE = re.compile(
    rf'^{_CREDIT}tuoyu\.dataChunk\("tuoyu-layer-[^"]+-([A-Za-z0-9_]+)", (\d+), (.*)\);\n$', re.S
)


def decode_geometry(kind: str, enc: Any, scale: int) -> Any:
    """A compact chunked-layer geometry (``common.encode_geometries``) as shapely, WGS84.

    Written here from the format's description, apart from the page's own decoder.
    """
    if kind == "point":
        return shapely.Point(enc[0] / scale, enc[1] / scale)
    polygons = []
    origin = np.zeros(2, dtype=np.int64)  # the previous ring's first vertex (0, 0 at first)
    for rings in enc:
        shells = []
        for flat in rings:
            steps = np.asarray(flat, dtype=np.int64).reshape(-1, 2)
            steps[:1] += origin  # a ring starts from the previous ring's start
            xy = np.cumsum(steps, axis=0)
            if xy.shape[0]:
                origin = xy[0]
            shells.append(xy / scale)
        polygons.append(shapely.Polygon(shells[0], shells[1:]))
    return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)


def page_layer(html: str, key: str, folder: Path | None = None) -> dict[int, dict[str, Any]]:
    """Feature row → ``{"geometry", "class", "values", "chunk"}`` of a chunked layer.

    Read from the JSON elements inside the page, or, when its data was written beside
    it, from the chunk scripts ``<folder>/<key>-<k>.js``.
    """
    spec = next(g for g in page_config(html)["geojson"] if g["key"] == key)
    chunked = spec["chunked"]
    texts = {int(k): t for name, k, t in _LAYER_RE.findall(html) if name == key}
    if folder is not None and not texts:
        for path in folder.glob(f"{key}-*.js"):
            found = _LAYER_FILE_RE.match(path.read_text(encoding="utf-8"))
            assert found is not None and found.group(1) == key
            assert path.name == f"{key}-{found.group(2)}.js"
            texts[int(found.group(2))] = found.group(3)
    assert sorted(texts) == list(range(len(chunked["bboxes"]))), key
    out: dict[int, dict[str, Any]] = {}
    for k, text in texts.items():
        data = json.loads(text)
        for i, g, c, v in zip(data["i"], data["g"], data["c"], data["v"], strict=True):
            assert i not in out
            geom = decode_geometry(chunked["kind"], g, chunked["scale"])
            west, south, east, north = chunked["bboxes"][k]
            gx0, gy0, gx1, gy1 = geom.bounds
            assert west <= gx0 and south <= gy0 and gx1 <= east and gy1 <= north
            out[i] = {"geometry": geom, "class": c, "values": v, "chunk": k}
    assert len(out) == chunked["features"]
    return out


def page_walk(html: str, folder: Path | None = None) -> dict[str, Any]:
    """The "walk from here" lookup of a facility map, read back from its chunks.

    Decoded here from the format's description (``facility_map._walk_config``), apart
    from the page's own decoder. Returns, per row of the written lookup (its nodes
    renumbered in the order written, chunk after chunk), ``lonInt``/``latInt`` (WGS84
    in units of ``1 / scale`` degrees), ``reach`` (flat ``[facility index, minutes,
    ...]``, shortest walk first as the page lists them) and the chunk of the row.
    """
    walk = page_config(html)["walk"]
    texts = {int(k): t for name, k, t in _LAYER_RE.findall(html) if name == "walk"}
    if folder is not None and not texts:
        for path in folder.glob("walk-*.js"):
            found = _LAYER_FILE_RE.match(path.read_text(encoding="utf-8"))
            assert found is not None and found.group(1) == "walk"
            assert path.name == f"walk-{found.group(2)}.js"
            texts[int(found.group(2))] = found.group(3)
    assert sorted(texts) == list(range(len(walk["bboxes"])))
    n = walk["nodes"]
    lon_i: list[int | None] = [None] * n
    lat_i: list[int | None] = [None] * n
    reach: list[list[float]] = [[] for _ in range(n)]
    chunk_of: list[int] = [-1] * n
    for k, text in texts.items():
        data = json.loads(text)
        assert sorted(data) == ["f", "n", "t", "x", "y"]  # no row numbers: the order is
        west, south, east, north = walk["bboxes"][k]
        first = walk["rowStarts"][k]
        size = len(data["x"])
        assert size == len(data["y"]) and first + size <= n
        assert first + size == (walk["rowStarts"] + [n])[k + 1]
        xs = west + np.cumsum(data["x"])
        ys = south + np.cumsum(data["y"])
        assert xs.min() == west and xs.max() == east and ys.min() == south and ys.max() == north
        counts = data["n"] + [0] * (size - len(data["n"]))  # reached nodes first
        assert all(c > 0 for c in data["n"])
        ends = np.cumsum(counts)
        assert len(data["f"]) == len(data["t"]) == (ends[-1] if size else 0)
        for j in range(size):
            row = first + j
            assert chunk_of[row] == -1
            chunk_of[row] = k
            lon_i[row], lat_i[row] = int(xs[j]), int(ys[j])
            lo = ends[j] - counts[j]
            facs = np.cumsum(data["f"][lo : ends[j]]).tolist()
            assert facs == sorted(set(facs))
            pairs = sorted(zip(data["t"][lo : ends[j]], facs, strict=True))
            reach[row] = [v for t, f in pairs for v in (f, t / 10)]
    assert -1 not in chunk_of
    return {**walk, "lonInt": lon_i, "latInt": lat_i, "reach": reach, "chunk": chunk_of}


def lookup_rows_written(walk: dict[str, Any], lookup: pd.DataFrame) -> list[int]:
    """The lookup row of each written row of :func:`page_walk`, matched by place.

    Of nodes in one place (positions rounded to ``1 / scale``), those some facility
    reaches are written first, then the others, each in lookup order (the rule that
    decides which of them a tie picks).
    """
    scale = walk["scale"]
    lon = np.round(lookup["lon"].to_numpy() * scale).astype(np.int64).tolist()
    lat = np.round(lookup["lat"].to_numpy() * scale).astype(np.int64).tolist()
    reached = [len(items) > 0 for items in lookup["facilities"]]
    at: dict[tuple[int, int], list[int]] = {}
    for row in sorted(range(len(lookup)), key=lambda r: (not reached[r], r)):
        at.setdefault((lon[row], lat[row]), []).append(row)
    out = [at[(x, y)].pop(0) for x, y in zip(walk["lonInt"], walk["latInt"], strict=True)]
    assert not any(at.values())
    return out


def render(m: Any) -> str:
    return str(m.get_root().render())


def all_coords(geom: dict[str, Any]) -> np.ndarray:
    """Every coordinate pair of a GeoJSON geometry, (n, 2)."""
    return np.array(shapely.get_coordinates(shapely.from_geojson(json.dumps(geom))))


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth() -> dict[str, Any]:
    return synthetic_case()


@pytest.fixture(scope="module")
def dongcheng(data_dir: Path) -> dict[str, Any]:
    return dongcheng_case(data_dir)


# --- display geometry -----------------------------------------------------------------------


def test_dual_geojson_point_matches_chinacrs() -> None:
    g = gpd.GeoDataFrame(geometry=[shapely.Point(116.397, 39.909)], crs=4326)
    (wgs,), gcj_layer = dual_geojson(g)
    assert gcj_layer is not None  # a small layer carries its GCJ-02 copy
    (gcj,) = gcj_layer
    assert wgs is not None and gcj is not None
    lon, lat = convert(116.397, 39.909, "wgs84", "gcj02")
    assert wgs["coordinates"] == [116.397, 39.909]
    assert gcj["coordinates"] == [round(float(lon), 6), round(float(lat), 6)]
    # the offset in Beijing is hundreds of metres, not nothing
    assert abs(gcj["coordinates"][0] - 116.397) > 0.003


def test_display_geometries_simplify_in_metres_and_round() -> None:
    circle = gpd.GeoDataFrame(geometry=[shapely.Point(450000, 4420000).buffer(500, 64)], crs=32650)
    full = display_geometries(circle, 0.0)
    simple = display_geometries(circle, 20.0)
    n_full = shapely.get_num_coordinates(full)[0]
    n_simple = shapely.get_num_coordinates(simple)[0]
    assert n_full == 257 and n_simple < n_full / 3
    coords = shapely.get_coordinates(simple)
    assert np.allclose(coords, np.round(coords, 6), rtol=0, atol=1e-12)
    # the tolerance is in metres: the display shape stays within 20 m of the original
    back = gpd.GeoSeries(simple, crs=4326).to_crs(32650)
    assert shapely.hausdorff_distance(back.iloc[0], circle.geometry.iloc[0]) <= 20.5


def test_gcj02_copy_only_for_small_layers() -> None:
    # 20 circles of 2,049 vertices (1 km across) in Beijing, UTM 50N
    circles = gpd.GeoDataFrame(
        geometry=[shapely.Point(450000 + 3000 * k, 4420000).buffer(500, 512) for k in range(20)],
        crs=32650,
    )
    n_coords = int(shapely.get_num_coordinates(display_geometries(circles, 0.0)).sum())
    assert n_coords > GCJ02_EMBED_MAX_COORDS
    wgs, gcj = dual_geojson(circles, 0.0)
    assert len(wgs) == 20 and gcj is None  # big: the page converts it
    wgs_small, gcj_small = dual_geojson(circles.iloc[:2], 0.0)
    assert gcj_small is not None and len(gcj_small) == 2
    first_wgs, first_gcj = wgs_small[0], gcj_small[0]
    assert first_wgs is not None and first_gcj is not None
    a, b = all_coords(first_wgs), all_coords(first_gcj)
    lon, lat = convert(a[:, 0], a[:, 1], "wgs84", "gcj02")
    assert np.allclose(b, np.column_stack([lon, lat]), atol=1.5e-6)
    # the dashboard embeds whichever it gets
    units = circles.assign(code=[f"C{k}" for k in range(20)], name="圈", coverage_pct=50.0)
    layer = page_config(render(build_dashboard_map(units, simplify_m=0.0)))["geojson"][0]
    assert layer["gcj02"] is None and len(layer["wgs84"]) == 20


def test_compact_geometries_round_trip() -> None:
    ring = [(116.0, 39.0), (116.01, 39.0), (116.01, 39.01), (116.0, 39.01)]
    hole = [(116.004, 39.004), (116.006, 39.004), (116.006, 39.006)]
    holed = shapely.Polygon(ring, [hole])
    two = shapely.MultiPolygon([shapely.box(116.1, 39.1, 116.2, 39.2), holed])
    mixed = shapely.GeometryCollection(
        [shapely.box(116.3, 39.3, 116.31, 39.31), shapely.LineString([(116, 39), (117, 40)])]
    )
    geoms = [holed, two, mixed, None, shapely.Polygon(), shapely.Point(116, 39)]
    texts = encode_geometries(geoms)
    assert texts[3] is None and texts[4] is None and texts[5] is None  # nothing polygonal
    decoded = [decode_geometry("polygon", json.loads(str(t)), 10**5) for t in texts[:3]]
    assert decoded[0].equals_exact(holed, 1e-9) and len(decoded[0].interiors) == 1
    assert decoded[1].equals_exact(two, 1e-9)
    assert decoded[2].equals_exact(shapely.box(116.3, 39.3, 116.31, 39.31), 1e-9)  # line dropped
    fine = encode_geometries([shapely.Point(116.1234567, 39.7654321)], "point", 6)
    assert fine == ["[116123457,39765432]"]
    with pytest.raises(InputValidationError):
        encode_geometries([holed], "point")
    with pytest.raises(InputValidationError):
        encode_geometries([holed], "line")


def test_dual_latlng_empty_and_missing_crs() -> None:
    empty = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=4326))
    assert dual_latlng(empty) == ([], [])
    with pytest.raises(CRSError):
        dual_latlng(gpd.GeoDataFrame(geometry=[shapely.Point(1, 2)]))


# --- basemaps -------------------------------------------------------------------------------


def test_basemaps_datums_and_tianditu_key() -> None:
    assert [(b.key, b.datum) for b in basemaps()] == [("osm", "wgs84"), ("amap", "gcj02")]
    with_key = basemaps("en", tianditu_key="KEY123")
    tdt = with_key[-1]
    assert tdt.key == "tianditu" and tdt.datum == "wgs84"
    assert "tk=KEY123" in tdt.url and "LAYER=eva" in (tdt.label_url or "")
    assert "lang=en" in with_key[1].url
    assert "style=8" in basemaps()[1].url and "lang=zh_cn" in basemaps()[1].url


# --- facility map ---------------------------------------------------------------------------


def test_facility_map_embeds_wgs84_once(synth: dict[str, Any]) -> None:
    # Positions travel once, in WGS84: the page converts them to GCJ-02 for Amap
    # (tests/test_maps_browser.py checks the converted positions against tuoyu.crs.china).
    fac = synth["facilities"]
    html = render(build_facility_map(fac, synth["isochrones"], synth["lookup"]))
    cfg = page_config(html)["facilities"]
    assert cfg["ids"] == fac["id"].tolist()
    wgs = fac.to_crs(4326)
    expected_wgs = np.column_stack([wgs.geometry.y, wgs.geometry.x]).round(6)
    assert np.allclose(cfg["wgs84"], expected_wgs, atol=1e-9)
    assert "gcj02" not in cfg and "iso" not in cfg
    assert cfg["puhui"] == [[1, 0, None][i % 3] for i in range(N_SYNTH)]
    assert sum(item["count"] for item in cfg["legend"]) == N_SYNTH


def test_facility_map_isochrones_per_facility(synth: dict[str, Any]) -> None:
    iso = synth["isochrones"]
    html = render(build_facility_map(synth["facilities"], iso, chunk_size=5))
    cfg = page_config(html)["facilities"]
    assert cfg["isoSource"] == {"mode": "chunks", "chunkSize": 5, "chunks": 3, "scale": 10**6}
    by_facility = page_isochrones(html)
    drawn = iso[~iso.geometry.is_empty]
    assert sum(len(v) for v in by_facility.values()) == len(drawn)
    shown = display_geometries(drawn)
    for index, rings in by_facility.items():
        fid = cfg["ids"][index]
        mine = (drawn.facility_id == fid).to_numpy()
        assert [r[0] for r in rings] == drawn.loc[mine, "minutes"].tolist()
        for (_minutes, g_wgs), expected in zip(rings, shown[mine], strict=True):
            assert g_wgs["type"] in ("Polygon", "MultiPolygon")
            np.testing.assert_allclose(all_coords(g_wgs), shapely.get_coordinates(expected))
    assert set(cfg["isoColors"]) == {"5", "10", "15"}


def test_saved_facility_map_reads_isochrones_from_files(
    synth: dict[str, Any], tmp_path: Path
) -> None:
    iso = synth["isochrones"]
    m = build_facility_map(synth["facilities"], iso, chunk_size=4)
    (tmp_path / "facilities.isochrones").mkdir()
    (tmp_path / "facilities.isochrones" / "99.js").write_text("stale", encoding="utf-8")
    path = save_map(m, tmp_path / "facilities.html")
    html = path.read_text(encoding="utf-8")
    folder = tmp_path / "facilities.isochrones"
    assert sorted(p.name for p in folder.iterdir()) == ["0.js", "1.js", "2.js"]
    assert '-dir">"facilities.isochrones"</script>' in html
    from_files = page_isochrones(html, folder)
    # the same map rendered without save_map carries the same chunks inline
    assert page_isochrones(render(m)) == from_files
    assert sum(len(v) for v in from_files.values()) == int((~iso.geometry.is_empty).sum())


def test_facility_map_isochrones_from_the_service(synth: dict[str, Any]) -> None:
    url = "../facilities/{id}/isochrone?minutes={minutes}"
    html = render(build_facility_map(synth["facilities"], synth["isochrones"], isochrone_url=url))
    cfg = page_config(html)["facilities"]
    assert cfg["isoSource"] == {"mode": "api", "url": url, "minutes": [5, 10, 15]}
    assert page_isochrones(html) == {}
    with pytest.raises(InputValidationError, match="minutes"):
        build_facility_map(synth["facilities"], isochrone_url="../facilities/{id}/isochrone")


def test_walk_lookup_round_trip(synth: dict[str, Any]) -> None:
    lookup = synth["lookup"]
    html = render(build_facility_map(synth["facilities"], None, lookup, walk_chunk_nodes=64))
    walk = page_walk(html)
    assert walk["mode"] == "lookup" and walk["minutes"] == 15 and walk["speedKmh"] == 4
    assert walk["nodes"] == len(lookup) == synth["net"].n_nodes
    assert len(walk["bboxes"]) == len(set(walk["chunk"])) > 4  # 600 nodes, ≤ 64 a chunk
    # every node once, in WGS84 steps of 10⁻⁵ degrees, in the chunks' own order
    assert walk["scale"] == 10**5
    source = lookup_rows_written(walk, lookup)
    assert sorted(source) == list(range(len(lookup))) and source != sorted(source)
    assert np.array_equal(walk["lonInt"], np.round(lookup["lon"].to_numpy()[source] * 1e5))
    assert np.array_equal(walk["latInt"], np.round(lookup["lat"].to_numpy()[source] * 1e5))
    ids = page_config(html)["facilities"]["ids"]
    n_pairs = 0
    for flat, items in zip(walk["reach"], lookup["facilities"].iloc[source], strict=True):
        decoded = [(ids[int(flat[k])], flat[k + 1]) for k in range(0, len(flat), 2)]
        assert sorted(decoded) == sorted((fid, round(t, 1)) for fid, t in items)
        assert all(t <= 15 for _, t in decoded)
        n_pairs += len(decoded)
    assert n_pairs > N_SYNTH  # facilities reach many nodes each
    # small: the chunks stay inside the page; nodes travel once, in WGS84 steps of 10⁻⁵°
    # (the page converts a GCJ-02 query point itself)
    assert set(walk) >= {"bboxes", "nodes"} and "reach" not in page_config(html)["walk"]


def test_walk_lookup_beside_a_saved_page(synth: dict[str, Any], tmp_path: Path) -> None:
    lookup = synth["lookup"]
    small = save_map(build_facility_map(synth["facilities"], None, lookup), tmp_path / "small.html")
    assert not (tmp_path / "small.layers").exists()  # under WALK_INLINE_MAX_BYTES
    inline = page_walk(small.read_text(encoding="utf-8"))
    m = build_facility_map(
        synth["facilities"], None, lookup, walk_chunk_nodes=100, walk_inline_max_bytes=0
    )
    (tmp_path / "facilities.layers").mkdir()
    (tmp_path / "facilities.layers" / "walk-99.js").write_text("stale", encoding="utf-8")
    path = save_map(m, tmp_path / "facilities.html")
    html = path.read_text(encoding="utf-8")
    folder = tmp_path / "facilities.layers"
    n_chunks = len(page_config(html)["walk"]["bboxes"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"walk-{k}.js" for k in range(n_chunks)
    )
    assert '-walk-dir">"facilities.layers"</script>' in html and "-walk-0" not in html
    beside = page_walk(html, folder)
    # other chunks, other order (rows are numbered as written): the same nodes
    by_row = [
        sorted(
            zip(lookup_rows_written(w, lookup), w["lonInt"], w["latInt"], w["reach"], strict=True)
        )
        for w in (inline, beside)
    ]
    assert by_row[0] == by_row[1]
    # rendered without save_map (the service), the same chunks are inline
    served = page_walk(render(m))
    for key in ("lonInt", "latInt", "reach", "rowStarts", "bboxes"):
        assert served[key] == beside[key], key
    with pytest.raises(InputValidationError, match="walk_chunk_nodes"):
        build_facility_map(synth["facilities"], None, lookup, walk_chunk_nodes=0)


def test_walk_lookup_from_reaches_by_hand() -> None:
    """Three nodes on a line; facility A reaches nodes 0, 1; B reaches 1, 2."""
    net = WalkNetwork(
        node_id=np.arange(3),
        node_x_m=np.array([500000.0, 500100.0, 500200.0]),
        node_y_m=np.array([3300000.0] * 3),
        edge_u=np.array([0, 1]),
        edge_v=np.array([1, 2]),
        edge_length_m=np.array([100.0, 100.0]),
        edge_way_id=np.array([-1, -1]),
        crs=gpd.GeoSeries([], crs=32648).crs,
    )

    def reach(src: int, node: list[int], dist: list[float]) -> LocalReach:
        return LocalReach(src, 1000.0, np.array(node), np.array(dist), 0, 0.0, 0.0)

    speed = 4.0  # 66.67 m per minute
    lookup = walk_lookup_from_reaches(
        net, [reach(0, [0, 1], [20.0, 120.0]), reach(1, [1, 2], [40.0, 1100.0])], ["A", "B"], speed
    )
    assert list(lookup.columns) == ["lon", "lat", "facilities"]
    assert lookup["facilities"].tolist() == [[("A", 0.3)], [("B", 0.6), ("A", 1.8)], []]
    back = gpd.GeoSeries(shapely.points(lookup["lon"], lookup["lat"]), crs=4326).to_crs(32648)
    assert np.allclose(back.x, net.node_x_m, atol=0.01) and np.allclose(
        back.y, net.node_y_m, atol=0.01
    )
    with pytest.raises(InputValidationError):
        walk_lookup_from_reaches(net, [reach(0, [0], [1.0])], ["A", "B"], speed)


def test_facility_popup_labels_and_assumed() -> None:
    row = pd.Series(
        {
            "id": "X1",
            "name": "阳光托育",
            "kind": "社区托育点",
            "puhui": True,
            "slots_infant": 0,
            "slots_toddler": 15,
            "slots_preschool": pd.NA,
            "slots": pd.NA,
            "service_modes": "全日托、临时托",
            "address": "某街1号",
            "assumed_fields": "puhui",
        }
    )
    zh = facility_popup(row, "zh")
    assert "阳光托育" in zh and "社区托育点" in zh and "是（假定）" in zh
    assert "托小班（12–24月龄）</th><td>15" in zh and "12–24 月龄" in zh
    assert "全日托、临时托" in zh and "某街1号" in zh and "不详" in zh
    en = facility_popup(row, "en")
    assert "Community childcare point" in en and "yes (assumed)" in en
    assert "full-day (全日托), temporary (临时托)" in en and "unknown" in en


def test_facility_map_language_switch(synth: dict[str, Any]) -> None:
    zh = render(build_facility_map(synth["facilities"]))
    en = render(build_facility_map(synth["facilities"], language="en"))
    cfg_zh, cfg_en = page_config(zh), page_config(en)
    assert cfg_zh["strings"]["facilities"] == "托育机构"
    assert cfg_en["strings"]["facilities"] == "Childcare facilities"
    assert "<title>备案托育机构电子地图</title>" in zh
    assert "<title>Registered childcare facilities</title>" in en
    assert "机构类型" in cfg_zh["facilities"]["popups"][0]
    assert "Kind" in cfg_en["facilities"]["popups"][0]
    assert (
        "高德地图（GCJ-02）" in cfg_zh["baseDatums"]
        and "Amap 高德 (GCJ-02)" in cfg_en["baseDatums"]
    )
    with pytest.raises(InputValidationError):
        build_facility_map(synth["facilities"], language="fr")


def test_pages_are_standalone_with_osm_attribution(synth: dict[str, Any]) -> None:
    html = render(build_facility_map(synth["facilities"], cluster_over=5))
    assert "<script src=" not in html and 'rel="stylesheet"' not in html
    assert "cdn.jsdelivr" not in html and "cdnjs" not in html
    assert "Leaflet 1.9.4" in html and "L.markerClusterGroup" in html
    assert page_config(html)["attributions"][0] == OSM_ATTRIBUTION
    assert "OpenStreetMap</a> contributors" in OSM_ATTRIBUTION


def test_facility_map_basemap_and_api_options(synth: dict[str, Any]) -> None:
    fac = synth["facilities"]
    cfg = page_config(render(build_facility_map(fac, basemap="amap", tianditu_key="K")))
    assert cfg["initialDatum"] == "gcj02"
    assert cfg["baseDatums"] == {
        "OpenStreetMap": "wgs84",
        "高德地图（GCJ-02）": "gcj02",
        "天地图": "wgs84",
    }
    no_key = page_config(render(build_facility_map(fac)))
    assert "天地图" not in no_key["baseDatums"]
    with pytest.raises(InputValidationError, match="tianditu_key"):
        build_facility_map(fac, basemap="tianditu")
    url = "/api/areas/beijing-dongcheng/nearest?lon={lon}&lat={lat}&crs={crs}&minutes={minutes}"
    api = page_config(render(build_facility_map(fac, nearest_url=url)))
    assert api["walk"]["mode"] == "api" and api["nearestUrl"] == url
    assert page_config(render(build_facility_map(fac)))["walk"]["mode"] == "none"
    with pytest.raises(InputValidationError, match="placeholders"):
        build_facility_map(fac, nearest_url="/api/nearest")


def test_facility_map_rejects_bad_input(synth: dict[str, Any]) -> None:
    fac = synth["facilities"]
    dup = fac.copy()
    dup.loc[1, "id"] = dup.loc[0, "id"]
    with pytest.raises(InputValidationError, match="duplicate"):
        build_facility_map(dup)
    with pytest.raises(CRSError):
        build_facility_map(fac.set_crs(None, allow_override=True))
    with pytest.raises(InputValidationError, match="id"):
        build_facility_map(fac.drop(columns="id"))
    iso = synth["isochrones"].copy()
    iso.loc[0, "facility_id"] = "nope"
    with pytest.raises(InputValidationError, match="nope"):
        build_facility_map(fac, iso)
    lookup = synth["lookup"].copy()
    lookup.at[0, "facilities"] = [("ghost", 3.0)]
    with pytest.raises(InputValidationError, match="ghost"):
        build_facility_map(fac, None, lookup)


def test_facility_map_empty_registry(synth: dict[str, Any]) -> None:
    empty = synth["facilities"].iloc[:0]
    cfg = page_config(render(build_facility_map(empty)))
    assert cfg["facilities"]["ids"] == [] and cfg["facilities"]["wgs84"] == []
    assert cfg["bounds"] is None


def test_same_inputs_same_page(synth: dict[str, Any]) -> None:
    fac, iso = synth["facilities"], synth["isochrones"]
    first = render(build_facility_map(fac, iso, cluster_over=5))
    assert render(build_facility_map(fac, iso, cluster_over=5)) == first
    cfg = page_config(first)["facilities"]
    # layers are referenced by their JavaScript names, which the page defines
    assert f"var {cfg['container']} = L.markerClusterGroup(" in first
    assert f"var {cfg['isoContainer']} = L.featureGroup(" in first


def test_save_map_atomic(tmp_path: Path, synth: dict[str, Any]) -> None:
    out = save_map(build_facility_map(synth["facilities"]), tmp_path / "sub" / "facilities.html")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["facilities.html"]


# --- dashboard ------------------------------------------------------------------------------


def test_dashboard_dongcheng_admin_coverage(dongcheng: dict[str, Any], tmp_path: Path) -> None:
    layer, table = dongcheng["unit_layer"], dongcheng["table"]
    m = build_dashboard_map(
        layer, dongcheng["profile"], dongcheng["summary"], area_name="北京市东城区"
    )
    path = save_map(m, tmp_path / "dashboard.html")
    assert path.stat().st_size < MAX_MAP_BYTES
    cfg = page_config(path.read_text(encoding="utf-8"))
    assert cfg["indicator"] == "puhui_jiedao_coverage"  # no network → administrative
    assert cfg["passIndicator"] == "puhui_jiedao_coverage"
    units_cfg = cfg["geojson"][0]
    assert len(units_cfg["wgs84"]) == len(units_cfg["gcj02"]) == 17
    failing = table.loc[table["meets_puhui_jiedao_coverage"].eq(False).fillna(False), "code"]
    assert sorted(cfg["failing"]) == sorted(failing) and len(failing) >= 1
    for props in units_cfg["props"]:
        is_failing = props["code"] in cfg["failing"]
        assert (props["_s"]["color"] == FAIL_OUTLINE) == is_failing
    legend = next(c["html"] for c in cfg["controls"] if c["cls"] == "tuoyu-legend")
    # cited by document number and clause, not by file name
    assert "≥ 100 %" in legend and "京政办发〔2023〕6号 二、工作目标" in legend
    assert "002_30e7b644e3d11434.txt" not in legend
    summary = next(c["html"] for c in cfg["controls"] if c["cls"] == "tuoyu-summary-panel")
    assert "全区情况" in summary and "北京市东城区" in summary and "94.1%" in summary
    # the GCJ-02 copy of each polygon is the chinacrs conversion of the WGS84 copy
    a, b = all_coords(units_cfg["wgs84"][0]), all_coords(units_cfg["gcj02"][0])
    lon, lat = convert(a[:, 0], a[:, 1], "wgs84", "gcj02")
    assert np.allclose(b, np.column_stack([lon, lat]), atol=1.5e-6)


def test_dashboard_coverage_mode_with_numeric_target() -> None:
    x0, y0 = 450000, 4420000
    units = gpd.GeoDataFrame(
        {
            "code": ["A", "B", "C"],
            "name": ["甲", "乙", "丙"],
            "coverage_pct": pd.array([95.0, 40.0, None], dtype="Float64"),
            "has_puhui": pd.array([True, False, True], dtype="boolean"),
        },
        geometry=[shapely.box(x0 + x, y0, x0 + x + 500, y0 + 500) for x in (0, 500, 1000)],
        crs=32650,
    )
    target = Target(
        indicator="coverage_pct", value=80, unit="%", year=2025, source_file="test.txt",
        clause="第一条", quote="覆盖率达到80%",
    )  # fmt: skip
    profile = Profile(name="t", title="测试目标", year=2025, source="test", targets=(target,))
    assert choose_indicator(units) == "coverage_pct"
    cfg = page_config(render(build_dashboard_map(units, profile, language="en")))
    assert cfg["indicator"] == cfg["passIndicator"] == "coverage_pct"
    assert cfg["failing"] == ["B"]
    props = cfg["geojson"][0]["props"]
    assert [p["pass"] for p in props] == [True, False, None]
    assert props[2]["_s"]["fillColor"] == "#d9d9d9"  # unknown coverage → no-data grey
    assert props[0]["_s"]["fillColor"] != props[1]["_s"]["fillColor"]
    assert "Population within a 15-minute walk" in props[0]["_t"]
    legend = next(c["html"] for c in cfg["controls"] if c["cls"] == "tuoyu-legend")
    assert "≥ 80 %" in legend and "test.txt" in legend
    with pytest.raises(InputValidationError, match="indicator"):
        build_dashboard_map(units, profile, indicator="guidance_centres")


# --- gap map ----------------------------------------------------------------------------------


def test_uncovered_points_and_hexagons_by_hand() -> None:
    pts = gpd.GeoDataFrame(
        {
            "population": [10.0, 5.0, 7.0, 3.0, 1.0],
            "population_under3": [0.1, 0.05, 0.07, 0.03, 0.01],
            "walk_m_all": [1500.0, np.inf, 1000.0, np.nan, 1200.0],
        },
        geometry=[shapely.Point(116.40, 39.90), shapely.Point(116.40001, 39.90001),
                  shapely.Point(116.45, 39.95), shapely.Point(116.5, 39.9),
                  shapely.Point(116.46, 39.91)],
        crs=4326,
    )  # fmt: skip
    out = uncovered_points(pts, 1000.0)
    assert out["population"].tolist() == [10.0, 5.0, 1.0]  # 1000 m is inside; NaN unknown
    assert out.attrs["walk_unknown"] == 1
    hexes = hexagon_people(out, 9)
    assert len(hexes) == 2 and hexes["population"].tolist() == [15.0, 1.0]
    assert hexes["points"].tolist() == [2, 1]
    assert hexes["cell"].iloc[0] == h3.latlng_to_cell(39.90, 116.40, 9)
    assert np.isclose(hexes["population_under3"].iloc[0], 0.15)


def test_gap_map_dongcheng(dongcheng: dict[str, Any], tmp_path: Path) -> None:
    pop, gaps = dongcheng["population"], dongcheng["gaps"]
    m = build_gap_map(
        pop, gaps, dongcheng["sites"], dongcheng["site_iso"], facilities=dongcheng["facilities"],
        units=dongcheng["units"], threshold_m=GAP_THRESHOLD_M, area_name="北京市东城区",
    )  # fmt: skip
    path = save_map(m, tmp_path / "gaps.html")
    assert path.stat().st_size < MAX_MAP_BYTES
    # a district's layers are small: they stay inside the page, nothing is written beside it
    assert [p.name for p in tmp_path.iterdir()] == ["gaps.html"]
    html = path.read_text(encoding="utf-8")
    cfg = page_config(html)
    layers = {g["key"]: g for g in cfg["geojson"]}
    uncovered = pop[pop["walk_m_all"] > GAP_THRESHOLD_M]
    assert len(uncovered) > 0
    hexes = hexagon_people(uncovered, 9)
    wgs = uncovered.to_crs(4326)
    cells = {
        h3.latlng_to_cell(y, x, 9) for x, y in zip(wgs.geometry.x, wgs.geometry.y, strict=True)
    }
    assert len(hexes) == len(cells) == cfg["counts"]["uncovered"]
    assert layers["uncovered"]["chunked"]["features"] == len(cells)
    hex_data = page_layer(html, "uncovered")
    assert sorted(hex_data) == list(range(len(hexes)))
    for i, feature in hex_data.items():
        people = hexes["population"].iloc[i]
        assert feature["values"][0] == round(people)  # shown to the person
        expected = np.round(shapely.get_coordinates(hexes.geometry.iloc[i]), 5)
        got = shapely.get_coordinates(feature["geometry"])
        np.testing.assert_allclose(got, expected, atol=1e-9)
    assert abs(sum(f["values"][0] for f in hex_data.values()) - uncovered["population"].sum()) <= (
        0.5 * len(hexes)
    )
    zone_data = page_layer(html, "gaps")
    assert sorted(zone_data) == list(range(len(gaps))) and cfg["counts"]["gaps"] == len(gaps)
    zone_people = [zone_data[i]["values"][1] for i in range(len(gaps))]
    assert zone_people == [round(p) for p in gaps["population"]]
    columns = [c["label"] for c in layers["gaps"]["columns"]]
    assert columns[:2] == ["缺口区排名", "常住人口（人）"]
    # zones drawn by their people: the darkest class holds the largest zone
    assert zone_data[int(np.argmax(gaps["population"]))]["class"] == 4
    shown = display_geometries(gaps, 5.0, 5)
    for i in range(len(gaps)):
        # the page's zone is the display geometry at 5 decimals, vertex for vertex
        assert zone_data[i]["geometry"].equals_exact(shown[i], 1e-9), i
    # no layer is stored twice: the big ones carry no GCJ-02 copy, the small ones may
    assert "wgs84" not in layers["gaps"] and "gcj02" not in layers["uncovered"]
    assert len(layers["units"]["gcj02"]) == len(layers["units"]["wgs84"]) == len(dongcheng["units"])
    assert len(layers["site_isochrones"]["wgs84"]) == 9
    markers = {mk["key"]: mk for mk in cfg["markers"]}
    assert len(markers["facilities"]["wgs84"]) == 64 and len(markers["sites"]["wgs84"]) == 3
    assert "#1" in markers["sites"]["titles"][0]
    assert cfg["attributions"][0] == OSM_ATTRIBUTION


def test_gap_map_points_mode_and_optional_layers(dongcheng: dict[str, Any]) -> None:
    pop = dongcheng["population"]
    html = render(build_gap_map(pop, population_display="points", language="en"))
    cfg = page_config(html)
    uncovered = pop[pop["walk_m_all"] > GAP_THRESHOLD_M]
    assert [g["key"] for g in cfg["geojson"]] == ["uncovered"]
    assert cfg["geojson"][0]["chunked"]["kind"] == "point"
    points = page_layer(html, "uncovered")
    assert len(points) == len(uncovered)
    wgs = uncovered.to_crs(4326).geometry
    got = np.array([[points[i]["geometry"].x, points[i]["geometry"].y] for i in range(len(points))])
    np.testing.assert_allclose(got, np.round(np.column_stack([wgs.x, wgs.y]), 5), atol=1e-9)
    assert cfg["markers"] == [] and cfg["strings"]["gaps"] == "Gap areas"
    assert [c["label"] for c in cfg["geojson"][0]["columns"]] == [
        "Population",
        "Children under 3 (estimated)",
    ]
    nothing = page_config(render(build_gap_map()))
    assert nothing["geojson"] == [] and nothing["bounds"] is None
    with pytest.raises(InputValidationError, match="walk_m_all"):
        build_gap_map(pop.drop(columns="walk_m_all"))
    with pytest.raises(InputValidationError):
        build_gap_map(pop, population_display="dots")  # type: ignore[arg-type]


def test_dongcheng_facility_map_size(dongcheng: dict[str, Any], tmp_path: Path) -> None:
    m = build_facility_map(dongcheng["facilities"], area_name="北京市东城区")
    path = save_map(m, tmp_path / "facilities.html")
    assert path.stat().st_size < MAX_MAP_BYTES
    cfg = page_config(path.read_text(encoding="utf-8"))
    assert len(cfg["facilities"]["ids"]) == 64
    assert "L.markerClusterGroup" in path.read_text(encoding="utf-8")  # 64 > 50: clustered
