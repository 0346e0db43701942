"""The compute gate: at most N computations at once (requests and jobs alike), a short
bounded queue, and an immediate 429 beyond it, so the event loop (and /healthz) stays free.

Jobs that compute here (the local executor) take slots from the same limiter as synchronous
requests, but at most N − 1 of them (one on a single-slot service), so a small request always
finds a slot while jobs run. Jobs whose shards run on a cluster (Ray) hold no compute slot:
their thread mostly waits, so a replica runs up to `job_slots` of them (OPTIM_JOB_MAX_RUNNING)
beside its synchronous requests. A synchronous request never waits for a slot longer than its
time budget: then it gets a 503 with Retry-After instead of a late answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from service.errors import OverloadedError

T = TypeVar("T")


class ComputeGate:
    def __init__(self, max_concurrency: int, max_queue: int, retry_after_s: int,
                 job_slots: int | None = None, jobs_hold_slots: bool = True) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self.limiter = anyio.CapacityLimiter(max_concurrency)
        self.jobs_hold_slots = jobs_hold_slots  # False: jobs compute elsewhere (a cluster)
        default_slots = max(1, max_concurrency - 1) if jobs_hold_slots else 4 * max_concurrency
        self.job_slots = job_slots or default_slots
        if jobs_hold_slots:  # never all of them: a small request always finds one
            self.job_slots = min(self.job_slots, max(1, max_concurrency - 1))
        self.job_limiter = anyio.CapacityLimiter(self.job_slots)  # threads of remote jobs
        # the threads of synchronous compute: their own, never the default pool's, which
        # other work (a store call stuck on a frozen database) could hold
        self.threads = anyio.CapacityLimiter(max_concurrency)
        self.admitted = 0  # synchronous requests computing or waiting
        self.jobs_running = 0

    @property
    def busy(self) -> int:
        """Slots computing now: synchronous requests and jobs."""
        return int(self.limiter.borrowed_tokens)

    def idle_slots(self) -> int:
        """Compute slots no request or job holds now."""
        return max(0, self.max_concurrency - self.busy)

    @property
    def slots_for_requests(self) -> int:
        """Compute slots not held by jobs (jobs on a cluster hold none)."""
        return self.max_concurrency - (self.jobs_running if self.jobs_hold_slots else 0)

    @property
    def waiting(self) -> int:
        return max(0, self.admitted - self.slots_for_requests)

    def reserve_job(self) -> bool:
        """Take a job slot now, before the job is claimed (a runner claims only while it
        holds one, so jobs_running never exceeds job_slots); False when none is free."""
        if self.jobs_running >= self.job_slots:
            return False
        self.jobs_running += 1
        return True

    def release_job(self) -> None:
        self.jobs_running -= 1

    async def run(self, fn: Callable[..., T], *args: Any, inline: bool = False,
                  wait_s: float | None = None, **kwargs: Any) -> T:
        """Run `fn` on a worker thread, or raise OverloadedError at once when full.

        `inline` work (a few milliseconds at most, decided by the caller) runs right here on
        the event loop while a compute slot is free: the thread hop and the GIL hand-over cost
        more than such work itself. When every slot is taken the service is saturated, and
        such a request queues or gets its 429 like any other. A request that waits longer
        than `wait_s` for a slot gets a 503 (OverloadedError with `waited`).
        """
        if inline and self.busy < self.max_concurrency:
            return fn(*args, **kwargs)
        if self.admitted >= self.slots_for_requests + self.max_queue:
            raise OverloadedError(self.retry_after_s)
        self.admitted += 1
        try:
            try:
                self.limiter.acquire_nowait()  # a free slot is taken whatever the budget
            except anyio.WouldBlock:
                with anyio.move_on_after(wait_s) as waited:
                    await self.limiter.acquire()
                if waited.cancelled_caught:
                    raise OverloadedError(self.retry_after_s, waited_s=wait_s) from None
            try:
                return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs),
                                                      limiter=self.threads)
            finally:
                self.limiter.release()
        finally:
            self.admitted -= 1

    async def run_job(self, fn: Callable[[], T]) -> T:
        """Run a job's work on a worker thread, holding one compute slot when jobs compute
        here; the caller reserved its job slot (reserve_job), released here at the end."""
        limiter = self.limiter if self.jobs_hold_slots else self.job_limiter
        try:
            return await anyio.to_thread.run_sync(fn, limiter=limiter)
        finally:
            self.release_job()
