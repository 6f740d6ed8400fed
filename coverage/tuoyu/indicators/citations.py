"""Policy citations by document number: ``"京政办发〔2023〕6号 二、工作目标"``.

Targets (:mod:`tuoyu.indicators.targets`) name the policy text they come from by its
file name under ``shared/policy/`` (``002_30e7b644e3d11434.txt``). People file reports
that cite the 文号 instead. ``data/policy_documents.toml`` maps each file to its number,
title, issuer and date as the text gives them; a document without a number (file 003,
a copy with the place names stripped) is cited by its title in 《》.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tuoyu.config.locations import project_data_dir as packaged_data_dir
from tuoyu.errors import AreaConfigError

DOCUMENTS_FILE: Final = "policy_documents.toml"
"""Name of the mapping file in the project data directory."""


class _CitesSource(Protocol):
    """Anything with ``source_file`` and ``clause`` (a :class:`~tuoyu.indicators.targets.Target`)."""

    @property
    def source_file(self) -> str: ...  # pragma: no cover - protocol

    @property
    def clause(self) -> str: ...  # pragma: no cover - protocol


@dataclass(frozen=True)
class PolicyDocument:
    """One policy text.

    Attributes
    ----------
    file
        File name under ``shared/policy/``.
    number
        文号 (``"京政办发〔2023〕6号"``); empty when the text has none.
    title, issuer, date
        As the text gives them (``date`` ISO ``YYYY-MM-DD``; empty when unknown).
    note
        Where the fields were read and any doubt about them.
    """

    file: str
    number: str
    title: str
    issuer: str = ""
    date: str = ""
    note: str = ""

    @property
    def short(self) -> str:
        """The 文号, else the title in 《》 (how a report names the document)."""
        return self.number or f"《{self.title}》"


class _DocumentRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(min_length=1)
    number: str = ""
    title: str = Field(min_length=1)
    issuer: str = ""
    date: str = ""
    note: str = ""


class _DocumentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: list[_DocumentRow]


@lru_cache(maxsize=8)
def _load(path: Path) -> dict[str, PolicyDocument]:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise AreaConfigError(f"{path}: policy document list not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise AreaConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        parsed = _DocumentsFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise AreaConfigError(f"{path}: [{loc}] {first['msg']}") from exc
    return {row.file: PolicyDocument(**row.model_dump()) for row in parsed.document}


def policy_documents(project_data_dir: Path | None = None) -> dict[str, PolicyDocument]:
    """File name → :class:`PolicyDocument`, from ``data/policy_documents.toml``.

    Raises
    ------
    AreaConfigError
        The file is missing or malformed (file and field named).

    Examples
    --------
    >>> policy_documents()["002_30e7b644e3d11434.txt"].number
    '京政办发〔2023〕6号'
    """
    path = (project_data_dir or packaged_data_dir()) / DOCUMENTS_FILE
    return dict(_load(path.resolve()))


def document_for(source_file: str, project_data_dir: Path | None = None) -> PolicyDocument | None:
    """The document of one policy file (by file name, any folder ignored), or ``None``.

    Examples
    --------
    >>> document_for("000_bff43468353cb89d.txt").issuer
    '重庆市人民政府办公厅'
    >>> document_for("unknown.txt") is None
    True
    """
    return policy_documents(project_data_dir).get(Path(source_file).name)


def _fields(target: _CitesSource | Mapping[str, Any]) -> tuple[str, str]:
    if isinstance(target, Mapping):
        return str(target.get("source_file") or ""), str(target.get("clause") or "")
    return str(target.source_file), str(target.clause)


def cite(target: _CitesSource | Mapping[str, Any], project_data_dir: Path | None = None) -> str:
    """How a report cites a target: document number (or title) and clause.

    Parameters
    ----------
    target
        A :class:`~tuoyu.indicators.targets.Target`, or its dump as found in
        ``summary["indicators"][key]["target"]`` (keys ``source_file``, ``clause``).
    project_data_dir
        The project's data folder (default: the checkout's or the package's).

    Returns
    -------
    str
        ``"京政办发〔2023〕6号 二、工作目标"``; a document without a number is named by its
        title in 《》; a file not in ``policy_documents.toml`` (a user's own profile) is
        named by its file name, so nothing is hidden.

    Examples
    --------
    >>> cite({"source_file": "002_30e7b644e3d11434.txt", "clause": "二、工作目标"})
    '京政办发〔2023〕6号 二、工作目标'
    >>> cite({"source_file": "003_dc983b7d9fb3f730.txt", "clause": "二、(三)发展目标"})
    '《3岁以下婴幼儿托育服务业发展十四五规划》 二、(三)发展目标'
    >>> cite({"source_file": "my_plan.txt", "clause": "第3条"})
    'my_plan.txt 第3条'
    """
    source_file, clause = _fields(target)
    doc = document_for(source_file, project_data_dir) if source_file else None
    name = doc.short if doc is not None else source_file
    return " ".join(part for part in (name, clause) if part)
