"""A loss given as expression text: parsed safely, differentiated exactly, cached.

The cache is keyed by the stripped text, the variable order and the limits, so a repeated
request neither parses nor differentiates again.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import sympy

from optim_core.errors import ExpressionLimitError, UnknownNameError
from optim_core.expressions.compile import Tape, compile_outputs
from optim_core.expressions.parse import ExpressionLimits, is_valid_variable_name, parse_expression
from optim_core.expressions.render import as_latex, as_text, render_matrix, render_vector
from optim_core.losses.base import LossBase
from optim_core.types import Array, Grads, Hess, Params, Values


def _node_count(exprs: list[sympy.Expr]) -> int:
    return sum(sympy.count_ops(e, visual=False) + 1 for e in exprs)


class ExpressionLoss(LossBase):
    """f(x) from text, with gradient and Hessian derived symbolically."""

    kind = "expression"

    def __init__(
        self, text: str, variables: list[str] | None = None, limits: ExpressionLimits | None = None
    ) -> None:
        limits = limits or ExpressionLimits()
        expr, found = parse_expression(text, limits)
        names = _resolve_variables(found, variables, limits)
        symbols = [found.get(n) or sympy.Symbol(n, real=True) for n in names]
        gradient = [sympy.diff(expr, s) for s in symbols]
        hessian = [[sympy.diff(g, s) for s in symbols] for g in gradient]
        size = _node_count(gradient) + _node_count([h for row in hessian for h in row])
        if size > limits.max_derivative_nodes:
            raise ExpressionLimitError(
                f"The derivatives of this expression have {size} operations; the limit is "
                f"{limits.max_derivative_nodes}. Simplify the expression"
            )
        self.text = text.strip()
        self.expr = expr
        self.names = tuple(names)
        self.dim = len(names)
        self.gradient_exprs = gradient
        self.hessian_exprs = hessian
        self._value_tape = compile_outputs([expr], symbols)
        self._value_grad_tape = compile_outputs([expr, *gradient], symbols)
        upper = [(i, j) for i in range(self.dim) for j in range(i, self.dim)]
        self._hess_index = upper
        self._hess_tape: Tape = compile_outputs([hessian[i][j] for i, j in upper], symbols)

    def value(self, params: Params) -> Values:
        return self._value_tape.evaluate(params)[:, 0]

    def value_grad(self, params: Params) -> tuple[Values, Grads]:
        out = self._value_grad_tape.evaluate(params)
        return out[:, 0], out[:, 1:]

    def hess(self, params: Params) -> Hess:
        flat = self._hess_tape.evaluate(params)
        hess = np.empty((params.shape[0], self.dim, self.dim))
        rows, cols = np.array(self._hess_index, dtype=int).reshape(-1, 2).T
        hess[:, rows, cols] = flat
        hess[:, cols, rows] = flat
        return hess

    def describe(self) -> dict[str, Any]:
        gradient_text, gradient_latex = render_vector(self.gradient_exprs)
        hessian_text, hessian_latex = render_matrix(self.hessian_exprs)
        return {
            "kind": self.kind,
            "dim": self.dim,
            "variables": list(self.names),
            "expression": self.text,
            "parsed": as_text(self.expr),
            "gradient": gradient_text,
            "hessian": hessian_text,
            "latex": {
                "expression": as_latex(self.expr),
                "gradient": gradient_latex,
                "hessian": hessian_latex,
            },
        }


def _resolve_variables(
    found: dict[str, sympy.Symbol], variables: list[str] | None, limits: ExpressionLimits
) -> list[str]:
    if variables is None:
        names = sorted(found)
        if not names:
            raise UnknownNameError(
                "The expression has no variables to optimise; use names such as x and y"
            )
        return names
    if len(set(variables)) != len(variables):
        raise UnknownNameError(f"Variables must be unique, got {variables}", loc=["variables"])
    if len(variables) > limits.max_variables:
        raise ExpressionLimitError(
            f"{len(variables)} variables given; the limit is {limits.max_variables}",
            loc=["variables"],
        )
    for name in variables:
        if not is_valid_variable_name(name, limits.max_name_length):
            raise UnknownNameError(
                f"'{name}' is not a valid variable name: use a plain ASCII identifier that is "
                "not a dunder, keyword, function or constant",
                loc=["variables"],
            )
    missing = sorted(set(found) - set(variables))
    if missing:
        raise UnknownNameError(
            f"The expression uses {', '.join(repr(m) for m in missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not in variables {variables}; add "
            f"{'it' if len(missing) == 1 else 'them'} or remove the variables list",
            loc=["variables"],
        )
    if not variables:
        raise UnknownNameError("variables must name at least one variable", loc=["variables"])
    return list(variables)


@functools.lru_cache(maxsize=256)
def _cached(text: str, variables: tuple[str, ...] | None, limits: ExpressionLimits
            ) -> ExpressionLoss:
    return ExpressionLoss(text, list(variables) if variables is not None else None, limits)


def expression_loss(
    text: str, variables: list[str] | None = None, limits: ExpressionLimits | None = None
) -> ExpressionLoss:
    """Build (or fetch from the cache) the loss for `text`; errors are not cached."""
    key = tuple(variables) if variables is not None else None
    return _cached(text.strip(), key, limits or ExpressionLimits())


def expression_cache_info() -> Any:
    return _cached.cache_info()


def domain_for(start: Array | None, dim: int) -> Array:
    """A symmetric box around the start, for plots of losses that suggest no domain."""
    centre = np.zeros(dim) if start is None else np.asarray(start, dtype=float)
    return np.stack([centre - 2.0, centre + 2.0], axis=1)
