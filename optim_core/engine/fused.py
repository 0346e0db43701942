"""The fused path: the engine loop of loop.py with each block of steps in one compiled kernel.

A block runs steps t0 … t1 − 1 for every live run, step-major within cache-sized chunks of
runs (numba's prange over the chunks: both cores for one request when allowed). Inside, a run
does what the vectorised loop does at each step, in its order: evaluate, test, best and ring,
step, bookkeeping. A run whose stopping tests may hold is *parked* at that step (not stepped);
after the block, the tests themselves (stopping.check_termination, one definition for every
path) give each parked run its status, and the rare one that goes on (a sum that overflowed
in the kernel's screen) resumes where it stood. Blocks end where the engine must look from
outside: a recorded step, a progress or cancel point (every `progress_every` steps), so
deadlines, cancellation, progress and recording behave as in the vectorised loop, a block
apart at most for the deadline.

A rule's per-step coefficients (bias corrections, scheduled values) are computed by the rule's
own `coefficients` with the array ops, exactly as the vectorised loop does, once per step
for the block: a coefficient shared by the runs costs a float, one that differs per run (a
sweep) a column.

Same numbers as the vectorised loop: same operations in the same order (numba adds no fused
multiply-adds without fastmath), except the transcendental functions of a loss (numba calls
libm, NumPy its SIMD loops: the last bit or two) and the sums of more than two squares
(NumPy's einsum may pair them differently): the float path's tolerance.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optim_core import kernels
from optim_core.engine.allocator import reuse_large_blocks
from optim_core.engine.groups import RunGroup
from optim_core.engine.recording import Recorder, RecordSpec
from optim_core.engine.results import (
    WRITTEN,
    RunBatch,
    empty_results,
    run_batch,
    write_rows,
)
from optim_core.engine.status import Reason, Status
from optim_core.engine.stopping import StopCriteria, check_termination, steps_done
from optim_core.kernels import FusedUnavailable, codegen
from optim_core.losses.base import Loss
from optim_core.optimizers.base import ARRAY_OPS
from optim_core.types import Array

# runs advanced together step by step: a chunk's ~30 per-run rows (~30 KB) stay in L1. On
# two threads 128 beat 512 by 1.2–1.3× (Adam, 2-D Rosenbrock, 4,096–65,536 runs); below 64
# LLVM's cost model no longer vectorises the loop over runs (3× slower)
CHUNK_RUNS = 128
MAX_DIM = 16  # coordinates are unrolled in the generated code; larger d: the NumPy engine
PARALLEL_MIN_RUNS = 1024  # below this, one thread (a parallel launch costs ~10 µs a block;
# at 1,024 runs two threads took 1,000 Adam steps in 5 ms against 7.5 on one)
MAX_BLOCK = 256  # steps a block at most (the coefficient tables' length)
SEGMENT_RUNS, MAX_SEGMENTS = 4 * CHUNK_RUNS, 64  # when a sweep runs as segments (see _split)
ProgressFn = Callable[[int, int, int], None]


def loss_source(loss: Loss) -> tuple[codegen.LossSource, Any, Array]:
    """The loss's fused form and its P and W arguments; FusedUnavailable when it has none."""
    expression = getattr(loss, "_expression", None)
    if getattr(loss, "kind", None) == "expression":
        expression = loss
    if expression is not None:
        floats = getattr(expression, "_value_grad_floats", None)
        if floats is None:
            raise FusedUnavailable("this expression has a function with no float form")
        return codegen.expression_source(floats), 0.0, np.zeros(1)
    spec = getattr(loss, "spec", None)
    form = getattr(spec, "form", None)
    if form is None or getattr(loss, "stochastic", False):
        raise FusedUnavailable(f"no fused form of the {getattr(loss, 'kind', '?')} loss")
    params = dict(loss.params)  # type: ignore[attr-defined]
    if hasattr(form, "term"):
        weights = (np.zeros(loss.dim) if form.weights is None
                   else np.asarray(form.weights(loss.dim, params), dtype=float))
        return codegen.separable_source(form, loss.dim, params), 0.0, weights
    a, b = form.names
    return codegen.pairs_source(form, loss.dim), 0.0, np.array([params[a], params[b]])


def _takes(loss: Loss, groups: Sequence[RunGroup], record: RecordSpec | None,
           bounds: Array | None) -> bool:
    """The batch's shape allows the fused path (the loss's form is checked apart)."""
    if bounds is not None or loss.stochastic or loss.dim > MAX_DIM:
        return False
    if any(g.rule.elementwise is None for g in groups):
        return False
    return record is None or not record.enabled or set(record.fields) <= {
        "params", "loss", "grad_norm", "lr", "step_size", "evals"}


def covers(loss: Loss, groups: Sequence[RunGroup], record: RecordSpec | None,
           bounds: Array | None) -> bool:
    """Whether the fused path can run this batch at all (numba installed or not)."""
    if not _takes(loss, groups, record, bounds):
        return False
    try:
        loss_source(loss)
    except FusedUnavailable:
        return False
    return True


def choose(mode: str, loss: Loss, groups: Sequence[RunGroup], k: int, max_steps: int,
           record: RecordSpec | None, bounds: Array | None) -> bool:
    """Whether the plan takes the fused path (decided once for the whole batch, so every
    shard computes the same way). `numba` wherever it covers the batch (an error when numba
    is missing), `auto` for large batches, compiling a new kernel only when the batch's work
    pays for it, `numpy` never."""
    if mode == "numpy" or not covers(loss, groups, record, bounds):
        return False
    if mode == "numba":
        kernels.require_numba()
        return True
    if not kernels.numba_available() or k < kernels.FUSED_MIN_RUNS:
        return False
    if k * max_steps * max(loss.dim, 1) >= kernels.COMPILE_PAYS_RUN_STEPS:
        return True
    try:
        source = loss_source(loss)[0]
        modules = tuple(_first_block_source(source, g, k, loss.dim)
                        for g, _ in uniform_segments(groups))
    except FusedUnavailable:
        return False
    if all(codegen.is_compiled(module) for module in modules):
        return True
    _warm_later(loss, groups, k, modules)  # this batch on NumPy; the next of its shape fused
    return False


def uniform_segments(groups: Sequence[RunGroup]) -> list[tuple[RunGroup, int]]:
    """The groups as the kernels run them, each with its first row: a group whose runs
    differ in their hyperparameters (a sweep: one grid point after another) split into its
    runs of equal settings, so each segment's coefficients are one number a step, not a
    (steps, runs) table (a 16 × 4,096 sweep spent 7 of its 10 s making those). The
    coefficients are the same bits either way (ARRAY_OPS: a column and a float round alike,
    powers included). A group stays whole where its stretches are short (under SEGMENT_RUNS
    on average: a segment of one chunk would keep the second thread idle, each segment being
    a kernel call of its own) or many (over MAX_SEGMENTS: each costs its own launch and
    bookkeeping a block)."""
    out, begin = [], 0
    for group in groups:
        out += [(part, begin + first) for part, first in _split(group)]
        begin += group.size
    return out


def _split(group: RunGroup) -> list[tuple[RunGroup, int]]:
    varying = [c for c in group.columns.values()
               if isinstance(c, np.ndarray) and c.shape[0] == group.size and c.shape[0] > 1
               and not (c == c[:1]).all()]
    if not varying:
        return [(group, 0)]
    changes = np.zeros(group.size, dtype=bool)
    for column in varying:
        rows = column.reshape(group.size, -1)
        changes[1:] |= (rows[1:] != rows[:-1]).any(axis=1)
    firsts = np.flatnonzero(changes).tolist()
    count = len(firsts) + 1
    if count > MAX_SEGMENTS or count * SEGMENT_RUNS > group.size:
        return [(group, 0)]
    bounds = [0, *firsts, group.size]
    out = []
    for first, end in itertools.pairwise(bounds):
        keep = np.zeros(group.size, dtype=bool)
        keep[first:end] = True
        out.append((group.take(keep), first))
    return out


def _first_block_source(source: codegen.LossSource, group: RunGroup, k: int, dim: int) -> str:
    """The module a group's first block of steps runs (what a warm-up compiles)."""
    slots, _, lrs = _pattern(group, 0, 1)
    return _source_for(source, group, slots, _shared(lrs), k, dim)


_WARMING: set[tuple[str, ...]] = set()
_WARMING_LOCK = threading.Lock()


def _warm_later(loss: Loss, groups: Sequence[RunGroup], k: int, modules: tuple[str, ...]
                ) -> None:
    """Compile the kernels of a batch of this shape (`modules`, their sources) on a
    background thread (one step of the batch from the origin, answers discarded), once: a
    batch too small to pay for a compile runs on NumPy, and the next ones of its shape find
    the kernel ready. The compile holds the GIL for a second or two, once per new rule, loss
    and shape."""
    with _WARMING_LOCK:
        if modules in _WARMING:
            return
        _WARMING.add(modules)
    starts = np.zeros((k, loss.dim))
    batch = list(groups)

    def warm() -> None:
        from optim_core.engine.loop import RATE_WINDOW  # loop imports this module
        try:
            run_fused(loss, batch, starts, max_steps=1, stop=StopCriteria(),
                      record=RecordSpec(enabled=False), deadline=None, cancel=None,
                      progress=None, progress_every=50, rate_window=RATE_WINDOW,
                      threads=kernels.threads())
        except Exception:  # noqa: BLE001 - a warm-up only saves time; the batch ran anyway
            logging.getLogger(__name__).exception("fused kernel warm-up failed")

    threading.Thread(target=warm, name="optim-kernel-warm-up", daemon=True).start()


# -- the coefficient tables ------------------------------------------------------------------
def _pattern(group: RunGroup, t0: int, t1: int) -> tuple[tuple[codegen.Slot, ...],
                                                         list[tuple[Any, ...]], list[Any]]:
    """Each step's coefficients (without ops) and lr, and the slots' kinds over the block."""
    rule = group.rule.elementwise
    assert rule is not None
    steps, lrs = [], []
    for t in range(t0, t1):
        hp = group.hyper_at(t)
        steps.append(tuple(rule.coefficients(ARRAY_OPS, hp, t))[1:])
        lrs.append(getattr(hp, "lr", math.nan))
    slots = []
    for j in range(len(steps[0])):
        values = [c[j] for c in steps]
        present = [v for v in values if v is not None]
        dtype = "bool" if present and all(
            isinstance(v, bool | np.bool_) or (isinstance(v, np.ndarray) and v.dtype == bool)
            for v in present) else "float"
        slots.append(codegen.Slot(dtype, len(present) < len(values), _shared(present)))
    return tuple(slots), steps, lrs


def _power_by_step(base: Any, exponent: Any) -> Any:
    """np.power one step at a time where base or exponent holds a step axis (B, …): NumPy's
    vectorised pow and its one-element form differ in the last bit now and then, and the
    NumPy engine raises one step's numbers to their powers."""
    if np.ndim(base) < 3 and np.ndim(exponent) < 3:
        return np.power(base, exponent)
    if np.ndim(base) == 0 and np.size(exponent) == np.shape(exponent)[0]:
        # the common case (a shared β to the step number): from the memo
        powers = [_scalar_power(float(base), e) for e in np.ravel(exponent).tolist()]
        return np.array(powers).reshape(-1, 1, 1)
    n = (base if np.ndim(base) == 3 else exponent).shape[0]

    def at(x: Any, i: int) -> Any:
        if np.ndim(x) < 3:
            return x
        return x[i].item() if x[i].size == 1 else x[i]  # a step's scalar as the engine's

    powers = [np.asarray(np.power(at(base, i), at(exponent, i))) for i in range(n)]
    stacked = np.stack(powers)
    return stacked.reshape(n, 1, 1) if stacked.ndim == 1 else stacked


@functools.lru_cache(maxsize=1 << 16)
def _scalar_power(base: float, exponent: float) -> Any:
    """np.power of two numbers, remembered: blocks and batches raise the same β to the same
    step numbers (~1.5 µs a NumPy call on scalars)."""
    return np.power(base, exponent)


# the ops of a whole block's coefficients: the array ops, powers step by step
BLOCK_OPS = dataclasses.replace(ARRAY_OPS, power=_power_by_step)


def _block_tables(group: RunGroup, t0: int, t1: int, size: int
                  ) -> tuple[tuple[codegen.Slot, ...], list[Array], Array]:
    """The block's slots, coefficient tables (then their flags) and lr table. An unscheduled
    group of a rule that allows it computes every step in one call of its coefficients (t a
    column of steps); the tables are those of _pattern step by step, to the bit."""
    rule = group.rule.elementwise
    assert rule is not None
    if group.scheduled or not rule.by_block:
        slots, steps, lrs = _pattern(group, t0, t1)
        return slots, _tables(slots, steps, size), _table(lrs, size, float)
    b = t1 - t0
    hp = group.hyper_at(t0)
    values = tuple(rule.coefficients(BLOCK_OPS, hp, np.arange(t0, t1).reshape(b, 1, 1)))[1:]
    slots, tables, flags = [], [], []
    for value in values:
        if value is None:  # absent at every step
            slots.append(codegen.Slot("float", True, True))
            tables.append(np.zeros(b))
            flags.append(np.zeros(b, dtype=bool))
            continue
        slot, table = _block_table(value, b, size)
        slots.append(slot)
        tables.append(table)
        flags.append(np.ones(b, dtype=bool))
    lr = np.asarray(getattr(hp, "lr", math.nan), dtype=float)
    return tuple(slots), tables + flags, _block_table(lr, b, size)[1]


def _block_table(value: Any, b: int, size: int) -> tuple[codegen.Slot, Array]:
    """One coefficient over the block: (B, …) with a step axis, else the same every step."""
    array = np.asarray(value)
    dtype = bool if array.dtype == bool else float
    rows = (array.reshape(b, -1) if array.ndim == 3
            else np.broadcast_to(array.reshape(1, -1), (b, array.size)))
    shared = rows.shape[1] == 1 or bool((rows == rows[:, :1]).all())
    table = (np.array(rows[:, 0], dtype=dtype) if shared
             else np.array(np.broadcast_to(rows, (b, size)), dtype=dtype))
    return codegen.Slot("bool" if dtype is bool else "float", False, shared), table


def _shared(values: Sequence[Any]) -> bool:
    """Whether every run holds the same value at each step (a flag column of one value).
    A column a step shares with the step before (an unscheduled hyperparameter: the same
    array object every step) is checked once."""
    seen: set[int] = set()
    for v in values:
        if not isinstance(v, np.ndarray) or v.size == 1 or id(v) in seen:
            continue
        if not (v == v.flat[0]).all():
            return False
        seen.add(id(v))
    return True


def _table(values: Sequence[Any], size: int, dtype: type, shared: bool | None = None
           ) -> Array:
    """(B,) when every run shares each step's value, else (B, size): one step a row."""
    if shared if shared is not None else _shared([v for v in values if v is not None]):
        return np.array([0 if v is None else np.asarray(v).flat[0] for v in values],
                        dtype=dtype)
    table = np.zeros((len(values), size), dtype=dtype)
    for i, v in enumerate(values):
        if v is not None:
            table[i] = np.asarray(v, dtype=dtype).reshape(-1) if np.ndim(v) else v
    return table


def _tables(slots: Sequence[codegen.Slot], steps: list[tuple[Any, ...]], size: int
            ) -> list[Array]:
    out, flags = [], []
    for j, slot in enumerate(slots):
        values = [c[j] for c in steps]
        out.append(_table(values, size, bool if slot.dtype == "bool" else float, slot.shared))
        flags.append(np.array([v is not None for v in values]))
    return out + flags


def _source_for(source: codegen.LossSource, group: RunGroup, slots: tuple[codegen.Slot, ...],
                lr_shared: bool, k: int, dim: int) -> str:
    rule = group.rule.elementwise
    assert rule is not None
    return codegen.module_source(rule.kernel, len(rule.state), slots, lr_shared, source,
                                 parallel=k >= PARALLEL_MIN_RUNS, dim=dim)


# The kernel's per-run arrays, chunk-major: (chunks, …, CHUNK) so each chunk's slice is
# contiguous. Name → (extra axes, dtype, fill); X, S, live and max_steps are made from the
# batch itself (_Group.make).
_RUN_ARRAYS: dict[str, tuple[str, type, Any]] = {
    "t_row": ("", np.int64, 0), "resume": ("", bool, False),
    "parked": ("", bool, False), "f0": ("", float, np.nan),
    "best": ("", float, np.inf), "last_improvement": ("", np.int64, 0),
    "ring": ("window", float, np.nan), "path_length": ("", float, 0.0),
    "flips": ("", np.int64, 0), "prev": ("d", float, 0.0),
    "last_step_norm": ("", float, np.nan), "last_lr": ("", float, np.nan),
    "first_value": ("", float, np.nan), "first_gn": ("", float, np.nan),
    "park_value": ("", float, np.nan), "park_gn": ("", float, np.nan),
}
_KERNEL_ORDER = ("X", "S", "live", "t_row", "resume", "parked", "max_steps")
_AFTER_TESTS = ("f0", "best", "last_improvement", "ring", "path_length", "flips", "prev",
                "last_step_norm", "last_lr", "first_value", "first_gn", "park_value",
                "park_gn")


@dataclass(slots=True)
class _Group:
    """One group's runs (global rows start … end − 1) in chunk-major arrays, and its kernels."""

    group: RunGroup
    start: int
    end: int
    chunk: int
    arrays: dict[str, Array]
    lr_block: Array | None = None  # the current block's lr table: (B,) or (B, K_g)
    block_start: int = 0
    tables: tuple[tuple[codegen.Slot, ...], list[Array]] | None = None  # the block's
    # the tables of steps span[0] … span[1] − 1 (slots, tables, lr), cut for the blocks
    # they cover
    span: tuple[int, int, tuple[codegen.Slot, ...], list[Array], Array] | None = None
    modules: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # by pattern

    @classmethod
    def make(cls, group: RunGroup, start: int, starts: Array, max_steps: Array,
             window: int) -> _Group:
        rule = group.rule.elementwise
        assert rule is not None
        size, d = starts.shape
        chunk = max(1, min(CHUNK_RUNS, size))
        count = -(-size // chunk)
        padded = count * chunk

        def chunked(rows: Array) -> Array:  # (padded, *axes) → (count, *axes, chunk)
            shaped = rows.reshape(count, chunk, *rows.shape[1:])
            return np.ascontiguousarray(np.moveaxis(shaped, 1, -1))

        arrays = {}
        for name, (axis, dtype, fill) in _RUN_ARRAYS.items():
            extra = {"": (), "d": (d,), "window": (window,)}[axis]
            arrays[name] = np.full((count, *extra, chunk), fill, dtype=dtype)
        x = np.zeros((padded, d))
        x[:size] = starts
        arrays["X"] = chunked(x)
        state = np.empty((padded, len(rule.state), d))
        for m, value in enumerate(rule.state.values()):
            state[:, m] = value
        arrays["S"] = chunked(state)
        live = np.zeros(padded, dtype=bool)
        live[:size] = True
        arrays["live"] = chunked(live)
        steps = np.zeros(padded, dtype=np.int64)
        steps[:size] = max_steps
        arrays["max_steps"] = chunked(steps)
        return cls(group, start, start + size, chunk, arrays)

    def flat(self, name: str) -> Array:
        """A (chunks, chunk) array as one row per run (a view; padding rows at the end)."""
        return self.arrays[name].reshape(-1)

    def rows(self, name: str, rows: Array) -> Array:
        """(len(rows), …) values of a per-run array with extra axes, for local rows (a copy):
        the array turned run-major, then its rows taken; indexing the chunk and run axes
        together gathers element by element (2× slower for X at 4,096 runs)."""
        chunked = self.arrays[name]
        by_run = np.moveaxis(chunked, -1, 1).reshape(-1, *chunked.shape[1:-1])
        every = rows.size == self.end - self.start and rows.size and rows[-1] == rows.size - 1
        if every and not np.may_share_memory(by_run, chunked):  # all (rows are sorted)
            return by_run[:rows.size]
        return by_run.take(rows, axis=0)

    def ring_into(self, out: Array) -> None:
        """Every run's loss ring, run-major, into `out` (size, window)."""
        ring, chunk = self.arrays["ring"], self.chunk  # (count, window, chunk)
        full = out.shape[0] // chunk
        if full:
            np.copyto(out[:full * chunk].reshape(full, chunk, -1), np.moveaxis(ring[:full], 1, 2))
        rest = out.shape[0] - full * chunk
        if rest:
            np.copyto(out[full * chunk:], ring[full, :, :rest].T)

    def live_rows(self) -> Array:
        return np.flatnonzero(self.flat("live"))


def run_fused(loss: Loss, groups: Sequence[RunGroup], starts: Array, *, max_steps: int | Array,
              stop: StopCriteria, record: RecordSpec, deadline: float | None,
              cancel: Callable[[], bool] | None, progress: ProgressFn | None,
              progress_every: int, rate_window: int, threads: int | None = None) -> RunBatch:
    """Every run of `starts` on the fused kernels (see the module docstring)."""
    kernels.require_numba()
    began = time.perf_counter()
    k, d = starts.shape
    reuse_large_blocks(k, rate_window)  # the (K, window) loss rings: ~4 of 18 ms at K = 4,096
    groups = list(groups)
    every = max(1, progress_every)
    row_max_steps = np.broadcast_to(np.asarray(max_steps, dtype=np.int64), (k,)).copy()
    longest = int(row_max_steps.max()) if k else 0
    source, p_arg, w_arg = loss_source(loss)
    results = empty_results(k, d, rate_window)
    results["final_params"][:] = starts
    finals = {"params": results["final_params"], "loss": results["final_loss"],
              "grad_norm": results["final_grad_norm"], "lr": results["final_lr"],
              "step_size": results["final_step_size"], "evals": results["final_evals"]}
    recorder = Recorder(k, d, record, longest)
    tests = (stop.grad_tol, -math.inf if stop.loss_tol is None else stop.loss_tol,
             -math.inf if stop.step_tol is None else stop.step_tol,
             math.inf if stop.patience is None else float(stop.patience),
             stop.divergence_factor)
    parts = [_Group.make(g, begin, np.asarray(starts[begin:begin + g.size], dtype=float),
                         row_max_steps[begin:begin + g.size], rate_window)
             for g, begin in uniform_segments(groups)]
    previous_threads = _set_threads(threads)
    compiling: list[float] = []
    try:
        with _compile_timer(compiling):
            t = 0
            while any(p.flat("live").any() for p in parts):
                t1 = _block_end(t, every, recorder, longest)
                late = deadline is not None and time.monotonic() >= deadline
                cancelled = not late and cancel is not None and t % every == 0 and cancel()
                halt = bool(late or cancelled)
                due = recorder.due(t)
                recorded = [(p, p.live_rows()) for p in parts] if due else []
                recorded_params = [p.rows("X", rows) for p, rows in recorded]
                recorded_steps = [p.flat("last_lr")[rows] for p, rows in recorded]
                for part in parts:
                    _advance(part, source, t, t1, halt, k, tests, p_arg, w_arg, longest + 1)
                if due:
                    _write_record(recorder, t, recorded, recorded_params, recorded_steps)
                for part in parts:
                    while part.flat("parked").any():
                        going_on = _settle(part, halt, bool(cancelled), stop, results, recorder,
                                           finals)
                        if going_on.size == 0:
                            break
                        part.flat("live")[going_on] = True
                        part.flat("resume")[going_on] = True
                        _advance(part, source, part.block_start, t1, False, k, tests, p_arg,
                                 w_arg, longest + 1, reuse=True)
                t = t1
                active = sum(int(p.flat("live").sum()) for p in parts)
                if progress is not None and t % every == 0 and active:
                    progress(t, longest, active)
    finally:
        _set_threads(previous_threads)
    if progress is not None:
        progress(steps_done(results["status"], results["steps"], longest), longest, 0)
    trajectories = (recorder.assemble(results["steps"], finals) if recorder.spec.enabled
                    else None)
    batch = run_batch(results, starts=starts, groups=groups, counters={},
                      trajectories=trajectories, elapsed_s=time.perf_counter() - began,
                      engine_steps=int(results["steps"].max()) if k else 0, stochastic=False)
    batch.path, batch.compile_s = "fused", sum(compiling)
    return batch


def _compile_timer(seconds: list[float]) -> Any:
    """Adds the seconds numba spends compiling (or loading from its cache) during the batch
    to `seconds`, from numba's own compile events (process-wide: a batch compiling on
    another thread at the same time counts here too)."""
    from numba.core import event
    return event.install_timer("numba:compile", seconds.append)


def _write_record(recorder: Recorder, t: int, recorded: list[tuple[_Group, Array]],
                  recorded_params: list[Array], recorded_steps: list[Array]) -> None:
    """Step t of every run live at its start (params and the last step's α taken before
    the block; loss and gradient norm the kernel kept from the block's first step)."""
    rows = np.concatenate([p.start + r for p, r in recorded])
    lr = np.concatenate([
        (np.full(r.size, p.lr_block[0]) if p.lr_block.ndim == 1 else p.lr_block[0][r])
        if p.lr_block is not None and p.block_start == t else np.full(r.size, np.nan)
        for p, r in recorded])
    recorder.write(t, rows, {
        "params": np.concatenate(recorded_params),
        "loss": np.concatenate([p.flat("first_value")[r] for p, r in recorded]),
        "grad_norm": np.concatenate([p.flat("first_gn")[r] for p, r in recorded]),
        "lr": lr, "step_size": np.concatenate(recorded_steps),
        "evals": float(t + 1)})


def _set_threads(threads: int | None) -> int | None:
    if threads is None:
        return None
    import numba
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return previous


def _block_end(t: int, every: int, recorder: Recorder, longest: int) -> int:
    """The next step the loop must see from outside: a progress or cancel point, a recorded
    step, or one past the longest run."""
    end = min((t // every + 1) * every, longest + 1, t + MAX_BLOCK)
    if recorder.spec.enabled:
        stride = recorder.stride
        end = min(end, (t // stride + 1) * stride)
    return max(end, t + 1)


def _advance(part: _Group, source: codegen.LossSource, t0: int, t1: int, halt: bool, k: int,
             tests: tuple[float, ...], p_arg: Any, w_arg: Array, horizon: int, *,
             reuse: bool = False) -> None:
    """One group's block: its coefficient tables (kept for a resumed run), then the kernel."""
    if not part.flat("live").any():
        return
    group, size = part.group, part.end - part.start
    if not reuse:
        slots, tables, part.lr_block = _spanned_tables(part, t0, t1, size, horizon)
        part.block_start = t0
        part.tables = (slots, tables)
    assert part.tables is not None and part.lr_block is not None
    slots, tables = part.tables
    pattern = (slots, part.lr_block.ndim == 1)
    module = part.modules.get(pattern)
    if module is None:
        dim = part.arrays["X"].shape[1]
        module = part.modules[pattern] = codegen.load(
            _source_for(source, group, *pattern, k, dim))
    a = part.arrays
    module.advance(part.block_start if reuse else t0, t1, halt,
                   *(a[name] for name in _KERNEL_ORDER), *tests,
                   *(a[name] for name in _AFTER_TESTS), part.lr_block, p_arg, w_arg, *tables)
    codegen.mark_compiled(module)


def _spanned_tables(part: _Group, t0: int, t1: int, size: int, horizon: int
                    ) -> tuple[tuple[codegen.Slot, ...], list[Array], Array]:
    """The block's tables, cut from tables computed for up to MAX_BLOCK steps ahead (short
    blocks, as recording makes them, would otherwise pay ~0.2 ms a block for their own). An
    unscheduled group of a rule that allows it only: its tables hold each step's numbers
    whatever the span (the step-by-step path's slot kinds may depend on the span)."""
    group = part.group
    rule = group.rule.elementwise
    assert rule is not None
    if group.scheduled or not rule.by_block:
        return _block_tables(group, t0, t1, size)
    span = part.span
    if span is None or not span[0] <= t0 < t1 <= span[1]:
        end = max(t1, min(t0 + MAX_BLOCK, horizon))
        span = part.span = (t0, end, *_block_tables(group, t0, end, size))
    first, slots, tables, lr = span[0], span[2], span[3], span[4]
    cut = slice(t0 - first, t1 - first)
    return slots, [table[cut] for table in tables], lr[cut]


def _settle(part: _Group, halted: bool, cancelled: bool, stop: StopCriteria,
            results: dict[str, Array], recorder: Recorder, finals: dict[str, Array]) -> Array:
    """The parked runs' verdicts (stopping.check_termination): those that stop are finished;
    returns the local rows that go on."""
    rows = np.flatnonzero(part.flat("parked"))
    part.flat("parked")[rows] = False
    t = part.flat("t_row")[rows]
    values, grad_norms = part.flat("park_value")[rows], part.flat("park_gn")[rows]
    params = part.rows("X", rows)
    status, reason = check_termination(
        stop, t=t, max_steps=part.flat("max_steps")[rows], values=values,
        grad_norms=grad_norms, params=params, f0=part.flat("f0")[rows],
        last_step_norm=part.flat("last_step_norm")[rows],
        last_improvement=part.flat("last_improvement")[rows], may_converge=None)
    running = status == Status.RUNNING
    if halted:
        status[running] = Status.CANCELLED if cancelled else Status.TIME_LIMIT
        reason[running] = Reason.CANCELLED if cancelled else Reason.TIME_LIMIT
        running[:] = False
    ended = ~running
    done = rows[ended]
    if done.size:
        t_done = t[ended]
        every = done.size == part.end - part.start  # then done is every local row, in order
        target: Array | slice = slice(part.start, part.end) if every else part.start + done
        if every:  # transposed straight into the results (no (K, window) temporary)
            ring = results["recent_losses"][target]
            part.ring_into(ring)
        else:
            ring = part.rows("ring", done)  # (n, window): a copy
        ring[np.arange(done.size), t_done % ring.shape[1]] = values[ended]
        at = t_done - part.block_start
        assert part.lr_block is not None
        lr = part.lr_block[at] if part.lr_block.ndim == 1 else part.lr_block[at, done]
        write_rows(results, target, {
            "status": status[ended], "reason": reason[ended], "steps": t_done,
            "final_params": params[ended], "final_loss": values[ended],
            "final_grad_norm": grad_norms[ended], "final_lr": lr,
            "initial_loss": part.flat("f0")[done],
            "best_loss": np.fmin(part.flat("best")[done], values[ended]),
            "path_length": part.flat("path_length")[done],
            "flips": part.flat("flips")[done].astype(float),
            "recent_losses": WRITTEN if every else ring,
            "hess_evals": 0.0, "final_step_size": part.flat("last_lr")[done],
            "final_evals": t_done + 1.0})
        recorder.retire(part.start + done, results["steps"], finals)
    return rows[running]
