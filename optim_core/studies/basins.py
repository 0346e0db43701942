"""Basins of attraction: which minimum an optimizer reaches from each start of a grid.

Every grid point is a start of one batch (ny × nx runs, row j at y[j], column i at x[i]). A
converged run is labelled with the minimum its end point lies nearest to, within MATCH_TOL of
the box's diagonal; the minima are the loss's known ones (the catalog's) first, then the end
points of converged runs near none of those, clustered greedily (lowest loss first) within
the same tolerance. −1: the run did not converge (max_steps, stalled, time limit); −2: it
diverged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from optim_core.engine.recording import RecordSpec
from optim_core.engine.results import RunBatch
from optim_core.engine.status import Status
from optim_core.engine.stopping import StopCriteria
from optim_core.errors import DimensionError
from optim_core.landscape import default_bounds
from optim_core.losses.base import Loss
from optim_core.plan import plan_optimize
from optim_core.shards import EngineOptions, ShardExecutor, execute
from optim_core.types import Array

MATCH_TOL = 1e-3  # of the box's diagonal: an end point this close to a minimum reached it
NOT_CONVERGED, DIVERGED = -1, -2


@dataclass(slots=True)
class BasinsReport:
    x: Array
    y: Array
    labels: Array  # (ny, nx)
    minima: Array  # (m, 2)
    steps: Array  # (ny, nx)
    share: dict[str, float]
    batch: RunBatch


def grid_starts(loss: Loss, bounds: Array | None, resolution: tuple[int, int]
                ) -> tuple[Array, Array, Array, Array]:
    """(x, y, starts (ny·nx, 2) row-major over y, box) of the grid."""
    if loss.dim != 2:
        raise DimensionError(f"Basins are mapped on 2-D losses; this one has {loss.dim} "
                             "coordinates", loc=["loss"])
    box = default_bounds(loss, (0, 1)) if bounds is None else np.asarray(bounds, dtype=float)
    if box.shape != (2, 2) or not np.all(np.isfinite(box)) or np.any(box[:, 0] >= box[:, 1]):
        raise DimensionError("bounds must be [[x0, x1], [y0, y1]] with x0 < x1 and y0 < y1, "
                             "finite", loc=["bounds"])
    nx, ny = resolution
    x, y = np.linspace(*box[0], nx), np.linspace(*box[1], ny)
    xx, yy = np.meshgrid(x, y)
    return x, y, np.column_stack([xx.ravel(), yy.ravel()]), box


def basins(loss: Loss, optimizer: Mapping[str, Any], bounds: Array | None,
           resolution: tuple[int, int], *, max_steps: int = 1000,
           stop: StopCriteria | None = None, seed: int | None = None, eval_every: int = 10,
           deadline: float | None = None, cancel: Callable[[], bool] | None = None,
           progress: Callable[[int, int, int], None] | None = None,
           executor: ShardExecutor | None = None) -> BasinsReport:
    x, y, starts, box = grid_starts(loss, bounds, resolution)
    plan = plan_optimize(loss, [optimizer], starts, EngineOptions(
        max_steps, stop or StopCriteria(), RecordSpec(enabled=False), seed, eval_every))
    batch = execute(plan, executor=executor, deadline=deadline, cancel=cancel,
                    progress=progress)
    tol = MATCH_TOL * float(np.hypot(*(box[:, 1] - box[:, 0])))
    converged = batch.status == Status.CONVERGED
    minima = _minima(loss, batch.final_params[converged], batch.final_loss[converged], tol)
    labels = np.full(starts.shape[0], NOT_CONVERGED, dtype=int)
    labels[batch.status == Status.DIVERGED] = DIVERGED
    if minima.shape[0] and converged.any():
        gaps = np.linalg.norm(batch.final_params[converged][:, None, :] - minima[None], axis=2)
        nearest = np.argmin(gaps, axis=1)
        labels[np.flatnonzero(converged)] = np.where(
            gaps[np.arange(nearest.size), nearest] <= tol, nearest, NOT_CONVERGED)
    values, counts = np.unique(labels, return_counts=True)
    share = {str(int(v)): float(c / labels.size) for v, c in zip(values, counts, strict=True)}
    nx, ny = resolution
    return BasinsReport(x, y, labels.reshape(ny, nx), minima, batch.steps.reshape(ny, nx),
                        share, batch)


def _minima(loss: Loss, ends: Array, values: Array, tol: float) -> Array:
    """The known minima, then the clusters of converged end points near none of them."""
    found = [] if loss.minima is None else [np.asarray(m, dtype=float)
                                            for m in np.asarray(loss.minima)[:, :2]]
    for k in np.argsort(values, kind="stable"):
        point = ends[k]
        if not found or min(float(np.linalg.norm(point - m)) for m in found) > tol:
            found.append(point)
    return np.array(found, dtype=float).reshape(-1, 2)
