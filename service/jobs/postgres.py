"""The job store on PostgreSQL (psycopg 3), for several replicas on one database.

The same rules as the SQLite store, in the same SQL (service/jobs/store.py, SqlJobStore): a runner
claims the oldest queued job with `SELECT … FOR UPDATE SKIP LOCKED` (replicas claiming at the
same moment take different jobs, none waits on another), holds it under a lease renewed by
heartbeat, and only the lease holder may store the job's end. The schema is created or
migrated at start-up under an advisory lock, so replicas starting together do it once.
Times are epoch seconds, blobs are orjson (results zlib-compressed), as in the SQLite store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from service.jobs.store import JobStoreUnavailableError, SqlJobStore

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
            cancel_requested INTEGER NOT NULL DEFAULT 0,
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


class PostgresJobStore(SqlJobStore):
    LOCK_ROWS = " FOR UPDATE SKIP LOCKED"  # replicas claiming at once take different rows

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

    @contextmanager
    def _write_transaction(self) -> Iterator[Any]:
        conn = self._conn()
        with conn.transaction():
            yield conn

    def _execute(self, conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return conn.execute(sql.replace("?", "%s"), params)  # the shared SQL uses ?
