"""Where each input of a run came from: file hashes and the data registry's record.

Kept in the workflow (not in the indicator functions, which read no files): the run
hashes each input once and hands the records to the summary and the exports.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuoyu.config.data_registry import file_sha256, load_registry, resolve_data_dir
from tuoyu.config.settings import Settings
from tuoyu.errors import DataNotFoundError


def file_record(role: str, path: Path, settings: Settings) -> dict[str, Any]:
    """One input file: role, path relative to the data directory, sha256, origin.

    The path is relative to the data directory (the registry's key) when the file is
    there, else the bare file name: no machine path leaves the run.
    """
    record: dict[str, Any] = {"role": role, "path": path.name}
    if path.is_file():
        record["sha256"] = file_sha256(path)
    try:
        rel: str | None = path.resolve().relative_to(resolve_data_dir(settings)).as_posix()
    except (ValueError, DataNotFoundError):
        rel = None
    if rel is not None:
        record["path"] = rel
    entry = load_registry(settings.project_data_dir).get(rel or "")
    if entry is not None:
        record.update(origin=entry.origin, licence=entry.licence)
        if entry.attribution:
            record["attribution"] = entry.attribution
    return record


def file_records(files: Mapping[str, Path], settings: Settings) -> list[dict[str, Any]]:
    """:func:`file_record` of every ``{role: path}``, sorted by role."""
    return [file_record(role, Path(path), settings) for role, path in sorted(files.items())]
