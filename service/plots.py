"""/v1/plot: a request → its picture, for every kind and format (service/plotting.py draws
the contour and loss panels, service/pictures.py the other kinds and the animations)."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from optim_core.errors import DimensionError
from optim_core.landscape import resolve_axes
from service import translate
from service.plotting import _DRAWING, bounds_around, draw, save
from service.schemas.plot import PlotRequest
from service.settings import Settings

ANIMATED = ("gif", "html", "mp4")
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png", "gif": "image/gif",
               "html": "text/html; charset=utf-8", "mp4": "video/mp4"}
RATE_GRID = (40, 25)  # lr × momentum points of a rate map
BASINS_GRID = 60  # starts per axis of a basins picture


BENCHMARK_KINDS = ("ecdf", "profile")


def check_plot(body: PlotRequest, settings: Settings) -> None:
    """What the schema cannot say, before any work (400s naming the field, 413 frames)."""
    from service.schemas.studies import BenchmarkRequest

    if (body.kind in BENCHMARK_KINDS) != isinstance(body.request, BenchmarkRequest):
        raise DimensionError("kinds ecdf and profile draw a benchmark body, the other kinds an "
                             f"optimize or compare body; kind {body.kind} got the other",
                             loc=["kind"])
    if body.format in ANIMATED and body.kind not in ("contour", "loss"):
        raise DimensionError(f"format {body.format} animates the paths (kind contour or loss); "
                             f"draw kind {body.kind} as svg or png", loc=["format"])
    if body.format == "mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise DimensionError("format mp4 needs the optional imageio-ffmpeg, which this server "
                             "lacks (install optim-service[video]); gif and html animate "
                             "without it", loc=["format"])
    if body.format in ANIMATED:
        translate._over("max_plot_frames", body.frames, settings.max_plot_frames, "frames", "")


def run_plot(body: PlotRequest, settings: Settings) -> bytes:
    check_plot(body, settings)
    if body.kind in BENCHMARK_KINDS:
        return _benchmark(body, settings)
    request = body.request.model_copy(deep=True)
    fields = set(request.record.fields) | {"params", "loss"}
    request.record.fields = [f for f in ("params", "loss", "grad_norm", "lr") if f in fields]
    request.record.max_points = min(request.record.max_points, 2000)
    loss = translate.build_loss(request.loss, settings)
    axes = resolve_axes(loss, body.axes)
    bounds = None if body.bounds is None else translate._box(body.bounds)
    if bounds is not None and not translate._drawable(bounds):
        raise DimensionError(
            "bounds must be [[lo, hi], [lo, hi]] with lo < hi, hi − lo finite and above the "
            "resolution of the numbers (1e-9 of their size)", loc=["bounds"])
    size = (body.size[0], body.size[1])
    if body.kind == "rate_map":
        return _rate_map(body, request, loss, size, settings)
    if body.kind == "basins":
        return _basins(body, request, loss, size, bounds, settings)
    answer = translate.run_optimize(request, settings, loss=loss)
    assert answer is not None
    if body.kind == "surface":
        from service.pictures import surface_figure
        from service.plotting import _loss_panel

        box = bounds if bounds is not None else bounds_around(loss, answer["runs"], axes)
        with _DRAWING:
            fig = surface_figure(loss, answer, size, box, axes, "loss" in body.panels,
                                 _loss_panel)
            return save(fig, body.format)
    panels = ["loss"] if body.kind == "loss" else list(dict.fromkeys(body.panels))
    with _DRAWING:
        fig = draw(loss, answer, panels=panels, size=size, bounds=bounds, axes=axes)
        if body.format not in ANIMATED:
            return save(fig, body.format)
        from service.pictures import animate, frame_steps, gif_bytes, html_page, mp4_bytes

        images = animate(fig, answer["runs"], axes, body.frames)
    if body.format == "gif":
        return gif_bytes(images)
    if body.format == "mp4":
        return mp4_bytes(images)
    return html_page(images, "optimizer paths", frame_steps(answer["runs"], body.frames))


def _rate_map(body: PlotRequest, request: Any, loss: Any, size: tuple[int, int],
              settings: Settings) -> bytes:
    from optim_core.api import sweep
    from optim_core.engine.recording import RecordSpec
    from service.pictures import rate_map_figure

    start = translate._starts(request, loss, settings)[:1]
    with np.errstate(all="ignore"):
        hess = np.asarray(loss.hess(start), dtype=float)[0]
    lam = np.linalg.eigvalsh(hess) if np.all(np.isfinite(hess)) else np.array([np.nan])
    if not np.all(np.isfinite(lam)) or lam.max() <= 0:
        raise DimensionError("A rate map needs positive curvature at the start (the Hessian "
                             "there has no positive eigenvalue)", loc=["request", "start"])
    lrs = np.linspace(4 / lam.max() / RATE_GRID[0], 4 / lam.max(), RATE_GRID[0])
    momenta = np.linspace(0.0, 0.98, RATE_GRID[1])
    steps = min(request.max_steps, 300)
    translate._over("max_runs", lrs.size * momenta.size, settings.max_runs,
                    "The rate map's sweep (40 × 25 settings)")
    translate._over("max_work", lrs.size * momenta.size * steps * loss.dim, settings.max_work,
                    "The rate map's sweep (40 × 25 settings × steps)")
    result = sweep(loss, {"name": "momentum"}, {"momentum": momenta.tolist(),
                                                 "lr": lrs.tolist()}, start,
                   max_steps=steps, stop=translate._stop(request), include_runs=True,
                   record=RecordSpec(max_points=2, fields=("loss",)),
                   eval_every=settings.eval_every)
    rates = np.array([np.nan if r["status"] == "diverged" else
                      (r["diagnostics"].get("convergence_rate") or np.nan)
                      for r in result.runs or []], dtype=float)
    measured = rates.reshape(momenta.size, lrs.size)
    with _DRAWING:
        return save(rate_map_figure(lam, measured, lrs, momenta, size), body.format)


def _basins(body: PlotRequest, request: Any, loss: Any, size: tuple[int, int],
            bounds: np.ndarray | None, settings: Settings) -> bytes:
    from optim_core.studies.basins import basins
    from service.pictures import basins_figure
    from service.schemas.optimizers import optimizer_settings

    models = getattr(request, "optimizers", None) or [request.optimizer]
    optimizer = optimizer_settings(models[0])
    n = min(BASINS_GRID, int(np.sqrt(settings.max_runs)))
    translate._over("max_work", n * n * max(request.max_steps, 1) * loss.dim,
                    settings.max_work, "The basins' grid (starts × steps)")
    report = basins(loss, optimizer, bounds, (n, n), max_steps=request.max_steps,
                    stop=translate._stop(request), eval_every=settings.eval_every,
                    deadline=translate._deadline(request, settings))
    title = f"basins of {optimizer['name']} ({n} × {n} starts, {request.max_steps} steps)"
    with _DRAWING:
        return save(basins_figure(report, size, (loss.names[0], loss.names[1]), title),
                    body.format)


def _benchmark(body: PlotRequest, settings: Settings) -> bytes:
    from service.pictures import benchmark_figure
    from service.studies import run_benchmark

    answer = run_benchmark(body.request, settings)
    assert answer is not None
    with _DRAWING:
        return save(benchmark_figure(answer, body.kind, (body.size[0], body.size[1])),
                    body.format)
