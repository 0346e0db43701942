"""f(x) = ½xᵀAx − bᵀx + c in closed form: the textbook ravine when A is ill-conditioned.

Gradient Ax − b, Hessian A everywhere; the minimiser A⁻¹b is known when A is positive definite.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optim_core.errors import LossError
from optim_core.losses.base import LossBase, default_names
from optim_core.types import Array, Grads, Hess, Params, Values

_SYMMETRY_TOLERANCE = 1e-10  # relative to the largest entry of A


class QuadraticLoss(LossBase):
    kind = "quadratic"
    quadratic = True

    def __init__(self, A: Array, b: Array | None = None, c: float = 0.0) -> None:
        A = np.asarray(A, dtype=float)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise LossError(f"A must be a square d×d matrix, got shape {A.shape}", loc=["A"])
        dim = A.shape[0]
        b = np.zeros(dim) if b is None else np.asarray(b, dtype=float)
        if b.shape != (dim,):
            raise LossError(f"b must have {dim} entries to match A, got shape {b.shape}",
                            loc=["b"])
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b)) and np.isfinite(c)):
            raise LossError("A, b and c must be finite numbers")
        scale = max(float(np.max(np.abs(A))), 1e-300)
        asymmetry = float(np.max(np.abs(A - A.T)))
        if asymmetry > _SYMMETRY_TOLERANCE * scale:
            raise LossError(
                f"A must be symmetric: max |A - Aᵀ| is {asymmetry:.3g}; use (A + Aᵀ)/2",
                loc=["A"],
            )
        self.A = 0.5 * (A + A.T)
        self.b = b
        self.c = float(c)
        self.dim = dim
        self.names = default_names(dim)
        self._rows, self._b = self.A.tolist(), self.b.tolist()
        self.eigenvalues = np.linalg.eigvalsh(self.A)
        if self.eigenvalues[0] > 1e-12 * max(abs(self.eigenvalues[-1]), 1e-300):
            minimiser = np.linalg.solve(self.A, self.b)
            self.minima = minimiser[None, :]
            self.f_min = float(self.c - 0.5 * self.b @ minimiser)
        self.default_start = np.zeros(dim)

    def value(self, params: Params) -> Values:
        return 0.5 * np.einsum("ki,ij,kj->k", params, self.A, params) - params @ self.b + self.c

    def value_grad(self, params: Params) -> tuple[Values, Grads]:
        grads = params @ self.A - self.b
        values = 0.5 * np.einsum("ki,ki->k", params, grads - self.b) + self.c
        return values, grads

    def point_value_grad(self, point: list[float]) -> tuple[float, list[float]]:
        """The batch formula on floats: g = xA − b, f = ½·x·(g − b) + c."""
        rows, b = self._rows, self._b
        grads = [sum([xi * row[j] for xi, row in zip(point, rows, strict=True)]) - b[j]
                 for j in range(self.dim)]
        value = 0.5 * sum([xi * (gi - bi) for xi, gi, bi in zip(point, grads, b, strict=True)])
        return value + self.c, grads

    def hess(self, params: Params) -> Hess:
        return np.broadcast_to(self.A, (params.shape[0], self.dim, self.dim)).copy()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dim": self.dim,
            "variables": list(self.names),
            "eigenvalues": self.eigenvalues.tolist(),
            "minima": None if self.minima is None else self.minima.tolist(),
            "f_min": self.f_min,
        }
