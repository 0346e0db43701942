"""Tune: search each optimizer's hyperparameters, every trial × start in one batch, then
compare the optimizers at their best settings.

A trial is one hyperparameter setting run from every start; its objective is the median over
the starts of `final_loss`, `steps_to_tol` (a run that never met the tolerance counts as
infinite) or `auc` (the mean of log10 loss over steps 0…T, a stopped run's loss held at its
last value: rewards getting low early, as a learning-curve area does). A trial is `diverged`
when more than half of its starts diverged (its objective is then infinite: JSON null).

Successive halving (pruning): rungs at min_steps · η^r steps while the next rung fits in
max_steps, then max_steps. Each rung is one batch of the trials still in; after a rung, each
optimizer keeps its best ⌈n/η⌉ trials and the others stop as `pruned` (`pruned_at` the
rung's steps, their objective the rung's). A rung's runs start afresh (the engine keeps no
state between batches), which costs the early steps again (with η = 3 about a third more than
the rungs alone) but makes every trial's numbers exactly those of /v1/optimize at its
hyperparameters with max_steps = the steps it ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optim_core.engine.groups import make_group
from optim_core.engine.recording import RecordSpec
from optim_core.engine.results import RunBatch
from optim_core.engine.status import Status
from optim_core.engine.stopping import StopCriteria
from optim_core.errors import HyperparameterError
from optim_core.losses.base import Loss
from optim_core.optimizers import OPTIMIZERS
from optim_core.reports import echo_settings
from optim_core.shards import EngineOptions, ShardExecutor, execute, make_plan
from optim_core.studies.sampling import MAX_SOBOL_DIMS, Choices, Dimension, Range, sample
from optim_core.studies.tpe import plan_rounds, propose
from optim_core.types import Array

OBJECTIVES = ("final_loss", "steps_to_tol", "auc")
AUC_POINTS = 1001  # recorded losses per run for `auc` (evenly thinned beyond)
TINY = 1e-300  # log10 of a loss of exactly 0


@dataclass(frozen=True, slots=True)
class Pruning:
    min_steps: int
    reduction_factor: int = 3

    def rungs(self, max_steps: int) -> list[int]:
        """min_steps · η^r while the next rung (× η) still fits in max_steps, then max_steps:
        with 10, 3 and 300: [10, 30, 90, 300]."""
        steps, out = max(1, self.min_steps), []
        while steps * self.reduction_factor <= max_steps:
            out.append(steps)
            steps *= self.reduction_factor
        return [*out, max_steps]


@dataclass(slots=True)
class TuneSpec:
    """One optimizer to tune: its label, its fixed settings (with `name`), its space."""

    label: str
    fixed: dict[str, Any]
    space: dict[str, Dimension]


@dataclass(slots=True)
class Trial:
    spec: int  # index into the specs
    settings: dict[str, Any]  # fixed | searched
    searched: dict[str, Any]
    objective: float = math.inf
    final_loss: float = math.inf
    success_rate: float = 0.0
    status: str = "completed"
    pruned_at: int | None = None

    def key(self, index: int) -> tuple[float, float, int]:
        return (self.objective, self.final_loss, index)

    def rank(self, index: int) -> tuple[int, int, float, float, int]:
        """Best first over every status, as TPE splits them: completed by objective, then
        pruned (the later the rung the better), then diverged."""
        order = {"completed": 0, "pruned": 1}.get(self.status, 2)
        return (order, -(self.pruned_at or 0), self.objective, self.final_loss, index)


@dataclass(slots=True)
class TuneReport:
    trials: list[Trial]
    best: list[int | None]  # per spec: the index of its best trial
    batches: list[RunBatch] = field(default_factory=list)
    runs: int = 0  # runs computed over every rung
    steps_computed: int = 0
    partial_reason: str | None = None


def check_space(spec_index: int, name: str, space: Mapping[str, Any]) -> dict[str, Dimension]:
    """The user's space as Ranges and Choices, checked against the rule (400 naming the
    hyperparameter): known names, low < high, log with low > 0, numbers only for ranges, both
    ends inside the rule's range, every choice a valid value."""
    rule = OPTIMIZERS[name]
    out: dict[str, Dimension] = {}
    if len(space) > MAX_SOBOL_DIMS:
        raise HyperparameterError(f"A search space takes at most {MAX_SOBOL_DIMS} "
                                  "hyperparameters", loc=["optimizers", spec_index, "search"])
    for key, dim in space.items():
        loc = ["optimizers", spec_index, "search", key]
        try:
            hp = rule.hyperparam(key)
        except HyperparameterError as exc:
            raise HyperparameterError(exc.detail, loc=loc) from None
        if isinstance(dim, Mapping):
            low, high, log = float(dim["low"]), float(dim["high"]), bool(dim.get("log", False))
            if hp.kind not in ("float", "int"):
                raise HyperparameterError(f"'{key}' of {name} is a {hp.kind}: search it with a "
                                          "list of choices, not a range", loc=loc)
            if not low < high:
                raise HyperparameterError(f"The range of '{key}' needs low < high, got low "
                                          f"{low:g} and high {high:g}", loc=loc)
            if log and low <= 0:
                raise HyperparameterError(f"A log range of '{key}' needs low > 0, got {low:g}",
                                          loc=loc)
            for end in (low, high):
                _check_value(name, key, int(round(end)) if hp.kind == "int" else end, loc)
            out[key] = Range(low, high, log, hp.kind == "int")
        else:
            values = tuple(hp.whole(v) for v in dim)
            for value in values:
                _check_value(name, key, value, loc)
            out[key] = Choices(values)
    return out


def _check_value(name: str, key: str, value: Any, loc: list[Any]) -> None:
    try:
        make_group(name, [{key: value}])
    except HyperparameterError as exc:
        raise HyperparameterError(f"In the search space of {name}: {exc.detail}",
                                  loc=loc) from None


def make_trials(specs: Sequence[TuneSpec], trials: int, sampler: str, seed: int
                ) -> list[Trial]:
    """Each optimizer's trials (its own stream of the seed), in optimizer order."""
    out = []
    for i, spec in enumerate(specs):
        stream = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        for point in sample(spec.space, trials, sampler, stream):
            out.append(Trial(i, spec.fixed | point, point))
    return out


def _objectives(batch: RunBatch, n_starts: int, objective: str, steps: int
                ) -> tuple[Array, Array, Array, Array]:
    """Per trial (rows in blocks of n_starts): objective, median final loss, success rate,
    diverged share."""
    status = batch.status.reshape(-1, n_starts)
    diverged = status == Status.DIVERGED
    finals = np.where(diverged, np.inf, batch.final_loss.reshape(-1, n_starts))
    finals = np.where(np.isnan(finals), np.inf, finals)
    if objective == "final_loss":
        per_run = finals
    elif objective == "steps_to_tol":
        to_tol = batch.steps_to_tol.reshape(-1, n_starts).astype(float)
        per_run = np.where(to_tol >= 0, to_tol, np.inf)
    else:
        per_run = np.array([_auc(t.step, t.loss, steps) if t is not None else np.inf
                            for t in batch.trajectories or []]).reshape(-1, n_starts)
        per_run = np.where(diverged, np.inf, per_run)
    return (np.median(per_run, axis=1), np.median(finals, axis=1),
            np.mean(status == Status.CONVERGED, axis=1), np.mean(diverged, axis=1))


def _auc(step: Array, loss: Array | None, steps: int) -> float:
    """Mean of log10 loss over steps 0…steps, each recorded value held until the next."""
    if loss is None or loss.size == 0 or not np.all(np.isfinite(loss)):
        return math.inf
    logs = np.log10(np.maximum(loss, TINY))
    ends = np.append(step[1:], steps + 1).astype(float)
    widths = np.maximum(ends - step, 0)
    return float(np.sum(logs * widths) / (steps + 1))


def tune(
    loss: Loss,
    specs: Sequence[TuneSpec],
    starts: Array,
    *,
    trials: int,
    sampler: str = "random",
    seed: int = 0,
    objective: str = "final_loss",
    pruning: Pruning | None = None,
    max_steps: int = 1000,
    stop: StopCriteria | None = None,
    eval_every: int = 10,
    bounds: Array | None = None,
    deadline: float | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    executor: ShardExecutor | None = None,
) -> TuneReport:
    """Run every trial × start (in rungs when pruning) and pick each optimizer's best. The
    `tpe` sampler proposes its trials in rounds (tpe.plan_rounds), each round's trials one
    batch (its rungs when pruning), the model fitted again between rounds."""
    starts = np.asarray(starts, dtype=float)
    rungs = pruning.rungs(max_steps) if pruning is not None else [max_steps]
    report = TuneReport([], [None] * len(specs))
    rounds = plan_rounds(trials) if sampler == "tpe" else [trials]
    planned = len(rounds) * sum(rungs)
    done_before = 0
    for r, size in enumerate(rounds):
        first = len(report.trials)
        report.trials += _check_trials(_next_trials(specs, report.trials, size, sampler, seed,
                                                    r), first)

        def round_progress(done: int, total: int, runs_active: int, base: int = done_before
                           ) -> None:
            if progress is not None:
                progress(base + done, planned, runs_active)

        done_before += _run_trials(
            loss, specs, report, list(range(first, len(report.trials))), starts, rungs,
            objective, stop, eval_every, bounds, deadline, cancel, round_progress, executor,
            pruning)
        if report.partial_reason is not None:
            break
    all_trials = report.trials
    for s in range(len(specs)):
        eligible = [i for i, t in enumerate(all_trials) if t.spec == s and t.status ==
                    "completed" and math.isfinite(t.objective)]
        if not eligible:  # nothing reached a finite objective: the lowest final loss
            eligible = [i for i, t in enumerate(all_trials)
                        if t.spec == s and t.status == "completed"]
        if eligible:
            report.best[s] = min(eligible, key=lambda i: all_trials[i].key(i))
    return report


def _next_trials(specs: Sequence[TuneSpec], done: list[Trial], n: int, sampler: str,
                 seed: int, round_index: int) -> list[Trial]:
    """The next n trials of each optimizer: all of them at once for random, sobol and grid;
    for tpe the start-up's Sobol points, then proposals from the trials so far."""
    if sampler != "tpe":
        return make_trials(specs, n, sampler, seed)
    out = []
    for i, spec in enumerate(specs):
        stream = np.random.SeedSequence([seed, i, round_index])
        if round_index == 0:
            points = sample(spec.space, n, "sobol", int(stream.generate_state(1)[0]))
        else:
            mine = sorted((j for j, t in enumerate(done) if t.spec == i),
                          key=lambda j: done[j].rank(j))
            points = propose(spec.space, [done[j].searched for j in mine], n,
                             np.random.default_rng(stream))
        out += [Trial(i, spec.fixed | point, point) for point in points]
    return out


def _check_trials(trials: list[Trial], first: int) -> list[Trial]:
    """A sampled value the rule refuses (a combination of values): say which trial."""
    for index, trial in enumerate(trials, start=first):
        try:
            make_group(str(trial.settings["name"]), [trial.settings])
        except HyperparameterError as exc:
            raise HyperparameterError(f"Trial {index}: {exc.detail}",
                                      loc=["optimizers", trial.spec, "search"]) from None
    return trials


def _run_trials(loss: Loss, specs: Sequence[TuneSpec], report: TuneReport, active: list[int],
                starts: Array, rungs: list[int], objective: str, stop: StopCriteria | None,
                eval_every: int, bounds: Array | None, deadline: float | None,
                cancel: Callable[[], bool] | None, progress: Callable[[int, int, int], None],
                executor: ShardExecutor | None, pruning: Pruning | None) -> int:
    """Run the given trials through the rungs (one batch a rung), setting their objectives
    and statuses; answers the steps of the rungs run."""
    all_trials, n_starts, done_before = report.trials, starts.shape[0], 0
    for r, steps in enumerate(rungs):
        if not active:
            break

        def rung_progress(done: int, total: int, runs_active: int, base: int = done_before
                          ) -> None:
            progress(base + done, total, runs_active)

        batch = _run_rung(loss, specs, [all_trials[i] for i in active], starts, steps,
                          objective, stop, eval_every, bounds, deadline, cancel, rung_progress,
                          executor)
        done_before += steps
        report.batches.append(batch)
        report.runs += int(batch.status.size)
        report.steps_computed += int(batch.steps.sum())
        values, finals, success, diverged = _objectives(batch, n_starts, objective, steps)
        for j, i in enumerate(active):
            trial = all_trials[i]
            trial.objective, trial.final_loss = float(values[j]), float(finals[j])
            trial.success_rate = float(success[j])
            trial.status = "diverged" if diverged[j] > 0.5 else "completed"
        for reason, code in (("cancelled", Status.CANCELLED),
                             ("time_limit", Status.TIME_LIMIT)):
            if (batch.status == code).any():
                report.partial_reason = reason
                break
        if report.partial_reason is not None or r == len(rungs) - 1:
            break
        active = _halve(all_trials, active, len(specs), pruning, steps)
    return done_before


def _run_rung(loss: Loss, specs: Sequence[TuneSpec], trials: list[Trial], starts: Array,
              steps: int, objective: str, stop: StopCriteria | None, eval_every: int,
              bounds: Array | None, deadline: float | None, cancel: Callable[[], bool] | None,
              progress: Callable[[int, int, int], None], executor: ShardExecutor | None
              ) -> RunBatch:
    """One batch: the given trials (in optimizer order) × starts, run for `steps`."""
    n_starts = starts.shape[0]
    record = (RecordSpec(every=1, max_points=min(steps + 1, AUC_POINTS), fields=("loss",))
              if objective == "auc" else RecordSpec(enabled=False))
    groups, labels, entries = [], [], []
    for s, spec in enumerate(specs):
        mine = [t for t in trials if t.spec == s]
        if not mine:
            continue
        name = str(spec.fixed["name"])
        groups.append(make_group(name, [t.settings for t in mine for _ in range(n_starts)]))
        labels.append(spec.label)
        entries += [(name, t.settings) for t in mine]
    plan = make_plan(loss, starts, entries, groups, labels,
                     EngineOptions(steps, stop or StopCriteria(), record, None, eval_every,
                                   bounds=bounds))
    return execute(plan, executor=executor, deadline=deadline, cancel=cancel,
                   progress=progress)


def _halve(trials: list[Trial], active: list[int], n_specs: int, pruning: Pruning | None,
           steps: int) -> list[int]:
    """Each optimizer's best ⌈n/η⌉ trials go on; the others are pruned at `steps`."""
    assert pruning is not None
    keep: list[int] = []
    for s in range(n_specs):
        mine = [i for i in active if trials[i].spec == s]
        alive = [i for i in mine if trials[i].status != "diverged"]
        alive.sort(key=lambda i: trials[i].key(i))
        n_keep = math.ceil(len(mine) / pruning.reduction_factor)
        for i in alive[n_keep:]:
            trials[i].status, trials[i].pruned_at = "pruned", steps
        keep += alive[:n_keep]
    return sorted(keep)


def trial_documents(report: TuneReport, specs: Sequence[TuneSpec]) -> list[dict[str, Any]]:
    return [{"label": specs[t.spec].label, "hyperparameters": echo_settings(t.searched),
             "objective": _finite(t.objective), "status": t.status, "pruned_at": t.pruned_at,
             "success_rate": t.success_rate} for t in report.trials]


def best_documents(report: TuneReport, specs: Sequence[TuneSpec]) -> list[dict[str, Any]]:
    out = []
    for s, spec in enumerate(specs):
        i = report.best[s]
        trial = None if i is None else report.trials[i]
        out.append({"label": spec.label,
                    "hyperparameters": None if trial is None else echo_settings(trial.searched),
                    "objective": None if trial is None else _finite(trial.objective),
                    "trial": i})
    return out


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def findings(report: TuneReport, specs: Sequence[TuneSpec], objective: str,
             stability_limit: Callable[[str, Mapping[str, Any]], float | None]
             ) -> list[dict[str, Any]]:
    """Plain-language findings with their numbers: each best, a best on the edge of its
    range, and where settings diverged (with the stability limit when it applies)."""
    out: list[dict[str, Any]] = []
    what = {"final_loss": "median final loss", "steps_to_tol": "median steps to tolerance",
            "auc": "mean log10 loss over the steps"}[objective]
    for s, spec in enumerate(specs):
        mine = [t for t in report.trials if t.spec == s]
        i = report.best[s]
        if i is None:
            out.append({"code": "tune_no_best", "message": (
                f"{spec.label}: every one of its {len(mine)} trials diverged from most starts; "
                "narrow the search toward smaller steps"),
                "data": {"label": spec.label, "trials": len(mine)}})
            continue
        best = report.trials[i]
        shown = ", ".join(f"{k} = {_fmt(v)}" for k, v in best.searched.items())
        converged = sum(1 for t in mine if t.success_rate > 0)
        value = _finite(best.objective)
        measured = (f"{what} {_fmt(value)}" if value is not None else
                    f"no trial reached a finite {what}; lowest median final loss "
                    f"{_fmt(best.final_loss)}")
        out.append({"code": "tune_best", "message": (
            f"{spec.label}: best {shown or 'setting'} ({measured}; converged from "
            f"{best.success_rate:.0%} of the starts); {converged} of {len(mine)} trials "
            "converged from some start"),
            "data": {"label": spec.label, "hyperparameters": best.searched, "objective": value,
                     "success_rate": best.success_rate}})
        for key, dim in spec.space.items():
            if isinstance(dim, Range) and key in best.searched:
                edge = _edge(dim, float(best.searched[key]))
                if edge is not None:
                    out.append({"code": "tune_edge", "message": (
                        f"{spec.label}: the best {key} = {_fmt(best.searched[key])} sits at the "
                        f"{edge} edge of the search range [{_fmt(dim.low)}, {_fmt(dim.high)}]: "
                        "the optimum may lie beyond it; widen the range"),
                        "data": {"label": spec.label, "hyperparameter": key, "edge": edge,
                                 "value": best.searched[key], "low": dim.low,
                                 "high": dim.high}})
        out += _divergence(spec, mine, stability_limit)
    return out


def _edge(dim: Range, value: float) -> str | None:
    """'lower' / 'upper' when value lies in the outer 5% of its range (in log space for a log
    range)."""
    lo, hi, v = ((math.log(dim.low), math.log(dim.high), math.log(value)) if dim.log
                 else (dim.low, dim.high, value))
    u = (v - lo) / (hi - lo)
    return "lower" if u <= 0.05 else "upper" if u >= 0.95 else None


def _divergence(spec: TuneSpec, mine: list[Trial],
                stability_limit: Callable[[str, Mapping[str, Any]], float | None]
                ) -> list[dict[str, Any]]:
    if "lr" not in spec.space or not isinstance(spec.space["lr"], Range):
        return []
    bad = [float(t.searched["lr"]) for t in mine if t.status == "diverged"]
    good = [float(t.searched["lr"]) for t in mine if t.status != "diverged"]
    if not bad or not good or min(bad) <= max(good):
        return []
    threshold = min(bad)
    limit = stability_limit(str(spec.fixed["name"]), spec.fixed)
    message = (f"{spec.label}: every lr from {_fmt(threshold)} up diverged ({len(bad)} of "
               f"{len(mine)} trials); none at or below {_fmt(max(good))} did")
    if limit is not None:
        message += f": the stability limit 2/λmax at the start is {_fmt(limit)}"
    return [{"code": "tune_diverged", "message": message,
             "data": {"label": spec.label, "lowest_diverged_lr": threshold,
                      "highest_stable_lr": max(good), "stability_limit": limit}}]


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
