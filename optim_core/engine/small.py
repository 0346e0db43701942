"""The small-batch path: a few runs of a few coordinates, each advanced on Python floats.

At K = 1 a vectorised step is ~45 NumPy calls that cost ~1 µs each on arrays of two numbers,
so 1,000 Adam steps took ~58 ms, nearly all of it call overhead. Here each run goes through
the loss's float form (`point_value_grad`) and its rule's float form (`StepRule.floats`),
and stopping, recording and the path diagnostics are plain float arithmetic: ~2.2 µs a step
(Adam on Rosenbrock, builtin; ~2.7 µs on the expression).

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

import numpy as np

from optim_core.engine.groups import RunGroup
from optim_core.engine.recording import PointLog, RecordSpec, Trajectory
from optim_core.engine.status import Reason, Status, at_tolerance
from optim_core.engine.stopping import StopCriteria, run_verdict
from optim_core.losses.base import Loss
from optim_core.optimizers.base import FloatRule
from optim_core.schedules import Schedule
from optim_core.types import Array

# A float run costs about (3 + 0.7·d) µs a step (Adam on Rosenbrock: 4.5 µs at d = 2, 9.8 µs
# at d = 10), a vectorised step ~60 µs for any K up to ~16: the float path takes a batch when
# K·(d + 4) ≤ SMALL_WORK, which keeps it below ~3/4 of the vectorised cost (K ≤ 8 at d = 2).
# (Measured 2026-11; the float step has since become ~2× cheaper, so the bound is cautious.)
SMALL_WORK = 48
SCHEDULE_BLOCK = 1024  # scheduled values are computed this many steps at a time
DEADLINE_MASK = 15  # the clock is read every 16 steps (~60 ns a read against ~3 µs a step)
_INF, _NAN = math.inf, math.nan
_RUNNING = int(Status.RUNNING)
_TIME_LIMIT, _CANCELLED = int(Status.TIME_LIMIT), int(Status.CANCELLED)


def fits(loss: Loss, groups: Sequence[RunGroup], k: int, d: int) -> bool:
    """Whether the float path serves this batch (and is the faster one)."""
    return (0 < k and k * (d + 4) <= SMALL_WORK and not loss.stochastic
            and all(g.rule.floats is not None for g in groups))


@dataclass(slots=True)
class _Outcome:
    """What one run measured (the fields of a RunBatch row)."""

    status: int
    reason: int
    steps: int
    final_params: list[float]
    final_loss: float
    final_grad_norm: float
    final_lr: float
    initial_loss: float
    best_loss: float
    path_length: float
    flips: int
    ring: list[float]
    trajectory: Trajectory | None = None


@dataclass(slots=True)
class _Hyper:
    """One run's hyperparameters at step t: fixed values, plus blocks of scheduled ones."""

    values: dict[str, Any]
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
        return cls(values, scheduled)

    def at(self, t: int) -> dict[str, Any]:
        if self.scheduled:
            offset = t - self.block_start
            if offset >= SCHEDULE_BLOCK:
                self.block_start, offset = t, 0
                self.blocks = {name: s.table(t, SCHEDULE_BLOCK) for name, s in self.scheduled}
            for name, block in self.blocks.items():
                self.values[name] = block[offset]
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
) -> dict[str, Any]:
    """Run every row of `starts` on floats; return the RunBatch fields, one row per run."""
    k, d = starts.shape
    longest = int(max_steps.max())
    every = max(1, progress_every)
    yields = threading.current_thread() is not threading.main_thread()
    outcomes: list[_Outcome] = []
    row = 0
    for group in groups:
        rule = group.rule.floats
        assert rule is not None  # fits() checked it
        for j in range(group.size):
            log = PointLog(record, d, longest) if record.enabled else None
            report = None if progress is None else _progress_for(progress, row, k, longest)
            outcomes.append(_run_one(
                loss.point_value_grad, rule, _Hyper.of(group.settings[j]),
                starts[row].tolist(), int(max_steps[row]), stop, log, deadline, cancel,
                report, every, yield_every if yields else 0, rate_window))
            row += 1
    if progress is not None:
        progress(max((o.steps for o in outcomes), default=0), longest, 0)
    return _columns(outcomes, d)


def _progress_for(progress: Callable[[int, int, int], None], row: int, k: int, longest: int
                  ) -> Callable[[int], None]:
    """Report run `row` at step t as the share of the whole batch done, in steps of `longest`."""
    def report(t: int) -> None:
        progress(int((row * longest + t) / k), longest, k - row)
    return report


def _run_one(value_grad: Callable[[list[float]], tuple[float, list[float]]], rule: FloatRule,
             hyper: _Hyper, params: list[float], max_steps: int, stop: StopCriteria,
             log: PointLog | None, deadline: float | None, cancel: Callable[[], bool] | None,
             report: Callable[[int], None] | None, every: int, yield_every: int,
             rate_window: int) -> _Outcome:
    """The vectorised loop's step for one run: evaluate, check, record, step (see loop.py).

    `yield_every` > 0 sleeps 0 s every that many steps (the GIL hand-over of the loop).
    """
    d = len(params)
    state = [[0.0] * d for _ in range(rule.n_state)]
    step_fn = rule.step
    grad_tol, factor = stop.grad_tol, stop.divergence_factor
    rare = stop.loss_tol is not None or stop.step_tol is not None or stop.patience is not None
    isfinite, sqrt, monotonic = math.isfinite, math.sqrt, time.monotonic
    hp = hyper.at(0)
    lr = hp.get("lr", _NAN)  # a rule without lr records nan, as the vectorised path does
    scheduled = bool(hyper.scheduled)
    record_every = log.stride if log is not None else 0
    log_steps, log_rows = (log.steps, log.rows) if log is not None else ([], [])
    capacity = log.capacity if log is not None else 0
    ring = [_NAN] * rate_window
    prev_step = [0.0] * d
    best, last_improvement, path_length, flips = _INF, 0, 0.0, 0
    f0 = blow_up = _NAN
    last_step_norm: float | None = None
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
            lr = hp.get("lr", _NAN)
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
        step = step_fn(grads, state, params, hp, t)
        squares = 0.0
        moved = []
        for p, s, before in zip(params, step, prev_step):  # all d long (pyproject: B905)
            squares += s * s
            if s * before < 0.0:
                flips += 1
            moved.append(p + s)
        params = moved
        last_step_norm = sqrt(squares)
        path_length += last_step_norm
        prev_step = step
        t += 1
        if yield_every and t % yield_every == 0:
            time.sleep(0)  # hand the GIL over, as the vectorised loop does
        if report is not None and t % every == 0:
            report(t)
    outcome = _Outcome(status, reason, t, params, value, grad_norm, lr, f0, best, path_length,
                       flips, ring)
    if log is not None:
        outcome.trajectory = log.trajectory(t, (params, value, grad_norm, lr))
    return outcome


def _columns(outcomes: list[_Outcome], d: int) -> dict[str, Any]:
    # one array per dtype, its rows the columns: an np.array call costs more than K = 1 data
    status, reason, steps = np.array([(o.status, o.reason, o.steps) for o in outcomes],
                                     dtype=np.int64).reshape(-1, 3).T.copy()
    final_loss, final_grad_norm, initial_loss, best_loss, path_length, flips = np.array(
        [(o.final_loss, o.final_grad_norm, o.initial_loss, o.best_loss, o.path_length, o.flips)
         for o in outcomes], dtype=float).reshape(-1, 6).T.copy()
    reason = reason.astype(np.int8)
    return {
        "status": status.astype(np.int8), "reason": reason, "steps": steps,
        "final_params": np.array([o.final_params for o in outcomes], dtype=float).reshape(-1, d),
        "final_loss": final_loss, "final_grad_norm": final_grad_norm,
        "initial_loss": initial_loss, "best_loss": best_loss,
        "steps_to_tol": np.where(at_tolerance(reason), steps, -1),
        "path_length": path_length, "flips": flips,
        "recent_losses": np.array([o.ring for o in outcomes], dtype=float),
        "grad_evals": steps + 1.0, "hess_evals": np.zeros(len(outcomes)),
        "trajectories": [o.trajectory for o in outcomes] if outcomes and
        outcomes[0].trajectory is not None else None,
    }
