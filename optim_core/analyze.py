"""Point analysis: value, gradient, curvature and what the local quadratic model predicts."""

from __future__ import annotations

import math

import numpy as np

from optim_core.answers import PointAnalysis
from optim_core.diagnostics import curvature
from optim_core.losses.base import Loss, as_batch
from optim_core.theory import quadratic_theory
from optim_core.types import Array


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def analyze(loss: Loss, points: Array) -> list[PointAnalysis]:
    """One entry per point: value, gradient, eigenvalues, condition number, kind, theory."""
    batch = as_batch(points, loss.dim)
    with np.errstate(all="ignore"):
        values, grads = loss.value_grad(batch)
        hess = loss.hess(batch)
        lam = curvature.eigenvalues(hess)
        grad_norms = np.linalg.norm(grads, axis=1)
        kinds = curvature.kind(lam, grad_norms)
        conditions = curvature.condition_number(lam)
    out = []
    for k in range(batch.shape[0]):
        finite = bool(np.all(np.isfinite(lam[k])))
        theory = quadratic_theory(lam[k]) if finite else None
        condition = _num(conditions[k]) if finite else None
        if theory is not None:
            theory["condition_number"] = condition  # one definition: max|λ|/min|λ|
        out.append({
            "point": batch[k].tolist(),
            "value": _num(values[k]),
            "gradient": [_num(g) for g in grads[k]],
            "grad_norm": _num(float(grad_norms[k])),
            "hessian": [[_num(h) for h in row] for row in hess[k]],
            "eigenvalues": [_num(v) for v in lam[k]] if finite else None,
            "condition_number": condition,
            "kind": kinds[k],
            "theory": theory,
        })
    return out
