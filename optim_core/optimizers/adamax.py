"""Adamax (Kingma & Ba, 2015, §7.1), torch.optim conventions: Adam with the infinity norm.

    g ← g + wd·p                                   (coupled L2)
    m ← β1·m + (1−β1)·g        u ← max(β2·u, |g| + eps)
    p ← p − (lr/(1−β1ᵗ))·m/u                        t = 1, 2, …

eps sits inside the max, as torch has it, so u > 0 from the first step.
"""

from __future__ import annotations

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


class AdamaxState(NamedTuple):
    m: Array  # (K, d) first moment
    u: Array  # (K, d) exponentially weighted infinity norm


def init(params: Array) -> AdamaxState:
    return AdamaxState(*zeros_state(params, 2))


def update(grads, state, params, hp, t, ctx=None):  # noqa: ANN001, ANN201
    g = coupled_decay(grads, params, hp.weight_decay)
    m = hp.beta1 * state.m + (1.0 - hp.beta1) * g
    u = np.maximum(hp.beta2 * state.u, np.abs(g) + hp.eps)
    step = -(hp.lr / bias_correction(hp.beta1, t)) * m / u
    return step, AdamaxState(m, u)


def update_floats(grads, state, params, hp, t):  # noqa: ANN001, ANN201
    """`update` on one run's floats, operation by operation."""
    m, u = state
    beta1, beta2, eps = hp.beta1, hp.beta2, hp.eps
    scale = -(hp.lr / (1.0 - beta1 ** (t + 1)))
    step = []
    for i, g in enumerate(coupled_decay_floats(grads, params, hp.weight_decay)):
        mi = m[i] = beta1 * m[i] + (1.0 - beta1) * g
        ui = u[i] = nan_maximum(beta2 * u[i], abs(g) + eps)
        step.append(scale * mi / ui)
    return step


ADAMAX = StepRule(
    "adamax", init, update,
    (HyperParam("lr", 0.002, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
     HyperParam("beta1", 0.9, ge=0, lt=1, doc="decay of the first moment (momentum)"),
     HyperParam("beta2", 0.999, ge=0, lt=1, doc="decay of the infinity norm"),
     HyperParam("eps", 1e-8, gt=0, doc="added to |g| inside the max"),
     HyperParam("weight_decay", 0.0, ge=0, doc="L2 term added to the gradient (coupled)")),
    "Adam with the infinity norm of past gradients in place of their RMS: steps bounded by lr.",
    floats=FloatRule(2, update_floats))
