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

import functools
import hashlib
import importlib.util
import inspect
import math
import os
import sys
import tempfile
import textwrap
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
VERSION = "5"  # of this generator: a change of the template below makes new files
# one assignment per float-program instruction (MULADD's third operand is a slot in c)
_STATEMENTS = {
    _MULADD: "e{dst} = e{a} + e{b} * e{c}", _MUL: "e{dst} = e{a} * e{b}",
    _ADD: "e{dst} = e{a} + e{b}", _SQUARE: "e{dst} = e{a} * e{a}",
    _SUB: "e{dst} = e{a} - e{b}", _CALL1: "e{dst} = {call}(e{a})",
    _CALL2: "e{dst} = {call}(e{a}, e{b})",
}


@dataclass(frozen=True, slots=True)
class LossSource:
    """A loss's value and gradient at run k as straight-line statements (the coordinates
    unrolled: the loop over runs then vectorises): they read X{i}[k] and set `value` and
    g0 … g{d−1}; W holds a builtin's per-coordinate weights or its pair's (a, b), P nothing
    yet (a float). `functions` are the (alias, function) pairs the statements call."""

    functions: tuple[tuple[str, Callable[..., Any]], ...]
    lines: tuple[str, ...]


def _literal(value: float) -> str:
    if math.isnan(value):
        return "math.nan"
    if math.isinf(value):
        return "math.inf" if value > 0 else "-math.inf"
    return repr(float(value))


def _function(fn: Callable[..., float], helpers: dict[str, Callable[..., Any]]) -> str:
    """The name the generated code calls `fn` by: math's own, or a compiled helper."""
    if fn is math.sqrt:  # numba's np.sqrt is LLVM's sqrt intrinsic (it vectorises); its
        return "np.sqrt"  # math.sqrt a call of libm's (it does not). Both nan below 0.
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
    """An expression's value and gradient from its float program (scalar.FloatTape), one
    assignment per instruction, in its order."""
    tape = float_tape.tape
    helpers: dict[str, Callable[..., Any]] = {}
    lines = [f"e{i} = X{i}[k]" for i in range(tape.n_inputs)]
    lines += [f"e{slot} = {_literal(value)}" for slot, value in tape.constants]
    for op, dst, a, b, c in float_tape.program:
        call = _function(c, helpers) if op in (_CALL1, _CALL2) else ""
        lines.append(_STATEMENTS[op].format(dst=dst, a=a, b=b, c=c, call=call))
    value_slot, *grad_slots = tape.outputs
    lines += [f"g{i} = e{slot}" for i, slot in enumerate(grad_slots)]
    lines.append(f"value = e{value_slot}")
    return LossSource(tuple(helpers.items()), tuple(lines))


def separable_source(form: Any, dim: int, params: dict[str, float]) -> LossSource:
    """Σᵢ scale·term(xᵢ) (+ offset), in the float form's order (catalog._separable)."""
    lines = ["value = 0.0"]
    for i in range(dim):
        lines += [f"term{i}, g{i} = TERM(TERM_MATH, X{i}[k], P, W[{i}])",
                  f"value += term{i}"]
    if form.scale != 1.0:
        lines.append(f"value = {_literal(form.scale)} * value")
    if form.offset is not None:
        lines.append(f"value = {_literal(form.offset(dim, params))} + value")
    return LossSource((("TERM", form.term),), tuple(lines))


def pairs_source(form: Any, dim: int) -> LossSource:
    """Σᵢ pair(xᵢ, xᵢ₊₁): each coordinate its head derivative plus the tail derivative of
    the pair before it, as the float form (catalog._rosenbrock_floats)."""
    lines = ["value = 0.0"]
    for i in range(1, dim):
        lines += [f"term{i}, head{i}, tail{i} = PAIR(X{i - 1}[k], X{i}[k], W[0], W[1])",
                  f"value += term{i}",
                  f"g{i - 1} = head{i}" if i == 1 else f"g{i - 1} = head{i} + tail{i - 1}"]
    lines.append(f"g{dim - 1} = 0.0 + tail{dim - 1}")
    return LossSource((("PAIR", form.pair),), tuple(lines))


@dataclass(frozen=True, slots=True)
class Slot:
    """One coefficient of a rule's tuple after `ops`: its dtype and whether it may be None
    at some step (then it reaches the kernel as numba's Optional)."""

    dtype: str  # "float" | "bool"
    optional: bool
    shared: bool  # one value a step for every run (a (B,) table), else (B, K)


def advance_source(kernel: Callable[..., Any], n_state: int, slots: Sequence[Slot],
                   lr_shared: bool, parallel: bool, dim: int, loss: LossSource) -> str:
    """`steps`, a block of steps t0 … t1 − 1 for one chunk of runs (contiguous arrays, runs
    along the last axis), and `advance`, every chunk (prange: on every thread when
    `parallel`). A chunk's loop over its runs has no early exit and its coordinates are
    unrolled, so LLVM vectorises it. The loop is written twice:

    - the fast step, where every run of the chunk steps and none is starting, resuming or
      halting (the common case): no step counter per run (the chunk is "in step": every
      t_row is t, written back when it leaves that state or the block ends), and two passes
      (the screen, then the step with no mask on its stores: see below);
    - the general loop, guarded by each run's live flag and step counter.

    Each run's last lr is set once after the block from its last step's row of the lr table
    (the same value the step would have written)."""
    names = [f"C{j}" for j in range(len(slots))]
    flags = [f"F{j}" for j in range(len(slots))]
    parts, hoisted = [], []
    rows = []  # per-run tables: the step's row, a 1-D view made once a step
    for j, slot in enumerate(slots):
        if not slot.shared:
            rows.append(f"row{j} = {names[j]}[b]")
        value = f"{names[j]}[b]" if slot.shared else f"row{j}[first + k]"
        if slot.optional:
            value = f"({value} if {flags[j]}[b] else None)"
        if slot.shared:
            hoisted.append(f"h{j} = {value}")
            value = f"h{j}"
        parts.append(value)
    coefficients = "(NUMBA_OPS, " + ", ".join(parts) + ")"
    coords = range(dim)
    state = lambda i: ", ".join(f"S{m}_{i}[k]" for m in range(n_state)) + (  # noqa: E731
        "," if n_state == 1 else "")
    out = lambda i: ", ".join(f"a{i}_{m}" for m in range(n_state)) + (  # noqa: E731
        "," if n_state == 1 else "")
    step_lines = [f"step{i}, ({out(i)}) = KERNEL(c, g{i}, X{i}[k], ({state(i)}))"
                  for i in coords]
    step_lines += [f"S{m}_{i}[k] = a{i}_{m}" for i in coords for m in range(n_state)]
    step_lines.append("squares = 0.0")
    step_lines += [f"squares += step{i} * step{i}" for i in coords]
    step_lines.append("flips[k] += " + " + ".join(
        f"(step{i} * prev{i}[k] < 0.0)" for i in coords))
    step_lines += [f"prev{i}[k] = step{i}" for i in coords]
    step_lines += [f"X{i}[k] = X{i}[k] + step{i}" for i in coords]

    def screen(gradient_test: str, norm: str, step_test: str) -> str:
        """The stopping tests on a run's value, its gradient (`norm` checked finite) and
        its params, one expression (booleans or'ed: every test is evaluated)."""
        finite = " & ".join(["math.isfinite(value)", f"math.isfinite({norm})"]
                            + [f"math.isfinite(X{i}[k])" for i in coords])
        return (f"(not ({finite}))\n"
                "        | (value - start_value > factor * max(1.0, abs(start_value)))\n"
                f"        | ({gradient_test}) | (value <= loss_tol)\n"
                "        | (t - last_improvement[k] >= patience) | (t >= max_steps[k])\n"
                f"        | ({step_test})")

    # 1-D views of every row the loop over runs reads (LLVM vectorises unit-stride 1-D
    # accesses; a 2-D index with runtime strides kept the loop scalar)
    views = [f"X{i} = X[{i}]" for i in coords] + [f"prev{i} = prev[{i}]" for i in coords]
    views += [f"S{m}_{i} = S[{m}, {i}]" for i in coords for m in range(n_state)]
    tables = ", ".join(names + flags)
    tail = (", " + tables) if tables else ""
    squared = f'''{chr(10).join(line for line in loss.lines)}
squares = 0.0
{chr(10).join(f"squares += g{i} * g{i}" for i in coords)}
'''
    stepping = f'''if value < best[k]:
    best[k] = value
    last_improvement[k] = t
ring_row[k] = value
c = {coefficients}
{chr(10).join(step_lines)}
norm = np.sqrt(squares)
last_step_norm[k] = norm
path_length[k] += norm
'''
    general = f'''{squared}grad_norm = np.sqrt(squares)
if starting:
    first_value[k] = value
    first_gn[k] = grad_norm
if t == 0:
    f0[k] = value
start_value = f0[k]
stop = (halting | {screen("grad_norm <= grad_tol", "grad_norm",
                          "(t > 0) & (last_step_norm[k] <= step_tol)")})
stop = stop & (not resume[k])
resume[k] = False
if stop:
    park_value[k] = value
    park_gn[k] = grad_norm
    parked[k] = True
    live[k] = False
else:
{textwrap.indent(stepping, " " * 4)}    t_row[k] = t + 1
'''
    # The fast step runs in two passes over the chunk. The first evaluates the loss, keeps
    # the value and gradient in scratch rows and only screens the stopping tests, the
    # gradient's as its squared norm against grad_tol² widened by a few ulps (a superset of
    # the exact test: no square root). Where no run may stop (the common case), the second
    # steps every run with no mask on its stores; otherwise the general loop takes the step
    # with the exact tests (the chunk's step counters written back first).
    test_pass = f'''{squared}start_value = f0[k]
stopped += ({screen("squares <= grad_tol_squared", "squares", "last_step_norm[k] <= step_tol")})
V[k] = value
{chr(10).join(f"G{i}[k] = g{i}" for i in coords)}
'''
    step_pass = "value = V[k]\n" + "".join(f"g{i} = G{i}[k]\n" for i in coords) + stepping
    last_lr = ("lr_table[t_row[k] - 1 - t0]" if lr_shared
               else "lr_table[t_row[k] - 1 - t0, first + k]")
    return f'''
@njit(cache=True, nogil=True, error_model="numpy")
def steps(t0, t1, halt, X, S, live, t_row, resume, parked, max_steps, grad_tol, loss_tol,
          step_tol, patience, factor, f0, best, last_improvement, ring, path_length, flips,
          prev, last_step_norm, last_lr, first_value, first_gn, park_value, park_gn,
          lr_table, first, P, W{tail}):
    n = X.shape[1]
    window = ring.shape[0]
{chr(10).join(" " * 4 + line for line in views)}
    before = t_row.copy()
    V = np.empty(n)  # the fast step's values and gradients between its two passes
    G = np.empty(({dim}, n))
{chr(10).join(f"    G{i} = G[{i}]" for i in coords)}
    # ≥ grad_tol² (1 + 2⁻⁵²) wherever sqrt(squares) ≤ grad_tol, subnormal squares included
    grad_tol_squared = grad_tol * grad_tol * (1.0 + 1e-15) + 5e-324
    in_step = False  # every run of the chunk live, at step t, none resuming (t_row stale)
    for t in range(t0, t1):
        b = t - t0
        ring_row = ring[t % window]
        starting = t == t0
        halting = halt and starting
{chr(10).join(" " * 8 + line for line in hoisted + rows)}
        if not in_step and not starting and t > 0:
            synced = 0
            for k in range(n):
                synced += live[k] & (t_row[k] == t) & (not resume[k])
            in_step = synced == n
        if in_step:
            stopped = 0
            for k in range(n):
{textwrap.indent(test_pass, " " * 16)}
            if stopped:  # the general loop takes this step: the step counters written back
                in_step = False
                for k in range(n):
                    t_row[k] = t
            else:
                for k in range(n):
{textwrap.indent(step_pass, " " * 20)}
        if not in_step:
            for k in range(n):
                if live[k] & (t_row[k] == t):
{textwrap.indent(general, " " * 20)}
    if in_step:
        for k in range(n):
            t_row[k] = t1
    for k in range(n):
        if t_row[k] > before[k]:  # it stepped in this call: its last step is in the table
            last_lr[k] = {last_lr}

@njit(cache=True, nogil=True, parallel={parallel}, error_model="numpy")
def advance(t0, t1, halt, X, S, live, t_row, resume, parked, max_steps, grad_tol, loss_tol,
            step_tol, patience, factor, f0, best, last_improvement, ring, path_length, flips,
            prev, last_step_norm, last_lr, first_value, first_gn, park_value, park_gn,
            lr_table, P, W{tail}):
    chunk = X.shape[2]
    for ci in {"prange" if parallel else "range"}(X.shape[0]):
        steps(t0, t1, halt, X[ci], S[ci], live[ci], t_row[ci], resume[ci], parked[ci],
              max_steps[ci], grad_tol, loss_tol, step_tol, patience, factor, f0[ci], best[ci],
              last_improvement[ci], ring[ci], path_length[ci], flips[ci], prev[ci],
              last_step_norm[ci], last_lr[ci], first_value[ci], first_gn[ci], park_value[ci],
              park_gn[ci], lr_table, ci * chunk, P, W{tail})
'''


@functools.cache
def _source_of(fn: Callable[..., Any]) -> str:
    """A compiled function's source, read once a process (inspect tokenises its file:
    ~1 ms a call, on every batch)."""
    return inspect.getsource(fn)


def module_source(kernel: Callable[..., Any], n_state: int, slots: Sequence[Slot],
                  lr_shared: bool, loss: LossSource, parallel: bool, dim: int) -> str:
    """The whole module: imports, the rule's kernel and the loss's functions compiled, and
    `steps` and `advance`."""
    header = ["# optim fused kernel, generator " + VERSION,
              "import math", "import numpy as np", "from numba import njit, prange",
              "from optim_core.kernels.ops import NUMBA_OPS, TERM_MATH"]
    quoted = []
    for alias, fn in (("KERNEL", kernel), *loss.functions):
        if "<" in fn.__qualname__:
            raise FusedUnavailable(f"{fn.__qualname__} is not a module-level function")
        header += [f"from {fn.__module__} import {fn.__name__} as _{alias}",
                   f"{alias} = njit(error_model='numpy')(_{alias})"]
        quoted.append(_source_of(fn))
    digest = hashlib.sha256("\n".join(quoted).encode()).hexdigest()[:16]
    return "\n".join([*header, f"# sources {digest}",
                      advance_source(kernel, n_state, slots, lr_shared, parallel, dim, loss)])


_LOCK = threading.Lock()
_LOADED: dict[str, ModuleType] = {}
_COMPILED: set[str] = set()
# LLVM's loop vectoriser gives up on a loop that needs more than 128 run-time checks that its
# arrays do not overlap; the loop over runs touches ~30 per-run arrays (more with more
# coordinates), ~450 pairs. Its cost model still weighs the checks against the trip count.
MEMORY_CHECKS = 16384
_OPTIONS_SET = False


def _vectoriser_options() -> None:
    """Raise the vectoriser's limit on run-time memory checks, once a process, before the
    first compile (an LLVM option: it applies to everything numba compiles here)."""
    global _OPTIONS_SET
    if not _OPTIONS_SET:
        import llvmlite.binding as llvm

        llvm.set_option("", f"-vectorize-memory-check-threshold={MEMORY_CHECKS}")
        _OPTIONS_SET = True


def is_compiled(source: str) -> bool:
    """Whether this source's `advance` has been compiled: run in this process, or in numba's
    disk cache beside its file (another process, an earlier run)."""
    name = _name(source)
    return name in _COMPILED or any((cache_dir() / "__pycache__").glob(f"{name}.advance-*.nbi"))


def mark_compiled(module: ModuleType) -> None:
    """`module.advance` has run once: later batches of its shape compile nothing."""
    _COMPILED.add(module.__name__)


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
        _vectoriser_options()
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
