"""SQLAlchemy 2 models of the facility registry (one schema for SQLite and PostgreSQL).

Tables
------
``facilities``
    One row per registered facility: every field of :data:`tuoyu.layers.schema.FACILITY_FIELDS`
    plus the study-area slug, ``assumed_fields`` and timestamps; unique ``(area, id)``.
    ``lon``/``lat`` are always WGS84; ``crs`` records the system the record was *submitted*
    in (``wgs84``/``gcj02``/``bd09``).
``api_tokens``
    Bearer tokens by name; only the sha256 of a token is stored, never the token.
``audit_log``
    One row per write: area, facility id, action, actor (token name), UTC time and the
    record before and after as JSON.
``area_seeds``
    Which areas were filled from their facility file (makes seeding idempotent).
``registry_heads``
    One row per area: ``seq``, the number of the area's last write. Every write (and a
    seeding) starts by incrementing it, which takes the row's write lock, so the writes
    of one area are numbered 1, 2, 3, … in commit order whichever process makes them.
``registry_changes``
    One row per write: ``(area, seq)``, the facility id and the action (``seed`` with id
    ``*`` for a seeding). A worker that has seen the area up to ``seq`` *s* applies the
    changes after *s* to its live analysis before answering (revision ``0002``).
``saved_scenarios``
    What-if scenarios of the planner's workbench saved by name: area, name, author (the
    token's name), time, the additions and removals and the per-街道 results computed
    when saved (revision ``0004``). They never touch ``facilities``.
``scenario_audit``
    One row per save or deletion of a saved scenario: who, when, the row before and
    after (revision ``0004``).

The Alembic revision ``api/tuoyu_api/migrations/versions`` creates exactly these tables; a test
compares the migrated database with this metadata on both engines.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AUDIT_ACTIONS = ("create", "update", "delete")
CHANGE_ACTIONS = (*AUDIT_ACTIONS, "seed")
"""Actions of :class:`RegistryChange` rows (``seed``: the whole area was (re)filled)."""


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite has no time-zone type and hands back naive datetimes; this decorator makes
    both engines return the same aware UTC values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention (stable constraint names for Alembic)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Facility(Base):
    """A registered childcare facility (托育机构备案记录)."""

    __tablename__ = "facilities"
    __table_args__ = (
        UniqueConstraint("area", "id"),
        Index(None, "area", "kind"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area: Mapped[str] = mapped_column(String(64), nullable=False)
    id: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    jiedao: Mapped[str | None] = mapped_column(String(64))
    district_code: Mapped[str | None] = mapped_column(String(12))
    lon: Mapped[float] = mapped_column(Float, nullable=False)
    lat: Mapped[float] = mapped_column(Float, nullable=False)
    crs: Mapped[str] = mapped_column(String(8), nullable=False, default="wgs84")
    kind: Mapped[str | None] = mapped_column(String(32))
    puhui: Mapped[bool | None] = mapped_column(Boolean)
    ownership: Mapped[str | None] = mapped_column(String(8))
    slots_infant: Mapped[int | None] = mapped_column(Integer)
    slots_toddler: Mapped[int | None] = mapped_column(Integer)
    slots_preschool: Mapped[int | None] = mapped_column(Integer)
    slots: Mapped[int | None] = mapped_column(Integer)
    enrolled: Mapped[int | None] = mapped_column(Integer)
    service_modes: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(32))
    registered_on: Mapped[dt.date | None] = mapped_column(Date)
    assumed_fields: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)


class ApiToken(Base):
    """A bearer token for writes; ``token_hash`` is the hex sha256 of the token."""

    __tablename__ = "api_tokens"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    revoked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One write to the registry: who, when, what before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "area", "facility_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area: Mapped[str] = mapped_column(String(64), nullable=False)
    facility_id: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(8), nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AreaSeed(Base):
    """Marks an area whose registry was filled from its facility file."""

    __tablename__ = "area_seeds"

    area: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str | None] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    seeded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)


class RegistryHead(Base):
    """The number of an area's last registry write (its change sequence head)."""

    __tablename__ = "registry_heads"

    area: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class RegistryChange(Base):
    """One numbered write to an area's registry (what changed, not how: the rows tell)."""

    __tablename__ = "registry_changes"

    area: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    facility_id: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(8), nullable=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)


SCENARIO_AUDIT_ACTIONS = ("save", "delete")
"""Actions of :class:`ScenarioAudit` rows."""


class SavedScenario(Base):
    """A named what-if scenario of the workbench (the registry itself is never changed).

    ``additions`` are the planned facilities as sent (coordinates in the system named
    by their ``crs``, plus ``lon_wgs84``/``lat_wgs84``); ``removals`` the ids of current
    facilities left out; ``results`` the per-街道 before/after and district figures as
    computed when the scenario was saved (with the registry change number then).
    """

    __tablename__ = "saved_scenarios"
    __table_args__ = (
        UniqueConstraint("area", "name"),
        Index(None, "area", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    author: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    note: Mapped[str | None] = mapped_column(String(500))
    additions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    removals: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    results: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class ScenarioAudit(Base):
    """One save or deletion of a saved scenario: who, when, before and after."""

    __tablename__ = "scenario_audit"
    __table_args__ = (Index(None, "area", "scenario_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area: Mapped[str] = mapped_column(String(64), nullable=False)
    scenario_id: Mapped[int] = mapped_column(Integer, nullable=False)
    action: Mapped[str] = mapped_column(String(8), nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# The 备案 register's tables share this metadata (revision 0003).
from tuoyu_api import register_models as _register_models  # noqa: E402,F401
