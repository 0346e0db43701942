"""Heavy-ball momentum and Nesterov, torch.optim.SGD conventions (dampening 0).

    g ← g + wd·p
    v ← μ_t·v + g            p ← p − lr·v              (momentum)
                             p ← p − lr·(g + μ_t·v)    (nesterov)

The velocity starts at 0, so the first step is v = g, as torch's buffer initialisation.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np

from optim_core.optimizers.base import (
    FloatRule,
    HyperParam,
    QuadraticModel,
    StepRule,
    coupled_decay,
    coupled_decay_floats,
)
from optim_core.theory import heavy_ball_rate
from optim_core.types import Array


class MomentumState(NamedTuple):
    v: Array  # (K, d) velocity


def init(params: Array) -> MomentumState:
    return MomentumState(v=np.zeros_like(params))


def _update(grads, state, params, hp, t, ctx=None, *, nesterov: bool):  # noqa: ANN001, ANN202
    g = coupled_decay(grads, params, hp.weight_decay)
    v = hp.momentum * state.v + g
    direction = g + hp.momentum * v if nesterov else v
    return -hp.lr * direction, MomentumState(v=v)


def _update_floats(grads, state, params, hp, t, *, nesterov: bool):  # noqa: ANN001, ANN202
    (v,) = state
    neg_lr, mu, wd = -hp.lr, hp.momentum, hp.weight_decay
    step = []
    for i, g in enumerate(coupled_decay_floats(grads, params, wd)):
        vi = v[i] = mu * v[i] + g
        step.append(neg_lr * (g + mu * vi if nesterov else vi))
    return step


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


MOMENTUM = StepRule("momentum", init, partial(_update, nesterov=False), HYPERPARAMS,
                    "Heavy ball: a velocity accumulates gradients and damps the zig-zag.",
                    floats=FloatRule(1, partial(_update_floats, nesterov=False)),
                    model=QuadraticModel(_heavy_ball_limit,
                                         partial(_loss_rate, nesterov=False)))
NESTEROV = StepRule("nesterov", init, partial(_update, nesterov=True), HYPERPARAMS,
                    "Nesterov momentum: looks ahead along the velocity before correcting.",
                    floats=FloatRule(1, partial(_update_floats, nesterov=True)),
                    model=QuadraticModel(_nesterov_limit, partial(_loss_rate, nesterov=True)))
