"""Shards as Ray tasks on a cluster (OPTIM_EXECUTOR=ray, OPTIM_RAY_ADDRESS).

One task per shard, retried by Ray when its worker dies (shards are deterministic, so a
retry computes the same numbers); an exception raised in a shard is not retried, since the
same numbers raise it again (and a retry would wait behind every queued shard). The job's
work (loss, starts, options) goes into the object store once; a small actor carries each
job's progress one way and its cancel flag the other. The actor is one per API process,
keyed by job, not one per job: an actor is a worker process of its own, and starting one
cost ~1 s of a 2-CPU machine per job. The deadline travels as wall-clock time. A shard that
fails fails the job with a problem document naming the shard, and the job's other shards
stop at their next check of the flag.

Shards are only ever stopped through that flag, never by `ray.cancel`: cancelling a task
whose large result is already in the object store but whose reply is still in flight trips
a check in Ray's core worker (ray 2.60: "Tried to complete task that was not pending") that
ends the calling process, which for us is an API replica.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from optim_core.shards import (
    Plan,
    ShardProgressFn,
    ShardResult,
    ShardWork,
    parallel_shards,
    run_shard,
)
from service.errors import ExecutorUnavailableError, ShardFailedError
from service.executors.throttle import throttled
from service.settings import Settings

POLL_S = 0.2
CONTROL_TIMEOUT_S = 5.0  # a control actor that does not answer in this time is replaced

try:
    import ray
except ImportError:  # checked at start-up: OPTIM_EXECUTOR=ray needs the [ray] extra
    ray = None
    _CLUSTER_LOST: tuple[type[BaseException], ...] = ()
else:  # faults of the cluster (a raylet, a node, the GCS), as opposed to a shard's own
    _CLUSTER_LOST = (ray.exceptions.LocalRayletDiedError, ray.exceptions.NodeDiedError,
                     ray.exceptions.RaySystemError, ray.exceptions.ObjectLostError)


class RayExecutor:
    name = "ray"

    def __init__(self, settings: Settings) -> None:
        if ray is None:
            raise ExecutorUnavailableError("OPTIM_EXECUTOR=ray needs Ray: install "
                                           "optim-service[ray] (or set OPTIM_EXECUTOR=local)")
        if not settings.ray_address:
            raise ExecutorUnavailableError(
                "OPTIM_EXECUTOR=ray needs OPTIM_RAY_ADDRESS: a cluster address (ray://host:10001, "
                "host:6379 or auto) or 'local' to start one")
        self.address = settings.ray_address
        self.retries = settings.shard_retries
        self.workers = settings.workers_cpu
        self._lock = threading.Lock()
        self._remote: Any = None
        self._control: Any = None
        self._owns_ray = False  # whether this executor called ray.init (and so shuts it down)

    def _connect(self) -> None:
        with self._lock:
            if self._remote is not None:
                return
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            if not ray.is_initialized():
                options: dict[str, Any] = {"log_to_driver": False}
                if self.address == "local":  # a cluster of our own: no dashboard
                    options |= {"num_cpus": self.workers, "include_dashboard": False}
                try:
                    ray.init(address=self.address, **options)
                except Exception as exc:  # unreachable, refused, version mismatch, …
                    raise ExecutorUnavailableError(
                        f"Cannot reach the Ray cluster at OPTIM_RAY_ADDRESS={self.address}: "
                        f"{_last_line(exc)}") from exc
                self._owns_ray = True
            self._remote = ray.remote(_run_shard)
            self._control = ray.remote(num_cpus=0)(JobControl).remote()

    def connect(self) -> None:
        self._connect()

    def cpus(self) -> int:
        self._connect()
        return int(ray.cluster_resources().get("CPU", self.workers))

    def shards(self, plan: Plan) -> list[np.ndarray]:
        """At least one shard per CPU of the cluster (when the batch is large enough)."""
        return parallel_shards(plan, self.cpus())

    def run_shards(self, work: ShardWork, shards: Sequence[np.ndarray], *,
                   deadline_wall: float | None, cancel: Callable[[], bool] | None,
                   progress: ShardProgressFn | None) -> list[ShardResult]:
        self._connect()
        work_ref = ray.put(work)
        control, job = self._control, uuid.uuid4().hex
        task = self._remote.options(max_retries=self.retries, retry_exceptions=False)
        refs = [task.remote(work_ref, runs, deadline_wall, control, job, i)
                for i, runs in enumerate(shards)]
        index = {ref.hex(): i for i, ref in enumerate(refs)}
        results: list[ShardResult | None] = [None] * len(refs)
        pending, seen, cancelled = list(refs), {}, False
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S)
                for ref in done:  # each result fetched once, as its shard finishes
                    i = index[ref.hex()]
                    try:
                        results[i] = ray.get(ref)
                    except _CLUSTER_LOST as exc:  # the node or the cluster, not the shard
                        raise ExecutorUnavailableError(
                            f"The Ray cluster at OPTIM_RAY_ADDRESS={self.address} lost the "
                            f"job's shard {i} ({_first_line(exc)}); submit the job again once "
                            "/readyz is ready") from None
                    except Exception as exc:
                        lost = not isinstance(exc, ray.exceptions.RayTaskError)
                        raise ShardFailedError(i, shards[i], self.retries if lost else 0,
                                               exc) from None
                if not cancelled and cancel is not None and cancel():
                    cancelled = self._tell(lambda: control.cancel.remote(job))
                if progress is not None:
                    for shard, state in self._snapshot(control, job).items():
                        if seen.get(shard) != state:
                            seen[shard] = state
                            progress(shard, *state)
            return results  # type: ignore[return-value]
        finally:
            _release(control, job, stop_the_rest=bool(pending) and not cancelled)

    def _snapshot(self, control: Any, job: str) -> dict[int, tuple[int, int, int]]:
        """The job's progress from its control actor; an actor that died (killed, its node
        lost) is replaced for the next jobs, and this one goes on without progress."""
        try:
            return ray.get(control.snapshot.remote(job), timeout=CONTROL_TIMEOUT_S)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            self._replace_control(control)
            return {}

    def _tell(self, call: Callable[[], Any]) -> bool:
        try:
            call()
        except ray.exceptions.RayActorError:
            return False
        return True

    def _replace_control(self, dead: Any) -> None:
        with self._lock:
            if self._control is dead:
                self._control = ray.remote(num_cpus=0)(JobControl).remote()

    def status(self) -> dict[str, Any]:
        """Reachable when this process is connected and the cluster answers."""
        state: dict[str, Any] = {"name": self.name, "address": self.address}
        try:
            self._connect()
            cpus = ray.cluster_resources().get("CPU", 0)
            state.update(reachable=True, workers=int(cpus))
        except Exception as exc:
            state.update(reachable=False, error=str(exc)[:200])
        return state

    def close(self) -> None:
        """Disconnect (a remote cluster keeps running; a 'local' one ends with it)."""
        if self._owns_ray and ray is not None and ray.is_initialized():
            ray.shutdown()
        self._remote = self._control = None
        self._owns_ray = False


def _release(control: Any, job: str, *, stop_the_rest: bool) -> None:
    """The job's progress is dropped; shards still queued or running (a shard failed, the
    cluster went away) are told to stop. Best effort: the actor may be gone with the cluster."""
    try:
        if stop_the_rest:
            control.cancel.remote(job)
        control.forget.remote(job)
    except Exception:  # noqa: BLE001 - nothing left to tell
        pass


class JobControl:
    """Shards report progress here; a job's thread sets its cancel flag (keyed by job).

    A cancel flag outlives `forget`: a job's thread leaves as soon as one shard fails, while
    its other shards may still be queued and must find the flag when they start. The newest
    KEEP_CANCELLED flags are kept (a job id is 32 characters)."""

    KEEP_CANCELLED = 10_000

    def __init__(self) -> None:
        self.progress: dict[str, dict[int, tuple[int, int, int]]] = {}
        self.cancelled: dict[str, None] = {}  # insertion-ordered: the oldest go first

    def report(self, job: str, shard: int, done: int, total: int, active: int) -> None:
        self.progress.setdefault(job, {})[shard] = (done, total, active)

    def snapshot(self, job: str) -> dict[int, tuple[int, int, int]]:
        return dict(self.progress.get(job, {}))

    def cancel(self, job: str) -> None:
        self.cancelled[job] = None
        while len(self.cancelled) > self.KEEP_CANCELLED:
            del self.cancelled[next(iter(self.cancelled))]

    def is_cancelled(self, job: str) -> bool:
        return job in self.cancelled

    def forget(self, job: str) -> None:
        self.progress.pop(job, None)


def _run_shard(work: ShardWork, runs: np.ndarray, deadline_wall: float | None, control: Any,
               job: str, shard: int) -> ShardResult:
    """On a Ray worker: the shard, its progress sent to the job's actor (fire and forget),
    the cancel flag read from it; both at most every REMOTE_CHECK_S (each is a round trip
    that costs CPU the shards on a small machine need). An actor that is gone costs the shard
    its progress reports and its cancel, never its answer."""
    def report(state: tuple[int, int, int]) -> None:
        with contextlib.suppress(Exception):
            control.report.remote(job, shard, *state)

    def asked() -> bool:
        try:
            return bool(ray.get(control.is_cancelled.remote(job), timeout=CONTROL_TIMEOUT_S))
        except Exception:  # noqa: BLE001 - the actor is gone: no cancel can reach us
            return False

    progress, cancelled = throttled(report, asked)
    return run_shard(work, runs, deadline_wall=deadline_wall, cancel=cancelled,
                     progress=progress)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1][:300] if text else repr(exc)
