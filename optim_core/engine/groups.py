"""Run groups: rows that share a step rule, with one (K_g, 1) column per hyperparameter.

A group is torch's param_group turned sideways: instead of one hyperparameter set for many
tensors, one rule for many runs, each run with its own hyperparameters (a sweep is a group).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from optim_core.errors import HyperparameterError
from optim_core.optimizers import OPTIMIZERS
from optim_core.optimizers.base import Hyper, HyperParam, StepRule
from optim_core.schedules import VALUE_FIELDS, Schedule, ScheduledColumn, as_schedule
from optim_core.types import Array

# momentum_schedule's start and end where a request leaves them out: the seed's 0.5 → 0.9
MOMENTUM_RAMP = (0.5, 0.9)

ColumnLike = Array | ScheduledColumn


@dataclass
class RunGroup:
    rule: StepRule
    columns: dict[str, ColumnLike]
    size: int
    settings: list[dict[str, Any]]  # the resolved hyperparameters of each row, for echoing

    @cached_property
    def scheduled(self) -> bool:
        """Whether some hyperparameter changes with the step."""
        return any(isinstance(c, ScheduledColumn) and c.varies for c in self.columns.values())

    @cached_property
    def _static(self) -> Hyper:
        return Hyper(**{name: _compact(c.at(0) if isinstance(c, ScheduledColumn) else c)
                        for name, c in self.columns.items()})

    def hyper_at(self, t: int) -> Hyper:
        """The columns at step t (one shared object when nothing is scheduled).

        A float column whose rows all hold one value is given as that float: a (K, 1)
        column against (K, d) arrays makes NumPy run a d-element inner loop per row (6×
        slower at K = 4,096, d = 2), and a rule's per-step coefficients (bias corrections)
        cost ~1 µs an operation on (1, 1) arrays against ~50 ns on floats (powers excepted:
        see ARRAY_OPS).
        """
        if not self.scheduled:
            return self._static
        return Hyper(**{name: _compact(c.at(t) if isinstance(c, ScheduledColumn) else c)
                        for name, c in self.columns.items()})

    def take(self, keep: Array) -> RunGroup:
        """The group of the rows `keep` (a boolean mask)."""
        index = np.flatnonzero(keep)
        columns = {name: (c.take(index) if isinstance(c, ScheduledColumn)
                          else c.take(index, axis=0)) for name, c in self.columns.items()}
        kept = list(itertools.compress(self.settings, keep.tolist()))
        return RunGroup(self.rule, columns, index.size, kept)


def _compact(column: Array) -> Array | float:
    if column.dtype == float and column.shape[0] and (column == column[0, 0]).all():
        return float(column[0, 0])
    return column


def resolve_settings(rule: StepRule, given: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one run's hyperparameters and fill in the defaults."""
    given = dict(given)
    given.pop("name", None)
    given.pop("label", None)
    shorthand = given.pop("momentum_schedule", None)
    if shorthand is not None:
        if "momentum" not in {h.name for h in rule.hyperparams}:
            raise HyperparameterError(f"'{rule.name}' has no momentum to schedule",
                                      loc=["momentum_schedule"])
        given["momentum"] = {"name": "linear", "start": MOMENTUM_RAMP[0],
                             "end": MOMENTUM_RAMP[1], **dict(shorthand)}
    resolved: dict[str, Any] = {}
    for name in given:
        rule.hyperparam(name)  # raises for unknown names
    for hp in rule.hyperparams:
        resolved[hp.name] = _resolve_value(hp, given.get(hp.name, hp.default))
    return resolved


def _resolve_value(hp: HyperParam, value: Any) -> Any:
    if hp.kind == "bool":
        if not isinstance(value, bool):
            raise HyperparameterError(f"Invalid {hp.name}: {value!r} (must be true or false)",
                                      loc=[hp.name])
        return value
    if hp.kind == "choice":
        if value not in hp.choices:
            raise HyperparameterError(f"Invalid {hp.name}: {value!r} (choose one of "
                                      f"{', '.join(hp.choices)})", loc=[hp.name])
        return value
    if isinstance(value, Mapping | Schedule):
        if not hp.schedulable:
            raise HyperparameterError(f"Invalid {hp.name}: it takes a number, not a schedule",
                                      loc=[hp.name])
        schedule = as_schedule(value, hyperparameter=hp.name)
        if hp.schedules is not None and schedule.name not in hp.schedules:
            raise HyperparameterError(f"Invalid {hp.name}: schedule '{schedule.name}' is not "
                                      f"allowed; use {' or '.join(hp.schedules)}",
                                      loc=[hp.name, "name"])
        for key, v in schedule.values.items():
            if key == "lr_min" and hp.gt == 0 and v < 0:  # a decay may end at 0
                raise HyperparameterError(f"Invalid {hp.name}.lr_min: {v} (must be >= 0)",
                                          loc=[hp.name, key])
            if key in VALUE_FIELDS and not (key == "lr_min" and v == 0):
                _check_range(hp, v, key)
        return schedule
    return hp.check_number(value)


def _check_range(hp: HyperParam, value: float, key: str) -> None:
    try:
        hp.check_number(value)
    except HyperparameterError as exc:
        raise HyperparameterError(exc.detail.replace(f"Invalid {hp.name}:",
                                                     f"Invalid {hp.name}.{key}:"),
                                  loc=[hp.name, key]) from None


def make_group(rule_name: str, settings: Sequence[Mapping[str, Any]]) -> RunGroup:
    """Build a group from one settings mapping per run (validated, defaults filled in)."""
    rule = OPTIMIZERS.get(rule_name)
    if rule is None:
        raise HyperparameterError(f"Unknown optimizer '{rule_name}'; choose one of "
                                  f"{', '.join(OPTIMIZERS)}", loc=["name"])
    # Runs usually share settings objects (one optimizer × many starts): resolve each
    # distinct object once and build the columns from the distinct ones, indexed per row.
    memo: dict[int, int] = {}
    distinct: list[dict[str, Any]] = []
    codes = np.empty(len(settings), dtype=np.intp)
    for row, s in enumerate(settings):
        if id(s) not in memo:
            memo[id(s)] = len(distinct)
            distinct.append(resolve_settings(rule, s))
        codes[row] = memo[id(s)]
    columns: dict[str, ColumnLike] = {}
    for hp in rule.hyperparams:
        values = [r[hp.name] for r in distinct]
        if hp.kind == "bool":
            columns[hp.name] = np.array(values, dtype=bool)[codes, None]
        elif hp.kind == "choice":
            columns[hp.name] = np.array([hp.choices.index(v) for v in values])[codes, None]
        elif any(isinstance(v, Schedule) for v in values):
            schedules = [as_schedule(v) for v in values]
            columns[hp.name] = ScheduledColumn([schedules[c] for c in codes])
        else:
            columns[hp.name] = np.array(values, dtype=float)[codes, None]
    return RunGroup(rule, columns, len(settings), [distinct[c] for c in codes])


def echo_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Resolved hyperparameters as plain JSON-ready values (schedules as mappings)."""
    return {k: ({"name": v.name, **v.values} if isinstance(v, Schedule) else v)
            for k, v in settings.items()}
