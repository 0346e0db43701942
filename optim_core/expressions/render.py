"""The gradient and Hessian as text and LaTeX, for /v1/analyze and the loss echo."""

from __future__ import annotations

from collections.abc import Sequence

import sympy


def as_text(expr: sympy.Expr) -> str:
    """Python-like text with ** for powers, as users type it."""
    return str(expr)


def as_latex(expr: sympy.Expr) -> str:
    return sympy.latex(expr)


def render_vector(exprs: Sequence[sympy.Expr]) -> tuple[list[str], list[str]]:
    return [as_text(e) for e in exprs], [as_latex(e) for e in exprs]


def render_matrix(rows: Sequence[Sequence[sympy.Expr]]) -> tuple[list[list[str]], list[list[str]]]:
    return [[as_text(e) for e in row] for row in rows], [[as_latex(e) for e in row] for row in rows]
