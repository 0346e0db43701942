"""The local curvature: Hessian eigenvalues, condition number and the kind of point.

kind, with tol = 1e-8·max|λ|: minimum (all λ > tol), maximum (all λ < −tol), saddle (both
signs beyond tol), degenerate (otherwise: some curvature within tol of zero).
condition_number = max|λ|/min|λ| (infinite when some λ is zero).
"""

from __future__ import annotations

import numpy as np

from optim_core.types import Array

KIND_RTOL = 1e-8
KINDS = ("minimum", "maximum", "saddle", "degenerate")


def eigenvalues(hess: Array) -> Array:
    """(K, d) ascending eigenvalues; NaN rows where the Hessian is not finite."""
    finite = np.all(np.isfinite(hess), axis=(1, 2))
    lam = np.linalg.eigvalsh(np.where(finite[:, None, None], hess, 0.0))
    lam[~finite] = np.nan
    return lam


def condition_number(lam: Array) -> Array:
    magnitude = np.abs(lam)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.max(magnitude, axis=1) / np.min(magnitude, axis=1)


def kind(lam: Array) -> list[str | None]:
    """Classify each row; None where the eigenvalues are not finite."""
    scale = np.max(np.abs(lam), axis=1, keepdims=True)
    tol = KIND_RTOL * np.maximum(scale, 1e-300)
    positive = lam > tol
    negative = lam < -tol
    codes = np.select(
        [positive.all(axis=1), negative.all(axis=1), positive.any(axis=1) & negative.any(axis=1)],
        [0, 1, 2], default=3)
    finite = np.all(np.isfinite(lam), axis=1)
    return [KINDS[c] if ok else None for c, ok in zip(codes, finite, strict=True)]
