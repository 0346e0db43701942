"""The playground in headless Chromium (Debian's package) against a real server on 127.0.0.1.

Skipped where Chromium or Playwright is missing; .ci/run installs both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(live_server, tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.console_errors = []
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        page.on("pageerror", lambda e: page.console_errors.append(str(e)))
        page.goto(live_server + "/")
        yield page
        browser.close()


def contour_pixels(page) -> dict:
    return page.evaluate("""() => {
        const c = document.getElementById('contour');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let coloured = 0, red = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (d[i + 3] > 0) coloured++;
            // the momentum path: Okabe & Ito's vermillion, #D55E00
            if (Math.abs(d[i] - 213) < 20 && Math.abs(d[i + 1] - 94) < 20 && d[i + 2] < 40) red++;
        }
        return {coloured, red, total: d.length / 4};
    }""")


def test_default_example_runs_and_draws_paths(page):
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    pixels = contour_pixels(page)
    # equal aspect: the ravine's 20 × 5 box fills the width and a quarter of the height
    assert 0.25 * pixels["total"] < pixels["coloured"] < 0.6 * pixels["total"]
    assert pixels["red"] > 50
    rows = page.locator("#table tbody tr")
    assert rows.count() == 3
    assert "momentum" in rows.nth(1).inner_text()
    assert page.locator("#findings li").count() >= 3
    assert "zig-zags" in page.locator("#findings").inner_text().lower()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)
    assert page.console_errors == []


def test_invalid_expression_shows_its_error_at_the_column(page):
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    page.select_option("#lossKind", "expression")
    page.fill("#expression", "x^2 + foo(y)")
    page.dispatch_event("#expression", "change")
    error = page.locator("#error")
    error.wait_for(state="visible")
    page.wait_for_function("() => document.getElementById('error').textContent.includes('foo')")
    lines = error.inner_text().split("\n")
    assert lines[0] == "x^2 + foo(y)" and lines[1] == " " * 6 + "^"
    assert "Unknown function 'foo'" in lines[2]
    # Chromium logs the expected 400 answer itself; nothing else may fail
    assert [e for e in page.console_errors if "status of 400" not in e] == []


def test_slider_change_reruns_and_the_url_keeps_the_state(page):
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    before = page.locator("#table tbody tr").nth(0).inner_text()
    slider = page.locator('input[type=range][data-rule="sgd"][data-hp="lr"]')
    slider.evaluate("(s) => { s.value = '-3'; s.dispatchEvent(new Event('input')); }")
    page.wait_for_function(
        "(b) => document.querySelector('#table tbody tr').innerText !== b", arg=before,
        timeout=20000)
    state = json.loads(unquote(page.evaluate("location.hash")[1:]))
    sgd = next(o for o in state["optimizers"] if o["name"] == "sgd")
    assert sgd["lr"] == pytest.approx(0.001)
    # the shared URL reproduces the state in a fresh page
    url = page.url
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    value = page.locator('input[type=range][data-rule="sgd"][data-hp="lr"]').input_value()
    assert float(value) == pytest.approx(-3)


def test_any_lr_can_be_typed_and_is_sent_exactly(page):
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    page.evaluate("delete document.body.dataset.drawn")
    field = page.locator('input.hp-value[data-rule="sgd"][data-hp="lr"]')
    field.fill("0.0196")
    field.dispatch_event("input")
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    state = json.loads(unquote(page.evaluate("location.hash")[1:]))
    assert next(o for o in state["optimizers"] if o["name"] == "sgd")["lr"] == 0.0196
    slider = page.locator('input[type=range][data-rule="sgd"][data-hp="lr"]').input_value()
    assert 10 ** float(slider) == pytest.approx(0.0196, rel=1e-6)  # the slider follows
    assert "0.0196" in page.locator("#findings").inner_text()


def test_clicking_the_contour_moves_the_start(page):
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    page.evaluate("delete document.body.dataset.drawn")
    box = page.locator("#contour").bounding_box()
    plotted = page.evaluate("() => { const c = document.getElementById('contour'); "
                            "return {...plotBox(c), width: c.width, height: c.height}; }")
    sx, sy = box["width"] / plotted["width"], box["height"] / plotted["height"]
    # equal aspect: the plotted box is centred; click at 3/4 of its width, 1/4 of its height
    page.mouse.click(box["x"] + (plotted["left"] + 0.75 * plotted["w"]) * sx,
                     box["y"] + (plotted["top"] + 0.25 * plotted["h"]) * sy)
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    x, y = map(float, page.locator("#startText").inner_text().strip("()").split(","))
    # the ravine's domain is [-10, 10] × [-2.5, 2.5]
    assert x == pytest.approx(5, abs=0.2) and y == pytest.approx(1.25, abs=0.1)


def test_switching_to_an_expression_keeps_the_start_in_view(page):
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    page.evaluate("delete document.body.dataset.drawn")
    page.select_option("#lossKind", "expression")  # Rosenbrock in [-2, 2] × [-1, 3]
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    x, y = map(float, page.locator("#startText").inner_text().strip("()").split(","))
    assert -2 <= x <= 2 and -1 <= y <= 3
    assert page.locator("#table tbody tr").count() == 3
    assert page.console_errors == []


def test_with_keys_on_the_page_asks_for_a_key_and_keeps_it_in_the_tab(tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    import secrets

    from tests.conftest import start_server

    admin = secrets.token_urlsafe(32)
    (tmp_path / "admin-key").write_text(admin)
    proc, url = start_server({"OPTIM_AUTH": "api_key",
                              "OPTIM_BOOTSTRAP_ADMIN_KEY_FILE": str(tmp_path / "admin-key")})
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(url + "/")
            page.wait_for_selector("#keyForm:not([hidden])", timeout=20000)
            assert "key" in page.locator("#error").inner_text().lower()  # the 401's detail
            page.fill("#apiKey", admin)
            page.click("#keyForm button")
            page.wait_for_function("() => document.body?.dataset.drawn === '3'",
                                   timeout=20000)
            assert page.locator("#keyForm").is_hidden()
            assert page.evaluate("sessionStorage.getItem('optim-api-key')") == admin
            assert admin not in page.url
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_scrubber_moves_every_path_and_curve_together(page):
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    picture = "() => document.getElementById('%s').toDataURL()"
    full = {name: page.evaluate(picture % name) for name in ("contour", "losses")}
    page.locator("#scrub").evaluate(
        "(s) => { s.value = '100'; s.dispatchEvent(new Event('input')); }")
    for name in ("contour", "losses"):  # both pictures changed, together
        assert page.evaluate(picture % name) != full[name], name
    shown = page.evaluate("() => answer.runs.map((r) => [shownCount(r, shownFraction * "
                          "lastStep()), r.trajectory.step.length])")
    assert all(count < length for count, length in shown[1:])  # a tenth of the way
    assert page.locator("#scrubText").inner_text().startswith("step 50 of 500")
    assert page.locator("#play").inner_text() == "Play"
    page.click("#stepOn")
    assert page.locator("#scrubText").inner_text() != "step 50 of 500"


def test_a_lesson_preset_and_the_theory_at_the_start(page):
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    page.wait_for_function("() => document.getElementById('theory').dataset.limit")
    assert float(page.locator("#theory").get_attribute("data-limit")) == pytest.approx(0.02)
    assert "2/λmax = 0.02" in page.locator("#theory").inner_text()
    page.evaluate("delete document.body.dataset.drawn")
    page.select_option("#preset", "ramp")
    page.wait_for_function("() => document.body?.dataset.drawn === '2'", timeout=20000)
    state = json.loads(unquote(page.evaluate("() => location.hash")[1:]))
    momentum = next(o for o in state["optimizers"] if o["name"] == "momentum")
    assert momentum["momentum_schedule"] == {"start": 0.5, "end": 0.9, "steps": 50}
    labels = page.locator("#table tbody").inner_text()
    assert "momentum" in labels and "sgd" in labels


def test_each_rule_has_its_own_colour_and_the_run_button_is_in_view(page):
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    colours = page.evaluate("() => catalog.optimizers.map((o) => colourOf(o.name))")
    assert len(set(colours)) == len(colours)
    page.set_viewport_size({"width": 1366, "height": 768})
    for selector in ("#run", "#contour"):
        top = page.locator(selector).bounding_box()["y"]
        assert top < 768, selector


def test_exports_download_the_services_pictures(page):
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    with page.expect_download() as download:
        page.click("button.export[data-format=svg]")
    path = download.value.path()
    assert Path(path).read_text().lstrip().startswith("<?xml")
    page.click("#rateButton")
    page.wait_for_function("() => !document.getElementById('rateMap').hidden", timeout=20000)
    page.click("#basinsButton")  # the ravine has one basin: the whole box reaches (0, 0)
    page.wait_for_function("() => !document.getElementById('basinsMap').hidden", timeout=30000)
    assert "basins of sgd" in page.locator("#exportText").inner_text()


def test_every_hyperparameter_and_the_momentum_ramp_have_controls(page):
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    for rule, hp in (("lbfgs", "history_size"), ("newton", "fallback"),
                     ("newton", "line_search"), ("adam", "eps")):
        assert page.locator(f'[data-rule="{rule}"][data-hp="{hp}"]').count() == 1, (rule, hp)
    page.evaluate("delete document.body.dataset.drawn")
    page.locator('details:has(input.hp-ramp[data-rule="momentum"])').evaluate(
        "(d) => { d.open = true; }")
    page.fill('input.hp-ramp[data-rule="momentum"][data-key="steps"]', "50")
    page.wait_for_function("() => document.body?.dataset.drawn === '3'", timeout=20000)
    state = json.loads(unquote(page.evaluate("() => location.hash")[1:]))
    momentum = next(o for o in state["optimizers"] if o["name"] == "momentum")
    assert momentum["momentum_schedule"] == {"start": 0.5, "end": 0.9, "steps": 50}
    assert "momentum" not in momentum
