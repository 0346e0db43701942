"""Adadelta (Zeiler, 2012), torch.optim conventions: steps in the units of the parameters,
from running averages of squared gradients and squared steps (lr scales the result, 1 by
default).

    g ← g + wd·p                     (coupled L2)
    s ← ρ·s + (1−ρ)·g²      Δ = √(a + eps)/√(s + eps)·g      a ← ρ·a + (1−ρ)·Δ²
    p ← p − lr·Δ
"""

from __future__ import annotations

from optim_core.optimizers.base import Elementwise, HyperParam, decay_terms, elementwise_rule


def coefficients(ops, hp, t):  # noqa: ANN001, ANN201 - see Elementwise
    coupled, _ = decay_terms(ops, hp)
    return ops, -hp.lr, hp.rho, 1.0 - hp.rho, hp.eps, coupled


def kernel(c, g, p, state):  # noqa: ANN001, ANN201
    ops, neg_lr, rho, keep, eps, coupled = c
    square_avg, acc_delta = state
    if coupled is not None:
        g = g + coupled * p
    square_avg = rho * square_avg + keep * g * g
    delta = ops.sqrt(acc_delta + eps) / ops.sqrt(square_avg + eps) * g
    acc_delta = rho * acc_delta + keep * delta * delta
    return neg_lr * delta, (square_avg, acc_delta)


ADADELTA = elementwise_rule(
    "adadelta", Elementwise({"square_avg": 0.0, "acc_delta": 0.0}, coefficients, kernel),
    (HyperParam("lr", 1.0, gt=0, schedulable=True, doc="scales the step (1: Zeiler's rule)"),
     HyperParam("rho", 0.9, ge=0, lt=1, doc="decay of both running averages"),
     HyperParam("eps", 1e-6, gt=0, doc="inside both roots: sets the size of the first steps"),
     HyperParam("weight_decay", 0.0, ge=0, doc="L2 term added to the gradient (coupled)")),
    "Steps sized by the ratio of past step and gradient RMS: no learning rate to tune.")
