"""The job store on PostgreSQL (psycopg 3), for several replicas on one database.

The same interface and the same rules as the SQLite store (service/jobs/store.py): a runner
claims the oldest queued job with `SELECT … FOR UPDATE SKIP LOCKED` (replicas claiming at the
same moment take different jobs, none waits on another), holds it under a lease renewed by
heartbeat, and only the lease holder may store the job's end. The schema is created or
migrated at start-up under an advisory lock, so replicas starting together do it once.
Times are epoch seconds, blobs are orjson (results zlib-compressed), as in the SQLite store.
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from typing import Any

import orjson

from service.jobs.store import JobStoreUnavailableError, final_progress

SCHEMA_VERSION = 2
_MIGRATIONS = {
    1: """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            request BYTEA NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            started_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION,
            expires_at DOUBLE PRECISION,
            progress BYTEA,
            error BYTEA,
            reason TEXT,
            owner TEXT,
            cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
            result BYTEA
        );
        CREATE INDEX jobs_expiry ON jobs (expires_at)
    """,
    2: """
        ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN lease_expires_at DOUBLE PRECISION;
        CREATE INDEX jobs_queue ON jobs (status, created_at)
    """,
}
_MIGRATION_LOCK = 7_370_001  # an advisory lock id of this service's schema
_COLUMNS = ("id, kind, status, created_at, started_at, finished_at, progress, error, reason, "
            "owner, cancel_requested, attempts")


class PostgresJobStore:
    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise JobStoreUnavailableError(
                "OPTIM_JOBS_DB_URL names PostgreSQL, but psycopg is not installed: install "
                "the extra optim-service[postgres]") from exc
        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        try:
            self._migrate()
        except psycopg.Error as exc:
            raise JobStoreUnavailableError(
                f"Cannot use the job store at OPTIM_JOBS_DB_URL ({exc}); check the URL, the "
                "server and the user's rights") from exc

    def _conn(self) -> Any:
        """One autocommit connection per thread (psycopg connections are not for sharing
        between threads that run statements at once); reopened when the server dropped it."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._psycopg.connect(self.url, autocommit=True)
            self._local.conn = conn
        return conn

    def _migrate(self) -> None:
        conn = self._conn()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in filter(str.strip, _MIGRATIONS[version].split(";")):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))

    # -- writes ------------------------------------------------------------------------------
    def create(self, kind: str, request: dict[str, Any]) -> str:
        job_id = uuid.uuid4().hex
        self._conn().execute(
            "INSERT INTO jobs (id, kind, status, request, created_at) VALUES (%s, %s, %s, %s, "
            "%s)", (job_id, kind, "queued", orjson.dumps(request), time.time()))
        return job_id

    def claim(self, owner: str, lease_s: float) -> dict[str, Any] | None:
        now = time.time()
        row = self._conn().execute(
            "UPDATE jobs SET status = 'running', owner = %s, attempts = attempts + 1, "
            "lease_expires_at = %s, started_at = COALESCE(started_at, %s), progress = NULL "
            "WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at "
            "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, kind, request",
            (owner, now + lease_s, now)).fetchone()
        if row is None:
            return None
        return {"id": row[0], "kind": row[1], "request": orjson.loads(bytes(row[2]))}

    def renew(self, job_ids: list[str], owner: str, lease_s: float) -> set[str]:
        if not job_ids:
            return set()
        rows = self._conn().execute(
            "UPDATE jobs SET lease_expires_at = %s WHERE owner = %s AND status = 'running' "
            "AND id = ANY(%s) RETURNING id", (time.time() + lease_s, owner, job_ids)).fetchall()
        return {row[0] for row in rows}

    def release(self, job_id: str, owner: str) -> bool:
        cur = self._conn().execute(
            "UPDATE jobs SET status = 'queued', owner = NULL, lease_expires_at = NULL, "
            "attempts = GREATEST(attempts - 1, 0), progress = NULL "
            "WHERE id = %s AND owner = %s AND status = 'running'", (job_id, owner))
        return cur.rowcount == 1

    def requeue_expired(self, max_attempts: int, ttl_s: float, error: dict[str, Any]) -> int:
        now = time.time()
        conn = self._conn()
        with conn.transaction():
            expired = conn.execute(
                "SELECT id, attempts, progress FROM jobs WHERE status = 'running' AND "
                "(lease_expires_at IS NULL OR lease_expires_at < %s) FOR UPDATE SKIP LOCKED",
                (now,)).fetchall()
            for job_id, attempts, progress in expired:
                if attempts < max_attempts:
                    conn.execute("UPDATE jobs SET status = 'queued', owner = NULL, "
                                 "lease_expires_at = NULL, progress = NULL WHERE id = %s",
                                 (job_id,))
                else:
                    conn.execute(
                        "UPDATE jobs SET status = 'failed', finished_at = %s, expires_at = %s, "
                        "error = %s, reason = 'interrupted', owner = NULL, "
                        "lease_expires_at = NULL, progress = %s WHERE id = %s",
                        (now, now + ttl_s, orjson.dumps(error),
                         final_progress(None if progress is None else bytes(progress)), job_id))
        return len(expired)

    def set_progress(self, job_id: str, progress: dict[str, Any], owner: str) -> None:
        self._conn().execute("UPDATE jobs SET progress = %s WHERE id = %s AND owner = %s AND "
                             "status = 'running'", (orjson.dumps(progress), job_id, owner))

    def finish(self, job_id: str, status: str, *, result: bytes | None = None,
               error: dict[str, Any] | None = None, reason: str | None = None,
               ttl_s: float, owner: str | None = None) -> bool:
        now = time.time()
        if owner is None:
            guard, args = "status = 'queued'", ()
        else:
            guard, args = "status = 'running' AND owner = %s", (owner,)
        conn = self._conn()
        row = conn.execute("SELECT progress FROM jobs WHERE id = %s", (job_id,)).fetchone()
        progress = final_progress(bytes(row[0]) if row and row[0] is not None else None,
                                  succeeded=status == "succeeded")
        cur = conn.execute(
            "UPDATE jobs SET status = %s, finished_at = %s, expires_at = %s, result = %s, "
            "error = %s, reason = %s, lease_expires_at = NULL, progress = %s WHERE id = %s "
            "AND " + guard,
            (status, now, now + ttl_s, None if result is None else zlib.compress(result, 6),
             None if error is None else orjson.dumps(error), reason, progress, job_id, *args))
        return cur.rowcount == 1

    def request_cancel(self, job_id: str) -> None:
        self._conn().execute("UPDATE jobs SET cancel_requested = TRUE WHERE id = %s", (job_id,))

    def delete_expired(self, now: float | None = None) -> int:
        cur = self._conn().execute(
            "DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= %s",
            (now if now is not None else time.time(),))
        return cur.rowcount

    # -- reads -------------------------------------------------------------------------------
    def get(self, job_id: str) -> dict[str, Any] | None:
        cur = self._conn().execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = %s", (job_id,))
        row = cur.fetchone()
        if row is None:
            return None
        job = dict(zip([c.name for c in cur.description], row, strict=True))
        job["progress"] = orjson.loads(bytes(job["progress"])) if job["progress"] else None
        job["error"] = orjson.loads(bytes(job["error"])) if job["error"] else None
        job["cancel_requested"] = int(job["cancel_requested"])
        return job

    def result(self, job_id: str) -> bytes | None:
        row = self._conn().execute("SELECT result FROM jobs WHERE id = %s",
                                   (job_id,)).fetchone()
        return None if row is None or row[0] is None else zlib.decompress(bytes(row[0]))

    def cancel_requested(self, job_id: str) -> bool:
        row = self._conn().execute("SELECT cancel_requested FROM jobs WHERE id = %s",
                                   (job_id,)).fetchone()
        return bool(row and row[0])

    def count_active(self) -> int:
        return self._conn().execute(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]
