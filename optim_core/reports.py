"""Report: an executed plan's RunBatch turned into JSON-ready answers: per-run reports with
diagnostics and findings, compare's ranked summary, a sweep's rows and its best setting.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optim_core.answers import Finding, Run, SummaryEntry, SweepBest, SweepRow
from optim_core.diagnostics import curvature, path, rates
from optim_core.engine.groups import echo_settings
from optim_core.engine.results import RunBatch
from optim_core.engine.status import REASON_LABELS, STATUS_LABELS, Status
from optim_core.engine.stopping import StopCriteria
from optim_core.findings import RunFacts, batch_findings, compare_finding
from optim_core.losses.base import Loss
from optim_core.optimizers.base import StepRule
from optim_core.schedules import Schedule
from optim_core.shards import Plan
from optim_core.types import Array

# Final and start curvature cost one Hessian and one eigvalsh per run; skip above this.
CURVATURE_BUDGET = 2e8


@dataclass(slots=True)
class BatchReport:
    runs: list[Run]
    batch: RunBatch
    labels: list[str]
    optimizers: list[dict[str, Any]]
    starts: Array  # (S, d)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SweepReport:
    rows: list[SweepRow]
    best: SweepBest
    batch: RunBatch
    runs: list[Run] | None


def optimize_report(plan: Plan, batch: RunBatch, with_runs: bool = True) -> BatchReport:
    """The reports of an executed optimize plan."""
    loss, groups, labels = plan.work.loss, plan.groups, plan.labels
    resolved = [echo_settings(g.settings[0]) | {"name": g.rule.name} for g in groups]
    arrays = diagnostics_arrays(loss, batch)
    runs = build_reports(loss, batch, labels, plan.work.options.stop, arrays) if with_runs else []
    mark_at_bound(runs, batch, plan.work.options.bounds)
    return BatchReport(runs, batch, labels, resolved, plan.work.starts,
                       {"start_eigenvalues": arrays["start_eigenvalues"]})


def _hessian_eigenvalues(loss: Loss, points: Array) -> Array | None:
    k, d = points.shape
    cost = k * (getattr(loss, "hess_cost", d * d * 20) + d**3)
    if cost > CURVATURE_BUDGET:
        return None
    with np.errstate(all="ignore"):
        return curvature.eigenvalues(loss.hess(points))


def _final_and_start_eigenvalues(loss: Loss, finals: Array, starts: Array
                                 ) -> tuple[Array | None, Array | None]:
    """Both in one Hessian evaluation when the budget allows (half the calls of a small batch)."""
    both = _hessian_eigenvalues(loss, np.concatenate([finals, starts]))
    if both is not None:
        return both[: finals.shape[0]], both[finals.shape[0]:]
    return _hessian_eigenvalues(loss, finals), _hessian_eigenvalues(loss, starts)


def diagnostics_arrays(loss: Loss, batch: RunBatch) -> dict[str, Any]:
    """Every per-run diagnostic as arrays (vectorised over K). Diverged runs overflow here
    (a distance of 1e300): their values are inf or NaN, answered as null, and not a warning."""
    with np.errstate(all="ignore"):
        return _diagnostics_arrays(loss, batch)


def _diagnostics_arrays(loss: Loss, batch: RunBatch) -> dict[str, Any]:
    final_lam, start_lam = _final_and_start_eigenvalues(loss, batch.final_params, batch.starts)
    distance = None
    if loss.minima is not None and len(loss.minima):
        gaps = batch.final_params[:, None, :] - np.asarray(loss.minima)[None, :, :]
        distance = np.min(np.linalg.norm(gaps, axis=2), axis=1)
    f_min = None if batch.stochastic else loss.f_min
    return {
        "oscillation": path.oscillation(batch.sign_flips, batch.step_pairs),
        "path_efficiency": path.path_efficiency(batch.starts, batch.final_params,
                                                batch.path_length),
        "convergence_rate": (np.full(batch.status.shape, np.nan) if batch.stochastic else
                             rates.convergence_rate(batch.recent_losses, batch.steps, f_min)),
        "loss_reduction": rates.loss_reduction(batch.initial_loss, batch.final_loss, loss.f_min),
        "final_eigenvalues": final_lam,
        "final_kind": None if final_lam is None else curvature.kind(final_lam,
                                                                    batch.final_grad_norm),
        "final_condition": None if final_lam is None else curvature.condition_number(final_lam),
        "start_eigenvalues": start_lam,
        "distance": distance,
    }


SMALL_COLUMN = 64  # below this many runs a plain list comprehension converts faster


def _column(values: Array | None, k: int) -> list[float | None]:
    """A per-run column as JSON-ready floats (None for NaN and ±inf), converted at once."""
    if values is None:
        return [None] * k
    values = np.asarray(values, dtype=float)
    if values.size <= SMALL_COLUMN:
        isfinite = math.isfinite
        return [x if isfinite(x) else None for x in values.tolist()]
    column = values.astype(object)
    column[~np.isfinite(values)] = None
    return column.tolist()


def _hyper_columns(batch: RunBatch, name: str) -> list[float | None]:
    """Each run's value of hyperparameter `name` at step 0 (None where its rule has none)."""
    out: list[float | None] = []
    for group in batch.groups:
        column = getattr(group.hyper_at(0), name, None)
        if column is None:
            out += [None] * group.size
        elif isinstance(column, np.ndarray):
            out += column[:, 0].tolist()
        else:  # a float: every run of the group shares it
            out += [column] * group.size
    return out


def _finite_rows(lam: Array | None, k: int) -> Array:
    """Which runs have an all-finite eigenvalue row."""
    if lam is None:
        return np.zeros(k, dtype=bool)
    return np.isfinite(lam).all(axis=1)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while thousands of small acyclic dicts are built: its
    collections, triggered by the allocations, walked the growing reports again and again
    (4,096 reports: 29–75 ms with it, 26 ms without). Process-wide, so only re-enabled by
    whoever disabled it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


AT_BOUND_RTOL = 1e-9  # a coordinate this close to a bound (relative, at least absolute) is on it


def mark_at_bound(runs: list[Run], batch: RunBatch, bounds: Array | None) -> None:
    """With a box, each run says whether it ended on the box's surface (some coordinate at a
    bound)."""
    if bounds is None or not runs:
        return
    final = batch.final_params
    lo, hi = bounds[:, 0], bounds[:, 1]
    with np.errstate(invalid="ignore"):
        near_lo = np.abs(final - lo) <= AT_BOUND_RTOL * np.maximum(1.0, np.abs(lo))
        near_hi = np.abs(final - hi) <= AT_BOUND_RTOL * np.maximum(1.0, np.abs(hi))
    for run, on in zip(runs, (near_lo | near_hi).any(axis=1).tolist(), strict=True):
        run["at_bound"] = on


def build_reports(loss: Loss, batch: RunBatch, labels: Sequence[str], stop: StopCriteria,
                  arrays: dict[str, Any] | None = None) -> list[Run]:
    """One JSON-ready report per run, with diagnostics and findings.

    Every per-run number is converted column by column (one NumPy pass and one `tolist` per
    field, not a float() per value), and the quadratic-model quantities the findings need
    (λmax and κ at the start) are computed for all runs at once."""
    with _gc_paused():
        return _build_reports(loss, batch, labels, stop, arrays)


def _build_reports(loss: Loss, batch: RunBatch, labels: Sequence[str], stop: StopCriteria,
                   arrays: dict[str, Any] | None) -> list[Run]:
    arrays = arrays if arrays is not None else diagnostics_arrays(loss, batch)
    k = batch.status.shape[0]
    lr0, mom0 = _hyper_columns(batch, "lr"), _hyper_columns(batch, "momentum")
    final_lam, start_lam = arrays["final_eigenvalues"], arrays["start_eigenvalues"]
    final_ok, start_ok = _finite_rows(final_lam, k), _finite_rows(start_lam, k)
    lam_max0 = [None] * k
    kappa0 = [None] * k
    if start_lam is not None:
        with np.errstate(all="ignore"):
            top, bottom = start_lam.max(axis=1), start_lam.min(axis=1)
            lam_max0 = _column(np.where(start_ok, top, np.nan), k)
            kappa0 = _column(np.where(start_ok & (bottom > 0), top / bottom, np.nan), k)
    final_lam_rows = final_lam.tolist() if final_lam is not None else None
    final_condition = _column(arrays["final_condition"], k)
    final_kind = arrays["final_kind"]
    status = [STATUS_LABELS[s] for s in batch.status.tolist()]
    reason = [REASON_LABELS[r] for r in batch.reason.tolist()]
    steps = batch.steps.tolist()
    to_tol = batch.steps_to_tol.tolist()
    starts, finals = batch.starts.tolist(), batch.final_params.tolist()
    final_loss, grad_norm = _column(batch.final_loss, k), _column(batch.final_grad_norm, k)
    initial, best = _column(batch.initial_loss, k), _column(batch.best_loss, k)
    reduction = _column(arrays["loss_reduction"], k)
    oscillation = _column(arrays["oscillation"], k)
    efficiency = _column(arrays["path_efficiency"], k)
    path_length = _column(batch.path_length, k)
    rate = _column(arrays["convergence_rate"], k)
    distance = _column(arrays["distance"], k)
    grad_evals, hess_evals = batch.grad_evals.astype(int).tolist(), \
        batch.hess_evals.astype(int).tolist()
    counters = {name: values.astype(int).tolist() for name, values in batch.counters.items()}
    # per run, from its group (runs are in group order): label, rule, settings
    labels_of: list[str] = []
    rules: list[StepRule] = []
    settings_of: list[dict[str, Any]] = []
    for gi, group in enumerate(batch.groups):
        labels_of += [labels[gi]] * group.size
        rules += [group.rule] * group.size
        own = list(group.settings[:group.size])
        settings_of += own + [{}] * (group.size - len(own))
    scheduled: dict[int, bool] = {}  # per distinct settings object
    for settings in settings_of:
        if id(settings) not in scheduled:
            scheduled[id(settings)] = any(isinstance(v, Schedule) for v in settings.values())
    fallback = [settings.get("fallback") for settings in settings_of]
    is_scheduled = [scheduled[id(settings)] for settings in settings_of]
    final_curvatures = [
        {"eigenvalues": lam, "condition_number": cond, "kind": kind} if ok else None
        for ok, lam, cond, kind in zip(
            final_ok.tolist(), final_lam_rows if final_lam_rows is not None else [None] * k,
            final_condition, final_kind if final_kind is not None else [None] * k, strict=True)]
    works = _works(batch.groups, steps, grad_evals, hess_evals, counters)
    reports: list[Run] = [
        {"start": start, "label": label, "optimizer": rule.name, "status": st, "reason": why,
         "steps": n,
         "final": {"params": final, "loss": loss_i, "grad_norm": norm},
         "diagnostics": {
             "initial_loss": f0, "best_loss": best_i, "loss_reduction": reduced,
             "steps_to_tol": tol_at if tol_at >= 0 else None, "oscillation": osc,
             "path_efficiency": eff, "path_length": length, "convergence_rate": rate_i,
             "final_curvature": curv, "distance_to_minimum": dist},
         "work": work}
        for (start, label, rule, st, why, n, final, loss_i, norm, f0, best_i, reduced, tol_at,
             osc, eff, length, rate_i, curv, dist, work) in zip(
            starts, labels_of, rules, status, reason, steps, finals, final_loss, grad_norm,
            initial, best, reduction, to_tol, oscillation, efficiency, path_length, rate,
            final_curvatures, distance, works, strict=True)]
    noise: list[dict[str, Any] | None] = [None] * k
    if batch.trajectories is not None:
        for i, (report, traj) in enumerate(zip(reports, batch.trajectories, strict=True)):
            report["trajectory"] = traj.as_dict()
            if batch.stochastic:
                noise[i] = _noise_floor(batch, i, traj, loss)
    facts = RunFacts(
        rules=rules, status=status, reason=reason, steps=steps, final_loss=final_loss,
        grad_norm=grad_norm, initial_loss=initial, best_loss=best,
        oscillation=np.asarray(arrays["oscillation"], dtype=float),
        convergence_rate=np.asarray(arrays["convergence_rate"], dtype=float),
        final_curvature=final_curvatures,
        final_eigenvalues=[final_lam[i] if final_ok[i] else None  # type: ignore[index]
                           for i in range(k)],
        work=works, lr0=lr0, momentum0=mom0, lambda_max0=lam_max0,
        condition0=kappa0, fallback=fallback, scheduled=is_scheduled, noise_floor=noise,
        patience=stop.patience, stochastic=batch.stochastic, dim=loss.dim,
        quadratic=bool(getattr(loss, "quadratic", False)))
    for report, found in zip(reports, batch_findings(facts), strict=True):
        report["findings"] = found
    return reports


EVALUATIONS = ("func_evals", "grad_evals", "hess_evals")


def _works(groups: list[Any], steps: list[int], grad_evals: list[int], hess_evals: list[int],
           counters: dict[str, list[int]]) -> list[dict[str, int]]:
    """Each run's `work`: its function, gradient and Hessian evaluations (the rule's own count
    where it keeps one, else one a step, plus a line search's values), then the rule's other
    counters in the rule's order."""
    works: list[dict[str, int]] = []
    row = 0
    for group in groups:
        rule = group.rule
        others = [name for name in rule.counters if name in counters and name not in EVALUATIONS]
        for i in range(row, row + group.size):
            if rule.counts_evals:
                work = {name: counters[name][i] for name in EVALUATIONS}
            else:
                searched = counters["line_search_evals"][i] if "line_search_evals" in counters \
                    else 0
                work = {"func_evals": steps[i] + 1 + searched, "grad_evals": grad_evals[i],
                        "hess_evals": hess_evals[i]}
            works.append(work | {name: counters[name][i] for name in others})
        row += group.size
    return works


def _noise_floor(batch: RunBatch, k: int, traj: Any, loss: Loss) -> dict[str, Any] | None:
    """Stochastic runs whose full-batch loss levelled off well above what full batches reach."""
    if not batch.stochastic or batch.status[k] == Status.CONVERGED or traj.loss is None:
        return None
    losses = np.asarray(traj.loss)
    n = losses.size
    if n < 8 or not np.all(np.isfinite(losses)):
        return None
    late = losses[3 * n // 4:]
    middle = losses[n // 2: 3 * n // 4]
    level, earlier = float(np.mean(late)), float(np.mean(middle))
    scale = max(abs(level), 1e-12)
    if earlier - level > 0.02 * scale:
        return None  # still improving
    spread = float(np.std(late))
    data = {"level": level, "spread": spread, "f_min": loss.f_min}
    extra = ""
    if loss.f_min is not None:
        extra = f", {level - loss.f_min:.3g} above the optimum {loss.f_min:.4g}"
        data["gap"] = level - loss.f_min
    return {"message": f"The loss stopped improving at about {level:.4g} (±{spread:.2g}){extra}: "
                       "the level the minibatch noise allows at this learning rate; a decaying lr "
                       "or larger batches go lower.", "data": data}


def summarize(reports: Sequence[Run], labels: Sequence[str],
              optimizers: Sequence[Mapping[str, Any]], n_starts: int) -> list[SummaryEntry]:
    """Per-optimizer summary for compare, ranked best first.

    Rank: more converged runs first, then fewer median function evaluations to tolerance (one
    L-BFGS step with its line search is not one Adam step), then fewer median steps, then the
    lower best final loss, then fewer diverged runs.
    """
    summary = []
    for i, label in enumerate(labels):
        runs = reports[i * n_starts:(i + 1) * n_starts]
        steps = [r["diagnostics"]["steps_to_tol"] for r in runs
                 if r["diagnostics"]["steps_to_tol"] is not None]
        evals = [r["work"]["func_evals"] for r in runs
                 if r["diagnostics"]["steps_to_tol"] is not None]
        finals = [r["final"]["loss"] for r in runs if r["final"]["loss"] is not None
                  and r["status"] != "diverged"]
        summary.append({
            "label": label,
            "optimizer": dict(optimizers[i]),
            "runs": len(runs),
            "converged": sum(r["status"] == "converged" for r in runs),
            "diverged": sum(r["status"] == "diverged" for r in runs),
            "median_steps_to_tol": _median_int(steps),
            "median_evals_to_tol": _median_int(evals),
            "best_final_loss": min(finals) if finals else None,
            "median_final_loss": float(np.median(finals)) if finals else None,
        })
    order = sorted(range(len(summary)), key=lambda i: (
        -summary[i]["converged"],
        summary[i]["median_evals_to_tol"] if summary[i]["median_evals_to_tol"] is not None
        else math.inf,
        summary[i]["median_steps_to_tol"] if summary[i]["median_steps_to_tol"] is not None
        else math.inf,
        summary[i]["best_final_loss"] if summary[i]["best_final_loss"] is not None else math.inf,
        summary[i]["diverged"], i))
    ranked = []
    for rank, i in enumerate(order, start=1):
        ranked.append(summary[i] | {"rank": rank})
    return ranked


def _median_int(values: Sequence[float]) -> float | None:
    if not values:
        return None
    m = float(np.median(values))
    return int(m) if m.is_integer() else m


def compare_summary_finding(summary: list[SummaryEntry], start_lam: Array | None
                            ) -> Finding | None:
    kappa = None
    if start_lam is not None:
        lam = np.asarray(start_lam)
        if lam.size and np.all(np.isfinite(lam)) and lam.min() > 0:
            kappa = float(lam.max() / lam.min())
    return compare_finding(summary, kappa)


def sweep_report(plan: Plan, batch: RunBatch, include_runs: bool = False) -> SweepReport:
    """Rows per grid point (and the runs' reports) of an executed sweep plan."""
    n_starts = plan.work.starts.shape[0]
    rows = []
    for i, point in enumerate(plan.points):
        sl = slice(i * n_starts, (i + 1) * n_starts)
        status = batch.status[sl]
        finals = batch.final_loss[sl][status != Status.DIVERGED]
        finals = finals[np.isfinite(finals)]
        to_tol = batch.steps_to_tol[sl]
        to_tol = to_tol[to_tol >= 0]
        rows.append({
            "hyperparameters": echo_settings(point),
            "success_rate": float(np.mean(status == Status.CONVERGED)),
            "divergence_rate": float(np.mean(status == Status.DIVERGED)),
            "median_final_loss": float(np.median(finals)) if finals.size else None,
            "median_steps_to_tol": _median_int(to_tol.tolist()),
        })
    runs = None
    if include_runs:
        runs = build_reports(plan.work.loss, batch, plan.labels, plan.work.options.stop)
        mark_at_bound(runs, batch, plan.work.options.bounds)
    return SweepReport(rows, choose_best(rows), batch, runs)


# A setting that diverges from more than this fraction of starts is never chosen as best.
MAX_BEST_DIVERGENCE = 0.5


def choose_best(rows: Sequence[SweepRow]) -> SweepBest:
    """Highest success rate, then fewest median steps to tolerance, then lowest final loss."""
    eligible = [i for i, r in enumerate(rows) if r["divergence_rate"] <= MAX_BEST_DIVERGENCE]
    if not eligible:
        return {"index": None, "hyperparameters": None,
                "reason": "every setting diverged from most starts"}

    def key(i: int) -> tuple[float, float, float, int]:
        r = rows[i]
        steps = r["median_steps_to_tol"]
        final = r["median_final_loss"]
        return (-r["success_rate"], steps if steps is not None else math.inf,
                final if final is not None else math.inf, i)

    best = min(eligible, key=key)
    row = rows[best]
    if row["success_rate"] > 0:
        reason = (f"highest success rate ({row['success_rate']:.0%}) with the fewest median steps "
                  f"to tolerance ({row['median_steps_to_tol']})")
    else:
        reason = (f"no setting converged; lowest median final loss "
                  f"({row['median_final_loss']:.4g}) among settings that did not diverge")
    if len(eligible) < len(rows):
        excluded = len(rows) - len(eligible)
        reason += f"; {excluded} setting(s) excluded for diverging from most starts"
    return {"index": best, "hyperparameters": row["hyperparameters"], "reason": reason}
