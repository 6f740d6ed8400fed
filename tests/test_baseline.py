"""Month on month: new 托位 / new 普惠 facilities per 街道 against a previous registry."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from tuoyu.config.settings import Settings
from tuoyu.indicators.baseline import baseline_changes, with_baseline
from tuoyu.indicators.summary import district_summary, unit_table
from tuoyu.indicators.targets import load_profile
from tuoyu.workflow.run import analyse_area

from tests.test_jiedao_table import REGISTRY, _area_toml

CRS = "EPSG:32648"
DATA = Path(__file__).resolve().parents[1] / "data"


def _units() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": ["A", "B"], "name": ["甲街道", "乙街道"]},
        geometry=[shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)],
        crs=CRS,
    )


def _facilities(rows: list[tuple[str, float | None, bool | None, float]]) -> gpd.GeoDataFrame:
    ids, slots, puhui, xs = zip(*rows, strict=True) if rows else ((), (), (), ())
    return gpd.GeoDataFrame(
        {"id": list(ids), "slots": pd.array(list(slots), dtype="Int64"),
         "puhui": pd.array(list(puhui), dtype="boolean")},
        geometry=gpd.GeoSeries(shapely.points([(x, 5.0) for x in xs]), crs=CRS),
        crs=CRS,
    )  # fmt: skip


def test_changes_by_hand() -> None:
    before = _facilities([("1", 40, False, 2), ("2", 20, True, 3), ("3", 10, False, 15)])
    now = _facilities([("1", 60, True, 2), ("4", 30, True, 4), ("3", 50, False, 15)])
    out = baseline_changes(before, now, _units())
    # A: 1 grew by 20, 4 is new (+30), 2 closed (−20) → 30; 1 and 4 are newly 普惠
    # B: 3 grew by 40 → 40; no new 普惠 facility
    assert out.units["new_slots"].tolist() == [30, 40]
    assert out.units["new_puhui_facilities"].tolist() == [2, 0]
    assert out.district_new_slots == 70
    status = dict(zip(out.facilities["id"], out.facilities["status"], strict=True))
    assert status == {"1": "kept", "4": "new", "3": "kept", "2": "closed"}


def test_unknown_slots_stay_unknown_not_zero() -> None:
    before = _facilities([("1", None, False, 2), ("3", 10, False, 15)])
    now = _facilities([("1", 60, None, 2), ("3", None, False, 15), ("5", 10, True, 16)])
    out = baseline_changes(before, now, _units())
    assert out.units["new_slots"].isna().tolist() == [True, True]
    assert out.units["new_puhui_facilities"].tolist()[1] == 1
    assert pd.isna(out.units["new_puhui_facilities"].iloc[0])  # 普惠 now unknown
    assert out.unknown["facilities_new_slots_unknown"] == 2


def test_target_evaluated_in_summary() -> None:
    profile = load_profile("yubei-2022", DATA)
    units = _units()
    now = _facilities([("1", 60, True, 2), ("3", 50, False, 15)])
    before = _facilities([("1", 10, True, 2), ("3", 20, False, 15)])
    population = gpd.GeoDataFrame(
        {"population": [1000.0, 1000.0]},
        geometry=gpd.GeoSeries(shapely.points([(1, 1), (11, 1)]), crs=CRS),
    )
    kw = {"profile": profile, "threshold_m": 1000.0, "speed_kmh": 4.0}
    table = unit_table(units, now, population, None, None, **kw)
    summary = district_summary(units, now, population, None, None, table=table, **kw)
    assert summary["indicators"]["new_slots_per_unit"]["value"] is None
    table2, summary2 = with_baseline(table, summary, baseline_changes(before, now, units), profile)
    assert table2["new_slots"].tolist() == [50, 30]
    assert table2["meets_new_slots_per_unit"].tolist() == [True, False]
    entry = summary2["indicators"]["new_slots_per_unit"]
    assert entry["value"] == 30.0 and entry["pass"] is False and entry["gap"] == 10.0
    assert "new_slots_per_unit" not in {s["indicator"] for s in summary2["skipped"]}
    assert "new_slots" not in table.columns  # the input table is unchanged


def test_run_with_baseline_on_yuzhong(settings: Settings, tmp_path: Path) -> None:
    def write(path: Path, rows: list[tuple[str, str, str, int, float, float]]) -> Path:
        lines = ["id,name,jiedao,puhui,slots,lon,lat"]
        lines += [f"{i},机构{i},{jd},{ph},{s},{x},{y}" for i, jd, ph, s, x, y in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    current = write(tmp_path / "now.csv", REGISTRY)
    # last month: F01 had 10 托位 and was not 普惠, F02 did not exist
    previous = [r for r in REGISTRY if r[0] != "F02"]
    previous = [("F01", "解放碑", "否", 10, *REGISTRY[0][4:]), *previous[1:]]
    base = write(tmp_path / "before.csv", previous)
    area = _area_toml(tmp_path, current)
    run = analyse_area(
        area, tmp_path / "out", settings, month="2026-11", maps_dir=tmp_path / "maps",
        write_map_files=False, baseline=base,
    )  # fmt: skip
    table = run.results.table.set_index("code")
    assert table.loc["500103003", "new_slots"] == 30 + 60  # 解放碑: F01 +30, F02 new +60
    assert table.loc["500103003", "new_puhui_facilities"] == 1
    assert table.loc["500103001", "new_slots"] == 0
    assert run.results.summary["indicators"]["new_slots_per_unit"]["value"] == 0.0
    assert run.results.summary["totals"]["new_slots"] == 90
    written = pd.read_csv(run.written["jiedao.csv"], dtype={"code": str})
    assert written.shape[0] == 11


def test_missing_baseline_refused_before_work(settings: Settings, tmp_path: Path) -> None:
    from tuoyu.errors import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="baseline registry not found"):
        analyse_area("chongqing-yuzhong", tmp_path, settings, baseline=tmp_path / "nope.csv")
