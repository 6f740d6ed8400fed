"""One table from exceptions to HTTP errors, and the handlers that apply it.

The library raises :mod:`tuoyu.errors` classes and never HTTP errors; here they
become ``{"error": {"code": ..., "message": ..., "field": ...}}`` with the status of the
first matching class in :data:`ERROR_TABLE` (most specific first). FastAPI's request
validation errors and Starlette's HTTP errors (unknown route, wrong method, auth) get the
same shape, so clients parse one error format and bad input is never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
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

from tuoyu_api.tokens import InvalidTokenError, RevokedTokenError

logger = logging.getLogger(__name__)

ERROR_TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
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
}


def error_body(
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON body of an error response."""
    error: dict[str, Any] = {"code": code, "message": message}
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


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    status, code = status_for(exc)
    field = getattr(exc, "field", None)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(code, str(exc), field=field), status, headers=headers)


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
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
