"""Adam and AdamW, torch.optim conventions (eps outside the root, bias-corrected).

    g ← g + wd·p                                   (adam: coupled L2)
    p ← p·(1 − lr·wd)                              (adamw: decoupled, before the step)
    m ← β1·m + (1−β1)·g        v ← β2·v + (1−β2)·g²        v̂ ← max(v̂, v) if amsgrad else v
    p ← p − (lr/(1−β1ᵗ))·m/(√v̂/√(1−β2ᵗ) + eps)       t = 1, 2, …

A scheduled β1 enters the bias correction at its current value, as torch does.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import numpy as np

from optim_core.optimizers.base import (
    FloatRule,
    HyperParam,
    StepRule,
    bias_correction,
    coupled_decay,
    coupled_decay_floats,
    nan_maximum,
    zeros_state,
)
from optim_core.types import Array


class AdamState(NamedTuple):
    m: Array  # (K, d) first moment
    v: Array  # (K, d) second moment
    v_max: Array  # (K, d) running max of v (amsgrad)


def init(params: Array) -> AdamState:
    return AdamState(*zeros_state(params, 3))


def _update(grads, state, params, hp, t, ctx=None, *, decoupled: bool):  # noqa: ANN001, ANN202
    g = grads if decoupled else coupled_decay(grads, params, hp.weight_decay)
    m = hp.beta1 * state.m + (1.0 - hp.beta1) * g
    v = hp.beta2 * state.v + (1.0 - hp.beta2) * g * g
    v_max = np.where(hp.amsgrad, np.maximum(state.v_max, v), v) if hp.amsgrad.any() else v
    denom = np.sqrt(v_max) / np.sqrt(bias_correction(hp.beta2, t)) + hp.eps
    step = -(hp.lr / bias_correction(hp.beta1, t)) * m / denom
    if decoupled and np.any(hp.weight_decay):
        step = step - hp.lr * hp.weight_decay * params
    return step, AdamState(m, v, v_max)


def _update_floats(grads, state, params, hp, t, decoupled=False):  # noqa: ANN001, ANN202
    m, v, v_max = state
    lr, beta1, beta2, eps, wd = hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay
    sqrt = math.sqrt
    scale = -(lr / (1.0 - beta1 ** (t + 1)))
    root_bc2 = sqrt(1.0 - beta2 ** (t + 1))
    keep1, keep2 = 1.0 - beta1, 1.0 - beta2
    if wd and not decoupled:
        grads = coupled_decay_floats(grads, params, wd)
    amsgrad = hp.amsgrad
    step = []
    for i, g in enumerate(grads):
        m[i] = mi = beta1 * m[i] + keep1 * g
        v[i] = vi = beta2 * v[i] + keep2 * g * g
        if amsgrad:
            v_max[i] = vi = nan_maximum(v_max[i], vi)
        step.append(scale * mi / (sqrt(vi) / root_bc2 + eps))
    if decoupled and wd:
        step = [si - lr * wd * p for si, p in zip(step, params)]
    return step


def _update_adamw_floats(grads, state, params, hp, t):  # noqa: ANN001, ANN202
    return _update_floats(grads, state, params, hp, t, True)


def _hyperparams(weight_decay: float, wd_doc: str) -> tuple[HyperParam, ...]:
    return (
        HyperParam("lr", 0.001, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
        HyperParam("beta1", 0.9, ge=0, lt=1, schedulable=True, schedules=("constant", "linear"),
                   doc="decay of the first moment (momentum)"),
        HyperParam("beta2", 0.999, ge=0, lt=1, doc="decay of the second moment"),
        HyperParam("eps", 1e-8, gt=0, doc="added to the root, outside it"),
        HyperParam("amsgrad", False, kind="bool", doc="use the running max of v"),
        HyperParam("weight_decay", weight_decay, ge=0, doc=wd_doc),
    )


ADAM = StepRule("adam", init, partial(_update, decoupled=False),
                _hyperparams(0.0, "L2 term added to the gradient (coupled)"),
                "Momentum plus per-coordinate RMS scaling, bias-corrected.",
                floats=FloatRule(3, _update_floats))
ADAMW = StepRule("adamw", init, partial(_update, decoupled=True),
                 _hyperparams(0.01, "decoupled decay: p ← p·(1 − lr·wd) before the step"),
                 "Adam with decoupled weight decay.",
                 floats=FloatRule(3, _update_adamw_floats))
