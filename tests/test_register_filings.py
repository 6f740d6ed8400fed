"""The 备案 filing life cycle (tuoyu.register.filings): every transition, refusals,
corrections, and the facility records in force on a date."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from tuoyu.errors import InputValidationError
from tuoyu.layers.facilities import records_frame
from tuoyu.register.filings import (
    ACTIONS,
    REQUIRED_DOCUMENTS,
    STATES,
    TRANSITIONS,
    Filing,
    facilities_as_of,
    filing_from_dict,
    filing_to_dict,
    imported_filing,
    submit,
    transition,
    validated_record,
)

D = dt.date
AREA = "chongqing-yuzhong"
RECORD: dict[str, Any] = {
    "编号": "YZ-001",
    "机构名称": "解放碑托育园",
    "地址": "解放碑路1号",
    "街道": "解放碑街道",
    "经度": 106.5786,
    "纬度": 29.5583,
    "托小班托位": 20,
    "托大班托位": 10,
    "是否普惠": "否",
    "服务模式": "全日托",
}


def _submitted(docs: tuple[str, ...] = ()) -> Filing:
    on = D(2025, 3, 3)
    return submit(RECORD, filing_id="F-001", area=AREA, actor="clerk", on=on, documents=docs)


def _in_state(state: str) -> Filing:
    f = _submitted(docs=REQUIRED_DOCUMENTS)
    paths = {
        "submitted": [],
        "receipt_issued": ["issue_receipt"],
        "returned": ["return"],
        "registered": ["issue_receipt", "register"],
        "closed": ["issue_receipt", "register", "close"],
    }
    for action in paths[state]:
        reasons = ["缺少场地证明"] if action == "return" else []
        f = transition(f, action, actor="clerk", on=D(2025, 3, 4), reasons=reasons)
    assert f.state == state
    return f


def test_full_life_cycle_submit_receipt_register_change_close() -> None:
    f0 = _submitted(docs=("营业执照", "场地证明"))
    assert f0.state == "submitted"
    assert f0.record["slots"] == 30  # classes summed by the one rule set
    assert f0.next_actions() == ("issue_receipt", "return")

    f1 = transition(f0, "issue_receipt", actor="王科员", on=D(2025, 3, 5), number="渝中卫备-001")
    assert f1.state == "receipt_issued" and f1.number == "渝中卫备-001"
    assert f0.state == "submitted" and len(f0.steps) == 1  # the old filing is untouched

    with pytest.raises(
        InputValidationError, match="missing: 人员资格与健康证明、卫生评价报告、消防安全检查"
    ) as exc:
        transition(f1, "register", actor="王科员", on=D(2025, 3, 6))
    assert exc.value.field == "documents"

    f2 = transition(
        f1, "register", actor="王科员", on=D(2025, 3, 10),
        documents=("人员资格与健康证明", "卫生评价报告", "消防安全检查"),
    )  # fmt: skip
    assert f2.state == "registered"
    assert f2.registered_on == D(2025, 3, 10)
    assert f2.record["status"] == "已备案" and f2.record["registered_on"] == D(2025, 3, 10)
    assert f2.documents == frozenset(REQUIRED_DOCUMENTS)

    f3 = transition(
        f2, "change", actor="王科员", on=D(2025, 6, 1),
        changes={"slots_toddler": 30, "puhui": True}, note="扩班",
    )  # fmt: skip
    assert f3.state == "registered"
    assert f3.record["slots"] == 40 and f3.record["puhui"] is True
    assert f3.registered_on == D(2025, 3, 10)  # a change keeps the registration date
    assert f3.steps[-1].note == "扩班"

    f4 = transition(f3, "close", actor="王科员", on=D(2025, 9, 1))
    assert f4.state == "closed" and f4.next_actions() == ()
    assert [s.action for s in f4.steps] == [
        "submit",
        "issue_receipt",
        "register",
        "change",
        "close",
    ]
    assert [s.actor for s in f4.steps][1:] == ["王科员"] * 4


def test_return_for_correction_and_resubmit() -> None:
    f0 = _submitted(docs=("营业执照",))
    with pytest.raises(InputValidationError, match="reasons") as exc:
        transition(f0, "return", actor="clerk", on=D(2025, 3, 4))
    assert exc.value.field == "reasons"
    f1 = transition(
        f0,
        "return",
        actor="clerk",
        on=D(2025, 3, 4),
        reasons=["缺少场地证明", "托位与场地面积不符"],
    )
    assert f1.state == "returned"
    assert f1.steps[-1].reasons == ("缺少场地证明", "托位与场地面积不符")
    assert f1.next_actions() == ("resubmit",)

    f2 = transition(
        f1, "resubmit", actor="clerk", on=D(2025, 3, 12),
        documents=("场地证明",), changes={"slots_preschool": 5},
    )  # fmt: skip
    assert f2.state == "submitted"
    assert f2.submitted_on == D(2025, 3, 12)  # the clocks start again
    assert f2.record["slots"] == 25
    f3 = transition(f2, "return", actor="clerk", on=D(2025, 3, 13), reasons=["缺少消防安全检查"])
    f4 = transition(
        f3, "resubmit", actor="clerk", on=D(2025, 3, 20),
        documents=("人员资格与健康证明", "卫生评价报告", "消防安全检查"),
    )  # fmt: skip
    f5 = transition(f4, "issue_receipt", actor="clerk", on=D(2025, 3, 21))
    f6 = transition(f5, "register", actor="clerk", on=D(2025, 3, 24))
    assert f6.state == "registered" and f6.number == "F-001"  # number defaults to the id
    assert [s.state for s in f6.steps] == [
        "submitted", "returned", "submitted", "returned", "submitted", "receipt_issued",
        "registered",
    ]  # fmt: skip


def test_return_after_receipt() -> None:
    f = _in_state("receipt_issued")
    out = transition(f, "return", actor="clerk", on=D(2025, 3, 5), reasons=["卫生评价不合格"])
    assert out.state == "returned"


INVALID = [
    (state, action) for state in STATES for action in ACTIONS if action not in TRANSITIONS[state]
]


@pytest.mark.parametrize(("state", "action"), INVALID)
def test_every_invalid_transition_is_refused_naming_the_action(state: str, action: str) -> None:
    f = _in_state(state)
    with pytest.raises(InputValidationError) as exc:
        transition(
            f, action, actor="clerk", on=D(2025, 3, 5),
            reasons=["x"] if action == "return" else (),
        )  # fmt: skip
    assert exc.value.field == "action"
    assert f"action '{action}'" in str(exc.value)
    assert f"state '{state}'" in str(exc.value)


def test_unknown_action_and_bad_step_inputs() -> None:
    f = _submitted()
    with pytest.raises(InputValidationError, match="unknown action 'approve'") as exc:
        transition(f, "approve", actor="clerk", on=D(2025, 3, 5))
    assert exc.value.field == "action"
    with pytest.raises(InputValidationError, match="precedes the previous step") as exc:
        transition(f, "issue_receipt", actor="clerk", on=D(2025, 3, 2))
    assert exc.value.field == "on"
    with pytest.raises(InputValidationError) as exc:
        transition(f, "issue_receipt", actor=" ", on=D(2025, 3, 5))
    assert exc.value.field == "actor"
    with pytest.raises(InputValidationError, match="unknown document") as exc:
        transition(f, "issue_receipt", actor="c", on=D(2025, 3, 5), documents=["身份证"])
    assert exc.value.field == "documents"
    with pytest.raises(InputValidationError, match="takes no reasons"):
        transition(f, "issue_receipt", actor="c", on=D(2025, 3, 5), reasons=["x"])
    with pytest.raises(InputValidationError, match="takes no changes"):
        transition(f, "issue_receipt", actor="c", on=D(2025, 3, 5), changes={"slots": 3})
    with pytest.raises(InputValidationError) as exc:
        transition(f, "issue_receipt", actor="c", on=dt.datetime(2025, 3, 5, 9))  # type: ignore[arg-type]
    assert exc.value.field == "on"


def test_changes_are_checked_by_the_one_rule_set() -> None:
    f = _in_state("registered")
    with pytest.raises(InputValidationError, match="needs the changed fields"):
        transition(f, "change", actor="c", on=D(2025, 4, 1))
    with pytest.raises(InputValidationError, match="negative") as exc:
        transition(f, "change", actor="c", on=D(2025, 4, 1), changes={"slots_toddler": -4})
    assert exc.value.field == "slots_toddler"
    with pytest.raises(InputValidationError, match="cannot change") as exc:
        transition(f, "change", actor="c", on=D(2025, 4, 1), changes={"id": "YZ-999"})
    assert exc.value.field == "id"
    with pytest.raises(InputValidationError, match="unknown fields") as exc:
        transition(f, "change", actor="c", on=D(2025, 4, 1), changes={"documents": "x"})
    with pytest.raises(InputValidationError, match="add up to") as exc:
        transition(f, "change", actor="c", on=D(2025, 4, 1), changes={"slots": 99})
    assert exc.value.field == "slots"


def test_submit_refuses_a_record_the_loader_would_reject() -> None:
    with pytest.raises(InputValidationError, match="swapped") as exc:
        submit({**RECORD, "经度": 29.5583, "纬度": 106.5786}, filing_id="F", area=AREA,
               actor="c", on=D(2025, 1, 2))  # fmt: skip
    assert exc.value.field == "lon/lat"
    with pytest.raises(InputValidationError, match="unknown kind") as exc:
        submit({**RECORD, "机构类型": "早教中心"}, filing_id="F", area=AREA, actor="c",
               on=D(2025, 1, 2))  # fmt: skip
    assert exc.value.field == "kind"
    with pytest.raises(InputValidationError) as exc:
        submit(RECORD, filing_id="", area=AREA, actor="c", on=D(2025, 1, 2))
    assert exc.value.field == "filing_id"
    gcj = submit(
        {**RECORD, "坐标系": "高德"}, filing_id="F", area=AREA, actor="c", on=D(2025, 1, 2)
    )
    assert gcj.record["crs"] == "wgs84" and gcj.record["lon"] != RECORD["经度"]


def test_round_trip_through_plain_data() -> None:
    f = _in_state("closed")
    again = filing_from_dict(filing_to_dict(f))
    assert again == f
    with pytest.raises(InputValidationError):
        filing_from_dict({"filing_id": "x", "area": "a", "steps": [{"action": "nope"}]})


# --- records in force: a hand case ----------------------------------------------------------


def _hand_case() -> list[Filing]:
    docs = REQUIRED_DOCUMENTS
    a = submit({**RECORD, "编号": "A"}, filing_id="FA", area=AREA, actor="c",
               on=D(2025, 3, 3), documents=docs)  # fmt: skip
    a = transition(a, "issue_receipt", actor="c", on=D(2025, 3, 5))
    a = transition(a, "register", actor="c", on=D(2025, 3, 10))  # 30 托位, not 普惠
    a = transition(
        a, "change", actor="c", on=D(2025, 6, 1),
        changes={"slots_toddler": 50, "puhui": True},
    )  # 60 托位, 普惠 from 1 June  # fmt: skip
    a = transition(a, "close", actor="c", on=D(2025, 9, 1))
    b = submit({**RECORD, "编号": "B"}, filing_id="FB", area=AREA, actor="c",
               on=D(2025, 3, 3), documents=docs)  # fmt: skip
    b = transition(b, "issue_receipt", actor="c", on=D(2025, 3, 4))  # never registered
    c = submit({**RECORD, "编号": "C"}, filing_id="FC", area=AREA, actor="c", on=D(2025, 3, 3))
    c = transition(c, "return", actor="c", on=D(2025, 3, 4), reasons=["材料不全"])
    old = validated_record({**RECORD, "编号": "D", "备案日期": "2024-11-20", "托位数": 30})
    d = imported_filing(old, filing_id="FD", area=AREA, actor="import", on=D(2025, 5, 1))
    return [a, b, c, d]


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (D(2024, 11, 19), {}),  # before everything
        (D(2024, 11, 20), {"D": (30, False)}),  # D counts from its 备案日期, not the import
        (D(2025, 3, 9), {"D": (30, False)}),  # A submitted and receipted, not registered
        (D(2025, 3, 10), {"A": (30, False), "D": (30, False)}),  # A from its registration
        (D(2025, 5, 31), {"A": (30, False), "D": (30, False)}),
        (D(2025, 6, 1), {"A": (60, True), "D": (30, False)}),  # the change from its date
        (D(2025, 8, 31), {"A": (60, True), "D": (30, False)}),
        (D(2025, 9, 1), {"D": (30, False)}),  # closed
    ],
)
def test_facilities_as_of_hand_case(on: dt.date, expected: dict[str, tuple[int, bool]]) -> None:
    records = facilities_as_of(_hand_case(), on)
    assert {r["id"]: (r["slots"], r["puhui"]) for r in records} == expected
    for record in records:
        assert record["status"] == "已备案"
        assert record["filing_number"] in {"FA", "FD"}
    frame = records_frame(records, None)  # the indicators' input
    assert int(frame["slots"].sum()) == sum(s for s, _p in expected.values())
    assert int(frame.loc[frame["puhui"].fillna(False), "slots"].sum()) == sum(
        s for s, p in expected.values() if p
    )


def test_imported_filing_needs_its_registration_date() -> None:
    clean = validated_record(RECORD)
    with pytest.raises(InputValidationError) as exc:
        imported_filing(clean, filing_id="F", area=AREA, actor="i", on=D(2025, 1, 1))
    assert exc.value.field == "registered_on"
