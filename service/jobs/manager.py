"""The job manager: validates like the synchronous endpoints, queues jobs in the store, and
runs a runner that claims queued jobs under leases (any process on the same store may run
any job), keeps progress current, honours cancel requests between steps, and on shutdown
hands its running jobs back to the queue instead of storing a result that looks like a
cancel.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import anyio.to_thread

from optim_core.errors import OptimCoreError
from optim_core.shards import ShardExecutor
from service import translate
from service.compute import ComputeGate
from service.jobs.schemas import JOB_KINDS, JOB_REQUESTS, Job
from service.jobs.store import Store
from service.jsonio import dumps
from service.problems import OverloadedError, problem_for
from service.settings import Settings

logger = logging.getLogger("service.jobs")
PROGRESS_INTERVAL_S = 0.25  # store writes per job are throttled to this rate
INTERRUPTED = {
    "type": "/problems/interrupted", "title": "Job interrupted", "status": 500,
    "detail": "The job's runner stopped (the process died or was killed) on every attempt; "
              "submit it again.",
}

RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "optimize": translate.run_optimize,
    "compare": translate.run_optimize,
    "sweep": translate.run_sweep,
}


def owner_id() -> str:
    """A runner's name in the store: host, process and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobManager:
    def __init__(self, store: Store, gate: ComputeGate, settings: Settings,
                 executor: ShardExecutor | None = None) -> None:
        self.store = store
        self.executor = executor  # where a job's large batches run (None: in this thread)
        self.gate = gate
        self.settings = settings
        self.job_settings = settings.for_jobs()
        self.owner = owner_id()
        self.running: dict[str, asyncio.Task[None]] = {}
        self.lost: set[str] = set()  # running here, but their lease went to another runner
        self.stopping = False
        self._runner: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    # -- submitting --------------------------------------------------------------------------
    async def submit(self, kind: str, request: Any) -> str:
        """Validate (400/413 as the endpoint would), then queue; 429 when too many are active."""
        active = await anyio.to_thread.run_sync(self.store.count_active)
        if active >= self.settings.job_max_active:
            raise OverloadedError(self.settings.retry_after_s)
        try:
            await anyio.to_thread.run_sync(lambda: RUNNERS[kind](request, self.job_settings,
                                                                  dry_run=True))
        except OptimCoreError as exc:  # its loc points into the job's `request`
            if exc.loc is not None:
                exc.loc = ["request", *exc.loc]
            raise
        job_id = await anyio.to_thread.run_sync(
            self.store.create, kind, request.model_dump(mode="json", exclude_unset=True))
        self.start()
        assert self._wake is not None
        self._wake.set()
        return job_id

    # -- the runner --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the runner and the lease heartbeat on this event loop (idempotent)."""
        if self._runner is None and not self.stopping:
            self._wake = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._runner = loop.create_task(self._run_queue())
            self._heartbeat = loop.create_task(self._renew_leases())

    async def _run_queue(self) -> None:
        """Claim queued jobs while a job slot is free; requeue jobs whose runner died."""
        assert self._wake is not None
        while not self.stopping:
            try:
                await anyio.to_thread.run_sync(
                    self.store.requeue_expired, self.settings.job_max_attempts,
                    self.settings.job_ttl_s, INTERRUPTED)
                while self.gate.job_slot_free and not self.stopping:
                    job = await anyio.to_thread.run_sync(self.store.claim, self.owner,
                                                         self.settings.job_lease_s)
                    if job is None:
                        break
                    self.running[job["id"]] = asyncio.get_running_loop().create_task(
                        self._run(job))
            except Exception:  # the store is briefly unavailable: try again next round
                logger.exception("job runner round failed")
            self._wake.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.job_poll_interval_s)

    async def _renew_leases(self) -> None:
        """Heartbeat: renew the leases of this runner's jobs well before they run out."""
        while not self.stopping:
            await asyncio.sleep(self.settings.job_lease_s / 3)
            if self.running:
                mine = list(self.running)
                try:
                    held = await anyio.to_thread.run_sync(self.store.renew, mine, self.owner,
                                                          self.settings.job_lease_s)
                except Exception:  # the store is briefly unavailable: the lease may hold
                    logger.warning("could not renew the leases of %d job(s)", len(mine))
                    continue
                for job_id in (set(mine) - held) & set(self.running):  # lease ran out
                    logger.warning("job %s: lease lost; its new runner has it", job_id)
                    self.lost.add(job_id)  # stop computing it (its end would be refused)

    async def _run(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        try:
            request = JOB_REQUESTS[job["kind"]].model_validate(job["request"])
            await self.gate.run_job(lambda: self._execute(job_id, job["kind"], request))
        except Exception as exc:  # a last guard: a job is never left running
            logger.exception("job %s crashed", job_id)
            _, problem, _ = problem_for(exc)
            await anyio.to_thread.run_sync(lambda: self.store.finish(
                job_id, "failed", error=problem, ttl_s=self.settings.job_ttl_s,
                owner=self.owner))
        finally:
            self.running.pop(job_id, None)
            self.lost.discard(job_id)
            if self._wake is not None:
                self._wake.set()  # a job slot is free again

    def _execute(self, job_id: str, kind: str, request: Any) -> None:
        began = time.monotonic()
        last_write = 0.0
        cancelled = False

        def progress(done: int, total: int, active: int) -> None:
            nonlocal last_write
            now = time.monotonic()
            if now - last_write < PROGRESS_INTERVAL_S and active:
                return
            last_write = now
            fraction = min(done / total, 1.0) if total else 1.0
            elapsed = now - began
            eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
            self.store.set_progress(job_id, {
                "steps_done": done, "steps_total": total, "runs_active": active,
                "fraction": fraction, "eta_s": eta}, self.owner)

        def cancel() -> bool:
            nonlocal cancelled
            cancelled = cancelled or self.store.cancel_requested(job_id)
            return cancelled or self.stopping or job_id in self.lost

        ttl = self.settings.job_ttl_s
        try:
            answer = RUNNERS[kind](request, self.job_settings, progress=progress, cancel=cancel,
                                   executor=self.executor)
            result = dumps(answer)
        except Exception as exc:  # every failure is kept as the job's problem document
            status, problem, _ = problem_for(exc)
            if status >= 500:
                logger.exception("job %s failed", job_id)
            self.store.finish(job_id, "failed", error=problem, ttl_s=ttl, owner=self.owner)
            return
        if job_id in self.lost:  # another runner holds it now: nothing of ours to store
            return
        if self.stopping and not cancelled:  # a shutdown, not the user's cancel: run again
            self.store.release(job_id, self.owner)
            return
        self.store.finish(job_id, "cancelled" if cancelled else "succeeded", result=result,
                          ttl_s=ttl, owner=self.owner)

    # -- cancel, expiry, shutdown ------------------------------------------------------------
    def cancel(self, job_id: str) -> None:
        """Queued: cancelled at once. Running (here or in another process): the engine stops
        at its next check, and its runner stores what it computed."""
        job = self.store.get(job_id)
        if job is None or job["status"] not in ("queued", "running"):
            return
        self.store.request_cancel(job_id)
        if job["status"] == "queued":
            self.store.finish(job_id, "cancelled", ttl_s=self.settings.job_ttl_s)

    async def sweep_expired(self) -> None:
        """Delete expired jobs every job_sweep_interval_s (runs for the app's lifetime)."""
        while True:
            await asyncio.sleep(self.settings.job_sweep_interval_s)
            deleted = await anyio.to_thread.run_sync(self.store.delete_expired)
            if deleted:
                logger.info("deleted %d expired job(s)", deleted)

    async def shutdown(self) -> None:
        """Stop claiming; running jobs stop between steps and go back to the queue, where
        this or another process runs them again (jobs are deterministic: same answer)."""
        self.stopping = True
        for task in (self._runner, self._heartbeat):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        if self.running:
            await asyncio.wait(list(self.running.values()),
                               timeout=self.settings.job_shutdown_grace_s)
        for job_id in list(self.running):  # still computing past the grace period
            await anyio.to_thread.run_sync(self.store.release, job_id, self.owner)


def job_document(job: dict[str, Any]) -> Job:
    """The public view of a job."""
    base = f"/v1/jobs/{job['id']}"
    progress = job["progress"] or {"steps_done": 0, "steps_total": None, "runs_active": None,
                                   "fraction": 0.0, "eta_s": None}
    document: Job = {
        "id": job["id"], "kind": job["kind"], "status": job["status"], "progress": progress,
        "attempts": job["attempts"],
        "created_at": _iso(job["created_at"]), "started_at": _iso(job["started_at"]),
        "finished_at": _iso(job["finished_at"]), "error": job["error"],
        "links": {"self": base, "result": f"{base}/result", "events": f"{base}/events"},
    }
    if job["reason"]:
        document["reason"] = job["reason"]
    if job["cancel_requested"] and job["status"] == "running":
        document["cancel_requested"] = True
    return document


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + \
        f".{int((timestamp % 1) * 1000):03d}Z"


__all__ = ["JOB_KINDS", "JobManager", "job_document"]
