"""``/docs`` works offline: Swagger UI's assets come from the server, not from a CDN.

A real uvicorn serves the app on a loopback port; headless Chromium (Debian's
``chromium``, driven by playwright as in ``tests/test_maps_browser.py``) opens ``/docs``
with every request that does not go to 127.0.0.1 aborted, as on an intranet without
internet access, and must see the API's operations listed.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import uvicorn
from tuoyu_api.app import create_app
from tuoyu_api.docs import STATIC_PATH, assets_dir
from tuoyu_api.settings import get_api_settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chromium() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = get_api_settings(state_dir=tmp_path_factory.mktemp("docs"), database_url=None)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_docs_page_names_only_local_assets(base: str) -> None:
    assert assets_dir() is not None, "fastapi-offline (Swagger UI assets) is not installed"
    html = httpx.get(f"{base}/docs", timeout=30).text
    assert f"{STATIC_PATH}/swagger-ui-bundle.js" in html
    assert "cdn.jsdelivr.net" not in html and "fastapi.tiangolo.com" not in html
    js = httpx.get(f"{base}{STATIC_PATH}/swagger-ui-bundle.js", timeout=30)
    assert js.status_code == 200 and len(js.content) > 100_000
    redoc = httpx.get(f"{base}/redoc", timeout=30).text
    assert f"{STATIC_PATH}/redoc.standalone.js" in redoc and "fonts.googleapis" not in redoc


def test_docs_render_operations_without_internet(base: str) -> None:
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium not found (install it with: bash scripts/system-deps.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    blocked: list[str] = []
    errors: list[str] = []

    def route(handle: Any) -> None:
        url = handle.request.url
        if urlparse(url).hostname == "127.0.0.1":
            handle.continue_()
        else:
            blocked.append(url)
            handle.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.route("**/*", route)
            page.goto(f"{base}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=60_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            title = page.locator(".info .title").first.inner_text()
        finally:
            browser.close()
    flat = {p.replace("\u200b", "").strip() for p in paths}
    assert "/areas/{area}/nearest" in flat and "/healthz" in flat
    assert "/areas/{area}/facilities" in flat
    assert "托育" in title
    assert errors == []
    assert blocked == []  # nothing was even asked of the internet
