"""A compiled tape evaluated on Python floats, one point at a time.

At K = 1 every NumPy call on a one-element array costs about a microsecond, so the
15-instruction tape of Rosenbrock's value and gradient takes ~20 µs; interpreted on floats it
takes ~1.5 µs. The program is the same tape (same operations in the same order), run by a
small interpreter: nothing is generated and nothing is exec-ed.

Python's `math` raises where NumPy returns inf or nan (log(0), exp(1000), 1/0, asin(2)). The
interpreter then evaluates the point with the NumPy tape, so both paths give the same numbers,
including the non-finite ones that make a run `diverged`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from optim_core.expressions import compile as vectorised
from optim_core.expressions.compile import Tape

_MUL, _ADD, _SQUARE, _CALL1, _CALL2 = range(5)
_LOG2 = math.log(2.0)
_NAN = math.nan


def _sign(x: float) -> float:
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0 if x == 0.0 else x  # np.sign: +0 for ±0, nan stays nan


def _sigmoid(x: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * x))


def _softplus(x: float) -> float:
    """np.logaddexp(0, x), written the way NumPy computes it."""
    if x == 0.0:
        return _LOG2
    if x < 0.0:
        return math.log1p(math.exp(x))
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return x  # nan


def _heaviside(x: float, h0: float) -> float:
    if x < 0.0:
        return 0.0
    if x > 0.0:
        return 1.0
    return h0 if x == 0.0 else x


def _zero(*_: float) -> float:
    return 0.0


def _minimum(a: float, b: float) -> float:
    """np.minimum: nan wins."""
    if a != a or b != b:
        return _NAN
    return a if a < b else b


def _maximum(a: float, b: float) -> float:
    if a != a or b != b:
        return _NAN
    return a if a > b else b


def _reciprocal(x: float) -> float:
    return 1.0 / x


def _reciprocal_sqrt(x: float) -> float:
    return 1.0 / math.sqrt(x)


def _cube(x: float) -> float:
    return x * x * x


def _sec(x: float) -> float:
    return 1.0 / math.cos(x)


def _csc(x: float) -> float:
    return 1.0 / math.sin(x)


def _cot(x: float) -> float:
    return 1.0 / math.tan(x)


# The vectorised function of each tape instruction and its float counterpart.
_FLOAT_FUNCTIONS: dict[Callable[..., object], Callable[..., float]] = {
    np.sin: math.sin, np.cos: math.cos, np.tan: math.tan,
    np.arcsin: math.asin, np.arccos: math.acos, np.arctan: math.atan,
    np.sinh: math.sinh, np.cosh: math.cosh, np.tanh: math.tanh,
    np.exp: math.exp, np.log: math.log, np.log1p: math.log1p,
    np.abs: abs, np.sign: _sign, np.sqrt: math.sqrt, np.power: math.pow,
    vectorised._stable_sigmoid: _sigmoid, vectorised._softplus: _softplus,
    vectorised._heaviside: _heaviside, vectorised._zeros_like: _zero,
    vectorised._sec: _sec, vectorised._csc: _csc, vectorised._cot: _cot,
    vectorised._reciprocal: _reciprocal, vectorised._reciprocal_sqrt: _reciprocal_sqrt,
    vectorised._cube: _cube,
}
# n-ary instructions, unrolled left to right into binary ones (the order NumPy's loop uses)
_CHAINS: dict[Callable[..., object], tuple[int, Callable[..., float] | None]] = {
    vectorised._sum: (_ADD, None), vectorised._product: (_MUL, None),
    vectorised._minimum: (_CALL2, _minimum), vectorised._maximum: (_CALL2, _maximum),
}

Instruction = tuple[int, int, int, int, Callable[..., float] | None]  # op, dst, a, b, fn


class FloatTape:
    """Evaluate a Tape's outputs at one point given as a list of floats."""

    def __init__(self, tape: Tape, program: Sequence[Instruction]) -> None:
        self.tape = tape
        self.program = tuple(program)
        slots = [0.0] * tape.n_slots
        for slot, value in tape.constants:
            slots[slot] = value
        self.initial = slots
        self.n_inputs = tape.n_inputs
        self.outputs = tape.outputs

    def evaluate(self, point: list[float]) -> list[float]:
        slots = self.initial.copy()
        slots[: self.n_inputs] = point
        try:
            for op, dst, a, b, fn in self.program:
                if op == _MUL:
                    slots[dst] = slots[a] * slots[b]
                elif op == _ADD:
                    slots[dst] = slots[a] + slots[b]
                elif op == _SQUARE:
                    value = slots[a]
                    slots[dst] = value * value
                elif op == _CALL1:
                    slots[dst] = fn(slots[a])  # type: ignore[misc]
                else:
                    slots[dst] = fn(slots[a], slots[b])  # type: ignore[misc]
        except (ArithmeticError, ValueError):  # NumPy's inf/nan semantics: see the docstring
            return self.tape.evaluate(np.array([point], dtype=float))[0].tolist()
        return [slots[o] for o in self.outputs]


def float_tape(tape: Tape) -> FloatTape | None:
    """The float version of `tape`, or None when it uses a function with no float form."""
    program: list[Instruction] = []
    for slot, fn, args in tape.instructions:
        if fn in _CHAINS:
            op, binary = _CHAINS[fn]
            if len(args) < 2:
                return None
            program.append((op, slot, args[0], args[1], binary))
            program.extend((op, slot, slot, a, binary) for a in args[2:])
        elif fn is vectorised._square:
            program.append((_SQUARE, slot, args[0], 0, None))
        elif fn in _FLOAT_FUNCTIONS:
            scalar = _FLOAT_FUNCTIONS[fn]
            if fn is vectorised._zeros_like or len(args) == 1:
                program.append((_CALL1, slot, args[0], 0, scalar))
            elif len(args) == 2:
                program.append((_CALL2, slot, args[0], args[1], scalar))
            else:
                return None
        else:
            return None
    return FloatTape(tape, program)

