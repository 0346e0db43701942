"""Request models → optim_core objects and core reports → response bodies: the only glue.

Every function here is synchronous and runs on a compute worker, never on the event loop.
Limits are checked after the loss is built (its dimension is needed) and before any run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from pydantic import BaseModel

from optim_core import (
    ExpressionLimits,
    LimitExceededError,
    RecordSpec,
    StopCriteria,
    optimize,
    resolve_starts,
    sweep,
)
from optim_core.analyze import analyze
from optim_core.answers import (
    AnalyzeResponse,
    CompareResponse,
    LandscapeResponse,
    Meta,
    OptimizeResponse,
    SweepResponse,
)
from optim_core.api import compare
from optim_core.engine.status import Status
from optim_core.errors import DimensionError, OptimCoreError
from optim_core.landscape import landscape, resolve_axes
from optim_core.losses.base import Loss
from optim_core.losses.catalog import builtin_loss
from optim_core.losses.dataset import dataset_loss
from optim_core.losses.expression import cached_expression_loss, expression_loss, tape_length
from optim_core.losses.quadratic import QuadraticLoss
from optim_core.optimizers import OPTIMIZERS
from optim_core.plan import build_groups, check_bounds, step_cost, validate_grid
from service.schemas import losses as L
from service.schemas.optimizers import optimizer_settings
from service.schemas.requests import (
    AnalyzeRequest,
    CompareRequest,
    LandscapeRequest,
    OptimizeRequest,
    RandomStart,
    RunOptions,
    SweepRequest,
)
from service.settings import Settings
from service.symbolic import IsolatedDeriver

JOBS_HINT = "; submit larger work as a job with POST /v1/jobs"


def _over(limit: str, value: float, maximum: float, what: str, hint: str = JOBS_HINT) -> None:
    if value > maximum:
        raise LimitExceededError(
            f"{what} is {value:,.0f}, over the limit of {maximum:,.0f} (setting "
            f"OPTIM_{limit.upper()}){hint}", limit=limit, value=value, maximum=maximum)


def _expression_limits(settings: Settings) -> ExpressionLimits:
    return ExpressionLimits(
        max_length=settings.max_expression_length, max_nodes=settings.max_expression_nodes,
        max_depth=settings.max_expression_depth, max_variables=settings.max_expression_variables)


def build_loss(spec: Any, settings: Settings) -> Loss:
    """The core loss for a `loss` object."""
    if isinstance(spec, L.ExpressionLossSpec):
        limits = _expression_limits(settings)
        deriver = (IsolatedDeriver(settings.symbolic_timeout_s, settings.symbolic_workers)
                   if settings.symbolic_isolation else None)
        return expression_loss(spec.expression, spec.variables, limits, deriver)
    if isinstance(spec, L.BuiltinLossSpec):
        _over("max_dim", spec.dim or 2, settings.max_dim, "dim", "")
        return builtin_loss(spec.name, spec.dim, spec.params)
    if isinstance(spec, L.QuadraticLossSpec):
        _over("max_dim", len(spec.A), settings.max_dim, "The dimension of A", "")
        return QuadraticLoss(np.array(spec.A, dtype=float) if _rectangular(spec.A)
                             else np.array([], dtype=float),
                             None if spec.b is None else np.array(spec.b, dtype=float), spec.c)
    return dataset_loss(spec.model_dump(), max_values=settings.max_dataset_values,
                        max_dim=settings.max_dim)


INLINE_MAX_DIM = 10  # the largest loss dimension a request may have to run inline
INLINE_TAPE = 20  # tape instructions a step of an expression may take at the plain rate


def is_small(body: OptimizeRequest | CompareRequest, settings: Settings) -> bool:
    """Whether the request is at most a few milliseconds of first-order work on a loss that
    is ready (builtin, quadratic or an expression in the cache): such a request runs on the
    event loop (see ComputeGate.run). Anything that may take longer, a Hessian rule, data,
    or a symbolic stage in the worker process, goes to a worker thread."""
    specs = body.optimizers if isinstance(body, CompareRequest) else [body.optimizer]
    if any(OPTIMIZERS[spec.name].needs_context for spec in specs):
        return False
    work = _start_count(body.start) * len(specs) * max(body.max_steps, 1)
    if work > settings.inline_max_work:
        return False
    loss = body.loss
    if isinstance(loss, L.BuiltinLossSpec):
        return (loss.dim or 2) <= INLINE_MAX_DIM
    if isinstance(loss, L.QuadraticLossSpec):
        return len(loss.A) <= INLINE_MAX_DIM
    if isinstance(loss, L.ExpressionLossSpec):
        ready = cached_expression_loss(loss.expression, loss.variables,
                                       _expression_limits(settings))
        # a long tape makes every step dearer: count it in the work (Rosenbrock's has 15)
        return (ready is not None and ready.dim <= INLINE_MAX_DIM and
                work * max(1.0, tape_length(ready) / INLINE_TAPE) <= settings.inline_max_work)
    return False


def _start_count(start: Any) -> int:
    if isinstance(start, RandomStart):
        return start.random.n
    if isinstance(start, list) and start and isinstance(start[0], list):
        return len(start)
    return 1


def run_steps(body: Any) -> int:
    """Runs × max_steps a request asks for, read from its body alone (a key's
    max_run_steps): starts × optimizers × grid points × max_steps."""
    inner = getattr(body, "request", None)
    if inner is not None and hasattr(inner, "max_steps"):  # a plot's request
        return run_steps(inner)
    if not hasattr(body, "max_steps"):
        return 0
    runs = _start_count(getattr(body, "start", None))
    runs *= len(getattr(body, "optimizers", None) or [None])
    runs *= getattr(body, "trials", 1)  # tune: trials per optimizer
    for values in (getattr(body, "grid", None) or {}).values():
        runs *= max(1, len(values))
    return runs * max(1, body.max_steps)


def _rectangular(rows: list[list[float]]) -> bool:
    return len({len(r) for r in rows}) == 1


def _starts(body: RunOptions, loss: Loss, settings: Settings) -> np.ndarray:
    start = body.start
    if isinstance(start, RandomStart):
        _over("max_runs", start.random.n, settings.max_runs, "random.n")
        start = {"random": start.random.model_dump()}
    elif isinstance(start, list) and start and isinstance(start[0], list):
        if len({len(p) for p in start}) != 1:
            raise DimensionError("All start points need the same number of coordinates",
                                 loc=["start"])
    return resolve_starts(loss, start, body.seed)


def _check_work(runs: int, body: RunOptions, loss: Loss, rules: list[str], settings: Settings,
                *, recorded: bool) -> None:
    dim = loss.dim
    _over("max_runs", runs, settings.max_runs, "The number of runs")
    _over("max_steps", body.max_steps, settings.max_steps, "max_steps")
    per_run_step = max(step_cost(loss, rule) for rule in rules)
    _over("max_work", runs * max(body.max_steps, 1) * per_run_step, settings.max_work,
          "The estimated work (runs × steps × cost of one step for this loss and optimizer)")
    if recorded:
        _over("max_points", body.record.max_points, settings.max_points, "record.max_points", "")
        points = min(body.record.max_points, body.max_steps // body.record.every + 2)
        per_point = (dim if "params" in body.record.fields else 0) + len(body.record.fields)
        _over("max_recorded_values", runs * points * per_point, settings.max_recorded_values,
              "The recorded trajectory size (runs × points × values)")


def _stop(body: RunOptions) -> StopCriteria:
    s = body.stop
    return StopCriteria(s.grad_tol, s.loss_tol, s.step_tol, s.divergence_factor, s.patience)


def _record(body: RunOptions) -> RecordSpec:
    r = body.record
    return RecordSpec(every=r.every, max_points=r.max_points, fields=tuple(r.fields))


def time_budget(body: Any, settings: Settings) -> float:
    """Seconds a synchronous request may take: the setting, or less when the body asks."""
    asked = getattr(body, "time_budget_s", None)
    return settings.request_timeout_s if asked is None else min(settings.request_timeout_s,
                                                                asked)


def _deadline(body: RunOptions, settings: Settings) -> float:
    return time.monotonic() + time_budget(body, settings)


def _meta(report_batch: Any, body: RunOptions, began: float) -> Meta:
    meta: Meta = {
        "runs": int(report_batch.status.shape[0]),
        "max_steps": body.max_steps,
        "engine_steps": report_batch.engine_steps,
        "steps_computed": int(report_batch.steps.sum()),
        "seed": body.seed,
        "elapsed_ms": round((time.perf_counter() - began) * 1000, 3),
    }
    if report_batch.path:
        meta["engine"] = report_batch.path
    if report_batch.path == "fused":
        meta["compile_ms"] = round(report_batch.compile_s * 1000, 3)
    return meta


def run_optimize(body: OptimizeRequest | CompareRequest, settings: Settings,
                 dry_run: bool = False, loss: Loss | None = None, **engine: Any
                 ) -> OptimizeResponse | CompareResponse | None:
    """Answer /v1/optimize and /v1/compare (the latter adds `summary` and `findings`).

    With dry_run, only build and check (the job endpoint's validation) and answer None;
    `loss` is the already built loss of `body`, when the caller has it.
    """
    began = time.perf_counter()
    loss = loss if loss is not None else build_loss(body.loss, settings)
    _over("max_dim", loss.dim, settings.max_dim, "The dimension", "")
    starts = _starts(body, loss, settings)
    specs = (body.optimizers if isinstance(body, CompareRequest) else [body.optimizer])
    optimizers = [optimizer_settings(o) for o in specs]
    _check_work(len(optimizers) * starts.shape[0], body, loss, [o["name"] for o in optimizers],
                settings, recorded=True)
    with _optimizer_loc(body):
        if dry_run:
            build_groups(optimizers, 1)  # hyperparameters the schema cannot check (schedules)
            check_bounds(loss, body.bounds, starts)
            return None
        engine.setdefault("deadline", _deadline(body, settings))
        options = dict(max_steps=body.max_steps, stop=_stop(body), record=_record(body),
                       seed=body.seed, eval_every=settings.eval_every, bounds=body.bounds,
                       **engine)
        if isinstance(body, CompareRequest):
            report, summary, finding = compare(loss, optimizers, starts, **options)
        else:
            report = optimize(loss, optimizers, starts, **options)
    meta = _meta(report.batch, body, began)
    meta["optimizers"] = report.optimizers
    answer: OptimizeResponse = {"loss": loss.describe(), "runs": report.runs, "meta": meta}
    if isinstance(body, CompareRequest):
        answer = {**answer, "summary": summary, "findings": [finding] if finding else []}
    return _mark_partial(answer, report.batch)


@contextmanager
def _optimizer_loc(body: OptimizeRequest | CompareRequest) -> Iterator[None]:
    """The core names an optimizer by its place in a list (`optimizers.0`); an optimize body
    has one `optimizer`, so its errors point there."""
    try:
        yield
    except OptimCoreError as exc:
        loc = exc.loc or []
        if not isinstance(body, CompareRequest) and loc[:2] == ["optimizers", 0]:
            exc.loc = ["optimizer", *loc[2:]]
        raise


def run_sweep(body: SweepRequest, settings: Settings, dry_run: bool = False, **engine: Any
              ) -> SweepResponse | None:
    """Answer /v1/sweep: the whole grid × starts as one batch (dry_run: only check)."""
    began = time.perf_counter()
    loss = build_loss(body.loss, settings)
    starts = _starts(body, loss, settings)
    points = 1
    for values in body.grid.values():
        points *= len(values)
    _check_work(points * starts.shape[0], body, loss, [body.optimizer.name], settings,
                recorded=body.include_runs)
    if dry_run:
        validate_grid(optimizer_settings(body.optimizer), _grid(body))
        check_bounds(loss, body.bounds, starts)
        return None
    engine.setdefault("deadline", _deadline(body, settings))
    result = sweep(loss, optimizer_settings(body.optimizer), _grid(body), starts,
                   max_steps=body.max_steps, stop=_stop(body), record=_record(body),
                   include_runs=body.include_runs, seed=body.seed,
                   eval_every=settings.eval_every, bounds=body.bounds, **engine)
    answer: SweepResponse = {"loss": loss.describe(), "rows": result.rows, "best": result.best,
                             "meta": _meta(result.batch, body, began)}
    if result.runs is not None:
        answer["runs"] = result.runs
    return _mark_partial(answer, result.batch)


def _mark_partial(answer: Any, batch: Any) -> Any:
    """`partial: true` and why, when some run was stopped before it ended on its own (a job's
    cancel wins over the time budget: it is what the user did)."""
    status = batch.status
    for reason, code in (("cancelled", Status.CANCELLED), ("time_limit", Status.TIME_LIMIT)):
        if (status == code).any():
            answer["partial"], answer["partial_reason"] = True, reason
            break
    return answer


def _grid(body: SweepRequest) -> dict[str, list[Any]]:
    """The grid as plain values (schedule objects as the dicts the user sent)."""
    return {key: [v.model_dump(exclude_unset=True, exclude_none=True)
                  if isinstance(v, BaseModel) else v for v in values]
            for key, values in body.grid.items()}


def run_landscape(body: LandscapeRequest, settings: Settings) -> LandscapeResponse:
    loss = build_loss(body.loss, settings)
    nx, ny = body.resolution
    _over("max_landscape_points", nx * ny, settings.max_landscape_points,
          "The grid size (nx × ny)", "")
    _over("max_work", nx * ny * step_cost(loss, "sgd"), settings.max_work,
          "The estimated work of the landscape (grid points × cost of one evaluation)", "")
    axes = resolve_axes(loss, body.axes)
    x, y, z = landscape(loss, None if body.bounds is None else _box(body.bounds),
                        (nx, ny), list(axes), body.fixed,
                        deadline=time.monotonic() + settings.request_timeout_s)
    return {"x": x, "y": y, "z": z, "axes": list(axes),
            "variables": [loss.names[a] for a in axes], "loss": loss.describe()}


def _box(bounds: list[list[float]]) -> np.ndarray:
    if len(bounds) != 2 or any(len(b) != 2 for b in bounds):
        raise DimensionError("bounds must be [[lo, hi], [lo, hi]]", loc=["bounds"])
    return np.array(bounds, dtype=float)


def run_analyze(body: AnalyzeRequest, settings: Settings) -> AnalyzeResponse:
    loss = build_loss(body.loss, settings)
    points = body.points
    if points is None:
        if loss.default_start is None:
            raise DimensionError("Give `points` to analyse", loc=["points"])
        points = [loss.default_start.tolist()]
    elif points and not isinstance(points[0], list):
        points = [points]  # one point
    _over("max_analyze_points", len(points), settings.max_analyze_points, "The number of points",
          "")
    if len({len(p) for p in points}) > 1:
        raise DimensionError("All points need the same number of coordinates", loc=["points"])
    if not points:
        raise DimensionError("Give at least one point", loc=["points"])
    _over("max_work", len(points) * step_cost(loss, "newton"), settings.max_work,
          "The estimated work of the analysis (points × cost of a Hessian and its "
          "eigenvalues)", "")
    return {"loss": loss.describe(), "points": analyze(
        loss, np.array(points, dtype=float),
        deadline=time.monotonic() + settings.request_timeout_s)}


def _drawable(bounds: np.ndarray) -> bool:
    """Whether matplotlib can lay out ticks on these bounds: a finite span that float64 can
    still divide into ticks."""
    with np.errstate(over="ignore", invalid="ignore"):
        span = bounds[:, 1] - bounds[:, 0]
        size = np.abs(bounds).max(axis=1)
        return bool(np.all(np.isfinite(span)) and np.all(span > 1e-9 * size))
