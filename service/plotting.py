"""Pictures with matplotlib (Agg, no display): the loss contour with every run's path, start
and end marked, known minima marked, and the loss against the step on a log scale.

Text stays text in SVG (svg.fonttype = none), and each run's path carries the id
`run-<k>`, so pictures can be searched and tested.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import matplotlib
import numpy as np

from optim_core.landscape import landscape
from optim_core.losses.base import Loss

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
            "#17becf", "#bcbd22", "#7f7f7f")
_GRID = 160  # contour resolution per axis
_WIDE_RANGE = 100.0  # above this max/min ratio of the loss gap, contour levels are log-spaced
_DRAWING = threading.Lock()  # one drawing at a time: see render


def default_bounds(points: np.ndarray, margin: float = 0.15) -> np.ndarray:
    """A box around the paths and minima, with a margin; never degenerate."""
    lo, hi = np.nanmin(points, axis=0), np.nanmax(points, axis=0)
    span = np.maximum(hi - lo, 1e-3 * np.maximum(1.0, np.abs(hi) + np.abs(lo)))
    span = np.maximum(span, 0.5 * span.max())  # keep the aspect within 2:1
    centre = (lo + hi) / 2
    return np.stack([centre - span * (0.5 + margin), centre + span * (0.5 + margin)], axis=1)


def bounds_around(loss: Loss, runs: list[dict[str, Any]], axes: tuple[int, int]) -> np.ndarray:
    """The default box of a picture on `axes`: around every recorded path and known minimum."""
    i, j = axes
    points = [np.asarray(run["trajectory"]["params"], dtype=float).reshape(-1, loss.dim)[:, [i, j]]
              for run in runs if "params" in run.get("trajectory", {})]
    if loss.minima is not None:
        points.append(np.asarray(loss.minima, dtype=float)[:, [i, j]])
    points = [p for p in points if p.size]
    stacked = np.vstack(points) if points else np.zeros((1, 2))
    stacked = stacked[np.all(np.isfinite(stacked), axis=1)]
    return default_bounds(stacked if stacked.size else np.zeros((1, 2)))


def slice_point(runs: list[dict[str, Any]]) -> np.ndarray | None:
    """Where a picture of more than two coordinates slices the loss: the first run's end (None
    when there is none, or it is not finite)."""
    fixed = np.asarray(runs[0]["final"]["params"], dtype=float) if runs else None
    return fixed if fixed is not None and np.all(np.isfinite(fixed)) else None


def _levels(z: np.ndarray) -> tuple[np.ndarray, bool]:
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return np.linspace(0, 1, 2), False
    zmin, zmax = float(finite.min()), float(finite.max())
    if zmax <= zmin:
        return np.array([zmin, zmin + 1.0]), False
    gap = zmax - zmin
    positive_gaps = finite - zmin
    small = np.percentile(positive_gaps[positive_gaps > 0], 1) if np.any(positive_gaps > 0) \
        else gap * 1e-3
    if gap / max(small, 1e-300) > _WIDE_RANGE:
        return zmin + np.geomspace(max(small, gap * 1e-9), gap, 25), True
    return np.linspace(zmin, zmax, 25), False


def _plain(text: str) -> str:
    """User text shown as typed: matplotlib parses `$…$` as mathtext (a parser user input
    must not reach), and an escaped dollar is drawn as a dollar sign."""
    return text.replace("$", r"\$")


def _label(run: dict[str, Any], optimizers: list[dict[str, Any]], index: int) -> str:
    settings = optimizers[index]
    shown = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v.get('name', '…')}"
             for k, v in settings.items()
             if k in ("lr", "momentum", "beta1", "rho") and v is not None]
    label = _plain(run["label"])
    return f"{label} ({', '.join(shown)})" if shown else label


DPI = 100
# same body, same bytes: no creation date, and SVG ids from a fixed salt
SAVE_RC = {"svg.fonttype": "none", "svg.hashsalt": "optim-service"}
SAVE_METADATA = {"svg": {"Date": None}, "png": {"Software": None}}


def colours(runs: list[dict[str, Any]]) -> dict[str, str]:
    labels = list(dict.fromkeys(run["label"] for run in runs))
    return {label: _COLOURS[i % len(_COLOURS)] for i, label in enumerate(labels)}


def new_figure(size: tuple[int, int]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, fmt: str) -> bytes:
    out = io.BytesIO()
    with matplotlib.rc_context(SAVE_RC):
        fig.savefig(out, format=fmt, dpi=DPI, metadata=SAVE_METADATA.get(fmt))
    return out.getvalue()


def render(loss: Loss, answer: dict[str, Any], *, panels: list[str], fmt: str,
           size: tuple[int, int], bounds: np.ndarray | None, axes: tuple[int, int]) -> bytes:
    """Render the answer of optimize/compare as SVG or PNG bytes.

    matplotlib is not thread-safe (its font cache, text layout and rcParams are shared):
    the object API (no pyplot state) and one lock for the drawing, so concurrent requests
    draw one after another instead of corrupting each other."""
    with _DRAWING:
        fig = draw(loss, answer, panels=panels, size=size, bounds=bounds, axes=axes)
        return save(fig, fmt)


def draw(loss: Loss, answer: dict[str, Any], *, panels: list[str], size: tuple[int, int],
         bounds: np.ndarray | None, axes: tuple[int, int]) -> Any:
    """The figure of the panels (call under _DRAWING)."""
    runs = answer["runs"]
    optimizers = answer["meta"]["optimizers"]
    colour = colours(runs)
    labels = list(colour)
    settings_of = {run["label"]: labels.index(run["label"]) for run in runs}
    fig = new_figure(size)
    count = len(panels)
    ax_index = 1
    if "contour" in panels:
        ax = fig.add_subplot(1, count, ax_index)
        ax_index += 1
        _contour_panel(ax, loss, runs, colour, optimizers, settings_of, bounds, axes)
    if "loss" in panels:
        ax = fig.add_subplot(1, count, ax_index)
        _loss_panel(ax, loss, runs, colour)
    fig.tight_layout()
    return fig


def _contour_panel(ax: Any, loss: Loss, runs: list[dict[str, Any]], colour: dict[str, str],
                   optimizers: list[dict[str, Any]], settings_of: dict[str, int],
                   bounds: np.ndarray | None, axes: tuple[int, int]) -> None:
    i, j = axes
    minima = np.asarray(loss.minima) if loss.minima is not None else np.empty((0, loss.dim))
    if bounds is None:
        bounds = bounds_around(loss, runs, axes)
    x, y, z = landscape(loss, bounds, (_GRID, _GRID), [i, j], slice_point(runs))
    levels, logarithmic = _levels(z)
    ax.contourf(x, y, np.where(np.isfinite(z), z, np.nan), levels=levels, cmap="viridis",
                alpha=0.35, extend="max")
    ax.contour(x, y, z, levels=levels, colors="#555555", linewidths=0.5, alpha=0.6)
    shown: set[str] = set()
    for k, run in enumerate(runs):
        traj = run.get("trajectory", {})
        if "params" not in traj:
            continue
        path = np.asarray(traj["params"], dtype=float)
        label = run["label"]
        legend = _label(run, optimizers, settings_of[label]) if label not in shown else None
        shown.add(label)
        (line,) = ax.plot(path[:, i], path[:, j], "-", color=colour[label], lw=1.4,
                          marker=".", ms=2.5, label=legend)
        line.set_gid(f"run-{k}")
        ax.plot(path[0, i], path[0, j], "o", color=colour[label], ms=6, mec="white")
        (end,) = ax.plot(path[-1, i], path[-1, j], "X", color=colour[label], ms=8,
                         mec="white")
        end.set_gid(f"end-{k}")
    if minima.size:
        ax.plot(minima[:, i], minima[:, j], "*", color="gold", ms=13, mec="black", mew=0.7,
                label="known minimum", ls="none")
    ax.set_xlim(bounds[0])
    ax.set_ylim(bounds[1])
    ax.set_xlabel(loss.names[i])
    ax.set_ylabel(loss.names[j])
    title = "loss contours" + (" (log-spaced)" if logarithmic else "")
    if loss.dim > 2:
        title += f", slice through the first run's end in {loss.names[i]}–{loss.names[j]}"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best", framealpha=0.85)


def _loss_panel(ax: Any, loss: Loss, runs: list[dict[str, Any]], colour: dict[str, str]
                ) -> None:
    f_min = loss.f_min
    signed = False  # a loss that goes negative with no known minimum gets a symlog axis
    shown: set[str] = set()
    for k, run in enumerate(runs):
        traj = run.get("trajectory", {})
        if "loss" not in traj:
            continue
        values = np.array([np.nan if v is None else v for v in traj["loss"]], dtype=float)
        if f_min is not None:
            values = np.where(values - f_min > 0, values - f_min, np.nan)
        signed = signed or bool(np.any(values <= 0))
        label = _plain(run["label"]) if run["label"] not in shown else None
        shown.add(run["label"])
        (line,) = ax.plot(traj["step"], values, color=colour[run["label"]], lw=1.3,
                          label=label)
        line.set_gid(f"loss-{k}")
    ax.set_yscale("symlog" if signed else "log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss − f_min" if f_min is not None else "loss")
    ax.set_title("loss against step (log scale)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
