"""Report files: existence, encodings, Chinese headers, WGS84 + attribution, gpkg layers,
the progress sheet layout, and byte-identical reruns."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pyogrio
import pytest
import shapely
from tuoyu.errors import InputValidationError
from tuoyu.indicators.gaps import failing_units, slot_shortfall_table, uncovered_areas
from tuoyu.indicators.summary import district_summary, unit_table
from tuoyu.indicators.targets import load_profile
from tuoyu.labels import label
from tuoyu.outputs.reports import (
    PROGRESS_HEADERS,
    parse_month,
    progress_title,
    write_csv,
    write_geojson,
    write_reports,
    write_xlsx,
)

from tests.test_indicators import build_fixture

MONTH = "2025-04"
OSM = "© OpenStreetMap contributors"


def _results():
    fx = build_fixture()
    profile = load_profile("chongqing-2025")
    args = dict(profile=profile, threshold_m=1000.0, speed_kmh=4.0, reach_matrix=fx["reach"])
    table = unit_table(
        fx["units"], fx["facilities"], fx["population"], fx["walk_all"], fx["walk_puhui"], **args
    )
    summary = district_summary(
        fx["units"], fx["facilities"], fx["population"], fx["walk_all"], fx["walk_puhui"],
        table=table, osm_used=True, **args,
    )  # fmt: skip
    gaps = uncovered_areas(fx["population"], fx["walk_all"], threshold_m=1000.0)
    fac = fx["facilities"]
    isochrones = gpd.GeoDataFrame(
        {"facility_id": fac["id"].to_numpy(), "minutes": [15.0] * len(fac)},
        geometry=fac.geometry.buffer(500.0).to_numpy(),
        crs=fac.crs,
    )
    extra = {
        "未达标街道": failing_units(table, profile),
        "托位缺口": slot_shortfall_table(table, profile),
    }
    summary["area"] = {"name": "测试区", "name_en": None, "code": "000000"}
    return fx, table, summary, gaps, isochrones, extra


def _write(out: Path):
    fx, table, summary, gaps, isochrones, extra = _results()
    return write_reports(
        out, table=table, summary=summary, month=MONTH, units=fx["units"],
        facilities=fx["facilities"], population=fx["population"], gaps=gaps,
        isochrones=isochrones, extra_sheets=extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _write(tmp_path_factory.mktemp("reports"))


def test_all_files_exist(written: dict[str, Path]) -> None:
    expected = {"jiedao.csv", "jiedao.xlsx", "summary.json", "gaps.geojson",
                "isochrones.geojson", "coverage.gpkg", f"progress_{MONTH}.xlsx"}  # fmt: skip
    assert set(written) == expected
    for path in written.values():
        assert path.is_file() and path.stat().st_size > 0
    # no temporary files left behind by the atomic writes
    folder = written["jiedao.csv"].parent
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_csv_bom_and_empty_unknowns(written: dict[str, Path]) -> None:
    raw = written["jiedao.csv"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8-sig").splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["code", "name", "population"]
    d_row = dict(zip(header, lines[4].split(","), strict=True))
    assert d_row["name"] == "丁街道"
    assert d_row["puhui_slot_share"] == ""  # unknown (no slots) → empty, not 0
    assert d_row["slots"] == "0"


def test_xlsx_chinese_headers(written: dict[str, Path]) -> None:
    wb = openpyxl.load_workbook(written["jiedao.xlsx"])
    ws = wb["街道指标"]
    headers = [c.value for c in ws[1]]
    assert headers[:4] == ["代码", "名称", "常住人口（人）", "3岁以下婴幼儿（人，估算）"]
    assert label("slots_per_1000") in headers
    assert "是否达标：每千人口托位数" in headers
    assert ws.cell(row=2, column=2).value == "甲街道"
    assert {"未达标街道", "托位缺口", "说明"} <= set(wb.sheetnames)
    notes = [r[0].value for r in wb["说明"].iter_rows()]
    # the profile by its Chinese title and document number, not its machine name
    assert any("重庆市2025年婴幼儿照护服务目标" in (n or "") for n in notes)
    assert not any("chongqing-2025" in (n or "") for n in notes)


def test_summary_json(written: dict[str, Path]) -> None:
    text = written["summary.json"].read_text(encoding="utf-8")
    assert "每千人口托位数" in text  # not \\u-escaped
    data = json.loads(text)
    keys = list(data)
    assert keys == sorted(keys)
    assert data["attribution"] == OSM
    assert data["indicators"]["utilisation"]["pass"] is None


def test_geojson_wgs84_with_attribution(written: dict[str, Path]) -> None:
    for name in ("gaps.geojson", "isochrones.geojson"):
        data = json.loads(written[name].read_text(encoding="utf-8"))
        assert data["type"] == "FeatureCollection"
        assert data["attribution"] == OSM
        assert "crs" not in data
        coords = np.array([c for f in data["features"] for c in f["geometry"]["coordinates"][0]])
        # the fixture lies near 105 °E, 29.5 °N (UTM 48N, x 500 km)
        assert np.all((coords[:, 0] > 104) & (coords[:, 0] < 106))
        assert np.all((coords[:, 1] > 29) & (coords[:, 1] < 30))


def test_gpkg_layers(written: dict[str, Path]) -> None:
    layers = {name for name, _ in pyogrio.list_layers(written["coverage.gpkg"])}
    assert layers == {"units", "facilities", "population", "gaps", "isochrones"}
    units = gpd.read_file(written["coverage.gpkg"], layer="units")
    assert units["name"].tolist() == ["甲街道", "乙街道", "丙街道", "丁街道"]
    assert units["slots"].tolist() == [50, 50, 50, 0]
    assert units["puhui_slot_share"].isna().tolist() == [False, False, False, True]


def test_progress_sheet_layout(written: dict[str, Path]) -> None:
    wb = openpyxl.load_workbook(written[f"progress_{MONTH}.xlsx"])
    ws = wb.active
    assert ws["A1"].value == "测试区2025年4月托位数发展工作落实情况推进表"
    assert "A1:G1" in [str(r) for r in ws.merged_cells.ranges]
    assert tuple(c.value for c in ws[2]) == PROGRESS_HEADERS
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=3)]
    # 3 district rows + 4 街道 rows
    assert len(rows) == 7
    assert "托位缺口" in rows[0][3]  # 150 slots vs 4.5 × 145 = 652.5 needed
    assert "丁街道" in rows[1][3]  # the 街道 without 普惠
    assert "覆盖人口72.4%" in rows[2][2]  # 105k of 145k
    assert rows[6][0] == "丁街道" and "辖区内无普惠托育机构" in rows[6][3]


def test_rerun_is_byte_identical(written: dict[str, Path], tmp_path: Path) -> None:
    again = _write(tmp_path)
    for name, path in written.items():
        assert again[name].read_bytes() == path.read_bytes(), name


def test_writers_standalone(tmp_path: Path) -> None:
    fx, table, *_ = _results()
    csv = write_csv(table.iloc[0:0], tmp_path / "empty.csv")
    assert csv.read_bytes().decode("utf-8-sig").startswith("code,name,")
    xlsx = write_xlsx(table, tmp_path / "en.xlsx", language="en")
    assert openpyxl.load_workbook(xlsx).active["C1"].value == "Population"
    with pytest.raises(InputValidationError, match="no CRS"):
        write_geojson(gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)]), tmp_path / "x.geojson")
    empty = write_geojson(fx["population"].iloc[0:0], tmp_path / "e.geojson", attribution=OSM)
    assert json.loads(empty.read_text())["features"] == []


def test_month_parsing() -> None:
    assert parse_month("2025-12") == (2025, 12)
    assert progress_title("渝中区卫生健康委", 2025, 4) == (
        "渝中区卫生健康委2025年4月托位数发展工作落实情况推进表"
    )
    with pytest.raises(InputValidationError, match="2025-04"):
        parse_month("2025-13")


def test_progress_sheet_without_network(tmp_path: Path) -> None:
    fx = build_fixture()
    fx["facilities"]["assumed_fields"] = ["puhui"] * 5
    profile = load_profile("beijing-2025-core")
    args = dict(profile=profile, threshold_m=1000.0, speed_kmh=4.0)
    table = unit_table(fx["units"], fx["facilities"], fx["population"], None, None, **args)
    summary = district_summary(
        fx["units"], fx["facilities"], fx["population"], None, None, table=table, **args
    )
    out = write_reports(tmp_path, table=table, summary=summary, month="2025-11",
                        reporting_unit="东城区卫生健康委")  # fmt: skip
    assert "gaps.geojson" not in out and "coverage.gpkg" not in out
    ws = openpyxl.load_workbook(out["progress_2025-11.xlsx"]).active
    assert ws["A1"].value == "东城区卫生健康委2025年11月托位数发展工作落实情况推进表"
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=3)]
    assert rows[2][2] == "未计算：无步行路网，未计算15分钟指标"
    assert rows[0][6] == "普惠 为假定值（5/5 家机构）"  # 备注 carries the assumption
    assert (
        json.loads(out["summary.json"].read_text())["indicators"]["coverage_pct"]["value"] is None
    )


def test_every_table_column_has_a_chinese_label() -> None:
    from tuoyu.indicators.gaps import FAILING_COLUMNS, GAP_COLUMNS, SHORTFALL_COLUMNS
    from tuoyu.indicators.summary import UNIT_COLUMNS

    for column in (*UNIT_COLUMNS, *GAP_COLUMNS, *FAILING_COLUMNS, *SHORTFALL_COLUMNS):
        if column == "geometry":
            continue
        zh, en = label(column, "zh"), label(column, "en")
        assert zh != column and en != column, column
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), column


def test_big_geojson_copies_are_left_to_the_gpkg(tmp_path: Path) -> None:
    """A layer too big for a GeoJSON copy is only in coverage.gpkg, and summary.json says so.

    Regression (issue 16): a big city wrote its isochrones three times (gpkg, an 82 MB
    GeoJSON copy, the map's side files) and gaps twice.
    """
    fx, table, summary, gaps, isochrones, extra = _results()
    iso_bytes = len(
        write_geojson(isochrones, tmp_path / "probe.geojson", name="isochrones").read_bytes()
    )
    out = write_reports(
        tmp_path / "out", table=table, summary=summary, month=MONTH, units=fx["units"],
        facilities=fx["facilities"], population=fx["population"], gaps=gaps,
        isochrones=isochrones, extra_sheets=extra, geojson_max_bytes=iso_bytes // 4,
    )  # fmt: skip
    assert "isochrones.geojson" not in out and not (tmp_path / "out/isochrones.geojson").exists()
    layer = gpd.read_file(out["coverage.gpkg"], layer="isochrones")
    assert len(layer) == len(isochrones)
    skipped = json.loads(out["summary.json"].read_text("utf-8"))["skipped"]
    [note] = [s for s in skipped if s["indicator"] == "isochrones.geojson"]
    assert "coverage.gpkg" in note["reason"] and "'isochrones'" in note["reason"]
    # the default keeps the copies of ordinary layers
    assert "isochrones.geojson" in _write(tmp_path / "default")


def test_committee_notes_name_every_isochrone_method() -> None:
    """Regression: the 说明 sheet called the default walk-field isochrones "其他算法"."""
    from tuoyu.outputs.reports import committee_notes

    for method, expected in (
        ("walk_field", "步行时间场"),
        ("exact", "沿路网精确"),
        ("grid", "网格追踪"),
    ):
        lines = committee_notes({"parameters": {"isochrone_method": method}})
        assert any(expected in line for line in lines), (method, lines)


def test_big_layers_are_written_as_geoparquet(tmp_path: Path) -> None:
    """A layer too big for the GeoPackage goes to ``<layer>.parquet``, a third of the bytes.

    Regression (issue 16): the big city's coverage.gpkg alone was 129 MB (isochrones 56,
    gap zones 43, population 28.5), above the 100 MB all outputs together may take.
    """
    import pyarrow.parquet as pq
    from tuoyu.outputs.reports import gpkg_size_estimate

    fx, table, summary, gaps, isochrones, extra = _results()
    limit = gpkg_size_estimate(isochrones) - 1  # isochrones over it; the rest under it
    assert gpkg_size_estimate(fx["population"]) <= limit and gpkg_size_estimate(gaps) <= limit
    out = write_reports(
        tmp_path / "out", table=table, summary=summary, month=MONTH, units=fx["units"],
        facilities=fx["facilities"], population=fx["population"], gaps=gaps,
        isochrones=isochrones, extra_sheets=extra, gpkg_layer_max_bytes=limit,
    )  # fmt: skip
    assert "isochrones" not in pyogrio.list_layers(out["coverage.gpkg"])[:, 0]
    back = gpd.read_parquet(out["isochrones.parquet"])
    assert back.crs == isochrones.crs and list(back["facility_id"]) == list(
        isochrones["facility_id"]
    )
    # coordinates to 0.1 m: every vertex within 0.071 m of its original
    a = shapely.get_coordinates(np.asarray(isochrones.geometry.values))
    b = shapely.get_coordinates(np.asarray(back.geometry.values))
    assert a.shape == b.shape and np.abs(a - b).max() <= 0.0500001
    assert np.allclose(b * 10, np.round(b * 10), atol=1e-6)
    metadata = pq.read_schema(out["isochrones.parquet"]).metadata
    assert metadata[b"attribution"] == OSM.encode()
    geo = json.loads(metadata[b"geo"])  # GeoParquet 1.x: what GDAL and QGIS look for
    assert geo["version"].startswith("1.") and geo["columns"]["geometry"]["encoding"] == "WKB"
    skipped = json.loads(out["summary.json"].read_text("utf-8"))["skipped"]
    [note] = [s for s in skipped if s["indicator"] == "coverage.gpkg: isochrones"]
    assert "isochrones.parquet" in note["reason"] and "GeoParquet" in note["reason"]
    # the same inputs give the same file (reruns are byte-identical)
    again = write_reports(
        tmp_path / "again", table=table, summary=summary, month=MONTH, units=fx["units"],
        facilities=fx["facilities"], population=fx["population"], gaps=gaps,
        isochrones=isochrones, extra_sheets=extra, gpkg_layer_max_bytes=limit,
    )  # fmt: skip
    assert again["isochrones.parquet"].read_bytes() == out["isochrones.parquet"].read_bytes()
    # a rerun where the layer fits the GeoPackage removes the stale copy
    rerun = write_reports(
        tmp_path / "out", table=table, summary=summary, month=MONTH, units=fx["units"],
        facilities=fx["facilities"], population=fx["population"], gaps=gaps,
        isochrones=isochrones, extra_sheets=extra,
    )  # fmt: skip
    assert "isochrones.parquet" not in rerun and not (tmp_path / "out/isochrones.parquet").exists()
    assert "isochrones" in pyogrio.list_layers(rerun["coverage.gpkg"])[:, 0]


def test_gpkg_size_estimate_is_near_the_written_size(tmp_path: Path) -> None:
    """The estimate that sends a layer to GeoParquet is within 40 % of the real bytes."""
    from tuoyu.outputs.reports import gpkg_size_estimate, write_gpkg

    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 50_000, (40_000, 2)) + np.array([500_000.0, 3_300_000.0])
    points = gpd.GeoDataFrame(
        {"point_id": np.arange(len(xy)), "population": rng.uniform(1, 90, len(xy)),
         "walk_m_all": rng.uniform(0, 3000, len(xy))},
        geometry=shapely.points(xy), crs=32650,
    )  # fmt: skip
    discs = gpd.GeoDataFrame(
        {"gap_id": np.arange(3_000)},
        geometry=shapely.buffer(shapely.points(xy[:3_000]), 75.0),
        crs=32650,
    )
    for name, layer in (("points", points), ("discs", discs)):
        path = write_gpkg(tmp_path / f"{name}.gpkg", {name: layer})
        empty = write_gpkg(tmp_path / f"{name}0.gpkg", {name: layer[:1]}).stat().st_size
        written = path.stat().st_size - empty
        assert 0.6 <= gpkg_size_estimate(layer) / written <= 1.4, (name, written)


def test_geoparquet_keeps_missing_geometry_and_degrees(tmp_path: Path) -> None:
    """A layer in degrees is rounded to 10⁻⁷° (≈ 1 cm), not to 0.1 of a unit; a missing
    geometry stays missing; list and boolean columns are made plain as for the gpkg."""
    from tuoyu.outputs.reports import write_geoparquet

    layer = gpd.GeoDataFrame(
        {"unit_codes": [["110101001", "110101002"], []], "puhui": [True, None]},
        geometry=[shapely.Point(116.397123456, 39.909987654), None],
        crs=4326,
    )
    back = gpd.read_parquet(write_geoparquet(layer, tmp_path / "x.parquet"))
    assert back.geometry.iloc[0].equals_exact(shapely.Point(116.3971235, 39.9099877), 1e-12)
    assert back.geometry.iloc[1] is None
    assert back["unit_codes"].tolist() == ["110101001,110101002", ""]
    assert back.crs.to_epsg() == 4326
