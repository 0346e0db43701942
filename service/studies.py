"""Request models → optim_core's studies → answers: /v1/tune, /v1/basins, /v1/benchmark (the
same glue as service/translate.py, for the requests that are many batches in one)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from optim_core.answers import BasinsResponse, BenchmarkResponse, TuneResponse
from optim_core.api import start_stability_limit
from optim_core.errors import DimensionError
from optim_core.plan import build_groups, step_cost
from optim_core.studies.basins import basins
from optim_core.studies.benchmark import (
    SUITES,
    benchmark,
    ecdf,
    profile,
    suite_losses,
    table,
)
from optim_core.studies.tune import (
    Pruning,
    TuneSpec,
    best_documents,
    check_space,
    findings,
    trial_documents,
    tune,
)
from service import translate
from service.schemas.optimizers import optimizer_settings
from service.schemas.requests import CompareRequest
from service.schemas.studies import BasinsRequest, BenchmarkRequest, TuneRequest
from service.settings import Settings


def _plain(value: Any) -> Any:
    """A value as the user sent it (schedule models as dicts)."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True, exclude_none=True)
    return value


def tune_specs(body: TuneRequest) -> list[TuneSpec]:
    """Each optimizer's label, fixed settings and checked space (400s naming the place)."""
    fixed = []
    for model in body.optimizers:
        settings = optimizer_settings(model)
        settings.pop("search", None)
        fixed.append(settings)
    _, labels = build_groups(fixed, 1)  # validates the fixed settings, names the optimizers
    specs = []
    for i, (model, settings, label) in enumerate(zip(body.optimizers, fixed, labels,
                                                     strict=True)):
        space = {key: (dim.model_dump() if isinstance(dim, BaseModel) else
                       [_plain(v) for v in dim]) for key, dim in model.search.items()}
        specs.append(TuneSpec(label, settings, check_space(i, settings["name"], space)))
    return specs


def tune_runs(body: TuneRequest) -> int:
    return body.trials * len(body.optimizers)


def run_tune(body: TuneRequest, settings: Settings, dry_run: bool = False, **engine: Any
             ) -> TuneResponse | None:
    """Answer /v1/tune: the trials (in rungs when pruning), then a compare at the best."""
    began = time.perf_counter()
    loss = translate.build_loss(body.loss, settings)
    starts = translate._starts(body, loss, settings)
    specs = tune_specs(body)
    rules = [str(s.fixed["name"]) for s in specs]
    translate._check_work(tune_runs(body) * starts.shape[0], body, loss, rules, settings,
                          recorded=False)
    box = translate.check_bounds(loss, body.bounds, starts)
    if dry_run:
        return None
    engine.setdefault("deadline", translate._deadline(body, settings))
    pruning = (None if body.pruning is None else
               Pruning(body.pruning.min_steps, body.pruning.reduction_factor))
    report = tune(loss, specs, starts, trials=body.trials, sampler=body.sampler,
                  seed=body.seed, objective=body.objective, pruning=pruning,
                  max_steps=body.max_steps, stop=translate._stop(body),
                  eval_every=settings.eval_every, bounds=box, **engine)
    best = best_documents(report, specs)
    compare_answer = None
    chosen = [(spec.fixed | report.trials[i].searched | {"label": spec.label})
              for spec, i in zip(specs, report.best, strict=True) if i is not None]
    if chosen and report.partial_reason is None:
        request = CompareRequest.model_validate({
            **body.model_dump(include={"loss", "start", "bounds", "max_steps", "stop",
                                       "record", "seed"}, exclude_unset=True),
            "optimizers": chosen})
        compare_answer = translate.run_optimize(request, settings, loss=loss, **engine)
    limit = start_stability_limit(loss, starts[0])
    answer: TuneResponse = {
        "loss": loss.describe(), "trials": trial_documents(report, specs), "best": best,
        "compare": compare_answer,
        "findings": findings(report, specs, body.objective, limit),
        "meta": {"trials": len(report.trials), "runs": report.runs,
                 "steps_computed": report.steps_computed, "sampler": body.sampler,
                 "objective": body.objective, "seed": body.seed,
                 "rungs": (pruning.rungs(body.max_steps) if pruning else [body.max_steps]),
                 "elapsed_ms": round((time.perf_counter() - began) * 1000, 3)}}
    if report.partial_reason is not None:
        answer["partial"], answer["partial_reason"] = True, report.partial_reason
    return answer


def run_basins(body: BasinsRequest, settings: Settings, **engine: Any) -> BasinsResponse:
    """Answer /v1/basins: the grid of starts as one batch, each labelled by its minimum."""
    began = time.perf_counter()
    loss = translate.build_loss(body.loss, settings)
    nx, ny = body.resolution
    optimizer = optimizer_settings(body.optimizer)
    runs = nx * ny
    translate._over("max_runs", runs, settings.max_runs, "The grid of starts (nx × ny)")
    translate._over("max_steps", body.max_steps, settings.max_steps, "max_steps")
    translate._over("max_work", runs * max(body.max_steps, 1) * step_cost(loss, optimizer["name"]),
                    settings.max_work, "The estimated work (starts × steps × cost of one step)")
    engine.setdefault("deadline", translate._deadline(body, settings))
    with translate._optimizer_loc(body):
        report = basins(loss, optimizer, body.bounds, (nx, ny), max_steps=body.max_steps,
                        stop=translate._stop(body), seed=body.seed,
                        eval_every=settings.eval_every, **engine)
    answer: BasinsResponse = {
        "loss": loss.describe(), "x": report.x, "y": report.y, "labels": report.labels,
        "minima": report.minima, "steps": report.steps, "share": report.share,
        "meta": {"runs": runs, "max_steps": body.max_steps,
                 "steps_computed": int(report.batch.steps.sum()),
                 "elapsed_ms": round((time.perf_counter() - began) * 1000, 3)}}
    return translate._mark_partial(answer, report.batch)


def _loss_name(spec: Any) -> str:
    if getattr(spec, "kind", None) == "builtin":
        return spec.name if spec.dim is None else f"{spec.name}-{spec.dim}d"
    if getattr(spec, "kind", None) == "expression":
        return spec.expression if len(spec.expression) <= 60 else spec.expression[:57] + "…"
    return str(getattr(spec, "kind", "loss"))


def run_benchmark(body: BenchmarkRequest, settings: Settings, dry_run: bool = False,
                  **engine: Any) -> BenchmarkResponse | None:
    """Answer /v1/benchmark: per loss one batch of every optimizer × start; ECDFs, profiles
    and a table in evaluations."""
    began = time.perf_counter()
    if (body.losses is None) == (body.suite is None):
        raise DimensionError("Give either `losses` (a list) or `suite` (one of "
                             f"{', '.join(SUITES)}), not both and not neither",
                             loc=["losses" if body.losses is not None else "suite"])
    if body.suite is not None:
        losses = suite_losses(body.suite)
    else:
        losses = [(_loss_name(spec), translate.build_loss(spec, settings))
                  for spec in body.losses or []]
    optimizers = [optimizer_settings(o) for o in body.optimizers]
    _, labels = build_groups(optimizers, 1)
    runs = len(losses) * len(optimizers) * body.starts_per_loss
    translate._over("max_runs", runs, settings.max_runs,
                    "The number of runs (losses × optimizers × starts_per_loss)")
    translate._over("max_steps", body.max_steps, settings.max_steps, "max_steps")
    for _, loss in losses:
        translate._over("max_dim", loss.dim, settings.max_dim, "The dimension", "")
    cost = max(step_cost(loss, o["name"]) for _, loss in losses for o in optimizers)
    translate._over("max_work", runs * max(body.max_steps, 1) * cost, settings.max_work,
                    "The estimated work (runs × steps × cost of one step)")
    translate._over("max_recorded_values", runs * (body.max_steps + 1) * 2,
                    settings.max_recorded_values,
                    "The losses recorded to find when each target is reached (runs × steps)")
    if dry_run:
        return None
    engine.setdefault("deadline", translate._deadline(body, settings))
    report = benchmark(losses, optimizers, labels, starts_per_loss=body.starts_per_loss,
                       targets=body.targets, seed=body.seed, max_steps=body.max_steps,
                       stop=translate._stop(body), eval_every=settings.eval_every, **engine)
    answer: BenchmarkResponse = {
        "targets": report.targets, "losses": report.losses, "ecdf": ecdf(report),
        "profile": profile(report), "table": table(report),
        "meta": {"runs": runs, "max_steps": body.max_steps, "seed": body.seed,
                 "starts_per_loss": body.starts_per_loss, "labels": labels,
                 "steps_computed": int(sum(b.steps.sum() for b in report.batches)),
                 "elapsed_ms": round((time.perf_counter() - began) * 1000, 3)}}
    if report.partial_reason is not None:
        answer["partial"], answer["partial_reason"] = True, report.partial_reason
    return answer
