"""The optimizer registry: one line per rule; schemas, catalog and tests derive from it."""

from __future__ import annotations

from optim_core.optimizers import (
    adadelta,
    adagrad,
    adam,
    adamax,
    momentum,
    nadam,
    newton,
    radam,
    rmsprop,
    sgd,
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
    )
}

__all__ = ["OPTIMIZERS", "HyperParam", "StepContext", "StepRule"]
