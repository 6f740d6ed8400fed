"""Unit table and district summary on a hand-built fixture, every value worked by hand.

Fixture (metric CRS EPSG:32648, local origin X0, Y0; four 1 km squares):

    C 丙街道 (0..1000, 1000..2000)   D 丁街道 (1000..2000, 1000..2000)
    A 甲街道 (0..1000, 0..1000)      B 乙街道 (1000..2000, 0..1000)

facilities  unit  普惠    slots enrolled
  F1        A     yes     30    15
  F2        A     no      20    20
  F3        B     yes     50    10
  F4        C     no      40    30
  F5        C     yes     10     5
  (D has none)

points  unit  population  under-3 (1.5 %)  walk all (m)  walk 普惠 (m)
  P1    A     10,000      150               150           150   (F1)
  P2    A     30,000      450               600 (F2)     1050   (F1, beyond 1 km)
  P3    B     20,000      300               900           900   (F3)
  P4    B     10,000      150              1200          1200
  P5    C     40,000      600               400 (F4)      700   (F5)
  P6    D     20,000      300              1100          1300
  P7    D     10,000      150               inf           inf
  P8    D      5,000       75               950 (F5)      950   (F5)

Walking 4 km/h = 66.667 m/min, threshold 15 min = 1,000 m. Reach matrix (≤ 1,000 m):
F1→P1 150; F2→P1 500, F2→P2 700; F3→P3 900; F4→P5 400; F5→P5 700, F5→P8 950.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import shapely
from tuoyu.errors import CRSError, InputValidationError
from tuoyu.indicators.summary import UNIT_COLUMNS, district_summary, unit_table, weighted_median
from tuoyu.indicators.targets import load_profile

X0, Y0 = 500_000.0, 3_270_000.0
CRS = "EPSG:32648"
THRESHOLD_M = 1000.0
SPEED_KMH = 4.0

TEST_PROFILE = """
[profile]
name = "test-profile"
title = "测试目标"
year = 2025
source = "hand-made for tests"

[[target]]
indicator = "slots_per_1000"
comparison = ">="
value = 1.5
unit = "托位/千人"
year = 2025
source_file = "test"
clause = "t1"
quote = "每千人口1.5个"

[[target]]
indicator = "puhui_slot_share"
comparison = "≥"
value = 60
unit = "%"
year = 2025
source_file = "test"
clause = "t2"
quote = "普惠占比60%"

[[target]]
indicator = "puhui_jiedao_coverage"
comparison = ">"
value = 90
unit = "%"
year = 2025
source_file = "test"
clause = "t3"
quote = "90%以上街道"

[[target]]
indicator = "coverage_pct"
comparison = ">="
value = 80
unit = "%"
year = 2025
source_file = "test"
clause = "t4"
quote = "覆盖80%"
"""


def _square(i: float, j: float) -> shapely.Polygon:
    return shapely.box(X0 + i * 1000, Y0 + j * 1000, X0 + (i + 1) * 1000, Y0 + (j + 1) * 1000)


def build_fixture() -> dict[str, object]:
    """The hand-built layers (see the module docstring)."""
    units = gpd.GeoDataFrame(
        {
            "code": ["A", "B", "C", "D"],
            "name": ["甲街道", "乙街道", "丙街道", "丁街道"],
            "area_m2": [1e6] * 4,
        },
        geometry=[_square(0, 0), _square(1, 0), _square(0, 1), _square(1, 1)],
        crs=CRS,
    )
    fac_xy = [(200, 200), (700, 300), (1500, 500), (500, 1500), (300, 1700)]
    facilities = gpd.GeoDataFrame(
        {
            "id": ["F1", "F2", "F3", "F4", "F5"],
            "name": ["一号", "二号", "三号", "四号", "五号"],
            "kind": ["社区托育点", "社会力量办托", "托幼一体", "社会力量办托", "综合托育服务中心"],
            "puhui": pd.array([True, False, True, False, True], dtype="boolean"),
            "slots": pd.array([30, 20, 50, 40, 10], dtype="Int64"),
            "enrolled": pd.array([15, 20, 10, 30, 5], dtype="Int64"),
            "assumed_fields": ["", "", "", "", ""],
        },
        geometry=[shapely.Point(X0 + x, Y0 + y) for x, y in fac_xy],
        crs=CRS,
    )
    pop_xy = [(100, 100), (800, 800), (1200, 200), (1800, 900), (200, 1200),
              (1500, 1500), (1900, 1900), (1100, 1900)]  # fmt: skip
    people = [10_000, 30_000, 20_000, 10_000, 40_000, 20_000, 10_000, 5_000]
    population = gpd.GeoDataFrame(
        {
            "point_id": [f"P{i}" for i in range(1, 9)],
            "unit_code": ["A", "A", "B", "B", "C", "D", "D", "D"],
            "population": np.array(people, dtype=float),
            "population_under3": np.array(people, dtype=float) * 0.015,
        },
        geometry=[shapely.Point(X0 + x, Y0 + y) for x, y in pop_xy],
        crs=CRS,
    )
    population.attrs["population_method"] = "hand-made test points"
    population.attrs["assumptions"] = ["under-3 share 1.5 % (test)"]
    walk_all = np.array([150, 600, 900, 1200, 400, 1100, np.inf, 950], dtype=float)
    walk_puhui = np.array([150, 1050, 900, 1200, 700, 1300, np.inf, 950], dtype=float)
    off = 1e-9
    rows = [0, 1, 1, 2, 3, 4, 4]
    cols = [0, 0, 1, 2, 4, 4, 7]
    dist = np.array([150, 500, 700, 900, 400, 700, 950], dtype=float) + off
    reach = sp.csr_matrix((dist, (rows, cols)), shape=(5, 8))
    return {
        "units": units,
        "facilities": facilities,
        "population": population,
        "walk_all": walk_all,
        "walk_puhui": walk_puhui,
        "reach": reach,
    }


@pytest.fixture()
def fx() -> dict[str, object]:
    return build_fixture()


@pytest.fixture()
def profile(tmp_path: Path):
    path = tmp_path / "test-profile.toml"
    path.write_text(TEST_PROFILE, encoding="utf-8")
    return load_profile(path)


def _table(fx, profile, **kw):
    args = dict(
        profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH, reach_matrix=fx["reach"]
    )
    args.update(kw)
    return unit_table(
        fx["units"], fx["facilities"], fx["population"], fx["walk_all"], fx["walk_puhui"], **args
    )


def _col(table: pd.DataFrame, column: str) -> list:
    return [None if pd.isna(v) else v for v in table[column]]


def _approx(values: list, expected: list) -> None:
    assert len(values) == len(expected)
    for got, want in zip(values, expected, strict=True):
        if want is None:
            assert got is None
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_unit_table_every_column_by_hand(fx, profile) -> None:
    t = _table(fx, profile)
    assert list(t.columns) == [
        *UNIT_COLUMNS,
        "meets_slots_per_1000",
        "meets_puhui_slot_share",
        "meets_puhui_jiedao_coverage",
        "meets_coverage_pct",
    ]
    assert _col(t, "code") == ["A", "B", "C", "D"]
    assert _col(t, "name") == ["甲街道", "乙街道", "丙街道", "丁街道"]
    # population: A 10k+30k, B 20k+10k, C 40k, D 20k+10k+5k
    _approx(_col(t, "population"), [40_000, 30_000, 40_000, 35_000])
    _approx(_col(t, "population_under3"), [600, 450, 600, 525])
    assert _col(t, "facilities") == [2, 1, 2, 0]
    assert _col(t, "puhui_facilities") == [1, 1, 1, 0]
    # slots: A 30+20, B 50, C 40+10, D none (a real 0)
    assert _col(t, "slots") == [50, 50, 50, 0]
    assert _col(t, "puhui_slots") == [30, 50, 10, 0]  # F1; F3; F5
    assert _col(t, "enrolled") == [35, 10, 35, 0]  # 15+20; 10; 30+5
    # slots per 1,000: 50/40k·1000 = 1.25; 50/30k·1000 = 1.6667; 1.25; 0/35k = 0
    _approx(_col(t, "slots_per_1000"), [1.25, 50 / 30, 1.25, 0.0])
    # shortfall with the profile's 1.5: 1.5·40 − 50 = 10; 1.5·30 − 50 = −5; 10; 1.5·35 − 0
    _approx(_col(t, "slot_shortfall"), [10.0, -5.0, 10.0, 52.5])
    # 普惠 share: 30/50 = 60 %, 50/50 = 100 %, 10/50 = 20 %, D no slots → empty
    _approx(_col(t, "puhui_slot_share"), [60.0, 100.0, 20.0, None])
    # utilisation: 35/50 = 70 %, 10/50 = 20 %, 35/50 = 70 %, D empty
    _approx(_col(t, "utilisation"), [70.0, 20.0, 70.0, None])
    # covered (≤ 1000 m): A P1+P2 = 40k; B P3 = 20k; C P5 = 40k; D P8 = 5k
    _approx(_col(t, "covered_population"), [40_000, 20_000, 40_000, 5_000])
    _approx(_col(t, "coverage_pct"), [100.0, 200 / 3, 100.0, 500 / 35])
    # 普惠: A only P1 (P2 at 1050 m) = 10/40 = 25 %; B P3 = 2/3; C P5 = 100 %; D P8 = 5/35
    _approx(_col(t, "puhui_coverage_pct"), [25.0, 200 / 3, 100.0, 500 / 35])
    _approx(_col(t, "uncovered_population"), [0, 10_000, 0, 30_000])
    # median walk (lower weighted median, minutes = m / 66.667):
    # A: 2.25 (10k), 9.0 (30k) → half 20k reached at 9.0
    # B: 13.5 (20k), 18.0 (10k) → half 15k reached at 13.5
    # C: 6.0
    # D: 14.25 (5k), 16.5 (20k), inf (10k) → half 17.5k reached at 16.5
    _approx(_col(t, "median_walk_min"), [9.0, 13.5, 6.0, 16.5])
    assert _col(t, "has_puhui") == [True, True, True, False]
    # 2SFCA (no decay): R1 = 30/150 = 0.2; R2 = 20/(150+450) = 1/30; R3 = 50/300 = 1/6;
    # R4 = 40/600 = 1/15; R5 = 10/(600+75) = 2/135.
    # A_P1 = 0.2 + 1/30; A_P2 = 1/30; A_P3 = 1/6; A_P5 = 1/15 + 2/135; A_P8 = 2/135; others 0.
    # A: (10k·(0.2+1/30) + 30k·(1/30)) / 40k = (2333.33 + 1000) / 40k = 1/12
    # B: 20k·(1/6) / 30k = 1/9;  C: 1/15 + 2/135 = 11/135;  D: 5k·(2/135) / 35k = 2/945
    _approx(_col(t, "access_2sfca"), [1 / 12, 1 / 9, 11 / 135, 2 / 945])
    # meets: slots ≥ 1.5 → F T F F; 普惠 share ≥ 60 → T T F NA; 街道 has 普惠 → T T T F;
    # coverage ≥ 80 → T F T F
    assert _col(t, "meets_slots_per_1000") == [False, True, False, False]
    assert _col(t, "meets_puhui_slot_share") == [True, True, False, None]
    assert _col(t, "meets_puhui_jiedao_coverage") == [True, True, True, False]
    assert _col(t, "meets_coverage_pct") == [True, False, True, False]
    assert t.attrs["unusable"]["facilities_outside_units"] == 0
    assert t.attrs["unusable"]["facilities_slots_unknown"] == 0
    assert t.attrs["skipped"] == {}
    assert list(t.index) == list(fx["units"].index)


def test_dtypes_are_nullable(fx, profile) -> None:
    t = _table(fx, profile)
    assert str(t["slots"].dtype) == "Int64"
    assert str(t["has_puhui"].dtype) == "boolean"
    assert str(t["coverage_pct"].dtype) == "Float64"


def test_chongqing_profile_shortfall_uses_4_5_and_text_targets_are_empty(fx) -> None:
    t = _table(fx, load_profile("chongqing-2025"))
    # 4.5 × 40 − 50 = 130; 4.5 × 30 − 50 = 85; 130; 4.5 × 35 = 157.5
    _approx(_col(t, "slot_shortfall"), [130.0, 85.0, 130.0, 157.5])
    # utilisation and coverage targets have no number in 000 → meets empty everywhere
    assert _col(t, "meets_utilisation") == [None] * 4
    assert _col(t, "meets_coverage_pct") == [None] * 4
    # >90 % 街道 with 普惠: per 街道, the 街道 itself has one or not
    assert _col(t, "meets_puhui_jiedao_coverage") == [True, True, True, False]


def test_zhejiang_per_unit_facility_coverage(fx) -> None:
    # 乡镇(街道)托育机构基本全覆盖 has no number: per 街道 the reading is "has any
    # facility" — A, B, C do, D has none; the other zhejiang unit targets are numeric
    t = _table(fx, load_profile("zhejiang-2025"))
    assert _col(t, "meets_facility_jiedao_coverage") == [True, True, True, False]
    # 普惠 share > 60 (strict): A 60 % fails, B 100 % passes, C 20 % fails, D unknown
    assert _col(t, "meets_puhui_slot_share") == [False, True, False, None]


def test_unknown_slots_are_empty_not_zero(fx, profile) -> None:
    fx["facilities"].loc[2, "slots"] = pd.NA  # F3 (unit B)
    t = _table(fx, profile)
    assert _col(t, "slots") == [50, None, 50, 0]
    assert _col(t, "puhui_slots") == [30, None, 10, 0]  # F3 is 普惠 with unknown slots
    for column in ("slots_per_1000", "slot_shortfall", "puhui_slot_share", "utilisation"):
        # D has 0 slots: its shares are empty (÷ 0), its slots per 1,000 a real 0
        d_empty = column in ("puhui_slot_share", "utilisation")
        assert t[column].isna().tolist() == [False, True, False, d_empty]
    assert _col(t, "meets_slots_per_1000") == [False, None, False, False]
    assert t.attrs["unusable"]["facilities_slots_unknown"] == 1
    # 2SFCA: F3 excluded → P3 reaches nothing known → B's access 0 (a lower bound), counted
    _approx(_col(t, "access_2sfca"), [1 / 12, 0.0, 11 / 135, 2 / 945])
    assert t.attrs["unusable"]["facilities_excluded_2sfca_slots_unknown"] == 1


def test_no_known_slots_make_access_unknown_not_zero(fx, profile) -> None:
    """Regression: with no 托位 registered at all the 2SFCA index read 0.00 everywhere
    (the dashboard showed 0.00 for Dongcheng); it is unknown, with the reason."""
    fx["facilities"]["slots"] = pd.NA
    t = _table(fx, profile)
    assert _col(t, "access_2sfca") == [None] * 4
    assert "托位" in t.attrs["skipped"]["access_2sfca"]


def test_unknown_puhui_three_valued(fx, profile) -> None:
    fx["facilities"]["puhui"] = pd.array([True, None, None, False, True], dtype="boolean")
    t = _table(fx, profile)
    # A: F1 yes, F2 unknown → has 普惠 (known), count and 普惠 slots unknown
    # B: only F3, unknown → has_puhui unknown
    assert _col(t, "has_puhui") == [True, None, True, False]
    assert _col(t, "puhui_facilities") == [None, None, 1, 0]
    assert _col(t, "puhui_slots") == [None, None, 10, 0]
    assert _col(t, "meets_puhui_jiedao_coverage") == [True, None, True, False]
    assert t.attrs["unusable"]["facilities_puhui_unknown"] == 2


def test_no_network_coverage_empty_with_reason(fx, profile) -> None:
    t = unit_table(
        fx["units"], fx["facilities"], fx["population"], None, None,
        profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH,
    )  # fmt: skip
    for column in ("covered_population", "coverage_pct", "puhui_coverage_pct",
                   "uncovered_population", "median_walk_min", "access_2sfca"):  # fmt: skip
        assert t[column].isna().all(), column
        assert "no walking network" in t.attrs["skipped"][column]
    assert t["meets_coverage_pct"].isna().all()
    # slot indicators do not need the network
    _approx(_col(t, "slots_per_1000"), [1.25, 50 / 30, 1.25, 0.0])

    s = district_summary(
        fx["units"], fx["facilities"], fx["population"], None, None,
        profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH, table=t,
    )  # fmt: skip
    cov = s["indicators"]["coverage_pct"]
    assert cov["value"] is None and cov["pass"] is None
    assert cov["reason"].startswith("no walking network: 15-minute indicators not computed")
    skipped = {item["indicator"]: item["reason"] for item in s["skipped"]}
    assert "no walking network" in skipped["coverage_pct"]
    assert "no walking network" in skipped["puhui_coverage_pct"]


def test_unknown_walk_points_left_out_of_shares(fx, profile) -> None:
    walk = fx["walk_all"].copy()
    walk[1] = np.nan  # P2 (A, 30k) off the network
    t = unit_table(
        fx["units"], fx["facilities"], fx["population"], walk, fx["walk_puhui"],
        profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH,
    )  # fmt: skip
    # A: only P1 (10k, covered) is known → covered 10k, uncovered 0, 100 %
    assert t.loc[0, "covered_population"] == 10_000
    assert t.loc[0, "coverage_pct"] == 100.0
    assert t.loc[0, "median_walk_min"] == pytest.approx(2.25)
    assert t.attrs["unusable"]["population_points_walk_unknown"] == 1


def test_district_summary_by_hand(fx, profile) -> None:
    t = _table(fx, profile)
    s = district_summary(
        fx["units"], fx["facilities"], fx["population"], fx["walk_all"], fx["walk_puhui"],
        profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH,
        reach_matrix=fx["reach"], table=t, osm_used=True,
    )  # fmt: skip
    ind = s["indicators"]
    # 150 slots / 145,000 people × 1000 = 1.0345 < 1.5 → fail, gap 0.4655
    assert ind["slots_per_1000"]["value"] == pytest.approx(150 / 145)
    assert ind["slots_per_1000"]["pass"] is False
    assert ind["slots_per_1000"]["gap"] == pytest.approx(1.5 - 150 / 145)
    assert ind["slots_per_1000"]["target"]["quote"] == "每千人口1.5个"
    # 普惠 slots 30 + 50 + 10 = 90 of 150 = 60 % ≥ 60 → pass, gap 0
    assert ind["puhui_slot_share"]["value"] == pytest.approx(60.0)
    assert ind["puhui_slot_share"]["pass"] is True
    assert ind["puhui_slot_share"]["gap"] == 0.0
    # enrolled 80 / 150 = 53.33 %, no target in this profile
    assert ind["utilisation"]["value"] == pytest.approx(80 / 150 * 100)
    assert ind["utilisation"]["target"] is None and ind["utilisation"]["pass"] is None
    # 3 of 4 街道 have 普惠 = 75 %, not > 90 → fail
    assert ind["puhui_jiedao_coverage"]["value"] == pytest.approx(75.0)
    assert ind["puhui_jiedao_coverage"]["pass"] is False
    assert ind["facility_jiedao_coverage"]["value"] == pytest.approx(75.0)
    # covered 40k + 20k + 40k + 5k = 105k of 145k = 72.41 % < 80 → fail
    assert ind["coverage_pct"]["value"] == pytest.approx(105 / 145 * 100)
    assert ind["coverage_pct"]["pass"] is False
    # 普惠 covered 10k + 20k + 40k + 5k = 75k of 145k
    assert ind["puhui_coverage_pct"]["value"] == pytest.approx(75 / 145 * 100)
    # under-3 is 1.5 % everywhere → same shares
    assert ind["under3_coverage_pct"]["value"] == pytest.approx(105 / 145 * 100)
    assert ind["puhui_under3_coverage_pct"]["value"] == pytest.approx(75 / 145 * 100)
    # district median: cumulative 10k (2.25), 50k (6.0), 80k (9.0) ≥ 72.5k → 9.0 min
    assert ind["median_walk_min"]["value"] == pytest.approx(9.0)
    # 2SFCA district mean: Σ pop·A / 145k
    # = (10k(0.2+1/30) + 30k/30 + 20k/6 + 40k(11/135) + 5k(2/135)) / 145k
    expected = (10_000 * (0.2 + 1 / 30) + 1_000 + 20_000 / 6 + 40_000 * 11 / 135
                + 5_000 * 2 / 135) / 145_000  # fmt: skip
    assert ind["access_2sfca"]["value"] == pytest.approx(expected)
    # one facility of kind 综合托育服务中心 (F5)
    assert ind["guidance_centres"]["value"] == 1.0
    # total kindergartens unknown → skipped with the reason
    assert ind["kindergarten_tuoban_share"]["value"] is None
    assert "kindergartens" in ind["kindergarten_tuoban_share"]["reason"]
    assert s["totals"]["slots"] == 150 and s["totals"]["population"] == 145_000
    assert s["totals"]["slot_shortfall"] == pytest.approx(1.5 * 145 - 150)
    assert s["parameters"]["threshold_min"] == pytest.approx(15.0)
    assert s["parameters"]["walk_speed_kmh"] == 4.0
    assert s["attribution"] == "© OpenStreetMap contributors"
    assert s["data"]["population_method"] == "hand-made test points"
    assert "under-3 share 1.5 % (test)" in s["data"]["assumptions"]
    assert s["approximate"] is False


def test_summary_tuoban_share_and_assumed_puhui(fx, profile) -> None:
    fx["facilities"]["assumed_fields"] = ["puhui"] * 5
    s = district_summary(
        fx["units"], fx["facilities"], fx["population"], fx["walk_all"], fx["walk_puhui"],
        profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH, kindergartens_total=4,
    )  # fmt: skip
    # one facility of kind 托幼一体 (F3) of 4 kindergartens = 25 %
    assert s["indicators"]["kindergarten_tuoban_share"]["value"] == pytest.approx(25.0)
    assert any("普惠 assumed" in a and "5 of 5" in a for a in s["data"]["assumptions"])


def test_summary_unknown_slots_reason(fx, profile) -> None:
    fx["facilities"]["slots"] = pd.array([None] * 5, dtype="Int64")
    s = district_summary(
        fx["units"], fx["facilities"], fx["population"], fx["walk_all"], fx["walk_puhui"],
        profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH,
    )  # fmt: skip
    spk = s["indicators"]["slots_per_1000"]
    assert spk["value"] is None and spk["pass"] is None and spk["gap"] is None
    assert "unknown for 5 of 5 facilities" in spk["reason"]
    assert s["totals"]["slots"] is None


def test_empty_units_give_empty_table_with_columns(fx, profile) -> None:
    units = fx["units"].iloc[0:0]
    t = unit_table(
        units, fx["facilities"], fx["population"], fx["walk_all"], fx["walk_puhui"],
        profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH,
    )  # fmt: skip
    assert len(t) == 0
    assert list(t.columns)[: len(UNIT_COLUMNS)] == list(UNIT_COLUMNS)
    assert t.attrs["unusable"]["facilities_outside_units"] == 5


def test_empty_facilities_give_zero_counts(fx, profile) -> None:
    fac = fx["facilities"].iloc[0:0]
    walk_none = np.full(8, np.inf)
    t = unit_table(
        fx["units"], fac, fx["population"], walk_none, walk_none,
        profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH,
        reach_matrix=sp.csr_matrix((0, 8)),
    )  # fmt: skip
    assert _col(t, "facilities") == [0, 0, 0, 0]
    assert _col(t, "slots") == [0, 0, 0, 0]
    assert _col(t, "coverage_pct") == [0.0] * 4
    assert _col(t, "has_puhui") == [False] * 4
    assert t["median_walk_min"].isna().all()  # beyond the cut-off
    assert _col(t, "access_2sfca") == [0.0] * 4


def test_facility_outside_units_counted(fx, profile) -> None:
    fx["facilities"].loc[4, "geometry"] = shapely.Point(X0 + 5000, Y0 + 5000)
    t = _table(fx, profile)
    assert t.attrs["unusable"]["facilities_outside_units"] == 1
    assert _col(t, "facilities") == [2, 1, 1, 0]


def test_bad_inputs_raise_project_errors(fx, profile) -> None:
    with pytest.raises(CRSError, match="reproject"):
        unit_table(
            fx["units"], fx["facilities"].to_crs(4326), fx["population"], None, None,
            profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH,
        )  # fmt: skip
    with pytest.raises(InputValidationError, match="7 values for 8"):
        unit_table(
            fx["units"], fx["facilities"], fx["population"], fx["walk_all"][:7], None,
            profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH,
        )  # fmt: skip
    with pytest.raises(CRSError, match="metric"):
        unit_table(
            fx["units"].to_crs(4326), fx["facilities"].to_crs(4326),
            fx["population"].to_crs(4326), None, None,
            profile=profile, threshold_m=THRESHOLD_M, speed_kmh=SPEED_KMH,
        )  # fmt: skip


def test_weighted_median_groups() -> None:
    # group 0: 1 (w1), 2 (w1), 3 (w1) → half 1.5 reached at 2
    # group 1: 5 (w3), 1 (w1) → sorted 1 (1), 5 (4) → half 2 reached at 5
    # group 2: a NaN member → NaN; group 3: no members → NaN
    out = weighted_median(
        [1, 2, 3, 5, 1, 4, np.nan, 9], [1, 1, 1, 3, 1, 1, 1, 1], [0, 0, 0, 1, 1, 2, 2, -1], 4
    )
    assert out[0] == 2 and out[1] == 5
    assert math.isnan(out[2]) and math.isnan(out[3])


def test_dongcheng_real_units_and_kindergartens(data_dir: Path) -> None:
    """Issue 4: facility counts and has_puhui per 街道 match the kindergartens' own 街道
    field when all are taken as 普惠; 崇文门外街道 has none; slots_per_1000 empty."""
    from tuoyu.crs.projection import estimate_metric_crs, gdf_to_wgs84

    folder = data_dir / "beijing-dongcheng"
    units = gdf_to_wgs84(gpd.read_file(folder / "jiedao.geojson"), "gcj02")
    kg = gdf_to_wgs84(gpd.read_file(folder / "kindergartens.geojson"), "gcj02")
    metric = estimate_metric_crs(units)
    units, kg = units.to_crs(metric), kg.to_crs(metric)
    stats = pd.read_csv(folder / "jiedao_stats.csv", dtype={"code": str})
    facilities = kg.assign(
        puhui=pd.array([True] * len(kg), dtype="boolean"),
        slots=pd.array([None] * len(kg), dtype="Int64"),
        enrolled=pd.array([None] * len(kg), dtype="Int64"),
        kind="托幼一体",
        assumed_fields="puhui",
    )
    points = units[["code"]].merge(stats[["code", "registered_population"]], on="code")
    population = gpd.GeoDataFrame(
        {
            "point_id": points["code"],
            "unit_code": points["code"],
            "population": points["registered_population"].astype(float),
            "population_under3": np.nan,
        },
        geometry=units.geometry.representative_point().to_numpy(),
        crs=metric,
    )
    profile = load_profile("beijing-2025-core")
    t = unit_table(units, facilities, population, None, None, profile=profile,
                   threshold_m=1000.0, speed_kmh=4.0)  # fmt: skip
    own = kg["jiedao"].value_counts()
    expected = [int(own.get(name, 0)) for name in t["name"]]
    assert _col(t, "facilities") == expected
    assert sum(expected) == 64
    lacking = t.loc[~t["has_puhui"].astype(bool), "name"].tolist()
    assert lacking == ["崇文门外街道"]
    assert t["slots_per_1000"].isna().all()
    s = district_summary(units, facilities, population, None, None, profile=profile,
                         threshold_m=1000.0, speed_kmh=4.0, table=t)  # fmt: skip
    assert s["indicators"]["slots_per_1000"]["value"] is None
    assert "unknown for 64 of 64 facilities" in s["indicators"]["slots_per_1000"]["reason"]
    # 16 of 17 街道 have a (assumed) 普惠 kindergarten: 94.1 % < 100 % → fail
    assert s["indicators"]["puhui_jiedao_coverage"]["value"] == pytest.approx(16 / 17 * 100)
    assert s["indicators"]["puhui_jiedao_coverage"]["pass"] is False
    assert any("普惠 assumed" in a for a in s["data"]["assumptions"])
