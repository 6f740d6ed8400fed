"""Working-day deadlines of the 备案 register, with China's statutory holidays.

Policy 001 (忻政办发〔2020〕67号, 落实备案管理): the health committee "在收到托育机构备案材料
后,应当在5个工作日内提供备案回执", and when the filing does not meet the standards
"应当自接收备案材料之日起15个工作日内通知备案机构,说明理由". So, counted from the day
the materials were received (that day not counted):

- the 回执 is due on the 5th working day (:data:`RECEIPT_WORKING_DAYS`); it is answered
  by issuing the receipt, by returning the filing or by registering it;
- the correction notice is due on the 15th working day
  (:data:`CORRECTION_WORKING_DAYS`); the review is answered by returning the filing
  (the notice) or by registering it.

A resubmitted filing starts both clocks again. A deadline is overdue on a day after its
due date while unanswered; done on or before the due date it was met.

Working days are Monday to Friday, minus the statutory holidays and plus the adjusted
working weekend days (调休) of the State Council's yearly schedule, from the maintained
package ``chinese-calendar`` (import ``chinese_calendar``). The package knows only the
years whose schedule was published when it was released (2004 up to the year after its
release); for any other year it raises ``NotImplementedError``, which becomes
:class:`tuoyu.errors.InputValidationError` naming the year: update the package
(``pip install -U chinese-calendar``) once the State Council publishes that year's
schedule (usually in November of the year before).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import chinese_calendar

from tuoyu.errors import InputValidationError
from tuoyu.register.filings import Filing, Step

RECEIPT_WORKING_DAYS: Final = 5
"""备案回执 due within 5 working days of receiving the materials (policy 001)."""

CORRECTION_WORKING_DAYS: Final = 15
"""Correction notice due within 15 working days of receiving the materials (policy 001)."""

DEADLINE_KINDS: Final[dict[str, str]] = {"receipt": "备案回执", "correction": "补正通知"}
"""Deadline kinds, key → Chinese label."""

_ANSWERS: Final[dict[str, frozenset[str]]] = {
    "receipt": frozenset({"issue_receipt", "return", "register"}),
    "correction": frozenset({"return", "register"}),
}
_STARTS: Final = frozenset({"submit", "resubmit"})
_DAYS: Final = {"receipt": RECEIPT_WORKING_DAYS, "correction": CORRECTION_WORKING_DAYS}


def is_working_day(day: dt.date) -> bool:
    """True when ``day`` is a working day in China (holidays and 调休 included).

    Raises
    ------
    InputValidationError
        ``field='on'``: the installed ``chinese-calendar`` has no schedule for the year.

    Examples
    --------
    >>> is_working_day(dt.date(2025, 1, 26)), is_working_day(dt.date(2025, 1, 28))
    (True, False)
    """
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as exc:
        raise InputValidationError(
            f"no holiday schedule for the year {day.year} in chinese-calendar "
            f"{getattr(chinese_calendar, '__version__', '?')}: working days of {day.year} "
            "are unknown; update the package (pip install -U chinese-calendar) once the "
            "State Council has published that year's schedule (无该年度节假日安排)",
            field="on",
        ) from exc


def add_working_days(start: dt.date, days: int) -> dt.date:
    """The ``days``-th working day after ``start`` (``start`` itself not counted).

    Parameters
    ----------
    start
        The day the materials were received.
    days
        Working days allowed (≥ 1).

    Raises
    ------
    InputValidationError
        ``days`` < 1, or a year the holiday calendar does not cover.

    Examples
    --------
    >>> add_working_days(dt.date(2025, 1, 24), 5)  # over the 2025 Spring Festival
    datetime.date(2025, 2, 7)
    """
    if days < 1:
        raise InputValidationError(f"days must be at least 1, got {days}", field="days")
    day, counted = start, 0
    while counted < days:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return day


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days after ``start`` up to and including ``end`` (0 when ``end <= start``).

    Examples
    --------
    >>> working_days_between(dt.date(2025, 9, 30), dt.date(2025, 10, 11))  # 10-9, 10-10, 10-11
    3
    """
    count, day = 0, start
    while day < end:
        day += dt.timedelta(days=1)
        count += is_working_day(day)
    return count


@dataclass(frozen=True)
class Deadline:
    """One deadline of one submission of a filing.

    Attributes
    ----------
    filing_id
        The filing.
    kind
        ``receipt`` (回执) or ``correction`` (补正通知).
    submitted_on
        The day the materials were received (the clock's start).
    due
        The last day to answer.
    answered_on
        The day it was answered (see the module), ``None`` while open.
    """

    filing_id: str
    kind: str
    submitted_on: dt.date
    due: dt.date
    answered_on: dt.date | None

    def met(self) -> bool:
        """Answered on or before the due date."""
        return self.answered_on is not None and self.answered_on <= self.due

    def overdue_on(self, day: dt.date) -> bool:
        """Past due and unanswered on ``day``."""
        return day > self.due and (self.answered_on is None or self.answered_on > day)


def _cycles(filing: Filing) -> Iterator[tuple[Step, list[Step]]]:
    """Each submission with the steps that follow it up to the next submission."""
    start: Step | None = None
    after: list[Step] = []
    for step in filing.steps:
        if step.action in _STARTS:
            if start is not None:
                yield start, after
            start, after = step, []
        elif start is not None:
            after.append(step)
    if start is not None:
        yield start, after


def deadlines(filing: Filing) -> list[Deadline]:
    """Every deadline of ``filing``: a 回执 and a correction deadline per submission.

    An imported filing (registered before it entered the register) has none.

    Examples
    --------
    >>> from tuoyu.register.filings import submit
    >>> f = submit({"编号": "A1", "经度": 116.4, "纬度": 39.9}, filing_id="F1", area="x",
    ...            actor="clerk", on=dt.date(2025, 9, 26))
    >>> [(d.kind, d.due.isoformat()) for d in deadlines(f)]
    [('receipt', '2025-10-10'), ('correction', '2025-10-23')]
    """
    out: list[Deadline] = []
    for start, after in _cycles(filing):
        for kind, days in _DAYS.items():
            answered = next((s.on for s in after if s.action in _ANSWERS[kind]), None)
            out.append(
                Deadline(
                    filing_id=filing.filing_id,
                    kind=kind,
                    submitted_on=start.on,
                    due=add_working_days(start.on, days),
                    answered_on=answered,
                )
            )
    return out


def open_deadlines(filing: Filing) -> list[Deadline]:
    """The unanswered deadlines of ``filing`` (the current submission's, if any)."""
    return [d for d in deadlines(filing) if d.answered_on is None]


@dataclass(frozen=True)
class Overdue:
    """A deadline past due on a day.

    Attributes
    ----------
    filing_id, kind, submitted_on, due
        As in :class:`Deadline`.
    facility_id, name
        The facility filed.
    state
        The filing's state.
    working_days_late
        Working days after the due date up to the day of the list.
    """

    filing_id: str
    facility_id: str
    name: str | None
    state: str
    kind: str
    submitted_on: dt.date
    due: dt.date
    working_days_late: int


def overdue(filings: Iterable[Filing], on: dt.date) -> list[Overdue]:
    """The deadlines past due and unanswered on ``on``, oldest due date first.

    Only the steps taken on or before ``on`` count, so a past day's list can be
    rebuilt.

    Examples
    --------
    >>> from tuoyu.register.filings import submit
    >>> f = submit({"编号": "A1", "经度": 116.4, "纬度": 39.9}, filing_id="F1", area="x",
    ...            actor="clerk", on=dt.date(2025, 9, 26))
    >>> [(o.kind, o.working_days_late) for o in overdue([f], dt.date(2025, 10, 14))]
    [('receipt', 3)]
    """
    out: list[Overdue] = []
    for filing in filings:
        for deadline in deadlines(filing):
            if deadline.submitted_on > on or not deadline.overdue_on(on):
                continue
            state = filing.steps[0].state
            for step in filing.steps:
                if step.on <= on:
                    state = step.state
            name = filing.record.get("name")
            out.append(
                Overdue(
                    filing_id=filing.filing_id,
                    facility_id=filing.facility_id,
                    name=str(name) if name is not None else None,
                    state=state,
                    kind=deadline.kind,
                    submitted_on=deadline.submitted_on,
                    due=deadline.due,
                    working_days_late=working_days_between(deadline.due, on),
                )
            )
    return sorted(out, key=lambda o: (o.due, o.filing_id, o.kind))


@dataclass(frozen=True)
class MonthlyCount:
    """The register's figures of one month, for the committee's report.

    Attributes
    ----------
    year, month
        The month.
    submitted
        Submissions received (``submit`` and ``resubmit`` steps).
    registered
        Filings registered (``register`` steps; imports are not counted).
    returned
        Filings returned for correction.
    overdue
        Deadlines falling due in the month that were not met by their due date
        (answered late, or still open): each missed deadline is counted once, in the
        month it fell due.
    """

    year: int
    month: int
    submitted: int
    registered: int
    returned: int
    overdue: int


def monthly_count(filings: Iterable[Filing], year: int, month: int) -> MonthlyCount:
    """The register's figures of ``year``-``month`` (see :class:`MonthlyCount`).

    Raises
    ------
    InputValidationError
        ``month`` not in 1–12.

    Examples
    --------
    >>> from tuoyu.register.filings import submit
    >>> f = submit({"编号": "A1", "经度": 116.4, "纬度": 39.9}, filing_id="F1", area="x",
    ...            actor="clerk", on=dt.date(2025, 9, 26))
    >>> monthly_count([f], 2025, 9).submitted, monthly_count([f], 2025, 10).overdue
    (1, 2)
    """
    if not 1 <= month <= 12:
        raise InputValidationError(f"month must be 1–12, got {month}", field="month")
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    counts = {"submitted": 0, "registered": 0, "returned": 0, "overdue": 0}
    for filing in filings:
        for step in filing.steps:
            if not first <= step.on <= last:
                continue
            if step.action in _STARTS:
                counts["submitted"] += 1
            elif step.action == "register":
                counts["registered"] += 1
            elif step.action == "return":
                counts["returned"] += 1
        counts["overdue"] += sum(
            1 for d in deadlines(filing) if first <= d.due <= last and not d.met()
        )
    return MonthlyCount(year=year, month=month, **counts)


__all__ = [
    "CORRECTION_WORKING_DAYS",
    "DEADLINE_KINDS",
    "RECEIPT_WORKING_DAYS",
    "Deadline",
    "MonthlyCount",
    "Overdue",
    "add_working_days",
    "deadlines",
    "is_working_day",
    "monthly_count",
    "open_deadlines",
    "overdue",
    "working_days_between",
]
