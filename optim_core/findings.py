"""Plain-language findings: why a run behaved as it did, each with the numbers it rests on.

Every finding is {code, message, data}. Codes are stable; messages may improve. Findings are
derived from the run's status and diagnostics and the local quadratic model (Hessian
eigenvalues at the start and at the end), and never contradict the status.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optim_core.diagnostics.curvature import KIND_RTOL
from optim_core.optimizers.base import StepRule

# Oscillation above this means most steps reverse at least one coordinate in two dimensions
# (0.5 is a perfect zig-zag in 2-D; a smooth descent scores 0).
ZIGZAG_OSCILLATION = 0.3
# Fewer steps than this are too few to call a pattern a zig-zag (Newton's 3-step finishes).
ZIGZAG_MIN_STEPS = 10
# Condition numbers from here on make plain gradient descent visibly slow (~κ steps).
SLOW_RAVINE_CONDITION = 100.0
# A measured rate within this relative distance of the prediction "agrees" with the theory.
RATE_AGREEMENT = 0.05


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:,.4g}" if abs(x) >= 1000 else f"{x:.4g}"


def stability_limit(rule: StepRule, lam_max: float | None, momentum: float) -> float | None:
    """Largest lr for which the rule is stable on curvature lam_max (its quadratic model)."""
    if rule.model is None or lam_max is None or lam_max <= 0 or not math.isfinite(lam_max):
        return None
    return rule.model.stability_limit(lam_max, momentum)


def run_findings(run: dict[str, Any], context: dict[str, Any]) -> list[dict[str, Any]]:
    """Findings for one run. `context`: the rule (a StepRule: what it knows decides which
    findings apply), lr0, momentum0, λmax and κ at the start (None unless finite and
    positive), the final eigenvalues, …"""
    found: list[dict[str, Any]] = []
    status, steps = run["status"], run["steps"]
    diag = run["diagnostics"]
    rule: StepRule = context["rule"]
    lr0, mom0 = context.get("lr0"), context.get("momentum0") or 0.0
    lam_end = context.get("final_eigenvalues")
    final = run["final"]

    def add(code: str, message: str, **data: Any) -> None:
        found.append({"code": code, "message": message, "data": data})

    lam_max0 = context.get("lambda_max0")
    limit = stability_limit(rule, lam_max0, mom0) if lr0 is not None else None
    if status == "converged":
        message = (f"Converged in {steps} steps ({run['reason']}): final loss "
                   f"{_fmt(final['loss'])}, gradient norm {_fmt(final['grad_norm'])}.")
        add("converged", message, steps=steps, reason=run["reason"], loss=final["loss"],
            grad_norm=final["grad_norm"])
    elif status == "diverged":
        cause = ("the loss, gradient or parameters stopped being finite"
                 if run["reason"] == "non_finite" else
                 f"the loss rose from {_fmt(context['initial_loss'])} to {_fmt(final['loss'])}")
        extra = ""
        if limit is not None and lr0 is not None and lr0 > limit:
            extra = f"; lr = {_fmt(lr0)} is above the stability limit {_fmt(limit)}"
        add("diverged", f"Diverged at step {steps}: {cause}{extra}.", step=steps,
            cause=run["reason"], loss=final["loss"], initial_loss=context["initial_loss"])
    elif status == "stalled":
        add("stalled", f"Stalled at step {steps}: the best loss {_fmt(diag['best_loss'])} did "
            f"not improve for {context.get('patience')} steps (gradient norm "
            f"{_fmt(final['grad_norm'])}); a plateau or too small a step.", step=steps,
            best_loss=diag["best_loss"], patience=context.get("patience"),
            grad_norm=final["grad_norm"])
    elif status == "max_steps":
        add("max_steps", f"Stopped after the maximum of {steps} steps without meeting the "
            f"tolerance: loss {_fmt(final['loss'])}, gradient norm {_fmt(final['grad_norm'])}.",
            steps=steps, loss=final["loss"], grad_norm=final["grad_norm"])
    elif status == "time_limit":
        add("time_limit", f"Stopped by the time budget after {steps} steps: loss "
            f"{_fmt(final['loss'])}.", steps=steps, loss=final["loss"])

    if limit is not None and lr0 is not None:
        ratio = lr0 / limit
        if ratio > 1.0:
            add("unstable_lr", f"lr = {_fmt(lr0)} is {ratio:.0%} of the stability limit "
                f"{_fmt(limit)} (2/λmax with λmax = {_fmt(lam_max0)} where it started): every "
                "step overshoots along the steepest direction.", lr=lr0, stability_limit=limit,
                lambda_max=lam_max0, ratio=ratio)
    oscillation = diag.get("oscillation")
    # Minibatch noise flips signs too: on stochastic runs that is the noise floor, not a zig-zag.
    if (oscillation is not None and math.isfinite(oscillation)
            and oscillation >= ZIGZAG_OSCILLATION and steps >= ZIGZAG_MIN_STEPS
            and status != "diverged" and not context.get("stochastic")):
        message = f"Zig-zags across the steep direction: oscillation {oscillation:.2f}"
        data: dict[str, Any] = {"oscillation": oscillation}
        if limit is not None and lr0 is not None:
            message += (f"; lr = {_fmt(lr0)} is {lr0 / limit:.0%} of the stability limit "
                        f"{_fmt(limit)}")
            data |= {"lr": lr0, "stability_limit": limit, "ratio": lr0 / limit}
        add("zigzag", message + ".", **data)
    kappa0 = context.get("condition0")
    if (rule.model is not None and rule.model.slow_in_ravines and kappa0 is not None
            and kappa0 >= SLOW_RAVINE_CONDITION and status != "diverged"):
        add("slow_ravine", f"Condition number {_fmt(kappa0)} where it started: plain gradient "
            f"descent needs on the order of κ steps; momentum or Adam would help.",
            condition_number=kappa0, steps=steps)
    counters = run.get("work", {})
    if counters.get("fallback_steps", 0) > 0:  # a second-order rule stepped without H⁻¹
        fb = int(counters["fallback_steps"])
        esc = int(counters.get("escape_steps", 0))
        how = context.get("fallback", "gradient")
        message = (f"{rule.name.title()} fell back on {fb} of {steps} steps where the "
                   f"Hessian was not "
                   f"positive definite (using the {how} fallback)")
        if esc:
            message += f"; {esc} escape step(s) along the negative-curvature direction"
        data = {"fallback_steps": fb, "escape_steps": esc, "steps": steps, "fallback": how}
        flat = _flat_directions(diag.get("final_curvature"))
        if flat is not None:
            count, total, scale = flat
            message += (f". At the end {count} of {total} curvatures are flat (|λ| ≤ 1e-8 of "
                        f"the largest, {_fmt(scale)}): directions the loss does not change "
                        "along, such as a shift shared by all softmax classes without l2, "
                        "where no Newton step exists")
            data["flat_directions"] = count
        if how == "gradient" and status != "converged":
            message += ('; fallback "damped" (or "saddle_free") takes curvature-scaled steps '
                        "there instead of gradient steps of fallback_lr")
        add("newton_fallback", message + ".", **data)
    kind = diag.get("final_curvature", {}) or {}
    if kind.get("kind") in ("saddle", "indefinite") and status != "diverged":
        lam = kind.get("eigenvalues")
        where = ("a saddle point, not a minimum" if kind["kind"] == "saddle" else
                 f"the gradient is still {_fmt(final.get('grad_norm') or math.nan)} there, so "
                 "not at a saddle point yet, but no minimum either")
        add("saddle", f"Ended where the Hessian is indefinite (eigenvalues {_fmt(min(lam))} to "
            f"{_fmt(max(lam))}): {where}.", eigenvalues=lam)
    measured = diag.get("convergence_rate")
    if (lam_end is not None and lr0 is not None and measured is not None
            and math.isfinite(measured) and status in ("converged", "max_steps")
            and kind.get("kind") in ("minimum", "convex") and not context.get("scheduled")):
        predicted = (None if rule.model is None else
                     rule.model.loss_rate(lr0, mom0, np.asarray(lam_end)))
        if predicted is not None and 0 < predicted < 1:
            agrees = abs(measured - predicted) <= RATE_AGREEMENT * predicted
            verdict = "agrees with" if agrees else "differs from"
            add("rate_vs_theory", f"Measured loss-gap ratio {measured:.4g} per step {verdict} "
                f"the {predicted:.4g} the local quadratic model predicts at lr = {_fmt(lr0)} "
                f"(curvatures {_fmt(float(np.min(lam_end)))} to "
                f"{_fmt(float(np.max(lam_end)))}).", measured=measured, predicted=predicted,
                agrees=agrees)
    noise = context.get("noise_floor")
    if noise is not None:
        add("noise_floor", noise["message"], **noise["data"])
    return found


def _flat_directions(curvature: dict[str, Any] | None) -> tuple[int, int, float] | None:
    """(flat, d, max|λ|) where the final Hessian is degenerate: some |λ| within
    curvature.KIND_RTOL of the largest, none clearly negative."""
    if not curvature or curvature.get("kind") != "degenerate":
        return None
    magnitude = np.abs(np.asarray(curvature["eigenvalues"], dtype=float))
    scale = float(magnitude.max())
    count = int(np.sum(magnitude <= KIND_RTOL * scale))
    return (count, magnitude.size, scale) if count and scale > 0 else None


def compare_finding(summary: list[dict[str, Any]], kappa: float | None) -> dict[str, Any] | None:
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
