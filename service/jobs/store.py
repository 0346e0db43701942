"""The job store's rules, written once in SQL both databases speak: SQLite (service/jobs/sqlite.py,
the embedded default) and PostgreSQL (service/jobs/postgres.py, several replicas).

Every state change is written here, so any process of the service sees a job's status,
progress and cancel request, and finished results survive a restart.

Jobs are claimed, not owned by the process that accepted them: a runner takes the oldest
queued job in one write transaction (so two processes never take the same job), holds it under
a lease it renews by heartbeat, and only the holder of the lease may finish it. A job whose
lease ran out (its runner died) is queued again, up to the attempt limit, then failed with
reason `interrupted`; a runner that shuts down hands its jobs back to the queue.

Faults of the database are data, not crashes: every call that fails for the database's sake
(unreachable, restarting, its connection terminated, a read-only or full disk, a lock held too
long) raises StoreUnavailableError, which the service answers as 503 with Retry-After. Writes
are safe to retry: a job is created under an id chosen before the call (a create whose commit
landed but whose answer was lost is found on the retry, not made twice), and a finish is
recognised as done when the row already shows it.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

import orjson

from service.errors import JobLimitError, KeyQuotaError, StoreUnavailableError

T = TypeVar("T")
# ids are uuid4().hex: anything else is no job of ours, answered 404 before any store call (a
# NUL or a megabyte of id never reaches the database)
JOB_ID = re.compile(r"[0-9a-f]{32}")
_COLUMNS = ("id, kind, status, created_at, started_at, finished_at, progress, error, reason, "
            "owner, cancel_requested, attempts, key_id")
ACTIVE = ("queued", "running")

# One migration list for both databases: `{blob}` and `{real}` are each one's types.
MIGRATIONS = {
    1: """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            request {blob} NOT NULL,
            created_at {real} NOT NULL,
            started_at {real},
            finished_at {real},
            expires_at {real},
            progress {blob},
            error {blob},
            reason TEXT,
            owner TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            result {blob}
        );
        CREATE INDEX jobs_expiry ON jobs (expires_at)
    """,
    2: """
        ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN lease_expires_at {real};
        CREATE INDEX jobs_queue ON jobs (status, created_at)
    """,
    3: """
        ALTER TABLE jobs ADD COLUMN key_id TEXT;
        CREATE INDEX jobs_listing ON jobs (key_id, created_at)
    """,
    4: """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            scopes TEXT NOT NULL,
            created_at {real} NOT NULL,
            expires_at {real},
            revoked_at {real},
            rate {real},
            compute_seconds {real},
            max_active_jobs INTEGER,
            max_run_steps BIGINT
        );
        CREATE TABLE key_usage (
            key_id TEXT NOT NULL,
            replica TEXT NOT NULL,
            window_start BIGINT NOT NULL,
            requests BIGINT NOT NULL DEFAULT 0,
            compute_ms BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (key_id, replica, window_start)
        );
        CREATE INDEX key_usage_window ON key_usage (window_start)
    """,
}
SCHEMA_VERSION = max(MIGRATIONS)


def valid_job_id(job_id: str) -> bool:
    return JOB_ID.fullmatch(job_id) is not None


class Store(Protocol):
    """What the job manager and routes need of a store (SqlJobStore below)."""

    def create(self, job_id: str, kind: str, request: dict[str, Any], *, max_active: int,
               retry_after: int, key_id: str | None = None,
               key_max_active: int | None = None) -> None: ...
    def claim(self, owner: str, lease_s: float) -> dict[str, Any] | None: ...
    def renew(self, job_ids: list[str], owner: str, lease_s: float) -> set[str]: ...
    def release(self, job_id: str, owner: str) -> bool: ...
    def requeue_expired(self, max_attempts: int, ttl_s: float,
                        error: dict[str, Any]) -> int: ...
    def set_progress(self, job_id: str, progress: dict[str, Any], owner: str) -> None: ...
    def finish(self, job_id: str, status: str, *, result: bytes | None = None,
               error: dict[str, Any] | None = None, reason: str | None = None,
               ttl_s: float, owner: str | None = None,
               progress: dict[str, Any] | None = None) -> bool: ...
    def request_cancel(self, job_id: str) -> None: ...
    def delete(self, job_id: str) -> bool: ...
    def delete_expired(self, now: float | None = None) -> int: ...
    def get(self, job_id: str) -> dict[str, Any] | None: ...
    def get_many(self, job_ids: list[str]) -> dict[str, dict[str, Any]]: ...
    def listing(self, limit: int, before: tuple[float, str] | None = None,
                key_id: str | None = None) -> list[dict[str, Any]]: ...
    def result(self, job_id: str) -> bytes | None: ...
    def cancel_requested(self, job_id: str) -> bool: ...
    def cancel_flags(self, job_ids: list[str]) -> dict[str, bool]: ...
    def count_active(self) -> int: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


class SqlJobStore:
    """The store's rules in SQL (`?` placeholders); a subclass supplies the connection (a
    context manager that yields one and gives it back), the write transaction, how claimed
    rows are locked, and which of its driver's errors mean "the database is unavailable"."""

    LOCK_ROWS = ""  # appended to SELECTs whose rows a write transaction then updates
    UNAVAILABLE: tuple[type[BaseException], ...] = ()
    where = "the job store"

    def _connection(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _write_transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _lock_creates(self, conn: Any) -> None:
        """Serialise creates, so the active-jobs limit is checked and taken atomically (the
        SQLite write transaction already does; PostgreSQL takes an advisory lock)."""

    def _execute(self, conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return conn.execute(sql, params)

    def _call(self, work: Callable[[], T]) -> T:
        """Run one store operation; the database's faults become StoreUnavailableError."""
        try:
            return work()
        except self.UNAVAILABLE as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailableError(
                f"{self.where} is unavailable ({reason[:200]}); nothing was changed: retry "
                "shortly") from exc

    def _fetch(self, sql: str, *params: Any, rows: str = "one") -> Any:
        """One statement on a pooled connection: the first row, all rows, or the row count."""
        def work() -> Any:
            with self._connection() as conn:
                cur = self._execute(conn, sql, params)
                if rows == "one":
                    return cur.fetchone()
                if rows == "all":
                    return cur.fetchall()
                return cur.rowcount
        return self._call(work)

    def _transaction(self, work: Callable[[Any], T]) -> T:
        def run() -> T:
            with self._write_transaction() as conn:
                return work(conn)
        return self._call(run)

    # -- writes ------------------------------------------------------------------------------
    def create(self, job_id: str, kind: str, request: dict[str, Any], *, max_active: int,
               retry_after: int, key_id: str | None = None,
               key_max_active: int | None = None) -> None:
        """Queue a job under `job_id`, unless `max_active` jobs are queued or running
        (JobLimitError), or `key_max_active` of `key_id`'s (KeyQuotaError): the counts and the
        insert are one transaction, so concurrent submits on any number of replicas never pass
        a limit. Idempotent: a retried create of an id that exists changes nothing."""
        payload = orjson.dumps(request)

        def insert(conn: Any) -> None:
            self._lock_creates(conn)
            exists = self._execute(conn, "SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if exists:
                return
            active = self._execute(conn, "SELECT COUNT(*) FROM jobs WHERE status IN "
                                   "('queued', 'running')").fetchone()[0]
            if active >= max_active:
                raise JobLimitError(max_active, retry_after)
            if key_max_active is not None:
                own = self._execute(conn, "SELECT COUNT(*) FROM jobs WHERE key_id = ? AND "
                                    "status IN ('queued', 'running')", (key_id,)).fetchone()[0]
                if own >= key_max_active:
                    raise KeyQuotaError("max_active_jobs", key_max_active, retry_after,
                                        f"This key has {own} jobs queued or running, its limit "
                                        f"max_active_jobs = {key_max_active}")
            self._execute(conn, "INSERT INTO jobs (id, kind, status, request, created_at, key_id)"
                          " VALUES (?, ?, 'queued', ?, ?, ?)",
                          (job_id, kind, payload, time.time(), key_id))
        self._transaction(insert)

    def claim(self, owner: str, lease_s: float) -> dict[str, Any] | None:
        """Take the oldest queued job (with its request) under a lease, or None."""
        now = time.time()

        def take(conn: Any) -> Any:
            row = self._execute(conn, "SELECT id, kind, request, key_id FROM jobs WHERE status = "
                                "'queued' ORDER BY created_at LIMIT 1" + self.LOCK_ROWS
                                ).fetchone()
            if row is not None:
                self._execute(
                    conn, "UPDATE jobs SET status = 'running', owner = ?, attempts = attempts + "
                    "1, lease_expires_at = ?, started_at = COALESCE(started_at, ?), "
                    "progress = NULL WHERE id = ?", (owner, now + lease_s, now, row[0]))
            return row
        row = self._transaction(take)
        if row is None:
            return None
        return {"id": row[0], "kind": row[1], "request": orjson.loads(bytes(row[2])),
                "key_id": row[3]}

    def renew(self, job_ids: list[str], owner: str, lease_s: float) -> set[str]:
        """Extend the leases this owner holds; answers the ids that are still its own:
        running under its lease, or finished by it meanwhile (not lost, only done)."""
        if not job_ids:
            return set()
        marks = ",".join("?" * len(job_ids))
        self._fetch(f"UPDATE jobs SET lease_expires_at = ? WHERE owner = ? AND status = "
                    f"'running' AND id IN ({marks})", time.time() + lease_s, owner, *job_ids,
                    rows="count")
        rows = self._fetch(f"SELECT id FROM jobs WHERE owner = ? AND id IN ({marks})",
                           owner, *job_ids, rows="all")
        return {row[0] for row in rows}

    def release(self, job_id: str, owner: str) -> bool:
        """Hand a running job back to the queue (a shutdown, not a failure: the attempt is
        not counted)."""
        return self._fetch(
            "UPDATE jobs SET status = 'queued', owner = NULL, lease_expires_at = NULL, "
            "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, progress = NULL "
            "WHERE id = ? AND owner = ? AND status = 'running'", job_id, owner,
            rows="count") == 1

    def requeue_expired(self, max_attempts: int, ttl_s: float, error: dict[str, Any]) -> int:
        """Running jobs whose lease ran out: queued again, or failed (`interrupted`) after
        `max_attempts`. Answers how many were requeued or failed."""
        now = time.time()

        def sweep(conn: Any) -> int:
            expired = self._execute(
                conn, "SELECT id, attempts, progress FROM jobs WHERE status = 'running' AND "
                "(lease_expires_at IS NULL OR lease_expires_at < ?)" + self.LOCK_ROWS,
                (now,)).fetchall()
            for job_id, attempts, progress in expired:
                if attempts < max_attempts:
                    self._execute(conn, "UPDATE jobs SET status = 'queued', owner = NULL, "
                                  "lease_expires_at = NULL, progress = NULL WHERE id = ?",
                                  (job_id,))
                else:
                    self._execute(
                        conn, "UPDATE jobs SET status = 'failed', finished_at = ?, "
                        "expires_at = ?, error = ?, reason = 'interrupted', owner = NULL, "
                        "lease_expires_at = NULL, progress = ? WHERE id = ?",
                        (now, now + ttl_s, orjson.dumps(error),
                         orjson.dumps(final_progress(_loads(progress))), job_id))
            return len(expired)
        return self._transaction(sweep)

    def set_progress(self, job_id: str, progress: dict[str, Any], owner: str) -> None:
        self._fetch("UPDATE jobs SET progress = ? WHERE id = ? AND owner = ? AND "
                    "status = 'running'", orjson.dumps(progress), job_id, owner, rows="count")

    def finish(self, job_id: str, status: str, *, result: bytes | None = None,
               error: dict[str, Any] | None = None, reason: str | None = None,
               ttl_s: float, owner: str | None = None,
               progress: dict[str, Any] | None = None) -> bool:
        """A terminal state, written only by the lease holder (`owner`) of a running job, or
        for a queued one (`owner` None: a cancel before it started). `progress` is what was
        done (default: the last progress stored), made final: no runs active, no time left.
        True also when the row already shows this end by this owner (a retried finish whose
        first commit landed)."""
        now = time.time()
        if owner is None:
            guard, args = "status = 'queued'", ()
        else:
            guard, args = "status = 'running' AND owner = ?", (owner,)
        blob = None if result is None else zlib.compress(result, 6)
        problem = None if error is None else orjson.dumps(error)

        def write(conn: Any) -> bool:
            row = self._execute(conn, "SELECT progress, status, owner FROM jobs WHERE id = ?"
                                + self.LOCK_ROWS, (job_id,)).fetchone()
            if row is None:
                return False
            if row[1] == status and owner is not None and row[2] == owner:
                return True  # this finish landed before (a retry)
            final = final_progress(progress if progress is not None else _loads(row[0]),
                                   succeeded=status == "succeeded")
            cur = self._execute(
                conn, "UPDATE jobs SET status = ?, finished_at = ?, expires_at = ?, result = ?, "
                "error = ?, reason = ?, lease_expires_at = NULL, progress = ? WHERE id = ? AND "
                + guard, (status, now, now + ttl_s, blob, problem, reason, orjson.dumps(final),
                          job_id, *args))
            return cur.rowcount == 1
        return self._transaction(write)

    def request_cancel(self, job_id: str) -> None:
        self._fetch("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", job_id, rows="count")

    def delete(self, job_id: str) -> bool:
        """Remove a job and its result (a running one's runner finds it gone and stops)."""
        return self._fetch("DELETE FROM jobs WHERE id = ?", job_id, rows="count") == 1

    def delete_expired(self, now: float | None = None) -> int:
        return self._fetch("DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?",
                           now if now is not None else time.time(), rows="count")

    # -- reads -------------------------------------------------------------------------------
    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self._fetch(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", job_id)
        return None if row is None else _job(row)

    def get_many(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Several jobs in one round trip (the event streams' shared poll); deleted ones are
        absent."""
        if not job_ids:
            return {}
        marks = ",".join("?" * len(job_ids))
        rows = self._fetch(f"SELECT {_COLUMNS} FROM jobs WHERE id IN ({marks})", *job_ids,
                           rows="all")
        return {row[0]: _job(row) for row in rows}

    def listing(self, limit: int, before: tuple[float, str] | None = None,
                key_id: str | None = None) -> list[dict[str, Any]]:
        """Jobs newest first, `limit` of them, after the (created_at, id) cursor `before`;
        only `key_id`'s when given."""
        where, args = [], []
        if key_id is not None:
            where.append("key_id = ?")
            args.append(key_id)
        if before is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args += [before[0], before[0], before[1]]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._fetch(f"SELECT {_COLUMNS} FROM jobs{clause} ORDER BY created_at DESC, "
                           "id DESC LIMIT ?", *args, limit, rows="all")
        return [_job(row) for row in rows]

    def result(self, job_id: str) -> bytes | None:
        row = self._fetch("SELECT result FROM jobs WHERE id = ?", job_id)
        return None if row is None or row[0] is None else zlib.decompress(row[0])

    def cancel_requested(self, job_id: str) -> bool:
        """Whether the job's runner should stop: a cancel was asked, or the job was deleted."""
        row = self._fetch("SELECT cancel_requested FROM jobs WHERE id = ?", job_id)
        return row is None or bool(row[0])

    def cancel_flags(self, job_ids: list[str]) -> dict[str, bool]:
        """Each job's cancel flag, in one round trip; a deleted job is absent."""
        if not job_ids:
            return {}
        marks = ",".join("?" * len(job_ids))
        rows = self._fetch(f"SELECT id, cancel_requested FROM jobs WHERE id IN ({marks})",
                           *job_ids, rows="all")
        return {row[0]: bool(row[1]) for row in rows}

    def count_active(self) -> int:
        return self._fetch("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")[0]

    def ping(self) -> None:
        """A round trip (readiness): raises StoreUnavailableError when the store is down."""
        self._fetch("SELECT 1")


def _job(row: tuple[Any, ...]) -> dict[str, Any]:
    job = dict(zip([c.strip() for c in _COLUMNS.split(",")], row, strict=True))
    job["progress"] = _loads(job["progress"])
    job["error"] = _loads(job["error"])
    return job


def _loads(value: Any) -> Any:
    """A JSON blob (PostgreSQL drivers may hand out memoryview), or None."""
    return None if value is None else orjson.loads(bytes(value))


def final_progress(progress: dict[str, Any] | None, *, succeeded: bool = False
                   ) -> dict[str, Any]:
    """Terminal progress: nothing runs and nothing is left to wait for; a job that succeeded
    is whole, any other says how far it got."""
    current = progress or {"steps_done": 0, "steps_total": None, "fraction": 0.0}
    final = current | {"runs_active": 0, "eta_s": 0.0}
    if succeeded:
        final |= {"fraction": 1.0}
        if final.get("steps_total") is not None:
            final["steps_done"] = final["steps_total"]
    return final


def migrate(execute: Callable[[str], Any], current: int, types: dict[str, str]) -> None:
    """Apply the migrations after `current` with `execute(statement)`, recording each (the
    caller holds the transaction and, on PostgreSQL, the migration lock)."""
    for version in range(current + 1, SCHEMA_VERSION + 1):
        for statement in filter(str.strip, MIGRATIONS[version].format(**types).split(";")):
            execute(statement)
        execute(f"INSERT INTO schema_version (version) VALUES ({version})")


def backoff(attempts: int, first_s: float = 0.2, most_s: float = 5.0) -> Iterator[float]:
    """Waits between retries of a store write: doubling, capped."""
    wait = first_s
    for _ in range(attempts):
        yield wait
        wait = min(wait * 2, most_s)
