"""Hyperparameter schedules: pure functions of the step t = 0, 1, … (torch's ExponentialLR
convention: step 0 uses the value at 0), evaluated for many runs at once.

    constant       lr
    step           lr·gamma^⌊t/step_size⌋
    exponential    lr·gamma^t
    inverse_time   lr/(1 + decay·t)
    cosine         lr_min + (lr − lr_min)·(1 + cos(π·min(t, steps)/steps))/2
    warmup_cosine  lr·t/warmup_steps for t < warmup_steps, then cosine from lr to lr_min over the
                   remaining steps − warmup_steps (steps counts the warm-up, as in the usual
                   "cosine with warm-up" of transformer training)
    linear         start + (end − start)·min(t, steps)/steps
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optim_core.errors import HyperparameterError
from optim_core.types import Array, Column


@dataclass(frozen=True, slots=True)
class ScheduleField:
    name: str
    default: float | None = None  # None: required
    gt: float | None = None
    ge: float | None = None
    integer: bool = False
    doc: str = ""


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    name: str
    fields: tuple[ScheduleField, ...]
    value: Callable[..., Array]  # (t, **fields as (K,1) arrays) -> (K,1)
    doc: str


def _cosine(t: float, lr: Array, steps: Array, lr_min: Array) -> Array:
    progress = np.minimum(t, steps) / steps
    return lr_min + (lr - lr_min) * (1.0 + np.cos(np.pi * progress)) / 2.0


def _warmup_cosine(t: float, lr: Array, warmup_steps: Array, steps: Array, lr_min: Array
                   ) -> Array:
    warm = lr * t / np.maximum(warmup_steps, 1.0)
    span = np.maximum(steps - warmup_steps, 1.0)
    cooled = _cosine(np.maximum(t - warmup_steps, 0.0), lr, span, lr_min)
    return np.where(t < warmup_steps, warm, cooled)


_LR = ScheduleField("lr", gt=0, doc="value at t = 0 (the peak for warm-up)")
_STEPS = ScheduleField("steps", ge=1, integer=True, doc="length of the schedule")
_LR_MIN = ScheduleField("lr_min", 0.0, ge=0, doc="final value")

SCHEDULES: dict[str, ScheduleSpec] = {
    spec.name: spec
    for spec in (
        ScheduleSpec("constant", (_LR,), lambda t, lr: lr, "lr"),
        ScheduleSpec(
            "step",
            (_LR, ScheduleField("step_size", ge=1, integer=True),
             ScheduleField("gamma", 0.1, gt=0)),
            lambda t, lr, step_size, gamma: lr * gamma ** np.floor(t / step_size),
            "lr·gamma^⌊t/step_size⌋",
        ),
        ScheduleSpec("exponential", (_LR, ScheduleField("gamma", gt=0)),
                     lambda t, lr, gamma: lr * gamma**t, "lr·gamma^t"),
        ScheduleSpec("inverse_time", (_LR, ScheduleField("decay", ge=0)),
                     lambda t, lr, decay: lr / (1.0 + decay * t), "lr/(1 + decay·t)"),
        ScheduleSpec("cosine", (_LR, _STEPS, _LR_MIN), _cosine,
                     "lr_min + (lr − lr_min)·(1 + cos(π·min(t, steps)/steps))/2"),
        ScheduleSpec("warmup_cosine",
                     (_LR, ScheduleField("warmup_steps", ge=0, integer=True), _STEPS, _LR_MIN),
                     _warmup_cosine, "linear 0 → lr over warmup_steps, then cosine to lr_min"),
        ScheduleSpec(
            "linear",
            (ScheduleField("start"), ScheduleField("end"), _STEPS),
            lambda t, start, end, steps: start + (end - start) * np.minimum(t, steps) / steps,
            "start + (end − start)·min(t, steps)/steps",
        ),
    )
}


# Fields that hold values of the scheduled hyperparameter itself (its bounds apply to them;
# lr_min may also be 0, the end of a decay); the others are step counts and rates.
VALUE_FIELDS = ("lr", "start", "end", "lr_min")


@dataclass(frozen=True, slots=True)
class Schedule:
    """One run's schedule: a table name and its field values."""

    name: str
    values: Mapping[str, float]

    def at(self, t: int) -> float:
        columns = {k: np.array([[v]]) for k, v in self.values.items()}
        return float(SCHEDULES[self.name].value(float(t), **columns)[0, 0])

    def table(self, start: int, count: int) -> list[float]:
        """The values at steps start … start + count − 1, in one vectorised evaluation."""
        steps = np.arange(start, start + count, dtype=float)[None, :]
        columns = {k: np.array([[v]]) for k, v in self.values.items()}
        values = SCHEDULES[self.name].value(steps, **columns)
        return np.broadcast_to(values, (1, count))[0].tolist()


def as_schedule(value: Any, *, hyperparameter: str = "lr") -> Schedule:
    """Accept a number or a {name, …} mapping and return a Schedule: its step counts and rates
    checked here, its values (VALUE_FIELDS) by the caller against the hyperparameter's range."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Schedule("constant", {"lr": float(value)})
    if not isinstance(value, Mapping) or "name" not in value:
        raise HyperparameterError(
            f"Invalid {hyperparameter}: expected a number or a schedule object with a 'name' "
            f"({', '.join(SCHEDULES)})", loc=[hyperparameter])
    name = value["name"]
    spec = SCHEDULES.get(name)
    if spec is None:
        raise HyperparameterError(f"Invalid {hyperparameter}: unknown schedule '{name}'; choose "
                                  f"one of {', '.join(SCHEDULES)}", loc=[hyperparameter, "name"])
    known = {f.name for f in spec.fields}
    extra = sorted(set(value) - known - {"name"})
    if extra:
        raise HyperparameterError(f"Invalid {hyperparameter}: schedule '{name}' has no field "
                                  f"{', '.join(extra)}", loc=[hyperparameter, extra[0]])
    resolved: dict[str, float] = {}
    for field in spec.fields:
        raw = value.get(field.name, field.default)
        resolved[field.name] = _check_field(hyperparameter, name, field, raw)
    if name == "warmup_cosine" and resolved["warmup_steps"] > resolved["steps"]:
        raise HyperparameterError(f"Invalid {hyperparameter}: warmup_steps must not exceed steps",
                                  loc=[hyperparameter, "warmup_steps"])
    return Schedule(name, resolved)


def _check_field(hyperparameter: str, schedule: str, field: ScheduleField, raw: Any) -> float:
    where = [hyperparameter, field.name]
    if raw is None:
        raise HyperparameterError(f"Invalid {hyperparameter}: schedule '{schedule}' needs "
                                  f"'{field.name}'", loc=where)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise HyperparameterError(f"Invalid {hyperparameter}.{field.name}: {raw!r} (must be a "
                                  "finite number)", loc=where)
    if field.integer and float(raw) != int(raw):
        raise HyperparameterError(f"Invalid {hyperparameter}.{field.name}: {raw} (must be a whole "
                                  "number)", loc=where)
    if field.name in VALUE_FIELDS:  # the hyperparameter's own range applies (groups.py):
        return float(raw)  # a beta1 held at 0 is {"name": "constant", "lr": 0}
    if field.gt is not None and raw <= field.gt:
        raise HyperparameterError(f"Invalid {hyperparameter}.{field.name}: {raw} (must be > "
                                  f"{field.gt})", loc=where)
    if field.ge is not None and raw < field.ge:
        raise HyperparameterError(f"Invalid {hyperparameter}.{field.name}: {raw} (must be >= "
                                  f"{field.ge})", loc=where)
    return int(raw) if field.integer else float(raw)


class ScheduledColumn:
    """Per-run schedules of one hyperparameter, evaluated as a (K, 1) column at step t."""

    def __init__(self, schedules: Sequence[Schedule]) -> None:
        self.size = len(schedules)
        self._by_name: dict[str, tuple[Array, dict[str, Array]]] = {}
        for name in dict.fromkeys(s.name for s in schedules):
            rows = np.array([i for i, s in enumerate(schedules) if s.name == name])
            fields = {f.name: np.array([[schedules[i].values[f.name]] for i in rows])
                      for f in SCHEDULES[name].fields}
            self._by_name[name] = (rows, fields)
        self._constant: Column | None = None
        if set(self._by_name) == {"constant"}:
            self._constant = np.array([[s.values["lr"]] for s in schedules])

    @property
    def varies(self) -> bool:
        """Whether any run's value changes with t (constant schedules do not)."""
        return self._constant is None

    def at(self, t: int) -> Column:
        if self._constant is not None:
            return self._constant
        out = np.empty((self.size, 1))
        for name, (rows, fields) in self._by_name.items():
            out[rows] = SCHEDULES[name].value(float(t), **fields)
        return out

    def take(self, keep: Array) -> ScheduledColumn:
        """The column restricted to the rows `keep` (a boolean mask or indices)."""
        index = np.arange(self.size)[keep]
        clone = object.__new__(ScheduledColumn)
        clone.size = len(index)
        clone._by_name = {}
        position = np.full(self.size, -1)
        position[index] = np.arange(len(index))
        for name, (rows, fields) in self._by_name.items():
            kept = np.isin(rows, index)
            if kept.any():
                clone._by_name[name] = (position[rows[kept]],
                                        {k: v[kept] for k, v in fields.items()})
        clone._constant = None if self._constant is None else self._constant[index]
        return clone
