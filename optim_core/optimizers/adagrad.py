"""AdaGrad, torch.optim.Adagrad conventions (lr_decay 0, initial accumulator 0).

    g ← g + wd·p        s ← s + g²        p ← p − lr·g/(√s + eps)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from optim_core.optimizers.base import (
    FloatRule,
    HyperParam,
    StepRule,
    coupled_decay,
    coupled_decay_floats,
)
from optim_core.types import Array


class AdagradState(NamedTuple):
    s: Array  # (K, d) sum of g²


def init(params: Array) -> AdagradState:
    return AdagradState(np.zeros_like(params))


def update(grads, state, params, hp, t, ctx=None):  # noqa: ANN001, ANN201
    g = coupled_decay(grads, params, hp.weight_decay)
    s = state.s + g * g
    return -hp.lr * g / (np.sqrt(s) + hp.eps), AdagradState(s)


def update_floats(grads, state, params, hp, t):  # noqa: ANN001, ANN201 - see FloatRule
    (s,) = state
    neg_lr, eps, wd = -hp.lr, hp.eps, hp.weight_decay
    step = []
    for i, g in enumerate(coupled_decay_floats(grads, params, wd)):
        si = s[i] = s[i] + g * g
        step.append(neg_lr * g / (math.sqrt(si) + eps))
    return step


HYPERPARAMS = (
    HyperParam("lr", 0.01, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
    HyperParam("eps", 1e-10, gt=0, doc="added to √s, outside the root"),
    HyperParam("weight_decay", 0.0, ge=0, doc="L2 term added to the gradient (coupled)"),
)
ADAGRAD = StepRule("adagrad", init, update, HYPERPARAMS,
                   "Scales each coordinate by the root of its summed squared gradients.",
                   floats=FloatRule(1, update_floats))
