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
    r = await client.post("/v1/plot", json={"request": COMPARE, "format": "webm"})
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


# -- kinds and animations ----------------------------------------------------------------------
RAVINE = {"loss": {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"},
          "start": [-8, 1], "max_steps": 200,
          "optimizers": [{"name": "sgd", "lr": 0.0196}, {"name": "momentum", "lr": 0.0196},
                         {"name": "adam", "lr": 0.1}]}


@pytest.mark.parametrize(("kind", "fmt", "media"), [
    ("surface", "png", "image/png"), ("surface", "svg", "image/svg+xml"),
    ("loss", "svg", "image/svg+xml"), ("rate_map", "png", "image/png"),
    ("basins", "png", "image/png"), ("contour", "gif", "image/gif"),
    ("loss", "gif", "image/gif"),
])
async def test_every_kind_draws_and_the_same_body_gives_the_same_bytes(client, kind, fmt,
                                                                       media):
    request = RAVINE if kind != "basins" else {
        "loss": {"kind": "builtin", "name": "himmelblau"}, "max_steps": 300,
        "optimizer": {"name": "sgd", "lr": 0.01}}
    body = {"request": request, "kind": kind, "format": fmt, "size": [600, 360], "frames": 6}
    first = await client.post("/v1/plot", json=body)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == media
    again = await client.post("/v1/plot", json=body)
    assert again.content == first.content


async def test_a_loss_plot_has_only_the_loss_panel(client):
    r = await client.post("/v1/plot", json={"request": RAVINE, "kind": "loss"})
    root = ET.fromstring(r.content)
    ids = {g.get("id") for g in root.iter(f"{SVG}g")}
    assert "loss-0" in ids and "run-0" not in ids


async def test_a_gif_draws_the_paths_step_by_step(client):
    from PIL import Image

    r = await client.post("/v1/plot", json={"request": RAVINE, "format": "gif", "frames": 8,
                                            "size": [600, 300]})
    image = Image.open(io.BytesIO(r.content))
    assert image.n_frames == 8 and image.size == (600, 300)
    frames = []
    for n in range(image.n_frames):
        image.seek(n)
        frames.append(np.asarray(image.convert("RGB"), dtype=float))
    changes = [np.abs(frames[n + 1] - frames[n]).mean() for n in range(7)]
    assert all(c > 0 for c in changes)  # every frame adds to the paths and curves


async def test_an_html_animation_is_one_self_contained_page(client):
    r = await client.post("/v1/plot", json={"request": RAVINE, "format": "html", "frames": 5,
                                            "size": [400, 240]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert page.count("data:image/png;base64,") == 5 + 1  # the frames, and the first shown
    assert "<script src" not in page and "http" not in page.split("<script>")[1]
    assert "'sha256-" in r.headers["content-security-policy"]


@pytest.mark.parametrize(("change", "status", "field"), [
    ({"kind": "surface", "format": "gif"}, 400, "format"),
    ({"frames": 100_000, "format": "gif"}, 413, None),
])
async def test_animations_of_other_kinds_and_too_many_frames_are_refused(client, change,
                                                                         status, field):
    r = await client.post("/v1/plot", json={"request": RAVINE} | change)
    assert r.status_code == status, r.text
    if field:
        assert r.json()["errors"][0]["loc"][-1] == field


async def test_mp4_without_its_extra_says_which_to_install(client):
    import importlib.util

    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        pytest.skip("imageio-ffmpeg is installed here")
    r = await client.post("/v1/plot", json={"request": RAVINE, "format": "mp4"})
    assert r.status_code == 400 and "optim-service[video]" in r.json()["detail"]


def test_the_rate_maps_theory_is_heavy_balls_and_matches_the_runs():
    """At μ = 0 the loss rate is max |1 − lr·λ|²; at the optimal (lr, μ) of a quadratic with
    κ = 100 it is ((√κ − 1)/(√κ + 1))²; and the sweep's measured rates agree to 5%."""
    from optim_core.api import sweep
    from optim_core.engine.recording import RecordSpec
    from optim_core.losses.quadratic import QuadraticLoss
    from service.pictures import heavy_ball_rates

    lam = np.array([1.0, 100.0])
    lrs, momenta = np.array([0.005, 0.0198]), np.array([0.0])
    assert heavy_ball_rates(lam, lrs, momenta)[0] == pytest.approx(
        [0.995 ** 2, max(abs(1 - 0.0198), abs(1 - 1.98)) ** 2])
    best_lr = 4 / (1 + 10) ** 2
    best_mu = ((10 - 1) / (10 + 1)) ** 2
    assert heavy_ball_rates(lam, np.array([best_lr]), np.array([best_mu]))[0, 0] == \
        pytest.approx(best_mu, rel=1e-6)
    loss = QuadraticLoss(np.diag(lam), np.zeros(2), 0.0)
    result = sweep(loss, {"name": "momentum"}, {"momentum": [0.0, 0.5], "lr": [0.005, 0.015]},
                   np.array([[1.0, 1.0]]), max_steps=300, include_runs=True,
                   record=RecordSpec(max_points=2, fields=("loss",)))
    theory = heavy_ball_rates(lam, np.array([0.005, 0.015]), np.array([0.0, 0.5]))
    measured = np.array([r["diagnostics"]["convergence_rate"] for r in result.runs])
    assert measured == pytest.approx(theory.ravel(), rel=0.05)


async def test_a_benchmarks_ecdf_and_profile_are_drawn(client):
    bench = {"suite": "smooth-2d", "starts_per_loss": 2, "max_steps": 100,
             "targets": [1e-1, 1e-4], "optimizers": [{"name": "lbfgs"},
                                                      {"name": "adam", "lr": 0.05}]}
    for kind in ("ecdf", "profile"):
        r = await client.post("/v1/plot", json={"request": bench, "kind": kind})
        assert r.status_code == 200, r.text
        root = ET.fromstring(r.content)
        ids = {g.get("id") for g in root.iter(f"{SVG}g")}
        assert {f"{kind}-0", f"{kind}-1"} <= ids
    r = await client.post("/v1/plot", json={"request": bench, "kind": "contour"})
    assert r.status_code == 400 and r.json()["errors"][0]["loc"][-1] == "kind"
    r = await client.post("/v1/plot", json={"request": RAVINE, "kind": "ecdf"})
    assert r.status_code == 400


async def test_mp4_with_its_extra_is_a_video_of_the_frames(client, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    r = await client.post("/v1/plot", json={"request": RAVINE, "format": "mp4", "frames": 6,
                                            "size": [400, 240]})
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.content[4:8] == b"ftyp"
    path = tmp_path / "plot.mp4"
    path.write_bytes(r.content)
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert frames == 6
