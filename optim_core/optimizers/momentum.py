"""Heavy-ball momentum and Nesterov, torch.optim.SGD conventions (dampening 0).

    g ← g + wd·p
    v ← μ_t·v + g            p ← p − lr·v              (momentum)
                             p ← p − lr·(g + μ_t·v)    (nesterov)

The velocity starts at 0, so the first step is v = g, as torch's buffer initialisation.
"""

from __future__ import annotations

from functools import partial

from optim_core.optimizers.base import (
    Coefficients,
    Elementwise,
    HyperParam,
    QuadraticModel,
    decay_terms,
    elementwise_rule,
)
from optim_core.theory import heavy_ball_rate
from optim_core.types import Array


def _coefficients(nesterov: bool) -> Coefficients:
    """Heavy ball's or Nesterov's coefficients (a closure: no partial on the float path)."""
    def coefficients(ops, hp, t):  # noqa: ANN001, ANN202 - see Elementwise
        coupled, _ = decay_terms(ops, hp)
        return ops, -hp.lr, hp.momentum, coupled, nesterov
    return coefficients


def kernel(c, g, p, state):  # noqa: ANN001, ANN201
    _, neg_lr, mu, coupled, nesterov = c
    (v,) = state
    if coupled is not None:
        g = g + coupled * p
    v = mu * v + g
    return neg_lr * (g + mu * v if nesterov else v), (v,)


HYPERPARAMS = (
    HyperParam("lr", 0.01, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
    HyperParam("momentum", 0.9, ge=0, lt=1, schedulable=True, schedules=("constant", "linear"),
               doc="μ; a linear schedule (or momentum_schedule) gives the 0.5 → 0.9 ramp"),
    HyperParam("weight_decay", 0.0, ge=0, doc="L2 term added to the gradient (coupled)"),
)
def _heavy_ball_limit(lam_max: float, momentum: float) -> float:
    return 2.0 * (1.0 + momentum) / lam_max


def _nesterov_limit(lam_max: float, momentum: float) -> float:
    return 2.0 * (1.0 + momentum) / (lam_max * (1.0 + 2.0 * momentum))


def _loss_rate(lr: float, momentum: float, lam: Array, *, nesterov: bool) -> float:
    return heavy_ball_rate(lr, momentum, lam, nesterov=nesterov) ** 2


MOMENTUM = elementwise_rule(
    "momentum", Elementwise({"v": 0.0}, _coefficients(False), kernel),
    HYPERPARAMS, "Heavy ball: a velocity accumulates gradients and damps the zig-zag.",
    model=QuadraticModel(_heavy_ball_limit, partial(_loss_rate, nesterov=False)))
NESTEROV = elementwise_rule(
    "nesterov", Elementwise({"v": 0.0}, _coefficients(True), kernel),
    HYPERPARAMS, "Nesterov momentum: looks ahead along the velocity before correcting.",
    model=QuadraticModel(_nesterov_limit, partial(_loss_rate, nesterov=True)))
