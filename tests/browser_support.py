"""Debian's headless Chromium driven through playwright, for every browser test.

One list of launch flags and one way to find the browser; a test without Chromium or
playwright is skipped with how to install it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """Debian's chromium, or ``None``."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A headless Chromium browser (skips the test when there is none)."""
    exe = chromium_path()
    if exe is None:
        pytest.skip("chromium not found (install it with: bash scripts/system-deps.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
