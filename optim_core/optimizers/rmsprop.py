"""RMSProp, torch.optim.RMSprop conventions (rho is torch's alpha; default 0.9 as in Hinton's
lecture, not torch's 0.99).

    g ← g + wd·p
    s ← ρ·s + (1−ρ)·g²
    ḡ ← ρ·ḡ + (1−ρ)·g                  (centered only)
    a ← √(s − ḡ²) + eps  if centered, else √s + eps   (eps outside the root)
    b ← momentum·b + g/a               p ← p − lr·b
"""

from __future__ import annotations

from optim_core.optimizers.base import Elementwise, HyperParam, decay_terms, elementwise_rule


def coefficients(ops, hp, t):  # noqa: ANN001, ANN201 - see Elementwise
    coupled, _ = decay_terms(ops, hp)
    return (ops, -hp.lr, hp.rho, 1.0 - hp.rho, hp.eps, hp.momentum, ops.any(hp.centered),
            hp.centered, coupled)


def kernel(c, g, p, state):  # noqa: ANN001, ANN201
    ops, neg_lr, rho, keep, eps, mu, any_centered, centered, coupled = c
    s, g_avg, b = state
    if coupled is not None:
        g = g + coupled * p
    s = rho * s + keep * g * g
    if any_centered:
        g_avg = rho * g_avg + keep * g
        denom = ops.sqrt(ops.where(centered, s - g_avg * g_avg, s)) + eps
    else:
        denom = ops.sqrt(s) + eps
    b = mu * b + g / denom
    return neg_lr * b, (s, g_avg, b)


HYPERPARAMS = (
    HyperParam("lr", 0.01, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
    HyperParam("rho", 0.9, ge=0, lt=1, doc="decay of the running mean of g² (torch: alpha)"),
    HyperParam("eps", 1e-8, gt=0, doc="added to √s, outside the root"),
    HyperParam("momentum", 0.0, ge=0, lt=1, doc="momentum on the scaled step"),
    HyperParam("centered", False, kind="bool", doc="divide by the variance, not the raw mean"),
    HyperParam("weight_decay", 0.0, ge=0, doc="L2 term added to the gradient (coupled)"),
)
RMSPROP = elementwise_rule(
    "rmsprop", Elementwise({"s": 0.0, "g_avg": 0.0, "b": 0.0}, coefficients, kernel),
    HYPERPARAMS, "Scales each coordinate by a running RMS of its gradients.")
