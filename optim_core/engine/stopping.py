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


@dataclass(frozen=True, slots=True)
class StopCriteria:
    grad_tol: float = 1e-8
    loss_tol: float | None = None
    step_tol: float | None = None
    divergence_factor: float = 1e8
    patience: int | None = None


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

    def assign(mask: Array, s: Status, r: Reason) -> None:
        fresh = mask & (status == Status.RUNNING)
        status[fresh] = s
        reason[fresh] = r

    finite = np.isfinite(values) & np.isfinite(grad_norms) & np.all(np.isfinite(params), axis=1)
    assign(~finite, Status.DIVERGED, Reason.NON_FINITE)
    rise = values - f0
    assign(rise > criteria.divergence_factor * np.maximum(1.0, np.abs(f0)), Status.DIVERGED,
           Reason.BLOW_UP)
    if converge_checked:
        allowed = np.ones(ka, dtype=bool) if may_converge is None else may_converge
        assign((grad_norms <= criteria.grad_tol) & allowed, Status.CONVERGED, Reason.GRAD_TOL)
        if criteria.loss_tol is not None:
            assign(values <= criteria.loss_tol, Status.CONVERGED, Reason.LOSS_TOL)
    if criteria.step_tol is not None and last_step_norm is not None:
        assign(last_step_norm <= criteria.step_tol, Status.CONVERGED, Reason.STEP_TOL)
    if criteria.patience is not None:
        assign(t - last_improvement >= criteria.patience, Status.STALLED, Reason.PATIENCE)
    assign(np.broadcast_to(t >= np.asarray(max_steps), (ka,)), Status.MAX_STEPS,
           Reason.MAX_STEPS)
    return status, reason
