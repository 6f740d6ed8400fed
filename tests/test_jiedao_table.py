"""街道 given as a table (codes and names, no polygons): facilities placed by their 街道 field.

Hand-checkable registry of 10 facilities in Yuzhong (one naming an unknown 街道), run
through the real Yuzhong study area (its 11-街道 table, OSM buildings for population).
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from tuoyu.config.settings import Settings
from tuoyu.config.study_area import load_area
from tuoyu.indicators.gaps import failing_units
from tuoyu.indicators.summary import NO_JIEDAO_POINTS_REASON, district_summary, unit_table
from tuoyu.indicators.targets import load_profile
from tuoyu.layers.units import jiedao_key, load_unit_table, match_units
from tuoyu.workflow.layers import load_layers
from tuoyu.workflow.steps import compute_indicators

AREAS = Path(__file__).resolve().parents[1] / "data" / "areas"
PROFILES = Path(__file__).resolve().parents[1] / "data"

# id, 街道 as written in the registry, 普惠, 托位, lon, lat (WGS84, inside Yuzhong)
REGISTRY = [
    ("F01", "解放碑", "是", 40, 106.5123, 29.5495),  # suffix variant
    ("F02", "解放碑街道", "否", 60, 106.5612, 29.5545),
    ("F03", "500103001", "是", 30, 106.5113, 29.5508),  # 七星岗街道 by code
    ("F04", "七星岗街道", "是", 20, 106.5003, 29.5425),
    ("F05", "大坪", "否", 50, 106.5843, 29.5626),
    ("F06", "500103012", "是", 25, 106.5468, 29.5648),  # 大坪街道 by code
    ("F07", "化龙桥街道", "否", 35, 106.5708, 29.5532),
    ("F08", "上清寺", "是", 45, 106.5535, 29.5653),
    ("F09", "朝天门街道", "否", 20, 106.5493, 29.5623),
    ("F10", "外星街道", "是", 30, 106.5193, 29.5448),  # no such 街道 in Yuzhong
]
EXPECTED = {  # code: (facilities, slots, puhui slots, has 普惠)
    "500103003": (2, 100, 40, True),  # 解放碑
    "500103001": (2, 50, 50, True),  # 七星岗
    "500103012": (2, 75, 25, True),  # 大坪
    "500103013": (1, 35, 0, False),  # 化龙桥
    "500103005": (1, 45, 45, True),  # 上清寺
    "500103010": (1, 20, 0, False),  # 朝天门
    "500103004": (0, 0, 0, False),  # 两路口
    "500103007": (0, 0, 0, False),  # 菜园坝
    "500103008": (0, 0, 0, False),  # 南纪门
    "500103011": (0, 0, 0, False),  # 大溪沟
    "500103014": (0, 0, 0, False),  # 石油路
}


def _registry_csv(folder: Path) -> Path:
    path = folder / "yuzhong_registry.csv"
    lines = ["id,name,jiedao,puhui,slots,lon,lat"]
    lines += [f"{i},机构{i},{jd},{ph},{s},{x},{y}" for i, jd, ph, s, x, y in REGISTRY]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _area_toml(folder: Path, registry: Path, units_table: str | None = None) -> Path:
    text = (AREAS / "chongqing-yuzhong.toml").read_text(encoding="utf-8")
    text += f'\n[facilities]\npath = "{registry.as_posix()}"\ncrs = "wgs84"\n'
    if units_table is not None:
        text = text.replace('table = "chongqing-yuzhong/jiedao_codes.csv"', units_table)
    path = folder / "yuzhong-registry.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- pure pieces ------------------------------------------------------------------------


def test_jiedao_key_strips_suffix_variants() -> None:
    assert jiedao_key("解放碑街道") == jiedao_key("解放碑") == jiedao_key(" 解放碑街道办事处")
    assert jiedao_key("歇马镇") == "歇马"
    assert jiedao_key("") is None


def test_match_units_by_code_name_and_variant() -> None:
    codes = ["500103001", "500103003"]
    names = ["七星岗街道", "解放碑街道"]
    got = match_units(["解放碑", "500103001000", "七星岗街道", "外星", None], codes, names)
    assert got.tolist() == [1, 0, 0, -1, -1]


def test_load_unit_table_reads_population_column(tmp_path: Path) -> None:
    path = tmp_path / "jd.csv"
    path.write_text("code,name,pop\n500103001,七星岗街道,1000\n500103003,解放碑街道,\n", "utf-8")
    table = load_unit_table(path, population_field="pop")
    assert table["population"].iloc[0] == 1000.0
    assert math.isnan(table["population"].iloc[1])
    assert table.geometry.isna().all()


def _small_layers() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    crs = "EPSG:32648"
    units = gpd.GeoDataFrame(
        {"code": ["A", "B", "C"], "name": ["甲街道", "乙街道", "丙街道"],
         "population": [2000.0, 1000.0, 0.0]},
        geometry=gpd.GeoSeries([None, None, None], crs=crs),
    )  # fmt: skip
    facilities = gpd.GeoDataFrame(
        {"id": ["1", "2", "3"], "jiedao": ["甲", "A", "丁"], "puhui": [True, False, True],
         "slots": [10, 20, 5]},
        geometry=gpd.GeoSeries(shapely.points([(0, 0), (1, 1), (2, 2)]), crs=crs),
    )  # fmt: skip
    population = gpd.GeoDataFrame(
        {"population": [100.0, 200.0]},
        geometry=gpd.GeoSeries(shapely.points([(0, 0), (5, 5)]), crs=crs),
    )
    return units, facilities, population


def test_unit_table_assigns_by_jiedao_field_without_polygons() -> None:
    units, facilities, population = _small_layers()
    profile = load_profile("chongqing-2025", PROFILES)
    walk = np.array([500.0, 2000.0])
    table = unit_table(
        units, facilities, population, walk, walk, profile=profile, threshold_m=1000.0,
        speed_kmh=4.0, units_are_jiedao=False,
    )  # fmt: skip
    assert table["facilities"].tolist() == [2, 0, 0]
    assert table["slots"].tolist() == [30, 0, 0]
    assert table["slots_per_1000"].iloc[0] == pytest.approx(15.0)  # 30 / 2000 × 1000
    assert table["puhui_slot_share"].iloc[0] == pytest.approx(100.0 / 3.0)
    assert table["has_puhui"].tolist() == [True, False, False]
    assert table["coverage_pct"].isna().all()
    assert table.attrs["skipped"]["coverage_pct"] == NO_JIEDAO_POINTS_REASON
    assert table.attrs["unusable"]["facilities_jiedao_unmatched"] == 1
    # a unit with no people is not listed as failing (no recommendation for it)
    failing = failing_units(table, profile)
    assert "C" not in set(failing["code"])
    assert "B" in set(failing["code"])
    summary = district_summary(
        units, facilities, population, walk, walk, profile=profile, threshold_m=1000.0,
        speed_kmh=4.0, table=table, units_are_jiedao=False,
    )  # fmt: skip
    ind = summary["indicators"]
    assert ind["puhui_jiedao_coverage"]["value"] == pytest.approx(100.0 / 3.0)
    assert summary["totals"]["slots"] == 35  # the unmatched facility counts in the district
    assert ind["coverage_pct"]["value"] == pytest.approx(100.0 / 3.0)  # 100 of 300 people


# --- the real Yuzhong area --------------------------------------------------------------


@pytest.fixture(scope="module")
def yuzhong_table_run(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[object, object]:
    folder = tmp_path_factory.mktemp("yuzhong-jiedao")
    area = load_area(_area_toml(folder, _registry_csv(folder)), settings.project_data_dir)
    layers = load_layers(area, settings)
    profile = load_profile(area.area.target_profile, settings.project_data_dir)
    return layers, compute_indicators(layers, None, profile)


def test_yuzhong_reports_eleven_jiedao_rows(yuzhong_table_run: tuple[object, object]) -> None:
    layers, results = yuzhong_table_run
    assert layers.units_kind == "jiedao_table"  # type: ignore[attr-defined]
    table = results.table  # type: ignore[attr-defined]
    assert len(table) == 11  # no hexagon rows
    assert set(table["code"]) == set(EXPECTED)
    by_code = table.set_index("code")
    for code, (n_fac, slots, puhui_slots, has_puhui) in EXPECTED.items():
        row = by_code.loc[code]
        assert (row["facilities"], row["slots"], row["puhui_slots"]) == (n_fac, slots, puhui_slots)
        assert bool(row["has_puhui"]) is has_puhui
        assert pd.isna(row["slots_per_1000"])  # population per 街道 unknown: 不详
    assert by_code.loc["500103003", "puhui_slot_share"] == pytest.approx(40.0)
    warnings = " ".join(layers.warnings)  # type: ignore[attr-defined]
    assert "1 of 10 facilities name no 街道" in warnings and "外星街道" in warnings


def test_yuzhong_district_figures_still_computed(
    yuzhong_table_run: tuple[object, object],
) -> None:
    _layers, results = yuzhong_table_run
    summary = results.summary  # type: ignore[attr-defined]
    ind = summary["indicators"]
    assert ind["puhui_jiedao_coverage"]["value"] == pytest.approx(4 / 11 * 100)
    assert summary["totals"]["slots"] == 355
    assert ind["puhui_slot_share"]["value"] == pytest.approx(190 / 355 * 100)
    population = summary["totals"]["population"]
    assert population == pytest.approx(588717, rel=1e-6)
    assert ind["slots_per_1000"]["value"] == pytest.approx(355 / population * 1000)


def test_yuzhong_table_with_population_column(
    settings: Settings, data_dir: Path, tmp_path: Path
) -> None:
    codes = pd.read_csv(data_dir / "chongqing-yuzhong" / "jiedao_codes.csv", dtype=str)
    codes["residents"] = [50000 + 1000 * i for i in range(len(codes))]
    table_path = tmp_path / "jiedao_pop.csv"
    codes.to_csv(table_path, index=False)
    units = f'table = "{table_path.as_posix()}"\npopulation_field = "residents"'
    area = load_area(
        _area_toml(tmp_path, _registry_csv(tmp_path), units), settings.project_data_dir
    )
    layers = load_layers(area, settings)
    profile = load_profile(area.area.target_profile, settings.project_data_dir)
    table = compute_indicators(layers, None, profile).table.set_index("code")
    residents = codes.set_index("code")["residents"]
    got = float(table.loc["500103003", "slots_per_1000"])
    assert got == pytest.approx(100 / residents["500103003"] * 1000)
    assert float(table.loc["500103004", "slots_per_1000"]) == 0.0  # 0 托位 among known people
