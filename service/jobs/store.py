"""The job store: one embedded SQLite file (WAL), versioned schema, compressed results.

Every state change is written here, so any process of the service sees a job's status,
progress and cancel request, and finished results survive a restart.

Jobs are claimed, not owned by the process that accepted them: a runner takes the oldest
queued job in one `BEGIN IMMEDIATE` transaction (so two processes never take the same job),
holds it under a lease it renews by heartbeat, and only the holder of the lease may finish it.
A job whose lease ran out (its runner died) is queued again, up to the attempt limit, then
failed with reason `interrupted`; a runner that shuts down hands its jobs back to the queue.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import orjson

SCHEMA_VERSION = 2
_MIGRATIONS = {
    1: """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            request BLOB NOT NULL,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            expires_at REAL,
            progress BLOB,
            error BLOB,
            reason TEXT,
            owner TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            result BLOB
        );
        CREATE INDEX jobs_expiry ON jobs (expires_at);
    """,
    2: """
        ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN lease_expires_at REAL;
        CREATE INDEX jobs_queue ON jobs (status, created_at);
    """,
}
_COLUMNS = ("id, kind, status, created_at, started_at, finished_at, progress, error, reason, "
            "owner, cancel_requested, attempts")


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations this database has not seen yet, in one write transaction."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
    for version in range(current + 1, SCHEMA_VERSION + 1):
        for statement in filter(str.strip, _MIGRATIONS[version].split(";")):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    conn.execute("COMMIT")


class Store(Protocol):
    """What the job manager and routes need of a store; SQLite (JobStore, here) and
    PostgreSQL (service/jobs/postgres.py) implement it with the same rules."""

    def create(self, kind: str, request: dict[str, Any]) -> str: ...
    def claim(self, owner: str, lease_s: float) -> dict[str, Any] | None: ...
    def renew(self, job_ids: list[str], owner: str, lease_s: float) -> set[str]: ...
    def release(self, job_id: str, owner: str) -> bool: ...
    def requeue_expired(self, max_attempts: int, ttl_s: float,
                        error: dict[str, Any]) -> int: ...
    def set_progress(self, job_id: str, progress: dict[str, Any], owner: str) -> None: ...
    def finish(self, job_id: str, status: str, *, result: bytes | None = None,
               error: dict[str, Any] | None = None, reason: str | None = None,
               ttl_s: float, owner: str | None = None) -> bool: ...
    def request_cancel(self, job_id: str) -> None: ...
    def delete_expired(self, now: float | None = None) -> int: ...
    def get(self, job_id: str) -> dict[str, Any] | None: ...
    def result(self, job_id: str) -> bytes | None: ...
    def cancel_requested(self, job_id: str) -> bool: ...
    def count_active(self) -> int: ...


class JobStoreUnavailableError(RuntimeError):
    """The job store cannot be created or opened (the service cannot start)."""


class SqlJobStore:
    """The store's rules written once in SQL both databases speak (`?` placeholders); a
    subclass supplies the connection, the write transaction and how claimed rows are locked."""

    LOCK_ROWS = ""  # appended to SELECTs whose rows a write transaction then updates

    def _conn(self) -> Any:
        raise NotImplementedError

    def _write_transaction(self) -> Any:
        raise NotImplementedError

    def _execute(self, conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return conn.execute(sql, params)

    def _run(self, sql: str, *params: Any) -> Any:
        return self._execute(self._conn(), sql, params)

    # -- writes ------------------------------------------------------------------------------
    def create(self, kind: str, request: dict[str, Any]) -> str:
        job_id = uuid.uuid4().hex
        self._run("INSERT INTO jobs (id, kind, status, request, created_at) "
                  "VALUES (?, ?, ?, ?, ?)", job_id, kind, "queued", orjson.dumps(request),
                  time.time())
        return job_id

    def claim(self, owner: str, lease_s: float) -> dict[str, Any] | None:
        """Take the oldest queued job (with its request) under a lease, or None."""
        now = time.time()
        with self._write_transaction() as conn:
            row = self._execute(conn, "SELECT id, kind, request FROM jobs WHERE status = "
                                "'queued' ORDER BY created_at LIMIT 1" + self.LOCK_ROWS
                                ).fetchone()
            if row is not None:
                self._execute(
                    conn, "UPDATE jobs SET status = 'running', owner = ?, attempts = attempts + "
                    "1, lease_expires_at = ?, started_at = COALESCE(started_at, ?), "
                    "progress = NULL WHERE id = ?", (owner, now + lease_s, now, row[0]))
        if row is None:
            return None
        return {"id": row[0], "kind": row[1], "request": orjson.loads(bytes(row[2]))}

    def renew(self, job_ids: list[str], owner: str, lease_s: float) -> set[str]:
        """Extend the leases this owner holds; answers the ids that are still its own:
        running under its lease, or finished by it meanwhile (not lost, only done)."""
        if not job_ids:
            return set()
        marks = ",".join("?" * len(job_ids))
        self._run(f"UPDATE jobs SET lease_expires_at = ? WHERE owner = ? AND status = "
                  f"'running' AND id IN ({marks})", time.time() + lease_s, owner, *job_ids)
        rows = self._run(f"SELECT id FROM jobs WHERE owner = ? AND id IN ({marks})",
                         owner, *job_ids).fetchall()
        return {row[0] for row in rows}

    def release(self, job_id: str, owner: str) -> bool:
        """Hand a running job back to the queue (a shutdown, not a failure: the attempt is
        not counted)."""
        cur = self._run(
            "UPDATE jobs SET status = 'queued', owner = NULL, lease_expires_at = NULL, "
            "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, progress = NULL "
            "WHERE id = ? AND owner = ? AND status = 'running'", job_id, owner)
        return cur.rowcount == 1

    def requeue_expired(self, max_attempts: int, ttl_s: float, error: dict[str, Any]) -> int:
        """Running jobs whose lease ran out: queued again, or failed (`interrupted`) after
        `max_attempts`. Answers how many were requeued or failed."""
        now = time.time()
        with self._write_transaction() as conn:
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
                         final_progress(_bytes(progress)), job_id))
        return len(expired)

    def set_progress(self, job_id: str, progress: dict[str, Any], owner: str) -> None:
        self._run("UPDATE jobs SET progress = ? WHERE id = ? AND owner = ? AND "
                  "status = 'running'", orjson.dumps(progress), job_id, owner)

    def finish(self, job_id: str, status: str, *, result: bytes | None = None,
               error: dict[str, Any] | None = None, reason: str | None = None,
               ttl_s: float, owner: str | None = None) -> bool:
        """A terminal state, written only by the lease holder (`owner`) of a running job, or
        for a queued one (`owner` None: a cancel before it started). The progress is made
        final: no runs active, no time left."""
        now = time.time()
        if owner is None:
            guard, args = "status = 'queued'", ()
        else:
            guard, args = "status = 'running' AND owner = ?", (owner,)
        row = self._run("SELECT progress FROM jobs WHERE id = ?", job_id).fetchone()
        progress = final_progress(_bytes(row[0]) if row else None,
                                  succeeded=status == "succeeded")
        cur = self._run(
            "UPDATE jobs SET status = ?, finished_at = ?, expires_at = ?, result = ?, error = ?, "
            "reason = ?, lease_expires_at = NULL, progress = ? WHERE id = ? AND " + guard,
            status, now, now + ttl_s, None if result is None else zlib.compress(result, 6),
            None if error is None else orjson.dumps(error), reason, progress, job_id, *args)
        return cur.rowcount == 1

    def request_cancel(self, job_id: str) -> None:
        self._run("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", job_id)

    def delete_expired(self, now: float | None = None) -> int:
        return self._run("DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?",
                         now if now is not None else time.time()).rowcount

    # -- reads -------------------------------------------------------------------------------
    def get(self, job_id: str) -> dict[str, Any] | None:
        cur = self._run(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", job_id)
        row = cur.fetchone()
        if row is None:
            return None
        job = dict(zip([column[0] for column in cur.description], row, strict=True))
        job["progress"] = orjson.loads(_bytes(job["progress"])) if job["progress"] else None
        job["error"] = orjson.loads(_bytes(job["error"])) if job["error"] else None
        return job

    def result(self, job_id: str) -> bytes | None:
        row = self._run("SELECT result FROM jobs WHERE id = ?", job_id).fetchone()
        return None if row is None or row[0] is None else zlib.decompress(row[0])

    def cancel_requested(self, job_id: str) -> bool:
        row = self._run("SELECT cancel_requested FROM jobs WHERE id = ?", job_id).fetchone()
        return bool(row and row[0])

    def count_active(self) -> int:
        return self._run(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]


class JobStore(SqlJobStore):
    """The embedded default: one SQLite file in WAL mode; claims in BEGIN IMMEDIATE."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn()  # create the schema (or migrate it) now, not at the first request
        except (OSError, sqlite3.Error) as exc:  # say which setting to fix, at start-up
            raise JobStoreUnavailableError(
                f"Cannot open the job store at {Path(self.path).resolve()} ({exc}); set "
                "OPTIM_JOBS_DB_PATH to a file in a directory this user can write") from exc

    def _conn(self) -> sqlite3.Connection:
        """One connection per thread (sqlite3 connections are not shared across threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            _migrate(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: the write lock up front, so a read-then-write is one atomic step
        across processes (two runners never claim one job)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _bytes(value: Any) -> bytes | None:
    """A blob as bytes (PostgreSQL drivers may hand out memoryview)."""
    return None if value is None else bytes(value)


def final_progress(progress: bytes | None, *, succeeded: bool = False) -> bytes:
    """Terminal progress: nothing runs and nothing is left to wait for."""
    current = orjson.loads(progress) if progress else {
        "steps_done": 0, "steps_total": None, "fraction": 0.0}
    final = current | {"runs_active": 0, "eta_s": 0.0}
    return orjson.dumps(final | {"fraction": 1.0} if succeeded else final)


def open_job_store(db_path: str, db_url: str | None = None) -> Store:
    """The store the settings name: PostgreSQL when `db_url` is a postgresql:// URL (several
    replicas on one database), else the embedded SQLite file at `db_path`."""
    if db_url:
        if not db_url.startswith(("postgresql://", "postgres://")):
            raise JobStoreUnavailableError(
                f"OPTIM_JOBS_DB_URL must be a postgresql:// URL, got {db_url.split(':')[0]}:…")
        from service.jobs.postgres import PostgresJobStore

        return PostgresJobStore(db_url)
    return JobStore(db_path)
