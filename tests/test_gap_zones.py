"""Contiguous gap zones (``uncovered_areas(method="zones")``) and the gap map that shows
them one layer at a time.

Hand cases at a 150 m merge distance, then the real districts: Dongcheng (road layer,
kindergartens) and Yuzhong (OSM, no facilities: everyone is outside the circle).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import load_area
from tuoyu.errors import InputValidationError
from tuoyu.indicators.gaps import DEFAULT_MERGE_M, GAP_COLUMNS, uncovered_areas
from tuoyu.outputs.maps import build_gap_map, save_map
from tuoyu.outputs.maps.gap_map import hexagon_size_text
from tuoyu.progress import SILENT
from tuoyu.workflow.core import AreaModel
from tuoyu.workflow.layers import load_layers
from tuoyu.workflow.steps import population_with_walk

from tests.test_maps import page_layer
from tests.test_maps_browser import browser  # noqa: F401  (the Chromium fixture)

CRS = "EPSG:32650"
X0, Y0 = 450_000.0, 4_420_000.0


def _points(
    xy: Sequence[tuple[float, float]], people: list[float], codes: list[str] | None = None
) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {
            "population": people,
            "population_under3": [0.02 * p for p in people],
            "unit_code": codes or ["A"] * len(xy),
        },
        geometry=[shapely.Point(X0 + x, Y0 + y) for x, y in xy],
        crs=CRS,
    )
    return frame


def test_points_100_m_apart_form_one_zone() -> None:
    pop = _points([(0, 0), (100, 0)], [10.0, 30.0])
    zones = uncovered_areas(pop, [np.inf, 1500.0], threshold_m=1000.0, merge_distance_m=150.0)
    assert list(zones.columns) == list(GAP_COLUMNS)
    assert len(zones) == 1
    assert zones["population"].iloc[0] == 40.0
    assert zones["population_under3"].iloc[0] == pytest.approx(0.8)
    assert zones["points"].iloc[0] == 2
    assert zones.geometry.iloc[0].geom_type == "Polygon"  # one contiguous area
    assert zones.geometry.iloc[0].contains(pop.geometry).all()
    assert zones.attrs["merge_distance_m"] == 150.0 and zones.attrs["method"] == "zones"


def test_points_400_m_apart_form_two_zones() -> None:
    pop = _points([(0, 0), (400, 0)], [10.0, 30.0], ["A", "B"])
    zones = uncovered_areas(pop, [np.inf, np.inf], threshold_m=1000.0, merge_distance_m=150.0)
    assert len(zones) == 2
    assert zones["population"].tolist() == [30.0, 10.0]  # rank 1 = most people
    assert zones["gap_id"].tolist() == [1, 2]
    assert zones["unit_codes"].tolist() == ["B", "A"]
    assert zones["population"].sum() == pop["population"].sum()  # people conserved
    assert not zones.geometry.iloc[0].intersects(zones.geometry.iloc[1])


def test_zones_chain_and_skip_covered_people() -> None:
    # A–B 120 m, B–C 120 m (A–C 240 m) chain into one zone; D is covered; E is alone
    xy = [(0, 0), (120, 0), (240, 0), (300, 300), (1000, 0)]
    pop = _points(xy, [1.0, 2.0, 3.0, 50.0, 7.0], ["A", "A", "B", "B", "B"])
    walk = [2000.0, 2000.0, 2000.0, 200.0, np.inf]
    zones = uncovered_areas(
        pop, walk, threshold_m=1000.0, merge_distance_m=150.0, unit_names={"A": "甲", "B": "乙"}
    )
    assert zones["population"].tolist() == [7.0, 6.0]
    assert zones["points"].tolist() == [1, 3]
    # 街道 of a zone, most people first: B has 3 of the 6 people, A 1 + 2
    assert zones["unit_codes"].tolist() == ["B", "A,B"]
    assert zones["unit_names"].tolist() == ["乙", "甲,乙"]
    assert zones["population"].sum() == 13.0  # the covered 50 are no gap


def test_zone_merge_distance_must_be_positive() -> None:
    pop = _points([(0, 0)], [1.0])
    with pytest.raises(InputValidationError, match="merge_distance_m"):
        uncovered_areas(pop, [np.inf], threshold_m=1000.0, merge_distance_m=0.0)


@pytest.fixture(scope="module", params=["beijing-dongcheng", "chongqing-yuzhong"])
def district(request: pytest.FixtureRequest, settings: Settings) -> dict[str, Any]:
    layers = load_layers(load_area(request.param), settings, SILENT)
    model = AreaModel.from_layers(layers)
    reach = model.reach()
    assert reach is not None and reach.walk_m_all is not None
    return {"layers": layers, "reach": reach, "model": model}


def test_real_zones_are_few_and_keep_the_people(district: dict[str, Any]) -> None:
    layers, reach = district["layers"], district["reach"]
    pop = layers.population
    walk = reach.walk_m_all
    outside = (walk > reach.threshold_m) & (pop["population"].to_numpy() > 0)
    zones = uncovered_areas(pop, walk, threshold_m=reach.threshold_m)
    assert zones.attrs["merge_distance_m"] == DEFAULT_MERGE_M
    assert int(zones["points"].sum()) == int(outside.sum())
    assert len(zones) * 4 < int(outside.sum())  # far fewer zones than points
    assert zones["population"].sum() == pytest.approx(pop["population"].to_numpy()[outside].sum())
    assert zones.geometry.is_valid.all()
    # zones do not overlap: total area equals the area of their union
    assert zones.area.sum() == pytest.approx(zones.union_all().area, rel=1e-6)
    # every uncovered point lies in exactly one zone
    hits = zones.sindex.query(pop.geometry[outside].values, predicate="intersects")
    assert np.bincount(hits[0], minlength=int(outside.sum())).tolist() == [1] * int(outside.sum())


_DATA_RE = re.compile(r'<script type="application/json" id="tuoyu-data-[^"]+">(.*?)</script>', re.S)


def test_gap_map_one_layer_at_a_time(district: dict[str, Any]) -> None:
    layers, reach, model = district["layers"], district["reach"], district["model"]
    gaps = model.results().gaps
    m = build_gap_map(
        population_with_walk(layers, reach),
        gaps,
        units=layers.units,
        facilities=layers.facilities,
        threshold_m=reach.threshold_m,
        area_name=layers.area.area.name,
    )
    html = m.get_root().render()
    cfg = json.loads(_DATA_RE.findall(html)[0])
    layers_by_key = {g["key"]: g for g in cfg["geojson"]}
    zones = page_layer(html, "gaps")
    assert len(zones) == len(gaps) == cfg["counts"]["gaps"]
    assert [zones[i]["values"][1] for i in range(len(gaps))] == [
        round(p) for p in gaps["population"]
    ]
    # the thematic layers are switched by one control: zones on, hexagons off
    groups = {g["key"]: g["container"] for g in cfg["geojson"]}
    assert f"{groups['gaps']}.addTo(" in html
    assert f"{groups['uncovered']}.addTo(" not in html
    assert "overlayadd" in html and "data-tuoyu-layer" in html
    legend = next(c["html"] for c in cfg["controls"] if c.get("cls") == "tuoyu-legend")
    assert hexagon_size_text(9) in legend and "边长约 201 米" in legend
    assert f"相距不超过 {DEFAULT_MERGE_M:g} 米" in legend
    assert f"{len(gaps):,} 片" in legend
    columns = {c["label"]: c for c in layers_by_key["gaps"]["columns"]}
    assert "缺口区排名" in columns
    if layers.units_kind == "jiedao":
        # the 街道 of the first zones are named in their tooltips
        names = columns["街道"]["texts"]
        assert all(names[zones[i]["values"][3]] for i in range(min(5, len(gaps))))


def test_gap_map_layers_switch_in_the_browser(
    browser: Any,  # noqa: F811  (the imported fixture)
    settings: Settings,
    tmp_path: Path,
) -> None:
    """In Chromium: zones drawn first; ticking the hexagons replaces them (and the legend)."""
    from tests.test_maps_browser import MapPage

    layers = load_layers(load_area("beijing-dongcheng"), settings, SILENT)
    model = AreaModel.from_layers(layers)
    reach = model.reach()
    assert reach is not None
    gaps = model.results().gaps
    m = build_gap_map(
        population_with_walk(layers, reach),
        gaps,
        units=layers.units,
        facilities=layers.facilities,
        threshold_m=reach.threshold_m,
    )
    path = save_map(m, tmp_path / "gaps.html")
    counts = json.loads(_DATA_RE.findall(path.read_text("utf-8"))[0])["counts"]
    mp = MapPage(browser, path)
    try:
        drawn = "(k) => tuoyu.last.layers[k].layer.getLayers().length"
        on = "(k) => tuoyu.last.map.hasLayer(tuoyu.last.layers[k].layer)"
        legend = (
            "(k) => getComputedStyle(document.querySelector("
            "'[data-tuoyu-layer=\"' + k + '\"]')).display"
        )
        mp.page.wait_for_function(f"() => ({legend})('uncovered') === 'none'")
        assert mp.js(drawn, "units") == counts["units"]
        assert mp.js(drawn, "gaps") == counts["gaps"]
        # a layer switched off is not even read
        assert mp.js(drawn, "uncovered") == 0
        assert mp.js(on, "gaps") and not mp.js(on, "uncovered")
        assert mp.js(legend, "gaps") != "none"
        mp.page.locator(
            ".leaflet-control-layers-overlays label", has_text="15分钟步行范围外人口"
        ).click()
        mp.page.wait_for_function(f"() => !({on})('gaps')")
        assert mp.js(on, "uncovered")
        mp.page.wait_for_function(f"(n) => ({drawn})('uncovered') === n", arg=counts["uncovered"])
        mp.page.wait_for_function(f"() => ({legend})('gaps') === 'none'")
        assert mp.js(legend, "uncovered") != "none"
        checked = mp.js(
            "() => Array.from(document.querySelectorAll('.leaflet-control-layers-overlays label'))"
            ".filter(l => l.querySelector('input').checked).map(l => l.textContent.trim())"
        )
        assert "缺口区域（连片）" not in checked and "15分钟步行范围外人口" in checked
        mp.check_clean()
    finally:
        mp.close()
