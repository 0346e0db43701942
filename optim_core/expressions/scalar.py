"""A compiled tape evaluated on Python floats, one point at a time.

At K = 1 every NumPy call on a one-element array costs about a microsecond, so the
17-instruction tape of Rosenbrock's value and gradient takes ~20 µs; interpreted on floats it
takes ~1 µs. The program is the same tape (same operations in the same order), run by a
small interpreter: nothing is generated and nothing is exec-ed.

An interpreted instruction costs ~55 ns, most of it dispatch, so two exact rewrites fuse
instructions (`fuse`): c + a·b becomes one MULADD when a·b is read only there, and
c + (−1)·b one SUB. Python never fuses a multiply-add (a·b is rounded, then added) and
c + (−b) = c − b exactly, so the numbers are the NumPy tape's to the bit; Rosenbrock's tape
goes from 17 instructions to 11.

Python's `math` raises where NumPy returns inf or nan (log(0), exp(1000), 1/0, asin(2)). The
interpreter then evaluates the point with the NumPy tape, so both paths give the same numbers,
including the non-finite ones that make a run `diverged`.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from optim_core.expressions import compile as vectorised
from optim_core.expressions.compile import Tape

_MUL, _ADD, _SQUARE, _CALL1, _CALL2, _MULADD, _SUB = range(7)
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

# op, dst, a, b, then the function of a call or the third slot of MULADD (dst = a + b·c)
Instruction = tuple[int, int, int, int, Any]


class FloatTape:
    """Evaluate a value-and-gradient Tape at one point given as a list of floats."""

    def __init__(self, tape: Tape, program: Sequence[Instruction]) -> None:
        self.tape = tape
        self.program = tuple(program)
        slots = [0.0] * tape.n_slots
        for slot, value in tape.constants:
            slots[slot] = value
        self.after_inputs = slots[tape.n_inputs:]  # the inputs are slots 0 … n − 1
        self.value_slot, *grad_slots = tape.outputs
        # the gradient as one C call (a tuple): half the time of a list comprehension
        self.read_grads = (itemgetter(*grad_slots) if len(grad_slots) > 1
                           else lambda slots: (slots[grad_slots[0]],))

    def value_grad(self, point: list[float]) -> tuple[float, Sequence[float]]:
        """The tape's first output (the value) and the others (the gradient): the float form
        of the loss itself, one call a step."""
        slots = point + self.after_inputs
        try:
            for op, dst, a, b, c in self.program:
                if op == _MULADD:
                    slots[dst] = slots[a] + slots[b] * slots[c]
                elif op == _MUL:
                    slots[dst] = slots[a] * slots[b]
                elif op == _ADD:
                    slots[dst] = slots[a] + slots[b]
                elif op == _SQUARE:
                    value = slots[a]
                    slots[dst] = value * value
                elif op == _SUB:
                    slots[dst] = slots[a] - slots[b]
                elif op == _CALL1:
                    slots[dst] = c(slots[a])
                else:
                    slots[dst] = c(slots[a], slots[b])
        except (ArithmeticError, ValueError):  # NumPy's inf/nan semantics: see the docstring
            value, *grads = self.tape.evaluate(np.array([point], dtype=float))[0].tolist()
            return value, grads
        return slots[self.value_slot], self.read_grads(slots)


def float_tape(tape: Tape, *, fused: bool = True) -> FloatTape | None:
    """The float version of `tape`, or None when it uses a function with no float form
    (`fused=False`: one instruction per tape instruction, as the tests' reference)."""
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
        elif fn is np.subtract:  # the vectorised tape's own a − b (see _signed_sum)
            program.append((_SUB, slot, args[0], args[1], None))
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
    if fused:
        program = fuse(program, dict(tape.constants), set(tape.outputs))
    return FloatTape(tape, program)


def _reads(ins: Instruction) -> tuple[int, ...]:
    op, _, a, b, c = ins
    if op == _MULADD:
        return (a, b, c)
    if op in (_SQUARE, _CALL1):
        return (a,)
    return (a, b)


def fuse(program: list[Instruction], constants: dict[int, float], outputs: set[int]
         ) -> list[Instruction]:
    """Fold each product read by one addition only into it: c + (−1)·b as SUB, c + a·b as
    MULADD. Exact (see the module docstring). A product is folded when no instruction
    between it and its addition writes its operands (only n-ary chains rewrite a slot).
    Linear in the tape's length, up to a log for rewritten slots."""
    writer: dict[int, int] = {}  # slot → index of the instruction whose value it holds
    readers: list[list[int]] = [[] for _ in program]
    writes: dict[int, list[int]] = {}  # slot → indices of the instructions writing it, sorted
    for j, ins in enumerate(program):
        for slot in _reads(ins):
            if slot in writer:
                readers[writer[slot]].append(j)
        writer[ins[1]] = j
        writes.setdefault(ins[1], []).append(j)
    final = {writer[slot] for slot in outputs if slot in writer}

    def untouched(slot: int, after: int, before: int) -> bool:
        indices = writes.get(slot, ())
        i = bisect_right(indices, after)
        return i == len(indices) or indices[i] >= before

    def foldable(w: int, j: int) -> bool:
        op, _, a, b, _ = program[w]
        return (op == _MUL and readers[w] == [j] and w not in final
                and untouched(a, w, j) and untouched(b, w, j))

    fused, removed = list(program), set()
    writer.clear()
    for j, (op, dst, a, b, _) in enumerate(program):
        if op == _ADD:
            for other, operand in ((a, b), (b, a)):
                w = writer.get(operand)
                if w is None or w in removed or not foldable(w, j):
                    continue
                _, _, x, y, _ = program[w]
                if constants.get(x) == -1.0:
                    fused[j] = (_SUB, dst, other, y, None)
                elif constants.get(y) == -1.0:
                    fused[j] = (_SUB, dst, other, x, None)
                else:
                    fused[j] = (_MULADD, dst, other, x, y)
                removed.add(w)
                break
        writer[dst] = j
    return [ins for i, ins in enumerate(fused) if i not in removed]
