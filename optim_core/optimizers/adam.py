"""Adam and AdamW, torch.optim conventions (eps outside the root, bias-corrected).

    g ← g + wd·p                                   (adam: coupled L2)
    p ← p·(1 − lr·wd)                              (adamw: decoupled, before the step)
    m ← β1·m + (1−β1)·g        v ← β2·v + (1−β2)·g²        v̂ ← max(v̂, v) if amsgrad else v
    p ← p − (lr/(1−β1ᵗ))·m/(√v̂/√(1−β2ᵗ) + eps)       t = 1, 2, …

A scheduled β1 enters the bias correction at its current value, as torch does.
"""

from __future__ import annotations

from optim_core.optimizers.base import (
    Coefficients,
    Elementwise,
    HyperParam,
    decay_terms,
    elementwise_rule,
)


def _coefficients(decoupled: bool) -> Coefficients:
    """Adam's (decoupled False) or AdamW's coefficients (a closure: no partial on the float
    path's every step)."""
    def coefficients(ops, hp, t):  # noqa: ANN001, ANN202 - see Elementwise
        beta1, beta2 = hp.beta1, hp.beta2
        step_number = t + 1  # torch counts steps from 1
        coupled, decay_rate = decay_terms(ops, hp, decoupled)
        return (ops, -(hp.lr / (1.0 - ops.power(beta1, step_number))),
                ops.sqrt(1.0 - ops.power(beta2, step_number)), beta1, 1.0 - beta1, beta2,
                1.0 - beta2, hp.eps, ops.any(hp.amsgrad), hp.amsgrad, coupled, decay_rate)
    return coefficients


def kernel(c, g, p, state):  # noqa: ANN001, ANN201
    (ops, scale, root_bc2, beta1, keep1, beta2, keep2, eps, any_amsgrad, amsgrad, coupled,
     decay_rate) = c
    m, v, v_max = state
    if coupled is not None:
        g = g + coupled * p
    m = beta1 * m + keep1 * g
    v = beta2 * v + keep2 * g * g
    v_max = ops.where(amsgrad, ops.maximum(v_max, v), v) if any_amsgrad else v
    step = scale * m / (ops.sqrt(v_max) / root_bc2 + eps)
    if decay_rate is not None:
        step = step - decay_rate * p
    return step, (m, v, v_max)


def _hyperparams(weight_decay: float, wd_doc: str) -> tuple[HyperParam, ...]:
    return (
        HyperParam("lr", 0.001, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
        HyperParam("beta1", 0.9, ge=0, lt=1, schedulable=True, schedules=("constant", "linear"),
                   doc="decay of the first moment (momentum)"),
        HyperParam("beta2", 0.999, ge=0, lt=1, doc="decay of the second moment"),
        HyperParam("eps", 1e-8, gt=0, doc="added to the root, outside it"),
        HyperParam("amsgrad", False, kind="bool", doc="use the running max of v"),
        HyperParam("weight_decay", weight_decay, ge=0, doc=wd_doc),
    )


STATE = {"m": 0.0, "v": 0.0, "v_max": 0.0}  # moments, and the running max of v (amsgrad)
ADAM = elementwise_rule(
    "adam", Elementwise(STATE, _coefficients(False), kernel),
    _hyperparams(0.0, "L2 term added to the gradient (coupled)"),
    "Momentum plus per-coordinate RMS scaling, bias-corrected.")
ADAMW = elementwise_rule(
    "adamw", Elementwise(STATE, _coefficients(True), kernel),
    _hyperparams(0.01, "decoupled decay: p ← p·(1 − lr·wd) before the step"),
    "Adam with decoupled weight decay.")
