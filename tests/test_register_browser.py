"""The clerk page of the 备案 register in headless Chromium (Debian ``chromium``, playwright).

The page is served by the real app through a ``TestClient``: every request of the page to
``http://tuoyu.test`` is answered by the app, any other request is aborted and recorded
(the page must load nothing from outside). Checked: the public list shows exactly the
disclosed fields and none of the filing's internal data; with a token the clerk sees the
filings with due dates, the overdue one highlighted, and a transition button works.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from tuoyu.register.disclosure import PUBLIC_FIELDS
from tuoyu.register.filings import REQUIRED_DOCUMENTS
from tuoyu_api.app import create_app
from tuoyu_api.deps import set_area_polygon
from tuoyu_api.routers import register
from tuoyu_api.settings import get_api_settings
from tuoyu_api.tokens import create_token

from tests.browser_support import launched_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).parent / "_artifacts"
AREA = "chongqing-yuzhong"
HOST = "tuoyu.test"
PAGE = f"http://{HOST}/areas/{AREA}/register/clerk"
SECRETS = ("张三", "13800000000", "YZ-TY-0001", "F-2025-001", "500103", "民办", "37")
RECORD: dict[str, Any] = {
    "id": "YZ-TY-0001", "name": "解放碑托育园", "address": "解放碑路1号", "jiedao": "解放碑街道",
    "district_code": "500103", "lon": 106.5786, "lat": 29.5583, "crs": "wgs84",
    "kind": "社区托育点", "puhui": True, "ownership": "民办", "slots_infant": 5,
    "slots_toddler": 20, "slots_preschool": 15, "enrolled": 37, "service_modes": "全日托",
}  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as b:
        yield b


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    """The app with the register router and two filings; yields the client and a token."""
    settings = get_api_settings(
        state_dir=tmp_path / "state", cache_dir=tmp_path / "cache",
        database_url=f"sqlite:///{tmp_path / 'registry.sqlite'}",
    )  # fmt: skip
    app = create_app(settings)
    app.include_router(register.router)
    set_area_polygon(app, AREA, None)
    with TestClient(app) as client:
        with app.state.tuoyu.database.session() as session:
            token = create_token(session, "clerk")
        auth = {"Authorization": f"Bearer {token}"}
        base = f"/areas/{AREA}/register"

        def post(path: str, body: dict[str, Any]) -> None:
            r = client.post(base + path, json=body, headers=auth)
            assert r.status_code in (200, 201), r.text

        post("/filings", {"filing_id": "F-2025-001", "record": RECORD, "on": "2025-01-24",
                          "documents": list(REQUIRED_DOCUMENTS),
                          "note": "联系人张三 13800000000"})  # fmt: skip
        post("/filings/F-2025-001/transitions", {"action": "issue_receipt", "on": "2025-02-05",
                                                 "number": "渝中卫托备〔2025〕1号"})  # fmt: skip
        post("/filings/F-2025-001/transitions", {"action": "register", "on": "2025-02-06"})
        late = {**RECORD, "id": "YZ-TY-0002", "name": "较场口托育点"}
        post("/filings", {"filing_id": "F-2025-002", "record": late, "on": "2025-01-24"})
        yield client, token


class ClerkPage:
    """The clerk page in Chromium, its requests answered by the app."""

    def __init__(self, browser: Any, client: TestClient) -> None:
        self.client = client
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.route("**/*", self._route)
        self.page.goto(PAGE)
        self.wait()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(str(message.text))

    def _route(self, route: Any) -> None:
        request = route.request
        url = urlparse(request.url)
        if url.hostname != HOST:
            self.outside.append(request.url)
            route.abort()
            return
        path = url.path + (f"?{url.query}" if url.query else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() in
                   ("authorization", "content-type")}  # fmt: skip
        r = self.client.request(
            request.method, path, headers=headers, content=request.post_data_buffer
        )
        route.fulfill(
            status=r.status_code,
            headers={"content-type": r.headers.get("content-type", "text/plain")},
            body=r.content,
        )

    def wait(self) -> None:
        self.page.wait_for_function("() => window.tuoyuClerk && window.tuoyuClerk.ready")

    def refresh(self) -> None:
        self.page.evaluate("() => { window.tuoyuClerk.ready = false; }")
        self.page.click("#refresh")
        self.wait()

    def texts(self, selector: str) -> list[str]:
        return [str(t) for t in self.page.locator(selector).all_inner_texts()]


def test_public_list_shows_only_disclosed_fields(
    browser: Any, served: tuple[TestClient, str]
) -> None:
    client, _token = served
    clerk = ClerkPage(browser, client)
    try:
        assert clerk.texts("#public thead th") == list(PUBLIC_FIELDS.values())
        fields = clerk.page.eval_on_selector_all(
            "#public thead th", "els => els.map(e => e.dataset.field)"
        )
        assert fields == list(PUBLIC_FIELDS)
        rows = clerk.texts("#public tbody tr")
        assert len(rows) == 1  # the registered facility only, not the pending filing
        cells = clerk.texts("#public tbody td")
        assert cells[0] == "解放碑托育园" and "渝中卫托备〔2025〕1号" in cells
        assert "6–36个月" in cells and "是" in cells
        public_text = clerk.page.inner_text("#public")
        for secret in (*SECRETS, *REQUIRED_DOCUMENTS, "较场口托育点"):
            assert secret not in public_text, secret
        assert clerk.texts("#filings tbody tr") == []  # no token, no filings
        assert clerk.outside == [] and clerk.errors == []
        ARTIFACTS.mkdir(exist_ok=True)
        clerk.page.screenshot(path=str(ARTIFACTS / "register_public.png"), full_page=True)
    finally:
        clerk.page.close()


def test_clerk_sees_due_dates_overdue_and_moves_a_filing(
    browser: Any, served: tuple[TestClient, str]
) -> None:
    client, token = served
    clerk = ClerkPage(browser, client)
    try:
        clerk.page.fill("#token", token)
        clerk.page.fill("#on", "2025-02-10")
        clerk.refresh()
        rows = clerk.page.locator("#filings tbody tr")
        assert rows.count() == 2
        # F-2025-002 submitted 2025-01-24: 回执 due 2025-02-07, overdue on 2-10
        late = clerk.page.locator("#filings tbody tr.overdue")
        assert late.count() == 1
        late_cells = [str(t) for t in late.locator("td").all_inner_texts()]
        assert late_cells[1] == "较场口托育点" and late_cells[4] == "2025-02-07"
        assert late_cells[5] == "2025-02-20"
        assert clerk.texts("#overdue tbody td")[:4] == [
            "F-2025-002", "较场口托育点", "备案回执", "2025-02-07",
        ]  # fmt: skip
        late.locator("button[data-action='issue_receipt']").click()
        clerk.page.wait_for_function(
            "() => document.getElementById('status').textContent.startsWith('已办理')"
        )
        clerk.wait()
        assert clerk.page.locator("#filings tbody tr.overdue").count() == 0
        assert clerk.texts("#overdue tbody tr") == []
        assert clerk.outside == [] and clerk.errors == []
        ARTIFACTS.mkdir(exist_ok=True)
        clerk.page.screenshot(path=str(ARTIFACTS / "register_clerk.png"), full_page=True)
    finally:
        clerk.page.close()
