"""Dongcheng end to end: on its road layer; without a network → 15-minute columns empty
with the reason; the explicit straight-line stand-in is computed and labelled approximate
everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tuoyu.config.settings import Settings
from tuoyu.progress import SILENT
from tuoyu.workflow.run import analyse_area

from tests.conftest import area_without_network


def test_dongcheng_without_network(tmp_path: Path, settings: Settings) -> None:
    area_file = area_without_network("beijing-dongcheng", tmp_path)
    run = analyse_area(
        area_file, tmp_path / "out", settings, SILENT, month="2026-11",
        maps_dir=tmp_path / "maps",
    )  # fmt: skip
    table = run.results.table
    assert len(table) == 17
    assert table["coverage_pct"].isna().all()
    assert table["slots_per_1000"].isna().all()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text("utf-8"))
    reason = summary["indicators"]["coverage_pct"]["reason"]
    assert "no walking network" in reason
    assert summary["indicators"]["puhui_jiedao_coverage"]["pass"] is False
    for name in ("jiedao.csv", "jiedao.xlsx", "coverage.gpkg", "progress_2026-11.xlsx"):
        assert (tmp_path / "out" / name).is_file()
    for name in ("facilities.html", "dashboard.html", "gaps.html"):
        assert (tmp_path / "maps" / name).is_file()
    # a rerun gives byte-identical tables
    first = (tmp_path / "out" / "jiedao.csv").read_bytes()
    analyse_area(
        area_file, tmp_path / "out", settings, SILENT, month="2026-11",
        maps_dir=tmp_path / "maps",
    )  # fmt: skip
    assert (tmp_path / "out" / "jiedao.csv").read_bytes() == first


def test_a_layer_above_the_gpkg_setting_is_written_as_geoparquet(
    tmp_path: Path, settings: Settings
) -> None:
    """``TUOYU_GPKG_LAYER_MAX_MB`` reaches the writer: Dongcheng's population layer (about
    0.5 MB in a GeoPackage) goes to population.parquet under a 0.3 MB setting."""
    import geopandas as gpd
    import pyogrio

    area_file = area_without_network("beijing-dongcheng", tmp_path)
    small = settings.model_copy(update={"gpkg_layer_max_mb": 0.3})
    analyse_area(area_file, tmp_path / "out", small, SILENT, month="2026-11",
                 write_map_files=False)  # fmt: skip
    out = tmp_path / "out"
    population = gpd.read_parquet(out / "population.parquet")
    assert len(population) > 1000
    layers = set(pyogrio.list_layers(out / "coverage.gpkg")[:, 0])
    assert "population" not in layers and "units" in layers
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert any(s["indicator"] == "coverage.gpkg: population" for s in summary["skipped"])


def test_dongcheng_straight_line_is_labelled_approximate(
    tmp_path: Path, settings: Settings
) -> None:
    area_file = area_without_network(
        "beijing-dongcheng", tmp_path, '\n[network]\nmode = "straight_line"\ndetour_factor = 1.3\n'
    )
    run = analyse_area(area_file, tmp_path / "out", settings, SILENT, month="2026-11",
                       maps_dir=tmp_path / "maps")  # fmt: skip
    table = run.results.table
    assert table["coverage_pct"].notna().all()
    assert (table["coverage_pct"] > 0).any()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text("utf-8"))
    assert summary["approximate"] is True
    assert "detour factor 1.3" in summary["approximate_note"]
    gaps = json.loads((tmp_path / "out" / "gaps.geojson").read_text("utf-8"))
    assert any("detour" in note for note in gaps.get("notes", []))
    # people within 1,000 m / 1.3 straight line of a kindergarten are covered
    pop = run.layers.population
    assert pd.notna(pop["population"]).all()
