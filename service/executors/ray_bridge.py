"""The Ray executor in a process of its own, so that no fault of the cluster can end the API.

A Ray driver is bound to its node's raylet: when the raylet dies, Ray's core worker ends the
driver's process (on purpose, with exit code 1). Were the API process the driver, a lost raylet
would take every request and job of the replica with it. So the driver is a child process
(started with `spawn`, never forked from the serving process and its threads) that runs the
in-process RayExecutor (ray_cluster.py) and speaks to the API over a pipe:

    API → child   ("status", id) ("cpus", id) ("run", job, work, shards, deadline)
                  ("cancel", job) ("stop",)
    child → API   ("ready", info) ("failed", error) ("reply", id, value)
                  ("progress", job, shard, done, total, active) ("result", job, results)
                  ("error", job, exception)

When the child ends (its raylet was killed, the cluster went away), every job it was running
fails with `executor-unavailable` (a 503 problem; the job can be submitted again), /readyz
says not ready, and the next use starts a new child, which connects again (a `local` cluster
is started anew): the executor heals without a restart of the API.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import queue
import struct
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import numpy as np

from optim_core.shards import Plan, ShardProgressFn, ShardResult, ShardWork, parallel_shards
from service.errors import ExecutorUnavailableError
from service.settings import Settings

logger = logging.getLogger("service.executors")
CONNECT_S = 60.0  # how long a new child may take to join the cluster (a `local` one starts)
STATUS_S = 2.0  # a status question the child does not answer in this time: unreachable
RESTART_AFTER_S = 5.0  # a child that failed to connect is not started again sooner
POLL_S = 0.2  # how often a job's thread passes its cancel on
OUT_OF_BAND_BYTES = 1 << 16  # arrays at least this large cross the pipe as their own writes


class IsolatedRayExecutor:
    """The JobExecutor of OPTIM_EXECUTOR=ray: RayExecutor's behaviour, in a child process."""

    name = "ray"

    def __init__(self, settings: Settings) -> None:
        from service.executors import ray_cluster

        if ray_cluster.ray is None:
            raise ExecutorUnavailableError("OPTIM_EXECUTOR=ray needs Ray: install "
                                           "optim-service[ray] (or set OPTIM_EXECUTOR=local)")
        if not settings.ray_address:
            raise ExecutorUnavailableError(
                "OPTIM_EXECUTOR=ray needs OPTIM_RAY_ADDRESS: a cluster address (ray://host:10001,"
                " host:6379 or auto) or 'local' to start one")
        self.settings = settings
        self.address = settings.ray_address
        self.workers = settings.workers_cpu
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._failed_at = float("-inf")
        self._error: str | None = None

    # -- the child ---------------------------------------------------------------------------
    def _ensure(self, wait_s: float = CONNECT_S) -> _Child:
        """The connected child, starting one when there is none (or it died); raises
        ExecutorUnavailableError when the cluster cannot be reached."""
        with self._lock:
            child = self._child
            if child is None or not child.alive:
                if time.monotonic() - self._failed_at < RESTART_AFTER_S and self._error:
                    raise ExecutorUnavailableError(self._error)
                child = self._child = _Child(self.settings)
        try:
            child.wait_ready(wait_s)
        except ExecutorUnavailableError as exc:
            with self._lock:
                if child.finished:
                    self._failed_at, self._error = time.monotonic(), exc.detail
            raise
        return child

    def connect(self) -> None:
        """Start joining the cluster now (at start-up), without waiting: the API serves at
        once, /readyz says not ready until the cluster answers, and the first job waits for
        the connection (up to CONNECT_S) instead of starting it."""
        with suppress(ExecutorUnavailableError):
            self._ensure(wait_s=0)

    # -- JobExecutor -------------------------------------------------------------------------
    def shards(self, plan: Plan) -> list[np.ndarray]:
        """At least one shard per CPU of the cluster (when the batch is large enough)."""
        cpus = self._ensure().ask("cpus", timeout_s=CONNECT_S)
        return parallel_shards(plan, int(cpus or self.workers))

    def run_shards(self, work: ShardWork, shards: Sequence[np.ndarray], *,
                   deadline_wall: float | None, cancel: Callable[[], bool] | None,
                   progress: ShardProgressFn | None) -> list[ShardResult]:
        child = self._ensure()
        job = uuid.uuid4().hex
        inbox = child.open(job)
        try:
            child.send(("run", job, work, list(shards), deadline_wall))
            cancelled = False
            while True:
                try:
                    message = inbox.get(timeout=POLL_S)
                except queue.Empty:
                    message = None
                if message is not None:
                    kind = message[0]
                    if kind == "progress" and progress is not None:
                        progress(*message[2:])
                    elif kind == "result":
                        return message[2]
                    elif kind == "error":
                        raise message[2]
                    elif kind == "lost":
                        raise ExecutorUnavailableError(
                            f"The connection to the Ray cluster at OPTIM_RAY_ADDRESS="
                            f"{self.address} was lost during the job (its raylet or the "
                            "cluster went away); submit the job again once /readyz is ready")
                if not cancelled and cancel is not None and cancel():
                    cancelled = True
                    child.send(("cancel", job))
        finally:
            child.close(job)

    def status(self) -> dict[str, Any]:
        """Reachable when the child is connected and the cluster answers it."""
        state: dict[str, Any] = {"name": self.name, "address": self.address}
        try:
            answer = self._ensure(wait_s=STATUS_S).ask("status", timeout_s=STATUS_S)
        except ExecutorUnavailableError as exc:
            return state | {"reachable": False, "error": exc.detail[:200]}
        return state | answer

    def close(self) -> None:
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            child.stop()


class _Child:
    """One driver process and the API side of its pipe: a reader thread routes each message
    to the job (or question) it belongs to."""

    def __init__(self, settings: Settings) -> None:
        self.address = settings.ray_address
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self.process = context.Process(
            target=_serve, name="optim-ray-driver", daemon=True,
            args=(child_end, settings.model_dump(include={
                "ray_address", "workers_cpu", "shard_retries", "executor"})))
        self.process.start()
        child_end.close()
        self._send_lock = threading.Lock()
        self._inboxes: dict[str, queue.Queue[tuple[Any, ...]]] = {}
        self._ready = threading.Event()
        self.error: str | None = None
        self.finished = False
        threading.Thread(target=self._read, name="optim-ray-reader", daemon=True).start()

    @property
    def alive(self) -> bool:
        return not self.finished and self.process.is_alive()

    def _read(self) -> None:
        try:
            while True:
                message = receive_message(self._conn)
                kind = message[0]
                if kind == "ready":
                    self._ready.set()
                elif kind == "failed":
                    self.error = message[1]
                    self._ready.set()
                else:
                    inbox = self._inboxes.get(message[1])
                    if inbox is not None:
                        inbox.put(message)
        except (EOFError, OSError):
            pass
        finally:  # the child ended: every waiting job and question learns it
            self.finished = True
            self._ready.set()
            for inbox in list(self._inboxes.values()):
                inbox.put(("lost", None))

    def wait_ready(self, timeout_s: float) -> None:
        if not self._ready.wait(timeout_s):
            raise ExecutorUnavailableError(f"Still connecting to the Ray cluster at "
                                           f"OPTIM_RAY_ADDRESS={self.address}")
        if self.error is not None:
            raise ExecutorUnavailableError(self.error)
        if self.finished:
            raise ExecutorUnavailableError("The Ray driver process ended (the cluster went "
                                           "away); it is started again on the next use")

    def open(self, key: str) -> queue.Queue[tuple[Any, ...]]:
        inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._inboxes[key] = inbox
        if self.finished:
            inbox.put(("lost", None))
        return inbox

    def close(self, key: str) -> None:
        self._inboxes.pop(key, None)

    def send(self, message: tuple[Any, ...]) -> None:
        try:
            with self._send_lock:
                send_message(self._conn, message)
        except (OSError, ValueError) as exc:  # the child is gone: its reader says so too
            raise ExecutorUnavailableError(f"The Ray driver process is gone ({exc})") from None

    def ask(self, question: str, timeout_s: float) -> Any:
        key = uuid.uuid4().hex
        inbox = self.open(key)
        try:
            self.send((question, key))
            try:
                answer = inbox.get(timeout=timeout_s)
            except queue.Empty:
                raise ExecutorUnavailableError(
                    f"The Ray cluster did not answer within {timeout_s:g} s") from None
            if answer[0] == "lost":
                raise ExecutorUnavailableError("The Ray driver process ended (the cluster "
                                               "went away)")
            return answer[2]
        finally:
            self.close(key)

    def stop(self) -> None:
        with suppress(ExecutorUnavailableError):
            self.send(("stop",))
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        with suppress(OSError):
            self._conn.close()


def _serve(conn: Any, settings: dict[str, Any]) -> None:
    """The child: join the cluster, then serve questions and jobs until told to stop or the
    API process is gone (its end of the pipe closed)."""
    from service.executors.ray_cluster import RayExecutor

    executor = RayExecutor(Settings(**settings))
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with suppress(OSError, ValueError), send_lock:
            send_message(conn, message)

    try:
        executor.connect()
    except ExecutorUnavailableError as exc:
        send(("failed", exc.detail))
        return
    send(("ready", None))
    cancelled: set[str] = set()

    def run(job: str, work: ShardWork, shards: list[np.ndarray], deadline: float | None) -> None:
        try:
            results = executor.run_shards(
                work, shards, deadline_wall=deadline, cancel=lambda: job in cancelled,
                progress=lambda *state: send(("progress", job, *state)))
        except Exception as exc:  # noqa: BLE001 - the API side raises it
            send(("error", job, _picklable(exc)))
        else:
            send(("result", job, results))
        finally:
            cancelled.discard(job)

    try:
        while True:
            message = receive_message(conn)
            kind = message[0]
            if kind == "stop":
                break
            if kind == "run":
                threading.Thread(target=run, args=message[1:], daemon=True).start()
            elif kind == "cancel":
                cancelled.add(message[1])
            elif kind == "status":
                send(("reply", message[1], executor.status()))
            elif kind == "cpus":
                send(("reply", message[1], executor.cpus()))
    except (EOFError, OSError):
        pass  # the API process is gone
    finally:
        executor.close()


def send_message(conn: Any, message: Any) -> None:
    """Pickle protocol 5 with the arrays' memory sent out of band, each buffer written
    straight from the array (a job's trajectories are hundreds of MB: a plain pickle through
    the pipe took ~1 s for 330 MB, this ~4× less)."""
    buffers: list[pickle.PickleBuffer] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        if buffer.raw().nbytes < OUT_OF_BAND_BYTES:
            return True  # small: in the pickle itself (a write per array would cost more)
        buffers.append(buffer)
        return False

    head = pickle.dumps(message, protocol=5, buffer_callback=out_of_band)
    conn.send_bytes(struct.pack("!I", len(buffers)))
    conn.send_bytes(head)
    for buffer in buffers:
        conn.send_bytes(buffer.raw())


def receive_message(conn: Any) -> Any:
    (count,) = struct.unpack("!I", conn.recv_bytes())
    head = conn.recv_bytes()
    buffers = []
    for _ in range(count):  # writable copies: arrays built on them may be written to
        buffers.append(bytearray(conn.recv_bytes()))
    return pickle.loads(head, buffers=buffers)


def _picklable(exc: Exception) -> Exception:
    """The exception itself when it survives pickling, else its text as a RuntimeError."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc
