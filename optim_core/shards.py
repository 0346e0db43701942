"""Plan → shards → merge: one batch of runs computed as any sets of runs, answered as one.

A batch is entries (an optimizer of /v1/compare, a grid point of /v1/sweep) × starts; run
r is entry r // S from start r % S (entry-major, as the reports are ordered). The plan
resolves the starts once and decides from the whole batch what depends on the batch: the
engine path (floats or vectorised). Every run draws its minibatches from the stream of its
global start index, and its recorded trajectory depends only on its own steps (see
engine/recording.py), so a run computes the same numbers in whatever shard it lands:

* bit-equal for builtin, expression, Newton, seeded-minibatch and full-batch dataset losses
  (tested with 1-run shards, uneven shards and shuffled shards);
* explicit quadratics evaluate the whole shard with one matrix product `params @ A`, whose
  BLAS kernel may block a row's sums differently at another batch size: there a split answer
  matches to ~1e-12 relative (tested), not bit for bit.

`ShardWork` is what travels to another process (the loss pickles by its definition); the
merge puts each shard's per-run arrays back at their global rows and gives the RunBatch the
plan's groups, so the reports are built exactly as for one batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from optim_core import kernels
from optim_core.engine import fused, small
from optim_core.engine.groups import RunGroup, make_group
from optim_core.engine.loop import run
from optim_core.engine.recording import RecordSpec, Trajectory
from optim_core.engine.results import PER_RUN_ARRAYS, RunBatch
from optim_core.engine.stopping import StopCriteria, steps_done
from optim_core.losses.base import Loss
from optim_core.types import Array

# A shard holds about this many coordinates (runs × d): ~4,096 two-dimensional runs, whose
# (K, d) arrays stay in cache (measured: 65,536 runs in one batch are ~2.3× slower per run).
CHUNK_VALUES = 8192
# Batches with more runs than this many chunks' worth are split (below it, one batch is as fast).
SPLIT_AT_CHUNKS = 2

# Shards below this many runs cost more in per-step overhead and transport than they gain.
MIN_SHARD_RUNS = 256


ShardProgressFn = Callable[[int, int, int, int], None]  # (shard, steps_done, total, active)


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """The engine arguments every shard shares."""

    max_steps: int = 1000
    stop: StopCriteria = field(default_factory=StopCriteria)
    record: RecordSpec = field(default_factory=RecordSpec)
    seed: int | None = None
    eval_every: int = 10
    path: str = "vectorised"  # floats | vectorised | fused: decided by the plan from the
    # whole batch, so every shard computes the same way
    bounds: Array | None = None  # (d, 2): the box every run stays in


@dataclass(frozen=True, slots=True)
class ShardWork:
    """What every shard needs (Ray puts it in the object store once per job; the local pool
    sends it with each shard)."""

    loss: Loss
    starts: Array  # (S, d)
    entries: tuple[tuple[str, Mapping[str, Any]], ...]  # (rule name, settings) per entry
    options: EngineOptions

    @property
    def n_runs(self) -> int:
        return len(self.entries) * self.starts.shape[0]


@dataclass(slots=True)
class Plan:
    """A batch ready to run: the work, and the groups the merged RunBatch reports with."""

    work: ShardWork
    groups: list[RunGroup]  # the reports' groups (per optimizer; one for a sweep)
    group_index: Array  # (K,) each run's group in `groups`
    labels: list[str]  # one per group
    points: list[dict[str, Any]]  # a sweep's grid points, one per entry (else empty)


@dataclass(slots=True)
class ShardResult:
    """One shard's per-run measurements, rows in the order of `runs`."""

    runs: Array  # (k,) global run indices, ascending
    fields: dict[str, Array]
    counters: dict[str, Array]
    trajectories: list[Trajectory] | None
    engine_steps: int
    elapsed_s: float
    path: str = ""
    compile_s: float = 0.0


class ShardExecutor(Protocol):
    """Runs shards somewhere (this process, a process pool, a Ray cluster) and returns their
    results in the order given. `deadline_wall` is a time.time() value, valid on any host."""

    def shards(self, plan: Plan) -> list[Array]:
        """How this executor splits the plan when the caller does not say."""
        ...

    def run_shards(self, work: ShardWork, shards: Sequence[Array], *,
                   deadline_wall: float | None, cancel: Callable[[], bool] | None,
                   progress: ShardProgressFn | None) -> list[ShardResult]: ...


def make_plan(loss: Loss, starts: Array, entries: Sequence[tuple[str, Mapping[str, Any]]],
              groups: list[RunGroup], labels: list[str], options: EngineOptions,
              points: list[dict[str, Any]] | None = None) -> Plan:
    """Decide from the whole batch what depends on it; `groups` cover the runs in order."""
    starts = np.asarray(starts, dtype=float)
    k, d = len(entries) * starts.shape[0], loss.dim
    if options.bounds is None and small.fits(loss, groups, k, d, options.record):
        path = "floats"
    elif fused.choose(kernels.mode(), loss, groups, k, options.max_steps, options.record,
                      options.bounds):
        path = "fused"
    else:
        path = "vectorised"
    work = ShardWork(loss, starts, tuple(entries), replace(options, path=path))
    group_index = np.repeat(np.arange(len(groups)), [g.size for g in groups])
    if group_index.size != k:
        raise ValueError(f"groups hold {group_index.size} runs, the plan {k}")
    return Plan(work, groups, group_index, labels, points or [])


def chunk_runs(dim: int) -> int:
    """Runs per cache-sized shard at this dimension."""
    return max(1, CHUNK_VALUES // max(dim, 1))


def split(n_runs: int, runs_per_shard: int) -> list[Array]:
    """Contiguous shards of at most runs_per_shard runs, sizes as even as possible."""
    if n_runs == 0:
        return []
    count = -(-n_runs // max(1, runs_per_shard))
    return list(np.array_split(np.arange(n_runs), count))


def default_shards(plan: Plan) -> list[Array]:
    """One shard for a batch that fits in cache, else cache-sized chunks (floats and fused
    paths: one; the fused kernel chunks and threads the runs itself)."""
    n, per = plan.work.n_runs, chunk_runs(plan.work.loss.dim)
    if plan.work.options.path in ("floats", "fused") or n <= SPLIT_AT_CHUNKS * per:
        return [np.arange(n)]
    return split(n, per)


def parallel_shards(plan: Plan, workers: int) -> list[Array]:
    """Cache-sized shards, and at least one per worker when the batch is large enough."""
    n = plan.work.n_runs
    if plan.work.options.path == "floats" or workers <= 1:
        return default_shards(plan)
    per = -(-n // workers)  # fused: one shard a worker (the kernel chunks runs itself)
    if plan.work.options.path != "fused":
        per = min(chunk_runs(plan.work.loss.dim), per)
    return split(n, max(per, MIN_SHARD_RUNS))


def shard_groups(work: ShardWork, runs: Array) -> list[RunGroup]:
    """The engine groups of a shard: consecutive runs of one rule form one group, each run
    with its entry's settings (per-row columns compute the same numbers as any grouping)."""
    entry_of = runs // work.starts.shape[0]
    names = [work.entries[e][0] for e in entry_of.tolist()]
    groups, begin = [], 0
    for i in range(1, len(names) + 1):
        if i == len(names) or names[i] != names[begin]:
            settings = [work.entries[e][1] for e in entry_of[begin:i].tolist()]
            groups.append(make_group(names[begin], settings))
            begin = i
    return groups


def run_shard(work: ShardWork, runs: Array, *, deadline_wall: float | None = None,
              cancel: Callable[[], bool] | None = None,
              progress: Callable[[int, int, int], None] | None = None) -> ShardResult:
    """Run the given global run indices (ascending) on this process."""
    runs = np.asarray(runs, dtype=np.int64)
    batch = _run_batch(work, runs, deadline_wall, cancel, progress)
    return ShardResult(runs, {name: getattr(batch, name) for name in PER_RUN_ARRAYS},
                       batch.counters, batch.trajectories, batch.engine_steps, batch.elapsed_s,
                       batch.path, batch.compile_s)


def _run_batch(work: ShardWork, runs: Array, deadline_wall: float | None,
               cancel: Callable[[], bool] | None,
               progress: Callable[[int, int, int], None] | None,
               groups: list[RunGroup] | None = None) -> RunBatch:
    """The engine on these runs; `groups` when the caller has them for exactly these runs
    (the whole plan in one shard: its own groups, not built twice)."""
    start_of = runs % work.starts.shape[0]
    deadline = None if deadline_wall is None else time.monotonic() + (deadline_wall - time.time())
    o = work.options
    return run(work.loss, groups or shard_groups(work, runs), work.starts[start_of],
               max_steps=o.max_steps, stop=o.stop, record=o.record, seed=o.seed,
               streams=start_of, deadline=deadline, cancel=cancel, progress=progress,
               eval_every=o.eval_every, path=o.path, bounds=o.bounds)


def merge(plan: Plan, results: Sequence[ShardResult], elapsed_s: float) -> RunBatch:
    """The RunBatch of the whole plan from its shards (each run exactly once)."""
    work, k = plan.work, plan.work.n_runs
    seen = np.zeros(k, dtype=np.int64)
    for result in results:
        np.add.at(seen, result.runs, 1)
    if not (seen == 1).all():
        missing, twice = int((seen == 0).sum()), int((seen > 1).sum())
        raise ValueError(f"shards must cover every run once: {missing} missing, {twice} repeated")
    fields: dict[str, Array] = {}
    for name in PER_RUN_ARRAYS:
        parts = [r.fields[name] for r in results]
        out = np.empty((k, *parts[0].shape[1:]), dtype=parts[0].dtype) if parts else np.empty(0)
        for result, part in zip(results, parts, strict=True):
            out[result.runs] = part
        fields[name] = out
    counters: dict[str, Array] = {}
    for result in results:
        for name, values in result.counters.items():
            counters.setdefault(name, np.zeros(k))[result.runs] = values
    trajectories = None
    if work.options.record.enabled and results and results[0].trajectories is not None:
        trajectories = [None] * k
        for result in results:
            for row, trajectory in zip(result.runs.tolist(), result.trajectories or [],
                                       strict=True):
                trajectories[row] = trajectory
    starts = work.starts[np.arange(k) % work.starts.shape[0]]
    return RunBatch(starts=starts, group_index=plan.group_index, groups=plan.groups,
                    counters=counters, trajectories=trajectories,  # type: ignore[arg-type]
                    elapsed_s=elapsed_s,
                    engine_steps=max((r.engine_steps for r in results), default=0),
                    stochastic=bool(work.loss.stochastic), path=_merged_path(work, results),
                    compile_s=sum(r.compile_s for r in results), **fields)


def _merged_path(work: ShardWork, results: Sequence[ShardResult]) -> str:
    """The plan's path, unless a shard fell back to the NumPy engine (no numba where it ran:
    the same answers, computed otherwise): then "vectorised"."""
    paths = {r.path for r in results} or {work.options.path}
    return paths.pop() if len(paths) == 1 else "vectorised"


def execute(plan: Plan, *, shards: Sequence[Array] | None = None,
            executor: ShardExecutor | None = None, deadline: float | None = None,
            cancel: Callable[[], bool] | None = None,
            progress: Callable[[int, int, int], None] | None = None) -> RunBatch:
    """Run the plan: in this process as one batch when it is one shard, else shard by shard
    on `executor` (default: this process, one after another), then merge.

    `deadline` is a time.monotonic() value, as for the engine; progress reports the mean
    steps done over all runs (a finished shard counts as done) and the runs still active.
    """
    began = time.perf_counter()
    if shards is None:
        shards = default_shards(plan) if executor is None else executor.shards(plan)
    shards = list(shards)
    work = plan.work
    if executor is None and len(shards) == 1 and np.array_equal(shards[0], np.arange(work.n_runs)):
        # the plan's groups: any grouping computes the same numbers (per-row columns)
        batch = _run_batch(work, shards[0], _wall(deadline), cancel, progress,
                           groups=list(plan.groups))
        batch.groups, batch.group_index = plan.groups, plan.group_index
        return batch
    tracker = ProgressTracker(shards, work.options.max_steps, progress)
    executor = executor or InProcess()
    results = executor.run_shards(work, shards, deadline_wall=_wall(deadline), cancel=cancel,
                                  progress=tracker.update if progress is not None else None)
    for i, result in enumerate(results):  # each shard's end, whatever reached us on the way
        tracker.update(i, steps_done(result.fields["status"], result.fields["steps"],
                                     work.options.max_steps), work.options.max_steps, 0)
    tracker.finish()
    return merge(plan, results, time.perf_counter() - began)


def _wall(deadline: float | None) -> float | None:
    return None if deadline is None else time.time() + (deadline - time.monotonic())


class ProgressTracker:
    """Folds every shard's (steps_done, total, active) into the batch's progress."""

    def __init__(self, shards: Sequence[Array], max_steps: int,
                 progress: Callable[[int, int, int], None] | None) -> None:
        self.sizes = np.array([len(s) for s in shards], dtype=float)
        self.done = np.zeros(len(shards))  # fraction of max_steps per shard
        self.active = np.array([len(s) for s in shards], dtype=np.int64)
        self.max_steps, self.progress = max(1, max_steps), progress

    def update(self, shard: int, done: int, total: int, active: int) -> None:
        """A shard run again (its worker died) reports from 0 again: progress never goes
        back, it waits until the re-run passes where the first run was."""
        fraction = min(done / max(total, 1), 1.0)  # a shard's last report: how far it got
        self.done[shard] = max(self.done[shard], fraction)
        self.active[shard] = active
        if self.progress is not None and self.sizes.sum():
            mean = float(np.dot(self.done, self.sizes) / self.sizes.sum())
            self.progress(int(round(mean * self.max_steps)), self.max_steps,
                          int(self.active.sum()))

    def finish(self) -> None:
        """The batch's last report: every shard's own (complete, or how far it got)."""
        if self.progress is not None and self.sizes.sum():
            mean = float(np.dot(self.done, self.sizes) / self.sizes.sum())
            self.progress(int(round(mean * self.max_steps)), self.max_steps, 0)


class InProcess:
    """Shards one after another on this thread (the cache-sized chunks of one process)."""

    def shards(self, plan: Plan) -> list[Array]:
        return default_shards(plan)

    def run_shards(self, work: ShardWork, shards: Sequence[Array], *,
                   deadline_wall: float | None, cancel: Callable[[], bool] | None,
                   progress: ShardProgressFn | None) -> list[ShardResult]:
        results = []
        for i, runs in enumerate(shards):
            report = None if progress is None else shard_progress(progress, i)
            results.append(run_shard(work, runs, deadline_wall=deadline_wall, cancel=cancel,
                                     progress=report))
        return results


def shard_progress(progress: ShardProgressFn, shard: int) -> Callable[[int, int, int], None]:
    """The engine's progress callback of one shard, reporting under the shard's index."""
    def report(done: int, total: int, active: int) -> None:
        progress(shard, done, total, active)
    return report
