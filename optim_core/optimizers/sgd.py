"""Plain (stochastic) gradient descent, torch.optim.SGD with momentum 0.

    g ← g + wd·p        p ← p − lr·g
"""

from __future__ import annotations

from optim_core.optimizers.base import (
    Elementwise,
    HyperParam,
    QuadraticModel,
    decay_terms,
    elementwise_rule,
)
from optim_core.theory import gd_rate
from optim_core.types import Array


def coefficients(ops, hp, t):  # noqa: ANN001, ANN201 - see Elementwise
    coupled, _ = decay_terms(ops, hp)
    return ops, -hp.lr, coupled


def kernel(c, g, p, state):  # noqa: ANN001, ANN201
    _, neg_lr, coupled = c
    if coupled is not None:
        g = g + coupled * p
    return neg_lr * g, state


HYPERPARAMS = (
    HyperParam("lr", 0.01, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
    HyperParam("weight_decay", 0.0, ge=0, doc="L2 term added to the gradient (coupled)"),
)
def stability_limit(lam_max: float, momentum: float) -> float:
    return 2.0 / lam_max


def loss_rate(lr: float, momentum: float, lam: Array) -> float:
    return gd_rate(lr, lam) ** 2


SGD = elementwise_rule(
    "sgd", Elementwise({}, coefficients, kernel), HYPERPARAMS,
    "Gradient descent: step against the gradient; zig-zags across ravines.",
    model=QuadraticModel(stability_limit, loss_rate, slow_in_ravines=True))
