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
        """The shards on the pool; a worker process that dies (killed, out of memory) breaks
        the pool: it is replaced and the shards run once more (they are deterministic)."""
        if len(shards) == 1:  # nothing to spread: no pool round trip
            report = None if progress is None else shard_progress(progress, 0)
            return [run_shard(work, shards[0], deadline_wall=deadline_wall, cancel=cancel,
                              progress=report)]
        for attempt in range(1 + POOL_RETRIES):
            try:
                return self._run_on_pool(work, shards, deadline_wall, cancel, progress)
            except BrokenProcessPool as exc:
                logger.warning("a pool worker died (%s); starting a new pool", exc)
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
        table = manager.dict()  # shard → (steps_done, total, active)
        stop = manager.Event()
        futures = [pool.submit(_run, work, runs, deadline_wall, i, table, stop)
                   for i, runs in enumerate(shards)]
        try:
            _follow(pool, futures, table, stop, cancel, progress)
            failed = [i for i, f in enumerate(futures) if f.done() and f.exception()]
            if failed:
                cause = futures[failed[0]].exception()
                if isinstance(cause, BrokenProcessPool):
                    raise cause
                raise ShardFailedError(failed[0], shards[failed[0]], 0, cause)  # type: ignore[arg-type]
            return [f.result() for f in futures]
        finally:
            with suppress(Exception):  # a broken pool's manager may be gone too
                stop.set()  # an error in one shard: the others stop at their next check
            for future in futures:
                future.cancel()

    def _reset(self) -> None:
        """Drop a broken pool (and its manager); the next job starts new ones."""
        with self._lock:
            pool, manager, self._pool, self._manager = self._pool, self._manager, None, None
        if pool is not None:
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
            stop: Any, cancel: Callable[[], bool] | None, progress: ShardProgressFn | None
            ) -> None:
    """Wait for the shards, passing their progress on and the job's cancel to them; a pool
    jammed by a worker that died mid-result is broken here (BrokenProcessPool)."""
    seen: dict[int, tuple[int, int, int]] = {}
    pending = set(futures)
    lost_at: float | None = None
    while pending:
        done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            return  # run_shards raises it
        if pending and _lost_a_worker(pool):
            lost_at = lost_at or time.monotonic()
            if time.monotonic() - lost_at > JAMMED_AFTER_S:
                _unjam(pool)
                raise BrokenProcessPool("a worker process died while sending its result")
        if cancel is not None and not stop.is_set() and cancel():
            stop.set()
        if progress is not None:
            for shard, state in dict(table).items():
                if seen.get(shard) != state:
                    seen[shard] = state
                    progress(shard, *state)


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
    (both round trips to the manager process, so at most every REMOTE_CHECK_S)."""
    def write(state: tuple[int, int, int]) -> None:
        table[shard] = state

    report, cancelled = throttled(write, stop.is_set)
    return run_shard(work, runs, deadline_wall=deadline_wall, cancel=cancelled,
                     progress=report)
