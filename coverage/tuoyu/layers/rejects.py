"""Rejected records of every input layer, and ``<out>/rejects.csv``.

Nothing is dropped silently (GUIDE §8): a loader that cannot use a value or a row
records a :class:`Reject` naming file, row, field and reason. ``rejects.csv`` is written
as UTF-8 with a byte-order mark so that Excel opens the Chinese text correctly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

import pandas as pd

from tuoyu.layers.schema import REJECTS_COLUMNS
from tuoyu.outputs.atomic import write_text_atomic
from tuoyu.outputs.cells import neutralise_text

REJECTS_FILE = "rejects.csv"


@dataclass(frozen=True)
class Reject:
    """One rejected value or row.

    Attributes
    ----------
    file
        The input file.
    row
        1-based data row number (header excluded), ``None`` for the whole file.
    field
        The schema field (or column) at fault.
    value
        The offending value as text (``""`` when missing).
    reason
        Why it was rejected and what happened (row skipped, or field left empty).
    """

    file: str
    row: int | None
    field: str
    value: str
    reason: str


def rejects_frame(rejects: Sequence[Reject]) -> pd.DataFrame:
    """Rejects as a DataFrame with the columns of ``schema.REJECTS_COLUMNS``.

    Examples
    --------
    >>> rejects_frame([Reject("a.csv", 3, "slots", "-2", "negative")]).iloc[0]["row"]
    np.int64(3)
    """
    frame = pd.DataFrame([astuple(r) for r in rejects], columns=list(REJECTS_COLUMNS))
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.loc[:, list(REJECTS_COLUMNS)].copy()
    out["row"] = out["row"].astype("Int64")
    for column in ("file", "field", "value", "reason"):
        out[column] = out[column].astype("str").where(out[column].notna(), "")
    return out


def merge_rejects(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate rejects of several layers and sort them stably by file and row.

    Rows of one file and row number keep the order in which they were recorded.
    File-level rejects (no row number) come first within their file.

    Raises
    ------
    ValueError
        A frame lacks one of the rejects columns.
    """
    parts = []
    for frame in frames:
        missing = [c for c in REJECTS_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"rejects frame lacks columns {missing}")
        parts.append(_typed(frame))
    if not parts:
        return rejects_frame([])
    merged = pd.concat(parts, ignore_index=True)
    order = merged.assign(_row=merged["row"].fillna(-1)).sort_values(
        ["file", "_row"], kind="stable"
    )
    return order.drop(columns="_row").reset_index(drop=True)


def write_rejects(rejects: pd.DataFrame | Iterable[pd.DataFrame], out_dir: str | Path) -> Path:
    """Write ``<out_dir>/rejects.csv`` atomically (UTF-8 with BOM, for Excel).

    Parameters
    ----------
    rejects
        One rejects DataFrame (columns ``file, row, field, value, reason``) or several
        (one per layer), merged and sorted stably by file and row.
    out_dir
        Output folder (created when missing). The file is written even when there are
        no rejects (header only), so a run always says what it rejected.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    frames = [rejects] if isinstance(rejects, pd.DataFrame) else list(rejects)
    merged = merge_rejects(frames)
    for column in ("file", "field", "value", "reason"):
        merged[column] = merged[column].map(neutralise_text)
    text = merged.to_csv(index=False, lineterminator="\r\n")
    return write_text_atomic(Path(out_dir) / REJECTS_FILE, text, encoding="utf-8-sig")


__all__ = ["REJECTS_FILE", "Reject", "merge_rejects", "rejects_frame", "write_rejects"]
