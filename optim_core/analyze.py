"""Point analysis: value, gradient, curvature and what the local quadratic model predicts."""

from __future__ import annotations

import math
import time

import numpy as np

from optim_core.answers import PointAnalysis
from optim_core.diagnostics import curvature
from optim_core.errors import TimeBudgetError
from optim_core.losses.base import Loss, as_batch
from optim_core.theory import quadratic_theory
from optim_core.types import Array


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


CHUNK_VALUES = 1 << 22  # a chunk of points touches about this many numbers (Hessians)


def analyze(loss: Loss, points: Array, deadline: float | None = None) -> list[PointAnalysis]:
    """One entry per point: value, gradient, eigenvalues, condition number, kind, theory.
    Points are evaluated a chunk at a time; past `deadline` (time.monotonic()) it raises
    TimeBudgetError."""
    batch = as_batch(points, loss.dim)
    k, d = batch.shape
    per_point = d * d * max(1, getattr(loss, "n", 1))
    chunk = max(1, CHUNK_VALUES // per_point)
    parts = []
    for begin in range(0, k, chunk):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeBudgetError(f"The analysis took longer than its time budget ({begin} of "
                                  f"{k} points done); ask for fewer points")
        rows = batch[begin:begin + chunk]
        with np.errstate(all="ignore"):
            values, grads = loss.value_grad(rows)
            hess = loss.hess(rows)
        parts.append((values, grads, hess))
    values, grads, hess = (np.concatenate(p) for p in zip(*parts, strict=True))
    with np.errstate(all="ignore"):
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
