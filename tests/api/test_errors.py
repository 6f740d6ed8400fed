"""The one table from library exceptions to HTTP statuses, and the error body shape."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from tuoyu.errors import (
    AreaConfigError,
    ChecksumMismatchError,
    ConflictError,
    CRSError,
    DataNotFoundError,
    EmptyInputError,
    InputValidationError,
    NotFoundError,
    OffNetworkError,
    TuoyuError,
)
from tuoyu_api.errors import ERROR_TABLE, install_error_handlers, status_for
from tuoyu_api.tokens import InvalidTokenError, RevokedTokenError

from tests.api.conftest import TestClient


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (NotFoundError("x"), 404, "not_found"),
        (ConflictError("x"), 409, "conflict"),
        (InputValidationError("x", field="lat"), 422, "validation_error"),
        (EmptyInputError("x"), 422, "validation_error"),
        (CRSError("x"), 422, "invalid_crs"),
        (OffNetworkError("x"), 422, "off_network"),
        (AreaConfigError("x"), 400, "area_config_error"),
        (DataNotFoundError("x"), 400, "data_not_found"),
        (ChecksumMismatchError("x"), 400, "bad_request"),
        (TuoyuError("x"), 400, "bad_request"),
        (InvalidTokenError("x"), 401, "unauthorized"),
        (RevokedTokenError("x"), 403, "token_revoked"),
        (RuntimeError("x"), 500, "internal_error"),
    ],
)
def test_status_table(exc: BaseException, status: int, code: str) -> None:
    assert status_for(exc) == (status, code)


def test_table_lists_subclasses_before_their_bases() -> None:
    classes = [cls for cls, _status, _code in ERROR_TABLE]
    for i, cls in enumerate(classes):
        for later in classes[i + 1 :]:
            assert not issubclass(later, cls), f"{later.__name__} is shadowed by {cls.__name__}"


def _app_raising(exc: BaseException) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_library_errors_become_json_with_code_message_and_field() -> None:
    response = _app_raising(InputValidationError("lat/lon look swapped", field="lat")).get("/boom")
    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "code": "validation_error",
            "message": "field 'lat': lat/lon look swapped",
            "field": "lat",
        }
    }
    missing = _app_raising(NotFoundError("no facility 'A1'")).get("/boom")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "no facility 'A1'"}}
    unauthorised = _app_raising(InvalidTokenError("unknown bearer token")).get("/boom")
    assert unauthorised.status_code == 401 and unauthorised.headers["www-authenticate"] == "Bearer"


def test_unexpected_errors_are_a_plain_500_without_internals() -> None:
    response = _app_raising(RuntimeError("secret internals")).get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }
