"""Optimizer and schedule request models, generated from OPTIMIZERS and SCHEDULES.

Each hyperparameter becomes a field with its default and its range (so a bad value is a 422
with a `loc`); schedulable ones also accept a schedule object. Adding a rule to the registry
adds its model here without other changes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, StrictBool, create_model

from optim_core.optimizers import OPTIMIZERS
from optim_core.optimizers.base import HyperParam, StepRule
from optim_core.schedules import SCHEDULES, ScheduleSpec
from service.schemas.base import Int, Strict


def _schedule_model(spec: ScheduleSpec) -> type[Strict]:
    fields: dict[str, Any] = {"name": (Literal[spec.name], ...)}  # type: ignore[valid-type]
    for f in spec.fields:
        kind: Any = Int if f.integer else float
        constraint = Field(... if f.default is None else f.default, gt=f.gt, ge=f.ge,
                           description=f.doc or None)
        fields[f.name] = (kind, constraint)
    model = create_model(f"{spec.name.title().replace('_', '')}Schedule", __base__=Strict,
                         __doc__=spec.doc, **fields)
    return model


SCHEDULE_MODELS = {name: _schedule_model(spec) for name, spec in SCHEDULES.items()}
AnySchedule = Annotated[Union[tuple(SCHEDULE_MODELS.values())],  # noqa: UP007
                        Field(discriminator="name")]
LinearSchedule = SCHEDULE_MODELS["linear"]


class MomentumSchedule(Strict):
    """Shorthand for momentum: {name: linear, start, end, steps} (the seed's 0.5 → 0.9)."""

    start: float = Field(0.5, ge=0, lt=1)
    end: float = Field(0.9, ge=0, lt=1)
    steps: Int = Field(..., ge=1)


def _field(hp: HyperParam) -> tuple[Any, Any]:
    info = Field(hp.default, description=hp.doc or None)
    if hp.kind == "bool":
        return StrictBool, info
    if hp.kind == "choice":
        return Literal[hp.choices], info  # type: ignore[valid-type]
    number = Annotated[float, Field(gt=hp.gt, ge=hp.ge, lt=hp.lt, le=hp.le)]
    if not hp.schedulable:
        return number, info
    if hp.schedules is not None and set(hp.schedules) <= {"constant", "linear"}:
        return Union[number, LinearSchedule], info  # noqa: UP007
    return Union[number, AnySchedule], info  # noqa: UP007


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
AnyOptimizer = Annotated[Union[tuple(OPTIMIZER_MODELS.values())],  # noqa: UP007
                         Field(discriminator="name")]


def optimizer_settings(model: Strict) -> dict[str, Any]:
    """The fields the user set (plus the name), ready for optim_core.make_group."""
    return model.model_dump(exclude_unset=True, exclude_none=True) | {"name": model.name}
