"""RAdam (Liu et al., 2020), torch.optim conventions: Adam whose adaptive step is switched
on only when the variance of the adaptive rate is tractable (ρₜ > 5), rectified by r.

    g ← g + wd·p  (coupled)      or      p ← p·(1 − lr·wd)  (decoupled_weight_decay)
    m ← β1·m + (1−β1)·g          v ← β2·v + (1−β2)·g²        m̂ = m/(1−β1ᵗ)
    ρ∞ = 2/(1−β2) − 1            ρₜ = ρ∞ − 2t·β2ᵗ/(1−β2ᵗ)
    ρₜ > 5:  p ← p − m̂·lr·(√(1−β2ᵗ)/(√v + eps))·r,  r = √((ρₜ−4)(ρₜ−2)ρ∞/((ρ∞−4)(ρ∞−2)ρₜ))
    else:    p ← p − m̂·lr                                     (plain momentum SGD)
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

TRACTABLE = 5.0  # ρₜ above which the adaptive step is used


class RAdamState(NamedTuple):
    m: Array  # (K, d) first moment
    v: Array  # (K, d) second moment


def init(params: Array) -> RAdamState:
    return RAdamState(*zeros_state(params, 2))


def update(grads, state, params, hp, t, ctx=None):  # noqa: ANN001, ANN201
    step_number = t + 1
    g = optional_decoupled_decay(grads, params, hp)
    m = hp.beta1 * state.m + (1.0 - hp.beta1) * g
    v = hp.beta2 * state.v + (1.0 - hp.beta2) * g * g
    bc2 = bias_correction(hp.beta2, t)
    m_hat = m / bias_correction(hp.beta1, t)
    rho_inf = 2.0 / (1.0 - hp.beta2) - 1.0
    rho_t = rho_inf - 2.0 * step_number * hp.beta2 ** step_number / bc2
    tractable = rho_t > TRACTABLE
    if np.any(tractable):
        safe_rho = np.where(tractable, rho_t, 2 * TRACTABLE)  # no sqrt of a negative
        rect = np.sqrt((safe_rho - 4.0) * (safe_rho - 2.0) * rho_inf
                       / ((rho_inf - 4.0) * (rho_inf - 2.0) * safe_rho))
        adaptive = np.sqrt(bc2) / (np.sqrt(v) + hp.eps)
        step = -np.where(tractable, m_hat * hp.lr * adaptive * rect, m_hat * hp.lr)
    else:
        step = -(m_hat * hp.lr)
    step = decoupled_decay_step(step, params, hp)
    return step, RAdamState(m, v)


def update_floats(grads, state, params, hp, t):  # noqa: ANN001, ANN201
    """`update` on one run's floats, operation by operation."""
    m, v = state
    lr, beta1, beta2, eps = hp.lr, hp.beta1, hp.beta2, hp.eps
    step_number = t + 1
    grads = optional_decoupled_decay_floats(grads, params, hp)
    bc1, bc2 = 1.0 - beta1 ** (t + 1), 1.0 - beta2 ** (t + 1)
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * step_number * beta2 ** step_number / bc2
    tractable = rho_t > TRACTABLE
    rect = safe_sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                     / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)) if tractable else 0.0
    root_bc2 = safe_sqrt(bc2)
    step = []
    for i, g in enumerate(grads):
        mi = m[i] = beta1 * m[i] + (1.0 - beta1) * g
        vi = v[i] = beta2 * v[i] + (1.0 - beta2) * g * g
        m_hat = mi / bc1
        si = (-(m_hat * lr * (root_bc2 / (safe_sqrt(vi) + eps)) * rect) if tractable
              else -(m_hat * lr))
        step.append(si)
    return decoupled_decay_step_floats(step, params, hp)


RADAM = StepRule(
    "radam", init, update,
    (HyperParam("lr", 0.001, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
     HyperParam("beta1", 0.9, ge=0, lt=1, doc="decay of the first moment (momentum)"),
     HyperParam("beta2", 0.999, ge=0, lt=1, doc="decay of the second moment"),
     HyperParam("eps", 1e-8, gt=0, doc="added to the root, outside it"),
     OPTIONAL_WEIGHT_DECAY,
     DECOUPLED_WEIGHT_DECAY),
    "Adam that takes plain momentum steps until its adaptive rate is reliable, then rectifies "
    "it: no warm-up schedule needed.",
    floats=FloatRule(2, update_floats))
