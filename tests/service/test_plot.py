"""Pictures with real content: parseable SVG with one path per run and the legend labels; a
PNG of the requested size that is not blank."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest

COMPARE = {"loss": {"kind": "builtin", "name": "rosenbrock"}, "max_steps": 300,
           "start": [[-1.2, 1.0], [0.5, -0.5]],
           "optimizers": [{"name": "sgd", "lr": 0.001},
                          {"name": "momentum", "lr": 0.001, "momentum": 0.9},
                          {"name": "adam", "lr": 0.02, "label": "Adam fast"}]}
SVG = "{http://www.w3.org/2000/svg}"


async def test_svg_has_one_path_per_run_and_the_legend(client):
    r = await client.post("/v1/plot", json={"request": COMPARE})
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    root = ET.fromstring(r.content)
    ids = {g.get("id") for g in root.iter(f"{SVG}g")}
    assert {f"run-{k}" for k in range(6)} <= ids and "run-6" not in ids
    text = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    for label in ("sgd (lr=0.001)", "momentum (lr=0.001, momentum=0.9)", "Adam fast",
                  "known minimum", "loss against step", "x", "y"):
        assert label in text, label


async def test_png_has_the_requested_size_and_is_not_blank(client):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    r = await client.post("/v1/plot", json={"request": COMPARE, "format": "png",
                                            "size": [640, 360], "panels": ["contour"]})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    pixels = matplotlib_image.imread(io.BytesIO(r.content))
    assert pixels.shape[:2] == (360, 640)
    assert np.std(pixels[..., :3]) > 0.05  # contours and paths, not a flat image


async def test_optimize_body_n_dimensional_slice_and_bounds(client):
    r = await client.post("/v1/plot", json={
        "request": {"loss": {"kind": "builtin", "name": "sphere", "dim": 4},
                    "start": [1, -1, 2, 0.5], "optimizer": {"name": "sgd", "lr": 0.1}},
        "axes": ["x2", "x3"], "bounds": [[-2, 2], [-3, 3]], "panels": ["contour"]})
    root = ET.fromstring(r.content)
    text = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert "x2" in text and "x3" in text and "slice" in text


async def test_plot_errors_are_problems(client):
    r = await client.post("/v1/plot", json={"request": COMPARE, "format": "gif"})
    assert r.status_code == 422
    r = await client.post("/v1/plot", json={"request": COMPARE, "size": [10, 10]})
    assert r.status_code == 422
    r = await client.post("/v1/plot", json={"request": COMPARE, "bounds": [[1, 0], [0, 1]]})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    bad = COMPARE | {"loss": {"kind": "expression", "expression": "x^"}}
    r = await client.post("/v1/plot", json={"request": bad | {"start": [1, 1]}})
    assert r.status_code == 400 and r.json()["position"] == 3


def test_readme_picture_is_the_committed_svg():
    from tests.conftest import ROOT

    svg = (ROOT / "docs" / "rosenbrock.svg").read_bytes()
    root = ET.fromstring(svg)
    assert {"run-0", "run-1", "run-2"} <= {g.get("id") for g in root.iter(f"{SVG}g")}
    assert "docs/rosenbrock.svg" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("label", ["$x^{$", r"$\frac$", "$$", "cost $5 $6", "a$b"])
async def test_labels_are_plain_text_never_mathtext(client, label):
    body = {"loss": {"kind": "builtin", "name": "booth"}, "max_steps": 5,
            "optimizers": [{"name": "sgd", "label": label}, {"name": "adam"}]}
    for fmt in ("svg", "png"):
        r = await client.post("/v1/plot", json={"request": body, "format": fmt})
        assert r.status_code == 200, r.text
    root = ET.fromstring(r.content if fmt == "svg" else (await client.post(
        "/v1/plot", json={"request": body})).content)
    text = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert label in text


@pytest.mark.parametrize("bounds", [[[-1e308, 1e308], [-1, 1]], [[1, 1], [0, 1]],
                                    [[1e300, 1e300 * (1 + 1e-12)], [0, 1]]])
async def test_bounds_that_cannot_be_drawn_are_a_400(client, bounds):
    r = await client.post("/v1/plot", json={"request": COMPARE | {"max_steps": 3},
                                            "bounds": bounds})
    assert r.status_code == 400 and r.json()["errors"][0]["loc"] == ["body", "bounds"]


async def test_wide_but_drawable_bounds_are_drawn(client):
    r = await client.post("/v1/plot", json={"request": COMPARE | {"max_steps": 3},
                                            "bounds": [[-1e300, 1e300], [-1e-6, 1e-6]],
                                            "format": "png"})
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG"


def test_concurrent_plots_all_draw_and_health_stays_quick(tmp_path):
    """matplotlib is not thread-safe: eight plots at once on a server with four compute slots
    all answer 200 with the picture one plot alone draws, and /healthz stays quick."""
    import concurrent.futures
    import time

    import httpx

    from tests.conftest import start_server

    proc, url = start_server({"OPTIM_JOBS_DB_PATH": str(tmp_path / "j.sqlite3"),
                              "OPTIM_MAX_CONCURRENCY": "4"})
    try:
        bodies = [{"request": COMPARE, "format": fmt, "size": [500, 300]}
                  for fmt in ("png", "svg") for _ in range(4)]
        alone = {fmt: httpx.post(f"{url}/v1/plot", json={"request": COMPARE, "format": fmt,
                                                         "size": [500, 300]}, timeout=60)
                 for fmt in ("png", "svg")}
        slowest = 0.0
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(httpx.post, f"{url}/v1/plot", json=body, timeout=120)
                       for body in bodies]
            while not all(f.done() for f in futures):
                began = time.monotonic()
                assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
                slowest = max(slowest, time.monotonic() - began)
                time.sleep(0.05)
        answers = [f.result() for f in futures]
        assert [r.status_code for r in answers] == [200] * 8
        for body, r in zip(bodies, answers, strict=True):
            if body["format"] == "png":  # same pixels as alone (SVG ids are random)
                assert r.content == alone["png"].content
            else:
                assert r.content.startswith(b"<?xml") and b"run-5" in r.content
        assert slowest < 1.0
    finally:
        proc.terminate()
        proc.wait(10)
