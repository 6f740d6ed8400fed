"""XLSX formula cells without a saved value are refused, never read as empty (issue 17).

openpyxl writes a formula without calculating it: the cell has ``<f>`` and an empty
``<v/>``, and ``load_workbook(data_only=True)`` returns ``None`` for it — the same as an
empty cell. Excel and WPS save the result with the formula; those files read as before.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from openpyxl import Workbook
from tuoyu.errors import InputValidationError
from tuoyu.layers.facilities import load_facilities
from tuoyu.layers.population import read_unit_totals
from tuoyu.layers.tables import formula_cells_without_value, read_table
from tuoyu.layers.units import load_unit_table

HEADER = ["编号", "机构名称", "经度", "纬度", "托位数", "在托人数"]


def _book(path: Path, rows: list[list[Any]], title: str = "备案表") -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _save_values(path: Path, values: dict[str, tuple[str, str | None]]) -> Path:
    """Give formula cells the saved result Excel would write: ``ref → (value, t)``."""
    with zipfile.ZipFile(path) as src:
        items = {name: src.read(name) for name in src.namelist()}
    xml = items["xl/worksheets/sheet1.xml"].decode()
    for ref, (value, kind) in values.items():
        pattern = re.compile(rf'<c r="{ref}"([^>]*)><f>(.*?)</f><v\s*/>')
        attr = f' t="{kind}"' if kind else ""
        xml, n = pattern.subn(rf'<c r="{ref}"\1{attr}><f>\2</f><v>{value}</v>', xml)
        assert n == 1, (ref, xml)
    items["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in items.items():
            dst.writestr(name, data)
    return path


def _registry(path: Path) -> Path:
    return _book(
        path,
        [
            HEADER,
            ["A1", "甲托育", 106.5775, 29.5583, 30, 20],
            ["A2", "乙托育", 106.5780, 29.5590, "=E2*2", 40],
        ],
    )


def test_unsaved_formula_is_refused_naming_file_sheet_row_and_column(tmp_path: Path) -> None:
    path = _registry(tmp_path / "registry.xlsx")
    with pytest.raises(InputValidationError) as info:
        load_facilities(path)
    err = info.value
    assert err.path == str(path) and err.row == 2 and err.field == "托位数"
    message = str(err)
    assert "worksheet '备案表', cell E3" in message
    assert "a formula with no saved value (=E2*2)" in message
    assert "open and save it in Excel/WPS, or paste the values" in message


def test_saved_formula_values_are_read(tmp_path: Path) -> None:
    path = _save_values(_registry(tmp_path / "registry.xlsx"), {"E3": ("60", None)})
    result = load_facilities(path)
    assert result.facilities.set_index("id").loc["A2", "slots"] == 60
    assert result.rejects.empty


def test_formula_whose_saved_result_is_empty_text_reads_empty(tmp_path: Path) -> None:
    # Excel saves =IF(…,"",…) that gave "" as t="str" with an empty value: a real blank
    path = _book(
        tmp_path / "r.xlsx",
        [HEADER, ["A1", "甲托育", 106.5775, 29.5583, '=IF(1=1,"",5)', 20]],
    )
    _save_values(path, {"E2": ("", "str")})
    assert formula_cells_without_value(path, "备案表") == {}
    facility = load_facilities(path).facilities.iloc[0]
    assert pd.isna(facility["slots"])  # unknown, as an empty cell


def test_row_of_unsaved_formulas_is_not_skipped_as_blank(tmp_path: Path) -> None:
    path = _book(
        tmp_path / "r.xlsx",
        [
            ["code", "pop"],
            ["500103001", 100],
            ["=A2", "=B2*2"],  # reads as an empty row when the formulas have no value
        ],
    )
    with pytest.raises(InputValidationError) as info:
        read_table(path)
    assert info.value.row == 2 and info.value.field == "code"
    assert "cell A3" in str(info.value) and "2 such cells in this worksheet" in str(info.value)


def test_header_formula_without_value_is_refused(tmp_path: Path) -> None:
    path = _book(tmp_path / "r.xlsx", [["code", '="p"&"op"'], ["500103001", 100]])
    with pytest.raises(InputValidationError, match=r"cell B1 \(header\): a formula with no"):
        read_table(path)


def test_unit_totals_and_unit_table_refuse_unsaved_formulas(tmp_path: Path) -> None:
    path = _book(
        tmp_path / "totals.xlsx",
        [["code", "name", "pop"], ["500103001", "七星岗街道", "=1000+200"]],
        title="Sheet1",
    )
    with pytest.raises(InputValidationError, match=r"row 1, field 'pop': worksheet 'Sheet1'"):
        read_unit_totals(path, "code", "pop")
    with pytest.raises(InputValidationError, match=r"cell C2 \(column 'pop'\)"):
        load_unit_table(path, population_field="pop")


def test_unsaved_formula_in_an_unused_column_is_refused_too(tmp_path: Path) -> None:
    """The reader does not know which columns a loader will use: any cell of the table."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["code", "pop"])
    sheet.append(["500103001", 100])
    sheet["D2"] = "=B2*2"  # under no header: read as column 'column_4'
    book.save(tmp_path / "r.xlsx")
    with pytest.raises(InputValidationError, match=r"cell D2 \(column 'column_4'\)"):
        read_table(tmp_path / "r.xlsx")
