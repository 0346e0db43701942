"""Plain (stochastic) gradient descent, torch.optim.SGD with momentum 0.

    g ← g + wd·p        p ← p − lr·g
"""

from __future__ import annotations

from typing import NamedTuple

from optim_core.optimizers.base import (
    FloatRule,
    HyperParam,
    QuadraticModel,
    StepRule,
    coupled_decay,
    coupled_decay_floats,
)
from optim_core.theory import gd_rate
from optim_core.types import Array


class SgdState(NamedTuple):
    pass


def init(params: Array) -> SgdState:
    return SgdState()


def update(grads, state, params, hp, t, ctx=None):  # noqa: ANN001, ANN201 - see base.py
    return -hp.lr * coupled_decay(grads, params, hp.weight_decay), state


def update_floats(grads, state, params, hp, t):  # noqa: ANN001, ANN201 - see FloatRule
    neg_lr = -hp.lr
    return [neg_lr * g for g in coupled_decay_floats(grads, params, hp.weight_decay)]


HYPERPARAMS = (
    HyperParam("lr", 0.01, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
    HyperParam("weight_decay", 0.0, ge=0, doc="L2 term added to the gradient (coupled)"),
)
def stability_limit(lam_max: float, momentum: float) -> float:
    return 2.0 / lam_max


def loss_rate(lr: float, momentum: float, lam: Array) -> float:
    return gd_rate(lr, lam) ** 2


SGD = StepRule("sgd", init, update, HYPERPARAMS,
               "Gradient descent: step against the gradient; zig-zags across ravines.",
               floats=FloatRule(0, update_floats),
               model=QuadraticModel(stability_limit, loss_rate, slow_in_ravines=True))
