"""Progress reporting for long steps, on stderr, quiet in tests unless asked."""

from __future__ import annotations

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
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled

    def info(self, message: str) -> None:
        """Print one line."""
        if self.enabled:
            print(message, file=self.stream, flush=True)

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Time a step and print its start and end."""
        start = time.perf_counter()
        self.info(f"… {label}")
        yield
        self.info(f"✓ {label} ({time.perf_counter() - start:.1f} s)")


SILENT = Progress(enabled=False)
"""A progress reporter that prints nothing (library default)."""
