"""SymPy expressions to vectorised NumPy evaluation, with no generated code.

The outputs are reduced with common-subexpression elimination, then flattened into a tape of
(ufunc, argument slots); a two-term sum a + (−b) becomes one subtraction a − b (the same bits,
one NumPy call fewer). Evaluating the tape on a (K, d) batch gives a (K, m) array; constant
outputs (∂(x²+3y)/∂y = 3) are broadcast to (K,). Nothing built from user text is ever `exec`-ed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy

from optim_core.errors import ExpressionError, ExpressionLimitError
from optim_core.expressions.functions import log1p, sigmoid, softplus
from optim_core.types import Array


def _stable_sigmoid(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # tanh form never overflows


def _heaviside(x: Array, h0: Array | float = 0.5) -> Array:
    return np.heaviside(x, h0)


def _zeros_like(x: Array, *_: Array) -> Array:
    # DiracDelta only appears in derivatives of sign(); it is zero almost everywhere.
    return np.zeros_like(np.asarray(x, dtype=float))


def _softplus(x: Array) -> Array:
    return np.logaddexp(0.0, x)


def _sec(x: Array) -> Array:
    return 1.0 / np.cos(x)


def _csc(x: Array) -> Array:
    return 1.0 / np.sin(x)


def _cot(x: Array) -> Array:
    return 1.0 / np.tan(x)


def _square(x: Array) -> Array:
    return x * x


def _cube(x: Array) -> Array:
    return x * x * x


def _reciprocal(x: Array) -> Array:
    return 1.0 / x


def _reciprocal_sqrt(x: Array) -> Array:
    return 1.0 / np.sqrt(x)


def _sum(*args: Array) -> Array:
    total = args[0]
    for arg in args[1:]:
        total = total + arg
    return total


def _product(*args: Array) -> Array:
    total = args[0]
    for arg in args[1:]:
        total = total * arg
    return total


def _minimum(*args: Array) -> Array:
    return np.minimum.reduce(np.broadcast_arrays(*args))


def _maximum(*args: Array) -> Array:
    return np.maximum.reduce(np.broadcast_arrays(*args))


_UNARY: dict[type, Callable[..., Array]] = {
    sympy.sin: np.sin, sympy.cos: np.cos, sympy.tan: np.tan,
    sympy.asin: np.arcsin, sympy.acos: np.arccos, sympy.atan: np.arctan,
    sympy.sinh: np.sinh, sympy.cosh: np.cosh, sympy.tanh: np.tanh,
    sympy.exp: np.exp, sympy.log: np.log, log1p: np.log1p,
    sympy.Abs: np.abs, sympy.sign: np.sign,
    sigmoid: _stable_sigmoid, softplus: _softplus,
    sympy.Heaviside: _heaviside, sympy.DiracDelta: _zeros_like,
    sympy.Min: _minimum, sympy.Max: _maximum,
    sympy.sec: _sec, sympy.csc: _csc, sympy.cot: _cot,
}


def _power_function(exponent: sympy.Expr) -> Callable[[Array], Array] | None:
    """Cheaper, exact forms of the common constant powers."""
    if exponent == 2:
        return _square
    if exponent == -1:
        return _reciprocal
    if exponent == sympy.Rational(1, 2):
        return np.sqrt
    if exponent == sympy.Rational(-1, 2):
        return _reciprocal_sqrt
    if exponent == 3:
        return _cube
    return None


@dataclass(frozen=True, slots=True)
class Tape:
    """A flattened program: slots 0..d-1 are the inputs, each instruction appends one slot."""

    n_inputs: int
    constants: tuple[tuple[int, float], ...]  # (slot, value)
    instructions: tuple[tuple[int, Callable[..., Array], tuple[int, ...]], ...]
    outputs: tuple[int, ...]
    n_slots: int

    def evaluate(self, params: Array) -> Array:
        """Evaluate every output on a (K, d) batch: returns (K, m)."""
        slots: list[Array | float] = [0.0] * self.n_slots
        for i in range(self.n_inputs):
            slots[i] = params[:, i]
        for slot, value in self.constants:
            slots[slot] = value
        with np.errstate(all="ignore"):
            for slot, fn, args in self.instructions:
                slots[slot] = fn(*[slots[a] for a in args])
        out = np.empty((params.shape[0], len(self.outputs)))
        for j, slot in enumerate(self.outputs):
            out[:, j] = slots[slot]
        return out


def _negated(node: sympy.Basic) -> sympy.Basic | None:
    """b where node is −b (SymPy's Mul(−1, b)), else None."""
    if isinstance(node, sympy.Mul) and len(node.args) == 2 and node.args[0] == -1:
        return node.args[1]
    return None


class _TapeBuilder:
    def __init__(self, symbols: Sequence[sympy.Symbol], max_instructions: int,
                 differences: bool = True) -> None:
        self.slot_of: dict[sympy.Basic, int] = {s: i for i, s in enumerate(symbols)}
        self.n_slots = len(symbols)
        self.constants: list[tuple[int, float]] = []
        self.instructions: list[tuple[int, Callable[..., Array], tuple[int, ...]]] = []
        self.max_instructions = max_instructions
        self.differences = differences

    def _new_slot(self) -> int:
        self.n_slots += 1
        return self.n_slots - 1

    def _constant(self, node: sympy.Basic) -> int:
        value = float(node)  # type: ignore[arg-type]
        slot = self._new_slot()
        self.constants.append((slot, value))
        return slot

    def _emit(self, fn: Callable[..., Array], args: tuple[int, ...]) -> int:
        if len(self.instructions) >= self.max_instructions:
            raise ExpressionLimitError(
                f"The expression's derivatives need more than {self.max_instructions} "
                "operations to evaluate; simplify the expression"
            )
        slot = self._new_slot()
        self.instructions.append((slot, fn, args))
        return slot

    def slot(self, node: sympy.Basic) -> int:
        """Return the slot holding `node`, emitting instructions for it once."""
        stack: list[tuple[sympy.Basic, bool]] = [(node, False)]
        while stack:
            current, children_done = stack.pop()
            if current in self.slot_of:
                continue
            if current.is_Number or current.is_NumberSymbol:
                self.slot_of[current] = self._constant(current)
                continue
            if not children_done:
                stack.append((current, True))
                stack.extend((a, False) for a in self._operands(current)
                             if a not in self.slot_of)
                continue
            self.slot_of[current] = self._translate(current)
        return self.slot_of[node]

    def _operands(self, node: sympy.Basic) -> tuple[sympy.Basic, ...]:
        """The nodes `node` is computed from: a difference's b rather than its −b."""
        difference = self._difference(node)
        return node.args if difference is None else difference

    def _difference(self, node: sympy.Basic) -> tuple[sympy.Basic, sympy.Basic] | None:
        """(a, b) where node is a + (−b) or (−b) + a, two terms of which exactly one is
        negated: computed as a − b, which equals a + (−1)·b to the bit, with one NumPy call
        instead of two. Longer sums keep their one n-ary instruction (splitting them around
        their −b terms was measured to add instructions where the −b are shared)."""
        if not (self.differences and isinstance(node, sympy.Add) and len(node.args) == 2):
            return None
        first, second = node.args
        minus_first, minus_second = _negated(first), _negated(second)
        if (minus_first is None) == (minus_second is None):
            return None
        return (first, minus_second) if minus_second is not None else (second, minus_first)

    def _translate(self, node: sympy.Basic) -> int:
        difference = self._difference(node)
        if difference is not None:
            return self._emit(np.subtract, tuple(self.slot_of[a] for a in difference))
        args = tuple(self.slot_of[a] for a in node.args)
        if isinstance(node, sympy.Add):
            return self._emit(_sum, args)
        if isinstance(node, sympy.Mul):
            return self._emit(_product, args)
        if isinstance(node, sympy.Pow):
            special = _power_function(node.exp)
            if special is not None:
                return self._emit(special, args[:1])
            return self._emit(np.power, args)
        fn = _UNARY.get(type(node))
        if fn is None:
            raise ExpressionError(
                f"The expression produced '{type(node).__name__}', which cannot be evaluated"
            )
        return self._emit(fn, args)


def compile_outputs(
    outputs: Sequence[sympy.Expr],
    symbols: Sequence[sympy.Symbol],
    *,
    max_instructions: int = 60_000,
    differences: bool = True,
) -> Tape:
    """Compile `outputs` (functions of `symbols`) into one shared tape (`differences=False`:
    a + (−b) as a product with −1 and a sum, the tests' reference)."""
    replacements, reduced = sympy.cse(list(outputs), order="none")
    builder = _TapeBuilder(symbols, max_instructions, differences)
    for symbol, expr in replacements:
        builder.slot_of[symbol] = builder.slot(expr)
    output_slots = tuple(builder.slot(expr) for expr in reduced)
    return Tape(
        n_inputs=len(symbols),
        constants=tuple(builder.constants),
        instructions=tuple(builder.instructions),
        outputs=output_slots,
        n_slots=builder.n_slots,
    )
