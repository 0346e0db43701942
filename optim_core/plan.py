"""Plan: a request's runs resolved before any step: the starts, the validated groups and
their labels, the grid points, and the estimated work of a step.

`plan_optimize` and `plan_sweep` turn optimizers × starts or grid points × starts into an
optim_core.shards.Plan, which any executor runs in shards with the one-batch answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from optim_core.engine.groups import RunGroup, make_group
from optim_core.errors import DimensionError, HyperparameterError
from optim_core.losses.base import Loss
from optim_core.optimizers import OPTIMIZERS
from optim_core.shards import EngineOptions, Plan, make_plan
from optim_core.types import Array


def resolve_starts(loss: Loss, start: Any, seed: int | None = None) -> Array:
    """One point, a list of points, {random: {n, low, high, seed}} or None → (S, d)."""
    d = loss.dim
    if start is None:
        if loss.default_start is None:
            raise DimensionError(f"This {loss.kind} loss has no default start: give 'start' "
                                 f"with {d} coordinates", loc=["start"])
        return np.asarray(loss.default_start, dtype=float)[None, :]
    if isinstance(start, Mapping):
        spec = start.get("random", start)
        n = int(spec.get("n", 1))
        low = np.asarray(spec.get("low", -1.0), dtype=float)
        high = np.asarray(spec.get("high", 1.0), dtype=float)
        if low.ndim > 1 or high.ndim > 1 or (low.ndim == 1 and low.size != d) or (
                high.ndim == 1 and high.size != d):
            raise DimensionError(f"random low/high must be numbers or lists of {d} numbers",
                                 loc=["start", "random"])
        if np.any(high < low):
            raise DimensionError("random.high must be >= random.low", loc=["start", "random"])
        rng_seed = spec.get("seed", seed)
        rng = np.random.default_rng(rng_seed)
        return low + (high - low) * rng.random((n, d))
    points = np.asarray(start, dtype=float)
    if points.ndim == 1:
        points = points[None, :]
    if points.ndim != 2 or points.shape[1] != d:
        raise DimensionError(f"Each start point needs {d} coordinates "
                             f"({', '.join(loss.names)}), got shape {list(points.shape)}",
                             loc=["start"])
    if not np.all(np.isfinite(points)):
        raise DimensionError("Start points must be finite numbers", loc=["start"])
    return points


def check_bounds(loss: Loss, bounds: Any, starts: Array) -> Array | None:
    """The box as a (d, 2) array of [lo, hi] (None or ±inf where a side is open), checked
    against the loss and the starts: every start must lie inside (DimensionError)."""
    if bounds is None:
        return None
    d = loss.dim
    if len(bounds) != d or any(len(pair) != 2 for pair in bounds):
        raise DimensionError(f"bounds must give [lo, hi] for each of the {d} coordinates "
                             f"({', '.join(loss.names)})", loc=["bounds"])
    box = np.array([[-np.inf if lo is None else lo, np.inf if hi is None else hi]
                    for lo, hi in bounds], dtype=float)
    if (np.isnan(box).any() or (box[:, 0] > box[:, 1]).any() or (box[:, 0] == np.inf).any()
            or (box[:, 1] == -np.inf).any()):
        raise DimensionError("each bound needs lo ≤ hi (null leaves a side open)",
                             loc=["bounds"])
    starts = np.asarray(starts, dtype=float)
    outside = np.flatnonzero(((starts < box[:, 0]) | (starts > box[:, 1])).any(axis=1))
    if outside.size:
        first = outside[0]
        raise DimensionError(f"Start {first} ({', '.join(f'{v:g}' for v in starts[first])}) "
                             f"lies outside the bounds; {outside.size} of {len(starts)} starts "
                             "do", loc=["start"])
    return box


def step_cost(loss: Loss, rule_name: str) -> float:
    """Work units of one step of one run: d for a gradient rule on a closed-form loss, times
    the rows a step touches for sampled losses, times ~d²/25 for Newton's eigendecomposition
    (measured: a 50×50 eigh costs about as much as 100 gradient steps of that size)."""
    d = loss.dim
    rows = getattr(loss, "batch_size", None) or getattr(loss, "n", 1)
    newton = max(1.0, d * d / 25) if OPTIMIZERS.get(rule_name, None) is not None and \
        OPTIMIZERS[rule_name].needs_hessian else 1.0
    return d * rows * newton


def default_label(name: str, settings: Mapping[str, Any], siblings: Sequence[Mapping[str, Any]]
                  ) -> str:
    """`adam`, or `adam(lr=0.1)` when several entries share a name."""
    if sum(1 for s in siblings if s.get("name") == name) <= 1:
        return name
    shown = [f"{k}={_short(v)}" for k, v in settings.items() if k not in ("name", "label")]
    return f"{name}({', '.join(shown)})" if shown else name


def _short(v: Any) -> str:
    if isinstance(v, Mapping):
        return str(v.get("name", "schedule"))
    return f"{v:g}" if isinstance(v, float) else str(v)


def build_groups(optimizers: Sequence[Mapping[str, Any]], n_starts: int
                 ) -> tuple[list[RunGroup], list[str]]:
    """One group per optimizer entry, each repeated over the starts (optimizer-major)."""
    groups, labels = [], []
    for i, spec in enumerate(optimizers):
        name = spec.get("name")
        try:
            group = make_group(str(name), [spec] * n_starts)
        except HyperparameterError as exc:
            loc = ["optimizers", i, *(exc.loc or [])]
            raise HyperparameterError(exc.detail, loc=loc) from None
        groups.append(group)
        labels.append(spec.get("label") or default_label(str(name), spec, optimizers))
    return groups, _unique_labels(labels, [bool(s.get("label")) for s in optimizers])


def _unique_labels(labels: list[str], explicit: list[bool]) -> list[str]:
    """Labels name the summary rows and the runs, so they must differ: a label given twice is
    an error; a default label already taken gets " #2", " #3", …"""
    given: dict[str, int] = {}
    for i, (label, chosen) in enumerate(zip(labels, explicit, strict=True)):
        if chosen and label in given:
            raise HyperparameterError(f"Label '{label}' is given to optimizers {given[label]} "
                                      f"and {i}; labels must differ",
                                      loc=["optimizers", i, "label"])
        if chosen:
            given[label] = i
    taken = set(given)
    unique = []
    for label, chosen in zip(labels, explicit, strict=True):
        candidate, n = label, 1
        while not chosen and candidate in taken:
            n += 1
            candidate = f"{label} #{n}"
        taken.add(candidate)
        unique.append(candidate)
    return unique


def plan_optimize(loss: Loss, optimizers: Sequence[Mapping[str, Any]], starts: Array,
                  options: EngineOptions) -> Plan:
    """Every optimizer × start: one entry per optimizer (its runs optimizer-major)."""
    starts = np.asarray(starts, dtype=float)
    groups, labels = build_groups(optimizers, starts.shape[0])
    entries = [(group.rule.name, spec) for group, spec in zip(groups, optimizers, strict=True)]
    return make_plan(loss, starts, entries, groups, labels, options)


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The grid in itertools.product order over its keys as given."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in
            itertools.product(*[grid[k] for k in keys])]


def validate_grid(base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]
                  ) -> list[dict[str, Any]]:
    """Every grid point validated with its own location in the grid; returns the points."""
    name = str(base.get("name"))
    known = {hp.name: hp for hp in OPTIMIZERS[name].hyperparams} if name in OPTIMIZERS else {}
    grid = {k: [known[k].whole(v) for v in values] if k in known else values
            for k, values in grid.items()}
    points = grid_points(grid)
    for i, point in enumerate(points):
        try:
            make_group(name, [_merged(base, point)])
        except HyperparameterError as exc:
            key = (exc.loc or ["?"])[0]
            raise HyperparameterError(exc.detail, loc=["grid", key, _grid_index(grid, key, i)]
                                      ) from None
    return points


def _grid_index(grid: Mapping[str, Sequence[Any]], key: str, point_index: int) -> int:
    keys = list(grid)
    if key not in keys:
        return 0
    sizes = [len(grid[k]) for k in keys]
    position = keys.index(key)
    stride = int(np.prod(sizes[position + 1:])) if position + 1 < len(sizes) else 1
    return (point_index // stride) % sizes[position]


def _merged(base: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k not in ("name", "label")} | dict(point)


def plan_sweep(loss: Loss, base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]],
               starts: Array, options: EngineOptions) -> Plan:
    """Every grid point × start: one entry per grid point, all runs in one report group."""
    name = str(base.get("name"))
    starts = np.asarray(starts, dtype=float)
    points = validate_grid(base, grid)
    merged = [_merged(base, point) for point in points]
    n_starts = starts.shape[0]
    # shared objects: make_group resolves each grid point once, not once per run
    group = make_group(name, [settings for settings in merged for _ in range(n_starts)])
    return make_plan(loss, starts, [(name, settings) for settings in merged], [group], [name],
                     options, points)
