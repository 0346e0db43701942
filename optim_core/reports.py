"""Report: an executed plan's RunBatch turned into JSON-ready answers: per-run reports with
diagnostics and findings, compare's ranked summary, a sweep's rows and its best setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optim_core.diagnostics import curvature, path, rates
from optim_core.engine.groups import echo_settings
from optim_core.engine.loop import RunBatch
from optim_core.engine.status import REASON_LABELS, STATUS_LABELS, Status
from optim_core.engine.stopping import StopCriteria
from optim_core.findings import compare_finding, run_findings
from optim_core.losses.base import Loss
from optim_core.schedules import Schedule
from optim_core.shards import Plan
from optim_core.types import Array

# Final and start curvature cost one Hessian and one eigvalsh per run; skip above this.
CURVATURE_BUDGET = 2e8


@dataclass(slots=True)
class BatchReport:
    runs: list[dict[str, Any]]
    batch: RunBatch
    labels: list[str]
    optimizers: list[dict[str, Any]]
    starts: Array  # (S, d)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SweepReport:
    rows: list[dict[str, Any]]
    best: dict[str, Any]
    batch: RunBatch
    runs: list[dict[str, Any]] | None


def optimize_report(plan: Plan, batch: RunBatch, with_runs: bool = True) -> BatchReport:
    """The reports of an executed optimize plan."""
    loss, groups, labels = plan.work.loss, plan.groups, plan.labels
    resolved = [echo_settings(g.settings[0]) | {"name": g.rule.name} for g in groups]
    arrays = diagnostics_arrays(loss, batch)
    runs = build_reports(loss, batch, labels, plan.work.options.stop, arrays) if with_runs else []
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
    """Every per-run diagnostic as arrays (vectorised over K)."""
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


def _num(x: Any) -> float | None:
    """A JSON-ready float: None for NaN and ±inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _row(column: Array, local: int) -> float:
    """A run's value in a hyperparameter column ((1, 1) when every run shares it)."""
    return float(column[local if column.shape[0] > 1 else 0, 0])


def build_reports(loss: Loss, batch: RunBatch, labels: Sequence[str], stop: StopCriteria,
                  arrays: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One JSON-ready report per run, with diagnostics and findings."""
    arrays = arrays if arrays is not None else diagnostics_arrays(loss, batch)
    hyper0 = [g.hyper_at(0) for g in batch.groups]
    reports = []
    offsets = np.concatenate([[0], np.cumsum([g.size for g in batch.groups])])
    for k in range(batch.status.shape[0]):
        gi = int(batch.group_index[k])
        group = batch.groups[gi]
        local = k - offsets[gi]
        hp = hyper0[gi]
        lr0 = _row(hp.lr, local) if hasattr(hp, "lr") else None
        mom0 = _row(hp.momentum, local) if hasattr(hp, "momentum") else None
        lam_final = None if arrays["final_eigenvalues"] is None else arrays["final_eigenvalues"][k]
        final_curvature = None
        if lam_final is not None and np.all(np.isfinite(lam_final)):
            final_curvature = {
                "eigenvalues": lam_final.tolist(),
                "condition_number": _num(arrays["final_condition"][k]),
                "kind": arrays["final_kind"][k],
            }
        report: dict[str, Any] = {
            "start": batch.starts[k].tolist(),
            "label": labels[gi],
            "optimizer": group.rule.name,
            "status": STATUS_LABELS[batch.status[k]],
            "reason": REASON_LABELS[batch.reason[k]],
            "steps": int(batch.steps[k]),
            "final": {
                "params": batch.final_params[k].tolist(),
                "loss": _num(batch.final_loss[k]),
                "grad_norm": _num(batch.final_grad_norm[k]),
            },
            "diagnostics": {
                "initial_loss": _num(batch.initial_loss[k]),
                "best_loss": _num(batch.best_loss[k]),
                "loss_reduction": _num(arrays["loss_reduction"][k]),
                "steps_to_tol": int(batch.steps_to_tol[k]) if batch.steps_to_tol[k] >= 0
                else None,
                "oscillation": _num(arrays["oscillation"][k]),
                "path_efficiency": _num(arrays["path_efficiency"][k]),
                "path_length": _num(batch.path_length[k]),
                "convergence_rate": _num(arrays["convergence_rate"][k]),
                "final_curvature": final_curvature,
                "distance_to_minimum": None if arrays["distance"] is None
                else _num(arrays["distance"][k]),
            },
            "work": {
                "grad_evals": int(batch.grad_evals[k]),
                "hess_evals": int(batch.hess_evals[k]),
                **{name: int(values[k]) for name, values in batch.counters.items()
                   if name in group.rule.counters},
            },
        }
        settings = group.settings[local] if local < len(group.settings) else {}
        start_lam = arrays["start_eigenvalues"]
        context = {
            "rule": group.rule.name,
            "lr0": lr0,
            "momentum0": mom0,
            "start_eigenvalues": None if start_lam is None or not np.all(
                np.isfinite(start_lam[k])) else start_lam[k],
            "final_eigenvalues": lam_final if final_curvature else None,
            "initial_loss": _num(batch.initial_loss[k]),
            "patience": stop.patience,
            "fallback": settings.get("fallback"),
            "scheduled": any(isinstance(v, Schedule) for v in settings.values()),
            "stochastic": batch.stochastic,
        }
        if batch.trajectories is not None:
            traj = batch.trajectories[k]
            report["trajectory"] = traj.as_dict()
            context["noise_floor"] = _noise_floor(batch, k, traj, loss)
        report["findings"] = run_findings(report, context)
        reports.append(report)
    return reports


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


def summarize(reports: Sequence[dict[str, Any]], labels: Sequence[str],
              optimizers: Sequence[Mapping[str, Any]], n_starts: int) -> list[dict[str, Any]]:
    """Per-optimizer summary for compare, ranked best first.

    Rank: more converged runs first, then fewer median steps to tolerance, then the lower best
    final loss, then fewer diverged runs.
    """
    summary = []
    for i, label in enumerate(labels):
        runs = reports[i * n_starts:(i + 1) * n_starts]
        steps = [r["diagnostics"]["steps_to_tol"] for r in runs
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
            "best_final_loss": min(finals) if finals else None,
            "median_final_loss": float(np.median(finals)) if finals else None,
        })
    order = sorted(range(len(summary)), key=lambda i: (
        -summary[i]["converged"],
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


def compare_summary_finding(summary: list[dict[str, Any]], start_lam: Array | None
                            ) -> dict[str, Any] | None:
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
    return SweepReport(rows, choose_best(rows), batch, runs)


# A setting that diverges from more than this fraction of starts is never chosen as best.
MAX_BEST_DIVERGENCE = 0.5


def choose_best(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
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
