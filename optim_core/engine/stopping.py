"""Stopping criteria and the per-step check that turns them into statuses for active rows.

Priority when several hold at once: non-finite, blow-up, grad_tol, loss_tol, step_tol,
patience, max_steps. A run diverges when its loss, gradient or parameters stop being finite,
or when f − f₀ > divergence_factor·max(1, |f₀|) (sign-safe: a loss that starts negative or
near zero still needs a real rise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optim_core.engine.status import Reason, Status
from optim_core.types import Array

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
    grad_norms: Array,
    params: Array,
    blow_up_at: Array,
    converge_checked: bool,
) -> bool:
    """A cheap test of whether any active row may stop at step t (then call check_termination).

    Non-finite values, blow-up and grad_tol in a few array operations; the rarer criteria
    (loss_tol, step_tol, patience, max_steps) are always passed on to the full check.
    """
    if (criteria.loss_tol is not None or criteria.step_tol is not None
            or criteria.patience is not None):
        return True
    # Whole-array sums, not row sums (a reduction along a short axis 1 is slow): a nan or
    # inf anywhere makes the total non-finite; an overflowing total only costs a full check.
    with np.errstate(invalid="ignore", over="ignore"):
        total = values.sum() + grad_norms.sum() + params.sum()
    if not np.isfinite(total) or (values > blow_up_at).any():
        return True
    return bool(converge_checked and (grad_norms <= criteria.grad_tol).any())


def blow_up_threshold(criteria: StopCriteria, f0: Array) -> Array:
    """f₀ + divergence_factor·max(1, |f₀|): a loss above it has blown up."""
    return f0 + criteria.divergence_factor * np.maximum(1.0, np.abs(f0))


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

    def assign(mask: Array, s: int, r: int) -> None:
        fresh = mask & (status == 0)
        status[fresh] = s
        reason[fresh] = r

    DIVERGED, CONVERGED, STALLED, MAX_STEPS = _CODES
    finite = np.isfinite(values) & np.isfinite(grad_norms) & np.all(np.isfinite(params), axis=1)
    assign(~finite, DIVERGED, _R_NON_FINITE)
    rise = values - f0
    assign(rise > criteria.divergence_factor * np.maximum(1.0, np.abs(f0)), DIVERGED, _R_BLOW_UP)
    if converge_checked:
        allowed = np.ones(ka, dtype=bool) if may_converge is None else may_converge
        assign((grad_norms <= criteria.grad_tol) & allowed, CONVERGED, _R_GRAD_TOL)
        if criteria.loss_tol is not None:
            assign(values <= criteria.loss_tol, CONVERGED, _R_LOSS_TOL)
    if criteria.step_tol is not None and last_step_norm is not None:
        assign(last_step_norm <= criteria.step_tol, CONVERGED, _R_STEP_TOL)
    if criteria.patience is not None:
        assign(t - last_improvement >= criteria.patience, STALLED, _R_PATIENCE)
    assign(np.broadcast_to(t >= np.asarray(max_steps), (ka,)), MAX_STEPS, _R_MAX_STEPS)
    return status, reason
