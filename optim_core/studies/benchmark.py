"""Benchmark profiles: optimizers over a suite of losses with known minimum values, counted
in evaluations (COCO's convention), not steps.

A problem is a (loss, start, target) triple: the target is reached at the first recorded
point where f − f_min ≤ target, and its cost is the function evaluations made up to that
point (the `evals` the engine counts: one per step for first-order rules, the line searches'
and simplices' own for the classical ones). Per optimizer:

- the runtime ECDF: the share of all triples reached within each number of evaluations (a
  step function; `evals` are its steps, `fraction` its values);
- the Dolan–Moré performance profile: for each triple, the optimizer's cost over the least
  cost of any optimizer on it; `fraction` at `tau` is the share of triples with ratio ≤ tau.
  Triples nobody reached count in the denominator (so a profile may stay below 1).

One batch per loss (every optimizer × start); starts are drawn uniformly in each loss's
domain from (seed, loss index).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optim_core.engine.recording import RecordSpec
from optim_core.engine.results import RunBatch
from optim_core.engine.status import Status
from optim_core.engine.stopping import StopCriteria
from optim_core.errors import DimensionError
from optim_core.losses.base import Loss
from optim_core.losses.catalog import builtin_loss
from optim_core.plan import plan_optimize
from optim_core.shards import EngineOptions, ShardExecutor, execute
from optim_core.types import Array

SUITES: dict[str, list[tuple[str, int | None]]] = {
    "smooth-2d": [("sphere", None), ("booth", None), ("matyas", None), ("beale", None),
                  ("rosenbrock", None), ("three_hump_camel", None)],
    "multimodal-2d": [("himmelblau", None), ("six_hump_camel", None),
                      ("goldstein_price", None), ("styblinski_tang", None),
                      ("rastrigin", None), ("ackley", None)],
    "rosenbrock-nd": [("rosenbrock", 2), ("rosenbrock", 5), ("rosenbrock", 10)],
}


def suite_losses(name: str) -> list[tuple[str, Loss]]:
    return [(f"{loss}" if dim is None else f"{loss}-{dim}d", builtin_loss(loss, dim))
            for loss, dim in SUITES[name]]


@dataclass(slots=True)
class BenchmarkReport:
    targets: list[float]
    losses: list[str]
    labels: list[str]
    hits: Array  # (optimizers, losses, starts, targets): evaluations to reach, inf if never
    best_gap: Array  # (optimizers, losses, starts)
    batches: list[RunBatch] = field(default_factory=list)
    partial_reason: str | None = None


def draw_starts(loss: Loss, n: int, seed: int, index: int) -> Array:
    """n starts uniform in the loss's domain (or ±2 around its default start)."""
    if loss.domain is not None:
        box = np.asarray(loss.domain, dtype=float)
    else:
        centre = np.zeros(loss.dim) if loss.default_start is None else loss.default_start
        box = np.column_stack([centre - 2.0, centre + 2.0])
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    return box[:, 0] + (box[:, 1] - box[:, 0]) * rng.random((n, loss.dim))


def benchmark(losses: Sequence[tuple[str, Loss]], optimizers: Sequence[Mapping[str, Any]],
              labels: list[str], *, starts_per_loss: int, targets: Sequence[float],
              seed: int = 0, max_steps: int = 1000, stop: StopCriteria | None = None,
              eval_every: int = 10, deadline: float | None = None,
              cancel: Callable[[], bool] | None = None,
              progress: Callable[[int, int, int], None] | None = None,
              executor: ShardExecutor | None = None) -> BenchmarkReport:
    for i, (name, loss) in enumerate(losses):
        if loss.f_min is None or not np.isfinite(loss.f_min):
            raise DimensionError(f"Loss {i} ({name}) has no known minimum value: a benchmark "
                                 "measures f − f_min; use catalog functions or a suite",
                                 loc=["losses", i])
    n_opt, n_loss = len(optimizers), len(losses)
    target_arr = np.asarray(sorted(targets, reverse=True), dtype=float)
    hits = np.full((n_opt, n_loss, starts_per_loss, target_arr.size), np.inf)
    best_gap = np.full((n_opt, n_loss, starts_per_loss), np.inf)
    report = BenchmarkReport(target_arr.tolist(), [n for n, _ in losses], labels, hits,
                             best_gap)
    record = RecordSpec(every=1, max_points=max_steps + 2, fields=("loss", "evals"))
    for li, (_, loss) in enumerate(losses):
        starts = draw_starts(loss, starts_per_loss, seed, li)

        def loss_progress(done: int, total: int, active: int, base: int = li) -> None:
            if progress is not None:
                progress(base * max_steps + done, n_loss * max_steps, active)

        plan = plan_optimize(loss, optimizers, starts, EngineOptions(
            max_steps, stop or StopCriteria(), record, seed, eval_every))
        batch = execute(plan, executor=executor, deadline=deadline, cancel=cancel,
                        progress=loss_progress)
        report.batches.append(batch)
        first, lowest = first_hits(batch, float(loss.f_min), target_arr)
        hits[:, li] = first.reshape(n_opt, starts_per_loss, -1)
        best_gap[:, li] = lowest.reshape(n_opt, starts_per_loss)
        for reason, code in (("cancelled", Status.CANCELLED),
                             ("time_limit", Status.TIME_LIMIT)):
            if (batch.status == code).any():
                report.partial_reason = reason
        if report.partial_reason is not None:
            break
    return report


def first_hits(batch: RunBatch, f_min: float, targets: Array) -> tuple[Array, Array]:
    """(K, targets) evaluations at the first point with f − f_min ≤ target (inf: never),
    and (K,) the lowest gap, from the runs' recorded losses (padded with each run's last)."""
    trajectories = batch.trajectories or []
    length = max(t.step.size for t in trajectories)
    gaps = np.full((len(trajectories), length), np.inf)
    evals = np.zeros((len(trajectories), length))
    for k, t in enumerate(trajectories):  # (K, T) from ragged records: one copy per run
        n = t.step.size
        gaps[k, :n], evals[k, :n] = t.loss - f_min, t.evals
        gaps[k, n:], evals[k, n:] = gaps[k, n - 1], evals[k, n - 1]
    gaps = np.where(np.isfinite(gaps), gaps, np.inf)
    running = np.minimum.accumulate(gaps, axis=1)
    reached = running[:, :, None] <= targets[None, None, :]  # (K, T, targets)
    any_hit = reached.any(axis=1)
    first = np.argmax(reached, axis=1)  # (K, targets)
    cost = np.take_along_axis(evals, first, axis=1)
    # a run that diverged later still reached what it reached before
    return np.where(any_hit, cost, np.inf), running[:, -1]


def ecdf(report: BenchmarkReport) -> list[dict[str, Any]]:
    out = []
    for o, label in enumerate(report.labels):
        costs = report.hits[o].ravel()
        total = costs.size
        finite = np.sort(costs[np.isfinite(costs)])
        steps, counts = np.unique(finite, return_counts=True)
        out.append({"label": label, "evals": steps.astype(int).tolist(),
                    "fraction": (np.cumsum(counts) / total).tolist()})
    return out


def profile(report: BenchmarkReport) -> list[dict[str, Any]]:
    costs = report.hits.reshape(len(report.labels), -1)  # (optimizers, problems)
    best = np.min(costs, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(costs == best, 1.0, costs / np.maximum(best, 1.0))
    ratios = np.where(np.isfinite(costs), ratios, np.inf)
    taus = np.unique(ratios[np.isfinite(ratios)])
    total = costs.shape[1]
    out = []
    for o, label in enumerate(report.labels):
        mine = np.sort(ratios[o])
        fraction = np.searchsorted(mine, taus, side="right") / total
        out.append({"label": label, "tau": taus.tolist(), "fraction": fraction.tolist()})
    return out


def table(report: BenchmarkReport) -> list[dict[str, Any]]:
    rows = []
    for li, loss in enumerate(report.losses):
        for o, label in enumerate(report.labels):
            hits = report.hits[o, li]  # (starts, targets)
            solved = np.isfinite(hits)
            medians = [float(np.median(hits[solved[:, t], t])) if solved[:, t].any() else None
                       for t in range(hits.shape[1])]
            gap = float(np.min(report.best_gap[o, li]))
            rows.append({"loss": loss, "label": label, "runs": int(hits.shape[0]),
                         "solved": solved.mean(axis=0).tolist(), "median_evals": medians,
                         "best_gap": gap if np.isfinite(gap) else None})
    return rows
