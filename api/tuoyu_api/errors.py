"""One table from exceptions to HTTP errors, and the handlers that apply it.

The library raises :mod:`tuoyu.errors` classes and never HTTP errors; here they
become ``{"error": {"code": ..., "message": ..., "field": ...}}`` with the status of the
first matching class in :data:`ERROR_TABLE` (most specific first). FastAPI's request
validation errors and Starlette's HTTP errors (unknown route, wrong method, auth) get the
same shape, so clients parse one error format and bad input is never a 500.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from tuoyu.errors import (
    AreaConfigError,
    ConflictError,
    CRSError,
    DataNotFoundError,
    InputValidationError,
    NoNetworkError,
    NotFoundError,
    OffNetworkError,
    TuoyuError,
)

from tuoyu_api.public import scrub_paths
from tuoyu_api.tokens import InvalidTokenError, RevokedTokenError

logger = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER_S = 1
"""``Retry-After`` (seconds) of a 503 whose cause names no better wait."""


class ShedError(Exception):
    """The service refused a request it could not take now (429/503 with ``Retry-After``).

    Parameters
    ----------
    message
        What was full and what to do.
    retry_after_s
        Seconds the client should wait before retrying (rounded up, at least 1).
    """

    def __init__(self, message: str, *, retry_after_s: float = DEFAULT_RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimitedError(ShedError):
    """A token or client sent more than its rate (HTTP 429)."""


class ServiceBusyError(ShedError):
    """The server is full: every slot of the endpoint or the write queue is taken (503)."""


class RequestTimeoutError(ShedError):
    """An expensive request ran past its time limit and was abandoned (503)."""


ERROR_TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
    (RateLimitedError, 429, "rate_limited"),
    (RequestTimeoutError, 503, "request_timeout"),
    (ServiceBusyError, 503, "service_busy"),
    (PoolTimeoutError, 503, "service_busy"),
    (OperationalError, 503, "database_unavailable"),
    (InvalidTokenError, 401, "unauthorized"),
    (RevokedTokenError, 403, "token_revoked"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (InputValidationError, 422, "validation_error"),
    (CRSError, 422, "invalid_crs"),
    (OffNetworkError, 422, "off_network"),
    (NoNetworkError, 400, "no_network"),
    (AreaConfigError, 400, "area_config_error"),
    (DataNotFoundError, 400, "data_not_found"),
    (TuoyuError, 400, "bad_request"),
)
"""(exception class, HTTP status, error code); the first class that matches wins."""

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "rate_limited",
    503: "service_busy",
}


def error_body(
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON body of an error response (absolute server paths reduced to file names).

    Examples
    --------
    >>> error_body("data_not_found", "missing /srv/data/yuzhong.osm.pbf")
    {'error': {'code': 'data_not_found', 'message': 'missing yuzhong.osm.pbf'}}
    """
    error: dict[str, Any] = {"code": code, "message": scrub_paths(message)}
    if field is not None:
        error["field"] = field
    if details is not None:
        error["details"] = details
    return {"error": error}


def status_for(exc: BaseException) -> tuple[int, str]:
    """``(status, code)`` of an exception according to :data:`ERROR_TABLE`."""
    for cls, status, code in ERROR_TABLE:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def _loc_field(loc: Sequence[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def retry_after(exc: BaseException) -> str:
    """``Retry-After`` value (whole seconds, at least 1) of a shed or busy answer.

    Examples
    --------
    >>> retry_after(ServiceBusyError("full", retry_after_s=2.2))
    '3'
    >>> retry_after(PoolTimeoutError())
    '1'
    """
    seconds = getattr(exc, "retry_after_s", DEFAULT_RETRY_AFTER_S)
    return str(max(1, math.ceil(float(seconds))))


def _message(exc: BaseException, status: int) -> str:
    if isinstance(exc, PoolTimeoutError):
        return "the server is busy (no database connection free); retry later"
    if isinstance(exc, OperationalError):
        # The driver's text may hold the database URL or file path: never sent.
        logger.warning("database unavailable: %s", exc)
        return "the registry database is busy or unavailable; retry later"
    return str(exc)


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    status, code = status_for(exc)
    field = getattr(exc, "field", None)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status in (429, 503):
        headers["Retry-After"] = retry_after(exc)
    return JSONResponse(
        error_body(code, _message(exc, status), field=field), status, headers=headers or None
    )


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    details = [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in errors
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    field = _loc_field(first["loc"])
    message = f"{field}: {first['msg']}" if field else str(first["msg"])
    return JSONResponse(error_body("validation_error", message, field=field, details=details), 422)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    detail = exc.detail if isinstance(exc, StarletteHTTPException) else str(exc)
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 405:
        # Starlette lists the methods of the one route that matched; a path served by
        # several routes (GET, PUT, DELETE) must list them all.
        headers["Allow"] = ", ".join(allowed_methods(request))
    if status in (429, 503):
        headers.setdefault("Retry-After", str(DEFAULT_RETRY_AFTER_S))
    code = _HTTP_CODES.get(status, "http_error")
    return JSONResponse(error_body(code, str(detail)), status, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal_error", "internal server error"), 500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app`` (library errors, validation, HTTP, the rest)."""
    app.add_exception_handler(TuoyuError, _library_error)
    app.add_exception_handler(InvalidTokenError, _library_error)
    app.add_exception_handler(RevokedTokenError, _library_error)
    app.add_exception_handler(ShedError, _library_error)
    app.add_exception_handler(PoolTimeoutError, _library_error)
    app.add_exception_handler(OperationalError, _library_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
