"""Faults of the local process pool: its manager process killed between jobs and mid-job, a
worker frozen (SIGSTOP) while its job is cancelled. The pool heals (a new pool, the shards
run again: the same answer), and a frozen worker holds a cancel for a bound, not forever."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from optim_core import StopCriteria, resolve_starts
from optim_core.api import sweep
from optim_core.losses.catalog import builtin_loss
from service.executors import pool as pool_module
from service.executors.pool import PoolExecutor
from tests.service.shard_watch import Watching

LOSS = builtin_loss("rosenbrock")
STARTS = resolve_starts(LOSS, {"random": {"n": 3000, "seed": 8}})
GRID = {"lr": [0.01, 0.05]}
OPTIONS = {"max_steps": 300, "stop": StopCriteria(grad_tol=0)}


@pytest.fixture
def pool() -> Iterator[PoolExecutor]:
    executor = PoolExecutor(2)
    try:
        yield executor
    finally:
        executor.close()


def _one_batch():
    return sweep(LOSS, {"name": "adam"}, GRID, STARTS, shards=[np.arange(6000)], **OPTIONS)


def test_a_manager_killed_between_jobs_costs_no_job(pool) -> None:
    first = sweep(LOSS, {"name": "adam"}, GRID, STARTS, executor=pool, **OPTIONS)
    os.kill(pool._manager._process.pid, signal.SIGKILL)
    pool._manager._process.join(10)
    expected = _one_batch()
    assert first.rows == expected.rows
    for _ in range(3):  # the next jobs: a new pool each time it is needed, never a failure
        again = sweep(LOSS, {"name": "adam"}, GRID, STARTS, executor=pool, **OPTIONS)
        assert again.rows == expected.rows
        assert np.array_equal(again.batch.final_params, expected.batch.final_params)


def test_a_manager_killed_mid_job_costs_a_rerun_not_the_job(pool) -> None:
    watch = Watching(pool)
    killed = threading.Event()

    def kill_the_manager(*state) -> None:
        if not killed.is_set() and watch.all_computing():
            killed.set()
            os.kill(pool._manager._process.pid, signal.SIGKILL)

    options = OPTIONS | {"max_steps": 3000}
    report = sweep(LOSS, {"name": "adam"}, GRID, STARTS, executor=watch,
                   progress=kill_the_manager, **options)
    assert killed.is_set()
    one = sweep(LOSS, {"name": "adam"}, GRID, STARTS, shards=[np.arange(6000)], **options)
    assert report.rows == one.rows
    assert np.array_equal(report.batch.final_params, one.batch.final_params)


def test_a_frozen_worker_holds_a_cancel_for_a_bound_and_the_pool_heals(pool) -> None:
    watch = Watching(pool)
    frozen: list[int] = []
    cancelled_at: list[float] = []

    def cancel() -> bool:
        if not watch.all_computing():
            return False
        if not frozen:  # freeze one worker mid-shard, then ask for the cancel
            frozen.append(next(iter(pool._pool._processes)))
            os.kill(frozen[0], signal.SIGSTOP)
            cancelled_at.append(time.monotonic())
        return True

    try:
        report = sweep(LOSS, {"name": "sgd"}, {"lr": [1e-6, 2e-6]}, STARTS,
                       max_steps=2_000_000, stop=StopCriteria(grad_tol=0), executor=watch,
                       cancel=cancel, progress=lambda *a: None)
    finally:
        for pid in frozen:  # killed by the executor; never leave a stopped process behind
            with_suppressed_kill(pid)
    took = time.monotonic() - cancelled_at[0]
    assert took < pool_module.CANCEL_GRACE_S + 10  # not the job's time budget
    status = report.batch.status
    assert set(status.tolist()) == {6}  # every run cancelled: partial, kept
    assert (report.batch.steps > 0).any() and (report.batch.steps < 2_000_000).all()
    assert pool._pool is None  # the pool with the frozen worker is gone
    after = sweep(LOSS, {"name": "adam"}, GRID, STARTS, executor=pool, **OPTIONS)
    assert after.rows == _one_batch().rows


def with_suppressed_kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
