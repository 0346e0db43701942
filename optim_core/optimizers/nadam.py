"""NAdam (Dozat, 2016), torch.optim conventions: Adam with Nesterov momentum, and a
momentum coefficient that warms up with momentum_decay ψ.

    g ← g + wd·p  (coupled)      or      p ← p·(1 − lr·wd)  (decoupled_weight_decay)
    μₜ = β1·(1 − ½·0.96^(t·ψ))   μₜ₊₁ likewise      Πₜ = μ₁·…·μₜ (per-run state)
    m ← β1·m + (1−β1)·g          v ← β2·v + (1−β2)·g²       D = √(v/(1−β2ᵗ)) + eps
    p ← p − lr·(1−μₜ)/(1−Πₜ)·g/D − lr·μₜ₊₁/(1−Πₜ·μₜ₊₁)·m/D       t = 1, 2, …
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optim_core.optimizers.base import (
    DECOUPLED_WEIGHT_DECAY,
    OPTIONAL_WEIGHT_DECAY,
    FloatRule,
    HyperParam,
    StepRule,
    bias_correction,
    decoupled_decay_step,
    decoupled_decay_step_floats,
    optional_decoupled_decay,
    optional_decoupled_decay_floats,
    safe_sqrt,
    zeros_state,
)
from optim_core.types import Array


class NAdamState(NamedTuple):
    m: Array  # (K, d) first moment
    v: Array  # (K, d) second moment
    mu_product: Array  # (K, 1) product of the momentum coefficients so far


def init(params: Array) -> NAdamState:
    m, v = zeros_state(params, 2)
    return NAdamState(m, v, np.ones((params.shape[0], 1)))


def update(grads, state, params, hp, t, ctx=None):  # noqa: ANN001, ANN201
    step_number = t + 1
    g = optional_decoupled_decay(grads, params, hp)
    mu = hp.beta1 * (1.0 - 0.5 * 0.96 ** (step_number * hp.momentum_decay))
    mu_next = hp.beta1 * (1.0 - 0.5 * 0.96 ** ((step_number + 1) * hp.momentum_decay))
    mu_product = state.mu_product * mu
    m = hp.beta1 * state.m + (1.0 - hp.beta1) * g
    v = hp.beta2 * state.v + (1.0 - hp.beta2) * g * g
    denom = np.sqrt(v / bias_correction(hp.beta2, t)) + hp.eps
    step = ((-hp.lr * (1.0 - mu) / (1.0 - mu_product)) * g / denom
            + (-hp.lr * mu_next / (1.0 - mu_product * mu_next)) * m / denom)
    step = decoupled_decay_step(step, params, hp)
    return step, NAdamState(m, v, mu_product)


def update_floats(grads, state, params, hp, t):  # noqa: ANN001, ANN201
    """`update` on one run's floats, operation by operation. The product Πₜ is kept in the
    first slot of the third state list (float state starts at zero: Π₁ is taken as μ₁)."""
    m, v, product = state
    lr, beta1, beta2, eps = hp.lr, hp.beta1, hp.beta2, hp.eps
    psi, step_number = hp.momentum_decay, t + 1
    grads = optional_decoupled_decay_floats(grads, params, hp)
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step_number * psi))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step_number + 1) * psi))
    mu_product = product[0] = mu if t == 0 else product[0] * mu
    bc2 = 1.0 - beta2 ** (t + 1)
    scale_g = -lr * (1.0 - mu) / (1.0 - mu_product)
    scale_m = -lr * mu_next / (1.0 - mu_product * mu_next)
    step = []
    for i, g in enumerate(grads):
        mi = m[i] = beta1 * m[i] + (1.0 - beta1) * g
        vi = v[i] = beta2 * v[i] + (1.0 - beta2) * g * g
        denom = safe_sqrt(vi / bc2) + eps
        si = scale_g * g / denom + scale_m * mi / denom
        step.append(si)
    return decoupled_decay_step_floats(step, params, hp)


NADAM = StepRule(
    "nadam", init, update,
    (HyperParam("lr", 0.002, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
     HyperParam("beta1", 0.9, ge=0, lt=1, doc="decay of the first moment (momentum)"),
     HyperParam("beta2", 0.999, ge=0, lt=1, doc="decay of the second moment"),
     HyperParam("eps", 1e-8, gt=0, doc="added to the root, outside it"),
     OPTIONAL_WEIGHT_DECAY,
     HyperParam("momentum_decay", 0.004, ge=0, doc="ψ: how fast the momentum coefficient "
                                                  "warms up to beta1"),
     DECOUPLED_WEIGHT_DECAY),
    "Adam with Nesterov momentum (the gradient looked ahead), its momentum warming up.",
    floats=FloatRule(3, update_floats))
