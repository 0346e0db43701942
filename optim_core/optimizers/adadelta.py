"""Adadelta (Zeiler, 2012), torch.optim conventions: steps in the units of the parameters,
from running averages of squared gradients and squared steps (lr scales the result, 1 by
default).

    g ← g + wd·p                     (coupled L2)
    s ← ρ·s + (1−ρ)·g²      Δ = √(a + eps)/√(s + eps)·g      a ← ρ·a + (1−ρ)·Δ²
    p ← p − lr·Δ
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


class AdadeltaState(NamedTuple):
    square_avg: Array  # (K, d) running mean of g²
    acc_delta: Array  # (K, d) running mean of Δ²


def init(params: Array) -> AdadeltaState:
    return AdadeltaState(*zeros_state(params, 2))


def update(grads, state, params, hp, t, ctx=None):  # noqa: ANN001, ANN201
    g = coupled_decay(grads, params, hp.weight_decay)
    square_avg = hp.rho * state.square_avg + (1.0 - hp.rho) * g * g
    delta = np.sqrt(state.acc_delta + hp.eps) / np.sqrt(square_avg + hp.eps) * g
    acc_delta = hp.rho * state.acc_delta + (1.0 - hp.rho) * delta * delta
    return -hp.lr * delta, AdadeltaState(square_avg, acc_delta)


def update_floats(grads, state, params, hp, t):  # noqa: ANN001, ANN201
    """`update` on one run's floats, operation by operation."""
    square_avg, acc_delta = state
    lr, rho, eps = hp.lr, hp.rho, hp.eps
    step = []
    for i, g in enumerate(coupled_decay_floats(grads, params, hp.weight_decay)):
        si = square_avg[i] = rho * square_avg[i] + (1.0 - rho) * g * g
        delta = safe_sqrt(acc_delta[i] + eps) / safe_sqrt(si + eps) * g
        acc_delta[i] = rho * acc_delta[i] + (1.0 - rho) * delta * delta
        step.append(-lr * delta)
    return step


ADADELTA = StepRule(
    "adadelta", init, update,
    (HyperParam("lr", 1.0, gt=0, schedulable=True, doc="scales the step (1: Zeiler's rule)"),
     HyperParam("rho", 0.9, ge=0, lt=1, doc="decay of both running averages"),
     HyperParam("eps", 1e-6, gt=0, doc="inside both roots: sets the size of the first steps"),
     HyperParam("weight_decay", 0.0, ge=0, doc="L2 term added to the gradient (coupled)")),
    "Steps sized by the ratio of past step and gradient RMS: no learning rate to tune.",
    floats=FloatRule(2, update_floats))
