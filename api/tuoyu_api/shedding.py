"""Load shedding of one worker process: rate limits, bounded concurrency, time limits.

* :class:`TokenBucket` — per-key request rates (a token or a client address). Kept in
  memory per worker process: with ``N`` workers a key may send up to ``N`` times the
  rate, the price of needing no shared store; a refused request is a 429 with
  ``Retry-After`` (the time until the bucket holds a token again).
* :class:`Slots` — at most ``capacity`` requests of one kind run at once in a worker;
  one more is a 503 with ``Retry-After`` at once, never a queue that grows without end.
* :func:`run_expensive` — runs a blocking computation in a worker thread holding a slot,
  with a deadline: past it the request is answered 503 ``request_timeout`` and the
  thread is abandoned (Python cannot stop a thread); its slot is freed only when the
  computation really ends, so abandoned work still counts against the capacity.

Hand-written rather than a rate-limit library: the buckets are a dozen lines, and the
libraries for Starlette (slowapi, …) key on routes and answer in their own formats; this
one answers in the service's error format and knows which requests are expensive.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread

from tuoyu_api.errors import RateLimitedError, RequestTimeoutError, ServiceBusyError

T = TypeVar("T")

MAX_BUCKET_KEYS = 10_000
"""Most keys one bucket remembers (the fullest, i.e. idle, ones are forgotten first)."""


@dataclass
class TokenBucket:
    """``rate`` requests per second per key, up to ``burst`` at once.

    Examples
    --------
    >>> bucket = TokenBucket(rate=1.0, burst=2)
    >>> [bucket.take("a", now=0.0) for _ in range(3)]
    [0.0, 0.0, 1.0]
    >>> bucket.take("a", now=1.0), bucket.take("b", now=1.0)
    (0.0, 0.0)
    """

    rate: float
    burst: int
    _state: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, key: str, *, now: float | None = None) -> float:
        """Take one token for ``key``: 0.0 when granted, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._state.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._state[key] = (tokens - 1.0, now)
                self._forget_idle()
                return 0.0
            self._state[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def check(self, key: str, what: str) -> None:
        """Take a token or raise :class:`~tuoyu_api.errors.RateLimitedError` (429)."""
        wait = self.take(key)
        if wait > 0:
            raise RateLimitedError(
                f"too many {what} requests: at most {self.rate:g} per second "
                f"(bursts of {self.burst}); retry in {math.ceil(wait)} s",
                retry_after_s=wait,
            )

    def _forget_idle(self) -> None:
        if len(self._state) <= MAX_BUCKET_KEYS:
            return
        fullest = sorted(self._state, key=lambda k: self._state[k][0], reverse=True)
        for key in fullest[: len(self._state) - MAX_BUCKET_KEYS]:
            del self._state[key]


@dataclass
class Slots:
    """At most ``capacity`` concurrent holders; no waiting (a full set is a 503).

    Examples
    --------
    >>> slots = Slots("sites", 1)
    >>> slots.try_acquire(), slots.try_acquire(), slots.in_use
    (True, False, 1)
    >>> slots.release(); slots.in_use
    0
    """

    name: str
    capacity: int
    retry_after_s: float = 2.0
    in_use: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def try_acquire(self) -> bool:
        """Take a slot if one is free."""
        with self._lock:
            if self.in_use >= self.capacity:
                return False
            self.in_use += 1
            return True

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            self.in_use = max(0, self.in_use - 1)

    def acquire_or_shed(self) -> None:
        """Take a slot or raise :class:`~tuoyu_api.errors.ServiceBusyError` (503)."""
        if not self.try_acquire():
            raise ServiceBusyError(
                f"the server is full: {self.capacity} {self.name} request(s) already "
                "running in this worker; retry later",
                retry_after_s=self.retry_after_s,
            )


async def run_expensive(
    slots: Slots, time_limit_s: float, func: Callable[..., T], *args: object
) -> T:
    """``func(*args)`` in a worker thread, holding one of ``slots``, within a deadline.

    Raises
    ------
    ServiceBusyError
        No slot is free (503).
    RequestTimeoutError
        The computation did not end within ``time_limit_s`` (503); it goes on in its
        thread, holding the slot, until it ends.
    """
    slots.acquire_or_shed()
    guard = threading.Lock()
    started = False
    abandoned = False

    def work() -> T:
        nonlocal started
        with guard:
            if abandoned:
                raise RuntimeError("abandoned before it started")
            started = True
        try:
            return func(*args)
        finally:
            slots.release()

    try:
        with anyio.fail_after(time_limit_s):
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
    except TimeoutError:
        with guard:
            if not started:
                abandoned = True
                slots.release()  # never ran: its slot is free at once
        raise RequestTimeoutError(
            f"the {slots.name} request took longer than {time_limit_s:g} s and was "
            "abandoned; retry later or ask for less",
            retry_after_s=max(2.0, time_limit_s / 4),
        ) from None
    except BaseException:
        with guard:
            if not started:
                abandoned = True
                slots.release()
        raise


__all__ = ["Slots", "TokenBucket", "run_expensive"]
