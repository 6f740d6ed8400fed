"""Registry service: list, get, create, update and delete facilities, with an audit trail.

Every write happens in one transaction: the facility row, an ``audit_log`` row (actor,
UTC time, record before and after), then the injectable hook
``on_registry_change(area, action, before, after)`` (the lead plugs the incremental reach
update in there), then the commit. If the hook raises, the write is rolled back and the
error propagates, so the registry never disagrees with the results built from it.

Every write also takes the next number of its area's change sequence first
(:func:`begin_write`: ``registry_heads`` incremented, a ``registry_changes`` row added),
which serialises the writes of one area across processes and numbers them in commit
order; :func:`head_seq` and :func:`changes_after` let a service worker catch up.

Records are plain JSON-ready dicts (dates as ISO strings), the same shape in the audit
log, in the hook and in the API's GeoJSON properties.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tuoyu.errors import ConflictError, InputValidationError, NotFoundError
from tuoyu.layers.schema import AGE_CLASSES, FACILITY_KINDS, SERVICE_MODES

from tuoyu_api.models import (
    AreaSeed,
    AuditEntry,
    Facility,
    RegistryChange,
    RegistryHead,
    utc_now,
)
from tuoyu_api.validation import RECORD_FIELDS, record_from_loaded

RegistryHook = Callable[[str, str, dict[str, Any] | None, dict[str, Any] | None], None]
"""``hook(area, action, before, after)``; action is ``create``, ``update`` or ``delete``."""

CHANGE_SEQ_KEY = "tuoyu_change_seq"
"""Key of ``session.info`` holding the sequence number of the session's last write."""
SEED_ID = "*"
"""Facility id of the change row of a seeding (the whole area changed)."""

_AGE_CLASS_BY_NAME = {name: col for col, (name, _a, _b) in AGE_CLASSES.items()}
_COLUMNS = [f for f in RECORD_FIELDS if f != "id"]


@dataclass(frozen=True)
class FacilityQuery:
    """Filters of :func:`list_facilities` (all optional, combined with AND).

    Attributes
    ----------
    kind
        A kind from :data:`tuoyu.layers.schema.FACILITY_KINDS`.
    puhui
        普惠 status; unknown (null) records match neither ``True`` nor ``False``.
    age_class
        ``slots_infant``/``slots_toddler``/``slots_preschool`` or the Chinese class
        name (乳儿班/托小班/托大班): facilities with more than 0 托位 in that class.
    service_mode
        One of :data:`tuoyu.layers.schema.SERVICE_MODES`.
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)`` in WGS84 degrees (a filter on stored
        coordinates, no measuring).
    """

    kind: str | None = None
    puhui: bool | None = None
    age_class: str | None = None
    service_mode: str | None = None
    bbox: tuple[float, float, float, float] | None = None


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """Parse ``minlon,minlat,maxlon,maxlat`` (WGS84 degrees).

    Raises
    ------
    InputValidationError
        ``field='bbox'``: not four finite numbers, out of range, or min > max.

    Examples
    --------
    >>> parse_bbox("106.5,29.5,106.6,29.6")
    (106.5, 29.5, 106.6, 29.6)
    """
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InputValidationError(
            f"bbox must be four numbers minlon,minlat,maxlon,maxlat, got {text!r}", field="bbox"
        )
    min_lon, min_lat, max_lon, max_lat = values
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise InputValidationError(
            f"bbox needs -180 ≤ minlon ≤ maxlon ≤ 180 and -90 ≤ minlat ≤ maxlat ≤ 90, got {text!r}",
            field="bbox",
        )
    return min_lon, min_lat, max_lon, max_lat


def facility_to_record(row: Facility) -> dict[str, Any]:
    """A facility row as a JSON-ready dict (lon/lat WGS84; ``crs`` always ``wgs84``)."""
    modes = row.service_modes.split(",") if row.service_modes else None
    return {
        "id": row.id,
        "area": row.area,
        "name": row.name,
        "address": row.address,
        "jiedao": row.jiedao,
        "district_code": row.district_code,
        "lon": row.lon,
        "lat": row.lat,
        "crs": "wgs84",
        "source_crs": row.crs,
        "kind": row.kind,
        "kind_en": FACILITY_KINDS.get(row.kind) if row.kind else None,
        "puhui": row.puhui,
        "ownership": row.ownership,
        "slots_infant": row.slots_infant,
        "slots_toddler": row.slots_toddler,
        "slots_preschool": row.slots_preschool,
        "slots": row.slots,
        "enrolled": row.enrolled,
        "service_modes": modes,
        "status": row.status,
        "registered_on": row.registered_on.isoformat() if row.registered_on else None,
        "assumed_fields": list(row.assumed_fields or []),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _column_values(record: Mapping[str, Any]) -> dict[str, Any]:
    values = {col: record.get(col) for col in _COLUMNS}
    modes = values.get("service_modes")
    values["service_modes"] = ",".join(m for m in SERVICE_MODES if m in modes) if modes else None
    values["crs"] = values.get("crs") or "wgs84"
    values["assumed_fields"] = list(record.get("assumed_fields") or [])
    return values


def _filtered(area: str, query: FacilityQuery | None) -> Select[Facility]:
    stmt = select(Facility).where(Facility.area == area)
    if query is None:
        return stmt
    if query.kind is not None:
        stmt = stmt.where(Facility.kind == query.kind)
    if query.puhui is not None:
        stmt = stmt.where(Facility.puhui.is_(query.puhui))
    if query.age_class is not None:
        column = _AGE_CLASS_BY_NAME.get(query.age_class, query.age_class)
        if column not in AGE_CLASSES:
            raise InputValidationError(f"unknown age class {query.age_class!r}", field="age_class")
        stmt = stmt.where(getattr(Facility, column) > 0)
    if query.service_mode is not None:
        if query.service_mode not in SERVICE_MODES:
            raise InputValidationError(
                f"unknown service mode {query.service_mode!r}", field="service_mode"
            )
        # Stored as a comma-joined list; no mode name is a substring of another.
        stmt = stmt.where(Facility.service_modes.contains(query.service_mode, autoescape=True))
    if query.bbox is not None:
        min_lon, min_lat, max_lon, max_lat = query.bbox
        stmt = stmt.where(
            Facility.lon.between(min_lon, max_lon), Facility.lat.between(min_lat, max_lat)
        )
    return stmt


def list_facilities(
    session: Session,
    area: str,
    query: FacilityQuery | None = None,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Facilities of ``area`` matching ``query``, ordered by id.

    Returns
    -------
    list of dict
        Records (see :func:`facility_to_record`); empty when nothing matches.
    """
    stmt = _filtered(area, query).order_by(Facility.id).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [facility_to_record(row) for row in session.scalars(stmt)]


def count_facilities(session: Session, area: str, query: FacilityQuery | None = None) -> int:
    """Number of facilities of ``area`` matching ``query``."""
    stmt = select(func.count()).select_from(_filtered(area, query).subquery())
    return int(session.scalar(stmt) or 0)


def _row(session: Session, area: str, facility_id: str, *, lock: bool = False) -> Facility:
    stmt = select(Facility).where(Facility.area == area, Facility.id == facility_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.scalar(stmt)
    if row is None:
        raise NotFoundError(f"no facility '{facility_id}' in area '{area}'")
    return row


def get_facility(session: Session, area: str, facility_id: str) -> dict[str, Any]:
    """One facility's record.

    Raises
    ------
    NotFoundError
        No facility with that id in the area.
    """
    return facility_to_record(_row(session, area, facility_id))


def _insert_head_if_missing(session: Session, area: str) -> None:
    dialect = session.get_bind().dialect.name
    values = {"area": area, "seq": 0}
    if dialect == "postgresql":
        session.execute(postgresql.insert(RegistryHead).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(RegistryHead).values(values).on_conflict_do_nothing())
    else:  # another engine: a plain insert, a concurrent twin is an IntegrityError
        if session.get(RegistryHead, area) is None:
            session.execute(insert(RegistryHead).values(values))


def begin_write(session: Session, area: str, facility_id: str, action: str) -> int:
    """Take the next number of ``area``'s change sequence; the first step of every write.

    Incrementing the area's head row takes its write lock (PostgreSQL: the row lock;
    SQLite: the database write lock, waited for up to the busy timeout), held until the
    transaction ends, so the writes of one area are serialised across processes and
    their numbers follow commit order. The number is also put in
    ``session.info[CHANGE_SEQ_KEY]``.

    Returns
    -------
    int
        The write's sequence number (1 for an area's first write).
    """
    _insert_head_if_missing(session, area)
    seq = session.execute(
        update(RegistryHead)
        .where(RegistryHead.area == area)
        .values(seq=RegistryHead.seq + 1)
        .returning(RegistryHead.seq)
    ).scalar_one()
    session.add(
        RegistryChange(
            area=area, seq=int(seq), facility_id=facility_id, action=action, at=utc_now()
        )
    )
    session.info[CHANGE_SEQ_KEY] = int(seq)
    return int(seq)


def head_seq(connection: Session | Connection, area: str) -> int:
    """The number of ``area``'s last committed write (0 when none).

    One primary-key look-up: cheap enough to run before every analysis read.
    """
    value = connection.execute(
        select(RegistryHead.seq).where(RegistryHead.area == area)
    ).scalar_one_or_none()
    return int(value) if value is not None else 0


def changes_after(session: Session, area: str, seq: int) -> list[tuple[int, str, str]]:
    """``(seq, facility_id, action)`` of ``area``'s writes numbered above ``seq``, in order."""
    stmt = (
        select(RegistryChange.seq, RegistryChange.facility_id, RegistryChange.action)
        .where(RegistryChange.area == area, RegistryChange.seq > seq)
        .order_by(RegistryChange.seq)
    )
    return [(int(s), str(f), str(a)) for s, f, a in session.execute(stmt)]


def records_by_id(session: Session, area: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The current records of the facilities ``ids`` of ``area`` that exist, by id."""
    wanted = sorted(set(ids))
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):  # bounded IN lists
        chunk = wanted[start : start + 500]
        stmt = select(Facility).where(Facility.area == area, Facility.id.in_(chunk))
        out.update((row.id, facility_to_record(row)) for row in session.scalars(stmt))
    return out


def _finish(
    session: Session,
    hook: RegistryHook | None,
    area: str,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    actor: str,
) -> None:
    facility_id = str((after or before or {}).get("id"))
    session.add(
        AuditEntry(
            area=area,
            facility_id=facility_id,
            action=action,
            actor=actor,
            at=utc_now(),
            before=before,
            after=after,
        )
    )
    try:
        session.flush()
        if hook is not None:
            hook(area, action, before, after)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"facility '{facility_id}' conflicts with the registry") from exc
    except BaseException:
        session.rollback()
        raise


def create_facility(
    session: Session,
    area: str,
    record: Mapping[str, Any],
    *,
    actor: str,
    on_change: RegistryHook | None = None,
) -> dict[str, Any]:
    """Add a facility (``record`` from :func:`tuoyu_api.validation.validate_facility_write`).

    An id is generated (``api-`` + 12 hex digits) when ``record['id']`` is empty.

    Returns
    -------
    dict
        The stored record.

    Raises
    ------
    ConflictError
        The area already has a facility with that id.
    """
    facility_id = str(record.get("id") or f"api-{secrets.token_hex(6)}")
    begin_write(session, area, facility_id, "create")
    exists = session.scalar(
        select(Facility.pk).where(Facility.area == area, Facility.id == facility_id)
    )
    if exists is not None:
        session.rollback()
        raise ConflictError(f"facility '{facility_id}' already exists in area '{area}'")
    now = utc_now()
    row = Facility(
        area=area, id=facility_id, created_at=now, updated_at=now, **_column_values(record)
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"facility '{facility_id}' already exists in area '{area}'") from exc
    after = facility_to_record(row)
    _finish(session, on_change, area, "create", None, after, actor)
    return after


def update_facility(
    session: Session,
    area: str,
    facility_id: str,
    record: Mapping[str, Any],
    *,
    actor: str,
    on_change: RegistryHook | None = None,
) -> dict[str, Any]:
    """Replace every field of a facility (PUT semantics; the id cannot change).

    Raises
    ------
    NotFoundError
        No such facility.
    InputValidationError
        ``record['id']`` is given and differs from ``facility_id`` (``field='id'``).
    """
    if record.get("id") not in (None, facility_id):
        raise InputValidationError(
            f"body id '{record.get('id')}' differs from the path id '{facility_id}'; "
            "ids cannot be changed (delete and create instead)",
            field="id",
        )
    begin_write(session, area, facility_id, "update")
    try:
        row = _row(session, area, facility_id, lock=True)
    except NotFoundError:
        session.rollback()
        raise
    before = facility_to_record(row)
    for column, value in _column_values(record).items():
        setattr(row, column, value)
    row.updated_at = utc_now()
    session.flush()
    after = facility_to_record(row)
    _finish(session, on_change, area, "update", before, after, actor)
    return after


def delete_facility(
    session: Session,
    area: str,
    facility_id: str,
    *,
    actor: str,
    on_change: RegistryHook | None = None,
) -> dict[str, Any]:
    """Remove a facility; returns its last record.

    Raises
    ------
    NotFoundError
        No such facility.
    """
    begin_write(session, area, facility_id, "delete")
    try:
        row = _row(session, area, facility_id, lock=True)
    except NotFoundError:
        session.rollback()
        raise
    before = facility_to_record(row)
    session.delete(row)
    _finish(session, on_change, area, "delete", before, None, actor)
    return before


def audit_to_record(row: AuditEntry) -> dict[str, Any]:
    """An audit row as a JSON-ready dict."""
    return {
        "id": row.id,
        "area": row.area,
        "facility_id": row.facility_id,
        "action": row.action,
        "actor": row.actor,
        "at": row.at.isoformat(),
        "before": row.before,
        "after": row.after,
    }


def list_audit(
    session: Session,
    area: str,
    *,
    facility_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Audit entries of an area (optionally one facility), newest first."""
    stmt = select(AuditEntry).where(AuditEntry.area == area)
    if facility_id is not None:
        stmt = stmt.where(AuditEntry.facility_id == facility_id)
    stmt = stmt.order_by(AuditEntry.id.desc()).offset(offset).limit(limit)
    return [audit_to_record(row) for row in session.scalars(stmt)]


def _records_of(facilities: Any) -> Iterable[Mapping[str, Any]]:
    """Rows of a GeoDataFrame / DataFrame, or the mappings of an iterable, as dicts."""
    if hasattr(facilities, "columns") and hasattr(facilities, "to_dict"):
        frame = facilities
        columns = set(frame.columns)
        geometry = getattr(frame, "geometry", None) if "geometry" in columns else None
        if not {"lon", "lat"} <= columns and geometry is not None:
            # GeoDataFrame without lon/lat columns: take WGS84 coordinates of the points.
            wgs84 = frame.to_crs(4326) if frame.crs is not None else frame
            frame = frame.assign(lon=wgs84.geometry.x, lat=wgs84.geometry.y)
        if "geometry" in frame.columns:
            frame = frame.drop(columns="geometry")
        return list(frame.to_dict("records"))
    return list(facilities)


def is_seeded(session: Session, area: str) -> bool:
    """Whether ``area`` was filled from its facility file before."""
    return session.get(AreaSeed, area) is not None


def seed_from_file(
    session: Session,
    area_slug: str,
    facilities: Any,
    *,
    source: str | None = None,
    actor: str = "seed",
) -> int:
    """Fill an area's empty registry from its loaded facility file (idempotent).

    Nothing is written when the area was seeded before or already holds facilities
    (entered through the API): the registry, not the file, is then the truth.

    Parameters
    ----------
    session
        Open session; the inserts, their audit rows and a seed marker are committed in
        one transaction.
    area_slug
        Study-area slug.
    facilities
        The facility loader's output: a GeoDataFrame (``lon``/``lat`` WGS84 columns, or
        point geometries with a CRS), a DataFrame, or an iterable of mappings.
    source
        Where the records come from (file path), kept with the seed marker.
    actor
        Actor name written to the audit log.

    Returns
    -------
    int
        Number of facilities inserted (0 when seeding was skipped).

    Raises
    ------
    InputValidationError
        A record is invalid (its 1-based row and field named); nothing is written.
    ConflictError
        Two records share an id; nothing is written.
    """
    if is_seeded(session, area_slug) or count_facilities(session, area_slug) > 0:
        return 0
    records = [record_from_loaded(raw, row=i) for i, raw in enumerate(_records_of(facilities), 1)]
    seen: dict[str, int] = {}
    for i, record in enumerate(records, 1):
        if record["id"] in seen:
            raise ConflictError(
                f"duplicate facility id '{record['id']}' in rows {seen[record['id']]} and {i}"
            )
        seen[record["id"]] = i
    begin_write(session, area_slug, SEED_ID, "seed")
    # Re-checked under the area's write lock: another process may have seeded meanwhile.
    if is_seeded(session, area_slug) or count_facilities(session, area_slug) > 0:
        session.rollback()
        return 0
    now = utc_now()
    rows = [
        Facility(area=area_slug, id=r["id"], created_at=now, updated_at=now, **_column_values(r))
        for r in records
    ]
    session.add_all(rows)
    try:
        session.flush()
        session.add_all(
            AuditEntry(
                area=area_slug,
                facility_id=row.id,
                action="create",
                actor=actor,
                at=now,
                before=None,
                after=facility_to_record(row),
            )
            for row in rows
        )
        session.add(AreaSeed(area=area_slug, source=source, count=len(rows), seeded_at=now))
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"area '{area_slug}' was seeded concurrently: {exc.orig}") from exc
    return len(rows)
