"""Nelder–Mead, as scipy.optimize.minimize(method="Nelder-Mead"): one engine step is one of
scipy's iterations, and the run's point is the simplex's best vertex.

    initial simplex: x0 and x0 with coordinate i scaled by 1.05 (0.00025 where it is 0)
    each iteration, vertices sorted by f (best first), x̄ the centroid of all but the worst:
        reflect  xr = (1 + ρ)x̄ − ρ·x_worst
        expand   xe = (1 + ρχ)x̄ − ρχ·x_worst                  where f(xr) < f(best)
        contract xc = (1 + ψρ)x̄ − ψρ·x_worst (outside), or
                 xcc = (1 − ψ)x̄ + ψ·x_worst (inside)         where f(xr) ≥ f(second worst)
        shrink   every vertex v ← best + σ(v − best)          where a contraction fails
    ρ, χ, ψ, σ = 1, 2, ½, ½; `adaptive`: 1, 1 + 2/n, ¾ − 1/(2n), 1 − 1/n (Gao and Han)
    ends (reason `simplex`) when max|v − best| ≤ xatol and max|f(v) − f(best)| ≤ fatol

Only the loss's values are used (no gradient): `work` counts scipy's evaluations (nfev).
Within a box, every trial point is clipped into it, as scipy does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optim_core.engine.status import Reason
from optim_core.optimizers.base import HyperParam, StepContext, StepRule
from optim_core.optimizers.rowwise import take_rows
from optim_core.types import Array

NONZDELT, ZDELT = 0.05, 0.00025  # scipy's initial simplex


class NelderMeadState(NamedTuple):
    sim: Array  # (K, n + 1, n) vertices, best first
    fsim: Array  # (K, n + 1) their values
    done: Array  # (K,) Reason code: the simplex met xatol and fatol
    func_evals: Array  # (K, 1)
    grad_evals: Array  # (K, 1)
    hess_evals: Array  # (K, 1)
    shrinks: Array  # (K, 1)
    next_params: Array  # (K, n) the best vertex itself (not x + (best − x) rounded again)


def init(params: Array) -> NelderMeadState:
    k, n = params.shape
    zeros = np.zeros((k, 1))
    return NelderMeadState(np.zeros((k, n + 1, n)), np.zeros((k, n + 1)),
                           np.zeros(k, dtype=np.int8), zeros.copy(), zeros.copy(),
                           zeros.copy(), zeros.copy(), params.copy())


def _column(value: object, k: int) -> Array:
    return np.broadcast_to(np.asarray(value, dtype=float).reshape(-1), (k,)).copy() \
        if np.ndim(value) else np.full(k, float(value))  # type: ignore[arg-type]


def _coefficients(adaptive: Array, n: int) -> tuple[Array, Array, Array, Array]:
    """ρ, χ, ψ, σ per row, (K, 1, 1) each (scipy's constants, or Gao and Han's)."""
    dim = float(n)
    rho = np.where(adaptive, 1, 1).astype(float)
    chi = np.where(adaptive, 1 + 2 / dim, 2)
    psi = np.where(adaptive, 0.75 - 1 / (2 * dim), 0.5)
    sigma = np.where(adaptive, 1 - 1 / dim, 0.5)
    return tuple(c[:, None, None] for c in (rho, chi, psi, sigma))  # type: ignore[return-value]


def _sorted(sim: Array, fsim: Array) -> tuple[Array, Array]:
    """Vertices by value, ties as scipy's own argsort leaves them (the same sort, per row)."""
    k, m, n = sim.shape
    order = np.argsort(fsim, axis=1)
    # one flat `take` of whole vertices (fancy indexing by (row, order) copied them ~7×
    # slower at K = 1,024)
    flat = (order + m * np.arange(k)[:, None]).ravel()
    return (sim.reshape(k * m, n).take(flat, axis=0).reshape(k, m, n),
            fsim.reshape(k * m).take(flat).reshape(k, m))


def _start(params: Array, value_fn, box) -> tuple[Array, Array]:  # noqa: ANN001
    """scipy's initial simplex around each start, evaluated and sorted."""
    k, n = params.shape
    sim = np.repeat(params[:, None, :], n + 1, axis=1)
    diagonal = sim[:, 1:, :].reshape(k, n * n)[:, :: n + 1]  # vertex i+1, coordinate i
    scaled = np.where(diagonal != 0, (1 + NONZDELT) * diagonal, ZDELT)
    sim[:, 1:, :].reshape(k, n * n)[:, :: n + 1] = scaled
    if box is not None:
        lo, hi = box
        sim = np.clip(np.where(sim > hi, 2 * hi - sim, sim), lo, hi)
    with np.errstate(all="ignore"):
        fsim = value_fn(sim.reshape(k * (n + 1), n)).reshape(k, n + 1)
    return _sorted(sim, fsim)


def _converged(sim: Array, fsim: Array, xatol: Array, fatol: Array) -> Array:
    """scipy's test: max|v − best| ≤ xatol and max|f(v) − f(best)| ≤ fatol. The absolute
    value in place: a second simplex-sized temporary cost ~4× the whole test at d = 10,
    K = 1,024 (a fresh allocation of that size is fresh pages, faulted in)."""
    spread = sim[:, 1:] - sim[:, :1]
    np.abs(spread, out=spread)
    spread_x = spread.reshape(sim.shape[0], -1).max(axis=1)
    spread_f = np.abs(fsim[:, :1] - fsim[:, 1:]).max(axis=1)
    return (spread_x <= xatol) & (spread_f <= fatol)


def update(grads, state: NelderMeadState, params, hp, t, ctx: StepContext):  # noqa: ANN001, ANN201
    k, n = params.shape
    value_fn, box = ctx.value_fn, ctx.bounds
    xatol, fatol = _column(hp.xatol, k), _column(hp.fatol, k)
    evals, shrinks = state.func_evals.copy(), state.shrinks.copy()
    if t == 0:  # the simplex, built where the runs start
        sim, fsim = _start(params, value_fn, box)
        evals += n + 1
    else:
        sim, fsim = state.sim, state.fsim  # updated in place (base.py)
    clip = (lambda x: np.clip(x, *box)) if box is not None else (lambda x: x)
    # scipy tests before each iteration: the test the previous step ended with
    active = ~_converged(sim, fsim, xatol, fatol) if t == 0 else state.done == 0
    rho, chi, psi, sigma = _coefficients(
        np.broadcast_to(np.asarray(hp.adaptive).reshape(-1), (k,)).astype(bool), n)
    rows = np.flatnonzero(active)
    every = rows.size == k  # the common case: no gather and no scatter of the simplices
    if rows.size:
        s, f = (sim, fsim) if every else (take_rows(sim, rows), take_rows(fsim, rows))
        r, c, p, g = rho[rows], chi[rows], psi[rows], sigma[rows]
        worst = s[:, -1:]  # (R, 1, n)
        xbar = np.add.reduce(s[:, :-1], 1, keepdims=True) / n
        xr = clip((1 + r) * xbar - r * worst)
        with np.errstate(all="ignore"):
            fxr = value_fn(xr[:, 0])
        evals[rows] += 1
        new_x, new_f = xr[:, 0].copy(), fxr.copy()
        # the second point of each row, by what the reflection found, in one evaluation:
        # expand where it beat the best; contract outside or inside where it did not beat
        # the second worst
        better = fxr < f[:, 0]
        contract = ~better & (fxr >= f[:, -2])
        outside = contract & (fxr < f[:, -1])  # else inside
        second = better | contract
        shrink = np.zeros(rows.size, dtype=bool)
        if second.any():
            q = np.flatnonzero(second)
            rq, xq, wq = r[q], xbar[q], worst[q]
            cq, pq = c[q], p[q]
            bq, oq = better[q][:, None, None], outside[q][:, None, None]
            point = np.where(bq, (1 + rq * cq) * xq - rq * cq * wq,
                             np.where(oq, (1 + pq * rq) * xq - pq * rq * wq,
                                      (1 - pq) * xq + pq * wq))
            point = clip(point)[:, 0]
            with np.errstate(all="ignore"):
                fq = value_fn(point)
            evals[rows[q]] += 1
            take = np.where(better[q], fq < fxr[q],
                            np.where(outside[q], fq <= fxr[q], fq < f[q, -1]))
            new_x[q[take]], new_f[q[take]] = point[take], fq[take]
            shrink[q[~take & ~better[q]]] = True
        # the worst vertex replaced by the point taken, unless the simplex shrinks
        replace = ~shrink
        s[replace, -1], f[replace, -1] = new_x[replace], new_f[replace]
        if shrink.any():
            h = np.flatnonzero(shrink)
            shrunk = clip(s[h, :1] + g[h] * (s[h, 1:] - s[h, :1]))
            with np.errstate(all="ignore"):
                f[h, 1:] = value_fn(shrunk.reshape(-1, n)).reshape(h.size, n)
            s[h, 1:] = shrunk
            evals[rows[h]] += n
            shrinks[rows[h]] += 1
        s, f = _sorted(s, f)
        if every:
            sim, fsim = s, f
        else:
            sim[rows], fsim[rows] = s, f
    done = np.where(_converged(sim, fsim, xatol, fatol), Reason.SIMPLEX, 0).astype(np.int8)
    moved = active[:, None] | (t == 0)
    best = np.where(moved, sim[:, 0], params)
    return best - params, NelderMeadState(sim, fsim, done, evals, state.grad_evals,
                                          state.hess_evals, shrinks, best)


def finished(state) -> tuple[Array, Array]:  # noqa: ANN001
    return state.done > 0, state.done


HYPERPARAMS = (
    HyperParam("adaptive", False, kind="bool",
               doc="Gao and Han's coefficients for the dimension (for high dimensions)"),
    HyperParam("xatol", 1e-4, ge=0, doc="ends when every vertex is this close to the best"),
    HyperParam("fatol", 1e-4, ge=0, doc="… and every value this close to the best's"),
)

NELDER_MEAD = StepRule(
    "nelder_mead", init, update, HYPERPARAMS,
    "Nelder–Mead simplex, gradient-free, as scipy.optimize.minimize(method='Nelder-Mead').",
    uses_loss=True, finished=finished, counts_evals=True,
    counters=("func_evals", "grad_evals", "hess_evals", "shrinks"),
)
