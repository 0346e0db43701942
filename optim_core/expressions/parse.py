"""Turn expression text into a SymPy expression through an allow-list walk of Python's AST.

Never `eval`, `sympify` or `parse_expr` (SymPy documents that they run `eval`). The text is
capped before `ast.parse` (the Python docs warn a large enough string can crash the parser),
every node kind outside the small grammar is refused with its column, and constant
sub-expressions are folded in floating point so a power tower is refused, not computed.
Columns in errors are 1-based character positions in the text.
"""

from __future__ import annotations

import ast
import keyword
import math
import operator
import re
from dataclasses import dataclass

import sympy

from optim_core.errors import (
    ExpressionError,
    ExpressionLimitError,
    ExpressionSyntaxError,
    NonFiniteConstantError,
    UnknownNameError,
)
from optim_core.expressions.functions import CONSTANTS, FUNCTIONS


@dataclass(frozen=True, slots=True)
class ExpressionLimits:
    """Bounds checked before and while parsing; the service passes its settings here."""

    max_length: int = 2000
    max_nodes: int = 600
    max_depth: int = 60
    max_variables: int = 32
    max_name_length: int = 64
    max_derivative_nodes: int = 60_000


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Exact rational powers are kept symbolic (sqrt(2), 3**4) only while they stay this small.
_MAX_EXACT_EXPONENT = 64
# Decimal literals become exact rationals (0.26 -> 13/50) unless their exponent is extreme.
_MAX_EXACT_DECIMAL_EXPONENT = 30

_BINARY_NAMES = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.BitXor: "^",
}
_ARITHMETIC = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}
_REFUSED_NODES = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambdas",
    ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators",
    ast.IfExp: "conditional expressions",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.JoinedStr: "f-strings",
    ast.Starred: "starred arguments",
    ast.NamedExpr: "assignment expressions",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


def is_valid_variable_name(name: str, max_length: int = 64) -> bool:
    """Plain ASCII identifier, not a dunder, keyword, function or constant name."""
    return (
        bool(_IDENTIFIER.match(name))
        and len(name) <= max_length
        and not (name.startswith("__") or name.endswith("__"))
        and not keyword.iskeyword(name)
        and name not in FUNCTIONS
        and name not in CONSTANTS
    )


def _column(node: ast.AST) -> int:
    return getattr(node, "col_offset", 0) + 1


class _Builder:
    """One walk: returns (sympy expression, float value if constant else None) per node."""

    def __init__(self, limits: ExpressionLimits) -> None:
        self.limits = limits
        self.symbols: dict[str, sympy.Symbol] = {}

    def build(self, node: ast.AST, depth: int = 0) -> tuple[sympy.Expr, float | None]:
        if depth > self.limits.max_depth:
            raise ExpressionLimitError(
                f"Expression is nested deeper than {self.limits.max_depth} levels",
                position=_column(node),
            )
        method = getattr(self, f"_build_{type(node).__name__}", None)
        if method is None:
            what = _REFUSED_NODES.get(type(node), f"'{type(node).__name__}' syntax")
            raise ExpressionSyntaxError(
                f"Not allowed in an expression: {what} (column {_column(node)}); use numbers, "
                "variables, + - * / ** ^ and the allowed functions",
                position=_column(node),
            )
        return method(node, depth + 1)

    def _build_Constant(self, node: ast.Constant, depth: int) -> tuple[sympy.Expr, float]:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ExpressionSyntaxError(
                f"Only real numbers are allowed as literals, got {type(value).__name__} "
                f"at column {_column(node)}",
                position=_column(node),
            )
        try:
            as_float = float(value)
        except OverflowError:
            as_float = math.inf
        if not math.isfinite(as_float):
            raise NonFiniteConstantError(
                f"The number at column {_column(node)} is too large to be a finite float",
                position=_column(node),
            )
        if isinstance(value, int):
            exact = abs(value) <= 2**53
            return (sympy.Integer(value) if exact else sympy.Float(as_float)), as_float
        exponent = 0 if as_float == 0 else math.floor(math.log10(abs(as_float)))
        if abs(exponent) <= _MAX_EXACT_DECIMAL_EXPONENT:
            return sympy.Rational(repr(as_float)), as_float
        return sympy.Float(as_float), as_float

    def _build_Name(self, node: ast.Name, depth: int) -> tuple[sympy.Expr, float | None]:
        name = node.id
        if name in CONSTANTS:
            symbolic, value = CONSTANTS[name]
            return symbolic, value
        if name in FUNCTIONS:
            raise ExpressionSyntaxError(
                f"'{name}' is a function: call it as {name}(...) (column {_column(node)})",
                position=_column(node),
            )
        if not is_valid_variable_name(name, self.limits.max_name_length):
            raise UnknownNameError(
                f"'{name}' at column {_column(node)} is not a valid variable name: use a plain "
                "ASCII identifier that is not a dunder, keyword, function or constant",
                position=_column(node),
            )
        if name not in self.symbols:
            if len(self.symbols) >= self.limits.max_variables:
                raise ExpressionLimitError(
                    f"Expression uses more than {self.limits.max_variables} variables",
                    position=_column(node),
                )
            self.symbols[name] = sympy.Symbol(name, real=True)
        return self.symbols[name], None

    def _build_UnaryOp(self, node: ast.UnaryOp, depth: int) -> tuple[sympy.Expr, float | None]:
        operand, value = self.build(node.operand, depth)
        if isinstance(node.op, ast.USub):
            return -operand, (None if value is None else -value)
        if isinstance(node.op, ast.UAdd):
            return operand, value
        raise ExpressionSyntaxError(
            f"Unary operator at column {_column(node)} is not allowed; use + or -",
            position=_column(node),
        )

    def _build_BinOp(self, node: ast.BinOp, depth: int) -> tuple[sympy.Expr, float | None]:
        op = type(node.op)
        if op not in _BINARY_NAMES:
            raise ExpressionSyntaxError(
                f"Operator at column {_column(node)} is not allowed; use + - * / ** or ^",
                position=_column(node),
            )
        left, lv = self.build(node.left, depth)
        right, rv = self.build(node.right, depth)
        if op in (ast.Pow, ast.BitXor):
            return self._power(node, left, lv, right, rv)
        if op is ast.Div and rv == 0.0:
            raise NonFiniteConstantError(
                f"Division by zero at column {_column(node)}", position=_column(node)
            )
        combine = _ARITHMETIC[op]
        value = None
        if lv is not None and rv is not None:
            value = combine(lv, rv)
            self._check_finite(value, node)
        return combine(left, right), value

    def _power(self, node: ast.BinOp, base: sympy.Expr, bv: float | None,
               exponent: sympy.Expr, ev: float | None) -> tuple[sympy.Expr, float | None]:
        if bv is None or ev is None:
            return sympy.Pow(base, exponent), None
        try:
            value = bv**ev
        except (OverflowError, ZeroDivisionError):
            value = math.inf
        if isinstance(value, complex):
            raise NonFiniteConstantError(
                f"The power at column {_column(node)} is not a real number "
                "(negative base with a fractional exponent)",
                position=_column(node),
            )
        self._check_finite(value, node)
        small_rational = (
            isinstance(exponent, sympy.Rational)
            and abs(exponent.p) <= _MAX_EXACT_EXPONENT
            and exponent.q <= _MAX_EXACT_EXPONENT
            and isinstance(base, sympy.Rational)
            and max(abs(base.p), base.q).bit_length() <= 64
        )
        exact_constant = small_rational or (exponent.is_Integer and abs(ev) <= _MAX_EXACT_EXPONENT
                                            and not base.is_Number)
        if exact_constant:
            return sympy.Pow(base, exponent), value
        return sympy.Float(value), value

    def _build_Call(self, node: ast.Call, depth: int) -> tuple[sympy.Expr, float | None]:
        if not isinstance(node.func, ast.Name):
            raise ExpressionSyntaxError(
                f"Only allowed functions may be called, by bare name (column {_column(node)})",
                position=_column(node),
            )
        name = node.func.id
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise UnknownNameError(
                f"Unknown function '{name}' at column {_column(node)}; allowed functions: "
                f"{', '.join(sorted(FUNCTIONS))}",
                position=_column(node),
            )
        if node.keywords:
            raise ExpressionSyntaxError(
                f"Keyword arguments are not allowed (column {_column(node.keywords[0])}); "
                f"call {name}(...) with positional arguments",
                position=_column(node),
            )
        count = len(node.args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            wanted = (str(spec.min_args) if spec.max_args == spec.min_args
                      else f"at least {spec.min_args}")
            raise ExpressionSyntaxError(
                f"{name}() takes {wanted} argument(s), got {count} (column {_column(node)})",
                position=_column(node),
            )
        built = [self.build(arg, depth) for arg in node.args]
        symbolic = spec.build(*[b[0] for b in built])
        values = [b[1] for b in built]
        if any(v is None for v in values):
            return symbolic, None
        try:
            value = float(spec.fold(*values))
        except (ValueError, OverflowError, ZeroDivisionError):
            value = math.nan
        self._check_finite(value, node)
        return symbolic, value

    @staticmethod
    def _check_finite(value: float, node: ast.AST) -> None:
        if not math.isfinite(value):
            raise NonFiniteConstantError(
                f"The constant sub-expression at column {_column(node)} is not finite "
                "(it overflows or is undefined)",
                position=_column(node),
            )


def _remap(exc: ExpressionError, columns: list[int]) -> ExpressionError:
    """Translate a column in the rewritten source back to the user's text."""
    if exc.position is None:
        return exc
    original = columns[min(max(exc.position - 1, 0), len(columns) - 1)]
    detail = exc.detail.replace(f"column {exc.position}", f"column {original}")
    return type(exc)(detail, loc=exc.loc, position=original)


def _check_text(text: str, limits: ExpressionLimits) -> None:
    if not text.strip():
        raise ExpressionSyntaxError("Expression is empty: write a formula such as 'x^2 + y^2'",
                                    position=1)
    if len(text) > limits.max_length:
        raise ExpressionLimitError(
            f"Expression is {len(text)} characters long; the limit is {limits.max_length}"
        )
    for index, char in enumerate(text):
        if not char.isascii() or (not char.isprintable() and char not in " \t"):
            raise ExpressionSyntaxError(
                f"Character {char!r} at column {index + 1} is not allowed; "
                "expressions are plain ASCII text",
                position=index + 1,
            )


def _caret_to_power(text: str) -> tuple[str, list[int]]:
    """Rewrite ^ as ** (Python gives ^ the precedence of XOR) and map columns back."""
    rewritten: list[str] = []
    columns: list[int] = []
    for index, char in enumerate(text):
        piece = "**" if char == "^" else char
        rewritten.append(piece)
        columns.extend([index + 1] * len(piece))
    columns.append(len(text) + 1)
    return "".join(rewritten), columns


def parse_expression(
    text: str, limits: ExpressionLimits | None = None
) -> tuple[sympy.Expr, dict[str, sympy.Symbol]]:
    """Parse `text` into a SymPy expression and its variables, refusing anything unsafe."""
    limits = limits or ExpressionLimits()
    _check_text(text, limits)
    source, columns = _caret_to_power(text)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        if not exc.offset:  # Python gives no column when the text ends too early
            column = len(text) + 1
            message = f"The expression ends too early (column {column}): {exc.msg}"
        else:
            column = columns[min(exc.offset - 1, len(columns) - 1)]
            message = f"Invalid syntax at column {column}: {exc.msg}"
        raise ExpressionSyntaxError(message, position=column) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ExpressionSyntaxError(
            f"Expression cannot be parsed: {type(exc).__name__}", position=1
        ) from None
    node_count = 0
    for _ in ast.walk(tree):
        node_count += 1
        if node_count > limits.max_nodes:
            raise ExpressionLimitError(
                f"Expression has more than {limits.max_nodes} syntax nodes; simplify it"
            )
    builder = _Builder(limits)
    try:
        expr, _ = builder.build(tree.body)
    except RecursionError:
        raise ExpressionLimitError("Expression is nested too deeply") from None
    except ExpressionSyntaxError as exc:
        raise _remap(exc, columns) from None
    except (UnknownNameError, ExpressionLimitError, NonFiniteConstantError) as exc:
        raise _remap(exc, columns) from None
    if expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise NonFiniteConstantError("Expression contains an infinite or undefined constant")
    return expr, builder.symbols
