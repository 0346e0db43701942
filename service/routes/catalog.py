"""GET /v1/optimizers and /v1/functions, generated from the registries.

The registries do not change while the process runs, so each catalog is built and serialised
once, on its first request, and every later request answers the same bytes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter

from optim_core import BUILTINS, OPTIMIZERS, SCHEDULES
from optim_core.losses.catalog import ALIASES, catalog_entry
from optim_core.optimizers.base import HyperParam
from service.jsonio import JSONResponse, dumps

router = APIRouter(prefix="/v1", tags=["catalog"])


def _hyperparameter(hp: HyperParam) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": hp.name, "default": hp.default, "type": {
        "float": "number", "int": "integer", "bool": "boolean", "choice": "string"}[hp.kind],
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


@cache
def optimizers_catalog() -> dict[str, Any]:
    """The optimizers catalog (built once; shared, so read it, never change it)."""
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


@cache
def functions_catalog() -> dict[str, Any]:
    """The builtin functions catalog (built once; shared, so read it, never change it)."""
    return {"functions": [catalog_entry(spec) for spec in BUILTINS.values()],
            "aliases": dict(ALIASES)}


_optimizers_document = cache(lambda: dumps(optimizers_catalog()))
_functions_document = cache(lambda: dumps(functions_catalog()))


class _Prebuilt(JSONResponse):
    """Answers bytes serialised once."""

    def render(self, content: Any) -> bytes:
        return content


@router.get("/optimizers", response_model=dict[str, Any])
async def list_optimizers() -> _Prebuilt:
    """Every optimizer with its hyperparameters, defaults, ranges and descriptions."""
    return _Prebuilt(_optimizers_document())


@router.get("/functions", response_model=dict[str, Any])
async def list_functions() -> _Prebuilt:
    """The builtin test functions with their minima, domains and default starts."""
    return _Prebuilt(_functions_document())
