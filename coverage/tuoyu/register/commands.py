"""``tuoyu register …``: import a 备案 spreadsheet, list deadlines (the work; the
arguments are in :mod:`tuoyu.register.cli`).

Registered into the main parser by :func:`add_register_parser`::

    tuoyu register import FILE --area AREA [--out DIR] [--actor NAME] [--crs CRS] [--to-service-db]
    tuoyu register deadlines FILE --on YYYY-MM-DD [--month YYYY-MM]

``import`` writes ``filings.json`` (the filings), ``filings.csv`` (one row per filing:
the facility record with filing id, number and state), ``audit.json`` (one entry per
filing) and ``rejects.csv`` into DIR; with ``--to-service-db`` (service extra installed)
it also stores them in the registry database the service uses (``TUOYU_DATABASE_URL``
or the default SQLite file). ``deadlines`` reads a ``filings.json`` and prints the
deadlines overdue on the day and, with ``--month``, the month's counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from tuoyu.errors import InputValidationError
from tuoyu.layers.rejects import write_rejects
from tuoyu.outputs.atomic import write_text_atomic
from tuoyu.outputs.reports import write_csv
from tuoyu.register.bulk_import import ImportResult, import_register
from tuoyu.register.deadlines import DEADLINE_KINDS, monthly_count, overdue
from tuoyu.register.filings import STATES, Filing, filing_from_dict, filing_to_dict

FILINGS_JSON = "filings.json"
FILINGS_CSV = "filings.csv"
AUDIT_JSON = "audit.json"


def write_import(result: ImportResult, out_dir: Path) -> list[Path]:
    """Write ``filings.json``, ``filings.csv``, ``audit.json`` and ``rejects.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = [filing_to_dict(f) for f in result.filings]
    rows = [
        {
            "filing_id": f.filing_id,
            "filing_number": f.number,
            "state": f.state,
            **{k: v for k, v in f.record.items()},
        }
        for f in result.filings
    ]
    audit = [{**asdict(a), "on": a.on.isoformat()} for a in result.audit]
    return [
        write_text_atomic(out_dir / FILINGS_JSON, json.dumps(data, ensure_ascii=False, indent=1)),
        write_csv(pd.DataFrame(rows), out_dir / FILINGS_CSV),
        write_text_atomic(out_dir / AUDIT_JSON, json.dumps(audit, ensure_ascii=False, indent=1)),
        write_rejects(result.rejects, out_dir),
    ]


def cmd_import(args: argparse.Namespace) -> int:
    """``tuoyu register import``."""
    on = args.on or dt.date.today()
    existing: set[str] = set()
    store = None
    if args.to_service_db:
        store = _service_store()
        existing = store.existing_ids(args.area)
    result = import_register(
        args.file, area=args.area, actor=args.actor, on=on, default_crs=args.crs,
        area_code=_area_code(args.area), existing_ids=existing,
    )  # fmt: skip
    out_dir = args.out or Path("out") / args.area / "register"
    for path in write_import(result, out_dir):
        print(f"wrote {path}", file=sys.stderr)
    for line in result.warnings:
        print(f"note: {line}", file=sys.stderr)
    if store is not None:
        stored = store.save(result)
        print(f"stored {stored} filing(s) in the registry database", file=sys.stderr)
    print(
        f"{len(result.filings)} filing(s) imported as registered, {len(result.rejects)} "
        f"reject(s) in {out_dir / 'rejects.csv'}"
    )
    return 0


def _area_code(area: str) -> str | None:
    """The study area's ``[area] code`` (district and 街道 codes are checked against it).

    The same rule as the service's register: a row naming another district is rejected.
    """
    from tuoyu.config.study_area import load_area

    return load_area(area).area.code


class _ServiceStore:
    """The registry database of the service (imported only with ``--to-service-db``)."""

    def __init__(self) -> None:
        from tuoyu_api.db import open_database
        from tuoyu_api.settings import as_api_settings, resolve_database_url

        from tuoyu.config.settings import get_settings

        self.database = open_database(resolve_database_url(as_api_settings(get_settings())))

    def existing_ids(self, area: str) -> set[str]:
        from tuoyu_api.register_models import filing_ids

        with self.database.session() as session:
            return filing_ids(session, area)

    def save(self, result: ImportResult) -> int:
        from tuoyu_api.register_models import store_import

        try:
            with self.database.session() as session:
                count = store_import(session, result)
                session.commit()
                return count
        finally:
            self.database.dispose()


def _service_store() -> _ServiceStore:
    try:
        import tuoyu_api.register_models  # noqa: F401  # the service and its extra
    except ImportError as exc:
        raise InputValidationError(
            f"--to-service-db needs the service extra (pip install "
            f"'tuoyu-coverage[service]'); missing: {exc.name}",
            field="to_service_db",
        ) from exc
    return _ServiceStore()


def load_filings(path: Path) -> list[Filing]:
    """Filings from a ``filings.json`` (a list of filing objects, or ``{"filings": [...]}``).

    Raises
    ------
    InputValidationError
        Not JSON, or not filings.
    """
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InputValidationError(f"cannot read filings: {exc}", path=path) from exc
    items = data.get("filings") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputValidationError("expected a list of filings", path=path)
    return [filing_from_dict(item) for item in items]


def cmd_deadlines(args: argparse.Namespace) -> int:
    """``tuoyu register deadlines``."""
    filings = load_filings(args.file)
    late = overdue(filings, args.on)
    print(f"{len(late)} deadline(s) overdue on {args.on.isoformat()} (逾期)")
    for item in late:
        print(
            f"  {item.filing_id}\t{item.name or ''}\t{DEADLINE_KINDS[item.kind]}\t"
            f"提交 {item.submitted_on}\t应于 {item.due}\t逾期 {item.working_days_late} 个工作日\t"
            f"{STATES[item.state]}"
        )
    if args.month is not None:
        c = monthly_count(filings, *args.month)
        print(
            f"{c.year}-{c.month:02d}: 提交 {c.submitted}, 完成备案 {c.registered}, "
            f"退回补正 {c.returned}, 逾期 {c.overdue}"
        )
    return 0


__all__ = ["cmd_deadlines", "cmd_import", "load_filings", "write_import"]
