"""The small-batch path: a few runs of a few coordinates, each advanced on Python floats.

At K = 1 a vectorised step is ~45 NumPy calls that cost ~1 µs each on arrays of two numbers,
so 1,000 Adam steps took ~58 ms, nearly all of it call overhead. Here each run goes through
the loss's float form (`point_value_grad`) and its rule's kernel, called per coordinate
with the float ops (`StepRule.elementwise`), and stopping, recording and the path
diagnostics are plain float arithmetic: ~2.1 µs a step (Adam on Rosenbrock, builtin; ~2.7 µs
on the expression).

The path gives the same RunBatch as the vectorised loop: same formulas in the same order of
operations, same stopping priority and recording rule (tests compare the two field by field).
Numbers agree to the last bit or two: NumPy's SIMD pow, sin, exp… round differently from
libm's in the last bit.
The runs go one after another, so one thing differs by design: a deadline or a cancel
reached during one run stops the runs after it at their step 0 rather than all runs at a
shared step. (A run that stops early keeps its own trajectory thinning on both paths: the
vectorised recorder assembles a stopped run before its next decimation.)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import mul
from typing import Any

from optim_core.engine.groups import RunGroup
from optim_core.engine.recording import FLOAT_PATH_FIELDS, PointLog, RecordSpec, Trajectory
from optim_core.engine.results import results_from_runs
from optim_core.engine.status import Reason, Status
from optim_core.engine.stopping import StopCriteria, run_verdict, steps_done
from optim_core.losses.base import Loss
from optim_core.optimizers.base import CAREFUL_FLOAT_OPS, FLOAT_OPS, Elementwise, Hyper
from optim_core.schedules import Schedule
from optim_core.types import Array

# A float run costs about (1.3 + 0.4·d) µs a step (Adam: 2.1 µs on 2-D Rosenbrock, 5.3 µs at
# d = 10), a vectorised step ~45 µs for any K up to ~32: the float path takes a batch when
# K·(d + 4) ≤ SMALL_WORK, which keeps it below ~3/4 of the vectorised cost (measured
# 2026-12-04, 300 Adam steps, float/vectorised time: K = 12 at d = 2, 0.63–0.71; K = 8 at
# d = 5, 0.57; K = 4 at d = 10, 0.51; past the bound, K = 16 at d = 2, 0.82–0.89).
SMALL_WORK = 72
SCHEDULE_BLOCK = 1024  # scheduled values are computed this many steps at a time
DEADLINE_MASK = 15  # the clock is read every 16 steps (~60 ns a read against ~3 µs a step)
_INF, _NAN = math.inf, math.nan
_RUNNING = int(Status.RUNNING)
_TIME_LIMIT, _CANCELLED = int(Status.TIME_LIMIT), int(Status.CANCELLED)


def fits(loss: Loss, groups: Sequence[RunGroup], k: int, d: int,
         record: RecordSpec | None = None) -> bool:
    """Whether the float path serves this batch (and is the faster one)."""
    return (0 < k and k * (d + 4) <= SMALL_WORK and not loss.stochastic
            and all(g.rule.elementwise is not None for g in groups)
            and (record is None or not record.enabled
                 or set(record.fields) <= set(FLOAT_PATH_FIELDS)))


@dataclass(slots=True)
class _Hyper:
    """One run's hyperparameters at step t: fixed values, plus blocks of scheduled ones."""

    values: Hyper  # the same attribute form as the vectorised path's columns: hp.lr
    scheduled: list[tuple[str, Schedule]]
    block_start: int = -SCHEDULE_BLOCK
    blocks: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> _Hyper:
        values: dict[str, Any] = {}
        scheduled = []
        for name, value in settings.items():
            if isinstance(value, Schedule) and value.name == "constant":
                values[name] = value.values["lr"]
            elif isinstance(value, Schedule):
                scheduled.append((name, value))
            else:
                values[name] = value
        return cls(Hyper(**values), scheduled)

    def at(self, t: int) -> Hyper:
        if self.scheduled:
            offset = t - self.block_start
            if offset >= SCHEDULE_BLOCK:
                self.block_start, offset = t, 0
                self.blocks = {name: s.table(t, SCHEDULE_BLOCK) for name, s in self.scheduled}
            for name, block in self.blocks.items():
                setattr(self.values, name, block[offset])
        return self.values


def run_small(
    loss: Loss,
    groups: list[RunGroup],
    starts: Array,
    *,
    max_steps: Array,  # (K,) int
    stop: StopCriteria,
    record: RecordSpec,
    deadline: float | None,
    cancel: Callable[[], bool] | None,
    progress: Callable[[int, int, int], None] | None,
    progress_every: int,
    rate_window: int,
    yield_every: int,
) -> tuple[dict[str, Array], list[Trajectory] | None]:
    """Run every row of `starts` on floats: the RESULT_FIELDS, one row per run, and the
    trajectories (None when nothing is recorded)."""
    k, d = starts.shape
    longest = int(max_steps.max())
    every = max(1, progress_every)
    yields = threading.current_thread() is not threading.main_thread()
    outcomes: list[dict[str, Any]] = []  # each run's RESULT_FIELDS
    trajectories: list[Trajectory] = []
    row = 0
    for group in groups:
        rule = group.rule.elementwise
        assert rule is not None  # fits() checked it
        for j in range(group.size):
            log = PointLog(record, d, longest) if record.enabled else None
            report = None if progress is None else _progress_for(progress, row, k, longest)
            outcome, trajectory = _run_one(
                loss.point_value_grad, rule, _Hyper.of(group.settings[j]),
                starts[row].tolist(), int(max_steps[row]), stop, log, deadline, cancel,
                report, every, yield_every if yields else 0, rate_window)
            outcomes.append(outcome)
            if trajectory is not None:
                trajectories.append(trajectory)
            row += 1
    results = results_from_runs(outcomes, d, rate_window)
    if progress is not None:
        progress(steps_done(results["status"], results["steps"], longest), longest, 0)
    return results, (trajectories if record.enabled else None)


def _progress_for(progress: Callable[[int, int, int], None], row: int, k: int, longest: int
                  ) -> Callable[[int], None]:
    """Report run `row` at step t as the share of the whole batch done, in steps of `longest`."""
    def report(t: int) -> None:
        progress(int((row * longest + t) / k), longest, k - row)
    return report


def _run_one(value_grad: Callable[[list[float]], tuple[float, list[float]]], rule: Elementwise,
             hyper: _Hyper, params: list[float], max_steps: int, stop: StopCriteria,
             log: PointLog | None, deadline: float | None, cancel: Callable[[], bool] | None,
             report: Callable[[int], None] | None, every: int, yield_every: int,
             rate_window: int) -> tuple[dict[str, Any], Trajectory | None]:
    """The vectorised loop's step for one run: evaluate, check, record, step (see loop.py).

    `yield_every` > 0 sleeps 0 s every that many steps (the GIL hand-over of the loop).
    """
    d = len(params)
    states = [tuple(rule.state.values())] * d  # each coordinate's state (tuples: replaced)
    coefficients, kernel, ops = rule.coefficients, rule.kernel, FLOAT_OPS
    grad_tol, factor = stop.grad_tol, stop.divergence_factor
    rare = stop.loss_tol is not None or stop.step_tol is not None or stop.patience is not None
    isfinite, sqrt, monotonic = math.isfinite, math.sqrt, time.monotonic
    hp = hyper.at(0)
    lr = getattr(hp, "lr", _NAN)  # a rule without lr records nan, as the vectorised path does
    scheduled = bool(hyper.scheduled)
    record_every = log.stride if log is not None else 0
    log_steps, log_rows = (log.steps, log.rows) if log is not None else ([], [])
    capacity = log.capacity if log is not None else 0
    ring = [_NAN] * rate_window
    prev_step = [0.0] * d  # the last step, to count sign flips
    best, last_improvement, path_length, flips = _INF, 0, 0.0, 0
    f0 = blow_up = _NAN
    last_step_norm: float | None = None
    last_lr = _NAN
    t = 0
    while True:
        value, grads = value_grad(params)
        grad_norm = sqrt(sum(map(mul, grads, grads)))
        if t == 0:
            f0 = value
            blow_up = factor * max(1.0, abs(f0))
        # the cheap screen of loop.py; the full check only when something may stop
        if (rare or t >= max_steps or grad_norm <= grad_tol or not value - f0 <= blow_up
                or not isfinite(value + grad_norm + sum(params))):
            status, reason = run_verdict(
                stop, t=t, max_steps=max_steps, values=value, grad_norms=grad_norm,
                params=params, f0=f0, last_step_norm=last_step_norm,
                last_improvement=last_improvement)
        else:
            status = _RUNNING
        if value < best:  # as np.fmin from +inf: a nan never becomes the best
            best = value
            last_improvement = t
        ring[t % rate_window] = value
        if scheduled:
            hp = hyper.at(t)
            lr = getattr(hp, "lr", _NAN)
        if record_every and t % record_every == 0:
            if len(log_steps) < capacity:  # PointLog.write without the call, while not full
                log_steps.append(t)
                log_rows.append((params, value, grad_norm, lr))
            else:
                log.write(t, params, value, grad_norm, lr)  # type: ignore[union-attr]
                record_every = log.stride  # type: ignore[union-attr]
        if status == _RUNNING:
            if deadline is not None and not t & DEADLINE_MASK and monotonic() >= deadline:
                status, reason = _TIME_LIMIT, int(Reason.TIME_LIMIT)
            elif cancel is not None and t % every == 0 and cancel():
                status, reason = _CANCELLED, int(Reason.CANCELLED)
        if status != _RUNNING:
            break
        try:
            c = coefficients(ops, hp, t)
        except ValueError:  # math.sqrt of a negative: NumPy's nan instead (see base.py)
            c = coefficients(CAREFUL_FLOAT_OPS, hp, t)
        squares = 0.0
        moved = []
        for i, p in enumerate(params):  # the rule's kernel, then the step's bookkeeping
            try:
                s, states[i] = kernel(c, grads[i], p, states[i])
            except ValueError:
                careful = coefficients(CAREFUL_FLOAT_OPS, hp, t)
                s, states[i] = kernel(careful, grads[i], p, states[i])
            squares += s * s
            if s * prev_step[i] < 0.0:
                flips += 1
            prev_step[i] = s
            moved.append(p + s)
        params = moved
        last_step_norm = sqrt(squares)
        path_length += last_step_norm
        last_lr = lr  # the α of the step just taken
        t += 1
        if yield_every and t % yield_every == 0:
            time.sleep(0)  # hand the GIL over, as the vectorised loop does
        if report is not None and t % every == 0:
            report(t)
    outcome = {"status": status, "reason": reason, "steps": t, "final_params": params,
               "final_loss": value, "final_grad_norm": grad_norm, "final_lr": lr,
               "initial_loss": f0, "best_loss": best, "path_length": path_length,
               "flips": flips, "recent_losses": ring, "hess_evals": 0.0,
               "final_step_size": last_lr, "final_evals": t + 1.0}
    trajectory = None if log is None else log.trajectory(t, (params, value, grad_norm, lr))
    return outcome, trajectory
