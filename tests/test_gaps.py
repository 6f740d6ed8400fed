"""Gap polygons, failing 街道 and slot shortfall on small hand-made layers."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from tuoyu.errors import InputValidationError
from tuoyu.indicators.gaps import (
    GAP_COLUMNS,
    failing_units,
    median_spacing_m,
    slot_shortfall_table,
    uncovered_areas,
)
from tuoyu.indicators.summary import unit_table
from tuoyu.indicators.targets import load_profile

from tests.test_indicators import TEST_PROFILE, build_fixture

X0, Y0 = 500_000.0, 3_270_000.0
CRS = "EPSG:32648"


def _grid_points() -> gpd.GeoDataFrame:
    """A 5 × 3 grid at 250 m. Uncovered: a 2 × 2 block in the west (x 0–1, y 0–1) and a
    single point in the east (x 4, y 2); the rest is covered.

        y=2   .  .  .  .  U
        y=1   U  U  .  .  .
        y=0   U  U  .  .  .
    """
    xs, ys = np.meshgrid(np.arange(5), np.arange(3))
    xs, ys = xs.ravel(), ys.ravel()
    people = (10 * (xs + 1) + ys).astype(float)  # distinct counts: 10·(x+1) + y
    frame = gpd.GeoDataFrame(
        {
            "point_id": [f"p{x}{y}" for x, y in zip(xs, ys, strict=True)],
            "unit_code": np.where(xs < 3, "W", "E"),
            "population": people,
            "population_under3": people * 0.02,
        },
        geometry=[shapely.Point(X0 + 250 * x, Y0 + 250 * y) for x, y in zip(xs, ys, strict=True)],
        crs=CRS,
    )
    uncovered = ((xs <= 1) & (ys <= 1)) | ((xs == 4) & (ys == 2))
    walk = np.where(uncovered, np.inf, 300.0)
    walk[(xs == 0) & (ys == 0)] = 1500.0  # finite but beyond the threshold: also a gap
    return frame, walk, uncovered


@pytest.mark.parametrize("method", ["zones", "grid", "h3"])
def test_gap_polygons_contain_uncovered_points_and_sum_people(method: str) -> None:
    pop, walk, uncovered = _grid_points()
    gaps = uncovered_areas(pop, walk, threshold_m=1000.0, method=method, h3_resolution=10)
    assert list(gaps.columns) == list(GAP_COLUMNS)
    assert gaps.crs == pop.crs
    # every uncovered point lies in exactly one polygon; no covered point's people counted
    hits = gaps.sindex.query(pop.geometry[uncovered].values, predicate="intersects")
    assert sorted(set(hits[0].tolist())) == list(range(int(uncovered.sum())))
    assert gaps["population"].sum() == pytest.approx(pop["population"][uncovered].sum())
    assert int(gaps["points"].sum()) == int(uncovered.sum())
    # under-3 = 2 % of the same people
    assert gaps["population_under3"].sum() == pytest.approx(
        0.02 * pop["population"][uncovered].sum()
    )
    assert gaps["gap_id"].tolist() == list(range(1, len(gaps) + 1))
    assert gaps["population"].is_monotonic_decreasing


def test_grid_method_groups_by_hand() -> None:
    pop, walk, _ = _grid_points()
    gaps = uncovered_areas(pop, walk, threshold_m=1000.0, method="grid")
    # spacing = 250 m → two areas: the west block (10+11+20+21 = 62 people, 4 points,
    # cells 1.05·250 = 262.5 m wide: union 512.5 m × 512.5 m) and the east point (52)
    assert len(gaps) == 2
    assert gaps["population"].tolist() == [62.0, 52.0]
    assert gaps["points"].tolist() == [4, 1]
    assert gaps["unit_codes"].tolist() == ["W", "E"]
    assert gaps["area_m2"].tolist() == pytest.approx([512.5**2, 262.5**2])


def test_median_spacing() -> None:
    pop, _, _ = _grid_points()
    assert median_spacing_m(pop.geometry) == pytest.approx(250.0)
    assert median_spacing_m(pop.geometry.iloc[:1]) == 100.0


def test_no_network_and_all_covered() -> None:
    pop, _, _ = _grid_points()
    none = uncovered_areas(pop, None, threshold_m=1000.0)
    assert len(none) == 0 and list(none.columns) == list(GAP_COLUMNS)
    assert "no walking network" in none.attrs["skipped"]
    covered = uncovered_areas(pop, np.zeros(len(pop)), threshold_m=1000.0)
    assert len(covered) == 0 and list(covered.columns) == list(GAP_COLUMNS)


def test_no_facilities_whole_district_is_gap() -> None:
    pop, _, _ = _grid_points()
    gaps = uncovered_areas(pop, np.full(len(pop), np.inf), threshold_m=1000.0, method="grid")
    assert len(gaps) == 1
    assert gaps["population"].iloc[0] == pytest.approx(pop["population"].sum())


def test_unknown_walk_and_under3() -> None:
    pop, walk, _ = _grid_points()
    walk = walk.copy()
    walk[0] = np.nan  # p00 (10 people) unknown → not a gap, counted
    pop.loc[1, "population_under3"] = np.nan  # index 1 = (x 1, y 0), 20 people
    gaps = uncovered_areas(pop, walk, threshold_m=1000.0, method="grid")
    assert gaps.attrs["points_walk_unknown"] == 1
    west = gaps[gaps["unit_codes"] == "W"].iloc[0]
    assert west["population"] == 11 + 20 + 21
    assert pd.isna(west["population_under3"])


def test_bad_input() -> None:
    pop, walk, _ = _grid_points()
    with pytest.raises(InputValidationError, match="metric CRS"):
        uncovered_areas(pop.to_crs(4326), walk, threshold_m=1000.0)
    with pytest.raises(InputValidationError, match="3 values for 15"):
        uncovered_areas(pop, walk[:3], threshold_m=1000.0)


def test_failing_units_and_shortfall_by_hand(tmp_path: Path) -> None:
    fx = build_fixture()
    path = tmp_path / "p.toml"
    path.write_text(TEST_PROFILE, encoding="utf-8")
    profile = load_profile(path)
    table = unit_table(
        fx["units"], fx["facilities"], fx["population"], fx["walk_all"], fx["walk_puhui"],
        profile=profile, threshold_m=1000.0, speed_kmh=4.0,
    )  # fmt: skip
    fail = failing_units(table, profile)
    by = {k: g for k, g in fail.groupby("indicator", sort=False)}
    # slots ≥ 1.5 fails in A (40k), C (40k), D (35k): ranked by people, ties by code
    assert by["slots_per_1000"]["code"].tolist() == ["A", "C", "D"]
    assert by["slots_per_1000"]["rank"].tolist() == [1, 2, 3]
    assert by["slots_per_1000"]["people_affected"].tolist() == [40_000, 40_000, 35_000]
    # 普惠 share ≥ 60 fails only in C (20 %); D is unknown and not listed
    assert by["puhui_slot_share"]["code"].tolist() == ["C"]
    assert by["puhui_slot_share"]["value"].tolist() == [20.0]
    # 街道 without 普惠: D
    assert by["puhui_jiedao_coverage"]["code"].tolist() == ["D"]
    # coverage ≥ 80 fails in D (30k outside) then B (10k outside)
    assert by["coverage_pct"]["code"].tolist() == ["D", "B"]
    assert by["coverage_pct"]["people_affected"].tolist() == [30_000, 10_000]
    assert list(fail["indicator"].unique()) == [t.indicator for t in profile.unit_targets]

    short = slot_shortfall_table(table, profile)
    # 1.5/1000: D 52.5 − 0, A 60 − 50, C 60 − 50, B 45 − 50
    assert short["code"].tolist() == ["D", "A", "C", "B"]
    assert short["slot_shortfall"].tolist() == pytest.approx([52.5, 10.0, 10.0, -5.0])
    assert short["target_slots"].tolist() == pytest.approx([52.5, 60.0, 60.0, 45.0])


def test_failing_units_empty() -> None:
    profile = load_profile("beijing-2025-core")
    table = pd.DataFrame(
        {"code": ["A"], "name": ["a"], "population": [1.0], "population_under3": [0.1],
         "slots_per_1000": [10.0], "meets_slots_per_1000": pd.array([True], dtype="boolean")}
    )  # fmt: skip
    out = failing_units(table, profile)
    assert len(out) == 0 and "people_affected" in out.columns
