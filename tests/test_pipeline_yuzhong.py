"""Yuzhong end to end with a user-given facility file, checked against networkx.

The independent computation snaps points by brute force over all segments, inserts the
snapped points into a networkx graph built from the raw segment arrays, and runs one
Dijkstra from a super-source; it shares no code with the reach engine.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import load_area
from tuoyu.indicators.targets import load_profile
from tuoyu.network.walk_network import WalkNetwork
from tuoyu.progress import SILENT
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import load_layers

FIXTURE = Path(__file__).parent / "fixtures" / "yuzhong" / "facilities.csv"


def _area_file(tmp_path: Path) -> Path:
    path = tmp_path / "yuzhong-test.toml"
    path.write_text(
        f"""
[area]
name = "重庆市渝中区 (test)"
code = "500103"
target_profile = "chongqing-2025"
outline = "chongqing-yuzhong/district.geojson"
[network]
path = "chongqing-yuzhong/yuzhong.osm.pbf"
[units]
h3_resolution = 8
[facilities]
path = "{FIXTURE.as_posix()}"
crs = "wgs84"
[population]
total = 588717
under3_share = 0.015
""",
        encoding="utf-8",
    )
    return path


def _brute_snap(net: WalkNetwork, x: np.ndarray, y: np.ndarray, min_component_nodes: int = 40):
    ax, ay = net.node_x_m[net.edge_u], net.node_y_m[net.edge_u]
    bx, by = net.node_x_m[net.edge_v], net.node_y_m[net.edge_v]
    dx, dy = bx - ax, by - ay
    seg2 = dx * dx + dy * dy
    # Islands are not candidates: only pieces of >= min_component_nodes nodes (capped at
    # the largest piece), found here with networkx, independently of scipy.
    pieces = nx.Graph()
    pieces.add_nodes_from(range(net.n_nodes))
    pieces.add_edges_from(zip(net.edge_u.tolist(), net.edge_v.tolist(), strict=True))
    size = np.zeros(net.n_nodes, dtype=np.int64)
    for piece in nx.connected_components(pieces):
        size[list(piece)] = len(piece)
    island = size[net.edge_u] < min(min_component_nodes, int(size.max()))
    edges, fracs, access = [], [], []
    for px, py in zip(x, y, strict=True):
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / seg2, 0.0, 1.0)
        d = np.hypot(ax + t * dx - px, ay + t * dy - py)
        d[island] = np.inf
        j = int(np.argmin(d))
        edges.append(j)
        fracs.append(float(t[j]))
        access.append(float(d[j]))
    return np.array(edges), np.array(fracs), np.array(access)


def _networkx_distances(net: WalkNetwork, fac_xy, pop_xy, cutoff_m: float) -> np.ndarray:
    fe, ff, fa = _brute_snap(net, *fac_xy)
    pe, pf, pa = _brute_snap(net, *pop_xy)
    inserted: dict[int, list[tuple[float, object]]] = {}
    for i, (e, f) in enumerate(zip(fe, ff, strict=True)):
        inserted.setdefault(int(e), []).append((f, ("fac", i)))
    for i, (e, f) in enumerate(zip(pe, pf, strict=True)):
        inserted.setdefault(int(e), []).append((f, ("pop", i)))
    graph = nx.Graph()
    for j in range(net.n_edges):
        u, v, length = int(net.edge_u[j]), int(net.edge_v[j]), float(net.edge_length_m[j])
        chain = [(0.0, u), *sorted(inserted.get(j, []), key=lambda t: t[0]), (1.0, v)]
        for (f0, a), (f1, b) in itertools.pairwise(chain):
            w = (f1 - f0) * length
            if graph.has_edge(a, b):
                w = min(w, graph[a][b]["weight"])
            graph.add_edge(a, b, weight=w)
    for i, access in enumerate(fa):
        graph.add_edge("S", ("fac", i), weight=float(access))
    dist = nx.single_source_dijkstra_path_length(graph, "S", cutoff=cutoff_m + 300)
    out = np.array([dist.get(("pop", i), np.inf) + pa[i] for i in range(len(pe))])
    out[out > cutoff_m] = np.inf
    return out


@pytest.mark.slow
def test_yuzhong_user_facilities_agree_with_networkx(tmp_path: Path, settings: Settings) -> None:
    area = load_area(_area_file(tmp_path))
    layers = load_layers(area, settings, SILENT)
    assert layers.facilities is not None and len(layers.facilities) == 5
    model = AreaModel.from_layers(layers, load_profile("chongqing-2025"))
    reach = model.reach()
    assert reach is not None and reach.walk_m_all is not None
    isochrones = model.isochrones()
    assert isochrones is not None
    assert set(isochrones["minutes"]) == {5.0, 10.0, 15.0}
    assert len(isochrones) == 15

    net = layers.network
    assert net is not None and layers.population is not None
    fac = layers.facilities.geometry
    pop = layers.population.geometry
    expected = _networkx_distances(
        net, (fac.x.to_numpy(), fac.y.to_numpy()), (pop.x.to_numpy(), pop.y.to_numpy()), 1000.0
    )
    finite = np.isfinite(expected)
    assert np.array_equal(finite, np.isfinite(reach.walk_m_all))
    np.testing.assert_allclose(reach.walk_m_all[finite], expected[finite], atol=1e-6)
    assert finite.sum() > 50  # the five facilities do cover people

    results = model.results()
    table = results.table.set_index("code")
    people = layers.population.assign(covered=finite)
    for code, group in people.groupby("unit_code"):
        total = group["population"].sum()
        if total <= 0:
            continue
        pct = 100.0 * group.loc[group["covered"], "population"].sum() / total
        assert table.loc[code, "coverage_pct"] == pytest.approx(pct, abs=0.1), code
    district = (
        100.0 * people.loc[people["covered"], "population"].sum() / people["population"].sum()
    )
    assert results.summary["indicators"]["coverage_pct"]["value"] == pytest.approx(
        district, abs=0.1
    )


def test_yuzhong_without_facilities_is_all_gap(settings: Settings) -> None:
    layers = load_layers(load_area("chongqing-yuzhong"), settings, SILENT)
    model = AreaModel.from_layers(layers, load_profile("chongqing-2025"))
    reach = model.reach()
    assert reach is not None and reach.walk_m_all is not None
    assert np.isinf(reach.walk_m_all).all()
    results = model.results()
    assert results.summary["indicators"]["coverage_pct"]["value"] == 0.0
    gap_people = float(results.gaps["population"].sum())
    assert gap_people == pytest.approx(588717, rel=1e-9)
    assert isinstance(results.gaps, gpd.GeoDataFrame)
    # 11 街道 from a table without polygons or population: per-街道 population is 不详,
    # the district's is known
    assert len(results.table) == 11 and results.table["population"].isna().all()
    assert results.summary["totals"]["population"] == pytest.approx(588717, rel=1e-9)


def test_map_skips_reach_summary_json(tmp_path: Path, settings: Settings) -> None:
    """Regression: the facility-map skip was recorded after summary.json was written."""
    import json

    from tuoyu.workflow.run import analyse_area

    run = analyse_area(
        "chongqing-yuzhong",
        tmp_path / "out",
        settings,
        SILENT,
        month="2026-11",
        maps_dir=tmp_path / "maps",
    )
    assert "facility map" in run.skipped
    summary = json.loads((tmp_path / "out" / "summary.json").read_text("utf-8"))
    skipped = {item["indicator"]: item["reason"] for item in summary["skipped"]}
    assert skipped["facility map"] == "no registered facilities to show"
    assert not (tmp_path / "maps" / "facilities.html").exists()
