"""Optimizer and schedule request models, generated from OPTIMIZERS and SCHEDULES.

Each hyperparameter becomes a field with its default and its range (so a bad value is a 422
with a `loc`); schedulable ones also accept a schedule object. Adding a rule to the registry
adds its model here without other changes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, StrictBool, create_model

from optim_core.engine.groups import MOMENTUM_RAMP
from optim_core.optimizers import OPTIMIZERS
from optim_core.optimizers.base import HyperParam, StepRule
from optim_core.schedules import SCHEDULES, VALUE_FIELDS, ScheduleSpec
from service.schemas.base import Int, Strict

Bounds = tuple[float | None, float | None, float | None, float | None]  # gt, ge, lt, le
STEP_SIZE: Bounds = (0, None, None, None)  # lr and its kin: > 0
# Model names of the schedules of a hyperparameter with other bounds than a step size's
# (each schedule model is made once per distinct bounds and shared by every such field).
BOUND_NAMES: dict[Bounds, str] = {STEP_SIZE: "", (None, 0, 1, None): "UnitInterval"}


def _bounds(hp: HyperParam) -> Bounds:
    return (hp.gt, hp.ge, hp.lt, hp.le)


def _schedule_model(spec: ScheduleSpec, bounds: Bounds, prefix: str) -> type[Strict]:
    """The schedule `spec` for a hyperparameter with `bounds`: its value fields (VALUE_FIELDS)
    carry the bounds (lr_min may also be 0), so a schedule whose values the hyperparameter
    cannot take is a schema error, not a surprise at run time."""
    gt, ge, lt, le = bounds
    fields: dict[str, Any] = {"name": (Literal[spec.name], ...)}  # type: ignore[valid-type]
    for f in spec.fields:
        kind: Any = Int if f.integer else float
        limits = {"gt": f.gt, "ge": f.ge}
        if f.name in VALUE_FIELDS:
            limits = ({"gt": None, "ge": 0 if gt == 0 else ge} if f.name == "lr_min"
                      else {"gt": gt, "ge": ge})
            limits |= {"lt": lt, "le": le}
        constraint = Field(... if f.default is None else f.default, description=f.doc or None,
                           **limits)
        fields[f.name] = (kind, constraint)
    title = spec.name.title().replace("_", "")
    return create_model(f"{prefix}{title}Schedule", __base__=Strict, __doc__=spec.doc,
                        **fields)


_SCHEDULE_MODELS: dict[tuple[Bounds, str], type[Strict]] = {}


def schedule_union(hp: HyperParam) -> Any:
    """The schedules `hp` may take, as one union discriminated by `name`."""
    bounds = _bounds(hp)
    names = tuple(hp.schedules or SCHEDULES)
    prefix = BOUND_NAMES.get(bounds, hp.name.title().replace("_", ""))
    models = []
    for name in names:
        key = (bounds, name)
        if key not in _SCHEDULE_MODELS:
            _SCHEDULE_MODELS[key] = _schedule_model(SCHEDULES[name], bounds, prefix)
        models.append(_SCHEDULE_MODELS[key])
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="name")]  # noqa: UP007


AnySchedule = schedule_union(HyperParam("lr", 0.01, gt=0, schedulable=True))


class MomentumSchedule(Strict):
    """Shorthand for momentum: {name: linear, start, end, steps} (the seed's 0.5 → 0.9)."""

    start: float = Field(MOMENTUM_RAMP[0], ge=0, lt=1)
    end: float = Field(MOMENTUM_RAMP[1], ge=0, lt=1)
    steps: Int = Field(..., ge=1)


def _field(hp: HyperParam) -> tuple[Any, Any]:
    info = Field(hp.default, description=hp.doc or None)
    if hp.kind == "bool":
        return StrictBool, info
    if hp.kind == "choice":
        return Literal[hp.choices], info  # type: ignore[valid-type]
    number = Annotated[Int if hp.kind == "int" else float,
                       Field(gt=hp.gt, ge=hp.ge, lt=hp.lt, le=hp.le)]
    if not hp.schedulable:
        return number, info
    return Union[number, schedule_union(hp)], info  # noqa: UP007


def _optimizer_model(rule: StepRule) -> type[Strict]:
    fields: dict[str, Any] = {
        "name": (Literal[rule.name], ...),  # type: ignore[valid-type]
        "label": (str | None, Field(None, max_length=200,
                                    description="how this optimizer is named in the answer")),
    }
    for hp in rule.hyperparams:
        fields[hp.name] = _field(hp)
    if any(hp.name == "momentum" and hp.schedulable for hp in rule.hyperparams):
        fields["momentum_schedule"] = (MomentumSchedule | None, Field(None))
    return create_model(f"{rule.name.title()}Optimizer", __base__=Strict, __doc__=rule.doc,
                        **fields)


OPTIMIZER_MODELS = {name: _optimizer_model(rule) for name, rule in OPTIMIZERS.items()}
# every schedule a hyperparameter of some rule may take, one union per distinct bounds (the
# values a sweep's grid may list)
SCHEDULE_UNIONS = tuple({_bounds(hp): schedule_union(hp) for rule in OPTIMIZERS.values()
                         for hp in rule.hyperparams if hp.schedulable}.values())
AnyOptimizer = Annotated[Union[tuple(OPTIMIZER_MODELS.values())],  # noqa: UP007
                         Field(discriminator="name")]


def optimizer_settings(model: Strict) -> dict[str, Any]:
    """The fields the user set (plus the name), ready for optim_core.make_group."""
    return model.model_dump(exclude_unset=True, exclude_none=True) | {"name": model.name}
