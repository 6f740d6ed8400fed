"""tuoyu batch: many study areas on a Dask LocalCluster (tuoyu.workflow.batch).

The batch runs 6 small synthetic study areas (written to a temp folder by
``benchmarks.batch.write_synthetic_area``, side by side), a larger synthetic city routed
in tiles (its TOML says ``[run] tile_size_m``; a hole in its streets holds a small
network island, stranded people and a stranded facility), the two shipped areas and one
broken area on 2 worker processes, once per module; each area's files must equal those
of ``analyse_area`` run directly, and the tiled city's those of its untiled run.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import duckdb
import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import load_area
from tuoyu.errors import InputValidationError
from tuoyu.progress import SILENT
from tuoyu.workflow.batch import (
    DISTRICT_COLUMNS,
    area_fingerprint,
    expand_areas,
    read_manifest,
    run_batch,
)
from tuoyu.workflow.batch_cli import add_batch_parser
from tuoyu.workflow.run import analyse_area

from benchmarks.batch import write_synthetic_area

MONTH = "2026-11"
SHIPPED = ("chongqing-yuzhong", "beijing-dongcheng")
TILED = "city-tiled"


@pytest.fixture(scope="module")
def area_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("areas")
    paths = [
        write_synthetic_area(
            folder,
            f"syn-{i}",
            n_nodes=900 + 300 * i,
            n_facilities=8 + 2 * i,
            n_population=400 + 100 * i,
            seed=40 + i,
            offset_m=(8_000.0 * (i % 3), -8_000.0 * (i // 3)),
        )
        for i in range(6)
    ]
    tiled = write_synthetic_area(
        folder,
        TILED,
        n_nodes=3_600,
        n_facilities=30,
        n_population=3_000,
        seed=61,
        units_per_side=4,
        offset_m=(24_000.0, 0.0),
        tile_size_m=1_500.0,
    )
    _strand_people_on_an_island(folder / TILED)
    broken = folder / "broken.toml"
    broken.write_text(paths[0].read_text("utf-8").replace("totals.csv", "nope.csv"), "utf-8")
    return [*paths, tiled, broken]


def _strand_people_on_an_island(data: Path) -> None:
    """Cut a 900 m hole into the streets, put a 16-node island in it, and people and
    two facilities along a line from the island to the hole's edge: some snap to the
    island's surroundings (moved off it), some are off-network, one facility too."""
    roads = gpd.read_parquet(data / "roads.parquet")
    x0, y0, x1, y1 = roads.total_bounds
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    hole = shapely.box(cx - 450.0, cy - 450.0, cx + 450.0, cy + 450.0)
    roads = roads[~roads.intersects(hole)]
    nodes = [(cx + 50.0 * (i - 1.5), cy + 50.0 * (j - 1.5)) for j in range(4) for i in range(4)]
    island = [
        shapely.LineString([nodes[a], nodes[b]])
        for a in range(16)
        for b in (a + 1, a + 4)
        if b < 16 and (b == a + 4 or b % 4 != 0)
    ]
    extra = gpd.GeoDataFrame(
        {"road_id": np.arange(len(island)) + 10_000_000}, geometry=island, crs=roads.crs
    )
    pd.concat([roads, extra], ignore_index=True).to_parquet(data / "roads.parquet")
    weights = gpd.read_file(data / "weights.geojson")
    steps = [10.0, 40.0, 80.0, 130.0, 180.0, 230.0, 280.0, 330.0, 380.0, 420.0]
    stranded = gpd.GeoDataFrame(
        {"weight": [5.0] * (2 * len(steps))},
        geometry=[shapely.Point(cx + d, cy + 3.0) for d in steps]
        + [shapely.Point(cx - 0.7 * d, cy - 0.7 * d) for d in steps],
        crs=weights.crs,
    )
    pd.concat([weights, stranded], ignore_index=True).to_file(
        data / "weights.geojson", driver="GeoJSON"
    )
    facilities = gpd.read_file(data / "facilities.geojson")
    more = gpd.GeoDataFrame(
        {
            "id": ["F-island", "F-hole-edge"],
            "name": ["岛上托育点", "缺口边托育点"],
            "kind": ["社区托育点", "社区托育点"],
            "puhui": ["是", "是"],
            "slots": [30, 40],
        },
        geometry=[shapely.Point(cx + 5.0, cy + 5.0), shapely.Point(cx + 300.0, cy - 20.0)],
        crs=roads.crs,
    ).to_crs(facilities.crs)
    pd.concat([facilities, more], ignore_index=True).to_file(
        data / "facilities.geojson", driver="GeoJSON"
    )


@pytest.fixture(scope="module")
def batch_run(
    area_files: list[Path], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("batch")
    result = run_batch(
        [*area_files, *SHIPPED], out, workers=2, settings=settings, progress=SILENT, month=MONTH
    )
    return out, result


@pytest.mark.slow
def test_every_area_runs_and_the_broken_one_is_reported(batch_run, area_files) -> None:  # type: ignore[no-untyped-def]
    _, result = batch_run
    statuses = result.statuses()
    assert statuses == {**{p.stem: "done" for p in area_files[:-1]}, "broken": "failed",
                        **dict.fromkeys(SHIPPED, "done")}  # fmt: skip
    broken = result.by_slug()["broken"]
    assert broken.error.startswith("DataNotFoundError") and "nope.csv" in broken.error
    assert "\n" not in broken.error
    for outcome in result.outcomes:
        if outcome.status == "done":
            assert outcome.seconds > 0 and outcome.peak_rss_mb and outcome.peak_rss_mb > 50
            assert outcome.table is not None and len(outcome.district) == 1
    assert not result.ok
    assert len({o.worker for o in result.outcomes if o.worker}) == 2  # both workers used


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 3, 5, 6, "chongqing-yuzhong", "beijing-dongcheng"])
def test_outputs_equal_a_direct_run(batch_run, area_files, settings, tmp_path, index) -> None:  # type: ignore[no-untyped-def]
    out, _ = batch_run
    area = area_files[index] if isinstance(index, int) else index
    slug = Path(str(area)).stem
    direct = tmp_path / "direct"
    analyse_area(area, direct, settings, SILENT, month=MONTH, maps_dir=tmp_path / "maps")
    assert (out / slug / "jiedao.csv").read_bytes() == (direct / "jiedao.csv").read_bytes()
    batch_summary = json.loads((out / slug / "summary.json").read_text("utf-8"))
    direct_summary = json.loads((direct / "summary.json").read_text("utf-8"))
    # summary.json holds no absolute path or timestamp today (input files are named
    # relative to the data directory or by file name), so it must be equal as a whole.
    assert batch_summary == direct_summary
    for name in ("facilities.html", "dashboard.html", "gaps.html"):
        assert (out / slug / "maps" / name).is_file() == (tmp_path / "maps" / name).is_file()


@pytest.mark.slow
def test_parquet_outputs_read_back_with_pandas_and_duckdb(batch_run) -> None:  # type: ignore[no-untyped-def]
    out, result = batch_run
    done = sorted(o.slug for o in result.outcomes if o.status == "done")
    jiedao = pd.read_parquet(out / "jiedao.parquet")
    assert sorted(jiedao["area"].astype(str).unique()) == done
    for outcome in result.outcomes:
        if outcome.status != "done":
            continue
        part = jiedao[jiedao["area"].astype(str) == outcome.slug].drop(columns="area")
        direct = pd.read_csv(out / outcome.slug / "jiedao.csv", encoding="utf-8-sig",
                             dtype={"code": str})  # fmt: skip
        assert part["code"].astype(str).tolist() == direct["code"].tolist()
        assert part["population"].astype(float).round(4).tolist() == pytest.approx(
            direct["population"].astype(float).tolist(), abs=1e-4, nan_ok=True
        )
    districts = pd.read_parquet(out / "districts.parquet")
    assert list(districts.columns) == list(DISTRICT_COLUMNS)
    assert sorted(districts["area"]) == done
    glob = (out / "jiedao.parquet").as_posix() + "/*/*.parquet"
    relation = duckdb.sql(
        f"select area, count(*) as n, count(population) as known, "
        f"sum(population) as people, sum(uncovered_population) as outside "
        f"from read_parquet('{glob}', hive_partitioning=true) group by area order by area"
    )
    assert relation is not None
    per_area = relation.df()
    assert per_area["area"].tolist() == done
    merged = per_area.merge(districts, on="area")
    assert (merged["n"] == merged["units"]).all()
    # district totals equal the sums of the units where every unit's population is known
    # (a study area may give only a district total: its units then stay empty)
    merged = merged[merged["known"] == merged["n"]]
    assert len(merged) >= 6
    assert merged["people"].to_numpy() == pytest.approx(merged["population"].to_numpy(), rel=1e-9)
    assert merged["outside"].to_numpy() == pytest.approx(
        merged["uncovered_population"].to_numpy(), rel=1e-9
    )


@pytest.mark.slow
def test_rollup_ranks_worst_first_and_lists_failures(batch_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = batch_run
    raw = (out / "rollup.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rollup = pd.read_csv(out / "rollup.csv", encoding="utf-8-sig")
    ranked = rollup[rollup["status"] == "done"]
    assert ranked["uncovered_population"].is_monotonic_decreasing
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert rollup["area"].iloc[-1] == "broken" and rollup["status"].iloc[-1] == "failed"
    sheet = openpyxl.load_workbook(out / "rollup.xlsx").active
    headers = [c.value for c in sheet[1]]
    assert "15分钟步行未覆盖人口（人）" in headers and "未达标街道数" in headers
    # the English text of the failed targets is for the English map, not the committee's sheet
    assert "区县未达标目标" in headers and "failed_targets_en" not in headers


@pytest.mark.slow
def test_rerun_runs_only_what_is_missing(batch_run, area_files, settings) -> None:  # type: ignore[no-untyped-def]
    out, first = batch_run
    manifest = read_manifest(out)
    assert manifest["areas"]["syn-1"]["status"] == "done"
    shutil.rmtree(out / "syn-2")  # one area's outputs lost
    again = run_batch(
        [area_files[0].parent, *SHIPPED], out, workers=2, settings=settings, progress=SILENT,
        month=MONTH,
    )  # fmt: skip
    statuses = again.statuses()
    assert statuses["syn-2"] == "done"
    assert statuses["broken"] == "failed"
    assert {s for k, s in statuses.items() if k not in ("syn-2", "broken")} == {"skipped"}
    # skipped areas still appear in the combined outputs, with the same numbers
    districts = pd.read_parquet(out / "districts.parquet")
    assert len(districts) == len(first.outcomes) - 1
    before = first.by_slug()["syn-1"].district
    after = again.by_slug()["syn-1"].district
    assert before is not None and after is not None
    pd.testing.assert_frame_equal(
        after.reset_index(drop=True), before.reset_index(drop=True),
        check_dtype=False,
    )  # fmt: skip


@pytest.mark.slow
def test_tiled_area_equals_its_untiled_run(batch_run, area_files, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out, result = batch_run
    tiled = result.by_slug()[TILED]
    assert tiled.status == "done" and tiled.table is not None
    summary = json.loads((out / TILED / "summary.json").read_text("utf-8"))
    tiling = summary.pop("tiling")
    assert tiling["population_tiles"] > 4 and tiling["facility_tiles"] > 1
    assert tiling["halo_m"] == pytest.approx(1000.0 + 300.0 + 1.0)
    assert tiling["max_tile_nodes"] < 3_600  # no tile held the whole city
    # the hole exercised the island filter and the off-network counts
    warnings = " ".join(summary["warnings"])
    assert "small disconnected piece" in warnings and "population points farther" in warnings
    assert "1 facilities farther than 300 m" in warnings

    untiled = analyse_area(
        area_files[6], tmp_path / "untiled", settings, SILENT, month=MONTH,
        maps_dir=tmp_path / "maps", tile_size_m=0.0,
    )  # fmt: skip
    assert "tiling" not in untiled.results.summary
    direct = untiled.results.table.drop(columns=["geometry"], errors="ignore")
    assert (direct["coverage_pct"] < 99.0).sum() >= 8  # a real mix of covered and not
    pd.testing.assert_frame_equal(
        tiled.table.reset_index(drop=True), direct.reset_index(drop=True),
        check_exact=False, rtol=0.0, atol=1e-9,
    )  # fmt: skip
    assert summary == json.loads((tmp_path / "untiled" / "summary.json").read_text("utf-8"))
    for name in ("jiedao.csv", "isochrones.geojson", "gaps.geojson"):
        assert (out / TILED / name).read_bytes() == (tmp_path / "untiled" / name).read_bytes()


@pytest.mark.slow
def test_rollup_map_shows_every_area(batch_run) -> None:  # type: ignore[no-untyped-def]
    out, result = batch_run
    text = (out / "rollup.html").read_text("utf-8")
    config = json.loads(
        re.search(r'<script type="application/json" id="tuoyu-data-[^"]+">(.*?)</script>',
                  text, re.S).group(1)  # type: ignore[union-attr]
    )  # fmt: skip
    areas = config["areas"]
    done = [o.slug for o in result.outcomes if o.status != "failed"]
    assert sorted(areas["ranked"]) == sorted(done)
    assert areas["failed"] == ["broken"]
    # every area with results has a polygon here (synthetic 街道, Yuzhong's outline, …)
    assert sorted(areas["polygons"]) == sorted(done) and areas["unplaced"] == []
    rollup = pd.read_csv(out / "rollup.csv", encoding="utf-8-sig")
    assert areas["ranked"] == rollup[rollup["status"] != "failed"]["area"].tolist()
    failing = rollup[rollup["district_pass"].astype(str) == "False"]["area"].tolist()
    assert sorted(areas["failing_targets"]) == sorted(failing) and failing
    props = {p["area"]: p for p in config["geojson"][0]["props"]}
    yuzhong = rollup.set_index("area").loc["chongqing-yuzhong"]
    popup = props["chongqing-yuzhong"]["_p"]
    assert f"{yuzhong['uncovered_population']:,.0f}" in popup
    assert "托位缺口" in popup and "重庆市渝中区" in popup
    assert "broken" in text and "DataNotFoundError" in text  # the failed area is listed
    assert "OpenStreetMap" in config["attributions"][0]  # credits, as on every map
    place = json.loads((out / "places" / "chongqing-yuzhong.geojson").read_text("utf-8"))
    assert place["features"][0]["properties"]["kind"] == "outline"


@pytest.mark.slow
def test_district_pass_follows_the_targets(batch_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = batch_run
    districts = pd.read_parquet(out / "districts.parquet")
    assert str(districts["district_pass"].dtype) == "boolean"
    failed = districts["targets_failed"] > 0
    assert (districts.loc[failed, "district_pass"] == False).all()  # noqa: E712
    assert (districts.loc[failed, "failed_targets"].str.len() > 0).all()
    english = districts.loc[failed, "failed_targets_en"]
    assert english.str.contains(r"\(target ").all() and not english.str.contains("目标").any()
    judged = ~failed & (districts["targets_met"] > 0)
    assert (districts.loc[judged, "district_pass"] == True).all()  # noqa: E712
    for row in districts.itertuples():
        summary = json.loads((out / row.area / "summary.json").read_text("utf-8"))
        verdicts = [e.get("pass") for e in summary["indicators"].values()]
        assert row.targets_failed == verdicts.count(False)
        assert row.targets_met == verdicts.count(True)


def test_fingerprint_follows_inputs_and_parameters(tmp_path: Path, settings: Settings) -> None:
    toml = write_synthetic_area(
        tmp_path, "fp", n_nodes=100, n_facilities=2, n_population=20, seed=3
    )
    area = load_area(toml)
    first = area_fingerprint(area, settings, {"month": MONTH})
    assert first == area_fingerprint(area, settings, {"month": MONTH})
    assert first != area_fingerprint(area, settings, {"month": "2026-12"})
    facilities = tmp_path / "fp" / "facilities.geojson"
    facilities.write_bytes(facilities.read_bytes() + b"\n")
    assert first != area_fingerprint(area, settings, {"month": MONTH})
    (tmp_path / "fp" / "weights.geojson").unlink()
    assert area_fingerprint(area, settings, {"month": MONTH})  # a missing file still hashes


def test_bad_arguments_and_manifest(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(InputValidationError, match="no study-area"):
        expand_areas([tmp_path])
    with pytest.raises(InputValidationError, match="workers"):
        run_batch(["chongqing-yuzhong"], tmp_path, workers=0, settings=settings)
    with pytest.raises(InputValidationError, match="tile_size_m"):
        run_batch(["chongqing-yuzhong"], tmp_path, tile_size_m=-1.0, settings=settings)
    with pytest.raises(InputValidationError, match="tile_above_nodes"):
        run_batch(["chongqing-yuzhong"], tmp_path, tile_above_nodes=0, settings=settings)
    with pytest.raises(InputValidationError, match="workers applies"):
        run_batch(["chongqing-yuzhong"], tmp_path, workers=2, scheduler="tcp://x:1")
    (tmp_path / "batch_manifest.json").write_text("{not json", "utf-8")
    with pytest.raises(InputValidationError, match=r"batch_manifest\.json"):
        read_manifest(tmp_path)


def test_cli_parser() -> None:
    parser = argparse.ArgumentParser(prog="tuoyu")
    add_batch_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["batch", "areas/", "--out", "o", "--scheduler", "tcp://h:8786", "--retries", "2",
         "--month", "2026-11", "--tile-size-m", "4000", "--tile-above-nodes", "200000"]
    )  # fmt: skip
    assert (args.tile_size_m, args.tile_above_nodes) == (4000.0, 200_000)
    assert (args.areas, args.out, args.scheduler, args.retries, args.month, args.workers) == (
        ["areas/"],
        Path("o"),
        "tcp://h:8786",
        2,
        "2026-11",
        None,
    )


@pytest.mark.slow
def test_cli_exit_codes(batch_run, area_files, tmp_path, monkeypatch, settings) -> None:  # type: ignore[no-untyped-def]
    from tuoyu.workflow import batch_cli

    out, _ = batch_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)  # a copy: the other tests keep their folder
    monkeypatch.setattr(batch_cli, "get_settings", lambda: settings)
    parser = argparse.ArgumentParser(prog="tuoyu")
    add_batch_parser(parser.add_subparsers(dest="command"))
    unchanged = [str(area_files[0]), str(area_files[1]), "--out", str(copy), "--month", MONTH]
    args = parser.parse_args(["batch", *unchanged])
    assert args.func(args) == 0  # both unchanged: skipped, no cluster needed
    args = parser.parse_args(["batch", "no-such-area", *unchanged])
    assert args.func(args) == 1  # an unknown area fails before any task runs
    rollup = pd.read_csv(copy / "rollup.csv", encoding="utf-8-sig")
    assert rollup.set_index("area")["status"].to_dict() == {
        "syn-0": "skipped", "syn-1": "skipped", "no-such-area": "failed"
    }  # fmt: skip
