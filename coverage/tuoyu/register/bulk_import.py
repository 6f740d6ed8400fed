"""Import an existing 备案 spreadsheet into registered filings.

A committee that kept its register in Excel hands over a CSV (UTF-8 or GBK/GB18030) or
XLSX file with Chinese headers (机构名称, 地址, 街道, 托位数, 是否普惠, 备案日期, 备案编号,
经度, 纬度, 坐标系, …). Each row is read by the facility loader's reader
(:func:`tuoyu.layers.tables.read_table`) and validated by the project's one rule set,
:func:`tuoyu.layers.facilities.validate_facility_record`, which maps the headers as the
loader does (:func:`tuoyu.layers.facilities.field_for_header`):

- a value the rule set cannot use is emptied and reported, a row it cannot place is
  skipped and reported — as in the loader;
- a row without a usable 备案日期 is skipped (a registered filing counts from that day);
- a repeated facility id or 备案编号, or one already in the register, is skipped.

The 备案编号 column (also 备案号) gives the filing's number and id; without it the
facility id is used. Every imported row gets one audit entry (the service stores them).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd

from tuoyu.errors import DataNotFoundError
from tuoyu.layers.facilities import (
    ROW_SKIPPED,
    AreaLike,
    validate_facility_record,
)
from tuoyu.layers.read_vector import guarded_read
from tuoyu.layers.rejects import Reject, rejects_frame
from tuoyu.layers.tables import read_table
from tuoyu.register.filings import Filing, filing_to_dict, imported_filing

NUMBER_HEADERS: Final = frozenset({"备案编号", "备案号", "filing_number"})
"""Headers of the 备案编号 column."""

IMPORT_ACTION: Final = "import"


@dataclass(frozen=True)
class AuditEntry:
    """One audit entry of an import (one per imported filing).

    Attributes
    ----------
    area, filing_id, facility_id
        What was imported.
    action
        ``import``.
    actor
        Who imported.
    on
        The day of the import.
    source, row
        The file (name only) and its 1-based data row.
    after
        The filing as stored (:func:`tuoyu.register.filings.filing_to_dict`).
    """

    area: str
    filing_id: str
    facility_id: str
    action: str
    actor: str
    on: dt.date
    source: str
    row: int
    after: dict[str, Any]


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_register` returns.

    Attributes
    ----------
    filings
        Filings in state ``registered``, in file order.
    rejects
        Columns ``file, row, field, value, reason`` (:mod:`tuoyu.layers.rejects`).
    audit
        One :class:`AuditEntry` per filing.
    warnings
        Remarks (columns not used, values cleaned).
    """

    filings: list[Filing]
    rejects: pd.DataFrame
    audit: list[AuditEntry]
    warnings: list[str]


def _key(header: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(header))).casefold()


_NUMBER_KEYS: Final = frozenset(_key(h) for h in NUMBER_HEADERS)


def _number_of(values: Mapping[str, object]) -> str | None:
    for header, value in values.items():
        if _key(header) in _NUMBER_KEYS and value is not None and str(value).strip():
            text = str(value).strip()
            if isinstance(value, float) and value.is_integer():
                text = str(int(value))
            return text
    return None


def import_register(
    path: str | Path,
    *,
    area: str,
    actor: str,
    on: dt.date,
    default_crs: str = "wgs84",
    area_polygon: AreaLike | None = None,
    area_code: str | None = None,
    existing_ids: Collection[str] = (),
    source_name: str | None = None,
) -> ImportResult:
    """Read a 备案 spreadsheet into registered filings, rejects and audit entries.

    Parameters
    ----------
    path
        CSV (UTF-8, UTF-8 with BOM, GBK/GB18030) or XLSX file.
    area
        Study-area slug of the register.
    actor, on
        Who imports and the day of the import (each filing's ``import`` step).
    default_crs
        Coordinate system when a row has no 坐标系 column.
    area_polygon
        Study area (WGS84): points outside are rejected.
    area_code
        The study area's ``[area] code``: district and 街道 codes of another district
        are rejected.
    existing_ids
        Filing ids already in the register: such rows are rejected, not overwritten.
    source_name
        The file name to show in rejects and audit (default: the file's name).

    Returns
    -------
    ImportResult

    Raises
    ------
    DataNotFoundError
        Missing file.
    InputValidationError
        Unreadable file (neither UTF-8 nor GBK, not a workbook).
    EmptyInputError
        No data rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"register file not found: {path}")
    source = source_name or path.name
    table = guarded_read(read_table, path)
    taken_filings = set(existing_ids)
    taken_facilities: dict[str, int] = {}
    seen_filings: dict[str, int] = {}
    filings: list[Filing] = []
    audit: list[AuditEntry] = []
    rejects: list[Reject] = []
    notes: list[str] = []
    for raw in table.rows:
        row_notes: list[str] = []
        record, row_rejects = validate_facility_record(
            raw.values,
            default_crs=default_crs,
            source=source,
            row=raw.number,
            area_polygon=area_polygon,
            area_code=area_code,
            notes=row_notes,
        )
        rejects.extend(row_rejects)
        notes.extend(
            n if n.startswith(source) else f"{source} row {raw.number}: {n}" for n in row_notes
        )
        if record is None:
            continue
        number = _number_of(raw.values)
        facility_id = str(record["id"])
        filing_id = number or facility_id
        problem = _row_problem(
            record, filing_id, facility_id, taken_filings, seen_filings, taken_facilities
        )
        if problem is not None:
            field, value, reason = problem
            rejects.append(Reject(source, raw.number, field, value, f"{reason}; {ROW_SKIPPED}"))
            continue
        seen_filings[filing_id] = raw.number
        taken_facilities[facility_id] = raw.number
        filing = imported_filing(
            record, filing_id=filing_id, area=area, actor=actor, on=on, number=number
        )
        filings.append(filing)
        audit.append(
            AuditEntry(
                area=area,
                filing_id=filing_id,
                facility_id=facility_id,
                action=IMPORT_ACTION,
                actor=actor,
                on=on,
                source=source,
                row=raw.number,
                after=filing_to_dict(filing),
            )
        )
    warnings = [*table.notes, *_summary(notes)]
    return ImportResult(filings, rejects_frame(rejects), audit, warnings)


def _row_problem(
    record: Mapping[str, object],
    filing_id: str,
    facility_id: str,
    existing: Collection[str],
    seen_filings: Mapping[str, int],
    seen_facilities: Mapping[str, int],
) -> tuple[str, str, str] | None:
    """``(field, value, reason)`` when a clean row still cannot become a filing."""
    if not isinstance(record.get("registered_on"), dt.date):
        return (
            "registered_on",
            "",
            "no usable 备案日期: a registered filing counts from that day (缺少备案日期)",
        )
    if filing_id in existing:
        return ("filing_number", filing_id, "already in the register (备案编号已存在)")
    if filing_id in seen_filings:
        return (
            "filing_number",
            filing_id,
            f"duplicate 备案编号 (备案编号重复), first at row {seen_filings[filing_id]}",
        )
    if facility_id in seen_facilities:
        return (
            "id",
            facility_id,
            f"duplicate id (编号重复), first at row {seen_facilities[facility_id]}",
        )
    return None


def _summary(notes: list[str], shown: int = 5) -> list[str]:
    unique = list(dict.fromkeys(notes))
    if len(unique) <= shown:
        return unique
    return [*unique[:shown], f"… and {len(unique) - shown} more remarks"]


__all__ = ["NUMBER_HEADERS", "AuditEntry", "ImportResult", "import_register"]
