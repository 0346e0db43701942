"""GET /v1/optimizers and /v1/functions, generated from the registries."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from optim_core import BUILTINS, OPTIMIZERS, SCHEDULES
from optim_core.losses.catalog import ALIASES, catalog_entry
from optim_core.optimizers.base import HyperParam

router = APIRouter(prefix="/v1", tags=["catalog"])


def _hyperparameter(hp: HyperParam) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": hp.name, "default": hp.default, "type": {
        "float": "number", "bool": "boolean", "choice": "string"}[hp.kind],
        "description": hp.doc, "schedulable": hp.schedulable}
    for bound in ("gt", "ge", "lt", "le"):
        value = getattr(hp, bound)
        if value is not None:
            entry[bound] = value
    if hp.choices:
        entry["choices"] = list(hp.choices)
    if hp.schedulable:
        entry["schedules"] = list(hp.schedules or SCHEDULES)
    return entry


@router.get("/optimizers")
async def list_optimizers() -> dict[str, Any]:
    """Every optimizer with its hyperparameters, defaults, ranges and descriptions."""
    return {
        "optimizers": [{"name": rule.name, "description": rule.doc,
                        "needs_hessian": rule.needs_hessian,
                        "hyperparameters": [_hyperparameter(h) for h in rule.hyperparams]}
                       for rule in OPTIMIZERS.values()],
        "schedules": [{"name": s.name, "formula": s.doc,
                       "fields": [{"name": f.name, "default": f.default, "gt": f.gt, "ge": f.ge,
                                   "integer": f.integer, "description": f.doc}
                                  for f in s.fields]} for s in SCHEDULES.values()],
    }


@router.get("/functions")
async def list_functions() -> dict[str, Any]:
    """The builtin test functions with their minima, domains and default starts."""
    return {"functions": [catalog_entry(spec) for spec in BUILTINS.values()],
            "aliases": dict(ALIASES)}
