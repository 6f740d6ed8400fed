"""The big-city benchmark runs end to end at a small size and judges its targets."""

from __future__ import annotations

from typing import Any

from benchmarks.bigcity import TARGETS, main, targets_check


def _run(cpu_s: float, rss_mb: float, sizes: dict[str, int]) -> dict[str, Any]:
    return {"total_cpu_s": cpu_s, "peak_rss_mb": rss_mb, "output_bytes": sizes}


def test_targets_are_judged_on_every_output_and_the_largest_page() -> None:
    sizes = {"coverage.gpkg": 60_000_000, "maps/gaps.html": 21_000_000, "maps/x.layers/": 1}
    got = targets_check(_run(29.9, 2100.0, sizes))
    assert got["total_cpu_s"]["met"] and not got["peak_rss_mb"]["met"]
    assert got["output_mb"] == {"target": TARGETS["output_mb"], "measured": 81.0, "met": True}
    assert got["map_page_mb"]["measured"] == 21.0 and not got["map_page_mb"]["met"]


def test_small_city_end_to_end() -> None:
    result = main(
        [
            "--nodes",
            "3000",
            "--facilities",
            "12",
            "--population",
            "400",
            "--units-per-side",
            "3",
            "--no-save",
        ]
    )
    run = result["run"]
    assert run["n_facilities"] == 12 and run["n_isochrone_rows"] == 36
    assert {r["stage"] for r in run["stages"]} >= {"load", "isochrones", "reports", "map gaps"}
    assert run["isochrone_method"] == "walk_field"
    assert run["isochrone_accuracy"]["cell_m"] == 5.0 and run["isochrone_accuracy"]["margin_m"] > 0
    assert run["output_bytes"]["coverage.gpkg"] > 0
    assert set(result["targets"]) == set(TARGETS)
    assert run["isochrone_endpoint"]["requests"] > 0
