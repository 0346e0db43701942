"""/docs and /redoc work without internet: every asset comes from the service itself.

Headless Chromium (Debian's package) with every request to another host aborted; skipped
where Chromium or Playwright is missing (.ci/run installs both).
"""

from __future__ import annotations

import re
import shutil
from urllib.parse import urlparse

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def offline_page(live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    local = urlparse(live_server).netloc
    outside: list[str] = []

    def only_local(route):
        if urlparse(route.request.url).netloc == local:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.route("**/*", only_local)
        page.outside = outside
        yield page
        browser.close()


async def test_docs_pages_name_no_other_host(client):
    for path in ("/docs", "/redoc"):
        html = (await client.get(path)).text
        assert not re.search(r"https?://", html.replace("http://test", "")), html
        for asset in re.findall(r'(?:src|href)="(/docs-assets/[^"]+)"', html):
            assert (await client.get(asset)).status_code == 200, asset
    bundle = (await client.get("/docs-assets/redoc.standalone.js")).text
    assert len(bundle) > 100_000 and "cdn.redoc.ly" not in bundle


def test_swagger_ui_lists_the_operations_offline(offline_page, live_server):
    offline_page.goto(live_server + "/docs")
    offline_page.wait_for_selector(".opblock", timeout=20000)
    text = offline_page.inner_text("body")
    for path in ("/v1/optimize", "/v1/compare", "/v1/sweep", "/v1/jobs/{job_id}"):
        assert path in text
    assert offline_page.outside == []


def test_redoc_lists_the_operations_offline(offline_page, live_server):
    offline_page.goto(live_server + "/redoc")
    offline_page.wait_for_selector("text=\"/v1/optimize\"", timeout=20000)
    assert "Run one optimizer" in offline_page.inner_text("body")
    # ReDoc's bundle would draw a "powered by" logo from its vendor's CDN: the service's copy
    # has an inline empty picture in its place, so the page asks no other host for anything
    assert offline_page.outside == []
