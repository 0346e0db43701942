"""Adamax (Kingma & Ba, 2015, §7.1), torch.optim conventions: Adam with the infinity norm.

    g ← g + wd·p                                   (coupled L2)
    m ← β1·m + (1−β1)·g        u ← max(β2·u, |g| + eps)
    p ← p − (lr/(1−β1ᵗ))·m/u                        t = 1, 2, …

eps sits inside the max, as torch has it, so u > 0 from the first step.
"""

from __future__ import annotations

from optim_core.optimizers.base import (
    Elementwise,
    HyperParam,
    decay_terms,
    elementwise_rule,
)


def coefficients(ops, hp, t):  # noqa: ANN001, ANN201 - see Elementwise
    coupled, _ = decay_terms(ops, hp)
    return (ops, -(hp.lr / (1.0 - ops.power(hp.beta1, t + 1))), hp.beta1, 1.0 - hp.beta1, hp.beta2,
            hp.eps, coupled)


def kernel(c, g, p, state):  # noqa: ANN001, ANN201
    ops, scale, beta1, keep1, beta2, eps, coupled = c
    m, u = state
    if coupled is not None:
        g = g + coupled * p
    m = beta1 * m + keep1 * g
    u = ops.maximum(beta2 * u, ops.abs(g) + eps)
    return scale * m / u, (m, u)


ADAMAX = elementwise_rule(
    "adamax", Elementwise({"m": 0.0, "u": 0.0}, coefficients, kernel),
    (HyperParam("lr", 0.002, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
     HyperParam("beta1", 0.9, ge=0, lt=1, doc="decay of the first moment (momentum)"),
     HyperParam("beta2", 0.999, ge=0, lt=1, doc="decay of the infinity norm"),
     HyperParam("eps", 1e-8, gt=0, doc="added to |g| inside the max"),
     HyperParam("weight_decay", 0.0, ge=0, doc="L2 term added to the gradient (coupled)")),
    "Adam with the infinity norm of past gradients in place of their RMS: steps bounded by lr.")
