"""Regression tests of the safety audit for the service.

* a write whose id is outside Latin-1 answered 500 after committing (``Location``);
* ids and names made only of invisible characters are refused naming the field;
* request bodies are limited and writes check the token before the body is read, also
  under a real uvicorn server (a lying ``Content-Length``, a chunked body).
"""

from __future__ import annotations

import select
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import anyio
import pytest
from tuoyu_api.app import create_app
from tuoyu_api.schemas import SAMPLE_FACILITY
from tuoyu_api.settings import ApiSettings, get_api_settings
from tuoyu_api.tokens import create_token, create_token_cli

from tests.live_server import running_server

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

AREA = "chongqing-yuzhong"
URL = f"/areas/{AREA}/facilities"
LIMIT = 4096


@pytest.fixture()
def sqlite_settings(tmp_path: Path) -> ApiSettings:
    """Service settings on a SQLite registry with a small body limit."""
    return get_api_settings(
        state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", max_body_bytes=LIMIT
    )


@pytest.fixture()
def app_client(sqlite_settings: ApiSettings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A TestClient of the full app and a valid Authorization header."""
    with TestClient(create_app(sqlite_settings)) as client:
        with client.app.state.tuoyu.database.session() as session:  # type: ignore[attr-defined]
            token = create_token(session, "safety")
        yield client, {"Authorization": f"Bearer {token}"}


# --- 1. ids outside Latin-1, invisible ids and names ------------------------------------


@pytest.mark.parametrize("facility_id", ["渝中-托育-0001", "YZ\u200b-0002"])
def test_non_latin1_id_gets_an_encoded_location(
    app_client: tuple[TestClient, dict[str, str]], facility_id: str
) -> None:
    client, auth = app_client
    created = client.post(URL, json={**SAMPLE_FACILITY, "id": facility_id}, headers=auth)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location == f"/areas/{AREA}/facilities/{quote(facility_id, safe='')}"
    assert location.isascii()
    assert unquote(location.rsplit("/", 1)[1]) == facility_id
    again = client.get(location)
    assert again.status_code == 200 and again.json()["id"] == facility_id


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "\u200b"),
        ("id", "\u200b\u200c\u2060\ufeff"),
        ("name", "\u200b"),
        ("name", "\u200b \u3000\u200d"),
        ("name", "\u3164"),  # Hangul filler: a letter that renders as nothing
        ("jiedao", "\u2060"),
    ],
)
def test_invisible_text_is_refused_naming_the_field(
    app_client: tuple[TestClient, dict[str, str]], field: str, value: str
) -> None:
    client, auth = app_client
    answer = client.post(URL, json={**SAMPLE_FACILITY, field: value}, headers=auth)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field
    assert client.get(URL).json()["numberReturned"] == 0


def test_visible_text_with_a_zero_width_character_is_kept(
    app_client: tuple[TestClient, dict[str, str]],
) -> None:
    client, auth = app_client
    body = {**SAMPLE_FACILITY, "name": "解放碑\u200b托育中心"}
    answer = client.post(URL, json=body, headers=auth)
    assert answer.status_code == 201, answer.text


# --- 3. body limit and token before body (in process) -----------------------------------


def test_declared_oversized_body_is_413(app_client: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = app_client
    answer = client.post(URL, content=b"x" * (LIMIT + 1), headers=auth)
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["code"] == "payload_too_large" and str(LIMIT) in error["message"]


def test_chunked_oversized_body_is_413(app_client: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = app_client

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"x" * 1024

    answer = client.post(URL, content=chunks(), headers=auth)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


def test_body_within_the_limit_is_served(app_client: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = app_client
    assert client.post(URL, json=SAMPLE_FACILITY, headers=auth).status_code == 201


async def _call_asgi(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, list[str]]:
    """Call the app directly with a ``receive`` that records whether the body was read."""
    reads: list[str] = []
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        reads.append("body")
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    await app(scope, receive, send)
    return statuses[0], reads


@pytest.mark.parametrize("authorization", [None, b"Bearer tuoyu_not-a-token", b"Basic eDp5"])
def test_write_token_is_checked_before_the_body(
    sqlite_settings: ApiSettings, authorization: bytes | None
) -> None:
    app = create_app(sqlite_settings)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    for method, path in (("POST", URL), ("PUT", f"{URL}/YZ-TY-0001")):
        status, reads = anyio.run(_call_asgi, app, method, path, headers)
        assert status == 401
        assert reads == []  # answered without reading a byte of the body


def test_public_post_still_reads_its_body(sqlite_settings: ApiSettings) -> None:
    app = create_app(sqlite_settings)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    _status, reads = anyio.run(_call_asgi, app, "POST", "/areas/nowhere/scenarios", headers)
    assert reads  # no token needed: the middleware lets the app read the body


# --- 3. under a real uvicorn server -----------------------------------------------------


@pytest.fixture()
def live(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """Port of a running uvicorn server (default 1 MiB limit) and a valid token."""
    settings = get_api_settings(state_dir=tmp_path, database_url=None)
    assert settings.max_body_bytes == 1_048_576
    token = create_token_cli("safety-live", settings)
    with running_server(create_app(settings)) as port:
        yield port, token


def _read_status(sock: socket.socket) -> tuple[int, bytes]:
    """Status code and raw bytes of the answer (until the server closes or the body ends)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is not None and len(body) >= length:
                break
    assert data.startswith(b"HTTP/1.1 "), f"no answer from the server: {data!r}"
    return int(data.split(b" ", 2)[1]), data


def _head(port: int, method: str, path: str, extra: list[str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *extra, "", ""]
    return "\r\n".join(lines).encode("ascii")


@pytest.mark.parametrize("with_token", [False, True])
def test_huge_declared_body_is_answered_without_waiting(
    live: tuple[int, str], with_token: bool
) -> None:
    port, token = live
    extra = ["Content-Type: application/json", "Content-Length: 209715200"]
    if with_token:
        extra.append(f"Authorization: Bearer {token}")
    # A generous client timeout: the point is that the server answers at all while
    # 200 MB are announced and only a few bytes sent (before: it waited for them).
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(_head(port, "POST", URL, extra) + b'{"id": ')
        status, data = _read_status(sock)
    assert status in (401, 413), data
    assert b'"error"' in data


def test_unauthenticated_write_does_not_wait_for_its_body(live: tuple[int, str]) -> None:
    port, _token = live
    extra = ["Content-Type: application/json", "Content-Length: 500"]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(_head(port, "POST", URL, extra))  # the 500 bytes never come
        status, data = _read_status(sock)
    assert status == 401, data
    assert b'"unauthorized"' in data


def test_chunked_5_mib_body_gets_413(live: tuple[int, str]) -> None:
    port, token = live
    extra = [
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        f"Authorization: Bearer {token}",
    ]
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(_head(port, "POST", URL, extra))
        try:
            for _ in range(80):  # 80 × 64 KiB = 5 MiB
                if select.select([sock], [], [], 0.02)[0]:
                    break  # the server answered: stop sending
                sock.sendall(chunk)
            else:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed after answering; the answer is read below
        status, data = _read_status(sock)
    assert status == 413, data
    assert b'"payload_too_large"' in data
