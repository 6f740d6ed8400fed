"""Reading tabular inputs (CSV, XLSX, GeoJSON points) into raw rows, with encoding detection.

Registries arrive from Excel as CSV in UTF-8, UTF-8 with BOM or GBK/GB18030, as XLSX, or
as GeoJSON point layers. This module only reads: every cell stays as the file gave it
(strings from CSV, native values from XLSX/GeoJSON), with its 1-based data row number
(header excluded), so that validation downstream can name file, row and field.

An XLSX cell holding a formula is read as the value Excel saved with it. A workbook
written by a program that does not calculate (openpyxl, many exporters) saves formulas
without values; such a cell anywhere in the table read (header or data row, used column
or not: the reader does not know which columns a loader uses) refuses the file with the
worksheet, cell, row and column named — it is never read as empty
(:func:`formula_cells_without_value`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zipfile import BadZipFile, ZipFile

from charset_normalizer import from_bytes

from tuoyu.errors import DataNotFoundError, EmptyInputError, InputValidationError

CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
GEOJSON_SUFFIXES = frozenset({".geojson", ".json"})

_GB_FAMILY = frozenset({"gb2312", "gbk", "gb18030", "hz"})
_GB2312_SHARE_MIN = 0.9
"""Share of non-ASCII characters that must be common simplified Chinese (GB2312) before
a file is read as GBK: Big5 or Shift-JIS bytes also decode as GBK, but into rare
characters, which this check refuses."""

_DELIMITERS = (",", "\t", ";")


@dataclass(frozen=True)
class RawRow:
    """One data row as read from the file.

    Attributes
    ----------
    number
        1-based data row number (header excluded; GeoJSON: feature number).
    values
        Column name → cell value as given (``None`` for an empty cell).
    point
        ``(x, y)`` of a GeoJSON Point geometry, else ``None``.
    geometry_problem
        Why the row's GeoJSON geometry cannot give a point (e.g. a LineString), else
        ``None``.
    """

    number: int
    values: dict[str, object]
    point: tuple[float, float] | None = None
    geometry_problem: str | None = None


@dataclass(frozen=True)
class RawTable:
    """Rows of a CSV/XLSX/GeoJSON file before validation.

    Attributes
    ----------
    path
        The file read.
    kind
        ``"csv"``, ``"xlsx"`` or ``"geojson"``.
    columns
        Column names in file order (GeoJSON: property keys in order of first use).
    rows
        The data rows (blank rows skipped, numbering kept).
    encoding
        Text encoding used (``None`` for XLSX).
    crs_hint
        Coordinate system the file itself declares (GeoJSON ``coordinate_system`` or
        ``crs`` member), else ``None``.
    notes
        Remarks made while reading (duplicate headers, ...).
    """

    path: Path
    kind: str
    columns: list[str]
    rows: list[RawRow]
    encoding: str | None = None
    crs_hint: str | None = None
    notes: list[str] = field(default_factory=list)


def decode_text(data: bytes, path: str | Path) -> tuple[str, str]:
    """Decode the bytes of a text file as UTF-8 (with or without BOM) or GBK/GB18030.

    UTF-8 is tried first (strict). Otherwise charset-normalizer proposes encodings; the
    text is read as GB18030 (a superset of GBK and GB2312) only when a GB encoding is
    among its candidates and the decoded text is mostly common simplified Chinese.

    Parameters
    ----------
    data
        The file's bytes.
    path
        The file, for messages.

    Returns
    -------
    tuple of str
        ``(text, encoding)`` with encoding ``"utf-8"``, ``"utf-8-sig"`` or ``"gb18030"``.

    Raises
    ------
    InputValidationError
        Binary data, or text in another encoding (named when detected).

    Examples
    --------
    >>> decode_text("托位".encode("gbk"), "a.csv")
    ('托位', 'gb18030')
    >>> decode_text("\\ufeffid".encode("utf-8"), "a.csv")
    ('id', 'utf-8-sig')
    """
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise InputValidationError(
                f"starts with a UTF-8 byte-order mark but is not valid UTF-8 ({exc.reason} "
                f"at byte {exc.start + 3}); re-save it as 'CSV UTF-8'",
                path=path,
            ) from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if b"\x00" in data or data.startswith(b"PK\x03\x04"):
        raise InputValidationError(
            "is binary, not text (an Excel workbook saved with a .csv name?); "
            "save it as .xlsx or as 'CSV UTF-8'",
            path=path,
        )
    matches = from_bytes(data)
    candidates = [m.encoding for m in matches]
    if any(_normal_encoding(name) in _GB_FAMILY for name in candidates):
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            text = None
        if text is not None and _gb2312_share(text) >= _GB2312_SHARE_MIN:
            return text, "gb18030"
    guess = candidates[0] if candidates else "unknown"
    raise InputValidationError(
        f"text is neither UTF-8 nor GBK/GB18030 (looks like {guess}); "
        "save it from Excel as 'CSV UTF-8' (or GBK) and try again",
        path=path,
    )


def _normal_encoding(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _gb2312_share(text: str) -> float:
    """Share of non-ASCII characters (whitespace excluded) that GB2312 can encode."""
    special = [ch for ch in text if ord(ch) > 127 and not ch.isspace()]
    if not special:
        return 1.0
    common = 0
    for ch in special:
        try:
            ch.encode("gb2312")
        except UnicodeEncodeError:
            continue
        common += 1
    return common / len(special)


def read_table(path: str | Path) -> RawTable:
    """Read a CSV, XLSX or GeoJSON file into raw rows.

    Parameters
    ----------
    path
        ``.csv``/``.tsv``/``.txt`` (comma, tab or semicolon separated, UTF-8 or GBK),
        ``.xlsx``/``.xlsm`` (first worksheet with data) or ``.geojson``/``.json``
        (FeatureCollection; Point geometries give the coordinates).

    Returns
    -------
    RawTable

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    EmptyInputError
        The file holds no data rows.
    InputValidationError
        Unsupported format, undecodable text or malformed content.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _read_csv(path)
    if suffix in XLSX_SUFFIXES:
        return _read_xlsx(path)
    if suffix in GEOJSON_SUFFIXES:
        return _read_geojson(path)
    if suffix == ".xls":
        raise InputValidationError(
            "old Excel .xls workbooks are not read; save it as .xlsx or 'CSV UTF-8'", path=path
        )
    raise InputValidationError(
        f"unsupported file type '{suffix}': use .csv, .xlsx or .geojson", path=path
    )


def _empty_cell(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    return isinstance(value, float) and math.isnan(value)


def _header_names(cells: list[object], path: Path) -> tuple[list[str], list[str]]:
    """Header cells as unique, stripped names; remarks about blanks and duplicates."""
    names: list[str] = []
    notes: list[str] = []
    seen: dict[str, int] = {}
    for i, cell in enumerate(cells, start=1):
        name = "" if cell is None else str(cell).replace("\ufeff", "").strip()
        if not name:
            name = f"column_{i}"
        if name in seen:
            seen[name] += 1
            renamed = f"{name}.{seen[name]}"
            notes.append(
                f"{path}: header '{name}' appears more than once; copy read as '{renamed}'"
            )
            name = renamed
        else:
            seen[name] = 0
        names.append(name)
    return names, notes


def _read_csv(path: Path) -> RawTable:
    data = path.read_bytes()
    if not data.strip():
        raise EmptyInputError("file is empty", path=path)
    text, encoding = decode_text(data, path)
    first_line = text.lstrip("\r\n").splitlines()[0] if text.strip() else ""
    delimiter = max(_DELIMITERS, key=first_line.count)
    if first_line.count(delimiter) == 0:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    notes: list[str] = []
    rows: list[RawRow] = []
    number = 0
    try:
        for cells in reader:
            if header is None:
                if not any(c.strip() for c in cells):
                    continue
                header, notes = _header_names(list(cells), path)
                continue
            number += 1
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
                notes.append(
                    f"{path}: row {number} has {len(cells)} cells for {len(header)} columns; "
                    "the extra cells are ignored"
                )
            values: dict[str, object] = {
                name: (cells[i] if i < len(cells) and cells[i].strip() else None)
                for i, name in enumerate(header)
            }
            rows.append(RawRow(number=number, values=values))
    except csv.Error as exc:
        raise InputValidationError(f"malformed CSV: {exc}", path=path, row=number + 1) from exc
    if header is None or not rows:
        raise EmptyInputError("file has no data rows", path=path)
    return RawTable(path, "csv", header, rows, encoding=encoding, notes=notes)


# --- XLSX formulas without a saved value ------------------------------------------------------

_FORMULA_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s/>]")
_SCAN_CHUNK = 1 << 20
_CELL_REF = re.compile(r"^([A-Z]{1,3})([0-9]+)$")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _relationship_id(element: ET.Element) -> str | None:
    """The ``r:id`` attribute (transitional or strict namespace) of a workbook element."""
    return next((v for k, v in element.attrib.items() if k.endswith("}id")), None)


def _worksheet_parts(archive: ZipFile) -> dict[str, str]:
    """Worksheet name → its part (file) in the XLSX archive."""
    package = ET.fromstring(archive.read("_rels/.rels"))
    workbook = next(
        (
            str(rel.get("Target"))
            for rel in package
            if str(rel.get("Type", "")).endswith("/officeDocument")
        ),
        "xl/workbook.xml",
    ).lstrip("/")
    base = posixpath.dirname(workbook)
    rels = posixpath.join(base, "_rels", posixpath.basename(workbook) + ".rels")
    targets = {
        str(rel.get("Id")): str(rel.get("Target")) for rel in ET.fromstring(archive.read(rels))
    }
    parts: dict[str, str] = {}
    for element in ET.fromstring(archive.read(workbook)).iter():
        if _local(element.tag) != "sheet":
            continue
        target = targets.get(_relationship_id(element) or "")
        if target is None:
            continue
        part = target.lstrip("/") if target.startswith("/") else posixpath.join(base, target)
        parts[str(element.get("name"))] = posixpath.normpath(part)
    return parts


def _has_formula(archive: ZipFile, part: str) -> bool:
    """Whether the part holds any formula element (a streamed byte scan, no XML parse)."""
    tail = b""
    with archive.open(part) as src:
        while chunk := src.read(_SCAN_CHUNK):
            if _FORMULA_TAG.search(tail + chunk):
                return True
            tail = chunk[-32:]
    return False


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


def _column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def formula_cells_without_value(path: str | Path, sheet: str) -> dict[tuple[int, int], str]:
    """Cells of an XLSX worksheet holding a formula whose value was never saved.

    Excel and WPS save each formula's last result with it, and readers (openpyxl with
    ``data_only=True``, pandas) return that result. A program that writes formulas
    without calculating them saves no result, and those readers return ``None`` — the
    cell would silently read as empty. A formula whose saved result is the empty text
    (``t="str"`` with an empty value, e.g. ``=IF(A2="","",A2)``) has a value and is not
    listed.

    Parameters
    ----------
    path
        The ``.xlsx``/``.xlsm`` file.
    sheet
        Worksheet name.

    Returns
    -------
    dict
        ``(row, column)`` (1-based sheet coordinates) → the formula text (``""`` for a
        cell sharing another cell's formula).

    Raises
    ------
    InputValidationError
        The workbook has no worksheet of that name, or its structure cannot be read.
    """
    try:
        with ZipFile(path) as archive:
            part = _worksheet_parts(archive).get(sheet)
            if part is None:
                raise InputValidationError(f"workbook has no worksheet '{sheet}'", path=path)
            if not _has_formula(archive, part):
                return {}
            return _scan_formulas(archive, part)
    except (BadZipFile, KeyError, ET.ParseError, OSError, ValueError) as exc:
        raise InputValidationError(
            f"cannot read the formulas of worksheet '{sheet}': {exc}", path=path
        ) from exc


def _scan_formulas(archive: ZipFile, part: str) -> dict[tuple[int, int], str]:
    found: dict[tuple[int, int], str] = {}
    row, column = 0, 0
    with archive.open(part) as src:
        for event, element in ET.iterparse(src, events=("start", "end")):
            name = _local(element.tag)
            if event == "start":
                if name == "row":
                    given = element.get("r")
                    row = int(given) if given else row + 1
                    column = 0
                continue
            if name == "row":
                element.clear()
                continue
            if name != "c":
                continue
            ref = _CELL_REF.match(element.get("r") or "")
            if ref is not None:
                row, column = int(ref.group(2)), _column_number(ref.group(1))
            else:
                column += 1
            formula = value = None
            for child in element:
                kind = _local(child.tag)
                if kind == "f":
                    formula = child
                elif kind == "v":
                    value = child
            if formula is not None and (
                value is None or (not value.text and element.get("t") != "str")
            ):
                found[(row, column)] = formula.text or ""
            element.clear()
    return found


def _formula_error(
    path: Path,
    sheet: str,
    cell: tuple[int, int],
    formula: str,
    total: int,
    *,
    row: int | None = None,
    column: str | None = None,
) -> InputValidationError:
    ref = f"{_column_letters(cell[1])}{cell[0]}"
    where = f"worksheet '{sheet}', cell {ref}"
    where += f" (column '{column}')" if column is not None else " (header)"
    shown = f" (={formula})" if formula else ""
    more = f"; {total} such cells in this worksheet" if total > 1 else ""
    return InputValidationError(
        f"{where}: a formula with no saved value{shown} — the file was probably written by a "
        "program that does not calculate; open and save it in Excel/WPS, or paste the values "
        f"(公式没有保存计算结果: 请用 Excel/WPS 打开并保存, 或选择性粘贴为数值){more}",
        path=path,
        row=row,
        field=column,
    )


def _read_xlsx(path: Path) -> RawTable:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    if path.stat().st_size == 0:
        raise EmptyInputError("file is empty", path=path)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, OSError, KeyError, ValueError) as exc:
        raise InputValidationError(f"not a readable .xlsx workbook: {exc}", path=path) from exc
    try:
        for sheet in workbook.worksheets:
            unsaved = formula_cells_without_value(path, sheet.title)
            by_row: dict[int, list[int]] = {}
            for cell_row, cell_column in sorted(unsaved):
                by_row.setdefault(cell_row, []).append(cell_column)
            header: list[str] | None = None
            notes: list[str] = []
            rows: list[RawRow] = []
            number = 0
            for sheet_row, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
                if header is None:
                    _refuse_unsaved(unsaved, by_row, path, sheet.title, sheet_row, None, 0)
                    if all(_empty_cell(c) for c in cells):
                        continue
                    header, notes = _header_names(list(cells), path)
                    continue
                number += 1
                _refuse_unsaved(unsaved, by_row, path, sheet.title, sheet_row, header, number)
                if all(_empty_cell(c) for c in cells):
                    continue
                values: dict[str, object] = {
                    name: (None if i >= len(cells) or _empty_cell(cells[i]) else cells[i])
                    for i, name in enumerate(header)
                }
                rows.append(RawRow(number=number, values=values))
            if header is not None and rows:
                if len(workbook.worksheets) > 1:
                    notes.append(f"{path}: read worksheet '{sheet.title}' only")
                return RawTable(path, "xlsx", header, rows, notes=notes)
    finally:
        workbook.close()
    raise EmptyInputError("workbook has no data rows", path=path)


def _refuse_unsaved(
    unsaved: Mapping[tuple[int, int], str],
    by_row: Mapping[int, list[int]],
    path: Path,
    sheet: str,
    sheet_row: int,
    header: list[str] | None,
    number: int,
) -> None:
    """Raise for a formula without saved value in this row (before the header: any column;
    in a data row: the columns under the header)."""
    columns = by_row.get(sheet_row)
    if not columns or (header is not None and columns[0] > len(header)):
        return
    cell = (sheet_row, columns[0])
    if header is None:
        raise _formula_error(path, sheet, cell, unsaved[cell], len(unsaved))
    raise _formula_error(
        path, sheet, cell, unsaved[cell], len(unsaved), row=number, column=header[cell[1] - 1]
    )


def _geojson_crs_hint(doc: dict[str, object]) -> str | None:
    hint = doc.get("coordinate_system")
    if isinstance(hint, str):
        return hint
    crs = doc.get("crs")
    if isinstance(crs, dict):
        props = crs.get("properties")
        if isinstance(props, dict) and isinstance(props.get("name"), str):
            return str(props["name"])
    return None


def _point_of(geometry: object) -> tuple[tuple[float, float] | None, str | None]:
    if geometry is None:
        return None, None
    if not isinstance(geometry, dict):
        return None, "geometry is not a GeoJSON object"
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    if kind == "MultiPoint" and isinstance(coords, list) and len(coords) == 1:
        kind, coords = "Point", coords[0]
    if kind != "Point":
        return None, f"geometry is {kind}, expected Point"
    if (
        not isinstance(coords, list)
        or len(coords) < 2
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords[:2])
    ):
        return None, f"Point coordinates {coords!r} are not two numbers"
    return (float(coords[0]), float(coords[1])), None


def _read_geojson(path: Path) -> RawTable:
    data = path.read_bytes()
    if not data.strip():
        raise EmptyInputError("file is empty", path=path)
    text, encoding = decode_text(data, path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputValidationError(
            f"not valid JSON: {exc.msg} at line {exc.lineno}", path=path
        ) from exc
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        features: object = [doc]
    elif isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features")
    else:
        raise InputValidationError("not a GeoJSON FeatureCollection or Feature", path=path)
    if not isinstance(features, list):
        raise InputValidationError("'features' is not a list", path=path)
    if not features:
        raise EmptyInputError("FeatureCollection has no features", path=path)
    columns: dict[str, None] = {}
    rows: list[RawRow] = []
    for number, feature in enumerate(features, start=1):
        if not isinstance(feature, dict):
            raise InputValidationError("feature is not an object", path=path, row=number)
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            raise InputValidationError("'properties' is not an object", path=path, row=number)
        values: dict[str, object] = {}
        for key, value in props.items():
            name = str(key).strip()
            columns.setdefault(name, None)
            values[name] = None if _empty_cell(value) else value
        point, problem = _point_of(feature.get("geometry"))
        rows.append(RawRow(number=number, values=values, point=point, geometry_problem=problem))
    return RawTable(
        path, "geojson", list(columns), rows, encoding=encoding, crs_hint=_geojson_crs_hint(doc)
    )
