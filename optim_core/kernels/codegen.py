"""The fused kernel's source, from a rule, the shape of its coefficients and a loss.

The generated module holds two functions: `value_grad(x, g, P, W)`, the loss at one run's
point (the gradient written into g), and `advance(...)`, a block of steps for a slice of runs.
What the module calls is ours: the rule's own `Elementwise.kernel` and the builtin's own term,
compiled by numba, and an expression's float program (expressions/scalar.py) written out as
one assignment per instruction, from its operation codes and slot numbers, never from user
text. Constants are written with repr, which round-trips every float.

Modules are files in the cache directory (kernels.cache_dir), named by the hash of their
source (which quotes the source of every function it compiles), so numba's on-disk cache
(`cache=True`) serves a restarted service or a second replica without compiling again, and
an upgraded rule gets a new file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from optim_core.kernels import FusedUnavailable, cache_dir

# the float program's operation codes (expressions/scalar.py)
_MUL, _ADD, _SQUARE, _CALL1, _CALL2, _MULADD, _SUB = range(7)
_MATH_NAMES = {math.sin, math.cos, math.tan, math.asin, math.acos, math.atan, math.sinh,
               math.cosh, math.tanh, math.exp, math.log, math.log1p, math.sqrt, math.pow}
VERSION = "1"  # of this generator: a change of the template below makes new files


@dataclass(frozen=True, slots=True)
class LossSource:
    """A loss's `value_grad(X, k, g, P, W)` at the point X[k] as source, and the functions it
    compiles; W holds a builtin's per-coordinate weights or its pair's (a, b), P nothing yet
    (a float)."""

    functions: tuple[tuple[str, Callable[..., Any]], ...]  # (alias, function) it compiles
    body: str


def _literal(value: float) -> str:
    if math.isnan(value):
        return "math.nan"
    if math.isinf(value):
        return "math.inf" if value > 0 else "-math.inf"
    return repr(float(value))


def _function(fn: Callable[..., float], helpers: dict[str, Callable[..., Any]]) -> str:
    """The name the generated code calls `fn` by: math's own, or a compiled helper."""
    if fn in _MATH_NAMES:
        return f"math.{fn.__name__}"
    if fn is abs:
        return "abs"
    module, name = fn.__module__, fn.__name__
    if module != "optim_core.expressions.scalar" or "<" in fn.__qualname__:
        raise FusedUnavailable(f"no fused form of {module}.{fn.__qualname__}")
    alias = f"H{name}"
    helpers[alias] = fn
    return alias


def expression_source(float_tape: Any) -> LossSource:
    """An expression's value and gradient from its float program (scalar.FloatTape)."""
    tape = float_tape.tape
    helpers: dict[str, Callable[..., Any]] = {}
    lines = [f"    s{i} = X[k, {i}]" for i in range(tape.n_inputs)]
    lines += [f"    s{slot} = {_literal(value)}" for slot, value in tape.constants]
    for op, dst, a, b, c in float_tape.program:
        if op == _MULADD:
            lines.append(f"    s{dst} = s{a} + s{b} * s{c}")
        elif op == _MUL:
            lines.append(f"    s{dst} = s{a} * s{b}")
        elif op == _ADD:
            lines.append(f"    s{dst} = s{a} + s{b}")
        elif op == _SQUARE:
            lines.append(f"    s{dst} = s{a} * s{a}")
        elif op == _SUB:
            lines.append(f"    s{dst} = s{a} - s{b}")
        elif op == _CALL1:
            lines.append(f"    s{dst} = {_function(c, helpers)}(s{a})")
        else:
            lines.append(f"    s{dst} = {_function(c, helpers)}(s{a}, s{b})")
    value_slot, *grad_slots = tape.outputs
    lines += [f"    g[{i}] = s{slot}" for i, slot in enumerate(grad_slots)]
    lines.append(f"    return s{value_slot}")
    return LossSource(tuple(helpers.items()), "\n".join(lines))


def separable_source(form: Any, dim: int, params: dict[str, float]) -> LossSource:
    """Σᵢ scale·term(xᵢ) (+ offset), in the float form's order (catalog._separable)."""
    term = form.term
    lines = ["    value = 0.0",
             "    for i in range(X.shape[1]):",
             "        t, gi = TERM(TERM_MATH, X[k, i], P, W[i])",
             "        value += t",
             "        g[i] = gi"]
    if form.scale != 1.0:
        lines.append(f"    value = {_literal(form.scale)} * value")
    if form.offset is not None:
        lines.append(f"    value = {_literal(form.offset(dim, params))} + value")
    lines.append("    return value")
    return LossSource((("TERM", term),), "\n".join(lines))


def pairs_source(form: Any) -> LossSource:
    """Σᵢ pair(xᵢ, xᵢ₊₁): each coordinate its head derivative plus the tail derivative of
    the pair before it, as the float form (catalog._rosenbrock_floats)."""
    pair = form.pair
    lines = ["    d = X.shape[1]",
             "    value = 0.0",
             "    carry = 0.0",
             "    head = X[k, 0]",
             "    for i in range(1, d):",
             "        tail = X[k, i]",
             "        t, d_head, d_tail = PAIR(head, tail, W[0], W[1])",
             "        value += t",
             "        g[i - 1] = d_head if i == 1 else d_head + carry",
             "        head = tail",
             "        carry = d_tail",
             "    g[d - 1] = 0.0 + carry",
             "    return value"]
    return LossSource((("PAIR", pair),), "\n".join(lines))


@dataclass(frozen=True, slots=True)
class Slot:
    """One coefficient of a rule's tuple after `ops`: its dtype and whether it may be None
    at some step (then it reaches the kernel as numba's Optional)."""

    dtype: str  # "float" | "bool"
    optional: bool
    shared: bool  # one value a step for every run (a (B,) table), else (B, K)


def advance_source(kernel: Callable[..., Any], n_state: int, slots: Sequence[Slot],
                   lr_shared: bool, parallel: bool, dim: int) -> str:
    """`advance`: steps t0 … t1 − 1 for every live run whose own step is t (see fused.py)."""
    names = [f"C{j}" for j in range(len(slots))]
    flags = [f"F{j}" for j in range(len(slots))]
    parts, hoisted = [], []
    for j, slot in enumerate(slots):
        value = f"{names[j]}[b]" if slot.shared else f"{names[j]}[b, k]"
        if slot.optional:
            value = f"({value} if {flags[j]}[b] else None)"
        if slot.shared:
            hoisted.append(f"            h{j} = {value}")
            value = f"h{j}"
        parts.append(value)
    coefficients = "(NUMBA_OPS, " + ", ".join(parts) + ")"
    step_level = "\n".join(hoisted)
    state_in = ", ".join(f"state[{i}, k, i]" for i in range(n_state)) + (
        "," if n_state == 1 else "")
    state_out = ", ".join(f"a{i}" for i in range(n_state)) + ("," if n_state == 1 else "")
    stores = "\n".join(f"                    state[{i}, k, i] = a{i}" for i in range(n_state))
    tables = ", ".join(names + flags)
    prange = "prange" if parallel else "range"
    return f'''
@njit(cache=True, nogil=True, parallel={parallel}, error_model="numpy")
def advance(t0, t1, chunk, halt, params, state, live, t_row, resume, parked, max_steps,
            grad_tol, loss_tol, step_tol, patience, factor, f0, best, last_improvement, ring,
            path_length, flips, prev_step, last_step_norm, last_lr, first_value, first_gn,
            park_value, park_gn, lr_table, P, W{", " if tables else ""}{tables}):
    n_runs = params.shape[0]
    d = {dim}  # a constant: the coordinate loops unroll
    window = ring.shape[0]  # step-major: a step writes one contiguous row
    n_chunks = (n_runs + chunk - 1) // chunk
    for ci in {prange}(n_chunks):
        lo = ci * chunk
        hi = min(n_runs, lo + chunk)
        g = np.empty(d)
        for t in range(t0, t1):
            b = t - t0
            ring_slot = t % window
{step_level}
            for k in range(lo, hi):
                if not live[k] or t_row[k] != t:
                    continue
                value = value_grad(params, k, g, P, W)
                squares = 0.0
                for i in range(d):
                    squares += g[i] * g[i]
                grad_norm = math.sqrt(squares)
                if t == t0:
                    first_value[k] = value
                    first_gn[k] = grad_norm
                if t == 0:
                    f0[k] = value
                if resume[k]:
                    resume[k] = False
                else:
                    finite = math.isfinite(value) and math.isfinite(grad_norm)
                    for i in range(d):
                        finite = finite and math.isfinite(params[k, i])
                    if ((halt and t == t0) or not finite
                            or value - f0[k] > factor * max(1.0, abs(f0[k]))
                            or grad_norm <= grad_tol or value <= loss_tol
                            or (t > 0 and last_step_norm[k] <= step_tol)
                            or t - last_improvement[k] >= patience or t >= max_steps[k]):
                        park_value[k] = value
                        park_gn[k] = grad_norm
                        parked[k] = True
                        live[k] = False
                        continue
                if value < best[k]:
                    best[k] = value
                    last_improvement[k] = t
                ring[ring_slot, k] = value
                c = {coefficients}
                squares = 0.0
                for i in range(d):
                    s, ({state_out}) = KERNEL(c, g[i], params[k, i], ({state_in}))
{stores}
                    squares += s * s
                    if s * prev_step[k, i] < 0.0:
                        flips[k] += 1
                    prev_step[k, i] = s
                    params[k, i] = params[k, i] + s
                norm = math.sqrt(squares)
                last_step_norm[k] = norm
                path_length[k] += norm
                last_lr[k] = {"lr_table[b]" if lr_shared else "lr_table[b, k]"}
                t_row[k] = t + 1
'''


def module_source(kernel: Callable[..., Any], n_state: int, slots: Sequence[Slot],
                  lr_shared: bool, loss: LossSource, parallel: bool, dim: int) -> str:
    """The whole module: imports, the loss, the rule's kernel and `advance`."""
    header = ["# optim fused kernel, generator " + VERSION,
              "import math", "import numpy as np", "from numba import njit, prange",
              "from optim_core.kernels.ops import NUMBA_OPS, TERM_MATH"]
    quoted = []
    for alias, fn in (("KERNEL", kernel), *loss.functions):
        if "<" in fn.__qualname__:
            raise FusedUnavailable(f"{fn.__qualname__} is not a module-level function")
        header += [f"from {fn.__module__} import {fn.__name__} as _{alias}",
                   f"{alias} = njit(error_model='numpy')(_{alias})"]
        quoted.append(inspect.getsource(fn))
    digest = hashlib.sha256("\n".join(quoted).encode()).hexdigest()[:16]
    # inlined into advance: a call that passes arrays costs reference counting per run-step
    value_grad = ("@njit(cache=True, error_model='numpy', inline='always')\n"
                  "def value_grad(X, k, g, P, W):\n" + loss.body)
    return "\n".join([*header, f"# sources {digest}", "", value_grad,
                      advance_source(kernel, n_state, slots, lr_shared, parallel, dim)])


_LOCK = threading.Lock()
_LOADED: dict[str, ModuleType] = {}


def is_loaded(source: str) -> bool:
    """Whether this source is compiled in this process or its file is already on disk (its
    numba cache then usually is too)."""
    name = _name(source)
    return name in _LOADED or (cache_dir() / f"{name}.py").exists()


def _name(source: str) -> str:
    return "optim_fused_" + hashlib.sha256(source.encode()).hexdigest()[:24]


def load(source: str) -> ModuleType:
    """The module of this source, written to the cache directory once (atomically) and
    imported from there, so numba can cache its compiled functions beside it."""
    name = _name(source)
    with _LOCK:
        module = _LOADED.get(name)
        if module is not None:
            return module
        directory = cache_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:  # not writable here (a read-only home): this user's temporary one
            directory = Path(tempfile.gettempdir()) / f"optim-kernels-{os.getuid()}"
            directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.py"
        if not path.exists():
            handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
            with os.fdopen(handle, "w") as out:
                out.write(source)
            os.replace(temporary, path)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # numba's cache finds a compiled function's module by name
        spec.loader.exec_module(module)
        _LOADED[name] = module
        return module
