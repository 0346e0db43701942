"""Shards on a pool of worker processes on this machine (OPTIM_WORKERS_CPU, default every
usable core). The pool and a manager process (the shared progress table and cancel flags)
start on the first sharded job and live until shutdown; workers are started by forkserver,
never forked from the serving process and its threads.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from typing import Any

import numpy as np

from optim_core.shards import (
    Plan,
    ShardProgressFn,
    ShardResult,
    ShardWork,
    parallel_shards,
    run_shard,
    shard_progress,
)
from service.errors import ShardFailedError
from service.executors.throttle import throttled

POLL_S = 0.2  # how often the job's thread reads progress and passes a cancel on
POOL_RETRIES = 1  # runs of a job's shards again on a new pool after a worker died
# A worker that died while the pool has not failed its shards this long after: it was killed
# in the middle of sending a result, and the pool's reader waits for the rest forever
# (CPython's ProcessPoolExecutor; see _unjam). Noticed deaths fail the shards in milliseconds.
JAMMED_AFTER_S = 2.0
# A cancelled shard stops at its next check (every REMOTE_CHECK_S); one still running this
# long after is frozen (SIGSTOP, swapped out): its worker is killed and the pool replaced.
CANCEL_GRACE_S = 5.0
# What a call to the manager process raises when it is gone (killed, out of memory).
_MANAGER_GONE = (EOFError, ConnectionError, BrokenPipeError, OSError)
logger = logging.getLogger("service.executors")


class PoolExecutor:
    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._manager: Any = None
        self._lock = threading.Lock()

    def _start(self) -> tuple[ProcessPoolExecutor, Any]:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                self._manager = context.Manager()
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
            return self._pool, self._manager

    def shards(self, plan: Plan) -> list[np.ndarray]:
        return parallel_shards(plan, self.workers)

    def run_shards(self, work: ShardWork, shards: Sequence[np.ndarray], *,
                   deadline_wall: float | None, cancel: Callable[[], bool] | None,
                   progress: ShardProgressFn | None) -> list[ShardResult]:
        """The shards on the pool; a worker process that dies (killed, out of memory) or a
        manager process that is gone breaks the pool: it is replaced and the shards run once
        more (they are deterministic)."""
        if len(shards) == 1:  # nothing to spread: no pool round trip
            report = None if progress is None else shard_progress(progress, 0)
            return [run_shard(work, shards[0], deadline_wall=deadline_wall, cancel=cancel,
                              progress=report)]
        for attempt in range(1 + POOL_RETRIES):
            try:
                return self._run_on_pool(work, shards, deadline_wall, cancel, progress)
            except BrokenProcessPool as exc:
                logger.warning("a pool process died (%s); starting a new pool", exc)
                self._reset()
                if attempt == POOL_RETRIES:
                    error = ShardFailedError(0, shards[0], attempt, exc)
                    error.detail = (f"A pool worker process died during the job on every "
                                    f"attempt ({attempt + 1}; killed, or out of memory): "
                                    f"its {len(shards)} shards were not computed")
                    raise error from None
        raise AssertionError("unreachable")

    def _run_on_pool(self, work: ShardWork, shards: Sequence[np.ndarray],
                     deadline_wall: float | None, cancel: Callable[[], bool] | None,
                     progress: ShardProgressFn | None) -> list[ShardResult]:
        pool, manager = self._start()
        try:
            table = manager.dict()  # shard → (steps_done, total, active)
            stop = manager.Event()
        except _MANAGER_GONE as exc:  # the manager process was killed between jobs
            raise BrokenProcessPool(f"the pool's manager process is gone ({exc!r})") from None
        futures = [pool.submit(_run, work, runs, deadline_wall, i, table, stop)
                   for i, runs in enumerate(shards)]
        try:
            stuck = _follow(pool, futures, table, stop, cancel, progress, deadline_wall)
            failed = [i for i, f in enumerate(futures) if f.done() and f.exception()]
            if failed:
                cause = futures[failed[0]].exception()
                if isinstance(cause, BrokenProcessPool):
                    raise cause
                raise ShardFailedError(failed[0], shards[failed[0]], 0, cause)  # type: ignore[arg-type]
            if stuck:  # cancelled, and some workers did not stop in time: frozen
                logger.warning("%d shard(s) did not stop within %g s of the cancel; their "
                               "workers are killed and the pool replaced", len(stuck),
                               CANCEL_GRACE_S)
                self._reset(kill=True)
            late = cancel is None or not cancel()
            return [f.result() if i not in stuck else _not_started(work, shards[i], late)
                    for i, f in enumerate(futures)]
        finally:
            with suppress(Exception):  # a broken pool's manager may be gone too
                stop.set()  # an error in one shard: the others stop at their next check
            for future in futures:
                future.cancel()

    def _reset(self, kill: bool = False) -> None:
        """Drop a broken pool (and its manager); the next job starts new ones. `kill`: its
        workers first (frozen ones would never take the pool's exit message)."""
        with self._lock:
            pool, manager, self._pool, self._manager = self._pool, self._manager, None, None
        if pool is not None:
            if kill:
                _unjam(pool)
            pool.shutdown(wait=False, cancel_futures=True)
        if manager is not None:
            with suppress(Exception):
                manager.shutdown()

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.workers, "reachable": True,
                "started": self._pool is not None}

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._manager.shutdown()
                self._pool = self._manager = None


def _follow(pool: ProcessPoolExecutor, futures: list[Future[ShardResult]], table: Any,
            stop: Any, cancel: Callable[[], bool] | None, progress: ShardProgressFn | None,
            deadline_wall: float | None = None) -> set[int]:
    """Wait for the shards, passing their progress on and the job's cancel to them; a pool
    jammed by a worker that died mid-result is broken here (BrokenProcessPool), and a lost
    manager too. Answers the shards still running CANCEL_GRACE_S after a cancel (their
    workers are frozen: stopped, or swapped out for good), or that long after the deadline."""
    seen: dict[int, tuple[int, int, int]] = {}
    pending = set(futures)
    lost_at: float | None = None
    cancelled_at: float | None = None
    while pending:
        done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            return set()  # run_shards raises it
        if pending and _lost_a_worker(pool):
            lost_at = lost_at or time.monotonic()
            if time.monotonic() - lost_at > JAMMED_AFTER_S:
                _unjam(pool)
                raise BrokenProcessPool("a worker process died while sending its result")
        late = deadline_wall is not None and time.time() > deadline_wall + CANCEL_GRACE_S
        if late or (cancelled_at is not None and
                    time.monotonic() - cancelled_at > CANCEL_GRACE_S):
            return {i for i, f in enumerate(futures) if f in pending}
        try:
            if cancel is not None and cancelled_at is None and cancel():
                cancelled_at = time.monotonic()
                stop.set()
            if progress is not None:
                for shard, state in dict(table).items():
                    if seen.get(shard) != state:
                        seen[shard] = state
                        progress(shard, *state)
        except _MANAGER_GONE as exc:  # killed mid-job: the shards cannot report or stop
            _unjam(pool)
            raise BrokenProcessPool(f"the pool's manager process is gone ({exc!r})") from None
    return set()


def _not_started(work: ShardWork, runs: np.ndarray, late: bool) -> ShardResult:
    """A shard whose frozen worker could not answer: its runs as stopped at step 0 (one
    evaluation each, here), cancelled or out of time, so the job keeps the partial results
    of the others."""
    if late:
        return run_shard(work, runs, deadline_wall=0.0)
    return run_shard(work, runs, cancel=lambda: True)


def _lost_a_worker(pool: ProcessPoolExecutor) -> bool:
    processes = getattr(pool, "_processes", None) or {}
    return any(p.exitcode is not None for p in list(processes.values()))


def _unjam(pool: ProcessPoolExecutor) -> None:
    """Free a pool whose reader thread waits for the rest of a dead worker's result: with the
    other workers killed and this process's copy of the result pipe's write end closed, the
    read ends (EOF), the pool marks itself broken and its thread exits (it would otherwise
    block the interpreter's exit, which joins it). Private attributes of CPython's executor,
    each guarded: if one moves, the job still fails instead of hanging, and only the thread
    is left behind."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with suppress(Exception):
            process.kill()
    with suppress(Exception):
        pool._result_queue._writer.close()  # type: ignore[attr-defined]


def _run(work: ShardWork, runs: np.ndarray, deadline_wall: float | None, shard: int,
         table: Any, stop: Any) -> ShardResult:
    """In a worker: one shard, reporting progress to the table and reading the cancel flag
    (both round trips to the manager process, so at most every REMOTE_CHECK_S). A manager
    that is gone fails the shard as a broken pool, which the job's thread heals."""
    def write(state: tuple[int, int, int]) -> None:
        try:
            table[shard] = state
        except _MANAGER_GONE as exc:  # the job's thread heals the pool and runs it again
            raise BrokenProcessPool(f"the pool's manager process is gone ({exc!r})") from None

    def is_set() -> bool:
        try:
            return bool(stop.is_set())
        except _MANAGER_GONE as exc:
            raise BrokenProcessPool(f"the pool's manager process is gone ({exc!r})") from None

    report, cancelled = throttled(write, is_set)
    return run_shard(work, runs, deadline_wall=deadline_wall, cancel=cancelled,
                     progress=report)
