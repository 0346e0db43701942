"""NAdam (Dozat, 2016), torch.optim conventions: Adam with Nesterov momentum, and a
momentum coefficient that warms up with momentum_decay ψ.

    g ← g + wd·p  (coupled)      or      p ← p·(1 − lr·wd)  (decoupled_weight_decay)
    μₜ = β1·(1 − ½·0.96^(t·ψ))   μₜ₊₁ likewise      Πₜ = μ₁·…·μₜ (per-run state)
    m ← β1·m + (1−β1)·g          v ← β2·v + (1−β2)·g²       D = √(v/(1−β2ᵗ)) + eps
    p ← p − lr·(1−μₜ)/(1−Πₜ)·g/D − lr·μₜ₊₁/(1−Πₜ·μₜ₊₁)·m/D       t = 1, 2, …
"""

from __future__ import annotations

from optim_core.optimizers.base import (
    DECOUPLED_WEIGHT_DECAY,
    OPTIONAL_WEIGHT_DECAY,
    Elementwise,
    HyperParam,
    decay_terms,
    elementwise_rule,
)


def coefficients(ops, hp, t):  # noqa: ANN001, ANN201 - see Elementwise
    step_number = t + 1
    beta1, psi = hp.beta1, hp.momentum_decay
    mu = beta1 * (1.0 - 0.5 * ops.power(0.96, step_number * psi))
    mu_next = beta1 * (1.0 - 0.5 * ops.power(0.96, (step_number + 1) * psi))
    coupled, decay_rate = decay_terms(ops, hp, hp.decoupled_weight_decay)
    return (ops, -hp.lr, mu, mu_next, beta1, 1.0 - beta1, hp.beta2, 1.0 - hp.beta2,
            1.0 - ops.power(hp.beta2, step_number), hp.eps, coupled, decay_rate)


def kernel(c, g, p, state):  # noqa: ANN001, ANN201
    """Πₜ is kept per coordinate (all equal), so the kernel stays elementwise."""
    ops, neg_lr, mu, mu_next, beta1, keep1, beta2, keep2, bc2, eps, coupled, decay_rate = c
    m, v, mu_product = state
    if coupled is not None:
        g = g + coupled * p
    mu_product = mu_product * mu
    m = beta1 * m + keep1 * g
    v = beta2 * v + keep2 * g * g
    denom = ops.sqrt(v / bc2) + eps
    step = ((neg_lr * (1.0 - mu) / (1.0 - mu_product)) * g / denom
            + (neg_lr * mu_next / (1.0 - mu_product * mu_next)) * m / denom)
    if decay_rate is not None:
        step = step - decay_rate * p
    return step, (m, v, mu_product)


NADAM = elementwise_rule(
    "nadam", Elementwise({"m": 0.0, "v": 0.0, "mu_product": 1.0}, coefficients, kernel),
    (HyperParam("lr", 0.002, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
     HyperParam("beta1", 0.9, ge=0, lt=1, doc="decay of the first moment (momentum)"),
     HyperParam("beta2", 0.999, ge=0, lt=1, doc="decay of the second moment"),
     HyperParam("eps", 1e-8, gt=0, doc="added to the root, outside it"),
     OPTIONAL_WEIGHT_DECAY,
     HyperParam("momentum_decay", 0.004, ge=0, doc="ψ: how fast the momentum coefficient "
                                                  "warms up to beta1"),
     DECOUPLED_WEIGHT_DECAY),
    "Adam with Nesterov momentum (the gradient looked ahead), its momentum warming up.")
