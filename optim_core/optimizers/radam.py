"""RAdam (Liu et al., 2020), torch.optim conventions: Adam whose adaptive step is switched
on only when the variance of the adaptive rate is tractable (ρₜ > 5), rectified by r.

    g ← g + wd·p  (coupled)      or      p ← p·(1 − lr·wd)  (decoupled_weight_decay)
    m ← β1·m + (1−β1)·g          v ← β2·v + (1−β2)·g²        m̂ = m/(1−β1ᵗ)
    ρ∞ = 2/(1−β2) − 1            ρₜ = ρ∞ − 2t·β2ᵗ/(1−β2ᵗ)
    ρₜ > 5:  p ← p − m̂·lr·(√(1−β2ᵗ)/(√v + eps))·r,  r = √((ρₜ−4)(ρₜ−2)ρ∞/((ρ∞−4)(ρ∞−2)ρₜ))
    else:    p ← p − m̂·lr                                     (plain momentum SGD)
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

TRACTABLE = 5.0  # ρₜ above which the adaptive step is used


def coefficients(ops, hp, t):  # noqa: ANN001, ANN201 - see Elementwise
    step_number = t + 1
    beta1, beta2 = hp.beta1, hp.beta2
    power = ops.power(beta2, step_number)
    bc2 = 1.0 - power
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * step_number * power / bc2
    tractable = rho_t > TRACTABLE
    any_tractable = ops.any(tractable)
    rect = None
    if any_tractable:
        safe_rho = ops.where(tractable, rho_t, 2 * TRACTABLE)  # no root of a negative
        rect = ops.sqrt((safe_rho - 4.0) * (safe_rho - 2.0) * rho_inf
                        / ((rho_inf - 4.0) * (rho_inf - 2.0) * safe_rho))
    coupled, decay_rate = decay_terms(ops, hp, hp.decoupled_weight_decay)
    return (ops, hp.lr, beta1, 1.0 - beta1, beta2, 1.0 - beta2, 1.0 - ops.power(beta1, step_number),
            ops.sqrt(bc2), hp.eps, any_tractable, tractable, rect, coupled, decay_rate)


def kernel(c, g, p, state):  # noqa: ANN001, ANN201
    (ops, lr, beta1, keep1, beta2, keep2, bc1, root_bc2, eps, any_tractable, tractable, rect,
     coupled, decay_rate) = c
    m, v = state
    if coupled is not None:
        g = g + coupled * p
    m = beta1 * m + keep1 * g
    v = beta2 * v + keep2 * g * g
    m_hat = m / bc1
    if any_tractable:
        adaptive = root_bc2 / (ops.sqrt(v) + eps)
        step = -ops.where(tractable, m_hat * lr * adaptive * rect, m_hat * lr)
    else:
        step = -(m_hat * lr)
    if decay_rate is not None:
        step = step - decay_rate * p
    return step, (m, v)


RADAM = elementwise_rule(
    "radam", Elementwise({"m": 0.0, "v": 0.0}, coefficients, kernel,
                         by_block=False),  # its rectification is a branch on the step
    (HyperParam("lr", 0.001, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
     HyperParam("beta1", 0.9, ge=0, lt=1, doc="decay of the first moment (momentum)"),
     HyperParam("beta2", 0.999, ge=0, lt=1, doc="decay of the second moment"),
     HyperParam("eps", 1e-8, gt=0, doc="added to the root, outside it"),
     OPTIONAL_WEIGHT_DECAY,
     DECOUPLED_WEIGHT_DECAY),
    "Adam that takes plain momentum steps until its adaptive rate is reliable, then rectifies "
    "it: no warm-up schedule needed.")
