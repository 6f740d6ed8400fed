"""The 备案 register of an area: filings, deadlines, disclosure, quality, import, clerk page.

Writes need a bearer token, are checked by the library's rules (:mod:`tuoyu.register`,
the facility records by the one rule set) and leave one row each in ``register_audit``:

- ``POST /areas/{area}/register/filings`` — a new filing (submitted);
- ``POST /areas/{area}/register/filings/{filing_id}/transitions`` — the next step;
- ``POST /areas/{area}/register/assessments`` — a quality assessment;
- ``POST /areas/{area}/register/import?filename=…`` — an existing 备案 spreadsheet (CSV
  or XLSX as the raw body, at most :data:`IMPORT_MAX_BYTES` and the service's body limit).

Committee reads (token): the filings with their deadlines, the overdue list, the month's
counts, the latest ratings. Public reads: ``GET /areas/{area}/register/public``
(``format=json|csv|geojson``: only the disclosed fields,
:data:`tuoyu.register.disclosure.PUBLIC_FIELDS`) and the clerk page
``GET /areas/{area}/register/clerk`` (static HTML; its calls carry the token typed in).

"Today" is the date in China (Asia/Shanghai).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from importlib.resources import files
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from tuoyu.errors import ConflictError, InputValidationError, NotFoundError
from tuoyu.register.bulk_import import import_register
from tuoyu.register.deadlines import DEADLINE_KINDS, deadlines, monthly_count, overdue
from tuoyu.register.disclosure import (
    PUBLIC_FIELDS,
    public_csv_text,
    public_geojson_text,
    public_record,
)
from tuoyu.register.filings import (
    ACTIONS,
    STATES,
    Filing,
    facilities_as_of,
    filing_to_dict,
    submit,
    transition,
)
from tuoyu.register.quality import DIMENSIONS, assessment, latest_ratings, overall_score, rating

from tuoyu_api.deps import ActorDep, AppState, AreaDep, SessionDep, StateDep
from tuoyu_api.limits import too_large_response
from tuoyu_api.register_models import (
    AssessmentRow,
    FilingRow,
    area_filings,
    audit,
    filing_ids,
    filing_row,
    row_filing,
    set_filing,
    store_import,
)
from tuoyu_api.routers import error_responses
from tuoyu_api.schemas import ID_PATTERN, ErrorResponse

router = APIRouter(tags=["register"])

CHINA_TZ: Final = ZoneInfo("Asia/Shanghai")
IMPORT_MAX_BYTES: Final = 2 * 1024 * 1024
"""Largest 备案 spreadsheet accepted by ``POST …/register/import`` (the service's body
limit ``max_body_bytes`` applies first when smaller)."""
IMPORT_SUFFIXES: Final = (".csv", ".xlsx")
CLERK_PAGE: Final = "clerk.html"

FilingIdPath = Annotated[
    str, PathParam(pattern=ID_PATTERN, description="filing id / 备案编号", examples=["F-2025-001"])
]
OnQuery = Annotated[
    str | None,
    Query(
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="the day (YYYY-MM-DD); default today in China",
        examples=["2025-02-10"],
    ),
]


def today() -> dt.date:
    """Today's date in China."""
    return dt.datetime.now(CHINA_TZ).date()


def day_of(on: str | None) -> dt.date:
    """The ``on`` query parameter as a date (today in China when absent).

    Raises
    ------
    InputValidationError
        ``field='on'`` for a day that does not exist (e.g. 2025-02-30).

    Examples
    --------
    >>> day_of("2025-02-10")
    datetime.date(2025, 2, 10)
    """
    if on is None:
        return today()
    try:
        return dt.date.fromisoformat(on)
    except ValueError as exc:
        raise InputValidationError(f"not a date: {on!r} ({exc})", field="on") from exc


# --- bodies and answers ------------------------------------------------------------------------


class FilingIn(BaseModel):
    """A new filing: the facility as filed and the documents handed in."""

    filing_id: str = Field(pattern=ID_PATTERN, description="filing id in the register")
    record: dict[str, Any] = Field(
        description="the facility (schema fields or Chinese headers such as 机构名称/托位数/经度)"
    )
    on: dt.date = Field(description="day the materials were received / 接收材料日期")
    documents: list[str] = Field(default_factory=list, max_length=20)
    crs: str = Field(default="wgs84", max_length=16, description="lon/lat system")
    note: str | None = Field(default=None, max_length=500)


class TransitionIn(BaseModel):
    """The next step of a filing."""

    action: str = Field(max_length=32, description=", ".join(ACTIONS))
    on: dt.date
    reasons: list[str] = Field(default_factory=list, max_length=50)
    documents: list[str] = Field(default_factory=list, max_length=20)
    changes: dict[str, Any] | None = None
    number: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=500)


class AssessmentIn(BaseModel):
    """A quality assessment: the seven dimensions of policy 002, 0–100 each."""

    facility_id: str = Field(pattern=ID_PATTERN)
    assessed_on: dt.date
    assessor: str = Field(min_length=1, max_length=64)
    scores: dict[str, float] = Field(description="、".join(DIMENSIONS))
    note: str | None = Field(default=None, max_length=500)


def _deadline_view(filing: Filing, on: dt.date) -> list[dict[str, Any]]:
    return [
        {
            "kind": d.kind,
            "label": DEADLINE_KINDS[d.kind],
            "submitted_on": d.submitted_on.isoformat(),
            "due": d.due.isoformat(),
            "answered_on": d.answered_on.isoformat() if d.answered_on else None,
            "overdue": d.overdue_on(on),
        }
        for d in deadlines(filing)
    ]


def filing_view(filing: Filing, on: dt.date) -> dict[str, Any]:
    """A filing for the committee (token): state, next actions, deadlines, steps."""
    data = filing_to_dict(filing)
    name = filing.record.get("name")
    return {
        "filing_id": filing.filing_id,
        "facility_id": filing.facility_id,
        "name": name,
        "number": filing.number,
        "state": filing.state,
        "state_label": STATES[filing.state],
        "submitted_on": filing.submitted_on.isoformat(),
        "registered_on": filing.registered_on.isoformat() if filing.registered_on else None,
        "next_actions": list(filing.next_actions()),
        "deadlines": _deadline_view(filing, on),
        "overdue": any(d.overdue_on(on) for d in deadlines(filing)),
        "record": _latest_record(data),
        "steps": data["steps"],
    }


def _latest_record(data: dict[str, Any]) -> dict[str, Any] | None:
    for step in reversed(data["steps"]):
        if step["record"] is not None:
            return dict(step["record"])
    return None


# --- helpers ----------------------------------------------------------------------------------


def _load_row(session: Session, area: str, filing_id: str, *, lock: bool = False) -> FilingRow:
    query = select(FilingRow).where(FilingRow.area == area, FilingRow.filing_id == filing_id)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        raise NotFoundError(f"no filing '{filing_id}' in the register of {area}")
    return row


def _polygon(state: AppState, area: str) -> Any:
    return state.area_polygon(area)


# --- writes -----------------------------------------------------------------------------------


@router.post(
    "/areas/{area}/register/filings",
    status_code=status.HTTP_201_CREATED,
    summary="Submit a filing / 提交备案 (token)",
    responses=error_responses(400, 401, 403, 404, 409, 422, 429),
)
def post_filing(
    area: AreaDep, body: FilingIn, actor: ActorDep, session: SessionDep, state: StateDep
) -> dict[str, Any]:
    """A new filing in state ``submitted``; the record is checked by the one rule set."""
    state.write_rate.check(actor, "write")
    filing = submit(
        body.record,
        filing_id=body.filing_id,
        area=area.slug,
        actor=actor,
        on=body.on,
        documents=body.documents,
        note=body.note,
        default_crs=body.crs,
        area_polygon=_polygon(state, area.slug),
        area_code=area.area.code,
    )
    if filing.filing_id in filing_ids(session, area.slug):
        raise ConflictError(f"filing '{filing.filing_id}' already exists in {area.slug}")
    session.add(filing_row(area.slug, filing))
    audit(
        session, area=area.slug, filing_id=filing.filing_id, action="submit", actor=actor,
        on=body.on, before=None, after=filing_to_dict(filing),
    )  # fmt: skip
    session.commit()
    return filing_view(filing, today())


@router.post(
    "/areas/{area}/register/filings/{filing_id}/transitions",
    summary="Next step of a filing / 备案流转 (token)",
    responses=error_responses(400, 401, 403, 404, 422, 429),
)
def post_transition(
    area: AreaDep,
    filing_id: FilingIdPath,
    body: TransitionIn,
    actor: ActorDep,
    session: SessionDep,
    state: StateDep,
) -> dict[str, Any]:
    """Apply ``action``; an action the filing's state does not allow is a 422 naming it."""
    state.write_rate.check(actor, "write")
    row = _load_row(session, area.slug, filing_id, lock=True)
    before = row_filing(row)
    after = transition(
        before,
        body.action,
        actor=actor,
        on=body.on,
        reasons=body.reasons,
        documents=body.documents,
        changes=body.changes,
        number=body.number,
        note=body.note,
        area_polygon=_polygon(state, area.slug) if body.changes else None,
        area_code=area.area.code,
    )
    set_filing(row, after)
    audit(
        session, area=area.slug, filing_id=filing_id, action=body.action, actor=actor,
        on=body.on, before=filing_to_dict(before), after=filing_to_dict(after),
    )  # fmt: skip
    session.commit()
    return filing_view(after, today())


@router.post(
    "/areas/{area}/register/assessments",
    status_code=status.HTTP_201_CREATED,
    summary="Record a quality assessment / 质量评估 (token)",
    responses=error_responses(400, 401, 403, 404, 422, 429),
)
def post_assessment(
    area: AreaDep, body: AssessmentIn, actor: ActorDep, session: SessionDep, state: StateDep
) -> dict[str, Any]:
    """Store an assessment with its overall score and grade (project default scheme)."""
    state.write_rate.check(actor, "write")
    item = assessment(body.facility_id, body.assessed_on, body.assessor, body.scores, body.note)
    row = AssessmentRow(
        area=area.slug,
        facility_id=item.facility_id,
        assessed_on=item.assessed_on,
        assessor=item.assessor,
        scores=dict(item.scores),
        overall=overall_score(item),
        rating=rating(item),
        actor=actor,
    )
    session.add(row)
    audit(
        session, area=area.slug, filing_id=item.facility_id, action="assessment", actor=actor,
        on=item.assessed_on, before=None,
        after={"scores": dict(item.scores), "overall": row.overall, "rating": row.rating},
    )  # fmt: skip
    session.commit()
    return {
        "facility_id": item.facility_id,
        "assessed_on": item.assessed_on.isoformat(),
        "assessor": item.assessor,
        "scores": dict(item.scores),
        "overall": row.overall,
        "rating": row.rating,
    }


def _upload_name(filename: str) -> str:
    name = PurePosixPath(filename.replace("\\", "/")).name[:100]
    if not name.lower().endswith(IMPORT_SUFFIXES):
        raise InputValidationError(
            f"filename must end in {' or '.join(IMPORT_SUFFIXES)}, got '{name}'",
            field="filename",
        )
    return name


@router.post(
    "/areas/{area}/register/import",
    summary="Import an existing 备案 spreadsheet / 导入备案表 (token)",
    responses={
        **error_responses(400, 401, 403, 404, 422, 429),
        413: {"model": ErrorResponse, "description": "File too large / 文件过大"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
)
async def post_import(
    area: AreaDep,
    request: Request,
    actor: ActorDep,
    state: StateDep,
    filename: Annotated[str, Query(min_length=5, max_length=200, examples=["备案表.csv"])],
    on: OnQuery = None,
    crs: Annotated[str, Query(max_length=16)] = "wgs84",
) -> Any:
    """Rows become registered filings (one audit row each); bad rows come back as rejects.

    The body is the file itself (CSV in UTF-8 or GBK, or XLSX), at most
    ``IMPORT_MAX_BYTES``; rows whose filing id is already in the register are rejected.
    """
    state.write_rate.check(actor, "write")
    name = _upload_name(filename)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > IMPORT_MAX_BYTES:
        return too_large_response(IMPORT_MAX_BYTES, int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > IMPORT_MAX_BYTES:
            return too_large_response(IMPORT_MAX_BYTES)
        chunks.append(chunk)
    data = b"".join(chunks)
    day = day_of(on)
    polygon = await run_in_threadpool(_polygon, state, area.slug)

    def work() -> dict[str, Any]:
        with state.database.session() as session, tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ("upload" + PurePosixPath(name).suffix.lower())
            path.write_bytes(data)
            result = import_register(
                path, area=area.slug, actor=actor, on=day, default_crs=crs,
                area_polygon=polygon, area_code=area.area.code,
                existing_ids=filing_ids(session, area.slug),
                source_name=name,
            )  # fmt: skip
            store_import(session, result)
            session.commit()
        rejects = result.rejects.astype(object).where(result.rejects.notna(), None)
        return {
            "imported": len(result.filings),
            "filings": [f.filing_id for f in result.filings],
            "rejects": rejects.to_dict(orient="records"),
            "warnings": result.warnings,
        }

    return await run_in_threadpool(work)


# --- committee reads (token) ---------------------------------------------------------------------


@router.get(
    "/areas/{area}/register/filings",
    summary="Filings with their deadlines / 备案列表 (token)",
    responses=error_responses(401, 403, 404, 422),
)
def get_filings(
    area: AreaDep, actor: ActorDep, session: SessionDep, on: OnQuery = None
) -> list[dict[str, Any]]:
    """Every filing of the area with state, next actions and deadlines (overdue on ``on``)."""
    day = day_of(on)
    return [filing_view(f, day) for f in area_filings(session, area.slug)]


@router.get(
    "/areas/{area}/register/filings/{filing_id}",
    summary="One filing / 备案详情 (token)",
    responses=error_responses(401, 403, 404, 422),
)
def get_filing(
    area: AreaDep, filing_id: FilingIdPath, actor: ActorDep, session: SessionDep,
    on: OnQuery = None,
) -> dict[str, Any]:  # fmt: skip
    """One filing with its steps and deadlines."""
    return filing_view(row_filing(_load_row(session, area.slug, filing_id)), day_of(on))


@router.get(
    "/areas/{area}/register/overdue",
    summary="Deadlines overdue on a day / 逾期清单 (token)",
    responses=error_responses(401, 403, 404, 422),
)
def get_overdue(
    area: AreaDep, actor: ActorDep, session: SessionDep, on: OnQuery = None
) -> list[dict[str, Any]]:
    """The 回执 and correction deadlines past due and unanswered on ``on``."""
    day = day_of(on)
    return [
        {
            "filing_id": o.filing_id,
            "facility_id": o.facility_id,
            "name": o.name,
            "state": o.state,
            "kind": o.kind,
            "label": DEADLINE_KINDS[o.kind],
            "submitted_on": o.submitted_on.isoformat(),
            "due": o.due.isoformat(),
            "working_days_late": o.working_days_late,
        }
        for o in overdue(area_filings(session, area.slug), day)
    ]


@router.get(
    "/areas/{area}/register/monthly",
    summary="The month's counts / 月度统计 (token)",
    responses=error_responses(401, 403, 404, 422),
)
def get_monthly(
    area: AreaDep,
    actor: ActorDep,
    session: SessionDep,
    month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2025-02"])],
) -> dict[str, Any]:
    """Submitted, registered, returned and overdue in ``month`` (see ``MonthlyCount``)."""
    year, number = (int(p) for p in month.split("-"))
    count = monthly_count(area_filings(session, area.slug), year, number)
    return {
        "month": month,
        "submitted": count.submitted,
        "registered": count.registered,
        "returned": count.returned,
        "overdue": count.overdue,
    }


@router.get(
    "/areas/{area}/register/ratings",
    summary="Latest quality rating per facility / 最新评估等级 (token)",
    responses=error_responses(401, 403, 404, 422),
)
def get_ratings(area: AreaDep, actor: ActorDep, session: SessionDep) -> list[dict[str, Any]]:
    """The latest assessment's overall score and grade of every assessed facility."""
    rows = session.scalars(
        select(AssessmentRow).where(AssessmentRow.area == area.slug).order_by(AssessmentRow.id)
    )
    items = [assessment(r.facility_id, r.assessed_on, r.assessor, r.scores) for r in rows]
    return [
        {
            "facility_id": r.facility_id,
            "assessed_on": r.assessed_on.isoformat(),
            "assessor": r.assessor,
            "overall": r.overall,
            "rating": r.grade,
        }
        for r in latest_ratings(items).values()
    ]


# --- public reads --------------------------------------------------------------------------------


@router.get(
    "/areas/{area}/register/public",
    summary="Registered facilities, public view / 备案机构公示",
    responses={
        200: {
            "description": "JSON list, CSV (UTF-8 with BOM) or GeoJSON (WGS84)",
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "text/csv": {"schema": {"type": "string"}},
                "application/geo+json": {"schema": {"type": "object"}},
            },
        },
        **error_responses(404, 422),
    },
)
def get_public(
    area: AreaDep,
    session: SessionDep,
    on: OnQuery = None,
    format: Annotated[Literal["json", "csv", "geojson"], Query()] = "json",
) -> Any:
    """Facilities registered on ``on`` with only the disclosed fields.

    ``json``: a list of objects (keys of ``PUBLIC_FIELDS``); ``csv``: UTF-8 with BOM,
    Chinese headers, formula-safe; ``geojson``: WGS84 points.
    """
    day = day_of(on)
    records = facilities_as_of(area_filings(session, area.slug), day)
    if format == "csv":
        body = public_csv_text(records).encode("utf-8-sig")
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{area.slug}-register-{day}.csv"'
            },
        )
    if format == "geojson":
        text = public_geojson_text(records, name=f"{area.area.name} 托育机构备案公示 {day}")
        return Response(text.encode("utf-8"), media_type="application/geo+json")
    return [public_record(r) for r in records]


@router.get(
    "/areas/{area}/register/public/fields",
    summary="The disclosed fields / 公示字段",
    responses=error_responses(404),
)
def get_public_fields(area: AreaDep) -> dict[str, str]:
    """Key → Chinese label of every disclosed field (nothing else is published)."""
    return dict(PUBLIC_FIELDS)


@router.get(
    "/areas/{area}/register/clerk",
    response_class=HTMLResponse,
    summary="Clerk page / 备案办理页面",
    responses={
        404: {
            "model": ErrorResponse,
            "description": "Unknown area / 未找到",
            "content": {"application/json": {}},
        }
    },
)
def get_clerk_page(area: AreaDep) -> HTMLResponse:
    """A plain page for the clerk: filings, due dates, overdue highlighted, next steps.

    The page holds no data: its calls to the API carry the token typed into it.
    """
    page = files("tuoyu_api").joinpath("static_register", CLERK_PAGE).read_text("utf-8")
    page = page.replace("{{AREA_NAME}}", _html_text(area.area.name))
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


def _html_text(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
