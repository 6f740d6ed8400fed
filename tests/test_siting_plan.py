"""Siting on the real Yuzhong network: candidates, exact vs greedy, outputs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tuoyu.cli import main
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import load_area
from tuoyu.indicators.targets import load_profile
from tuoyu.progress import SILENT
from tuoyu.siting.plan import candidate_sites, plan_sites
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import load_layers

from tests.conftest import area_without_network


@pytest.fixture(scope="module")
def yuzhong(settings: Settings):
    layers = load_layers(load_area("chongqing-yuzhong"), settings, SILENT)
    reach = AreaModel.from_layers(layers).reach()
    assert reach is not None
    candidates = candidate_sites(layers, spacing_m=150.0)
    return layers, reach, candidates


def test_candidates_from_osm_and_network(yuzhong) -> None:
    layers, _, candidates = yuzhong
    sources = set(candidates["source"])
    assert {"osm", "network"} <= sources
    assert candidates["candidate_id"].is_unique
    outline = layers.outline.union_all()
    assert candidates.within(outline.buffer(1.0)).all()


@pytest.mark.slow
@pytest.mark.parametrize("p", [5, 10, 20])
def test_greedy_close_to_exact(yuzhong, p: int) -> None:
    """Lazy greedy + 1-swap against the proven optimum on Yuzhong.

    A heuristic, not a bound: with the floor-area-bounded building population the gap
    measured 3.0 % at p = 5 (it was < 2 % with the unbounded one); 5 % is the promise.
    """
    layers, reach, candidates = yuzhong
    profile = load_profile("chongqing-2025")
    exact = plan_sites(layers, reach, profile, p, candidates=candidates, solver="exact")
    greedy = plan_sites(layers, reach, profile, p, candidates=candidates, solver="greedy")
    assert exact.result.optimal
    assert greedy.result.objective <= exact.result.objective + 1e-6
    assert greedy.result.objective >= 0.95 * exact.result.objective
    # the people each site adds sum to the objective when under-3s are maximised
    assert exact.weight_column == "population_under3"
    assert exact.sites["added_under3"].sum() == pytest.approx(exact.result.objective, abs=0.1 * p)
    shares = exact.sites["covered_share_after_pct"].to_numpy()
    assert np.all(np.diff(shares) >= -1e-9)
    after = exact.after.summary["indicators"]["coverage_pct"]["value"]
    assert after == pytest.approx(shares[-1], abs=0.05)
    assert exact.isochrones is not None
    assert set(exact.isochrones["rank"]) == set(range(1, len(exact.sites) + 1))


def test_cli_site_writes_outputs(tmp_path: Path, settings: Settings, monkeypatch) -> None:
    monkeypatch.setenv("TUOYU_CACHE_DIR", str(settings.cache_dir))
    out, maps = tmp_path / "out", tmp_path / "maps"
    code = main(["site", "chongqing-yuzhong", "--p", "3", "--out", str(out), "--maps", str(maps)])
    assert code == 0
    for name in ("sites.csv", "sites.geojson", "site_isochrones.geojson", "jiedao_after.csv"):
        assert (out / name).is_file(), name
    siting = json.loads((out / "siting.json").read_text("utf-8"))
    assert siting["sites"] == 3 and siting["optimal"] is True
    sites = json.loads((out / "sites.geojson").read_text("utf-8"))
    assert sites["attribution"] == "© OpenStreetMap contributors"
    assert len(sites["features"]) == 3
    assert (maps / "gaps.html").is_file()


def test_cli_site_without_network_is_a_clear_error(tmp_path: Path, capsys) -> None:
    area = area_without_network("beijing-dongcheng", tmp_path)
    code = main(["site", str(area), "--out", str(tmp_path), "--maps", str(tmp_path)])
    assert code == 2
    assert "siting needs a walking network" in capsys.readouterr().err


def test_fewest_sites_for_a_coverage_goal(yuzhong) -> None:
    layers, reach, candidates = yuzhong
    profile = load_profile("chongqing-2025")
    plan = plan_sites(
        layers, reach, profile, 0, candidates=candidates, solver="greedy", goal_share=0.6
    )
    weights = layers.population["population_under3"].to_numpy()
    covered = plan.result.cumulative_weight[-1] / weights.sum()
    assert covered >= 0.6 - 1e-9
    # one site fewer cannot reach the goal by the greedy's own lower bound
    assert plan.result.sites_lower_bound is None or plan.result.sites_lower_bound <= len(plan.sites)
