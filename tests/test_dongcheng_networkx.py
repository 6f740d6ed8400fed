"""Dongcheng on its road-centreline layer, checked against an independent computation.

The check parses ``roads.geojson`` itself (stdlib ``json``): every line's consecutive
vertices become segments, lines join only where they share an exact input vertex;
coordinates are converted from GCJ-02 and projected with pyproj, points are snapped by
brute force over all segments of pieces of at least 40 nodes, and one networkx Dijkstra
from a super-source gives each population point its walk. It shares no code with the
line-layer loader, the snapping or the reach engine.
"""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest
from pyproj import Transformer
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import load_area
from tuoyu.crs.china import convert
from tuoyu.workflow.core import AreaModel

from tests.test_pipeline_yuzhong import _networkx_distances

pytestmark = pytest.mark.slow


def _independent_network(path: str, metric_crs: object) -> SimpleNamespace:
    data = json.loads(open(path, encoding="utf-8").read())
    node_of: dict[tuple[float, float], int] = {}
    coords: list[tuple[float, float]] = []
    pairs: set[tuple[int, int]] = set()
    for feature in data["features"]:
        geom = feature.get("geometry")
        if not geom:
            continue
        parts = [geom["coordinates"]] if geom["type"] == "LineString" else geom["coordinates"]
        for part in parts:
            ids = []
            for x, y in part:
                key = (float(x), float(y))
                if key not in node_of:
                    node_of[key] = len(coords)
                    coords.append(key)
                ids.append(node_of[key])
            for a, b in itertools.pairwise(ids):
                if a != b:
                    pairs.add((min(a, b), max(a, b)))
    raw = np.array(coords)
    lon, lat = convert(raw[:, 0], raw[:, 1], "gcj02", "wgs84")
    x, y = Transformer.from_crs(4326, metric_crs, always_xy=True).transform(lon, lat)
    edges = np.array(sorted(pairs), dtype=np.int64)
    u, v = edges[:, 0], edges[:, 1]
    length = np.hypot(x[u] - x[v], y[u] - y[v])
    keep = length > 0
    return SimpleNamespace(
        node_x_m=np.asarray(x),
        node_y_m=np.asarray(y),
        edge_u=u[keep],
        edge_v=v[keep],
        edge_length_m=length[keep],
        n_nodes=len(coords),
        n_edges=int(keep.sum()),
    )


def test_dongcheng_coverage_agrees_with_networkx(settings: Settings) -> None:
    area = load_area("beijing-dongcheng")
    model = AreaModel.build(area, settings)
    layers = model.current_layers()
    assert layers.population is not None and layers.facilities is not None
    net = _independent_network(
        str(resolve_data_file("beijing-dongcheng/roads.geojson", settings)), layers.metric_crs
    )
    assert net.n_edges == layers.network.n_edges  # type: ignore[union-attr]
    fac = layers.facilities.geometry
    pop = layers.population.geometry
    expected = _networkx_distances(
        net,  # type: ignore[arg-type]
        (fac.x.to_numpy(), fac.y.to_numpy()),
        (pop.x.to_numpy(), pop.y.to_numpy()),
        1000.0,
    )
    people = layers.population.assign(covered=np.isfinite(expected))
    table = model.results().table.set_index("code")
    diffs: list[float] = []
    for code, group in people.groupby("unit_code"):
        total = float(group["population"].sum())
        pct = 100.0 * float(group.loc[group["covered"], "population"].sum()) / total
        diffs.append(abs(float(table.loc[code, "coverage_pct"]) - pct))
        assert table.loc[code, "coverage_pct"] == pytest.approx(pct, abs=0.5), code
    district = (
        100.0 * people.loc[people["covered"], "population"].sum() / people["population"].sum()
    )
    ours = model.results().summary["indicators"]["coverage_pct"]["value"]
    assert ours == pytest.approx(district, abs=0.5)
    print(
        f"largest per-街道 difference {max(diffs):.2e} pp; district {abs(ours - district):.2e} pp"
    )
