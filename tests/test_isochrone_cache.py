"""The whole-network isochrone preparation runs once per network, not once per call.

Regression tests: ``IsochroneBuilder.clean`` (an STRtree pass over every edge) ran again
for every ``facility_isochrones`` call and every builder, and the model's
single-facility isochrone built a new builder per request (8.8 CPU-s per request on
10⁶ nodes).
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest
from tuoyu.isochrones import exact
from tuoyu.isochrones.exact import IsochroneBuilder, facility_isochrones
from tuoyu.network.graph import build_graph
from tuoyu.network.snap import snap_points
from tuoyu.reach.engine import facility_reach
from tuoyu.synthetic import random_facilities, synthetic_city
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import AreaLayers

from tests.test_analysis import _record, road_layers  # noqa: F401  (fixture)


@pytest.fixture()
def clean_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts whole-network clean passes (edges per pass)."""
    calls: list[int] = []
    real = exact._clean_mask

    def counting(p0: Any, p1: Any) -> Any:
        calls.append(int(p0.shape[0]))
        return real(p0, p1)

    monkeypatch.setattr(exact, "_clean_mask", counting)
    return calls


def test_clean_pass_once_per_network(clean_passes: list[int]) -> None:
    net = synthetic_city(400, seed=3)
    graph = build_graph(net)
    x, y = random_facilities(net, 3, seed=4)
    points = snap_points(graph, x, y, max_snap_m=300.0)
    reaches = [facility_reach(graph, points, i, 1000.0) for i in range(3)]
    first = facility_isochrones(net, reaches, ["a", "b", "c"], [5, 15], 4.0, points=points)
    second = facility_isochrones(net, reaches, ["a", "b", "c"], [5, 15], 4.0, points=points)
    assert IsochroneBuilder(net).clean is IsochroneBuilder(net).clean
    assert clean_passes == [net.n_edges]
    np.testing.assert_array_equal(first["area_m2"], second["area_m2"])
    assert not IsochroneBuilder(net).clean.flags.writeable
    other = synthetic_city(400, seed=5)
    IsochroneBuilder(other).clean  # noqa: B018  (a new network: a new pass)
    assert len(clean_passes) == 2


def test_cache_lets_networks_go() -> None:
    net = synthetic_city(100, seed=6)
    IsochroneBuilder(net).clean  # noqa: B018
    key = id(net)
    assert key in exact._CLEAN_CACHE
    del net
    gc.collect()
    assert key not in exact._CLEAN_CACHE


def test_model_keeps_one_builder(
    road_layers: AreaLayers,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[int] = []
    real_init = IsochroneBuilder.__init__

    def counting_init(self: IsochroneBuilder, network: Any) -> None:
        built.append(id(network))
        real_init(self, network)

    monkeypatch.setattr(IsochroneBuilder, "__init__", counting_init)
    model = AreaModel.from_layers(road_layers, facilities=[_record("F1", 500), _record("F2", 900)])
    first = model.facility_isochrone("F1", 5)
    model.facility_isochrone("F2", 10)
    again = model.facility_isochrone("F1", 5)
    assert len(built) == 1
    assert again == first
