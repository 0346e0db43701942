"""AdaGrad, torch.optim.Adagrad conventions (lr_decay 0, initial accumulator 0).

    g ← g + wd·p        s ← s + g²        p ← p − lr·g/(√s + eps)
"""

from __future__ import annotations

from optim_core.optimizers.base import Elementwise, HyperParam, decay_terms, elementwise_rule


def coefficients(ops, hp, t):  # noqa: ANN001, ANN201 - see Elementwise
    coupled, _ = decay_terms(ops, hp)
    return ops, -hp.lr, hp.eps, coupled


def kernel(c, g, p, state):  # noqa: ANN001, ANN201
    ops, neg_lr, eps, coupled = c
    (s,) = state
    if coupled is not None:
        g = g + coupled * p
    s = s + g * g
    return neg_lr * g / (ops.sqrt(s) + eps), (s,)


HYPERPARAMS = (
    HyperParam("lr", 0.01, gt=0, schedulable=True, doc="step size (a number or a schedule)"),
    HyperParam("eps", 1e-10, gt=0, doc="added to √s, outside the root"),
    HyperParam("weight_decay", 0.0, ge=0, doc="L2 term added to the gradient (coupled)"),
)
ADAGRAD = elementwise_rule(
    "adagrad", Elementwise({"s": 0.0}, coefficients, kernel), HYPERPARAMS,
    "Scales each coordinate by the root of its summed squared gradients.")
