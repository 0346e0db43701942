"""The names an expression may call: one line each, with the SymPy builder and a float twin.

The float twin folds constant sub-expressions in floating point, so `9**9**9` is caught as
non-finite instead of being computed as an exact big integer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import sympy


class sigmoid(sympy.Function):  # noqa: N801 - the name users type
    """Logistic function 1/(1+exp(-x)), kept as one node so it prints and evaluates stably."""

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        return sympy.Rational(1, 2) if x == 0 else None

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        s = sigmoid(self.args[0])
        return s * (1 - s)


class softplus(sympy.Function):  # noqa: N801
    """log(1+exp(x)), evaluated as logaddexp(0, x) so large x does not overflow."""

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        return sympy.log(2) if x == 0 else None

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sigmoid(self.args[0])


class log1p(sympy.Function):  # noqa: N801
    """log(1+x), accurate for small x."""

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        return sympy.Integer(0) if x == 0 else None

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return 1 / (1 + self.args[0])


def _float_sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _float_softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _float_sign(x: float) -> float:
    return float((x > 0) - (x < 0))


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """An allowed function: how to build it symbolically and fold it on constants."""

    name: str
    build: Callable[..., sympy.Expr]
    fold: Callable[..., float]
    min_args: int = 1
    max_args: int | None = 1


FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in (
        FunctionSpec("sin", sympy.sin, math.sin),
        FunctionSpec("cos", sympy.cos, math.cos),
        FunctionSpec("tan", sympy.tan, math.tan),
        FunctionSpec("asin", sympy.asin, math.asin),
        FunctionSpec("acos", sympy.acos, math.acos),
        FunctionSpec("atan", sympy.atan, math.atan),
        FunctionSpec("sinh", sympy.sinh, math.sinh),
        FunctionSpec("cosh", sympy.cosh, math.cosh),
        FunctionSpec("tanh", sympy.tanh, math.tanh),
        FunctionSpec("exp", sympy.exp, math.exp),
        FunctionSpec("log", sympy.log, math.log),
        FunctionSpec("log1p", log1p, math.log1p),
        FunctionSpec("sqrt", sympy.sqrt, math.sqrt),
        FunctionSpec("abs", sympy.Abs, abs),
        FunctionSpec("sign", sympy.sign, _float_sign),
        FunctionSpec("min", sympy.Min, min, min_args=2, max_args=None),
        FunctionSpec("max", sympy.Max, max, min_args=2, max_args=None),
        FunctionSpec("sigmoid", sigmoid, _float_sigmoid),
        FunctionSpec("softplus", softplus, _float_softplus),
    )
}

CONSTANTS: dict[str, tuple[sympy.Expr, float]] = {
    "pi": (sympy.pi, math.pi),
    "e": (sympy.E, math.e),
}
