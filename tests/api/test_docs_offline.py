"""``/docs`` works offline: Swagger UI's assets come from the server, not from a CDN.

A real uvicorn serves the app on a loopback port; headless Chromium (Debian's
``chromium``, driven by playwright as in ``tests/test_maps_browser.py``) opens ``/docs``
with every request that does not go to 127.0.0.1 aborted, as on an intranet without
internet access, and must see the API's operations listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from tuoyu_api.app import create_app
from tuoyu_api.docs import STATIC_PATH, assets_dir
from tuoyu_api.settings import get_api_settings

from tests.browser_support import launched_chromium
from tests.live_server import running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = get_api_settings(state_dir=tmp_path_factory.mktemp("docs"), database_url=None)
    with running_server(create_app(settings)) as port:
        yield f"http://127.0.0.1:{port}"


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
    blocked: list[str] = []
    errors: list[str] = []

    def route(handle: Any) -> None:
        url = handle.request.url
        if urlparse(url).hostname == "127.0.0.1":
            handle.continue_()
        else:
            blocked.append(url)
            handle.abort()

    with launched_chromium() as browser:
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.route("**/*", route)
        page.goto(f"{base}/docs", timeout=0)
        page.wait_for_selector(".opblock-summary-path", timeout=0)  # no time limit: load-proof
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        title = page.locator(".info .title").first.inner_text()
    flat = {p.replace("\u200b", "").strip() for p in paths}
    assert "/areas/{area}/nearest" in flat and "/healthz" in flat
    assert "/areas/{area}/facilities" in flat
    assert "托育" in title
    assert errors == []
    assert blocked == []  # nothing was even asked of the internet
