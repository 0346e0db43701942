"""The job manager: validates like the synchronous endpoints, queues jobs in the store, and
runs a runner that claims queued jobs under leases (any process on the same store may run
any job), keeps progress current, honours cancel requests between steps, and on shutdown
hands its running jobs back to the queue instead of storing a result that looks like a
cancel.

The store may fail at any moment (a database restart, a full disk): every store call has a
time limit and its own threads (`call`), and a failure is a 503 for a request, never a lost
job. The computing thread never touches the store: the event loop writes its progress and
reads its cancel flag (`_sync`), and stores its end, retrying with backoff. A runner that
cannot reach the store for a whole lease stops its jobs and writes nothing: the lease runs
out, and the job runs again where the store is reachable (jobs are deterministic).
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from optim_core.errors import OptimCoreError
from optim_core.shards import ShardExecutor
from service import studies, translate
from service.compute import ComputeGate
from service.errors import StoreUnavailableError
from service.jobs.schemas import JOB_KINDS, JOB_REQUESTS, Job, Progress
from service.jobs.store import Store, backoff
from service.jsonio import dumps, iso_time
from service.problems import problem_for
from service.settings import Settings

if TYPE_CHECKING:
    from service.auth.keys import KeyRecord
    from service.auth.quotas import QuotaBook

T = TypeVar("T")
logger = logging.getLogger("service.jobs")
SYNC_INTERVAL_S = 0.25  # progress written and cancel flags read this often per runner
WATCH_INTERVAL_S = 0.2  # the event streams' shared poll of the jobs they follow
WARN_EVERY_S = 30.0  # a store that stays out is logged this often, not every round
ETA_AFTER_S = 1.0  # no estimate of the time left until the rate was measured this long
INTERRUPTED = {
    "type": "/problems/interrupted", "title": "Job interrupted", "status": 500,
    "detail": "The job's runner stopped (the process died or was killed) on every attempt; "
              "submit it again.",
}

RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "optimize": translate.run_optimize,
    "compare": translate.run_optimize,
    "sweep": translate.run_sweep,
    "tune": studies.run_tune,
    "benchmark": studies.run_benchmark,
}


def owner_id() -> str:
    """A runner's name in the store: host, process and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class RunningJob:
    """A job this runner computes: what its thread reports, what the event loop tells it."""

    id: str
    began: float = field(default_factory=time.monotonic)
    progress: Progress | None = None  # the latest, from the computing thread
    written: Progress | None = None  # the latest stored
    first: tuple[float, float] | None = None  # (time, fraction) of the first report
    cancelled: bool = False  # asked by the user (or the job was deleted)
    lost: bool = False  # its lease went to another runner, or the store was out too long

    def report(self, done: int, total: int, active: int) -> None:
        """The engine's progress (on the computing thread): what was done, and the time left
        once the rate is measured (the first seconds include the set-up, not the rate)."""
        now = time.monotonic()
        fraction = min(done / total, 1.0) if total else 1.0
        if self.first is None:
            self.first = (now, fraction)
        first_at, first_fraction = self.first
        eta = None
        if active and now - first_at >= ETA_AFTER_S and fraction > first_fraction:
            eta = (now - first_at) * (1 - fraction) / (fraction - first_fraction)
        self.progress = {"steps_done": done, "steps_total": total, "runs_active": active,
                         "fraction": fraction, "eta_s": eta}


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
        self.jobs: dict[str, RunningJob] = {}
        self.stopping = False
        self.store_reachable_at = time.monotonic()  # the last store call that answered
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None
        # the threads of store calls: their own (a frozen database holds only these)
        self._store_threads = anyio.CapacityLimiter(max(4, settings.jobs_db_pool_size * 2))
        self._warned_at = float("-inf")
        self._watched: dict[str, int] = {}  # job id → event streams following it
        self._round: asyncio.Future[Any] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.quotas: QuotaBook | None = None  # per-key usage (OPTIM_AUTH=api_key)

    # -- store calls -------------------------------------------------------------------------
    async def call(self, fn: Callable[..., T], *args: Any, timeout_s: float | None = None
                   ) -> T:
        """A store call off the event loop, within the store timeout: a call that does not
        answer in time is left to finish on its thread, and this is a 503."""
        limit = timeout_s or self.settings.store_timeout_s + 1
        with anyio.move_on_after(limit):
            result = await anyio.to_thread.run_sync(lambda: fn(*args), abandon_on_cancel=True,
                                                    limiter=self._store_threads)
            self.store_reachable_at = time.monotonic()
            return result
        raise StoreUnavailableError(f"The job store did not answer within {limit:g} s; retry "
                                    "shortly")

    async def watch(self, job_id: str) -> dict[str, Any] | None:
        """The job as of the next shared poll: one store query every WATCH_INTERVAL_S serves
        every event stream of this replica, however many follow however many jobs."""
        self._watched[job_id] = self._watched.get(job_id, 0) + 1
        try:
            if self._round is None:
                self._round = asyncio.get_running_loop().create_future()
            round_ = self._round
            if self._watcher is None or self._watcher.done():
                self._watcher = asyncio.get_running_loop().create_task(self._poll_watched())
            jobs = await asyncio.shield(round_)
        finally:
            self._watched[job_id] -= 1
            if not self._watched[job_id]:
                del self._watched[job_id]
        if isinstance(jobs, StoreUnavailableError):
            raise jobs
        return jobs.get(job_id)

    async def _poll_watched(self) -> None:
        while self._watched:
            await asyncio.sleep(WATCH_INTERVAL_S)
            round_, self._round = self._round, None
            if round_ is None:
                continue
            try:
                jobs: Any = await self.call(self.store.get_many, list(self._watched))
            except StoreUnavailableError as exc:
                jobs = exc
            round_.set_result(jobs)

    # -- submitting --------------------------------------------------------------------------
    async def submit(self, kind: str, request: Any, key: KeyRecord | None = None) -> Job:
        """Validate (400/413 as the endpoint would), then queue in one store transaction that
        checks the active-jobs limits, the service's and the key's (429). Answers the job's
        document, made here: the job is accepted once the create committed, whatever a read
        after it would meet."""
        try:
            await anyio.to_thread.run_sync(lambda: RUNNERS[kind](request, self.job_settings,
                                                                  dry_run=True))
        except OptimCoreError as exc:  # its loc points into the job's `request`
            if exc.loc is not None:
                exc.loc = ["request", *exc.loc]
            raise
        job_id = uuid.uuid4().hex
        created = time.time()
        await self.call(lambda: self.store.create(
            job_id, kind, request.model_dump(mode="json", exclude_unset=True),
            max_active=self.settings.job_max_active, retry_after=self.settings.retry_after_s,
            key_id=None if key is None else key.id,
            key_max_active=None if key is None else key.limits.max_active_jobs))
        self.start()
        assert self._wake is not None
        self._wake.set()
        return job_document({"id": job_id, "kind": kind, "status": "queued", "progress": None,
                             "attempts": 0, "created_at": created, "started_at": None,
                             "finished_at": None, "error": None, "reason": None,
                             "cancel_requested": 0})

    # -- the runner --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the runner, the lease heartbeat and the progress sync (idempotent)."""
        if not self._tasks and not self.stopping:
            self._wake = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._run_queue()),
                           loop.create_task(self._renew_leases()),
                           loop.create_task(self._sync())]

    async def _run_queue(self) -> None:
        """Claim queued jobs while a job slot is free; requeue jobs whose runner died."""
        assert self._wake is not None
        while not self.stopping:
            try:
                await self.call(self.store.requeue_expired, self.settings.job_max_attempts,
                                self.settings.job_ttl_s, INTERRUPTED)
                while not self.stopping and self.gate.reserve_job():
                    try:
                        job = await self.call(self.store.claim, self.owner,
                                              self.settings.job_lease_s)
                    except BaseException:
                        self.gate.release_job()
                        raise
                    if job is None:
                        self.gate.release_job()
                        break
                    self.jobs[job["id"]] = RunningJob(job["id"])
                    self.running[job["id"]] = asyncio.get_running_loop().create_task(
                        self._run(job))
            except StoreUnavailableError as exc:  # try again next round
                self._warn(f"job runner: {exc.detail}")
            except Exception:
                logger.exception("job runner round failed")
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that meets
            # its timeout (gh-86296), and this loop then ran on past its task's cancel
            with suppress(TimeoutError):
                async with asyncio.timeout(self.settings.job_poll_interval_s):
                    await self._wake.wait()

    async def _renew_leases(self) -> None:
        """Heartbeat: renew the leases of this runner's jobs well before they run out; a job
        whose lease is gone, or whose store was unreachable for a whole lease, stops here."""
        lease = self.settings.job_lease_s
        renewed_at = time.monotonic()
        while not self.stopping:
            await asyncio.sleep(lease / 3)
            if not self.running:
                renewed_at = time.monotonic()
                continue
            mine = list(self.running)
            try:
                held = await self.call(self.store.renew, mine, self.owner, lease)
            except StoreUnavailableError:
                if time.monotonic() - renewed_at > lease * 0.9:  # another runner may take them
                    logger.warning("job store unreachable for a lease: stopping %d job(s) "
                                   "(they run again once their lease ends)", len(mine))
                    for job_id in mine:
                        self._lose(job_id)
                continue
            renewed_at = time.monotonic()
            for job_id in set(mine) - held:
                logger.warning("job %s: lease lost; its new runner has it", job_id)
                self._lose(job_id)

    def _warn(self, message: str) -> None:
        """A store fault, logged at most every WARN_EVERY_S (the runner retries each round)."""
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            logger.warning("%s", message)

    def _lose(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            job.lost = True  # stop computing it (its end would be refused)

    async def _sync(self) -> None:
        """Write each running job's latest progress and read its cancel flag (a deleted job
        counts as cancelled), for every job at once, every SYNC_INTERVAL_S."""
        while not self.stopping:
            await asyncio.sleep(SYNC_INTERVAL_S)
            jobs = [j for j in self.jobs.values() if not j.lost]
            if not jobs:
                continue
            try:
                for job in jobs:
                    if job.progress is not None and job.progress is not job.written:
                        progress = job.progress
                        await self.call(self.store.set_progress, job.id, progress, self.owner)
                        job.written = progress
                flags = await self.call(self.store.cancel_flags, [j.id for j in jobs])
            except StoreUnavailableError:
                continue  # progress waits; the heartbeat decides when the jobs are lost
            for job in jobs:
                job.cancelled = job.cancelled or flags.get(job.id, True)

    async def _run(self, claimed: dict[str, Any]) -> None:
        job_id = claimed["id"]
        job = self.jobs[job_id]
        try:
            try:
                request = JOB_REQUESTS[claimed["kind"]].model_validate(claimed["request"])
                began = time.monotonic()
                try:
                    end = await self.gate.run_job(lambda: self._execute(job, claimed["kind"],
                                                                        request))
                finally:  # its compute time counts against its key's compute seconds
                    if self.quotas is not None and claimed.get("key_id"):
                        self.quotas.charge(claimed["key_id"], time.monotonic() - began)
            except Exception as exc:  # a last guard: a job is never left running
                logger.exception("job %s crashed", job_id)
                end = {"status": "failed", "error": problem_for(exc)[1]}
            await self._store_end(job, end)
        finally:
            self.running.pop(job_id, None)
            self.jobs.pop(job_id, None)
            if self._wake is not None:
                self._wake.set()  # a job slot is free again

    def _execute(self, job: RunningJob, kind: str, request: Any) -> dict[str, Any]:
        """Compute the job (on a worker thread); answers how it ended, for _store_end."""
        try:
            answer = RUNNERS[kind](request, self.job_settings, progress=job.report,
                                   cancel=lambda: job.cancelled or job.lost or self.stopping,
                                   executor=self.executor)
            result = dumps(answer)
        except Exception as exc:  # every failure is kept as the job's problem document
            status, problem, _ = problem_for(exc)
            if status >= 500:
                logger.exception("job %s failed", job.id)
            return {"status": "failed", "error": problem, "progress": job.progress}
        if job.lost:  # another runner holds it now: nothing of ours to store
            return {"status": "lost"}
        if self.stopping and not job.cancelled:  # a shutdown, not the user's cancel: run again
            return {"status": "released"}
        return {"status": "cancelled" if job.cancelled else "succeeded", "result": result,
                "progress": job.progress}

    async def _store_end(self, job: RunningJob, end: dict[str, Any]) -> None:
        """Store the job's end, retrying while the store is out and the lease may hold; past
        that the job is left to its lease (it runs again elsewhere: same answer)."""
        status = end["status"]
        if status == "lost":
            return
        if status == "released":
            with suppress(StoreUnavailableError):
                await self.call(self.store.release, job.id, self.owner)
            return  # unreleased: its lease runs out and it is queued again
        for wait in backoff(attempts=12):
            if job.lost:
                return
            try:
                await self.call(lambda: self.store.finish(
                    job.id, status, result=end.get("result"), error=end.get("error"),
                    ttl_s=self.settings.job_ttl_s, owner=self.owner,
                    progress=end.get("progress")))
                return
            except StoreUnavailableError as exc:
                self._warn(f"job {job.id}: cannot store its end yet ({exc.detail})")
                if time.monotonic() - self.store_reachable_at > self.settings.job_lease_s:
                    return  # the lease has run out: another runner runs it again
                await asyncio.sleep(wait)

    # -- cancel, delete, expiry, shutdown ----------------------------------------------------
    def cancel(self, job_id: str) -> None:
        """Queued: cancelled at once. Running (here or in another process): the engine stops
        at its runner's next check, and its runner stores what it computed."""
        job = self.store.get(job_id)
        if job is None or job["status"] not in ("queued", "running"):
            return
        self.store.request_cancel(job_id)
        if job["status"] == "queued":
            self.store.finish(job_id, "cancelled", ttl_s=self.settings.job_ttl_s)
        running = self.jobs.get(job_id)
        if running is not None:
            running.cancelled = True

    def delete(self, job_id: str) -> bool:
        """Remove the job and its result; a running one stops at its runner's next check."""
        running = self.jobs.get(job_id)
        if running is not None:
            running.cancelled = True
        return self.store.delete(job_id)

    async def sweep_expired(self) -> None:
        """Delete expired jobs every job_sweep_interval_s (runs for the app's lifetime)."""
        while True:
            await asyncio.sleep(self.settings.job_sweep_interval_s)
            try:
                deleted = await self.call(self.store.delete_expired)
            except StoreUnavailableError:
                continue
            if deleted:
                logger.info("deleted %d expired job(s)", deleted)

    async def shutdown(self) -> None:
        """Stop claiming; running jobs stop between steps and go back to the queue, where
        this or another process runs them again (jobs are deterministic: same answer)."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        if self.running:
            await asyncio.wait(list(self.running.values()),
                               timeout=self.settings.job_shutdown_grace_s)
        for job_id in list(self.running):  # still computing past the grace period
            with suppress(StoreUnavailableError):
                await self.call(self.store.release, job_id, self.owner)


def job_document(job: dict[str, Any]) -> Job:
    """The public view of a job."""
    base = f"/v1/jobs/{job['id']}"
    progress = job["progress"] or {"steps_done": 0, "steps_total": None, "runs_active": None,
                                   "fraction": 0.0, "eta_s": None}
    document: Job = {
        "id": job["id"], "kind": job["kind"], "status": job["status"], "progress": progress,
        "attempts": job["attempts"],
        "created_at": iso_time(job["created_at"]), "started_at": iso_time(job["started_at"]),
        "finished_at": iso_time(job["finished_at"]), "error": job["error"],
        "links": {"self": base, "result": f"{base}/result", "events": f"{base}/events",
                  "cancel": f"{base}/cancel"},
    }
    if job["reason"]:
        document["reason"] = job["reason"]
    if job["cancel_requested"] and job["status"] == "running":
        document["cancel_requested"] = True
    return document




__all__ = ["JOB_KINDS", "JobManager", "job_document"]
