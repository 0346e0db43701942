"""The public entry points: run optimizers on a loss and get JSON-ready reports.

Each is the three stages in a row: plan (optim_core/plan.py: starts, groups, grid), run
(optim_core/shards.py: one batch, or shards on an executor, with the same answer) and report
(optim_core/reports.py: per-run reports, summaries, sweep rows). `optimize` runs every
optimizer × start (optimizer-major rows); `sweep` runs a hyperparameter grid × starts and
aggregates per grid point. Limits and the deadline are arguments; nothing here knows about
HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from optim_core.engine.loop import ProgressFn
from optim_core.engine.recording import RecordSpec
from optim_core.engine.stopping import StopCriteria
from optim_core.losses.base import Loss
from optim_core.plan import check_bounds, plan_optimize, plan_sweep, resolve_starts
from optim_core.reports import (
    BatchReport,
    SweepReport,
    compare_summary_finding,
    optimize_report,
    summarize,
    sweep_report,
)
from optim_core.shards import EngineOptions, ShardExecutor, execute
from optim_core.types import Array

__all__ = ["BatchReport", "SweepReport", "compare", "optimize", "resolve_starts", "summarize",
           "sweep"]


def optimize(
    loss: Loss,
    optimizers: Sequence[Mapping[str, Any]],
    starts: Array,
    *,
    max_steps: int = 1000,
    stop: StopCriteria | None = None,
    record: RecordSpec | None = None,
    seed: int | None = None,
    deadline: float | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: ProgressFn | None = None,
    eval_every: int = 10,
    with_runs: bool = True,
    executor: ShardExecutor | None = None,
    shards: Sequence[Array] | None = None,
    bounds: Array | None = None,
) -> BatchReport:
    """Run every optimizer from every start (one batch, or shards: the same answer); reports
    in optimizer-major order. `bounds` (d, 2): the box every run stays in."""
    plan = plan_optimize(loss, optimizers, starts, EngineOptions(
        max_steps, stop or StopCriteria(), record or RecordSpec(), seed, eval_every,
        bounds=check_bounds(loss, bounds, starts)))
    batch = execute(plan, shards=shards, executor=executor, deadline=deadline, cancel=cancel,
                    progress=progress)
    return optimize_report(plan, batch, with_runs)


def compare(loss: Loss, optimizers: Sequence[Mapping[str, Any]], starts: Array,
            **options: Any) -> tuple[BatchReport, list[dict[str, Any]], dict[str, Any] | None]:
    """`optimize`, plus the ranked per-optimizer summary and one comparative finding."""
    report = optimize(loss, optimizers, starts, **options)
    summary = summarize(report.runs, report.labels, report.optimizers, report.starts.shape[0])
    start_lam = report.extras["start_eigenvalues"]
    finding = compare_summary_finding(summary, None if start_lam is None else start_lam[0])
    return report, summary, finding


def sweep(
    loss: Loss,
    base: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    starts: Array,
    *,
    max_steps: int = 1000,
    stop: StopCriteria | None = None,
    record: RecordSpec | None = None,
    include_runs: bool = False,
    seed: int | None = None,
    deadline: float | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: ProgressFn | None = None,
    eval_every: int = 10,
    executor: ShardExecutor | None = None,
    shards: Sequence[Array] | None = None,
    bounds: Array | None = None,
) -> SweepReport:
    """Every grid point × start (one batch, or shards: the same answer); one aggregated row
    per point."""
    record = (record or RecordSpec()) if include_runs else RecordSpec(enabled=False)
    plan = plan_sweep(loss, base, grid, starts,
                      EngineOptions(max_steps, stop or StopCriteria(), record, seed, eval_every,
                                    bounds=check_bounds(loss, bounds, starts)))
    batch = execute(plan, shards=shards, executor=executor, deadline=deadline, cancel=cancel,
                    progress=progress)
    return sweep_report(plan, batch, include_runs)


def start_stability_limit(loss: Loss, start: Array
                          ) -> Callable[[str, Mapping[str, Any]], float | None]:
    """2/λmax-style stability limit of a rule at `start` (None where no quadratic model
    applies or the Hessian is not affordable): what the tune findings quote."""
    from optim_core.findings import stability_limit
    from optim_core.optimizers import OPTIMIZERS
    from optim_core.reports import _hessian_eigenvalues

    lam = _hessian_eigenvalues(loss, np.asarray(start, dtype=float)[None, :])
    lam_max = None if lam is None or not np.all(np.isfinite(lam[0])) else float(np.max(lam[0]))

    def limit(name: str, settings: Mapping[str, Any]) -> float | None:
        if lam_max is None or lam_max <= 0:
            return None
        momentum = settings.get("momentum", 0.0)
        return stability_limit(OPTIMIZERS[name], lam_max,
                               float(momentum) if isinstance(momentum, int | float) else 0.0)

    return limit
