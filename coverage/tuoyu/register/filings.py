"""A 备案 filing as an immutable record with its life cycle.

The life cycle follows 忻政办发〔2020〕67号 (policy 001, 落实备案管理) and the national
《托育机构登记和备案办法(试行)》 it cites: the facility submits its materials; the county
health committee issues the 备案回执 within 5 working days, or returns the filing for
correction (stating the reasons) within 15 working days; a corrected filing is
resubmitted; a filing is registered, later changed (e.g. its 托位 or 普惠 status) and in
the end closed.

States and actions (``action: from → to``)::

    submit         (new filing)            → submitted
    issue_receipt  submitted               → receipt_issued
    return         submitted, receipt_issued → returned        (reasons required)
    resubmit       returned                → submitted         (corrected fields)
    register       receipt_issued          → registered        (every required document)
    change         registered              → registered        (changed fields, from its date)
    close          registered              → closed
    import         (existing register)     → registered        (:func:`imported_filing`)

Each step records who (``actor``), when (``on``, a date), the documents handed in and,
for a return, the reasons. A step never precedes the one before it. A facility counts in
the indicators only while its filing is registered, with the record in force on the
day (:func:`facilities_as_of`): a change of 托位 or 普惠 takes effect from its date.

Every facility record is validated by the project's one rule set,
:func:`tuoyu.layers.facilities.validate_facility_record`; a filing refuses a record the
loader would reject or empty a field of.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

from tuoyu.errors import InputValidationError
from tuoyu.layers.facilities import AreaLike, validate_facility_record
from tuoyu.layers.schema import ASSUMED_COLUMN, FACILITY_FIELDS

# --- vocabularies ---------------------------------------------------------------------------

DOCUMENTS: Final[dict[str, str]] = {
    "营业执照": "business licence or other legal-person certificate",
    "场地证明": "proof of the premises",
    "人员资格与健康证明": "staff qualifications and health certificates",
    "卫生评价报告": "托幼机构卫生评价报告 rated 合格",
    "消防安全检查": "fire-safety inspection passed",
    "食品经营许可证": "food business licence (only when meals are served)",
}
"""Documents a filing may carry (policy 001, 落实备案管理), Chinese name → English."""

REQUIRED_DOCUMENTS: Final[tuple[str, ...]] = (
    "营业执照",
    "场地证明",
    "人员资格与健康证明",
    "卫生评价报告",
    "消防安全检查",
)
"""Documents every filing must have handed in before it is registered."""

STATES: Final[dict[str, str]] = {
    "submitted": "已提交",
    "receipt_issued": "已出具回执",
    "returned": "退回补正",
    "registered": "已备案",
    "closed": "已注销",
}
"""Filing states, key → Chinese label."""

ACTIONS: Final[dict[str, str]] = {
    "submit": "提交备案",
    "issue_receipt": "出具回执",
    "return": "退回补正",
    "resubmit": "补正后重新提交",
    "register": "完成备案",
    "change": "备案变更",
    "close": "注销备案",
    "import": "导入已有备案",
}
"""Actions, key → Chinese label."""

TRANSITIONS: Final[dict[str, dict[str, str]]] = {
    "submitted": {"issue_receipt": "receipt_issued", "return": "returned"},
    "receipt_issued": {"return": "returned", "register": "registered"},
    "returned": {"resubmit": "submitted"},
    "registered": {"change": "registered", "close": "closed"},
    "closed": {},
}
"""State → {action: next state}; ``submit`` and ``import`` only start a filing."""

REGISTERED_STATUS: Final = "已备案"
"""``status`` of a facility record in force (:func:`facilities_as_of`)."""

_MAX_TEXT: Final = 500
_MAX_ID: Final = 64


# --- records ----------------------------------------------------------------------------------


def _frozen(record: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(record))


@dataclass(frozen=True)
class Step:
    """One step of a filing's life cycle.

    Attributes
    ----------
    action
        A key of :data:`ACTIONS`.
    actor
        Who took the step (token name, clerk).
    on
        The day it was taken.
    state
        The filing's state after the step.
    reasons
        Why a filing was returned (``return`` only).
    documents
        Documents handed in with the step (keys of :data:`DOCUMENTS`).
    record
        The facility record in force from this step (``submit``, ``resubmit``,
        ``change``, ``import``), else ``None``.
    note
        Reviewer's note: internal, never disclosed.
    """

    action: str
    actor: str
    on: dt.date
    state: str
    reasons: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    record: Mapping[str, object] | None = None
    note: str | None = None


@dataclass(frozen=True)
class Filing:
    """A 备案 filing: who filed which facility, its steps and its current state.

    Build one with :func:`submit` (a new filing) or :func:`imported_filing` (an existing
    register) and move it with :func:`transition`; both return new filings.

    Attributes
    ----------
    filing_id
        The filing's id in the register (unique per area).
    area
        Study-area slug.
    steps
        Every step, oldest first (never empty).
    number
        备案编号, given with the 回执 or at registration (default: ``filing_id``).
    """

    filing_id: str
    area: str
    steps: tuple[Step, ...]
    number: str | None = None

    @property
    def state(self) -> str:
        """The state after the last step."""
        return self.steps[-1].state

    @property
    def record(self) -> Mapping[str, object]:
        """The latest facility record (read-only)."""
        for step in reversed(self.steps):
            if step.record is not None:
                return step.record
        return MappingProxyType({})

    @property
    def facility_id(self) -> str:
        """The facility's id (``id`` of its record)."""
        return str(self.record.get("id", ""))

    @property
    def submitted_on(self) -> dt.date:
        """The day of the latest submission (``submit``/``resubmit``/``import``)."""
        for step in reversed(self.steps):
            if step.action in ("submit", "resubmit", "import"):
                return step.on
        return self.steps[0].on

    @property
    def registered_on(self) -> dt.date | None:
        """The day the filing was registered (``register``/``import``), else ``None``."""
        for step in self.steps:
            if step.action == "register":
                return step.on
            if step.action == "import":
                value = step.record.get("registered_on") if step.record else None
                return value if isinstance(value, dt.date) else step.on
        return None

    @property
    def documents(self) -> frozenset[str]:
        """Every document handed in so far."""
        return frozenset(d for step in self.steps for d in step.documents)

    def next_actions(self) -> tuple[str, ...]:
        """The actions :func:`transition` accepts now.

        Examples
        --------
        >>> f = submit({"编号": "A1", "经度": 116.4, "纬度": 39.9}, filing_id="F1",
        ...            area="x", actor="clerk", on=dt.date(2025, 3, 3))
        >>> f.next_actions()
        ('issue_receipt', 'return')
        """
        return tuple(TRANSITIONS[self.state])


# --- checks -----------------------------------------------------------------------------------


def _text(value: object, name: str, *, limit: int = _MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputValidationError(f"{name} is required (不能为空)", field=name)
    text = value.strip()
    if len(text) > limit:
        raise InputValidationError(f"{name} is longer than {limit} characters (过长)", field=name)
    return text


def _date(value: object, name: str = "on") -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise InputValidationError(f"{name} must be a date (日期), got {value!r}", field=name)
    return value


def _documents(documents: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for doc in documents:
        name = str(doc).strip()
        if name not in DOCUMENTS:
            raise InputValidationError(
                f"unknown document '{name}' (未知材料); documents: {'、'.join(DOCUMENTS)}",
                field="documents",
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def validated_record(
    raw: Mapping[str, object],
    *,
    default_crs: str = "wgs84",
    area_polygon: AreaLike | None = None,
    area_code: str | None = None,
) -> dict[str, object]:
    """A facility record checked by the project's one rule set, or an error.

    Parameters
    ----------
    raw
        Values keyed by schema field or known header (``机构名称``, ``托位数``, ...).
    default_crs
        Coordinate system of ``lon``/``lat`` when the record names none.
    area_polygon
        Study area (WGS84); a point outside is refused.
    area_code
        The study area's ``[area] code``: a district or 街道 code of another district
        is refused.

    Returns
    -------
    dict
        The clean record (every field of ``schema.FACILITY_FIELDS``, WGS84).

    Raises
    ------
    InputValidationError
        The first problem the rule set found, naming its field. A filing accepts no
        record the loader would skip or empty a field of.

    Examples
    --------
    >>> validated_record({"编号": "A1", "经度": 116.4, "纬度": 39.9, "托位数": 30})["slots"]
    30
    >>> validated_record({"编号": "A1", "经度": 116.4, "纬度": 39.9, "托位数": -3})
    Traceback (most recent call last):
    ...
    tuoyu.errors.InputValidationError: field 'slots': negative number (负数); field left empty (该字段留空)
    """
    record, rejects = validate_facility_record(
        raw, default_crs=default_crs, area_polygon=area_polygon, area_code=area_code
    )
    if rejects:
        first = rejects[0]
        raise InputValidationError(first.reason, field=first.field)
    if record is None:  # pragma: no cover - a skipped row always has a reject
        raise InputValidationError("record cannot be used", field="record")
    return record


def _with_changes(
    current: Mapping[str, object],
    changes: Mapping[str, object],
    *,
    area_polygon: AreaLike | None,
    area_code: str | None = None,
) -> dict[str, object]:
    unknown = [k for k in changes if k not in FACILITY_FIELDS]
    if unknown:
        raise InputValidationError(
            f"changes name unknown fields {', '.join(unknown)}; fields: "
            f"{', '.join(FACILITY_FIELDS)}",
            field=unknown[0],
        )
    if "id" in changes and changes["id"] != current.get("id"):
        raise InputValidationError(
            "a filing's facility id cannot change (机构编号不可变更); close it and file anew",
            field="id",
        )
    # None = not given: an unknown class must not make the re-summed total unknown
    merged = {k: v for k, v in current.items() if k != ASSUMED_COLUMN and v is not None}
    merged.update(changes)
    if "crs" not in changes:
        merged["crs"] = "wgs84"  # the stored record is WGS84
    if any(k.startswith("slots_") for k in changes) and "slots" not in changes:
        merged["slots"] = None  # the total follows the classes
    return validated_record(merged, area_polygon=area_polygon, area_code=area_code)


# --- building and moving filings -------------------------------------------------------------


def submit(
    record: Mapping[str, object],
    *,
    filing_id: str,
    area: str,
    actor: str,
    on: dt.date,
    documents: Iterable[str] = (),
    note: str | None = None,
    default_crs: str = "wgs84",
    area_polygon: AreaLike | None = None,
    area_code: str | None = None,
) -> Filing:
    """A new filing in state ``submitted``.

    Parameters
    ----------
    record
        The facility as filed (schema fields or known Chinese headers).
    filing_id
        The filing's id in the register.
    area
        Study-area slug.
    actor, on
        Who received the filing and when.
    documents
        Documents handed in (keys of :data:`DOCUMENTS`).
    note
        Internal note.
    default_crs, area_polygon, area_code
        See :func:`validated_record`.

    Returns
    -------
    Filing

    Raises
    ------
    InputValidationError
        Unusable record, id, actor, date or document, naming the field.

    Examples
    --------
    >>> f = submit({"编号": "A1", "机构名称": "甲托育园", "经度": 116.4, "纬度": 39.9},
    ...            filing_id="F1", area="x", actor="clerk", on=dt.date(2025, 3, 3),
    ...            documents=["营业执照"])
    >>> f.state, f.facility_id, sorted(f.documents)
    ('submitted', 'A1', ['营业执照'])
    """
    clean = validated_record(
        record, default_crs=default_crs, area_polygon=area_polygon, area_code=area_code
    )
    step = Step(
        action="submit",
        actor=_text(actor, "actor", limit=_MAX_ID),
        on=_date(on),
        state="submitted",
        documents=_documents(documents),
        record=_frozen(clean),
        note=_optional_note(note),
    )
    return Filing(
        filing_id=_text(filing_id, "filing_id", limit=_MAX_ID),
        area=_text(area, "area", limit=_MAX_ID),
        steps=(step,),
    )


def imported_filing(
    record: Mapping[str, object],
    *,
    filing_id: str,
    area: str,
    actor: str,
    on: dt.date,
    number: str | None = None,
) -> Filing:
    """A registered filing taken over from an existing register (one ``import`` step).

    ``record`` must be clean already (:func:`validated_record`) and carry its 备案日期
    (``registered_on``), the day from which it counts; ``on`` is the day of the import.

    Raises
    ------
    InputValidationError
        No ``registered_on``, or an unusable id, actor or date.
    """
    registered_on = record.get("registered_on")
    if not isinstance(registered_on, dt.date):
        raise InputValidationError(
            "a registered filing needs its 备案日期 (registered_on)", field="registered_on"
        )
    step = Step(
        action="import",
        actor=_text(actor, "actor", limit=_MAX_ID),
        on=_date(on),
        state="registered",
        record=_frozen({**record, "status": REGISTERED_STATUS}),
    )
    return Filing(
        filing_id=_text(filing_id, "filing_id", limit=_MAX_ID),
        area=_text(area, "area", limit=_MAX_ID),
        steps=(step,),
        number=_text(number, "number", limit=_MAX_ID) if number else filing_id,
    )


def _optional_note(note: str | None) -> str | None:
    return None if note is None or not str(note).strip() else _text(note, "note")


def transition(
    filing: Filing,
    action: str,
    *,
    actor: str,
    on: dt.date,
    reasons: Sequence[str] = (),
    documents: Iterable[str] = (),
    changes: Mapping[str, object] | None = None,
    number: str | None = None,
    note: str | None = None,
    area_polygon: AreaLike | None = None,
    area_code: str | None = None,
) -> Filing:
    """The filing after ``action``; the given filing is left as it is.

    Parameters
    ----------
    filing
        The filing to move.
    action
        One of :data:`TRANSITIONS` for the filing's state (see the module table).
    actor, on
        Who takes the step and on which day (not before the previous step).
    reasons
        Why the filing is returned: required for ``return``, refused otherwise.
    documents
        Documents handed in with the step.
    changes
        Fields corrected (``resubmit``) or changed (``change``: required), validated
        with the rest of the record by the one rule set; a change takes effect from
        ``on``. Refused for other actions.
    number
        备案编号 (``issue_receipt`` or ``register``); default the filing id.
    note
        Internal reviewer's note (never disclosed).
    area_polygon
        Study area (WGS84) for checking changed coordinates.
    area_code
        The study area's ``[area] code`` for checking changed district and 街道 codes.

    Returns
    -------
    Filing

    Raises
    ------
    InputValidationError
        ``field='action'`` for an unknown action or one the state does not allow (the
        message names the action and the allowed ones); other fields for a missing
        reason, a missing required document at ``register``, a step dated before the
        previous one, or an unusable change.

    Examples
    --------
    >>> d = dt.date(2025, 3, 3)
    >>> f = submit({"编号": "A1", "经度": 116.4, "纬度": 39.9}, filing_id="F1",
    ...            area="x", actor="clerk", on=d)
    >>> transition(f, "return", actor="clerk", on=d, reasons=["缺少场地证明"]).state
    'returned'
    >>> transition(f, "close", actor="clerk", on=d)
    Traceback (most recent call last):
    ...
    tuoyu.errors.InputValidationError: field 'action': action 'close' (注销备案) is not allowed on a filing in state 'submitted' (已提交); allowed: issue_receipt, return
    """
    if action not in ACTIONS:
        raise InputValidationError(
            f"unknown action '{action}'; actions: {', '.join(ACTIONS)}", field="action"
        )
    allowed = TRANSITIONS[filing.state]
    if action not in allowed:
        raise InputValidationError(
            f"action '{action}' ({ACTIONS[action]}) is not allowed on a filing in state "
            f"'{filing.state}' ({STATES[filing.state]}); allowed: "
            f"{', '.join(allowed) or 'none (the filing is closed)'}",
            field="action",
        )
    day = _date(on)
    last = filing.steps[-1].on
    if day < last:
        raise InputValidationError(
            f"action '{action}' dated {day} precedes the previous step ({last})", field="on"
        )
    clean_reasons = tuple(_text(r, "reasons") for r in reasons)
    if action == "return" and not clean_reasons:
        raise InputValidationError(
            "action 'return' needs the reasons for correction (退回须说明理由)", field="reasons"
        )
    if action != "return" and clean_reasons:
        raise InputValidationError(f"action '{action}' takes no reasons", field="reasons")
    docs = _documents(documents)
    record: Mapping[str, object] | None = None
    if action in ("resubmit", "change"):
        if action == "change" and not changes:
            raise InputValidationError(
                "action 'change' needs the changed fields (变更内容)", field="changes"
            )
        if changes:
            current = dict(filing.record)
            clean = _with_changes(current, changes, area_polygon=area_polygon, area_code=area_code)
            if action == "change":
                clean["status"] = REGISTERED_STATUS
                clean["registered_on"] = current.get("registered_on")
            record = _frozen(clean)
    elif changes:
        raise InputValidationError(f"action '{action}' takes no changes", field="changes")
    new_number = filing.number
    if number is not None:
        if action not in ("issue_receipt", "register"):
            raise InputValidationError(
                f"action '{action}' takes no 备案编号 (number)", field="number"
            )
        new_number = _text(number, "number", limit=_MAX_ID)
    if action == "register":
        missing = [d for d in REQUIRED_DOCUMENTS if d not in filing.documents | set(docs)]
        if missing:
            raise InputValidationError(
                f"action 'register' needs every required document; missing: "
                f"{'、'.join(missing)} (材料不全)",
                field="documents",
            )
        clean = dict(filing.record)
        clean["status"] = REGISTERED_STATUS
        clean["registered_on"] = day
        record = _frozen(clean)
        new_number = new_number or filing.filing_id
    step = Step(
        action=action,
        actor=_text(actor, "actor", limit=_MAX_ID),
        on=day,
        state=allowed[action],
        reasons=clean_reasons,
        documents=docs,
        record=record,
        note=_optional_note(note),
    )
    return replace(filing, steps=(*filing.steps, step), number=new_number)


# --- records in force -----------------------------------------------------------------------


def record_as_of(filing: Filing, on: dt.date) -> dict[str, object] | None:
    """The facility record of ``filing`` in force on ``on``, or ``None``.

    A record is in force while the filing is registered: from its registration date
    until the day before it is closed, with every change from the change's date.

    Examples
    --------
    >>> d = dt.date
    >>> f = imported_filing({"id": "A1", "slots": 20, "registered_on": d(2025, 1, 10)},
    ...                     filing_id="F1", area="x", actor="import", on=d(2025, 6, 1))
    >>> record_as_of(f, d(2025, 1, 9)) is None, record_as_of(f, d(2025, 1, 10))["slots"]
    (True, 20)
    """
    state: str | None = None
    record: Mapping[str, object] | None = None
    for step in filing.steps:
        if step.action == "import":
            start = filing.registered_on or step.on
            if start <= on:
                state, record = step.state, step.record
            continue
        if step.on > on:
            break
        state = step.state
        if step.record is not None:
            record = step.record
    if state != "registered" or record is None:
        return None
    out = dict(record)
    out["filing_id"] = filing.filing_id
    out["filing_number"] = filing.number or filing.filing_id
    return out


def facilities_as_of(filings: Iterable[Filing], on: dt.date) -> list[dict[str, object]]:
    """The facility records in force on ``on`` (for the committee's monthly figures).

    Parameters
    ----------
    filings
        The register's filings.
    on
        The day of the figures.

    Returns
    -------
    list of dict
        One record per filing registered on that day, ordered by facility id: every
        field of ``schema.FACILITY_FIELDS`` (``status`` = 已备案, ``registered_on`` the
        registration date) plus ``filing_id`` and ``filing_number``. Feed them to
        :func:`tuoyu.layers.facilities.records_frame` for the indicators.

    Examples
    --------
    >>> d = dt.date
    >>> f = imported_filing({"id": "A1", "slots": 20, "registered_on": d(2025, 1, 10)},
    ...                     filing_id="F1", area="x", actor="import", on=d(2025, 6, 1))
    >>> f = transition(f, "change", actor="clerk", on=d(2025, 7, 1),
    ...                changes={"slots": 40, "lon": 116.4, "lat": 39.9})
    >>> [r["slots"] for r in facilities_as_of([f], d(2025, 6, 30))]
    [20]
    >>> [r["slots"] for r in facilities_as_of([f], d(2025, 7, 1))]
    [40]
    """
    day = _date(on)
    records = [r for r in (record_as_of(f, day) for f in filings) if r is not None]
    return sorted(records, key=lambda r: str(r.get("id", "")))


# --- plain data ------------------------------------------------------------------------------


def _plain(value: object) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def filing_to_dict(filing: Filing) -> dict[str, Any]:
    """The filing as JSON-ready data (dates as ISO text); :func:`filing_from_dict` reverses it.

    Examples
    --------
    >>> f = submit({"编号": "A1", "经度": 116.4, "纬度": 39.9}, filing_id="F1",
    ...            area="x", actor="clerk", on=dt.date(2025, 3, 3))
    >>> filing_from_dict(filing_to_dict(f)) == f
    True
    """
    return {
        "filing_id": filing.filing_id,
        "area": filing.area,
        "number": filing.number,
        "state": filing.state,
        "steps": [
            {
                "action": s.action,
                "actor": s.actor,
                "on": s.on.isoformat(),
                "state": s.state,
                "reasons": list(s.reasons),
                "documents": list(s.documents),
                "record": _plain(s.record) if s.record is not None else None,
                "note": s.note,
            }
            for s in filing.steps
        ],
    }


def _record_from_plain(data: Mapping[str, Any]) -> Mapping[str, object]:
    out = dict(data)
    value = out.get("registered_on")
    if isinstance(value, str):
        out["registered_on"] = dt.date.fromisoformat(value)
    return _frozen(out)


def filing_from_dict(data: Mapping[str, Any]) -> Filing:
    """A filing from :func:`filing_to_dict` data (as stored by the service).

    Raises
    ------
    InputValidationError
        Malformed data (unknown action or state, bad date), naming the field.
    """
    steps: list[Step] = []
    try:
        for item in data["steps"]:
            if item["action"] not in ACTIONS or item["state"] not in STATES:
                raise InputValidationError(
                    f"unknown action or state in stored step: {item['action']}/{item['state']}",
                    field="steps",
                )
            record = item.get("record")
            steps.append(
                Step(
                    action=item["action"],
                    actor=item["actor"],
                    on=dt.date.fromisoformat(item["on"]),
                    state=item["state"],
                    reasons=tuple(item.get("reasons") or ()),
                    documents=tuple(item.get("documents") or ()),
                    record=_record_from_plain(record) if record is not None else None,
                    note=item.get("note"),
                )
            )
        if not steps:
            raise InputValidationError("a filing has at least one step", field="steps")
        return Filing(
            filing_id=str(data["filing_id"]),
            area=str(data["area"]),
            steps=tuple(steps),
            number=data.get("number"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InputValidationError):
            raise
        raise InputValidationError(f"malformed filing data: {exc}", field="steps") from exc


__all__ = [
    "ACTIONS",
    "DOCUMENTS",
    "REGISTERED_STATUS",
    "REQUIRED_DOCUMENTS",
    "STATES",
    "TRANSITIONS",
    "Filing",
    "Step",
    "facilities_as_of",
    "filing_from_dict",
    "filing_to_dict",
    "imported_filing",
    "record_as_of",
    "submit",
    "transition",
    "validated_record",
]
