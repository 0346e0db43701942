"""Newton's method with curvature guards, one batched eigendecomposition per step.

    H = V·diag(λ)·Vᵀ (eigh on (K, d, d))
    λmin > tol·max|λ|:  p ← p − lr·H⁻¹g                                    (newton)
    otherwise, by `fallback`:
        gradient     p ← p − fallback_lr·g                                  (the seed's rule)
        damped       p ← p − lr·(H + δI)⁻¹g, δ lifting λmin to `damping`
        saddle_free  p ← p − lr·|H|⁻¹g, |λ| floored at `damping`
    escape: where λmin is clearly negative and g has (almost) no component along its
    eigenvector v, add a step of length fallback_lr·|λmin| along ±v, so a run placed exactly
    on a saddle or a ridge still leaves it.
    line_search: Armijo backtracking f(p + αΔ) ≤ f(p) + 1e-4·α·gᵀΔ, α = 1, ½, ¼, …

Every step's mode (newton, fallback, escape) is counted per run.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optim_core.optimizers.base import HyperParam, StepRule
from optim_core.types import Array

FALLBACKS = ("gradient", "damped", "saddle_free")
# Curvature below this fraction of the largest |λ| counts as flat: scale-free, and well above
# the ~1e-16 relative error of eigh, so round-off never passes for positive curvature.
CURVATURE_RTOL = 1e-8
# g·v below this fraction of |g| (or an absolute floor) means the gradient cannot push the run
# off the negative-curvature direction by itself.
ESCAPE_RTOL = 1e-6
ESCAPE_ATOL = 1e-12
ARMIJO_C = 1e-4
ARMIJO_HALVINGS = 30


class NewtonState(NamedTuple):
    newton_steps: Array  # (K, 1)
    fallback_steps: Array  # (K, 1)
    escape_steps: Array  # (K, 1)
    line_search_halvings: Array  # (K, 1)


def init(params: Array) -> NewtonState:
    zeros = np.zeros((params.shape[0], 1))
    return NewtonState(zeros, zeros.copy(), zeros.copy(), zeros.copy())


def positive_definite(eigenvalues: Array) -> Array:
    """(K,) True where every eigenvalue is clearly positive (relative tolerance)."""
    scale = np.max(np.abs(eigenvalues), axis=1)
    return eigenvalues[:, 0] > CURVATURE_RTOL * np.maximum(scale, 1e-300)


def clearly_negative(eigenvalues: Array) -> Array:
    """(K,) True where the smallest eigenvalue is clearly negative."""
    scale = np.max(np.abs(eigenvalues), axis=1)
    return eigenvalues[:, 0] < -CURVATURE_RTOL * np.maximum(scale, 1e-300)


def _solve(vectors: Array, eigenvalues: Array, grads: Array) -> Array:
    """V·diag(1/λ)·Vᵀ·g for each run."""
    coords = np.einsum("kji,kj->ki", vectors, grads) / eigenvalues
    return np.einsum("kij,kj->ki", vectors, coords)


def update(grads, state, params, hp, t, ctx):  # noqa: ANN001, ANN201
    lam, vec = ctx.eigenvalues, ctx.eigenvectors
    pd = positive_definite(lam)[:, None]
    fallback = hp.fallback  # (K, 1) index into FALLBACKS
    with np.errstate(divide="ignore", invalid="ignore"):
        newton = _solve(vec, np.where(pd, lam, 1.0), grads)
        lifted = lam + np.maximum(hp.damping - lam[:, :1], 0.0)
        damped = _solve(vec, lifted, grads)
        saddle_free = _solve(vec, np.maximum(np.abs(lam), hp.damping), grads)
    curved = np.where(fallback == 1, damped, saddle_free)
    step = np.where(pd, -hp.lr * newton,
                    np.where(fallback == 0, -hp.fallback_lr * grads, -hp.lr * curved))

    v_min = vec[:, :, 0]  # (K, d) eigenvector of the smallest eigenvalue
    along = np.einsum("kd,kd->k", grads, v_min)[:, None]
    g_norm = np.linalg.norm(grads, axis=1, keepdims=True)
    stuck = (clearly_negative(lam)[:, None]
             & (np.abs(along) <= ESCAPE_RTOL * g_norm + ESCAPE_ATOL))
    if stuck.any():
        direction = np.where(along > 0, -1.0, 1.0) * v_min
        length = hp.fallback_lr * np.abs(lam[:, :1])
        step = step + np.where(stuck, length * direction, 0.0)

    halvings = np.zeros_like(state.line_search_halvings)
    if hp.line_search.any() and ctx.value_fn is not None:
        step, halvings = _armijo(step, grads, params, ctx, hp.line_search[:, 0])
    return step, NewtonState(
        state.newton_steps + pd,
        state.fallback_steps + ~pd,
        state.escape_steps + stuck,
        state.line_search_halvings + halvings,
    )


def _armijo(step: Array, grads: Array, params: Array, ctx, enabled: Array  # noqa: ANN001
            ) -> tuple[Array, Array]:
    """Halve the step of each enabled descent run until the Armijo condition holds."""
    slope = np.einsum("kd,kd->k", grads, step)
    pending = enabled & (slope < 0)
    scale = np.ones(step.shape[0])
    halvings = np.zeros((step.shape[0], 1))
    for _ in range(ARMIJO_HALVINGS):
        if not pending.any():
            break
        rows = np.flatnonzero(pending)
        trial = params[rows] + scale[rows, None] * step[rows]
        with np.errstate(all="ignore"):
            values = ctx.value_fn(trial)
        accepted = values <= ctx.values[rows] + ARMIJO_C * scale[rows] * slope[rows]
        rejected = rows[~accepted]
        scale[rejected] *= 0.5
        halvings[rejected] += 1
        pending[rows[accepted]] = False
    return step * scale[:, None], halvings


HYPERPARAMS = (
    HyperParam("lr", 1.0, gt=0, schedulable=True, doc="scale of the Newton step"),
    HyperParam("fallback", "gradient", kind="choice", choices=FALLBACKS,
               doc="what to do where H is not positive definite"),
    HyperParam("fallback_lr", 0.01, gt=0, doc="step size of the gradient fallback and escape"),
    HyperParam("damping", 1e-4, gt=0, doc="smallest curvature used by damped / saddle_free"),
    HyperParam("line_search", False, kind="bool",
               doc="Armijo backtracking on every step (robust far from a minimum)"),
)
NEWTON = StepRule(
    "newton", init, update, HYPERPARAMS,
    "Newton's method: reads the curvature; falls back where it is negative or flat.",
    needs_hessian=True,
    counters=("newton_steps", "fallback_steps", "escape_steps", "line_search_halvings"),
)
