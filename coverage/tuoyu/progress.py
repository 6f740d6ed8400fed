"""Progress reporting for long steps, on stderr, quiet in tests unless asked."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """Prints ``[step] message … done in 1.2 s`` lines for the steps of a run.

    Parameters
    ----------
    stream
        Where to print (default stderr).
    enabled
        Print nothing when False.
    every_s
        Least time between two :meth:`advance` lines of one step.
    """

    def __init__(
        self, stream: TextIO | None = None, *, enabled: bool = True, every_s: float = 5.0
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.every_s = every_s
        self._last_s = -math.inf
        self._started_s = time.perf_counter()

    def info(self, message: str) -> None:
        """Print one line."""
        if self.enabled:
            print(message, file=self.stream, flush=True)

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Time a step and print its start and end."""
        start = time.perf_counter()
        self._started_s = start
        self._last_s = start
        self.info(f"… {label}")
        yield
        self.info(f"✓ {label} ({time.perf_counter() - start:.1f} s)")

    def advance(self, done: int, total: int, unit: str = "") -> None:
        """Print ``done/total`` with an estimate of the time left, at most every ``every_s``.

        Called inside a long :meth:`step` (e.g. once per facility); the last call
        (``done == total``) always prints.

        Examples
        --------
        >>> import io
        >>> out = io.StringIO()
        >>> p = Progress(out, every_s=0.0)
        >>> with p.step("isochrones"):
        ...     for k in range(1, 3):
        ...         p.advance(k, 2, "facilities")
        >>> [line.split(" (")[0] for line in out.getvalue().splitlines()[1:3]]
        ['  1/2 facilities', '  2/2 facilities']
        """
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < total and now - self._last_s < self.every_s:
            return
        self._last_s = now
        elapsed = now - self._started_s
        left = elapsed / done * (total - done) if done > 0 else math.inf
        eta = f"{left:.0f} s left" if math.isfinite(left) else "estimating"
        pct = 100.0 * done / total if total else 100.0
        self.info(f"  {done}/{total} {unit} ({pct:.0f} %, {eta})".rstrip())


SILENT = Progress(enabled=False)
"""A progress reporter that prints nothing (library default)."""
