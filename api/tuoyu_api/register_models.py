"""Tables of the 备案 register (same ``Base`` and metadata as :mod:`tuoyu_api.models`).

Tables
------
``register_filings``
    One row per filing: area, filing id, facility id, state, 备案编号, the day of the
    latest submission and of registration, and the whole filing as JSON
    (:func:`tuoyu.register.filings.filing_to_dict`); unique ``(area, filing_id)``.
``register_audit``
    One row per write to the register (create, each transition, import, assessment):
    who, when (UTC time and the step's day), the filing before and after as JSON.
``register_assessments``
    Quality assessments (质量评估): facility, day, assessor, the seven scores as JSON,
    the overall score and grade under the default scheme.

The Alembic revision ``0003`` (``rev0003_filing_register.py``) creates exactly these
tables. The helpers at the end read and write them for the router and the command line.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, Float, Index, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from tuoyu.register.bulk_import import ImportResult
from tuoyu.register.filings import Filing, filing_from_dict, filing_to_dict

from tuoyu_api.models import Base, UTCDateTime, utc_now


class FilingRow(Base):
    """A 备案 filing of an area's register."""

    __tablename__ = "register_filings"
    __table_args__ = (
        UniqueConstraint("area", "filing_id"),
        Index(None, "area", "state"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area: Mapped[str] = mapped_column(String(64), nullable=False)
    filing_id: Mapped[str] = mapped_column(String(64), nullable=False)
    facility_id: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    number: Mapped[str | None] = mapped_column(String(64))
    submitted_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    registered_on: Mapped[dt.date | None] = mapped_column(Date)
    filing: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)


class FilingAudit(Base):
    """One write to the register: who, when, the filing before and after."""

    __tablename__ = "register_audit"
    __table_args__ = (Index(None, "area", "filing_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area: Mapped[str] = mapped_column(String(64), nullable=False)
    filing_id: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AssessmentRow(Base):
    """A quality assessment (质量评估) of a facility."""

    __tablename__ = "register_assessments"
    __table_args__ = (Index(None, "area", "facility_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area: Mapped[str] = mapped_column(String(64), nullable=False)
    facility_id: Mapped[str] = mapped_column(String(64), nullable=False)
    assessed_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    assessor: Mapped[str] = mapped_column(String(64), nullable=False)
    scores: Mapped[dict[str, float]] = mapped_column(JSON, nullable=False)
    overall: Mapped[float] = mapped_column(Float, nullable=False)
    rating: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)


# --- helpers ----------------------------------------------------------------------------------


def filing_row(area: str, filing: Filing) -> FilingRow:
    """A new row holding ``filing``."""
    row = FilingRow(area=area, filing_id=filing.filing_id)
    set_filing(row, filing)
    return row


def set_filing(row: FilingRow, filing: Filing) -> None:
    """Store ``filing`` (and its indexed columns) in ``row``."""
    row.facility_id = filing.facility_id
    row.state = filing.state
    row.number = filing.number
    row.submitted_on = filing.submitted_on
    row.registered_on = filing.registered_on
    row.filing = filing_to_dict(filing)
    row.updated_at = utc_now()


def row_filing(row: FilingRow) -> Filing:
    """The filing a row holds."""
    return filing_from_dict(row.filing)


def area_filings(session: Session, area: str) -> list[Filing]:
    """Every filing of ``area``, by filing id."""
    rows = session.scalars(
        select(FilingRow).where(FilingRow.area == area).order_by(FilingRow.filing_id)
    )
    return [row_filing(r) for r in rows]


def filing_ids(session: Session, area: str) -> set[str]:
    """The filing ids of ``area``."""
    return set(session.scalars(select(FilingRow.filing_id).where(FilingRow.area == area)))


def audit(
    session: Session,
    *,
    area: str,
    filing_id: str,
    action: str,
    actor: str,
    on: dt.date,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Add one audit row (committed with the write)."""
    session.add(
        FilingAudit(
            area=area,
            filing_id=filing_id,
            action=action,
            actor=actor,
            on=on,
            before=before,
            after=after,
        )
    )


def store_import(session: Session, result: ImportResult) -> int:
    """Add the filings of an import and one audit row per filing (not committed).

    Returns
    -------
    int
        Filings added.
    """
    for filing, entry in zip(result.filings, result.audit, strict=True):
        session.add(filing_row(filing.area, filing))
        audit(
            session,
            area=entry.area,
            filing_id=entry.filing_id,
            action=entry.action,
            actor=entry.actor,
            on=entry.on,
            before=None,
            after={**entry.after, "source": entry.source, "row": entry.row},
        )
    session.flush()
    return len(result.filings)


__all__ = [
    "AssessmentRow",
    "FilingAudit",
    "FilingRow",
    "area_filings",
    "audit",
    "filing_ids",
    "filing_row",
    "row_filing",
    "set_filing",
    "store_import",
]
