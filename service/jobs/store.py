"""The job store: one embedded SQLite file (WAL), versioned schema, compressed results.

Every state change is written here, so any worker process of the service sees a job's status,
progress and cancel request, and finished results survive a restart. A job whose owning
process is gone when the service starts again is marked failed with reason `interrupted`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import orjson

SCHEMA_VERSION = 1
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
}
_COLUMNS = ("id, kind, status, created_at, started_at, finished_at, progress, error, reason, "
            "owner, cancel_requested")


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations this database has not seen yet, each in its own transaction."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
    for version in range(current + 1, SCHEMA_VERSION + 1):
        for statement in filter(str.strip, _MIGRATIONS[version].split(";")):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    conn.execute("COMMIT")


class JobStoreUnavailableError(RuntimeError):
    """The job store's file cannot be created or opened (the service cannot start)."""


class JobStore:
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
            conn.row_factory = sqlite3.Row
            _migrate(conn)
            self._local.conn = conn
        return conn

    # -- writes ------------------------------------------------------------------------------
    def create(self, kind: str, request: dict[str, Any]) -> str:
        job_id = uuid.uuid4().hex
        self._conn().execute(
            "INSERT INTO jobs (id, kind, status, request, created_at) VALUES (?, ?, ?, ?, ?)",
            (job_id, kind, "queued", orjson.dumps(request), time.time()))
        return job_id

    def mark_running(self, job_id: str, owner: str) -> bool:
        """Queued → running; False when the job was cancelled meanwhile."""
        cur = self._conn().execute(
            "UPDATE jobs SET status = 'running', started_at = ?, owner = ? "
            "WHERE id = ? AND status = 'queued'", (time.time(), owner, job_id))
        return cur.rowcount == 1

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        self._conn().execute("UPDATE jobs SET progress = ? WHERE id = ?",
                             (orjson.dumps(progress), job_id))

    def finish(self, job_id: str, status: str, *, result: bytes | None = None,
               error: dict[str, Any] | None = None, reason: str | None = None,
               ttl_s: float) -> None:
        now = time.time()
        self._conn().execute(
            "UPDATE jobs SET status = ?, finished_at = ?, expires_at = ?, result = ?, error = ?, "
            "reason = ? WHERE id = ?",
            (status, now, now + ttl_s, None if result is None else zlib.compress(result, 6),
             None if error is None else orjson.dumps(error), reason, job_id))

    def request_cancel(self, job_id: str) -> None:
        self._conn().execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))

    def interrupt_orphans(self, alive: set[str], ttl_s: float, error: dict[str, Any]) -> int:
        """Mark active jobs whose owner is not in `alive` (or that never started) failed."""
        rows = self._conn().execute(
            "SELECT id, owner FROM jobs WHERE status IN ('queued', 'running')").fetchall()
        count = 0
        for row in rows:
            if row["owner"] is None or row["owner"] not in alive:
                self.finish(row["id"], "failed", error=error, reason="interrupted", ttl_s=ttl_s)
                count += 1
        return count

    def delete_expired(self, now: float | None = None) -> int:
        cur = self._conn().execute("DELETE FROM jobs WHERE expires_at IS NOT NULL AND "
                                   "expires_at <= ?", (now if now is not None else time.time(),))
        return cur.rowcount

    # -- reads -------------------------------------------------------------------------------
    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self._conn().execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?",
                                   (job_id,)).fetchone()
        if row is None:
            return None
        job = dict(row)
        job["progress"] = orjson.loads(job["progress"]) if job["progress"] else None
        job["error"] = orjson.loads(job["error"]) if job["error"] else None
        return job

    def result(self, job_id: str) -> bytes | None:
        row = self._conn().execute("SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None or row[0] is None else zlib.decompress(row[0])

    def cancel_requested(self, job_id: str) -> bool:
        row = self._conn().execute("SELECT cancel_requested FROM jobs WHERE id = ?",
                                   (job_id,)).fetchone()
        return bool(row and row[0])

    def running_owners(self) -> set[str]:
        rows = self._conn().execute("SELECT DISTINCT owner FROM jobs WHERE status = 'running' "
                                    "AND owner IS NOT NULL").fetchall()
        return {row[0] for row in rows}

    def count_active(self) -> int:
        return self._conn().execute(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]
