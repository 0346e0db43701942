"""Nonlinear conjugate gradient with a strong-Wolfe line search.

    d₀ = −g₀;  α by strong Wolfe (c1, c2 = 0.1) from lr·min(1, 1/‖g‖₁) at the start, after
    that from α_prev·(g_prevᵀd_prev)/(gᵀd) (Nocedal and Wright's initial step, §3.5)
    d ← −g_new + β·d, β by `beta` (y = g_new − g):
        fletcher_reeves     g_newᵀg_new / gᵀg
        polak_ribiere_plus  max(0, g_newᵀy / gᵀg)                       (scipy's CG)
        hestenes_stiefel    g_newᵀy / dᵀy
        dai_yuan            g_newᵀg_new / dᵀy
    restarted (d = −g_new) every n steps (n the dimension) and where d is not a descent
    direction (g_newᵀd ≥ 0); restarts are counted.

On an n-dimensional convex quadratic with exact line searches it ends in at most n steps (a
strong-Wolfe search with a small c2 is exact there: the cubic it interpolates is the line's
own parabola). Within a box, a row with no coordinate held at a bound searches as without
one, and keeps the strong-Wolfe point where it lies inside the box; the others search along
the projected path (Armijo) from at least the opening length lr·min(1, 1/‖g‖₁), since Armijo
backtracks but never lengthens (from the guess alone one short step made every later one as
short: 3-D Rosenbrock crawled at α ~ 1e-6 for 300 steps). Every restart uses the projected
gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optim_core.engine.status import Reason
from optim_core.optimizers.base import HyperParam, StepContext, StepRule
from optim_core.optimizers.lbfgs import _column, _free
from optim_core.optimizers.linesearch import search_moving
from optim_core.types import Array

BETAS = ("polak_ribiere_plus", "fletcher_reeves", "hestenes_stiefel", "dai_yuan")
MAX_LS = 25


class CgState(NamedTuple):
    d: Array  # (K, d) the direction of the coming step (zeros before the first)
    prev_alpha: Array  # (K,) the previous step's α
    prev_slope: Array  # (K,) the previous step's gᵀd
    since_restart: Array  # (K,) steps since the last restart
    n_iter: Array  # (K,)
    done: Array  # (K,)
    next_params: Array  # (K, d)
    step_size: Array  # (K, 1)
    func_evals: Array  # (K, 1)
    grad_evals: Array  # (K, 1)
    hess_evals: Array  # (K, 1)
    restarts: Array  # (K, 1)
    line_search_failures: Array  # (K, 1)


def init(params: Array) -> CgState:
    k, d = params.shape
    zeros = np.zeros((k, 1))
    return CgState(np.zeros((k, d)), np.zeros(k), np.zeros(k), np.zeros(k, dtype=np.int64),
                   np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int8), params.copy(),
                   zeros + np.nan, zeros + 1.0, zeros + 1.0, zeros.copy(), zeros.copy(),
                   zeros.copy())


def _beta(kind: Array, g: Array, g_new: Array, d: Array) -> Array:
    y = g_new - g
    gg = np.einsum("kd,kd->k", g, g)
    dy = np.einsum("kd,kd->k", d, y)
    new_y = np.einsum("kd,kd->k", g_new, y)
    new_new = np.einsum("kd,kd->k", g_new, g_new)
    with np.errstate(all="ignore"):
        beta = np.select([kind == 0, kind == 1, kind == 2],
                         [np.maximum(0.0, new_y / gg), new_new / gg, new_y / dy],
                         new_new / dy)
    return np.where(np.isfinite(beta), beta, 0.0)


def update(grads, state: CgState, params, hp, t, ctx: StepContext):  # noqa: ANN001, ANN201
    k, n = params.shape
    free = _free(params, grads, ctx.bounds)
    g = grads if free is None else np.where(free, grads, 0.0)
    direction = np.where((state.n_iter == 0)[:, None], -g, state.d)
    if free is not None:
        direction = np.where(free, direction, 0.0)
    gtd = np.einsum("kd,kd->k", g, direction)
    restarts = state.restarts.copy()
    bad = gtd >= 0
    if bad.any():  # a direction that no longer descends: steepest descent
        direction[bad] = -g[bad]
        gtd = np.einsum("kd,kd->k", g, direction)
        restarts[bad & (state.n_iter > 0), 0] += 1
    lr = _column(hp.lr, k)
    first = state.n_iter == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        guess = state.prev_alpha * state.prev_slope / gtd
        opening = np.minimum(1.0, 1.0 / np.abs(g).sum(axis=1)) * lr
        trial = np.where(first | ~np.isfinite(guess) | (guess <= 0), opening, guess)
    moving = gtd < 0
    # stuck: a search that found no lower point, no progress left
    alpha, g_new, stuck, (func_evals, grad_evals, failures) = search_moving(
        ctx, moving, params, trial, opening, direction, g, grads, gtd, free,
        c1=_column(hp.c1, k), c2=_column(hp.c2, k), max_ls=MAX_LS,
        counters=(state.func_evals, state.grad_evals, state.line_search_failures))
    next_params = np.where(moving[:, None], params + alpha[:, None] * direction, params)
    if free is not None:
        g_new = np.where(_free(next_params, g_new, ctx.bounds), g_new, 0.0)
    kind = np.broadcast_to(np.asarray(hp.beta).reshape(-1), (k,))
    beta = _beta(kind, g, g_new, direction)
    since = state.since_restart + 1
    periodic = since >= n
    beta = np.where(periodic, 0.0, beta)
    restarts[moving & periodic, 0] += 1
    since = np.where(periodic, 0, since)
    upcoming = -g_new + beta[:, None] * direction
    done = np.where(moving & ~stuck, 0, Reason.NO_DESCENT).astype(np.int8)
    return next_params - params, CgState(
        upcoming, alpha, gtd, since, state.n_iter + moving, done, next_params,
        alpha[:, None], func_evals, grad_evals, state.hess_evals, restarts, failures)


def finished(state: CgState) -> tuple[Array, Array]:
    return state.done > 0, state.done


HYPERPARAMS = (
    HyperParam("lr", 1.0, gt=0, schedulable=True, doc="scale of the first trial step"),
    HyperParam("beta", "polak_ribiere_plus", kind="choice", choices=BETAS,
               doc="the conjugacy formula (polak_ribiere_plus: scipy's)"),
    HyperParam("c1", 1e-4, gt=0, lt=1, doc="sufficient decrease of the strong-Wolfe search"),
    HyperParam("c2", 0.1, gt=0, lt=1, doc="curvature condition (small: a near-exact search)"),
)

CG = StepRule(
    "cg", init, update, HYPERPARAMS,
    "Nonlinear conjugate gradient (Polak–Ribière+ by default), strong-Wolfe line search, "
    "restarted every n steps or on a non-descent direction.",
    uses_loss=True, finished=finished, counts_evals=True,
    counters=("func_evals", "grad_evals", "hess_evals", "restarts", "line_search_failures"),
)
