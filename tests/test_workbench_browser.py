"""The scenario workbench page in headless Chromium on a live server (Dongcheng).

A real uvicorn serves the app on a loopback port (``tests/live_server.py``); Debian's
Chromium (playwright) opens ``/areas/beijing-dongcheng/workbench`` with every request
that leaves 127.0.0.1 aborted and recorded (only basemap tiles may try; the page's
scripts and styles are inline). The test clicks the map to add a planned facility and
checks that the 街道 table and the gap layer (residents outside the circle, before and
after, and the zones drawn) change by exactly what ``POST /scenarios?gaps=true`` reports
for that point (and that its "before" is the current ``/units``); clicks inside a gap zone
(the click goes through the zone to the map), removes that facility from the table, drags
the first one, adds one on the 高德 (GCJ-02) basemap and removes it, saves the scenario
with a token, reloads the page, finds and loads the scenario, compares it, and exports
it as CSV, XLSX and the read-only HTML page, which it opens from ``file://`` (no server)
to find the table, the planned isochrone and the gap zones drawn; a scenario whose name
is a ``<script>`` is exported too and nothing of it runs.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import openpyxl
import pytest
from shapely.geometry import shape
from tuoyu.config.settings import Settings
from tuoyu_api.app import create_app
from tuoyu_api.settings import get_api_settings
from tuoyu_api.tokens import create_token

from tests.browser_support import launched_chromium
from tests.live_server import running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).parent / "_artifacts"
AREA = "beijing-dongcheng"
WAIT_MS = 180_000
TILE_HOSTS = ("tile.openstreetmap.org", "autonavi.com", "tianditu.gov.cn")
EAST = (39.9200, 116.4100)  # lat, lon (WGS84) in 东华门街道
NORTH = (39.9330, 116.4180)  # in 北新桥街道


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings
) -> Iterator[tuple[str, str]]:
    """The live server's base URL and a planner's token."""
    tmp = tmp_path_factory.mktemp("workbench")
    api_settings = get_api_settings(
        data_dir=settings.data_dir,
        cache_dir=settings.cache_dir,
        state_dir=tmp / "state",
        database_url=f"sqlite:///{tmp / 'registry.sqlite'}",
        # The page and the test's own reference calls share one client address.
        expensive_burst=500,
        preload_areas=[AREA],
    )
    app = create_app(api_settings)
    with running_server(app) as port:
        with app.state.tuoyu.database.session() as session:
            token = create_token(session, "planner")
        yield f"http://127.0.0.1:{port}", token


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as b:
        yield b


def js_round(value: float) -> int:
    """JavaScript's Math.round (halves up)."""
    return math.floor(value + 0.5)


def signed(value: float | None) -> str:
    """The page's signed whole number (``+1,234``, ``−5``, ``0``, ``—``)."""
    if value is None:
        return "—"
    r = js_round(value)
    if r == 0:
        return "0"
    return ("+" if r > 0 else "−") + f"{abs(r):,}"


class Workbench:
    """The page in Chromium; requests outside 127.0.0.1 aborted and recorded."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1500, "height": 950}, accept_downloads=True)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)
        self.page.route("**/*", self._route)
        self.page.goto(f"{base}/areas/{AREA}/workbench", timeout=WAIT_MS)
        self.wait_ready()

    def _console(self, message: Any) -> None:
        # Aborted tile requests log "Failed to load resource"; anything else is a fault.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(str(message.text))

    def _route(self, route: Any) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def state(self, expression: str) -> Any:
        return self.page.evaluate(f"() => window.tuoyuWorkbench.{expression}")

    def wait_ready(self) -> None:
        self.page.wait_for_function(
            "() => window.tuoyuWorkbench && window.tuoyuWorkbench.ready", timeout=WAIT_MS
        )

    def wait_evaluated(self, count: int) -> None:
        self.page.wait_for_function(
            "n => window.tuoyuWorkbench.evaluations >= n && !window.tuoyuWorkbench.busy",
            arg=count,
            timeout=WAIT_MS,
        )
        assert self.state("error") is None, self.page.inner_text("#status")

    def screen_point(self, lat: float, lon: float) -> tuple[float, float]:
        """Page coordinates of a position (in the datum of the basemap shown)."""
        x, y = self.page.evaluate(
            "([lat, lon]) => { const p = window.tuoyuWorkbench.map.latLngToContainerPoint([lat, lon]);"
            " return [p.x, p.y]; }",
            [lat, lon],
        )
        box = self.page.locator("#map").bounding_box()
        return box["x"] + x, box["y"] + y

    def click_map(self, lat: float, lon: float) -> None:
        x, y = self.screen_point(lat, lon)
        self.page.mouse.click(x, y)

    def table(self) -> dict[str, dict[str, Any]]:
        """The 街道 table: code → the cells' values and texts."""
        rows = self.page.eval_on_selector_all(
            "#changes tbody tr",
            """rows => rows.map(r => ({
                code: r.dataset.code,
                name: r.cells[0].textContent,
                after: r.querySelector('.covered-after').dataset.value,
                change: r.querySelector('.covered-change').dataset.value,
                changeText: r.querySelector('.covered-change').textContent,
                u3: r.querySelector('.under3-change').dataset.value,
                pp: r.querySelector('.coverage-pp').dataset.value,
            }))""",
        )
        return {r["code"]: r for r in rows}


def _number(text: str) -> float | None:
    return float(text) if text != "" else None


def _api_scenario(base: str, planned: list[dict[str, Any]], removed: list[str]) -> Any:
    body = {
        "add": [
            {k: p[k] for k in ("name", "kind", "puhui", "slots", "lon", "lat", "crs")}
            for p in planned
        ],
        "remove": removed,
    }
    response = httpx.post(f"{base}/areas/{AREA}/scenarios?gaps=true", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def _assert_gaps_match(bench: Workbench, api: Any) -> None:
    """The gap layer drawn and the residents outside the circle are the API's."""
    gaps = api["gaps"]
    shown = bench.state("result.gaps")
    assert shown["residents_outside"] == gaps["residents_outside"]
    assert shown["residents_outside_before"] == gaps["residents_outside_before"]
    assert [f["properties"]["gap_id"] for f in shown["features"]] == [
        f["properties"]["gap_id"] for f in gaps["features"]
    ]
    assert bench.state("gapsDrawn") == len(gaps["features"])
    assert bench.page.locator(".leaflet-wbGaps-pane path").count() == len(gaps["features"])
    outside = bench.page.locator("#gaps-outside")
    assert outside.inner_text() == signed(gaps["residents_outside_change"])
    assert _number(outside.get_attribute("data-value") or "") == gaps["residents_outside_change"]
    # Residents outside drop by what the district gains.
    assert gaps["residents_outside_change"] == pytest.approx(
        -api["district"]["covered_change"], abs=1.0
    )


def _assert_table_matches(bench: Workbench, api: Any, before: dict[str, float]) -> None:
    """Every 街道 row shows the API's after and change, and after − change = now; the
    gap layer is the API's."""
    _assert_gaps_match(bench, api)
    table = bench.table()
    changes = {c["code"]: c for c in api["changes"]}
    assert set(table) == {*changes, "district"}
    for code, c in changes.items():
        row = table[code]
        assert row["name"] == c["name"]
        assert _number(row["change"]) == c["covered_change"]
        assert _number(row["after"]) == c["covered_after"]
        assert _number(row["u3"]) == c["under3_covered_change"]
        assert _number(row["pp"]) == c["coverage_pp"]
        assert row["changeText"] == signed(c["covered_change"])
        # The table's "before" is the area as it is now (GET /units).
        assert c["covered_after"] - c["covered_change"] == pytest.approx(before[code], abs=0.11)
    assert _number(table["district"]["change"]) == api["district"]["covered_change"]


def test_workbench_add_move_save_reload_export(
    browser: Any, served: tuple[str, str], tmp_path: Path
) -> None:
    base, token = served
    before = {
        u["code"]: u["covered_population"]
        for u in httpx.get(f"{base}/areas/{AREA}/units", timeout=120).json()["units"]
    }
    gaps_now = httpx.get(f"{base}/areas/{AREA}/workbench/gaps", timeout=120).json()
    bench = Workbench(browser, base)
    page = bench.page
    try:
        assert bench.state("facilities.length") == 64
        assert bench.state("units.features.length") == 17
        assert "WGS84" in page.inner_text("#datum") and "OpenStreetMap" in page.inner_text("#datum")
        # The gap zones as they are now, with their legend (units and merge distance).
        assert bench.state("gapsDrawn") == gaps_now["shown"] > 10
        assert page.locator(".leaflet-wbGaps-pane path").count() == gaps_now["shown"]
        now_cell = page.locator("#gaps-outside-now")
        assert _number(now_cell.get_attribute("data-value") or "") == gaps_now["residents_outside"]
        legend = page.inner_text("#gap-legend")
        assert "每片居民（人）" in legend and "residents per zone" in legend
        assert "150 米" in legend and "150 m" in legend

        # 1. Click the map: one planned facility, the table changes as the API says.
        page.select_option("#kind", "综合托育服务中心")
        page.fill("#slots", "80")
        bench.click_map(*EAST)
        bench.wait_evaluated(1)
        planned = bench.state("planned")
        assert len(planned) == 1
        p = planned[0]
        assert p["crs"] == "wgs84" and p["kind"] == "综合托育服务中心" and p["slots"] == 80
        assert p["puhui"] is True
        # The click landed where we aimed (one pixel is a few metres at this zoom).
        assert abs(p["lat"] - EAST[0]) < 3e-4 and abs(p["lon"] - EAST[1]) < 3e-4
        api = _api_scenario(base, planned, [])
        _assert_table_matches(bench, api, before)
        gained = [c for c in api["changes"] if c["covered_change"] > 0]
        assert gained, "a planned facility in 东华门 brings people into the circle"
        assert bench.state("result.isochrones.features.length") == 1
        iso_paths = page.locator(".leaflet-overlay-pane path[fill='#ffcc80']")
        assert iso_paths.count() == 1
        district = page.locator("#district-covered")
        assert district.inner_text() == signed(api["district"]["covered_change"])
        outside_one = api["gaps"]["residents_outside"]

        # 1b. A click inside a gap zone goes through the zone to the map: a second planned
        #     facility, fewer residents outside; then the table's button removes it.
        zone = next(f for f in gaps_now["features"] if shape(f["geometry"]).centroid.within(
            shape(f["geometry"])) and f["properties"]["population"] > 2000)  # fmt: skip
        centre = shape(zone["geometry"]).centroid
        bench.click_map(centre.y, centre.x)
        bench.wait_evaluated(2)
        two = bench.state("planned")
        assert len(two) == 2
        api = _api_scenario(base, two, [])
        _assert_table_matches(bench, api, before)
        assert api["gaps"]["residents_outside"] < outside_one - 500
        page.locator(f"#planned tbody tr[data-key='{two[1]['key']}'] button").click()
        bench.wait_evaluated(3)
        assert len(bench.state("planned")) == 1
        api = _api_scenario(base, bench.state("planned"), [])
        _assert_table_matches(bench, api, before)
        assert api["gaps"]["residents_outside"] == outside_one

        # 2. Drag it ~100 px east: it moves and the table follows.
        x, y = bench.screen_point(p["lat"], p["lon"])
        page.mouse.move(x, y)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(x + 10 * step, y + 3 * step)
        page.mouse.up()
        bench.wait_evaluated(4)
        moved = bench.state("planned")
        assert moved[0]["lon"] > p["lon"] + 5e-4
        api = _api_scenario(base, moved, [])
        _assert_table_matches(bench, api, before)

        # 3. On the 高德 basemap clicks are recorded in GCJ-02 (and said so); the
        #    server converts them; the popup removes the planned facility again.
        page.locator(".leaflet-control-layers-base label", has_text="高德").click()
        page.wait_for_function("() => window.tuoyuWorkbench.datum === 'gcj02'")
        assert "GCJ-02" in page.inner_text("#datum") and "crs=gcj02" in page.inner_text("#datum")
        lon, lat = page.evaluate(
            "([lon, lat]) => window.tuoyu.toGcj(lon, lat)", [NORTH[1], NORTH[0]]
        )
        bench.click_map(lat, lon)
        bench.wait_evaluated(5)
        two = bench.state("planned")
        assert [q["crs"] for q in two] == ["wgs84", "gcj02"]
        api = _api_scenario(base, two, [])
        _assert_table_matches(bench, api, before)
        assert api["added_records"][1]["lon"] == pytest.approx(NORTH[1], abs=3e-4)
        assert api["added_records"][1]["lat"] == pytest.approx(NORTH[0], abs=3e-4)
        x, y = bench.screen_point(lat, lon)
        page.mouse.click(x, y)  # the planned marker: its popup
        page.locator(".leaflet-popup button.wb-remove").click()
        bench.wait_evaluated(6)
        assert len(bench.state("planned")) == 1
        api = _api_scenario(base, bench.state("planned"), [])
        _assert_table_matches(bench, api, before)
        page.locator(".leaflet-control-layers-base label", has_text="OpenStreetMap").click()
        page.wait_for_function("() => window.tuoyuWorkbench.datum === 'wgs84'")

        # 4. Save (token), reload the page, find and load the scenario.
        page.fill("#name", "浏览器方案 东华门综合中心")
        page.fill("#note", "=1+1 备注")
        page.fill("#token", token)
        page.click("#save")
        page.wait_for_function(
            "() => document.getElementById('status').textContent.startsWith('已保存')",
            timeout=WAIT_MS,
        )
        saved_id = bench.state("lastSaved.id")
        saved_planned = bench.state("planned")
        page.reload(timeout=WAIT_MS)
        bench.wait_ready()
        assert bench.state("planned.length") == 0
        row = page.locator(f"#saved tbody tr[data-id='{saved_id}']")
        assert row.locator(".saved-name").inner_text() == "浏览器方案 东华门综合中心"
        assert "planner" in row.inner_text()
        row.locator("button.load").click()
        bench.wait_evaluated(1)
        loaded = bench.state("planned")
        assert [(q["lon"], q["lat"], q["crs"], q["kind"], q["slots"]) for q in loaded] == [
            (q["lon"], q["lat"], q["crs"], q["kind"], q["slots"]) for q in saved_planned
        ]
        api = _api_scenario(base, loaded, [])
        _assert_table_matches(bench, api, before)
        assert page.input_value("#name") == "浏览器方案 东华门综合中心"

        # 5. Compare it with a second scenario saved through the API.
        second = httpx.post(
            f"{base}/areas/{AREA}/saved-scenarios",
            json={"name": "对照方案 北新桥", "add": [
                {"kind": "社区托育点", "puhui": True, "slots": 40, "lon": NORTH[1], "lat": NORTH[0]}
            ]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )  # fmt: skip
        assert second.status_code == 201, second.text
        page.reload(timeout=WAIT_MS)
        bench.wait_ready()
        page.select_option("#cmp-a", str(saved_id))
        page.select_option("#cmp-b", str(second.json()["id"]))
        page.click("#compare")
        page.wait_for_function("() => window.tuoyuWorkbench.comparison", timeout=WAIT_MS)
        assert page.locator("#comparison tbody tr").count() == 18
        header = page.inner_text("#comparison thead")
        assert "浏览器方案 东华门综合中心" in header and "对照方案 北新桥" in header

        # 6. Export: the CSV and the XLSX of the saved scenario.
        row = page.locator(f"#saved tbody tr[data-id='{saved_id}']")
        with page.expect_download(timeout=WAIT_MS) as download:
            row.locator("a.export-csv").click()
        text = Path(download.value.path()).read_text("utf-8-sig")
        assert download.value.suggested_filename == f"{AREA}-scenario-{saved_id}.csv"
        rows = list(csv.reader(io.StringIO(text)))
        assert len(rows) == 19 and rows[1][0] == "浏览器方案 东华门综合中心"
        change_col = rows[0].index("覆盖居民变化（人） / Change in residents covered")
        by_code = {c["code"]: c["covered_change"] for c in api["changes"]}
        for r in rows[1:-1]:
            assert float(r[change_col]) == pytest.approx(by_code[r[1]])
        with page.expect_download(timeout=WAIT_MS) as download:
            row.locator("a.export-xlsx").click()
        assert download.value.suggested_filename == f"{AREA}-scenario-{saved_id}.xlsx"
        book = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
        about = {r[0].value: r[1].value for r in book["说明"].iter_rows()}
        assert about["备注 / Note"] == "'=1+1 备注"
        assert book["新增机构"]["C2"].value == "综合托育服务中心"

        # 7. The read-only page: downloaded from the list, opened from file:// alone.
        with page.expect_download(timeout=WAIT_MS) as download:
            row.locator("a.export-html").click()
        assert download.value.suggested_filename == f"{AREA}-scenario-{saved_id}.html"
        exported = tmp_path / download.value.suggested_filename
        download.value.save_as(exported)
        saved = httpx.get(f"{base}/areas/{AREA}/saved-scenarios/{saved_id}", timeout=120).json()
        view = ReadOnlyView(browser, exported)
        try:
            view_page = view.page
            rows = view_page.locator("#changes tbody tr")
            assert rows.count() == 18
            for change in saved["changes"]:
                cell = view_page.locator(
                    f"#changes tr[data-code='{change['code']}'] .covered-change"
                )
                assert cell.inner_text() == signed(change["covered_change"])
            district_cell = view_page.locator("#changes tr[data-code='district'] .covered-change")
            assert district_cell.inner_text() == signed(saved["district"]["covered_change"])
            assert view_page.inner_text("#meta-name") == "浏览器方案 东华门综合中心"
            assert view_page.inner_text("#meta-author") == "planner"
            # The planned isochrone, the planned facility and the gap zones are drawn.
            drawn = view.state("drawn")
            data = json.loads(view_page.inner_text("#wb-export-data"))
            assert drawn["isochrones"] == 1 and drawn["planned"] == 1
            assert drawn["gaps"] == data["gaps"]["shown"] > 10 and drawn["existing"] == 64
            assert view_page.locator(".leaflet-overlay-pane path[fill='#ffcc80']").count() == 1
            assert view_page.locator(".leaflet-wbGaps-pane path").count() == drawn["gaps"]
            assert view_page.locator(".wb-planned-icon").count() == 1
            # Read-only: nothing to type into or press beside the map's own controls, and a
            # click on the map adds nothing.
            assert view_page.locator("#side :is(input, button, select, textarea)").count() == 0
            box = view_page.locator("#map").bounding_box()
            view_page.mouse.click(box["x"] + box["width"] / 3, box["y"] + box["height"] / 2)
            assert view_page.locator(".wb-planned-icon").count() == 1
            assert "150" in view_page.inner_text("#legend")
            view_page.screenshot(path="/tmp/workbench_export.png")
            ARTIFACTS.mkdir(exist_ok=True)
            view_page.screenshot(path=str(ARTIFACTS / "workbench_export.png"))
            view.assert_clean()
        finally:
            view.page.close()

        # 8. A name that is a script: exported, opened, shown as text, never run.
        hostile = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
        made = httpx.post(
            f"{base}/areas/{AREA}/saved-scenarios",
            json={"name": hostile, "note": "</script><script>window.__pwned=3</script>",
                  "add": [{"name": "<b onmouseover=alert(1)>点</b>", "kind": "社区托育点",
                           "puhui": True, "slots": 40, "lon": EAST[1], "lat": EAST[0]}]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )  # fmt: skip
        assert made.status_code == 201, made.text
        html = httpx.get(
            f"{base}/areas/{AREA}/saved-scenarios/{made.json()['id']}/export",
            params={"format": "html"},
            timeout=120,
        )
        assert html.status_code == 200
        hostile_file = tmp_path / "hostile.html"
        hostile_file.write_bytes(html.content)
        view = ReadOnlyView(browser, hostile_file)
        try:
            assert view.page.evaluate("() => window.__pwned") is None
            assert view.page.inner_text("#title-name") == hostile
            assert view.page.inner_text("#meta-name") == hostile
            assert view.page.locator("#side img, #side b").count() == 0
            assert view.page.locator(".leaflet-marker-pane img").count() == 0
            view.assert_clean()
        finally:
            view.page.close()

        ARTIFACTS.mkdir(exist_ok=True)
        row.locator("button.load").click()
        bench.wait_evaluated(1)
        page.screenshot(path=str(ARTIFACTS / "workbench.png"))
        assert bench.errors == []
        # Nothing but basemap tiles ever asked for the internet (no CDN).
        hosts = {urlparse(u).hostname or "" for u in bench.outside}
        assert all(h.endswith(TILE_HOSTS) for h in hosts), hosts
    finally:
        page.close()


class ReadOnlyView:
    """An exported page opened from a file; every request that is not for the file
    itself (basemap tiles) aborted and recorded."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1500, "height": 950})
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)
        self.page.route("**/*", self._route)
        self.page.goto(path.resolve().as_uri(), timeout=WAIT_MS)
        self.page.wait_for_function(
            "() => window.tuoyuScenarioView && window.tuoyuScenarioView.ready", timeout=WAIT_MS
        )

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(str(message.text))

    def _route(self, route: Any) -> None:
        if urlparse(route.request.url).scheme in ("file", "data"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def state(self, expression: str) -> Any:
        return self.page.evaluate(f"() => window.tuoyuScenarioView.{expression}")

    def assert_clean(self) -> None:
        assert self.state("error") is None
        assert self.errors == []
        hosts = {urlparse(u).hostname or "" for u in self.outside}
        assert all(h.endswith(TILE_HOSTS) for h in hosts), hosts
