"""Writing ``jiedao.xlsx`` and the GeoPackage layers without per-cell overheads.

``_write_frame`` used to ask openpyxl for ``ws.max_row`` once per styled cell (a max over
every cell: quadratic in the rows) and to register a new style object per cell; it now
reads ``max_row`` once and copies the style of the first cell that looks the same. The
workbook must stay byte-identical to styling every cell anew.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from tuoyu.outputs import reports
from tuoyu.outputs.reports import _plain_frame, _plain_value, write_xlsx


def _table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "code": [f"5001{i:04d}" for i in range(n)],
            "name": [("=SUM(A1)" if i % 7 == 0 else f"街道{i}" * (1 + i % 9)) for i in range(n)],
            "population": rng.uniform(0, 50_000, n),
            "covered_population": pd.array(
                [None if i % 11 == 0 else 100.0 * i for i in range(n)], dtype="Float64"
            ),
            "coverage_pct": rng.uniform(0, 100, n),
            "slots_per_1000": rng.uniform(0, 9, n),
            "has_puhui": pd.array([[True, False, None][i % 3] for i in range(n)], dtype="boolean"),
            "meets_coverage_pct": pd.array(
                [[True, False, None][i % 3] for i in range(n)], dtype="boolean"
            ),
            "note": [None if i % 5 else "x" for i in range(n)],
        }
    )


def _summary() -> dict[str, Any]:
    return {
        "area": {"name": "测试区"},
        "indicators": {"coverage_pct": {"value": 61.2, "pass": False}},
    }


def test_max_row_is_read_a_few_times_not_per_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original = Worksheet.max_row

    def counting(self: Worksheet) -> int:
        nonlocal calls
        calls += 1
        return int(original.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(Worksheet, "max_row", property(counting))
    write_xlsx(_table(300), tmp_path / "t.xlsx", summary=_summary(), notes=["说明"])
    assert calls < 100  # a few per column (iter_rows asks too); was one per cell (2,700)


def test_copied_styles_give_the_same_bytes_as_styling_every_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _table(120)
    extra = {"托位缺口": table.drop(columns=["name"]).head(40)}
    fast = write_xlsx(table, tmp_path / "fast.xlsx", summary=_summary(), extra_sheets=extra)
    # a key no other cell shares: every cell is styled by _style_cell, as before
    monkeypatch.setattr(reports, "_style_key", lambda value, number_format: (object(),))
    slow = write_xlsx(table, tmp_path / "slow.xlsx", summary=_summary(), extra_sheets=extra)
    assert fast.read_bytes() == slow.read_bytes()
    ws = load_workbook(fast)["街道指标"]
    last = ws.max_row
    assert ws.cell(last, 1).value == "合计" and ws.cell(last, 1).font.b
    assert ws.cell(last, 3).border.top.style == "medium"
    assert ws.cell(2, 3).border.top.style == "thin" and not ws.cell(2, 3).font.b
    statuses = {ws.cell(r, 8).value: ws.cell(r, 8).fill.fgColor.rgb for r in range(2, last)}
    assert statuses == {"达标": "00C6EFCE", "未达标": "00FFC7CE", "不详": "00EDEDED"}


def test_plain_frame_text_columns_without_a_loop() -> None:
    values: list[Any] = ["a", None, np.nan, pd.NA, np.int64(3), 2.5, np.float64("nan"), ["x", 1]]
    frame = gpd.GeoDataFrame(
        {
            "text": pd.array(["甲", None, "=1"] * 3, dtype="str"),
            "string": pd.array(["甲", None, "乙"] * 3, dtype="string"),
            "only_text": pd.Series(["甲", "乙", "丙"] * 3, dtype=object),
            "mixed": pd.Series([*values, "b"], dtype=object),
        },
        geometry=[shapely.Point(i, i) for i in range(9)],
        crs=32650,
    )
    out = _plain_frame(frame)
    for column in ("text", "string", "only_text", "mixed"):
        expected = [_plain_value(v) for v in frame[column]]
        got = out[column].tolist()
        assert out[column].dtype == object
        assert [type(v) for v in got] == [type(v) for v in expected], column
        assert got == expected, column
