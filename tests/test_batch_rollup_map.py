"""The roll-up map of a batch (tuoyu.outputs.maps.rollup_map), on hand-made rows.

Areas with an outline, with a representative point only, with no place at all, and a
failed area: none may be left off the page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from tuoyu.errors import InputValidationError
from tuoyu.outputs.maps import save_map
from tuoyu.outputs.maps.rollup_map import build_rollup_map, district_status, places_frame
from tuoyu.workflow.batch import AreaOutcome, rollup_table, typed_districts

from tests.browser_support import launched_chromium

X0, Y0 = 640_000.0, 3_260_000.0  # EPSG:32648, Chongqing


def _district(area: str, name: str, outside: float, shortfall: float, ok: bool | None) -> Any:
    failed = 0 if ok is not False else 2
    return typed_districts(
        pd.DataFrame(
            [
                {
                    "area": area,
                    "name": name,
                    "code": f"99{len(area)}",
                    "profile": "chongqing-2025",
                    "units": 9,
                    "population": 100_000.0,
                    "coverage_pct": 61.5,
                    "puhui_coverage_pct": 40.25,
                    "failing_units": 4,
                    "passing_units": 5,
                    "uncovered_population": outside,
                    "slot_shortfall": shortfall,
                    "targets_met": 0 if ok is None else 1,
                    "targets_failed": failed,
                    "district_pass": ok,
                    "failed_targets": "普惠托位占比 40.0%（目标 ≥ 60 %）" if failed else "",
                    "failed_targets_en": (
                        "普惠 share of slots 40.0% (target ≥ 60 %)" if failed else ""
                    ),
                }
            ]
        )
    )


@pytest.fixture()
def rollup() -> pd.DataFrame:
    outcomes = [
        AreaOutcome("west", "done", district=_district("west", "西区", 12_345.0, 210.0, False)),
        AreaOutcome("east", "skipped", district=_district("east", "东区", 5_000.0, -40.0, True)),
        AreaOutcome("north", "done", district=_district("north", "北区", 8_000.0, 0.0, None)),
        AreaOutcome("south", "failed", error="DataNotFoundError: gone.csv"),
    ]
    return rollup_table(outcomes)


@pytest.fixture()
def places() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"area": ["west", "east"]},
        geometry=[shapely.box(X0, Y0, X0 + 4_000.0, Y0 + 3_000.0), shapely.Point(X0 + 9_000, Y0)],
        crs="EPSG:32648",
    )


def _config(html: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" id="tuoyu-data-[^"]+">(.*?)</script>', html, re.S
    )
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_every_area_is_drawn_or_listed(rollup: pd.DataFrame, places: gpd.GeoDataFrame) -> None:
    html = build_rollup_map(rollup, places).get_root().render()
    config = _config(html)
    assert config["areas"] == {
        "ranked": ["west", "north", "east"],  # worst first by people outside the circle
        "polygons": ["west"],
        "points": ["east"],
        "unplaced": ["north"],
        "failed": ["south"],
        "failing_targets": ["west"],
    }
    district = config["geojson"][0]
    assert [p["area"] for p in district["props"]] == ["west"]
    west = district["props"][0]
    assert west["_s"]["fillColor"] == "#fdae61" and west["_s"]["color"] == "#d7191c"
    assert "12,345" in west["_p"] and "210" in west["_p"] and "普惠托位占比" in west["_p"]
    assert district["wgs84"][0]["type"] == "Polygon"  # reprojected from EPSG:32648
    lon, lat = district["wgs84"][0]["coordinates"][0][0]
    assert 106.0 < lon < 107.0 and 29.0 < lat < 30.0
    markers = config["markers"][0]
    assert markers["titles"] == ["1. 西区", "3. 东区"]  # ranks; north has no place
    assert "代表点" in markers["popups"][1] and "富余 40" in markers["popups"][1]
    panel = next(c["html"] for c in config["controls"] if c["cls"] == "tuoyu-summary-panel")
    for text in ("西区", "东区", "北区", "south", "DataNotFoundError: gone.csv", "无位置信息"):
        assert text in panel
    legend = next(c["html"] for c in config["controls"] if c["cls"] == "tuoyu-legend")
    assert "1 个区县无边界" in legend and "1 个区县无位置信息" in legend
    assert "1 个研究区运行失败" in legend
    assert "OpenStreetMap" in config["attributions"][0]


def test_english_and_empty_batches(rollup: pd.DataFrame) -> None:
    config = _config(build_rollup_map(rollup, None, language="en").get_root().render())
    assert config["areas"]["unplaced"] == ["west", "north", "east"]
    assert config["geojson"] == [] and config["markers"] == []
    panel = next(c["html"] for c in config["controls"] if c["cls"] == "tuoyu-summary-panel")
    assert "Districts ranked" in panel and "no location" in panel
    failed_only = rollup[rollup["status"] == "failed"]
    config = _config(build_rollup_map(failed_only, places_frame([])).get_root().render())
    assert config["areas"]["failed"] == ["south"] and config["bounds"] is None


def test_english_popups_name_the_failed_targets_in_english(
    rollup: pd.DataFrame, places: gpd.GeoDataFrame
) -> None:
    """Regression: the English roll-up map listed the failed targets in Chinese."""
    config = _config(build_rollup_map(rollup, places, language="en").get_root().render())
    west = config["geojson"][0]["props"][0]
    assert "普惠 share of slots 40.0% (target ≥ 60 %)" in west["_p"]
    assert "普惠托位占比" not in west["_p"]
    # a roll-up written before the English column keeps its Chinese text
    older = rollup.drop(columns="failed_targets_en")
    config = _config(build_rollup_map(older, places, language="en").get_root().render())
    assert "普惠托位占比 40.0%" in config["geojson"][0]["props"][0]["_p"]


def test_bad_input_is_named(rollup: pd.DataFrame) -> None:
    with pytest.raises(InputValidationError, match="status"):
        build_rollup_map(rollup.drop(columns="status"))
    with pytest.raises(InputValidationError, match="area"):
        build_rollup_map(rollup, gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)], crs=4326))
    assert district_status(pd.NA) is None and district_status(False) is False


@pytest.mark.slow
def test_rollup_map_in_chromium(
    rollup: pd.DataFrame, places: gpd.GeoDataFrame, tmp_path: Path
) -> None:
    page = save_map(build_rollup_map(rollup, places), tmp_path / "rollup.html")
    with launched_chromium() as browser:
        tab = browser.new_page(viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        tab.goto(page.as_uri())
        tab.wait_for_function("window.tuoyu && window.tuoyu.last && window.tuoyu.last.ready")
        assert errors == []
        assert tab.locator("path.leaflet-interactive").count() == 1  # the one outline
        assert tab.locator(".tuoyu-site").count() == 2  # west (in its outline), east
        tab.locator(".tuoyu-site", has_text="3").click()
        popup = tab.locator(".leaflet-popup-content").inner_text()
        assert "东区" in popup and "代表点" in popup
        tab.screenshot(path=str(tmp_path / "rollup.png"))
