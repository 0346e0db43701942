"""RMSProp, torch.optim.RMSprop conventions (rho is torch's alpha; default 0.9 as in Hinton's
lecture, not torch's 0.99).

    g ← g + wd·p
    s ← ρ·s + (1−ρ)·g²
    ḡ ← ρ·ḡ + (1−ρ)·g                  (centered only)
    a ← √(s − ḡ²) + eps  if centered, else √s + eps   (eps outside the root)
    b ← momentum·b + g/a               p ← p − lr·b
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optim_core.optimizers.base import (
    FloatRule,
    HyperParam,
    StepRule,
    coupled_decay,
    coupled_decay_floats,
    safe_sqrt,
    zeros_state,
)
from optim_core.types import Array


class RmspropState(NamedTuple):
    s: Array  # (K, d) running mean of g²
    g_avg: Array  # (K, d) running mean of g (centered)
    b: Array  # (K, d) momentum buffer


def init(params: Array) -> RmspropState:
    return RmspropState(*zeros_state(params, 3))


def update(grads, state, params, hp, t, ctx=None):  # noqa: ANN001, ANN201
    g = coupled_decay(grads, params, hp.weight_decay)
    s = hp.rho * state.s + (1.0 - hp.rho) * g * g
    g_avg = state.g_avg
    if hp.centered.any():
        g_avg = hp.rho * g_avg + (1.0 - hp.rho) * g
        denom = np.sqrt(np.where(hp.centered, s - g_avg * g_avg, s)) + hp.eps
    else:
        denom = np.sqrt(s) + hp.eps
    b = hp.momentum * state.b + g / denom
    return -hp.lr * b, RmspropState(s, g_avg, b)


def update_floats(grads, state, params, hp, t):  # noqa: ANN001, ANN201 - see FloatRule
    s, g_avg, b = state
    neg_lr, rho, eps, wd = -hp.lr, hp.rho, hp.eps, hp.weight_decay
    mu, centered = hp.momentum, hp.centered
    step = []
    for i, g in enumerate(coupled_decay_floats(grads, params, wd)):
        si = s[i] = rho * s[i] + (1.0 - rho) * g * g
        if centered:
            gi = g_avg[i] = rho * g_avg[i] + (1.0 - rho) * g
            denom = safe_sqrt(si - gi * gi) + eps
        else:
            denom = safe_sqrt(si) + eps
        bi = b[i] = mu * b[i] + g / denom
        step.append(neg_lr * bi)
    return step


HYPERPARAMS = (
    HyperParam("lr", 0.01, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
    HyperParam("rho", 0.9, ge=0, lt=1, doc="decay of the running mean of g² (torch: alpha)"),
    HyperParam("eps", 1e-8, gt=0, doc="added to √s, outside the root"),
    HyperParam("momentum", 0.0, ge=0, lt=1, doc="momentum on the scaled step"),
    HyperParam("centered", False, kind="bool", doc="divide by the variance, not the raw mean"),
    HyperParam("weight_decay", 0.0, ge=0, doc="L2 term added to the gradient (coupled)"),
)
RMSPROP = StepRule("rmsprop", init, update, HYPERPARAMS,
                   "Scales each coordinate by a running RMS of its gradients.",
                   floats=FloatRule(3, update_floats))
