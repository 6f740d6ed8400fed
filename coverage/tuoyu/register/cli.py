"""The ``tuoyu register`` sub-commands' arguments (the work is in
:mod:`tuoyu.register.commands`, loaded only when a register command runs)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from exc


def _month(text: str) -> tuple[int, int]:
    try:
        day = dt.date.fromisoformat(f"{text}-01")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a month YYYY-MM: {text!r}") from exc
    return day.year, day.month


def add_register_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``register`` (with ``import`` and ``deadlines``) to the main parser's subcommands.

    Parameters
    ----------
    subparsers
        What ``parser.add_subparsers()`` returned in ``tuoyu.cli.build_parser``.

    Returns
    -------
    argparse.ArgumentParser
        The ``register`` parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="tuoyu")
    >>> _ = add_register_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["register", "deadlines", "f.json", "--on", "2025-02-10"])
    >>> args.on, args.func.__name__
    (datetime.date(2025, 2, 10), '_cmd_deadlines')
    """
    register: argparse.ArgumentParser = subparsers.add_parser(
        "register", help="the 备案 register: import, deadlines"
    )
    sub = register.add_subparsers(dest="register_command", required=True)
    imp = sub.add_parser("import", help="import an existing 备案 spreadsheet (CSV/XLSX)")
    imp.add_argument("file", type=Path, help="CSV (UTF-8 or GBK) or XLSX with Chinese headers")
    imp.add_argument("--area", required=True, help="study-area slug of the register")
    imp.add_argument(
        "--out", type=Path, default=None, help="output folder (default out/<area>/register)"
    )
    imp.add_argument("--actor", default="import", help="who imports (recorded in the audit)")
    imp.add_argument("--on", type=_date, default=None, help="day of the import (default today)")
    imp.add_argument("--crs", default="wgs84", help="coordinates' system without a 坐标系 column")
    imp.add_argument(
        "--to-service-db",
        action="store_true",
        help="also store the filings in the service's registry database (service extra)",
    )
    imp.set_defaults(func=_cmd_import)
    dl = sub.add_parser("deadlines", help="deadlines overdue on a day (from filings.json)")
    dl.add_argument("file", type=Path, help="filings.json written by 'register import' or the API")
    dl.add_argument("--on", type=_date, required=True, help="the day, YYYY-MM-DD")
    dl.add_argument("--month", type=_month, default=None, help="also the counts of YYYY-MM")
    dl.set_defaults(func=_cmd_deadlines)
    return register


def _cmd_import(args: argparse.Namespace) -> int:
    from tuoyu.register.commands import cmd_import

    return cmd_import(args)


def _cmd_deadlines(args: argparse.Namespace) -> int:
    from tuoyu.register.commands import cmd_deadlines

    return cmd_deadlines(args)
