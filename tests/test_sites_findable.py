"""Recommended sites a planner can find: coordinates, 街道, nearest named street, label,
the order in which they add value, and the exports (CSV, GeoJSON, XLSX).

Real data: Dongcheng (road-centreline layer with ``name``) and Yuzhong (OSM). The road
and 街道 layers are read again here, independently of the library, straight from the
GCJ-02 files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import openpyxl
import pyogrio
import pytest
import scipy.sparse as sp
import shapely
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import load_area
from tuoyu.crs.china import convert
from tuoyu.indicators.targets import load_profile
from tuoyu.layers.line_network import load_line_network
from tuoyu.layers.osm_network import load_walk_network
from tuoyu.progress import SILENT
from tuoyu.siting.candidates import DEFAULT_ROAD_SEARCH_M, nearest_named_road
from tuoyu.siting.plan import (
    RANK_NOTE,
    SITE_COLUMNS,
    SITE_HEADERS_ZH,
    candidate_sites,
    greedy_order,
    place_label,
    plan_sites,
    write_siting_outputs,
)
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import load_layers

UTM50 = "EPSG:32650"  # Beijing: metres for the independent checks
P = 5


@pytest.fixture(scope="module")
def dongcheng(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    layers = load_layers(load_area("beijing-dongcheng"), settings, SILENT)
    model = AreaModel.from_layers(layers)
    reach = model.reach()
    assert reach is not None
    profile = load_profile("beijing-2025-core")
    candidates = candidate_sites(layers)
    plan = plan_sites(layers, reach, profile, P, candidates=candidates)
    out = tmp_path_factory.mktemp("sites")
    written = write_siting_outputs(plan, layers, out, before=model.results(), reach=reach)
    return {"layers": layers, "plan": plan, "out": out, "written": written, "reach": reach}


def _folder(settings: Settings) -> Path:
    return Path(settings.data_dir) / "beijing-dongcheng"


def test_every_site_has_both_coordinate_systems(dongcheng: dict[str, Any]) -> None:
    sites = dongcheng["plan"].sites
    assert list(sites.columns[:-1]) == list(SITE_COLUMNS)
    assert len(sites) == P
    wgs = sites.geometry.to_crs(4326)
    assert np.allclose(sites["lon_wgs84"], wgs.x, atol=1e-6)
    assert np.allclose(sites["lat_wgs84"], wgs.y, atol=1e-6)
    lon, lat = convert(sites["lon_wgs84"], sites["lat_wgs84"], "wgs84", "gcj02")
    assert np.allclose(sites["lon_gcj02"], lon, atol=1e-6)
    assert np.allclose(sites["lat_gcj02"], lat, atol=1e-6)
    # GCJ-02 lies a few hundred metres east/north-east of WGS84 in Beijing
    a = gpd.GeoSeries.from_xy(sites["lon_wgs84"], sites["lat_wgs84"], crs=4326).to_crs(UTM50)
    b = gpd.GeoSeries.from_xy(sites["lon_gcj02"], sites["lat_gcj02"], crs=4326).to_crs(UTM50)
    offset_m = a.distance(b).to_numpy()
    assert np.all((offset_m > 300) & (offset_m < 700)), offset_m
    assert np.all(b.x.to_numpy() > a.x.to_numpy())


def test_every_site_lies_in_its_jiedao(dongcheng: dict[str, Any], settings: Settings) -> None:
    sites = dongcheng["plan"].sites
    raw = gpd.read_file(_folder(settings) / "jiedao.geojson")  # GCJ-02 lon/lat as stored
    by_code = {str(c): g for c, g in zip(raw["code"], raw.geometry, strict=True)}
    by_name = dict(zip(raw["code"].astype(str), raw["name"], strict=True))
    for row in sites.itertuples():
        point = shapely.Point(row.lon_gcj02, row.lat_gcj02)
        assert by_code[str(row.unit_code)].buffer(1e-6).contains(point), row.label
        assert row.unit_name == by_name[str(row.unit_code)]


def test_nearest_named_road_checked_on_the_raw_layer(
    dongcheng: dict[str, Any], settings: Settings
) -> None:
    sites = dongcheng["plan"].sites
    roads = pyogrio.read_dataframe(_folder(settings) / "roads.geojson")  # GCJ-02
    named = roads[roads["name"].notna() & (roads["name"].astype(str).str.strip() != "")]
    named = named.set_crs(4326, allow_override=True).to_crs(UTM50)
    for row in sites.itertuples():
        assert isinstance(row.road_name, str) and row.road_name, row.label
        assert row.road_distance_m <= DEFAULT_ROAD_SEARCH_M
        here = gpd.GeoSeries.from_xy([row.lon_gcj02], [row.lat_gcj02], crs=4326).to_crs(UTM50)
        dist = named.distance(here.iloc[0])
        to_that_road = float(dist[named["name"] == row.road_name].min())
        assert to_that_road <= row.road_distance_m + 2.0, (row.road_name, to_that_road)
        assert to_that_road <= float(dist.min()) + 2.0  # no other named street is nearer


def test_labels_are_readable(dongcheng: dict[str, Any]) -> None:
    sites = dongcheng["plan"].sites
    for row in sites.itertuples():
        assert "net-" not in row.label
        assert row.road_name in row.label and f"({row.unit_name})" in row.label
        assert "路网采样点" in row.label


def test_rank_is_the_greedy_order_of_the_chosen_set(dongcheng: dict[str, Any]) -> None:
    sites = dongcheng["plan"].sites
    gains = sites["added_under3"].to_numpy()
    assert np.all(np.diff(gains) <= 1e-9), gains  # each next site adds no more
    assert sites["rank"].tolist() == list(range(1, P + 1))
    cumulative = np.cumsum(sites["added_population"].to_numpy())
    assert np.allclose(sites["cumulative_added_population"], cumulative, atol=0.2)
    assert np.all(sites["catchment_km2"] > 0)


def test_greedy_order_by_hand() -> None:
    """Solver order [2, 1] (site 2 reaches 5 people, site 1 reaches 7): rank 1 is site 1.

    Before the fix ``rank`` was the solver's order, so the first site could add less
    than the second.
    """
    reach = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 1], [1, 0, 0, 0]]))
    weights = [5.0, 5.0, 1.0, 1.0]
    assert greedy_order(reach, [2, 1], weights, [False] * 4).tolist() == [1, 2]
    # point 1 already covered: site 1 adds 2, site 0 adds 5 → site 0 first
    assert greedy_order(reach, [1, 0], weights, [False, True, False, False]).tolist() == [0, 1]


def test_place_label_without_name_or_road() -> None:
    assert place_label(None, None, "东四街道") == "路网采样点 (东四街道)"
    assert place_label("", "东四十条", None, "osm") == "东四十条 设施点"


def test_sites_xlsx_opens_with_print_settings(dongcheng: dict[str, Any]) -> None:
    path = dongcheng["written"]["sites.xlsx"]
    wb = openpyxl.load_workbook(path)
    ws = wb["建议选址"]
    headers = [c.value for c in ws[1]]
    assert headers == list(SITE_HEADERS_ZH.values())
    assert ws.max_row == P + 1
    assert ws.page_setup.orientation == "landscape"
    assert int(ws.page_setup.paperSize) == int(ws.PAPERSIZE_A4) == 9
    assert ws.page_setup.fitToWidth == 1 and ws.sheet_properties.pageSetUpPr.fitToPage
    assert ws.print_title_rows == "$1:$1" and ws.freeze_panes == "C2"
    people = [c.value for c in ws["K"][1:]]
    assert all(isinstance(v, int) for v in people)
    assert sum(people) == round(dongcheng["plan"].sites["added_population"].sum())
    assert "排序" in ws["A1"].comment.text
    assert "说明" in wb.sheetnames


def test_sites_csv_and_geojson(dongcheng: dict[str, Any]) -> None:
    out: Path = dongcheng["out"]
    raw = (out / "sites.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig").splitlines()
    header = text[0].split(",")
    assert header[:3] == ["rank", "label", "candidate_id"]
    first = dict(zip(header, text[1].split(","), strict=True))
    assert len(first["lon_gcj02"].split(".")[1]) >= 6  # not cut to 4 decimals (~10 m)
    assert "net-" not in first["label"]
    collection = json.loads((out / "sites.geojson").read_text(encoding="utf-8"))
    assert len(collection["features"]) == P
    assert collection["notes"] == [RANK_NOTE]
    props = collection["features"][0]["properties"]
    for key in ("label", "unit_name", "road_name", "lon_gcj02", "lat_gcj02", "added_under3"):
        assert props[key] is not None
    iso = json.loads((out / "site_isochrones.geojson").read_text(encoding="utf-8"))
    assert {f["properties"]["label"] for f in iso["features"]} == set(
        dongcheng["plan"].sites["label"]
    )
    summary = json.loads((out / "siting.json").read_text(encoding="utf-8"))
    assert summary["column_notes"]["rank"] == RANK_NOTE


def test_line_layer_names_survive_the_cache(settings: Settings, tmp_path: Path) -> None:
    path = _folder(settings) / "roads.geojson"
    own = settings.model_copy(update={"cache_dir": tmp_path})
    first = load_line_network(path, crs="gcj02", settings=own)
    again = load_line_network(path, crs="gcj02", settings=own)
    assert first.metadata["cache"] == "written" and again.metadata["cache"] == "hit"
    names = first.metadata["way_names"]
    assert again.metadata["way_names"] == names and first.metadata["way_name_field"] == "name"
    raw = pyogrio.read_dataframe(path, columns=["name"], read_geometry=False)
    expected = {
        str(i): n.strip() for i, n in enumerate(raw["name"]) if isinstance(n, str) and n.strip()
    }
    assert names == expected


def test_osm_way_names_and_nearest_road(settings: Settings) -> None:
    path = Path(settings.data_dir) / "chongqing-yuzhong" / "yuzhong.osm.pbf"
    net = load_walk_network(path)
    names = net.metadata["way_names"]
    assert len(names) > 100
    assert all(isinstance(v, str) and v == v.strip() and v for v in names.values())
    assert {int(k) for k in names} <= set(net.edge_way_id.tolist())
    # a point on a named way finds that way's name at distance ~0
    named_edges = np.flatnonzero([str(w) in names for w in net.edge_way_id])
    e = int(named_edges[0])
    x = 0.5 * (net.node_x_m[net.edge_u[e]] + net.node_x_m[net.edge_v[e]])
    y = 0.5 * (net.node_y_m[net.edge_u[e]] + net.node_y_m[net.edge_v[e]])
    found = nearest_named_road(net, [x], [y])
    assert found["road_distance_m"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert found["road_name"].iloc[0] in set(names.values())


def test_sites_sheet_is_formula_safe_and_whole() -> None:
    """A hostile candidate name from a user file must not become a formula in sites.xlsx."""
    import pandas as pd
    from tuoyu.siting.plan import sites_sheet

    sites = pd.DataFrame(
        {
            "rank": [1, 2],
            "label": ['=HYPERLINK("http://evil.example","x")', "东四十条 路网采样点 (东四街道)"],
            "added_population": [10.4, 20.4],
            "added_under3": [0.6, 0.6],
            "slots": [np.nan, 30.0],
            "cumulative_added_population": [10.4, 30.8],
        }
    )
    sheet = sites_sheet(sites)
    assert sheet["点位名称"].iloc[0].startswith("'=")
    added = sheet["新增15分钟覆盖常住人口（人）"].tolist()
    assert all(isinstance(v, int) for v in added) and sum(added) == 31  # round(30.8)
    assert sheet["累计新增覆盖人口（人）"].tolist() == [added[0], 31]
    assert sum(sheet["新增覆盖3岁以下儿童（人）"]) == 1
    assert sheet[SITE_HEADERS_ZH["slots"]].tolist() == ["待定", 30]


def test_siting_outputs_credit_the_network_they_were_built_on(settings) -> None:
    """Regression: sites on Dongcheng's road layer were credited to OpenStreetMap."""
    from tuoyu.config.study_area import load_area
    from tuoyu.progress import SILENT
    from tuoyu.siting.plan import data_credit
    from tuoyu.workflow.layers import load_layers

    dongcheng = load_layers(load_area("beijing-dongcheng"), settings, SILENT)
    assert "东城区城市体检" in data_credit(dongcheng)
    assert "OpenStreetMap" not in data_credit(dongcheng)
    yuzhong = load_layers(load_area("chongqing-yuzhong"), settings, SILENT)
    assert data_credit(yuzhong) == "© OpenStreetMap contributors"
