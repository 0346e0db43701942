"""A loss given as expression text: parsed safely, differentiated exactly, cached.

The cache is keyed by the stripped text, the variable order and the limits, so a repeated
request neither parses, differentiates, prints nor compiles again: everything derived from the
text (the tapes and the description with its text and LaTeX) is kept with the loss, and a
request on a cached expression does no SymPy work at all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import sympy

from optim_core.errors import ExpressionLimitError, UnknownNameError
from optim_core.expressions.compile import Tape, compile_outputs
from optim_core.expressions.parse import ExpressionLimits, is_valid_variable_name, parse_expression
from optim_core.expressions.render import as_latex, as_text, render_matrix, render_vector
from optim_core.expressions.scalar import float_tape
from optim_core.losses.base import LossBase
from optim_core.types import Grads, Hess, Params, Values


def _node_count(exprs: list[sympy.Expr]) -> int:
    return sum(sympy.count_ops(e, visual=False) + 1 for e in exprs)


class SymbolicParts(NamedTuple):
    """What the symbolic stage produces; plain SymPy objects and strings, so it pickles across
    processes. `description` is the printed form (text and LaTeX): SymPy's printers cost
    milliseconds, so they run once here, inside the stage's time limit, never per request."""

    text: str
    expr: sympy.Expr
    names: tuple[str, ...]
    symbols: list[sympy.Symbol]
    gradient: list[sympy.Expr]
    hessian: list[list[sympy.Expr]]
    description: dict[str, Any]


def derive(text: str, variables: list[str] | None = None,
           limits: ExpressionLimits | None = None) -> SymbolicParts:
    """Parse and differentiate: the expensive, potentially explosive symbolic stage."""
    limits = limits or ExpressionLimits()
    expr, found = parse_expression(text, limits)
    names = _resolve_variables(found, variables, limits)
    symbols = [found.get(n) or sympy.Symbol(n, real=True) for n in names]
    gradient = [sympy.diff(expr, s) for s in symbols]
    # the upper triangle only, mirrored: ∂²f/∂xᵢ∂xⱼ = ∂²f/∂xⱼ∂xᵢ, and SymPy's diff (with the
    # assumptions of real symbols) is most of the cold cost
    upper = {(i, j): sympy.diff(gradient[i], symbols[j])
             for i in range(len(symbols)) for j in range(i, len(symbols))}
    hessian = [[upper[min(i, j), max(i, j)] for j in range(len(symbols))]
               for i in range(len(symbols))]
    size = _node_count(gradient) + _node_count([h for row in hessian for h in row])
    if size > limits.max_derivative_nodes:
        raise ExpressionLimitError(
            f"The derivatives of this expression have {size} operations; the limit is "
            f"{limits.max_derivative_nodes}. Simplify the expression"
        )
    return SymbolicParts(text.strip(), expr, tuple(names), symbols, gradient, hessian,
                         _describe(text.strip(), expr, names, gradient, hessian))


def _describe(text: str, expr: sympy.Expr, names: list[str], gradient: list[sympy.Expr],
              hessian: list[list[sympy.Expr]]) -> dict[str, Any]:
    """The loss echo of an expression: its derivatives printed as text and as LaTeX."""
    gradient_text, gradient_latex = render_vector(gradient)
    hessian_text, hessian_latex = render_matrix(hessian)
    return {
        "kind": ExpressionLoss.kind,
        "dim": len(names),
        "variables": list(names),
        "expression": text,
        "parsed": as_text(expr),
        "gradient": gradient_text,
        "hessian": hessian_text,
        "latex": {"expression": as_latex(expr), "gradient": gradient_latex,
                  "hessian": hessian_latex},
    }


class ExpressionLoss(LossBase):
    """f(x) from text, with gradient and Hessian derived symbolically."""

    kind = "expression"

    def __init__(self, parts: SymbolicParts) -> None:
        """Compile derived parts (see `derive`) into vectorised evaluators."""
        self.text = parts.text
        self.expr = parts.expr
        self.names = parts.names
        self.dim = len(parts.names)
        self.gradient_exprs = parts.gradient
        self.hessian_exprs = parts.hessian
        self.quadratic = all(not h.free_symbols for row in parts.hessian for h in row)
        symbols = parts.symbols
        self._value_tape = compile_outputs([parts.expr], symbols)
        self._value_grad_tape = compile_outputs([parts.expr, *parts.gradient], symbols)
        self._value_grad_floats = float_tape(self._value_grad_tape)
        if self._value_grad_floats is not None:  # the float form itself: no call in between
            self.point_value_grad = self._value_grad_floats.value_grad  # type: ignore[method-assign]
        upper = [(i, j) for i in range(self.dim) for j in range(i, self.dim)]
        self._hess_index = np.array(upper, dtype=int).reshape(-1, 2).T
        self._hess_tape: Tape = compile_outputs([parts.hessian[i][j] for i, j in upper], symbols)
        self._description = parts.description

    def value(self, params: Params) -> Values:
        return self._value_tape.evaluate(params)[:, 0]

    def value_grad(self, params: Params) -> tuple[Values, Grads]:
        out = self._value_grad_tape.evaluate(params)
        return out[:, 0], out[:, 1:]


    def hess(self, params: Params) -> Hess:
        flat = self._hess_tape.evaluate(params)
        hess = np.empty((params.shape[0], self.dim, self.dim))
        rows, cols = self._hess_index
        hess[:, rows, cols] = flat
        hess[:, cols, rows] = flat
        return hess

    def describe(self) -> dict[str, Any]:
        """The description printed when the expression was derived (a new top-level dict;
        the nested lists are shared by every request on this loss: read them, never change
        them)."""
        return dict(self._description)


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


Deriver = Callable[[str, "list[str] | None", ExpressionLimits], SymbolicParts]


class _LossCache:
    """LRU of compiled losses keyed by (text, variables, limits); failures are not cached."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[Any, ...], ExpressionLoss] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> ExpressionLoss | None:
        with self.lock:
            loss = self.entries.get(key)
            if loss is None:
                self.misses += 1
                return None
            self.entries.move_to_end(key)
            self.hits += 1
            return loss

    def put(self, key: tuple[Any, ...], loss: ExpressionLoss) -> None:
        with self.lock:
            self.entries[key] = loss
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


_CACHE = _LossCache()


def expression_loss(
    text: str, variables: list[str] | None = None, limits: ExpressionLimits | None = None,
    deriver: Deriver | None = None,
) -> ExpressionLoss:
    """Build (or fetch from the cache) the loss for `text`.

    `deriver` runs the symbolic stage (default: `derive`, in this process); a host can pass
    one that runs it in a worker process with a time limit. Compilation and the cache stay
    here, so a repeated expression neither parses nor differentiates again.
    """
    limits = limits or ExpressionLimits()
    key = (text.strip(), None if variables is None else tuple(variables), limits)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    parts = (deriver or derive)(text.strip(), variables, limits)
    loss = ExpressionLoss(parts)
    _CACHE.put(key, loss)
    return loss


def cached_expression_loss(text: str, variables: list[str] | None = None,
                           limits: ExpressionLimits | None = None) -> ExpressionLoss | None:
    """The loss `expression_loss` would answer from the cache, or None (a look that neither
    counts as a hit or a miss nor changes the eviction order)."""
    key = (text.strip(), None if variables is None else tuple(variables),
           limits or ExpressionLimits())
    with _CACHE.lock:
        return _CACHE.entries.get(key)


def tape_length(loss: ExpressionLoss) -> int:
    """Instructions of the value-and-gradient tape: the cost of one evaluation."""
    return len(loss._value_grad_tape.instructions)


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    size: int


def expression_cache_info() -> CacheInfo:
    return CacheInfo(_CACHE.hits, _CACHE.misses, len(_CACHE.entries))
