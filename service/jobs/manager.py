"""The job manager: validates like the synchronous endpoints, runs jobs on the shared compute
limiter, keeps progress current in the store, honours cancel requests between steps."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread

from optim_core.errors import OptimCoreError
from service import translate
from service.compute import ComputeGate
from service.jobs.schemas import JOB_KINDS
from service.jobs.store import JobStore
from service.jsonio import dumps
from service.problems import OverloadedError, problem_for
from service.settings import Settings

logger = logging.getLogger("service.jobs")
PROGRESS_INTERVAL_S = 0.25  # store writes per job are throttled to this rate
INTERRUPTED = {
    "type": "/problems/interrupted", "title": "Job interrupted", "status": 500,
    "detail": "The service stopped while this job was queued or running; submit it again.",
}

RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "optimize": translate.run_optimize,
    "compare": translate.run_optimize,
    "sweep": translate.run_sweep,
}


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive_owners(store: JobStore) -> set[str]:
    """Owners on this host whose process still runs (other workers of this service)."""
    host = socket.gethostname()
    alive = set()
    for owner in store.running_owners():
        name, _, pid = owner.rpartition(":")
        if name == host and pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                alive.add(owner)
            except OSError:
                pass
    return alive


class JobManager:
    def __init__(self, store: JobStore, gate: ComputeGate, settings: Settings) -> None:
        self.store = store
        self.gate = gate
        self.settings = settings
        self.job_settings = settings.for_jobs()
        self.owner = owner_id()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        interrupted = store.interrupt_orphans(_alive_owners(store), settings.job_ttl_s,
                                              INTERRUPTED)
        if interrupted:
            logger.warning("marked %d job(s) of a previous process as interrupted", interrupted)

    async def submit(self, kind: str, request: Any) -> str:
        """Validate (400/413 as the endpoint would), then queue; 429 when too many are active."""
        if self.store.count_active() >= self.settings.job_max_active:
            raise OverloadedError(self.settings.retry_after_s)
        try:
            await anyio.to_thread.run_sync(lambda: RUNNERS[kind](request, self.job_settings,
                                                                  dry_run=True))
        except OptimCoreError as exc:  # its loc points into the job's `request`
            if exc.loc is not None:
                exc.loc = ["request", *exc.loc]
            raise
        job_id = self.store.create(kind, request.model_dump(mode="json", exclude_unset=True))
        self.tasks[job_id] = asyncio.get_running_loop().create_task(
            self._run(job_id, kind, request))
        return job_id

    async def _run(self, job_id: str, kind: str, request: Any) -> None:
        try:
            await anyio.to_thread.run_sync(lambda: self._execute(job_id, kind, request),
                                           limiter=self.gate.limiter)
        except Exception as exc:  # a last guard: a job is never left queued or running
            logger.exception("job %s crashed", job_id)
            _, problem, _ = problem_for(exc)
            self.store.finish(job_id, "failed", error=problem, ttl_s=self.settings.job_ttl_s)
        finally:
            self.tasks.pop(job_id, None)

    def _execute(self, job_id: str, kind: str, request: Any) -> None:
        if not self.store.mark_running(job_id, self.owner):
            return  # cancelled while queued
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
                "fraction": fraction, "eta_s": eta})

        def cancel() -> bool:
            nonlocal cancelled
            cancelled = cancelled or self.store.cancel_requested(job_id)
            return cancelled

        try:
            answer = RUNNERS[kind](request, self.job_settings, progress=progress, cancel=cancel)
            result = dumps(answer)
        except Exception as exc:  # every failure is kept as the job's problem document
            status, problem, _ = problem_for(exc)
            if status >= 500:
                logger.exception("job %s failed", job_id)
            self.store.finish(job_id, "failed", error=problem, ttl_s=self.settings.job_ttl_s)
            return
        self.store.finish(job_id, "cancelled" if cancelled else "succeeded", result=result,
                          ttl_s=self.settings.job_ttl_s)

    def cancel(self, job_id: str) -> None:
        """Queued: cancelled at once. Running: the engine stops at its next check."""
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
            deleted = self.store.delete_expired()
            if deleted:
                logger.info("deleted %d expired job(s)", deleted)

    async def shutdown(self) -> None:
        for job_id in list(self.tasks):
            self.store.request_cancel(job_id)
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=5)


def job_document(job: dict[str, Any]) -> dict[str, Any]:
    """The public view of a job."""
    base = f"/v1/jobs/{job['id']}"
    progress = job["progress"] or {"steps_done": 0, "steps_total": None, "runs_active": None,
                                   "fraction": 0.0, "eta_s": None}
    if job["status"] == "succeeded":
        progress = progress | {"fraction": 1.0, "eta_s": 0.0, "runs_active": 0}
    document = {
        "id": job["id"], "kind": job["kind"], "status": job["status"], "progress": progress,
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
