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


def kind(lam: Array) -> list[str | None]:
    """Classify each row; None where the eigenvalues are not finite."""
    magnitude = np.abs(lam)
    tol = KIND_RTOL * np.maximum(magnitude.max(axis=1, initial=0.0), 1e-300)[:, None]
    d = lam.shape[1]
    positive = (lam > tol).sum(axis=1)
    negative = (lam < -tol).sum(axis=1)
    finite = np.isfinite(magnitude).all(axis=1)
    minimum, maximum, saddle, degenerate = KINDS
    return [None if not ok else minimum if pos == d else maximum if neg == d
            else saddle if pos and neg else degenerate
            for pos, neg, ok in zip(positive.tolist(), negative.tolist(), finite.tolist(),
                                    strict=True)]
