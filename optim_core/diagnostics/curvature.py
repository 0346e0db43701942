"""The local curvature: Hessian eigenvalues, condition number and the kind of point.

kind, with tol = 1e-8·max|λ|: where the gradient vanishes (‖g‖ ≤ 1e-6·max(1, max|λ|): within
about 1e-6 of the stationary point the quadratic model puts there) a point is a minimum (all
λ > tol), maximum (all λ < −tol), saddle (both signs beyond tol) or degenerate (otherwise:
some curvature within tol of zero); elsewhere it is not a critical point and the same tests
name the local shape: convex, concave, indefinite or degenerate.
condition_number = max|λ|/min|λ| (infinite when some λ is zero): the one definition, used by
the theory block too.
"""

from __future__ import annotations

import numpy as np

from optim_core.types import Array

KIND_RTOL = 1e-8
STATIONARY_RTOL = 1e-6
KINDS = ("minimum", "maximum", "saddle", "degenerate")
SHAPES = ("convex", "concave", "indefinite", "degenerate")  # the same tests, gradient ≠ 0


def eigenvalues(hess: Array) -> Array:
    """(K, d) ascending eigenvalues; NaN rows where the Hessian is not finite."""
    finite = np.isfinite(hess).all(axis=(1, 2))
    if finite.all():
        return np.linalg.eigvalsh(hess)
    lam = np.linalg.eigvalsh(np.where(finite[:, None, None], hess, 0.0))
    lam[~finite] = np.nan
    return lam


def condition_number(lam: Array) -> Array:
    magnitude = np.abs(lam)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.max(magnitude, axis=1) / np.min(magnitude, axis=1)


def stationary(grad_norm: Array, lam: Array) -> Array:
    """(K,) whether the gradient vanishes at each point, on the scale of its curvature."""
    scale = np.maximum(np.abs(lam).max(axis=1, initial=0.0), 1.0)
    return np.asarray(grad_norm) <= STATIONARY_RTOL * scale


def kind(lam: Array, grad_norm: Array | None = None) -> list[str | None]:
    """Classify each row; None where the eigenvalues are not finite. With `grad_norm`, rows
    where the gradient does not vanish get the local shape (SHAPES) instead of a critical
    point's kind (KINDS)."""
    names = [KINDS] * lam.shape[0] if grad_norm is None else \
        [KINDS if s else SHAPES for s in stationary(grad_norm, lam).tolist()]
    magnitude = np.abs(lam)
    tol = KIND_RTOL * np.maximum(magnitude.max(axis=1, initial=0.0), 1e-300)[:, None]
    d = lam.shape[1]
    positive = (lam > tol).sum(axis=1)
    negative = (lam < -tol).sum(axis=1)
    finite = np.isfinite(magnitude).all(axis=1)
    return [None if not ok else kinds[0] if pos == d else kinds[1] if neg == d
            else kinds[2] if pos and neg else kinds[3]
            for pos, neg, ok, kinds in zip(positive.tolist(), negative.tolist(), finite.tolist(),
                                           names, strict=True)]
