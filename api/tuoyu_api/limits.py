"""Request-body limits and the write-token check, before any body byte is read.

FastAPI reads and parses a request body *before* it runs the route's dependencies, so
the bearer-token dependency (:func:`tuoyu_api.deps.require_token`) of a registry write
only ran after the whole body had arrived: an unauthenticated 200 MB POST was read for
seconds before its 401, and a ``Content-Length`` of 10¹¹ made the server wait. Reordering
dependencies cannot change that, so :class:`RequestLimitMiddleware` (pure ASGI, no body
buffering) does three things in front of the app:

1. a declared ``Content-Length`` above ``max_body_bytes`` → 413 at once;
2. a write (POST/PUT/PATCH/DELETE) to a route that depends on ``require_token`` → the
   token is checked when the route first asks for its body, before a byte of it is
   read (401/403 at once); the route's own dependency checks it again, so its
   behaviour is unchanged;
3. bytes actually received (chunked bodies have no ``Content-Length``) are counted and
   the request is answered 413 as soon as they pass the limit.

Errors use the service's format, ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, Final

import anyio.to_thread
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tuoyu_api.deps import require_token
from tuoyu_api.errors import error_body, status_for
from tuoyu_api.tokens import TokenError, verify_token

WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""Methods whose token-protected routes are checked before the body is read."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def too_large_response(limit: int, declared: int | None = None) -> JSONResponse:
    """The 413 answer (the connection is closed: the unread body is not drained).

    Examples
    --------
    >>> r = too_large_response(1024, 5000)
    >>> r.status_code, r.body.decode()
    (413, '{"error":{"code":"payload_too_large","message":"request body of 5000 bytes is larger than the limit of 1024 bytes","field":"body"}}')
    """
    size = f"of {declared} bytes " if declared is not None else ""
    message = f"request body {size}is larger than the limit of {limit} bytes"
    return JSONResponse(
        error_body("payload_too_large", message, field="body"),
        413,
        headers={"Connection": "close"},
    )


def _dependency_calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependency_calls(sub)


def needs_token(route: object) -> bool:
    """Whether ``route`` depends (directly or not) on :func:`~tuoyu_api.deps.require_token`."""
    if not isinstance(route, APIRoute):
        return False
    return any(call is require_token for call in _dependency_calls(route.dependant))


class _Refused(HTTPException):
    """Raised from ``receive`` to stop the app; the middleware sends ``answer`` instead."""

    def __init__(self, answer: JSONResponse) -> None:
        super().__init__(answer.status_code, "request refused before its body was read")
        self.answer = answer


class RequestLimitMiddleware:
    """Refuse oversized bodies and unauthenticated writes before reading the body.

    Parameters
    ----------
    app
        The ASGI app to wrap.
    max_body_bytes
        Largest body accepted, declared (``Content-Length``) or received (chunked).

    Notes
    -----
    The token check runs when the route first asks for its body: routing has then put
    the matched route into the ASGI scope (``scope["route"]``, which Starlette's router
    writes into the request's scope), so the check applies exactly to routes that
    depend on ``require_token``, without re-implementing FastAPI's routing. Raising a
    Starlette ``HTTPException`` from ``receive`` is the documented way for a middleware
    to stop FastAPI's body reading; the answer the app then makes of it is replaced by
    the middleware's own.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await too_large_response(limit, int(declared))(scope, receive, send)
            return
        received = 0
        first_read = True
        refusal: JSONResponse | None = None
        app_started = False

        async def guarded_receive() -> Message:
            nonlocal received, first_read, refusal
            if first_read:
                first_read = False
                if scope["method"] in WRITE_METHODS:
                    refusal = await self._token_refusal(scope)
                    if refusal is not None:
                        raise _Refused(refusal)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refusal = too_large_response(limit)
                    raise _Refused(refusal)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal app_started
            if refusal is not None and not app_started:
                return  # the app's answer to the refusal is replaced below
            if message["type"] == "http.response.start":
                app_started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if refusal is None or app_started:
                raise
        if refusal is not None and not app_started:
            await refusal(scope, receive, send)

    async def _token_refusal(self, scope: Scope) -> JSONResponse | None:
        """401/403 for a token-protected route without a valid token, else ``None``."""
        app = scope.get("app")
        if not needs_token(scope.get("route")) or app is None:
            return None
        if require_token in getattr(app, "dependency_overrides", {}):
            return None  # a test or deployment replaced the token check
        authorization = (_header(scope, b"authorization") or b"").decode("latin-1")
        scheme, _, credentials = authorization.partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" and credentials else None
        database = app.state.tuoyu.database

        def check() -> None:
            with database.session() as session:
                verify_token(session, token)

        try:
            await anyio.to_thread.run_sync(check)
        except TokenError as exc:
            status, code = status_for(exc)
            headers = {"Connection": "close"}
            if status == 401:
                headers["WWW-Authenticate"] = "Bearer"
            return JSONResponse(error_body(code, str(exc)), status, headers=headers)
        return None


def server_full_response(limit: int) -> JSONResponse:
    """The 503 of a worker already serving ``limit`` requests (``Retry-After: 1``).

    Examples
    --------
    >>> r = server_full_response(8)
    >>> r.status_code, r.headers["retry-after"]
    (503, '1')
    """
    message = (
        f"the server is full (at most {limit} requests at once per worker, none late); retry later"
    )
    return JSONResponse(error_body("service_busy", message), 503, headers={"Retry-After": "1"})


LATE_TICKS: Final = 3
"""Consecutive late heartbeats that mean the event loop is saturated."""


class InFlightLimitMiddleware:
    """Shed load at once (503 with ``Retry-After``) when a worker is overloaded.

    Two signals, either one sheds:

    * more than ``max_in_flight`` requests in progress (requests waiting in threads:
      writes, builds, expensive work);
    * the event loop running late by more than ``max_loop_lag_s``. The hot read path
      (``/nearest``) is computed on the event loop, so under overload its requests queue
      in the kernel's socket buffers, where no counter sees them, and every answer's
      latency grows without end. A heartbeat every ``tick_s`` measures how late the loop
      runs; while it is late on :data:`LATE_TICKS` heartbeats running, new requests get a 503 that costs a fraction of a
      millisecond, the backlog drains, and the worker recovers by itself as soon as the
      load drops (a CoDel-like rule: shed on queueing delay, not on queue length).

    ``/healthz`` is never refused (a balancer must see the worker alive). Pure ASGI; the
    counters are touched only on the event loop (one thread), so no lock.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        max_loop_lag_s: float = 0.25,
        tick_s: float = 0.05,
    ) -> None:
        self.app = app
        self.max_in_flight = int(max_in_flight)
        self.max_loop_lag_s = float(max_loop_lag_s)
        self.tick_s = float(tick_s)
        self.in_flight = 0
        self.lag_s = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def _watch(self) -> None:
        """Start the heartbeat on the running loop (once per loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self.lag_s = 0.0

        recent = [0.0] * (LATE_TICKS - 1)

        def tick(expected: float) -> None:
            now = loop.time()
            lag = max(0.0, now - expected)
            # Late on LATE_TICKS heartbeats running: a saturated loop is late on every
            # one, a pause (a descheduled process, a long GC, a C call holding the GIL
            # in another thread) on one or two.
            self.lag_s = min(lag, *recent)
            recent.pop(0)
            recent.append(lag)
            if self._loop is loop and not loop.is_closed():
                loop.call_later(self.tick_s, tick, now + self.tick_s)

        loop.call_later(self.tick_s, tick, loop.time() + self.tick_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/healthz":
            await self.app(scope, receive, send)
            return
        self._watch()
        if self.in_flight >= self.max_in_flight or self.lag_s > self.max_loop_lag_s:
            await server_full_response(self.max_in_flight)(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


__all__ = [
    "WRITE_METHODS",
    "InFlightLimitMiddleware",
    "RequestLimitMiddleware",
    "needs_token",
    "server_full_response",
    "too_large_response",
]
