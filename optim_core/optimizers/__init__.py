"""The optimizer registry: one line per rule; schemas, catalog and tests derive from it."""

from __future__ import annotations

from optim_core.optimizers import (
    adadelta,
    adagrad,
    adam,
    adamax,
    bfgs,
    cg,
    lbfgs,
    momentum,
    nadam,
    nelder_mead,
    newton,
    radam,
    rmsprop,
    sgd,
    trust_region,
)
from optim_core.optimizers.base import HyperParam, StepContext, StepRule

OPTIMIZERS: dict[str, StepRule] = {
    rule.name: rule
    for rule in (
        sgd.SGD,
        momentum.MOMENTUM,
        momentum.NESTEROV,
        rmsprop.RMSPROP,
        adagrad.ADAGRAD,
        adam.ADAM,
        adam.ADAMW,
        nadam.NADAM,
        radam.RADAM,
        adamax.ADAMAX,
        adadelta.ADADELTA,
        newton.NEWTON,
        lbfgs.LBFGS,
        bfgs.BFGS,
        cg.CG,
        trust_region.TRUST_REGION,
        nelder_mead.NELDER_MEAD,
    )
}

__all__ = ["OPTIMIZERS", "HyperParam", "StepContext", "StepRule"]
