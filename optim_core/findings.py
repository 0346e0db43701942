"""Plain-language findings: why a run behaved as it did, each with the numbers it rests on.

Every finding is {code, message, data}. Codes are stable; messages may improve. Findings are
derived from the run's status and diagnostics and the local quadratic model (Hessian
eigenvalues at the start and at the end), and never contradict the status.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from optim_core.answers import Curvature, Finding, SummaryEntry
from optim_core.diagnostics.curvature import KIND_RTOL
from optim_core.optimizers.base import StepRule
from optim_core.types import Array

# Oscillation above this means most steps reverse at least one coordinate in two dimensions
# (0.5 is a perfect zig-zag in 2-D; a smooth descent scores 0).
ZIGZAG_OSCILLATION = 0.3
# Fewer steps than this are too few to call a pattern a zig-zag (Newton's 3-step finishes).
ZIGZAG_MIN_STEPS = 10
# Condition numbers from here on make plain gradient descent visibly slow (~κ steps).
SLOW_RAVINE_CONDITION = 100.0
# A measured rate within this relative distance of the prediction "agrees" with the theory.
RATE_AGREEMENT = 0.05

Found = list[list[Finding]]  # per run, the findings made so far


def _steps(n: int) -> str:
    return "1 step" if n == 1 else f"{n} steps"


def _fmt(x: float | None, _isfinite: Callable[[float], bool] = math.isfinite) -> str:
    if x is None or not _isfinite(x):
        return "n/a"
    size = abs(x)
    if size >= 1e5 or (size < 1e-3 and x != 0):
        return f"{x:.3g}"
    return f"{x:,.4g}" if size >= 1000 else f"{x:.4g}"


def stability_limit(rule: StepRule, lam_max: float | None, momentum: float) -> float | None:
    """Largest lr for which the rule is stable on curvature lam_max (its quadratic model)."""
    if rule.model is None or lam_max is None or lam_max <= 0 or not math.isfinite(lam_max):
        return None
    return rule.model.stability_limit(lam_max, momentum)


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the findings read, one entry per run of a batch, built once by the reports: the
    JSON-ready values the messages and data quote (None where undefined), and NumPy columns
    (NaN where undefined) that select the runs each finding applies to."""

    rules: list[StepRule]
    status: list[str]
    reason: list[str]
    steps: list[int]
    final_loss: list[float | None]
    grad_norm: list[float | None]
    initial_loss: list[float | None]
    best_loss: list[float | None]
    oscillation: Array  # (K,)
    convergence_rate: Array  # (K,)
    final_curvature: list[Curvature | None]
    final_eigenvalues: list[Array | None]
    work: list[dict[str, int]]
    lr0: list[float | None]
    momentum0: list[float | None]
    lambda_max0: list[float | None]
    condition0: list[float | None]
    fallback: list[Any]
    scheduled: list[bool]
    noise_floor: list[dict[str, Any] | None]
    patience: int | None
    stochastic: bool
    dim: int = 0
    quadratic: bool = False  # the loss is a quadratic (a constant Hessian)


def batch_findings(facts: RunFacts) -> list[list[Finding]]:
    """Each run's findings, in a fixed order of codes: every kind of finding selects its runs
    over the whole batch, and only those are formatted (a batch of 4,096 runs that all hit
    max_steps formats one message each)."""
    found: Found = [[] for _ in facts.status]
    limits = _stability_limits(facts)
    for finding in (_status, _unstable_lr, _zigzag, _slow_ravine, _newton_fallback, _saddle,
                    _rate_vs_theory, _noise_floor, _quasi_newton, _line_search, _cg_on_quadratic,
                    _trust_region, _simplex):
        finding(facts, limits, found)
    return found


def _add(found: list[Finding], code: str, message: str, **data: Any) -> None:
    found.append({"code": code, "message": message, "data": data})


def _stability_limits(facts: RunFacts) -> list[float | None]:
    """Each run's largest stable lr at its start (None: no lr, no model, or no curvature)."""
    limits: list[float | None] = [None] * len(facts.status)
    for i, (rule, lr0, lam) in enumerate(zip(facts.rules, facts.lr0, facts.lambda_max0,
                                             strict=True)):
        if lr0 is not None and rule.model is not None and lam is not None:
            limits[i] = stability_limit(rule, lam, facts.momentum0[i] or 0.0)
    return limits


def _status(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    steps, final_loss, grad_norm = facts.steps, facts.final_loss, facts.grad_norm
    for i, status in enumerate(facts.status):
        n = steps[i]
        if status == "max_steps":
            _add(found[i], "max_steps", f"Stopped after the maximum of {_steps(n)} without "
                 f"meeting the tolerance: loss {_fmt(final_loss[i])}, gradient norm "
                 f"{_fmt(grad_norm[i])}.", steps=n, loss=final_loss[i], grad_norm=grad_norm[i])
        elif status == "converged":
            _add(found[i], "converged", f"Converged in {_steps(n)} ({facts.reason[i]}): final "
                 f"loss {_fmt(final_loss[i])}, gradient norm {_fmt(grad_norm[i])}.", steps=n,
                 reason=facts.reason[i], loss=final_loss[i], grad_norm=grad_norm[i])
        elif status == "diverged":
            cause = ("the loss, gradient or parameters stopped being finite"
                     if facts.reason[i] == "non_finite" else
                     f"the loss rose from {_fmt(facts.initial_loss[i])} to "
                     f"{_fmt(final_loss[i])}")
            lr0, limit = facts.lr0[i], limits[i]
            extra = ""
            if limit is not None and lr0 is not None and lr0 > limit:
                extra = f"; lr = {_fmt(lr0)} is above the stability limit {_fmt(limit)}"
            _add(found[i], "diverged", f"Diverged at step {n}: {cause}{extra}.", step=n,
                 cause=facts.reason[i], loss=final_loss[i], initial_loss=facts.initial_loss[i])
        elif status == "stalled" and facts.reason[i] in STALL_CAUSES:
            _add(found[i], "stalled", f"Stalled at step {n}: {STALL_CAUSES[facts.reason[i]]} "
                 f"(loss {_fmt(final_loss[i])}, gradient norm {_fmt(grad_norm[i])}).", step=n,
                 reason=facts.reason[i], loss=final_loss[i], grad_norm=grad_norm[i])
        elif status == "stalled":
            _add(found[i], "stalled", f"Stalled at step {n}: the best loss "
                 f"{_fmt(facts.best_loss[i])} did not improve for {facts.patience} steps "
                 f"(gradient norm {_fmt(grad_norm[i])}); a plateau or too small a step.",
                 step=n, best_loss=facts.best_loss[i], patience=facts.patience,
                 grad_norm=grad_norm[i])
        elif status == "time_limit":
            _add(found[i], "time_limit", f"Stopped by the time budget after {_steps(n)}: loss "
                 f"{_fmt(final_loss[i])}.", steps=n, loss=final_loss[i])


def _unstable_lr(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    for i, limit in enumerate(limits):
        lr0 = facts.lr0[i]
        if limit is not None and lr0 is not None and lr0 / limit > 1.0:
            lam = facts.lambda_max0[i]
            _add(found[i], "unstable_lr", f"lr = {_fmt(lr0)} is {lr0 / limit:.0%} of the "
                 f"stability limit {_fmt(limit)} (2/λmax with λmax = {_fmt(lam)} where it "
                 "started): every step overshoots along the steepest direction.", lr=lr0,
                 stability_limit=limit, lambda_max=lam, ratio=lr0 / limit)


def _zigzag(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    # Minibatch noise flips signs too: on stochastic runs that is the noise floor, not a zig-zag.
    if facts.stochastic:
        return
    with np.errstate(invalid="ignore"):
        candidates = np.flatnonzero((facts.oscillation >= ZIGZAG_OSCILLATION)
                                    & (np.asarray(facts.steps) >= ZIGZAG_MIN_STEPS))
    for i in candidates.tolist():
        # a zig-zag is a first-order rule's pathology (a line search or a model damps it)
        if facts.status[i] == "diverged" or facts.rules[i].elementwise is None:
            continue
        oscillation = float(facts.oscillation[i])
        message = f"Zig-zags across the steep direction: oscillation {oscillation:.2f}"
        data: dict[str, Any] = {"oscillation": oscillation}
        lr0, limit = facts.lr0[i], limits[i]
        if limit is not None and lr0 is not None:
            message += (f"; lr = {_fmt(lr0)} is {lr0 / limit:.0%} of the stability limit "
                        f"{_fmt(limit)}")
            data |= {"lr": lr0, "stability_limit": limit, "ratio": lr0 / limit}
        _add(found[i], "zigzag", message + ".", **data)


def _slow_ravine(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    for i, kappa in enumerate(facts.condition0):
        rule = facts.rules[i]
        if (kappa is not None and kappa >= SLOW_RAVINE_CONDITION and rule.model is not None
                and rule.model.slow_in_ravines and facts.status[i] != "diverged"):
            _add(found[i], "slow_ravine", f"Condition number {_fmt(kappa)} where it started: "
                 "plain gradient descent needs on the order of κ steps; momentum or Adam "
                 "would help.", condition_number=kappa, steps=facts.steps[i])


def _newton_fallback(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    for i, counters in enumerate(facts.work):
        if counters.get("fallback_steps", 0) <= 0:  # a second-order rule stepped without H⁻¹
            continue
        fb, steps = int(counters["fallback_steps"]), facts.steps[i]
        esc = int(counters.get("escape_steps", 0))
        how = facts.fallback[i]
        message = (f"{facts.rules[i].name.title()} fell back on {fb} of {steps} steps where "
                   f"the Hessian was not positive definite (using the {how} fallback)")
        if esc:
            message += f"; {esc} escape step(s) along the negative-curvature direction"
        data = {"fallback_steps": fb, "escape_steps": esc, "steps": steps, "fallback": how}
        flat = _flat_directions(facts.final_curvature[i])
        if flat is not None:
            count, total, scale = flat
            message += (f". At the end {count} of {total} curvatures are flat (|λ| ≤ 1e-8 of "
                        f"the largest, {_fmt(scale)}): directions the loss does not change "
                        "along, such as a shift shared by all softmax classes without l2, "
                        "where no Newton step exists")
            data["flat_directions"] = count
        if how == "gradient" and facts.status[i] != "converged":
            message += ('; fallback "damped" (or "saddle_free") takes curvature-scaled steps '
                        "there instead of gradient steps of fallback_lr")
        _add(found[i], "newton_fallback", message + ".", **data)


def _saddle(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    for i, curvature in enumerate(facts.final_curvature):
        if (curvature is None or curvature["kind"] not in ("saddle", "indefinite")
                or facts.status[i] == "diverged"):
            continue
        lam = curvature["eigenvalues"]
        where = ("a saddle point, not a minimum" if curvature["kind"] == "saddle" else
                 f"the gradient is still {_fmt(facts.grad_norm[i] or math.nan)} there, so "
                 "not at a saddle point yet, but no minimum either")
        _add(found[i], "saddle", f"Ended where the Hessian is indefinite (eigenvalues "
             f"{_fmt(min(lam))} to {_fmt(max(lam))}): {where}.", eigenvalues=lam)


def _rate_vs_theory(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    candidates = np.flatnonzero(np.isfinite(facts.convergence_rate))
    for i in candidates.tolist():
        curvature, lr0, rule = facts.final_curvature[i], facts.lr0[i], facts.rules[i]
        lam_end = facts.final_eigenvalues[i]
        if (lam_end is None or lr0 is None or curvature is None or rule.model is None
                or facts.status[i] not in ("converged", "max_steps")
                or curvature["kind"] not in ("minimum", "convex") or facts.scheduled[i]):
            continue
        measured = float(facts.convergence_rate[i])
        predicted = rule.model.loss_rate(lr0, facts.momentum0[i] or 0.0, np.asarray(lam_end))
        if predicted is not None and 0 < predicted < 1:
            agrees = abs(measured - predicted) <= RATE_AGREEMENT * predicted
            verdict = "agrees with" if agrees else "differs from"
            _add(found[i], "rate_vs_theory", f"Measured loss-gap ratio {measured:.4g} per step "
                 f"{verdict} the {predicted:.4g} the local quadratic model predicts at lr = "
                 f"{_fmt(lr0)} (curvatures {_fmt(float(np.min(lam_end)))} to "
                 f"{_fmt(float(np.max(lam_end)))}).", measured=measured, predicted=predicted,
                 agrees=agrees)


def _noise_floor(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    for i, noise in enumerate(facts.noise_floor):
        if noise is not None:
            _add(found[i], "noise_floor", noise["message"], **noise["data"])


STALL_CAUSES = {
    "no_descent": "the line search found no lower point along the direction: the progress "
                  "left is below the precision of the loss",
    "trust_region": "the trust region collapsed (the model predicts no decrease, or the radius "
                    "fell below 1e-12 of its start)",
}


def _quasi_newton(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    for i, work in enumerate(facts.work):
        skipped = int(work.get("skipped_updates", 0))
        if skipped:
            _add(found[i], "curvature_pair_rejected", f"sᵀy ≤ 0 on {skipped} of "
                 f"{facts.steps[i]} steps: the curvature along those steps was not positive, "
                 "so the quasi-Newton update was skipped there (the model keeps the pairs it "
                 "had).", skipped_updates=skipped, steps=facts.steps[i])


def _line_search(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    for i, work in enumerate(facts.work):
        failed = int(work.get("line_search_failures", 0))
        if failed:
            _add(found[i], "line_search_failed", f"The line search found no strong-Wolfe point "
                 f"on {failed} of {facts.steps[i]} steps (it took its lowest point instead): "
                 "the direction was poor, or the loss is flat at its precision there.",
                 failures=failed, steps=facts.steps[i])


def _cg_on_quadratic(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    if not facts.quadratic:
        return
    d = facts.dim
    for i, rule in enumerate(facts.rules):
        if rule.name != "cg" or facts.status[i] != "converged":
            continue
        n = facts.steps[i]
        if n <= d:
            message = (f"Conjugate gradient ended in {_steps(n)} on this {d}-dimensional "
                       f"quadratic: at most {d} with exact line searches, as theory says.")
        else:
            message = (f"Conjugate gradient took {n} steps on this {d}-dimensional quadratic, "
                       f"more than the {d} of exact line searches: a smaller c2 makes the "
                       "strong-Wolfe search exact on a quadratic.")
        _add(found[i], "cg_finite_termination", message, steps=n, dim=d, within=n <= d)


def _trust_region(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    for i, work in enumerate(facts.work):
        if facts.reason[i] == "trust_region":
            _add(found[i], "trust_radius_collapsed", f"The trust region collapsed after "
                 f"{int(work.get('radius_shrinks', 0))} shrinks and "
                 f"{int(work.get('rejected_steps', 0))} rejected steps: the quadratic model "
                 "no longer predicts a decrease the loss confirms.",
                 radius_shrinks=int(work.get("radius_shrinks", 0)),
                 rejected_steps=int(work.get("rejected_steps", 0)))


def _simplex(facts: RunFacts, limits: list[float | None], found: Found) -> None:
    for i, reason in enumerate(facts.reason):
        if reason != "simplex":
            continue
        norm = facts.grad_norm[i]
        where = ("where the gradient is small: a minimum" if norm is not None and norm <= 1e-3
                 else f"where the gradient is still {_fmt(norm)}: the simplex collapsed "
                 "before a minimum (Nelder–Mead can stall; restart it there, or use a "
                 "gradient method)")
        _add(found[i], "simplex_collapsed", f"The simplex collapsed within xatol and fatol "
             f"after {facts.steps[i]} iterations, {where}.", steps=facts.steps[i],
             grad_norm=norm)


def _flat_directions(curvature: dict[str, Any] | None) -> tuple[int, int, float] | None:
    """(flat, d, max|λ|) where the final Hessian is degenerate: some |λ| within
    curvature.KIND_RTOL of the largest, none clearly negative."""
    if not curvature or curvature.get("kind") != "degenerate":
        return None
    magnitude = np.abs(np.asarray(curvature["eigenvalues"], dtype=float))
    scale = float(magnitude.max())
    count = int(np.sum(magnitude <= KIND_RTOL * scale))
    return (count, magnitude.size, scale) if count and scale > 0 else None


def compare_finding(summary: list[SummaryEntry], kappa: float | None) -> Finding | None:
    """One sentence on which optimizer did best and why, with numbers."""
    if not summary:
        return None
    best = summary[0]
    where = f" (condition number {_fmt(kappa)} at the start)" if kappa else ""
    if best["converged"] == 0:
        message = (f"No optimizer reached the tolerance{where}; {best['label']} got the lowest "
                   f"loss, {_fmt(best['best_final_loss'])}.")
    else:
        message = (f"{best['label']} did best on this loss{where}: {best['converged']} of "
                   f"{best['runs']} runs converged, median {best['median_steps_to_tol']} steps")
        others = [s for s in summary[1:] if s["median_steps_to_tol"] is not None]
        if others:
            o = others[0]
            message += (f", against {o['median_steps_to_tol']} for {o['label']}")
        slow = [s for s in summary[1:] if s["converged"] == 0]
        if slow:
            message += f"; {', '.join(s['label'] for s in slow)} did not converge"
        message += "."
    return {"code": "compare", "message": message,
            "data": {"best": best["label"], "condition_number": kappa}}
