"""BFGS: a dense inverse-Hessian approximation H, updated with each step's curvature pair.

    d = −H·g;  α by a strong-Wolfe search (c1, c2) from lr (min(1, 1/‖g‖₁)·lr at the start)
    s = α·d, y = g(x + s) − g(x)
    first update only: H ← (yᵀs/yᵀy)·I                    (Nocedal and Wright, eq. 6.20)
    H ← (I − ρ·s·yᵀ)·H·(I − ρ·y·sᵀ) + ρ·s·sᵀ,  ρ = 1/yᵀs  where yᵀs > 0
    where yᵀs ≤ 0 (curvature the model cannot take) the update is skipped and counted.

A direction that is not a descent direction (gᵀd ≥ 0: H lost its positive definiteness to
rounding) is replaced by −g and H reset to I. Within a box the coordinates held at a bound by
the gradient are frozen; a row with none held searches as without a box and keeps a
strong-Wolfe point inside it, the others search along the projected path (Armijo;
linesearch.search_moving).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optim_core.engine.status import Reason
from optim_core.optimizers.base import HyperParam, StepContext, StepRule
from optim_core.optimizers.lbfgs import _column, _free
from optim_core.optimizers.linesearch import search_moving
from optim_core.optimizers.rowwise import take_rows
from optim_core.types import Array

MAX_LS = 25


class BfgsState(NamedTuple):
    h: Array  # (K, d, d) inverse-Hessian approximation
    n_iter: Array  # (K,) steps taken
    done: Array  # (K,) Reason code
    next_params: Array  # (K, d)
    step_size: Array  # (K, 1) the accepted α
    func_evals: Array  # (K, 1)
    grad_evals: Array  # (K, 1)
    hess_evals: Array  # (K, 1)
    skipped_updates: Array  # (K, 1) pairs with yᵀs ≤ 0
    line_search_failures: Array  # (K, 1)


def init(params: Array) -> BfgsState:
    k, d = params.shape
    zeros = np.zeros((k, 1))
    return BfgsState(np.broadcast_to(np.eye(d), (k, d, d)).copy(), np.zeros(k, dtype=np.int64),
                     np.zeros(k, dtype=np.int8), params.copy(), zeros + np.nan, zeros + 1.0,
                     zeros + 1.0, zeros.copy(), zeros.copy(), zeros.copy())


def update(grads, state: BfgsState, params, hp, t, ctx: StepContext):  # noqa: ANN001, ANN201
    k, d = params.shape
    free = _free(params, grads, ctx.bounds)
    g = grads if free is None else np.where(free, grads, 0.0)
    h = state.h  # updated in place (base.py)
    direction = -np.einsum("kij,kj->ki", h, g)
    if free is not None:
        direction = np.where(free, direction, 0.0)
    gtd = np.einsum("kd,kd->k", g, direction)
    reset = gtd >= 0  # not a descent direction: steepest descent, H from scratch
    if reset.any():
        direction[reset] = -g[reset]
        h[reset] = np.eye(d)
        gtd = np.einsum("kd,kd->k", g, direction)
    lr = _column(hp.lr, k)
    first = state.n_iter == 0
    with np.errstate(divide="ignore"):
        opening = np.minimum(1.0, 1.0 / np.abs(g).sum(axis=1)) * lr
    trial = np.where(first, opening, lr)
    moving = gtd < 0
    # stuck: a search that found no lower point, no progress left
    alpha, new_g, stuck, (func_evals, grad_evals, failures) = search_moving(
        ctx, moving, params, trial, opening, direction, g, grads, gtd, free,
        c1=_column(hp.c1, k), c2=_column(hp.c2, k), max_ls=MAX_LS,
        counters=(state.func_evals, state.grad_evals, state.line_search_failures))
    next_params = np.where(moving[:, None], params + alpha[:, None] * direction, params)
    s = next_params - params
    y = new_g - grads
    if free is not None:
        y = np.where(free, y, 0.0)
    ys = np.einsum("kd,kd->k", y, s)
    skipped = state.skipped_updates.copy()
    good = moving & (ys > 0)
    skipped[moving & ~good, 0] += 1
    if good.any():
        h = _updated(h, s, y, ys, good, first, d)
    done = np.where(moving & ~stuck, 0, Reason.NO_DESCENT).astype(np.int8)
    return s, BfgsState(h, state.n_iter + moving, done, next_params, alpha[:, None],
                        func_evals, grad_evals, state.hess_evals, skipped, failures)


def _updated(h: Array, s: Array, y: Array, ys: Array, good: Array, first: Array,
             d: int) -> Array:
    """H ← (I − ρsyᵀ)H(I − ρysᵀ) + ρssᵀ on the rows with a good pair, in its rank-two form
    H − ρ(Hy·sᵀ + s·(Hy)ᵀ) + (ρ²·yᵀHy + ρ)·ssᵀ (H symmetric): O(d²) a row, not O(d³)."""
    everyone = bool(good.all())
    r = slice(None) if everyone else np.flatnonzero(good)
    hr, sr, yr = (h, s, y) if everyone else (take_rows(a, r) for a in (h, s, y))
    rho = 1.0 / ys[r]
    scale = first[r]
    if scale.any():  # Nocedal and Wright's scaling of H₀ before the first update
        yy = np.einsum("kd,kd->k", yr[scale], yr[scale])
        hr[scale] = (ys[r][scale] / yy)[:, None, None] * np.eye(d)
    hy = np.einsum("kij,kj->ki", hr, yr)
    yhy = np.einsum("kd,kd->k", yr, hy)
    # the three outer products as one batched (d × 3)·(3 × d) product, added in one pass
    left = np.stack([hy, sr, sr], axis=2)
    right = np.stack([-rho[:, None] * sr, -rho[:, None] * hy,
                      (rho * rho * yhy + rho)[:, None] * sr], axis=1)
    hr += left @ right
    if not everyone:
        h[r] = hr
    return h


def finished(state: BfgsState) -> tuple[Array, Array]:
    return state.done > 0, state.done


HYPERPARAMS = (
    HyperParam("lr", 1.0, gt=0, schedulable=True,
               doc="first trial step of each search (min(1, 1/‖g‖₁)·lr at the start)"),
    HyperParam("c1", 1e-4, gt=0, lt=1, doc="sufficient decrease of the strong-Wolfe search"),
    HyperParam("c2", 0.9, gt=0, lt=1, doc="curvature condition of the strong-Wolfe search"),
)

BFGS = StepRule(
    "bfgs", init, update, HYPERPARAMS,
    "BFGS: a dense inverse-Hessian approximation, strong-Wolfe line search; an update with "
    "sᵀy ≤ 0 is skipped and counted.",
    uses_loss=True, finished=finished, counts_evals=True,
    counters=("func_evals", "grad_evals", "hess_evals", "skipped_updates",
              "line_search_failures"),
)
