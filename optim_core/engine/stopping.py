"""Stopping criteria and the per-step check that turns them into statuses for active rows.

Priority when several hold at once: non-finite, blow-up, grad_tol, loss_tol, step_tol,
patience, max_steps. A run diverges when its loss, gradient or parameters stop being finite,
or when f − f₀ > divergence_factor·max(1, |f₀|) (sign-safe: a loss that starts negative or
near zero still needs a real rise).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from optim_core.engine.status import Reason, Status
from optim_core.types import Array

_RUNNING = int(Status.RUNNING)
# Plain ints in the hot path: attribute access on IntEnum members costs microseconds.
_CODES = (int(Status.DIVERGED), int(Status.CONVERGED), int(Status.STALLED), int(Status.MAX_STEPS))
_R_NON_FINITE, _R_BLOW_UP, _R_GRAD_TOL, _R_LOSS_TOL, _R_STEP_TOL, _R_PATIENCE, _R_MAX_STEPS = (
    int(Reason.NON_FINITE), int(Reason.BLOW_UP), int(Reason.GRAD_TOL), int(Reason.LOSS_TOL),
    int(Reason.STEP_TOL), int(Reason.PATIENCE), int(Reason.MAX_STEPS))


@dataclass(frozen=True, slots=True)
class StopCriteria:
    grad_tol: float = 1e-8
    loss_tol: float | None = None
    step_tol: float | None = None
    divergence_factor: float = 1e8
    patience: int | None = None


def screen(
    criteria: StopCriteria,
    *,
    t: int,
    values: Array,
    grad_squares: Array,
    params: Array,
    blow_up_at: Array,
    converge_checked: bool,
) -> bool:
    """A cheap test of whether any active row may stop at step t (then call check_termination).

    Non-finite values, blow-up and grad_tol in a few array operations; the rarer criteria
    (loss_tol, step_tol, patience, max_steps) are always passed on to the full check. It takes
    the squared gradient norms, so the roots are taken only for steps that go on to the full
    check: the smallest norm is the root of the smallest square (a correctly rounded root is
    monotone), and a square that overflows only costs a full check.
    """
    if (criteria.loss_tol is not None or criteria.step_tol is not None
            or criteria.patience is not None):
        return True
    # Whole-array sums, not row sums (a reduction along a short axis 1 is slow): a nan or
    # inf anywhere makes the total non-finite; an overflowing total only costs a full check.
    # Sums, not a dot product of values and squares (one call fewer, but BLAS runs a long
    # dot product on every core: twice the CPU time at K = 65,536). (The loop runs under
    # np.errstate(over/invalid="ignore"): a context here cost ~3 µs a step.)
    total = float(values.sum() + grad_squares.sum() + params.sum())
    if not math.isfinite(total) or (values > blow_up_at).any():
        return True
    # finite from here, so the smallest gradient norm decides (one reduction, not two calls)
    return bool(converge_checked and grad_squares.size
                and math.sqrt(grad_squares.min()) <= criteria.grad_tol)


def blow_up_threshold(criteria: StopCriteria, f0: Array) -> Array:
    """f₀ + divergence_factor·max(1, |f₀|): a loss above it has blown up."""
    return f0 + criteria.divergence_factor * np.maximum(1.0, np.abs(f0))


@dataclass(frozen=True, slots=True)
class StopOps:
    """The few operations whose spelling differs between a batch of runs (arrays) and one
    run (floats); the tests themselves are written once, in `stop_tests`."""

    finite: Callable[[Any], Any]
    rows_finite: Callable[[Any], Any]  # parameters: per row (arrays), or all of one run's
    maximum: Callable[[Any, Any], Any]
    absolute: Callable[[Any], Any]
    negate: Callable[[Any], Any]


ARRAY_OPS = StopOps(np.isfinite, lambda p: np.all(np.isfinite(p), axis=1), np.maximum,
                    np.abs, np.logical_not)
FLOAT_OPS = StopOps(math.isfinite, lambda p: all(map(math.isfinite, p)), max, abs,
                    operator.not_)


def stop_tests(criteria: StopCriteria, ops: StopOps, *, t: int, max_steps: Any, values: Any,
               grad_norms: Any, params: Any, f0: Any, last_step_norm: Any,
               last_improvement: Any, may_converge: Any = True, converge_checked: bool = True
               ) -> Iterator[tuple[int, int, Any]]:
    """Each criterion as (status, reason, where it holds), in priority order: one definition
    for both engine paths (arrays over the active rows, or one run's floats)."""
    diverged, converged, stalled, max_steps_status = _CODES
    finite = ops.finite(values) & ops.finite(grad_norms) & ops.rows_finite(params)
    yield diverged, _R_NON_FINITE, ops.negate(finite)
    yield (diverged, _R_BLOW_UP,
           values - f0 > criteria.divergence_factor * ops.maximum(1.0, ops.absolute(f0)))
    if converge_checked:
        yield converged, _R_GRAD_TOL, (grad_norms <= criteria.grad_tol) & may_converge
        if criteria.loss_tol is not None:
            yield converged, _R_LOSS_TOL, values <= criteria.loss_tol
    if criteria.step_tol is not None and last_step_norm is not None:
        yield converged, _R_STEP_TOL, last_step_norm <= criteria.step_tol
    if criteria.patience is not None:
        yield stalled, _R_PATIENCE, t - last_improvement >= criteria.patience
    yield max_steps_status, _R_MAX_STEPS, t >= max_steps


def check_termination(
    criteria: StopCriteria,
    *,
    t: int,
    max_steps: int | Array,  # one number or (Ka,)
    values: Array,  # (Ka,)
    grad_norms: Array,  # (Ka,)
    params: Array,  # (Ka, d)
    f0: Array,  # (Ka,)
    last_step_norm: Array | None,  # (Ka,) norm of the step that led here
    last_improvement: Array,  # (Ka,) step of the last best-loss improvement
    may_converge: Array | None,  # (Ka,) False where the curvature forbids convergence
    converge_checked: bool = True,
) -> tuple[Array, Array]:
    """Return (status, reason) codes for the active rows; RUNNING where none applies."""
    ka = values.shape[0]
    status = np.zeros(ka, dtype=np.int8)
    reason = np.zeros(ka, dtype=np.int8)
    for code, why, holds in stop_tests(
            criteria, ARRAY_OPS, t=t, max_steps=max_steps, values=values,
            grad_norms=grad_norms, params=params, f0=f0, last_step_norm=last_step_norm,
            last_improvement=last_improvement,
            may_converge=True if may_converge is None else may_converge,
            converge_checked=converge_checked):
        if isinstance(holds, np.ndarray):
            fresh = holds & (status == 0)
        elif holds:  # a test that holds for every row (t ≥ one max_steps)
            fresh = status == 0
        else:
            continue
        status[fresh] = code
        reason[fresh] = why
    return status, reason


def run_verdict(criteria: StopCriteria, **run: Any) -> tuple[int, int]:
    """check_termination for one run on floats: (status, reason); RUNNING while none holds."""
    for code, why, holds in stop_tests(criteria, FLOAT_OPS, **run):
        if holds:
            return code, why
    return _RUNNING, 0


def steps_done(status: Array, steps: Array, longest: int) -> int:
    """The batch's progress at its end, in steps of its longest run: a run that ended on its
    own counts as whole, one stopped from outside (cancel, time budget) as the steps it made,
    so a cancelled batch says how far it got and a finished one is done."""
    if status.size == 0:
        return longest
    interrupted = (status == Status.CANCELLED) | (status == Status.TIME_LIMIT)
    return int(round(float(np.where(interrupted, steps, longest).mean())))
