"""Working-day deadlines over the official 2025–2026 holiday schedules.

Expected dates are derived by hand from the State Council's schedules (国务院办公厅关于
2025年/2026年部分节假日安排的通知):

2025 春节: 1月28日(除夕)至2月4日放假, 共8天; 1月26日(周日)、2月8日(周六)上班.
2025 国庆节、中秋节: 10月1日至8日放假, 共8天; 9月28日(周日)、10月11日(周六)上班.
2026 春节: 2月15日至23日放假, 共9天; 2月14日(周六)、2月28日(周六)上班.
2026 中秋节: 9月25日至27日放假; 国庆节: 10月1日至7日放假; 9月20日(周日)、10月10日(周六)上班.

The day the materials are received is not counted; the n-th working day after it is
the due date (policy 001: 回执 within 5, correction notice within 15 working days).
"""

from __future__ import annotations

import datetime as dt

import pytest
from tuoyu.errors import InputValidationError
from tuoyu.register.deadlines import (
    add_working_days,
    deadlines,
    is_working_day,
    monthly_count,
    overdue,
    working_days_between,
)
from tuoyu.register.filings import REQUIRED_DOCUMENTS, Filing, submit, transition

D = dt.date
RECORD = {"编号": "X", "机构名称": "甲托育园", "经度": 106.5786, "纬度": 29.5583, "托位数": 30}


def _filing(fid: str, on: dt.date) -> Filing:
    return submit(
        {**RECORD, "编号": fid}, filing_id=fid, area="a", actor="clerk", on=on,
        documents=REQUIRED_DOCUMENTS,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (D(2025, 1, 26), True),  # Sunday, adjusted working day (春节调休)
        (D(2025, 1, 28), False),  # 除夕, holiday
        (D(2025, 2, 4), False),  # last day of the Spring Festival holiday
        (D(2025, 2, 8), True),  # Saturday, adjusted working day
        (D(2025, 9, 28), True),  # Sunday, adjusted working day (国庆调休)
        (D(2025, 10, 8), False),
        (D(2025, 10, 11), True),  # Saturday, adjusted working day
        (D(2025, 10, 12), False),  # ordinary Sunday
        (D(2026, 2, 14), True),  # Saturday, adjusted working day
        (D(2026, 2, 23), False),  # last day of the 2026 Spring Festival holiday
        (D(2026, 2, 28), True),  # Saturday, adjusted working day
        (D(2026, 9, 20), True),  # Sunday, adjusted working day
        (D(2026, 9, 25), False),  # 中秋节
        (D(2026, 10, 10), True),  # Saturday, adjusted working day
    ],
)
def test_working_days_follow_the_official_schedule(day: dt.date, working: bool) -> None:
    assert is_working_day(day) is working


@pytest.mark.parametrize(
    ("submitted", "receipt_due", "correction_due"),
    [
        # Friday before the 2025 Spring Festival. Working days after 1-24:
        # 1-26 Sun(1) 1-27(2) [1-28..2-4 holiday] 2-5(3) 2-6(4) 2-7(5) → 回执 2-7;
        # 2-8 Sat(6) 2-10(7) 2-11(8) 2-12(9) 2-13(10) 2-14(11) 2-17(12) 2-18(13) 2-19(14)
        # 2-20(15) → correction 2-20.
        (D(2025, 1, 24), D(2025, 2, 7), D(2025, 2, 20)),
        # Friday before the 2025 National Day: 9-28 Sun(1) 9-29(2) 9-30(3) [10-1..10-8]
        # 10-9(4) 10-10(5) → 10-10; 10-11 Sat(6) 10-13(7) 10-14(8) 10-15(9) 10-16(10)
        # 10-17(11) 10-20(12) 10-21(13) 10-22(14) 10-23(15) → 10-23.
        (D(2025, 9, 26), D(2025, 10, 10), D(2025, 10, 23)),
        # Thursday 2025-09-25: 9-26(1) 9-28 Sun(2) 9-29(3) 9-30(4) 10-9(5) → 10-9;
        # 10-10(6) 10-11 Sat(7) 10-13(8) 10-14(9) 10-15(10) 10-16(11) 10-17(12) 10-20(13)
        # 10-21(14) 10-22(15) → 10-22.
        (D(2025, 9, 25), D(2025, 10, 9), D(2025, 10, 22)),
        # Friday before the 2026 Spring Festival: 2-14 Sat(1) [2-15..2-23] 2-24(2) 2-25(3)
        # 2-26(4) 2-27(5) → 2-27; 2-28 Sat(6) 3-2(7) 3-3(8) 3-4(9) 3-5(10) 3-6(11)
        # 3-9(12) 3-10(13) 3-11(14) 3-12(15) → 3-12.
        (D(2026, 2, 13), D(2026, 2, 27), D(2026, 3, 12)),
        # Friday 2026-09-18: 9-20 Sun(1) 9-21(2) 9-22(3) 9-23(4) 9-24(5) → 9-24;
        # [9-25..9-27 中秋] 9-28(6) 9-29(7) 9-30(8) [10-1..10-7] 10-8(9) 10-9(10)
        # 10-10 Sat(11) 10-12(12) 10-13(13) 10-14(14) 10-15(15) → 10-15.
        (D(2026, 9, 18), D(2026, 9, 24), D(2026, 10, 15)),
        # Wednesday 2026-09-30: 10-8(1) 10-9(2) 10-10 Sat(3) 10-12(4) 10-13(5) → 10-13;
        # 10-14(6) 10-15(7) 10-16(8) 10-19(9) 10-20(10) 10-21(11) 10-22(12) 10-23(13)
        # 10-26(14) 10-27(15) → 10-27.
        (D(2026, 9, 30), D(2026, 10, 13), D(2026, 10, 27)),
    ],
)
def test_due_dates_over_the_holidays(
    submitted: dt.date, receipt_due: dt.date, correction_due: dt.date
) -> None:
    f = _filing("F", submitted)
    due = {d.kind: d.due for d in deadlines(f)}
    assert due == {"receipt": receipt_due, "correction": correction_due}
    assert add_working_days(submitted, 5) == receipt_due


def test_overdue_list_around_the_2025_spring_festival() -> None:
    f = _filing("F1", D(2025, 1, 24))  # 回执 due 2025-02-07
    assert overdue([f], D(2025, 2, 7)) == []  # the due day itself is in time
    late = overdue([f], D(2025, 2, 8))  # Saturday, but a working day
    assert [(o.filing_id, o.kind, o.due, o.working_days_late) for o in late] == [
        ("F1", "receipt", D(2025, 2, 7), 1)
    ]
    assert overdue([f], D(2025, 2, 9))[0].working_days_late == 1  # Sunday: no extra day
    # 2-21: receipt 2-8..2-21 = 2-8 Sat, 2-10..2-14, 2-17..2-21 → 11 working days late;
    # the correction notice (due 2-20) 1 day late.
    assert [(o.kind, o.working_days_late) for o in overdue([f], D(2025, 2, 21))] == [
        ("receipt", 11),
        ("correction", 1),
    ]
    # A receipt issued on 2-10 answers it (late); the list of 2-10 no longer shows it.
    answered = transition(f, "issue_receipt", actor="c", on=D(2025, 2, 10))
    assert overdue([answered], D(2025, 2, 10)) == []
    # …but the list of 2-8 rebuilt afterwards still shows what was late that day.
    assert [o.kind for o in overdue([answered], D(2025, 2, 8))] == ["receipt"]


def test_overdue_and_monthly_count_for_february_2025() -> None:
    # F1: submitted 1-24, receipt 2-10 (due 2-7: late), registered 2-20 (due 2-20: in time).
    f1 = _filing("F1", D(2025, 1, 24))
    f1 = transition(f1, "issue_receipt", actor="c", on=D(2025, 2, 10))
    f1 = transition(f1, "register", actor="c", on=D(2025, 2, 20))
    # F2: submitted 2-5 (回执 due 2-11), returned 2-6 (answers both), resubmitted 2-17
    # (回执 due: 2-18(1) 2-19(2) 2-20(3) 2-21(4) 2-24(5) → 2-24), receipt 2-18.
    f2 = _filing("F2", D(2025, 2, 5))
    f2 = transition(f2, "return", actor="c", on=D(2025, 2, 6), reasons=["缺少场地证明"])
    f2 = transition(f2, "resubmit", actor="c", on=D(2025, 2, 17))
    f2 = transition(f2, "issue_receipt", actor="c", on=D(2025, 2, 18))
    # F3: submitted 2-10, nothing since: 回执 due 2-11(1) 2-12(2) 2-13(3) 2-14(4) 2-17(5)
    # → 2-17; correction due 2-18(6) … 2-28(14) 3-3(15) → 3-3.
    f3 = _filing("F3", D(2025, 2, 10))
    filings = [f1, f2, f3]
    by_id = {d.kind: d.due for d in deadlines(f2) if d.submitted_on == D(2025, 2, 17)}
    assert by_id["receipt"] == D(2025, 2, 24)

    late = overdue(filings, D(2025, 2, 28))
    # F3's 回执: late on 2-18, 2-19, 2-20, 2-21, 2-24, 2-25, 2-26, 2-27, 2-28 → 9 days.
    assert [(o.filing_id, o.kind, o.due, o.working_days_late, o.state) for o in late] == [
        ("F3", "receipt", D(2025, 2, 17), 9, "submitted")
    ]
    count = monthly_count(filings, 2025, 2)
    # submitted: F2 2-5, F3 2-10, F2 resubmitted 2-17; registered: F1; returned: F2;
    # overdue: deadlines due in February not met on time: F1 回执 (2-7), F3 回执 (2-17).
    assert (count.submitted, count.registered, count.returned, count.overdue) == (3, 1, 1, 2)
    january = monthly_count(filings, 2025, 1)
    assert (january.submitted, january.overdue) == (1, 0)
    march = monthly_count(filings, 2025, 3)
    # F3's correction notice (due 3-3) and F2's second-cycle correction notice
    # (2-17 + 15: 2-18 … 3-10) were not given.
    assert march.overdue == 2


def test_working_days_between() -> None:
    # 2025-09-30 → 10-11: 10-9, 10-10 and Saturday 10-11.
    assert working_days_between(D(2025, 9, 30), D(2025, 10, 11)) == 3
    assert working_days_between(D(2025, 10, 11), D(2025, 9, 30)) == 0


def test_a_year_the_calendar_does_not_cover_is_a_clear_error() -> None:
    f = _filing("F", D(2099, 1, 5))
    with pytest.raises(InputValidationError, match="year 2099") as exc:
        deadlines(f)
    assert exc.value.field == "on"
    with pytest.raises(InputValidationError, match="month"):
        monthly_count([f], 2025, 13)
    with pytest.raises(InputValidationError, match="at least 1"):
        add_working_days(D(2025, 1, 1), 0)
