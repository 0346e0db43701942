"""The engine loop (scipy's `_loop` shape): evaluate the active rows, check stopping, record,
step every group, compress when rows stop.

Runs under np.errstate(over/invalid/divide="ignore"): non-finite numbers become DIVERGED
statuses, never exceptions. The deadline (a time.monotonic() value), the cancel flag and the
progress callback come in as arguments; the core never reads settings or clocks of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from optim_core import kernels
from optim_core.engine import fused, small
from optim_core.engine.allocator import reuse_large_blocks
from optim_core.engine.groups import RunGroup
from optim_core.engine.recording import Recorder, RecordSpec
from optim_core.engine.results import RunBatch, empty_results, run_batch, write_rows
from optim_core.engine.status import RULE_STATUS, Reason, Status
from optim_core.engine.stopping import (
    StopCriteria,
    blow_up_threshold,
    check_termination,
    screen,
    steps_done,
)
from optim_core.kernels import FusedUnavailable
from optim_core.losses.base import Loss
from optim_core.optimizers.base import StepContext
from optim_core.types import Array

RATE_WINDOW = 100  # the convergence rate looks at most at the last 100 losses
# Small-array NumPy steps hold the GIL almost continuously; a host running the engine on a
# worker thread (the service's event loop) was measured starved for up to 0.8 s per request.
# Sleeping 0 s every 16 steps releases the GIL; it is done only off the main thread (the
# host's case), since on a busy machine each sleep also gives up the CPU for a while.
YIELD_EVERY = 16
ProgressFn = Callable[[int, int, int], None]  # (steps_done, steps_total, runs_active)


def run(
    loss: Loss,
    groups: Sequence[RunGroup],
    starts: Array,
    *,
    max_steps: int | Array = 1000,
    stop: StopCriteria | None = None,
    record: RecordSpec | None = None,
    seed: int | None = None,
    streams: Array | None = None,
    deadline: float | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: ProgressFn | None = None,
    progress_every: int = 50,
    eval_every: int = 10,
    path: str = "auto",
    bounds: Array | None = None,
) -> RunBatch:
    """Advance every run until it stops; `starts` holds one row per run, ordered by group.

    `max_steps` is one number or one per run (K,). Stochastic losses draw each run's
    minibatches from the stream (seed, streams[k]) (default streams[k] = k), so a run is
    reproducible on its own and runs that share a stream see the same minibatches.

    `path` picks the implementation: "vectorised" (the (K, d) loop), "floats" (each run on
    Python floats; first-order rules on deterministic losses only), "fused" (compiled
    kernels, engine/fused.py; the vectorised loop where numba or a fused form is missing)
    or "auto", which takes
    the float path for small batches (K·(d + 4) ≤ small.SMALL_WORK), where it is faster
    (~13× at K = 1). Both give the same results; engine/small.py names the one by-design
    difference.
    """
    starts = np.asarray(starts, dtype=float)
    groups = list(groups)
    k, d = starts.shape
    if path not in ("auto", "floats", "vectorised", "fused"):
        raise ValueError(f"path must be auto, floats, vectorised or fused, not {path!r}")
    use_floats = path == "floats" or (path == "auto" and bounds is None and small.fits(
        loss, groups, k, d, record))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        if path == "fused":
            try:
                return fused.run_fused(  # its RunBatch says path "fused" and its compile time
                    loss, groups, starts, max_steps=max_steps, stop=stop or StopCriteria(),
                    record=record or RecordSpec(), deadline=deadline, cancel=cancel,
                    progress=progress, progress_every=progress_every, rate_window=RATE_WINDOW,
                    threads=kernels.threads())
            except FusedUnavailable:  # numba missing where a shard runs: same answers, slower
                pass
        if use_floats:
            batch = _run_floats(loss, groups, starts, max_steps, stop or StopCriteria(),
                                record or RecordSpec(), deadline, cancel, progress,
                                progress_every)
            batch.path = "floats"
            return batch
        reuse_large_blocks(k, d)
        batch = _Loop(loss, groups, starts, max_steps, stop or StopCriteria(),
                      record or RecordSpec(), seed, streams, deadline, cancel, progress,
                      progress_every, eval_every, bounds).run()
        batch.path = "vectorised"
        return batch


def _run_floats(loss: Loss, groups: list[RunGroup], starts: Array, max_steps: int | Array,
                stop: StopCriteria, record: RecordSpec, deadline: float | None,
                cancel: Callable[[], bool] | None, progress: ProgressFn | None,
                progress_every: int) -> RunBatch:
    began = time.perf_counter()
    k, d = starts.shape
    if sum(g.size for g in groups) != k:
        raise ValueError(f"groups hold {sum(g.size for g in groups)} runs but starts has {k} rows")
    if loss.stochastic or any(g.rule.elementwise is None for g in groups):
        raise ValueError("the float path takes first-order rules on deterministic losses only")
    row_max_steps = np.broadcast_to(np.asarray(max_steps, dtype=np.int64), (k,))
    results, trajectories = small.run_small(
        loss, groups, starts, max_steps=row_max_steps, stop=stop, record=record,
        deadline=deadline, cancel=cancel, progress=progress, progress_every=progress_every,
        rate_window=RATE_WINDOW, yield_every=YIELD_EVERY)
    steps = results["steps"]
    return run_batch(results, starts=starts, groups=groups, counters={},
                     trajectories=trajectories, elapsed_s=time.perf_counter() - began,
                     engine_steps=int(steps.max()) if k else 0, stochastic=False)


def _state_rows(state: tuple[Array, ...], keep: Array) -> tuple[Array, ...]:
    """A rule's state for the rows that go on: a plain tuple (rules written once) or the
    rule's NamedTuple (Newton, the classical rules), whose SLOT_MAJOR fields hold their rows
    on axis 1. `take` with indices, not a mask: NumPy's fancy indexing copies an array of
    (K, d) rows one row at a time (~20 µs at K = 1,024, d = 2; `take` ~1.5)."""
    names = getattr(state, "_fields", (None,) * len(state))
    slot_major = getattr(state, "SLOT_MAJOR", ())
    index = np.flatnonzero(keep)
    rows = [a.take(index, axis=1 if name in slot_major else 0)
            for name, a in zip(names, state, strict=True)]
    return type(state)(*rows) if hasattr(state, "_fields") else tuple(rows)


def _reduced(hess: Array, held: Array) -> Array:
    """The Hessian with each held coordinate's row and column those of the identity."""
    free = ~held
    reduced = hess * (free[:, :, None] & free[:, None, :])
    d = hess.shape[-1]
    reduced.reshape(hess.shape[0], d * d)[:, :: d + 1] += held
    return reduced


def _keep_rows(ctx: StepContext, keep: Array) -> StepContext:
    """The context of the rows that go on."""
    decomposed = keep if ctx.certified is None else keep[~ctx.certified]

    def rows(a: Array | None, mask: Array) -> Array | None:
        return None if a is None else a.take(np.flatnonzero(mask), axis=0)
    return ctx._replace(hess=rows(ctx.hess, keep), eigenvalues=rows(ctx.eigenvalues, decomposed),
                        eigenvectors=rows(ctx.eigenvectors, decomposed),
                        certified=rows(ctx.certified, keep))


_RULE_STATUS = np.zeros(len(Reason), dtype=np.int8)  # Reason code → its Status code
for _reason, _status in RULE_STATUS.items():
    _RULE_STATUS[_reason] = _status
_ONES = {1: np.ones(1), 2: np.ones(2)}  # _squared_norms' summing vectors, made once


def _squared_norms(rows: Array) -> Array:
    """Squared row norms, each computed the same way at any batch size (a split batch must
    give the same numbers). Up to two coordinates as one BLAS matrix-vector product (~4 µs at
    K = 4,096, against ~46 µs for a reduction along axis 1): a sum of two terms is the same
    in any order. Past two, BLAS blocks a row's sum differently at different K (measured),
    so einsum, whose per-row loop does not depend on K (~17 µs)."""
    if rows.shape[1] <= 2:
        return np.dot(rows * rows, _ONES[rows.shape[1]])
    return np.einsum("ij,ij->i", rows, rows)


def _norms(rows: Array) -> Array:
    return np.sqrt(_squared_norms(rows))


# Sign changes of the step are counted a block of steps at a time: each step writes the
# product of its step and the previous one into the block, and a full block (or a stopping
# run) adds its negative entries to the counts in one pass, in bytes (1,000 Adam steps at
# K = 4,096: ~2.5 ms less than a compare and a float add every step; 16 steps a block
# measured faster than 4, 8 or 32, whose block falls out of the cache).
FLIP_BLOCK_STEPS = 16  # at most 255: counted in bytes
FLIP_BLOCK_VALUES = 1 << 18  # at most 2 MB of block: fewer steps a block for large batches


@dataclass(frozen=True, slots=True)
class ActiveField:
    """A per-run array of the active rows: its run axis (what `_compress` keeps rows along)
    and its value at the start, from (K, d, starts); None: set by the loop itself first."""

    name: str
    axis: int = 0
    initial: Callable[[int, int, Array], Array | None] | None = None
    remade: bool = False  # a scratch buffer: made again at the new size, nothing kept


# The loop's per-run state, declared once: `__init__` creates each array from here and
# `_compress` keeps the rows that go on in each. A new per-run array is one line here (a test
# fails for an array left out: it would keep rows of stopped runs and misalign every row).
ACTIVE_FIELDS: tuple[ActiveField, ...] = (
    ActiveField("rows", 0, lambda k, d, starts: np.arange(k)),  # index in the batch
    ActiveField("row_max_steps"),  # from the max_steps argument
    ActiveField("params", 0, lambda k, d, starts: starts.copy()),
    ActiveField("f0", 0, lambda k, d, starts: np.full(k, np.nan)),
    ActiveField("best", 0, lambda k, d, starts: np.full(k, np.inf)),
    ActiveField("last_improvement", 0, lambda k, d, starts: np.zeros(k, dtype=np.int64)),
    ActiveField("path_length", 0, lambda k, d, starts: np.zeros(k)),
    # per coordinate; summed over coordinates when a run stops
    ActiveField("flips", 0, lambda k, d, starts: np.zeros((k, d))),
    # products of successive steps not yet counted in flips (step-major); they are counted
    # before any row stops, so a compression makes it again at the new size
    ActiveField("flip_block", 1, lambda k, d, starts: _flip_block(k, d), remade=True),
    ActiveField("blow_up_at", 0, lambda k, d, starts: np.full(k, np.inf)),
    ActiveField("prev_step", 0, lambda k, d, starts: np.zeros((k, d))),
    # step-major (RATE_WINDOW, K): each step writes a row
    ActiveField("ring", 1, lambda k, d, starts: np.full((RATE_WINDOW, k), np.nan)),
    ActiveField("hess_evals", 0, lambda k, d, starts: np.zeros(k)),
    ActiveField("last_step_norm"),  # None until the first step
    # the α of the step that led here (a line search's, else the step's lr; nan at t = 0)
    ActiveField("step_size", 0, lambda k, d, starts: np.full(k, np.nan)),
)


def _flip_block(k: int, d: int) -> Array:
    return np.empty((max(1, min(FLIP_BLOCK_STEPS, FLIP_BLOCK_VALUES // max(1, k * d))), k, d))


class _Loop:
    def __init__(self, loss: Loss, groups: list[RunGroup], starts: Array, max_steps: int | Array,
                 stop: StopCriteria, record: RecordSpec, seed: int | None,
                 streams: Array | None, deadline: float | None, cancel: Callable[[], bool] | None,
                 progress: ProgressFn | None, progress_every: int, eval_every: int,
                 bounds: Array | None = None) -> None:
        k, d = starts.shape
        sizes = [g.size for g in groups]
        self.recorder_steps = int(np.max(max_steps)) if k else 0
        if sum(sizes) != k:
            raise ValueError(f"groups hold {sum(sizes)} runs but starts has {k} rows")
        self.loss, self.groups, self.starts = loss, groups, starts
        self.box = None if bounds is None else (np.asarray(bounds, dtype=float)[:, 0].copy(),
                                                np.asarray(bounds, dtype=float)[:, 1].copy())
        self.original_groups = list(groups)
        self.row_max_steps = np.broadcast_to(np.asarray(max_steps, dtype=np.int64), (k,)).copy()
        self.max_steps = int(self.row_max_steps.max()) if k else 0
        self.min_max_steps = int(self.row_max_steps.min()) if k else 0
        self.stop, self.deadline = stop, deadline
        self.cancel, self.progress = cancel, progress
        self.progress_every, self.eval_every = max(1, progress_every), max(1, eval_every)
        self.yields = threading.current_thread() is not threading.main_thread()
        self.k, self.d = k, d
        self.group_index = np.repeat(np.arange(len(groups)), sizes)
        self.recorder = Recorder(k, d, record, self.recorder_steps, planned=loss.stochastic)
        stream_ids = np.arange(k) if streams is None else np.asarray(streams)
        self.sampler = (loss.make_sampler(stream_ids, seed if seed is not None else 0,  # type: ignore
                                          horizon=self.max_steps)
                        if loss.stochastic else None)
        # Results, full size (RESULT_FIELDS), written as rows stop.
        self.results = empty_results(k, d, RATE_WINDOW)
        self.results["final_params"][:] = starts
        self.finals = {"params": self.results["final_params"],
                       "loss": self.results["final_loss"],
                       "grad_norm": self.results["final_grad_norm"],
                       "lr": self.results["final_lr"],
                       "step_size": self.results["final_step_size"],
                       "evals": self.results["final_evals"]}
        self.counters_out: dict[str, Array] = {
            name: np.zeros(k) for g in groups for name in g.rule.counters}
        # Active state (ACTIVE_FIELDS), compressed as rows stop.
        self.bounds_cache: list[tuple[int, int]] | None = None
        self.lr_cache: Array | None = None
        self.last_step_norm: Array | None = None
        self.flip_fill = 0  # steps in flip_block not yet counted
        for active in ACTIVE_FIELDS:
            if active.initial is not None:
                setattr(self, active.name, active.initial(k, d, starts))
        self.states = [g.rule.init(self.params[self._slice(i)]) for i, g in enumerate(groups)]

    # -- helpers ---------------------------------------------------------------------------
    def _bounds(self) -> list[tuple[int, int]]:
        """Each group's slice of the active arrays (recomputed only after a compression)."""
        if self.bounds_cache is None:
            counts = np.bincount(self.group_index[self.rows], minlength=len(self.groups))
            ends = np.cumsum(counts)
            self.bounds_cache = [(int(e - c), int(e)) for c, e in zip(counts, ends, strict=True)]
        return self.bounds_cache

    def _slice(self, i: int) -> slice:
        start, end = self._bounds()[i]
        return slice(start, end)

    def _evaluate(self, t: int) -> tuple[Array, Array, Array, bool, bool]:
        """Loss, gradient for the step, squared gradient norm, and whether the values and the
        norm are full-batch. A stochastic run checks convergence on the full-batch gradient every
        eval_every steps; a step that is only recorded needs the full-batch loss, and the
        full-batch gradient only when grad_norm is recorded."""
        if self.sampler is None:
            values, grads = self.loss.value_grad(self.params)
            return values, grads, _squared_norms(self._projected(grads)), True, True
        batch = self.sampler.draw(self.rows, t)
        values, grads = self.loss.minibatch_value_grad(self.params, batch)  # type: ignore
        checked = t == 0 or t % self.eval_every == 0 or t >= self.min_max_steps
        recorded = self.recorder.due(t)
        if checked or (recorded and "grad_norm" in self.recorder.spec.fields):
            full_values, full_grads = self.loss.value_grad(self.params)
            return full_values, grads, _squared_norms(self._projected(full_grads)), True, True
        if recorded:
            return (self.loss.value(self.params), grads,
                    _squared_norms(self._projected(grads)), True, False)
        return values, grads, _squared_norms(self._projected(grads)), False, False

    def _projected(self, grads: Array) -> Array:
        """The gradient, or with a box the projected gradient x − P(x − g): zero along a
        coordinate held at a bound by a gradient that pushes out of the box."""
        if self.box is None:
            return grads
        return self.params - np.clip(self.params - grads, *self.box)

    def _held(self, grads: Array) -> Array | None:
        """(K, d) coordinates held at a bound by a gradient pushing out of the box."""
        if self.box is None:
            return None
        lo, hi = self.box
        return ((self.params <= lo) & (grads > 0)) | ((self.params >= hi) & (grads < 0))

    def _contexts(self, bounds: list[tuple[int, int]], grads: Array
                  ) -> list[StepContext | None]:
        """What each group's rule needs beyond its gradient (rule.needs_context): the loss's
        functions, the box, and for second-order rules the Hessian, decomposed as the rule
        asks (rule.curvature). Within a box a second-order rule sees the reduced problem
        (Bertsekas' projected Newton): the coordinates held at a bound decoupled from the
        others (their Hessian rows and columns those of the identity, their gradient zero)."""
        held = self._held(grads) if any(g.rule.needs_hessian for g in self.groups) else None
        contexts: list[StepContext | None] = []
        for i, group in enumerate(self.groups):
            start, end = bounds[i]
            rule = group.rule
            if not rule.needs_context or end == start:
                contexts.append(None)
                continue
            hess = certified = lam = vec = None
            if rule.needs_hessian:
                hess = self.loss.hess(self.params[start:end])
                self.hess_evals[start:end] += 1
                if held is not None and held[start:end].any():
                    hess = _reduced(hess, held[start:end])
                if rule.curvature is not None:
                    certified, lam, vec = rule.curvature.decompose(hess)
            contexts.append(StepContext(np.empty(0), hess, lam, vec, self.loss.value,
                                        certified, self.loss.value_grad, self.box))
        return contexts

    def _rule_finished(self, bounds: list[tuple[int, int]]) -> tuple[Array, Array] | None:
        """Rows the rules ended on their own criteria (rule.finished), as (K,) reasons (0 where
        none) and the statuses they mean; None when no rule has such a criterion."""
        reasons = None
        for i, group in enumerate(self.groups):
            start, end = bounds[i]
            if group.rule.finished is None or end == start:
                continue
            mask, why = group.rule.finished(self.states[i])
            if mask.any():
                if reasons is None:
                    reasons = np.zeros(self.rows.size, dtype=np.int8)
                reasons[start:end] = np.where(mask, why, 0)
        if reasons is None:
            return None
        return reasons, _RULE_STATUS[reasons]

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> RunBatch:
        began = time.perf_counter()
        t = 0
        while True:
            values, grads, grad_squares, full, checked = self._evaluate(t)
            grad_norms = None  # the roots, taken only where a row may stop or a step is recorded
            if t == 0:
                self.f0 = values.copy()
                self.blow_up_at = blow_up_threshold(self.stop, self.f0)
            bounds = self._bounds()
            contexts = self._contexts(bounds, grads)
            ended = self._rule_finished(bounds)
            # The curvature guard only keeps rows from converging, so it is needed only when the
            # screen says some row may stop.
            if (t >= self.min_max_steps or ended is not None or screen(
                    self.stop, t=t, values=values, grad_squares=grad_squares,
                    params=self.params, blow_up_at=self.blow_up_at, converge_checked=checked)):
                grad_norms = np.sqrt(grad_squares)
                status, reason = check_termination(
                    self.stop, t=t, max_steps=self.row_max_steps, values=values,
                    grad_norms=grad_norms, params=self.params, f0=self.f0,
                    last_step_norm=self.last_step_norm, last_improvement=self.last_improvement,
                    may_converge=self._may_converge(contexts, bounds, grad_norms),
                    converge_checked=checked)
                if ended is not None:  # the rule's own end, unless a test above came first
                    rule_reason, rule_status = ended
                    own = (rule_reason > 0) & ((status == Status.RUNNING)
                                               | (status == Status.MAX_STEPS))
                    status = np.where(own, rule_status, status).astype(np.int8)
                    reason = np.where(own, rule_reason, reason).astype(np.int8)
            else:
                status = reason = None
            if full:
                if self.stop.patience is not None:
                    improved = values < self.best
                    self.last_improvement = np.where(improved, t, self.last_improvement)
                np.fmin(self.best, values, out=self.best)
                self.ring[t % RATE_WINDOW] = values
            hyper = [g.hyper_at(t) for g in self.groups]
            lr = self._lr_column(hyper, bounds)
            if self.recorder.due(t):
                grad_norms = np.sqrt(grad_squares) if grad_norms is None else grad_norms
                rows = slice(None) if self.rows.size == self.k else self.rows
                self.recorder.write(t, rows, {"params": self.params, "loss": values,
                                              "grad_norm": grad_norms, "lr": lr,
                                              "step_size": self.step_size,
                                              "evals": self._evals(t, bounds)})
            status, reason = self._external_stops(status, reason, t)
            stopped = None if status is None else status != Status.RUNNING
            if stopped is not None and stopped.any():
                grad_norms = np.sqrt(grad_squares) if grad_norms is None else grad_norms
                self._finish(stopped, status, reason, t, values, grad_norms, lr, bounds)
                keep = ~stopped
                going_on = np.flatnonzero(keep)
                values, lr = values[going_on], lr[going_on]
                grads = grads.take(going_on, axis=0)
                contexts = [None if c is None else _keep_rows(c, keep[s:e])
                            for c, (s, e) in zip(contexts, bounds, strict=True)]
                self._compress(keep, bounds)
                bounds = self._bounds()
                if self.rows.size == 0:
                    break
                hyper = [g.hyper_at(t) for g in self.groups]
            step = self._step(t, values, grads, contexts, hyper, bounds)
            moved = self.params + step
            changed = self._exact_params(moved, bounds)
            if self.box is not None:  # projected
                moved = np.clip(moved, *self.box)
            if changed or self.box is not None:  # the step actually taken
                step = moved - self.params
            self._accumulate(step)
            self.params = moved
            self._note_step_sizes(lr, bounds)
            t += 1
            if self.yields and t % YIELD_EVERY == 0:
                time.sleep(0)  # hand the GIL over: see YIELD_EVERY
            if self.progress is not None and t % self.progress_every == 0:
                self.progress(t, self.max_steps, int(self.rows.size))
        if self.progress is not None:
            self.progress(steps_done(self.results["status"], self.results["steps"],
                                     self.max_steps), self.max_steps, 0)
        return self._result(time.perf_counter() - began, t)

    def _step(self, t: int, values: Array, grads: Array, contexts: list[StepContext | None],
              hyper: list, bounds: list[tuple[int, int]]) -> Array:
        """Every group's step for its rows (one group: its step as it comes, no copy)."""
        step = None if len(self.groups) == 1 else np.empty_like(self.params)
        for i, group in enumerate(self.groups):
            start, end = bounds[i]
            if start == end:
                continue
            ctx = contexts[i]
            if ctx is not None:
                ctx = ctx._replace(values=values[start:end])
            rows = slice(start, end)
            given = grads[rows]
            if self.box is not None and group.rule.needs_hessian:  # the reduced problem
                given = np.where(self._held(grads)[rows], 0.0, given)
            part, self.states[i] = group.rule.update(given, self.states[i],
                                                     self.params[rows], hyper[i], t, ctx)
            if step is None:
                return part
            step[rows] = part
        return step

    def _exact_params(self, moved: Array, bounds: list[tuple[int, int]]) -> bool:
        """Rows whose rule computed its new parameters itself (its state's `next_params`, a
        fused x + α·d as torch computes it) take them as they are, not x + step rounded
        twice. Answers whether any did."""
        changed = False
        for i, (start, end) in enumerate(bounds):
            exact = getattr(self.states[i], "next_params", None)
            if exact is not None and end > start:
                moved[start:end] = exact
                changed = True
        return changed

    def _note_step_sizes(self, lr: Array, bounds: list[tuple[int, int]]) -> None:
        """Each row's α of the step just taken: the rule's own (a line search's accepted α,
        in its state's `step_size`), else its lr."""
        for i, (start, end) in enumerate(bounds):
            if end == start:
                continue
            own = getattr(self.states[i], "step_size", None)
            self.step_size[start:end] = own[:, 0] if own is not None else lr[start:end]

    def _evals(self, t: int, bounds: list[tuple[int, int]]) -> Array:
        """Each active row's function evaluations so far: the rule's own count, or one a step
        (plus a line search's evaluations, `line_search_evals`)."""
        evals = np.full(self.rows.size, float(t + 1))
        for i, (start, end) in enumerate(bounds):
            state, rule = self.states[i], self.groups[i].rule
            if end == start:
                continue
            if rule.counts_evals:
                evals[start:end] = state.func_evals[:, 0]
            elif hasattr(state, "line_search_evals"):
                evals[start:end] += state.line_search_evals[:, 0]
        return evals

    def _may_converge(self, contexts: list[StepContext | None], bounds: list[tuple[int, int]],
                      grad_norms: Array) -> Array | None:
        """Rows of second-order groups whose rule rejects the curvature must not converge."""
        if all(c is None for c in contexts):
            return None
        allowed = np.ones(self.rows.size, dtype=bool)
        candidates = grad_norms <= self.stop.grad_tol
        for group, ctx, (start, end) in zip(self.groups, contexts, bounds, strict=True):
            if ctx is not None and group.rule.curvature is not None:
                allowed[start:end] = group.rule.curvature.may_converge(
                    ctx, candidates[start:end])
        return allowed

    def _lr_column(self, hyper: list, bounds: list[tuple[int, int]]) -> Array:
        """Each active run's lr at this step (cached while no schedule is in play)."""
        if self.lr_cache is not None:
            return self.lr_cache
        lr = np.full(self.rows.size, np.nan)
        for hp, (start, end) in zip(hyper, bounds, strict=True):
            if end > start and hasattr(hp, "lr"):
                lr[start:end] = hp.lr if isinstance(hp.lr, float) else hp.lr[:, 0]
        if not any(g.scheduled for g in self.groups):
            self.lr_cache = lr
        return lr

    def _external_stops(self, status: Array | None, reason: Array | None, t: int
                        ) -> tuple[Array | None, Array | None]:
        late = self.deadline is not None and time.monotonic() >= self.deadline
        cancelled = (self.cancel is not None and t % self.progress_every == 0
                     and self.cancel())
        if not (late or cancelled):
            return status, reason
        if status is None:
            status = np.zeros(self.rows.size, dtype=np.int8)
            reason = np.zeros(self.rows.size, dtype=np.int8)
        running = status == Status.RUNNING
        if late:
            status[running], reason[running] = Status.TIME_LIMIT, Reason.TIME_LIMIT
        else:
            status[running], reason[running] = Status.CANCELLED, Reason.CANCELLED
        return status, reason

    def _accumulate(self, step: Array) -> None:
        norms = _norms(step)
        self.path_length += norms
        # coordinates whose step changed sign (the first step compares with zeros: none),
        # per coordinate and a block at a time (see FLIP_BLOCK_STEPS)
        np.multiply(step, self.prev_step, out=self.flip_block[self.flip_fill])
        self.flip_fill += 1
        if self.flip_fill == self.flip_block.shape[0]:
            self._count_flips()
        self.prev_step = step
        self.last_step_norm = norms

    def _count_flips(self) -> None:
        """Add the block's sign changes (negative products) to each coordinate's count."""
        if self.flip_fill:
            negative = (self.flip_block[:self.flip_fill] < 0).view(np.uint8)
            # a sum of bytes along the block, in bytes (a block is at most 255 steps): ~4×
            # faster than counting with a cast of every entry to int64
            self.flips += np.add.reduce(negative, axis=0, dtype=np.uint8)
            self.flip_fill = 0

    def _finish(self, stopped: Array, status: Array, reason: Array, t: int, values: Array,
                grad_norms: Array, lr: Array, bounds: list[tuple[int, int]]) -> None:
        self._count_flips()
        # Every active row at once (max_steps, mostly): slices instead of indices; else the
        # stopped rows' indices, (K, d) arrays by take (see _state_rows)
        every = bool(stopped.all())
        sel: Array | slice = slice(None) if every else np.flatnonzero(stopped)
        row_index = self.rows[sel]
        rows: Array | slice = slice(None) if row_index.size == self.k else row_index

        def rows_of(a: Array, axis: int = 0) -> Array:
            return a if every else a.take(sel, axis=axis)
        write_rows(self.results, rows, {
            "status": status[sel], "reason": reason[sel], "steps": t,
            "final_params": rows_of(self.params), "final_loss": values[sel],
            "final_grad_norm": grad_norms[sel], "final_lr": lr[sel],
            "initial_loss": self.f0[sel], "best_loss": np.fmin(self.best[sel], values[sel]),
            "path_length": self.path_length[sel],
            "flips": np.dot(rows_of(self.flips), np.ones(self.d)),
            "recent_losses": rows_of(self.ring, axis=1).T, "hess_evals": self.hess_evals[sel],
            "final_step_size": self.step_size[sel], "final_evals": self._evals(t, bounds)[sel],
        })
        self.recorder.retire(row_index, self.results["steps"], self.finals)
        bounds = self._bounds()
        for i, group in enumerate(self.groups):
            start, end = bounds[i]
            local = stopped[start:end]
            for name in group.rule.counters:
                self.counters_out[name][self.rows[start:end][local]] = getattr(
                    self.states[i], name)[local, 0]

    def _compress(self, keep: Array, bounds: list[tuple[int, int]]) -> None:
        for i, (start, end) in enumerate(bounds):
            local = keep[start:end]
            if not local.all():
                self.states[i] = _state_rows(self.states[i], local)
                self.groups[i] = self.groups[i].take(local)
        index = np.flatnonzero(keep)  # take (see _state_rows), not a mask, for every array
        for active in ACTIVE_FIELDS:
            value = getattr(self, active.name)
            if active.remade and active.initial is not None:
                setattr(self, active.name, active.initial(self.rows.size, self.d, self.params))
            elif value is not None:
                setattr(self, active.name, value.take(index, axis=active.axis))
        self.min_max_steps = int(self.row_max_steps.min()) if self.rows.size else 0
        self.bounds_cache = self.lr_cache = None  # both are per active row

    def _result(self, elapsed: float, t: int) -> RunBatch:
        trajectories = (self.recorder.assemble(self.results["steps"], self.finals)
                        if self.recorder.spec.enabled else None)
        return run_batch(self.results, starts=self.starts, groups=self.original_groups,
                         counters=self.counters_out, trajectories=trajectories,
                         elapsed_s=elapsed, engine_steps=t,
                         stochastic=bool(self.loss.stochastic))
