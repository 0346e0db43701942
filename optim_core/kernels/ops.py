"""The `Ops` of a rule's kernel and the math of a builtin's term, as numba functions.

They give NumPy's answers on one float, as base.FLOAT_OPS does: nan wins a maximum, the root
of a negative is nan (numba's math never raises), a power is libm's pow (as np.power on
floats). Imported only on the fused path (it imports numba).
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit


@njit
def _sqrt(x):  # noqa: ANN001, ANN202 - numba infers the types
    # LLVM's sqrt intrinsic (math.sqrt would be a call of libm's, which stops the loop over
    # runs from vectorising); nan below 0, as IEEE's root
    return np.sqrt(x)


@njit
def _maximum(a, b):  # noqa: ANN001, ANN202
    if a != a or b != b:
        return math.nan
    return a if a > b else b


@njit
def _where(rows, a, b):  # noqa: ANN001, ANN202
    return a if rows else b


@njit
def _abs(x):  # noqa: ANN001, ANN202
    return abs(x)


@njit
def _any(x):  # noqa: ANN001, ANN202
    return bool(x)


@njit
def _power(a, b):  # noqa: ANN001, ANN202
    return math.pow(a, float(b))


@njit
def _cos(x):  # noqa: ANN001, ANN202
    return math.cos(x)


@njit
def _sin(x):  # noqa: ANN001, ANN202
    return math.sin(x)


KernelOps = namedtuple("KernelOps", "sqrt maximum where abs any power")
NUMBA_OPS = KernelOps(_sqrt, _maximum, _where, _abs, _any, _power)
# what a builtin's term calls as `ops.cos` (the vectorised form passes np, the float form math)
TermMath = namedtuple("TermMath", "cos sin")
TERM_MATH = TermMath(_cos, _sin)
