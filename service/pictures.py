"""The other kinds of /v1/plot (surface, rate_map, basins) and the animations (gif, html,
mp4) of the contour and loss panels.

Animations: the whole picture is drawn once; each frame then shows every path and loss
curve up to one step (frames evenly spaced over the longest run's recorded steps) with a
marker at each run's current point, and is rasterised. GIF frames go through Pillow
(matplotlib's own dependency) with a fixed palette order, so the same body gives the same
bytes; the HTML page embeds the frames as data: URLs with a play/pause button and a step
scrubber (self-contained: no network, no external script); MP4 needs the optional
imageio-ffmpeg (extra `optim-service[video]`).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from typing import Any

import numpy as np

from optim_core.losses.base import Loss
from service.plotting import DPI, colours, new_figure, save, slice_point

GIF_MS = 80  # per frame


def frame_steps(runs: list[dict[str, Any]], frames: int) -> list[int]:
    """The steps the frames show: evenly spaced from 0 to the last recorded step."""
    last = max((run["trajectory"]["step"][-1] for run in runs if run.get("trajectory")),
               default=0)
    return sorted({int(round(s)) for s in np.linspace(0, last, max(2, frames))})


def animate(fig: Any, runs: list[dict[str, Any]], axes: tuple[int, int], frames: int
            ) -> list[Any]:
    """RGB frames (Pillow images) of `fig` with every path shown up to each frame's step."""
    from PIL import Image

    i, j = axes
    artists = {a.get_gid(): a for ax in fig.axes for a in ax.get_lines() if a.get_gid()}
    curves = {gid: tuple(np.asarray(v) for v in line.get_data(orig=True))
              for gid, line in artists.items() if gid.startswith("loss-")}
    images = []
    for step in frame_steps(runs, frames):
        for k, run in enumerate(runs):
            traj = run.get("trajectory") or {}
            if f"run-{k}" in artists and "params" in traj:
                shown = int(np.searchsorted(traj["step"], step, side="right"))
                path = np.asarray(traj["params"], dtype=float)[:max(shown, 1)]
                artists[f"run-{k}"].set_data(path[:, i], path[:, j])
                artists[f"end-{k}"].set_data([path[-1, i]], [path[-1, j]])
            if f"loss-{k}" in curves:
                xs, ys = curves[f"loss-{k}"]
                cut = max(int(np.searchsorted(xs, step, side="right")), 1)
                artists[f"loss-{k}"].set_data(xs[:cut], ys[:cut])
        fig.canvas.draw()
        rgba = np.asarray(fig.canvas.buffer_rgba())
        images.append(Image.fromarray(rgba[:, :, :3].copy()))
    return images


def gif_bytes(images: list[Any]) -> bytes:
    out = io.BytesIO()
    palette = [im.quantize(colors=255, method=2, dither=0) for im in images]
    palette[0].save(out, format="GIF", save_all=True, append_images=palette[1:],
                    duration=GIF_MS, loop=0, optimize=False, disposal=1)
    return out.getvalue()


def mp4_bytes(images: list[Any]) -> bytes:
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise RuntimeError("mp4 needs the optional imageio-ffmpeg: install "
                           "optim-service[video]") from exc
    import os
    import tempfile

    width, height = images[0].size
    width, height = width - width % 2, height - height % 2  # yuv420p wants even sizes
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "plot.mp4")
        writer = imageio_ffmpeg.write_frames(path, (width, height), fps=1000 / GIF_MS,
                                             macro_block_size=1)
        writer.send(None)
        for im in images:
            writer.send(np.ascontiguousarray(np.asarray(im)[:height, :width]))
        writer.close()
        with open(path, "rb") as f:
            return f.read()


def html_page(images: list[Any], title: str, steps: list[int]) -> bytes:
    """A self-contained page: the frames as data: URLs, play/pause and a step scrubber."""
    urls = []
    for im in images:
        out = io.BytesIO()
        im.quantize(colors=255, method=2, dither=0).save(out, format="PNG", optimize=True)
        urls.append("data:image/png;base64," + base64.b64encode(out.getvalue()).decode())
    frames = "[" + ",".join(f'"{u}"' for u in urls) + "]"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font:14px system-ui,sans-serif;margin:12px}}img{{display:block;max-width:100%}}
.bar{{display:flex;gap:10px;align-items:center;margin-top:6px}}input{{flex:1}}</style>
</head><body>
<img id="frame" alt="{html.escape(title)}" src="{urls[0]}">
<div class="bar"><button id="play" type="button">Pause</button>
<input id="scrub" type="range" min="0" max="{len(urls) - 1}" value="0" aria-label="step">
<span id="step">step 0</span></div>
<script>
const FRAMES = {frames};
const STEPS = {steps};
const img = document.getElementById("frame"), scrub = document.getElementById("scrub");
const label = document.getElementById("step"), play = document.getElementById("play");
let at = 0, timer = null;
function show(i) {{
  at = i; img.src = FRAMES[i]; scrub.value = i; label.textContent = "step " + STEPS[i];
}}
function start() {{
  timer = setInterval(() => show((at + 1) % FRAMES.length), {GIF_MS});
  play.textContent = "Pause";
}}
function stop() {{ clearInterval(timer); timer = null; play.textContent = "Play"; }}
play.addEventListener("click", () => timer ? stop() : start());
scrub.addEventListener("input", () => {{ stop(); show(Number(scrub.value)); }});
start();
</script></body></html>
"""
    return page.encode()


def surface_figure(loss: Loss, answer: dict[str, Any], size: tuple[int, int],
                   bounds: np.ndarray, axes: tuple[int, int], with_loss: bool,
                   loss_panel: Callable[..., None]) -> Any:
    """A 3-D surface of the loss with every path drawn on it (z = the path's loss)."""
    from optim_core.landscape import landscape

    runs = answer["runs"]
    colour = colours(runs)
    i, j = axes
    fig = new_figure(size)
    ax = fig.add_subplot(1, 2 if with_loss else 1, 1, projection="3d")
    x, y, z = landscape(loss, bounds, (60, 60), [i, j], slice_point(runs))
    z = np.asarray(z, dtype=float)
    finite = z[np.isfinite(z)]
    top = float(np.percentile(finite, 98)) if finite.size else 1.0
    shown_z = np.clip(np.where(np.isfinite(z), z, top), None, top)
    xx, yy = np.meshgrid(x, y)
    ax.plot_surface(xx, yy, shown_z, cmap="viridis", alpha=0.55, linewidth=0,
                    antialiased=True)
    for k, run in enumerate(runs):
        traj = run.get("trajectory") or {}
        if "params" not in traj or "loss" not in traj:
            continue
        path = np.asarray(traj["params"], dtype=float)
        values = np.array([np.nan if v is None else v for v in traj["loss"]], dtype=float)
        keep = (np.all(np.isfinite(path[:, [i, j]]), axis=1) & np.isfinite(values)
                & (path[:, i] >= bounds[0, 0]) & (path[:, i] <= bounds[0, 1])
                & (path[:, j] >= bounds[1, 0]) & (path[:, j] <= bounds[1, 1]))
        (line,) = ax.plot(path[keep, i], path[keep, j], np.minimum(values[keep], top),
                          color=colour[run["label"]], lw=1.6, label=run["label"]
                          if run["label"] not in [r["label"] for r in runs[:k]] else None)
        line.set_gid(f"surface-{k}")
    ax.set_xlabel(loss.names[i])
    ax.set_ylabel(loss.names[j])
    ax.set_zlabel("loss")
    ax.set_title("loss surface and paths", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    if with_loss:
        loss_panel(fig.add_subplot(1, 2, 2), loss, runs, colour)
    fig.tight_layout()
    return fig


def rate_map_figure(lam: np.ndarray, measured: np.ndarray, lrs: np.ndarray,
                    momenta: np.ndarray, size: tuple[int, int]) -> Any:
    """Heavy-ball convergence rate over (lr, momentum): the quadratic theory at the start's
    Hessian beside the rate the runs measured (one sweep), as Distill draws it."""
    theory = heavy_ball_rates(lam, lrs, momenta)
    fig = new_figure(size)
    for n, (grid, title) in enumerate(((theory, "theory: spectral radius² (loss rate)"),
                                       (measured, "measured: convergence_rate of the runs"))):
        ax = fig.add_subplot(1, 2, n + 1)
        shown = np.where(np.isfinite(grid), np.clip(grid, 0, 1.05), 1.05)
        image = ax.pcolormesh(lrs, momenta, shown, cmap="magma_r", vmin=0, vmax=1.05,
                              shading="nearest")
        ax.set_xlabel("lr")
        ax.set_ylabel("momentum")
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, label="rate per step (≥ 1: no convergence)")
    fig.tight_layout()
    return fig


def heavy_ball_rates(lam: np.ndarray, lrs: np.ndarray, momenta: np.ndarray) -> np.ndarray:
    """(momenta, lrs) loss-gap rate ρ² of heavy ball on eigenvalues lam: ρ the largest root
    modulus of z² − (1 + μ − lr·λ) z + μ over λ."""
    lr, mu = np.meshgrid(lrs, momenta)
    worst = np.zeros_like(lr)
    for value in np.asarray(lam, dtype=float).ravel():
        b = 1 + mu - lr * value
        disc = np.sqrt((b * b - 4 * mu).astype(complex))
        roots = np.maximum(np.abs((b + disc) / 2), np.abs((b - disc) / 2))
        worst = np.maximum(worst, roots)
    return worst ** 2


def basins_figure(report: Any, size: tuple[int, int], names: tuple[str, str],
                  title: str) -> Any:
    """Each start coloured by the minimum it reached (grey: not converged, black: diverged),
    the minima marked."""
    from matplotlib.colors import ListedColormap

    palette = ["#000000", "#bbbbbb", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
               "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
    labels = np.asarray(report.labels)
    index = np.where(labels >= 0, 2 + labels % (len(palette) - 2), labels + 2)
    fig = new_figure(size)
    ax = fig.add_subplot(1, 1, 1)
    ax.pcolormesh(report.x, report.y, index, cmap=ListedColormap(palette), vmin=-0.5,
                  vmax=len(palette) - 0.5, shading="nearest")
    if len(report.minima):
        ax.plot(report.minima[:, 0], report.minima[:, 1], "*", color="gold", ms=13,
                mec="black", mew=0.7, ls="none", label="minima")
        for m, point in enumerate(report.minima):
            share = report.share.get(str(m), 0.0)
            ax.annotate(f"{m}: {share:.0%}", point, textcoords="offset points",
                        xytext=(6, 6), fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def benchmark_figure(answer: dict[str, Any], kind: str, size: tuple[int, int]) -> Any:
    """Step curves per optimizer: the runtime ECDF against evaluations (log), or the
    Dolan–Moré profile against the ratio to the best (log)."""
    fig = new_figure(size)
    ax = fig.add_subplot(1, 1, 1)
    curves = answer["ecdf"] if kind == "ecdf" else answer["profile"]
    for n, curve in enumerate(curves):
        xs = curve["evals"] if kind == "ecdf" else curve["tau"]
        colour = _PALETTE[n % len(_PALETTE)]
        if xs:
            (line,) = ax.step([xs[0], *xs], [0.0, *curve["fraction"]], where="post",
                              color=colour, lw=1.6, label=curve["label"])
        else:
            (line,) = ax.plot([], [], color=colour, label=f"{curve['label']} (none reached)")
        line.set_gid(f"{kind}-{n}")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("function evaluations" if kind == "ecdf" else "ratio to the best (τ)")
    ax.set_ylabel("share of (loss, start, target)")
    ax.set_title(("runtime ECDF" if kind == "ecdf" else "performance profile")
                 + f" over {', '.join(answer['losses'])}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
            "#332288", "#117733", "#882255")


__all__ = ["DPI", "animate", "basins_figure", "benchmark_figure", "gif_bytes", "html_page",
           "mp4_bytes", "rate_map_figure", "save", "surface_figure"]
