"""The Loss protocol the engine consumes, and the helpers every loss shares.

A loss evaluates on a (K, d) batch: value -> (K,), grad -> (K, d), hess -> (K, d, d), and says
what it knows: its known minimisers, f_min, a suggested domain and a default start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from optim_core.errors import DimensionError
from optim_core.types import Array, Grads, Hess, Params, Values


@runtime_checkable
class Loss(Protocol):
    kind: str
    dim: int
    names: tuple[str, ...]
    minima: Array | None  # (m, d) every known minimiser, or None when unknown
    f_min: float | None
    domain: Array | None  # (d, 2) suggested [lo, hi] per coordinate
    default_start: Array | None  # (d,)
    stochastic: bool

    def value(self, params: Params) -> Values: ...

    def value_grad(self, params: Params) -> tuple[Values, Grads]: ...

    def point_value_grad(self, point: list[float]) -> tuple[float, Sequence[float]]: ...

    def grad(self, params: Params) -> Grads: ...

    def hess(self, params: Params) -> Hess: ...

    def describe(self) -> dict[str, Any]: ...


def as_batch(params: Array, dim: int) -> Params:
    """Accept (d,) or (K, d) and return a float (K, d) batch, checking d."""
    batch = np.asarray(params, dtype=float)
    if batch.ndim == 1:
        batch = batch[None, :]
    if batch.ndim != 2 or batch.shape[1] != dim:
        raise DimensionError(
            f"Points must have {dim} coordinates to match the loss, got shape {batch.shape}"
        )
    return batch


def default_names(dim: int) -> tuple[str, ...]:
    """x, y for 2-D losses; x1..xd otherwise."""
    return ("x", "y") if dim == 2 else tuple(f"x{i + 1}" for i in range(dim))


class LossBase:
    """Defaults shared by the concrete losses: value_grad and grad from each other."""

    kind = "loss"
    stochastic = False
    minima: Array | None = None
    f_min: float | None = None
    domain: Array | None = None
    default_start: Array | None = None
    quadratic = False  # a constant Hessian (conjugate gradient's finite termination holds)

    def value_grad(self, params: Params) -> tuple[Values, Grads]:
        return self.value(params), self.grad(params)  # type: ignore[attr-defined]

    def grad(self, params: Params) -> Grads:
        return self.value_grad(params)[1]

    def point_value_grad(self, point: list[float]) -> tuple[float, list[float]]:
        """Value and gradient at one point of floats (the engine's small-batch path).

        This default goes through the batch form; losses with a cheaper float form override it.
        """
        values, grads = self.value_grad(np.array([point], dtype=float))
        return float(values[0]), grads[0].tolist()
