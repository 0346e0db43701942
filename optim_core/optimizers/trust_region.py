"""Newton in a trust region, as scipy's trust-ncg and trust-exact (`_minimize_trust_region`).

    model m(p) = f + gᵀp + ½pᵀHp, minimised over ‖p‖ ≤ Δ by `subproblem`:
        cg     Steihaug–Toint: CG on the model from p = 0, stopping at the boundary along a
               direction of non-positive curvature or when the iterate leaves the region,
               or when ‖r‖ < min(½, √‖g‖)·‖g‖ (scipy's CGSteihaugSubproblem)
        exact  the model's exact minimiser in the region (Moré and Sorensen's problem), from
               the eigendecomposition of H: p(λ) = −(H + λI)⁻¹g with ‖p(λ)‖ = Δ by Newton's
               method on 1/‖p(λ)‖, the hard case (g ⟂ the lowest eigenvector) included
    ρ = (f(x) − f(x + p)) / (m(0) − m(p))
    ρ < ¼: Δ ← Δ/4;  ρ > ¾ with ‖p‖ = Δ: Δ ← min(2Δ, max_radius);  ρ > η: x ← x + p

Safe on indefinite Hessians without a fallback (the model is minimised in a bounded region).
At a critical point of negative curvature (a saddle, g = 0) the cg subproblem, which starts
from g, would stay: there the step goes to the boundary along the lowest eigenvector. A run
whose model predicts no decrease, or whose radius falls below 1e-12 of its start, ends
(`trust_region`). `work` counts a function evaluation per step (the trial point) and a
gradient and Hessian per accepted step, as scipy does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optim_core.engine.status import Reason
from optim_core.optimizers.base import Curvature, HyperParam, StepContext, StepRule
from optim_core.optimizers.lbfgs import _column
from optim_core.optimizers.newton import clearly_negative
from optim_core.optimizers.rowwise import dot, take_rows
from optim_core.types import Array

SUBPROBLEMS = ("cg", "exact")
RADIUS_FLOOR = 1e-12  # a radius this small (relative to its start) has collapsed
SECULAR_ITERATIONS = 60


class TrustRegionState(NamedTuple):
    radius: Array  # (K,)
    done: Array  # (K,)
    step_size: Array  # (K, 1) the accepted step's length
    func_evals: Array  # (K, 1)
    grad_evals: Array  # (K, 1)
    hess_evals: Array  # (K, 1)
    rejected_steps: Array  # (K, 1)
    radius_shrinks: Array  # (K, 1)


def init(params: Array) -> TrustRegionState:
    k = params.shape[0]
    zeros = np.zeros((k, 1))
    return TrustRegionState(np.full(k, np.nan), np.zeros(k, dtype=np.int8), zeros + np.nan,
                            zeros + 1.0, zeros + 1.0, zeros + 1.0, zeros.copy(), zeros.copy())


def boundary_crossings(z: Array, d: Array, radius: Array) -> tuple[Array, Array]:
    """The two t with ‖z + t·d‖ = radius, smaller first (scipy's, in its stable form)."""
    a = dot(d, d)
    b = 2 * dot(z, d)
    c = dot(z, z) - radius**2
    with np.errstate(all="ignore"):
        root = np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))
        aux = b + np.copysign(root, b)
        ta, tb = -aux / (2 * a), -2 * c / aux
    return np.minimum(ta, tb), np.maximum(ta, tb)


def _model(g: Array, h: Array, p: Array) -> Array:
    """m(p) − f = gᵀp + ½pᵀHp."""
    return dot(g, p) + 0.5 * dot(p, np.einsum("kij,kj->ki", h, p))


def steihaug(g: Array, h: Array, radius: Array) -> tuple[Array, Array]:
    """scipy's CGSteihaugSubproblem for every row: the step and whether it is on the
    boundary. The rows still iterating are kept compact (gathered again only when some row
    finishes), so an iteration is a dozen operations on them."""
    k, n = g.shape
    g_norm = np.sqrt(dot(g, g))
    tolerance = np.minimum(0.5, np.sqrt(g_norm)) * g_norm
    p = np.zeros_like(g)
    on_boundary = np.zeros(k, dtype=bool)
    rows = np.flatnonzero((g_norm >= tolerance) & (g_norm > 0))  # scipy: no step below it
    gc, hc, radc, tolc = take_rows(g, rows), take_rows(h, rows), radius[rows], tolerance[rows]
    zc, rc = np.zeros_like(gc), gc.copy()
    dc = -rc
    r_squared = dot(rc, rc)
    with np.errstate(all="ignore"):
        for _ in range(max(2 * n, 10)):
            if rows.size == 0:
                break
            hd = np.einsum("kij,kj->ki", hc, dc)
            dhd = dot(dc, hd)
            curved = dhd <= 0
            alpha = r_squared / dhd
            z_next = zc + alpha[:, None] * dc
            outside = ~curved & (np.sqrt(dot(z_next, z_next)) >= radc)
            r_next = rc + alpha[:, None] * hd
            r_next_squared = dot(r_next, r_next)
            small = ~curved & ~outside & (np.sqrt(r_next_squared) < tolc)
            if curved.any():  # non-positive curvature: the better of the two boundary points
                c = np.flatnonzero(curved)
                z_c, d_c, g_c, h_c = (take_rows(a, c) for a in (zc, dc, gc, hc))
                ta, tb = boundary_crossings(z_c, d_c, radc[c])
                pa, pb = z_c + ta[:, None] * d_c, z_c + tb[:, None] * d_c
                better_a = _model(g_c, h_c, pa) < _model(g_c, h_c, pb)
                p[rows[c]] = np.where(better_a[:, None], pa, pb)
                on_boundary[rows[c]] = True
            if outside.any():  # the iterate leaves the region: to its boundary along d
                o = np.flatnonzero(outside)
                z_o, d_o = take_rows(zc, o), take_rows(dc, o)
                _, tb = boundary_crossings(z_o, d_o, radc[o])
                p[rows[o]] = z_o + tb[:, None] * d_o
                on_boundary[rows[o]] = True
            if small.any():
                q = np.flatnonzero(small)
                p[rows[q]] = take_rows(z_next, q)
            beta = r_next_squared / r_squared
            dc = -r_next + beta[:, None] * dc
            zc, rc, r_squared = z_next, r_next, r_next_squared
            finished = curved | outside | small
            if finished.any():
                keep = np.flatnonzero(~finished)
                rows, radc, tolc, r_squared = rows[keep], radc[keep], tolc[keep], r_squared[keep]
                gc, hc, zc, rc, dc = (take_rows(a, keep) for a in (gc, hc, zc, rc, dc))
    p[rows] = zc  # out of iterations: the last iterate
    return p, on_boundary


def exact(g: Array, lam: Array, vec: Array, radius: Array) -> tuple[Array, Array]:
    """The model's minimiser in the region from H = V·diag(λ)·Vᵀ: (step, on the boundary)."""
    k, n = g.shape
    coords = np.einsum("kji,kj->ki", vec, g)  # Vᵀg
    lowest = lam[:, 0]
    with np.errstate(all="ignore"):
        newton = -coords / lam
        newton_norm = np.sqrt(np.sum(newton**2, axis=1))
    interior = (lowest > 0) & (newton_norm <= radius)
    shift = np.maximum(0.0, -lowest)
    # hard case: no shift past −λmin reaches the boundary (g has no weight on that direction)
    with np.errstate(all="ignore"):
        at_shift = -coords / (lam + shift[:, None])
        rest = np.where(np.abs(lam + shift[:, None]) > 1e-14 * np.maximum(1, np.abs(lam)),
                        at_shift, 0.0)
        rest_norm = np.sqrt(np.sum(rest**2, axis=1))
    hard = ~interior & (rest_norm < radius) & (np.abs(coords[:, 0]) <= 1e-12 * np.maximum(
        1.0, np.sqrt(np.sum(coords**2, axis=1))))
    # the secular equation 1/‖p(λ)‖ = 1/Δ by Newton from λ just above −λmin (or 0)
    mu = shift + 1e-12 * np.maximum(1.0, np.abs(lam).max(axis=1))
    for _ in range(SECULAR_ITERATIONS):
        with np.errstate(all="ignore"):
            denom = lam + mu[:, None]
            q = coords / denom
            norm = np.sqrt(np.sum(q**2, axis=1))
            derivative = np.sum(q**2 / denom, axis=1) / norm  # −d‖p‖/dμ
            phi = 1 / norm - 1 / radius
            step = phi * norm**2 / derivative  # Newton on 1/‖p(μ)‖
            mu_next = np.where(np.isfinite(step), mu - step, mu)
        mu_next = np.maximum(mu_next, shift + 1e-15 * np.maximum(1.0, np.abs(lam).max(axis=1)))
        if np.allclose(mu_next, mu, rtol=1e-14, atol=0):
            mu = mu_next
            break
        mu = mu_next
    with np.errstate(all="ignore"):
        on_edge = -coords / (lam + mu[:, None])
    # the hard case: the shifted step plus a move along the lowest eigenvector to the edge
    tau = np.sqrt(np.maximum(radius**2 - rest_norm**2, 0.0))
    hard_coords = rest.copy()
    hard_coords[:, 0] += tau
    chosen = np.where(interior[:, None], newton, np.where(hard[:, None], hard_coords, on_edge))
    chosen = np.where(np.isfinite(chosen), chosen, 0.0)
    return np.einsum("kij,kj->ki", vec, chosen), ~interior


def _eigen(ctx: StepContext, rows: Array) -> tuple[Array, Array]:
    """The eigendecomposition of the chosen rows (K,) mask, made only where read: the exact
    subproblem's rows, and the cg rows resting at a critical point; a non-finite row gets
    nan eigenvalues."""
    h = take_rows(ctx.hess, np.flatnonzero(rows))  # type: ignore[union-attr]
    finite = np.isfinite(h).all(axis=(1, 2))
    lam, vec = np.linalg.eigh(np.where(finite[:, None, None], h, 0.0))
    lam[~finite] = np.nan
    return lam, vec


def undecomposed(hess: Array) -> tuple[None, None, None]:
    """No decomposition up front: the cg subproblem reads H by products only (see _eigen)."""
    return None, None, None


def may_converge(ctx: StepContext, candidates: Array) -> Array:
    """A vanishing gradient on clearly negative curvature is a saddle, not a minimum: the
    eigenvalues of the candidate rows only."""
    allowed = np.ones(candidates.shape[0], dtype=bool)
    if candidates.any():
        h = take_rows(ctx.hess, np.flatnonzero(candidates))  # type: ignore[union-attr]
        finite = np.isfinite(h).all(axis=(1, 2))
        lam = np.full(h.shape[:2], np.nan)
        lam[finite] = np.linalg.eigvalsh(h[finite])
        allowed[candidates] = ~clearly_negative(lam)
    return allowed


def update(grads, state: TrustRegionState, params, hp, t, ctx: StepContext):  # noqa: ANN001, ANN201
    k, n = params.shape
    initial, largest = _column(hp.initial_radius, k), _column(hp.max_radius, k)
    eta = _column(hp.eta, k)
    radius = np.where(np.isnan(state.radius), initial, state.radius)
    use_exact = np.broadcast_to(np.asarray(hp.subproblem).reshape(-1), (k,)) == 1
    h = ctx.hess
    if not use_exact.any():  # one subproblem for every row (the common case): no gathers
        p, boundary = steihaug(grads, h, radius)
    elif use_exact.all():
        p, boundary = exact(grads, *_eigen(ctx, use_exact), radius)
    else:
        c, e = np.flatnonzero(~use_exact), np.flatnonzero(use_exact)
        p, boundary = np.empty_like(grads), np.empty(k, dtype=bool)
        p[c], boundary[c] = steihaug(take_rows(grads, c), take_rows(h, c), radius[c])
        p[e], boundary[e] = exact(take_rows(grads, e), *_eigen(ctx, use_exact), radius[e])
    # a saddle the cg subproblem would not leave (g = 0, negative curvature): the edge along
    # the lowest eigenvector (rows certified positive definite are no saddle)
    g_norm = np.sqrt(dot(grads, grads))
    scale = np.sqrt(np.einsum("kij,kij->k", h, h))
    still = ~use_exact & (dot(p, p) == 0) & (g_norm <= 1e-12 * np.maximum(1.0, scale))
    if still.any():
        lam, vec = _eigen(ctx, still)
        stuck = np.zeros(k, dtype=bool)
        stuck[still] = clearly_negative(lam)
        if stuck.any():
            p[stuck] = radius[stuck, None] * vec[clearly_negative(lam), :, 0]
            boundary[stuck] = True
    predicted = -_model(grads, h, p)
    with np.errstate(all="ignore"):
        trial = ctx.value_fn(params + p)
        actual = ctx.values - trial
        rho = actual / predicted
    func_evals = state.func_evals + 1
    rho = np.where(np.isfinite(rho), rho, -np.inf)
    shrink = rho < 0.25
    grow = (rho > 0.75) & boundary
    new_radius = np.where(shrink, radius * 0.25,
                          np.where(grow, np.minimum(2 * radius, largest), radius))
    accept = (rho > eta) & (predicted > 0)
    ended = (predicted <= 0) & (g_norm > 0) | (new_radius < RADIUS_FLOOR * initial)
    step = np.where(accept[:, None], p, 0.0)
    return step, TrustRegionState(
        new_radius, np.where(ended & ~accept, Reason.TRUST_REGION, 0).astype(np.int8),
        np.sqrt(dot(step, step))[:, None], func_evals, state.grad_evals + accept[:, None],
        state.hess_evals + accept[:, None], state.rejected_steps + ~accept[:, None],
        state.radius_shrinks + shrink[:, None])


def finished(state: TrustRegionState) -> tuple[Array, Array]:
    return state.done > 0, state.done


HYPERPARAMS = (
    HyperParam("subproblem", "cg", kind="choice", choices=SUBPROBLEMS,
               doc="cg: Steihaug–Toint (scipy's trust-ncg); exact: Moré–Sorensen's exact "
                   "minimiser (scipy's trust-exact)"),
    HyperParam("initial_radius", 1.0, gt=0, doc="Δ at the start"),
    HyperParam("max_radius", 1000.0, gt=0, doc="Δ never grows past it"),
    HyperParam("eta", 0.15, ge=0, lt=0.25, doc="a step is taken where ρ exceeds it"),
)

TRUST_REGION = StepRule(
    "trust_region", init, update, HYPERPARAMS,
    "Newton in a trust region: Steihaug–Toint CG or the exact subproblem, scipy's radius "
    "update; safe on indefinite Hessians.",
    curvature=Curvature(undecomposed, may_converge), uses_loss=True, finished=finished,
    counts_evals=True,
    counters=("func_evals", "grad_evals", "hess_evals", "rejected_steps", "radius_shrinks"),
)
