"""The job store on PostgreSQL (psycopg 3 and its pool), for several replicas on one database.

The same rules as the SQLite store, in the same SQL (service/jobs/store.py, SqlJobStore): a runner
claims the oldest queued job with `SELECT … FOR UPDATE SKIP LOCKED` (replicas claiming at the
same moment take different jobs, none waits on another), holds it under a lease renewed by
heartbeat, and only the lease holder may store the job's end. The schema is created or
migrated at start-up under an advisory lock, so replicas starting together do it once.

Connections come from a bounded pool (`OPTIM_JOBS_DB_POOL_SIZE`): a request that finds none
free within the store timeout gets a 503, not an unbounded wait; each connection is checked
before use, so connections the server dropped (a restart, `pg_terminate_backend`) are replaced
on their own; connects and statements have timeouts. A call that meets a dropped connection is
tried once more on a fresh one (every write is safe to repeat: store.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from service.errors import JobStoreUnavailableError
from service.jobs.store import SqlJobStore, migrate

T = TypeVar("T")
MIGRATION_LOCK = 7_370_001  # advisory lock ids of this service: the schema, and job creates
CREATE_LOCK = 7_370_002
CONNECT_TIMEOUT_S = 3


class PostgresJobStore(SqlJobStore):
    LOCK_ROWS = " FOR UPDATE SKIP LOCKED"  # replicas claiming at once take different rows

    def __init__(self, url: str, pool_size: int = 8, timeout_s: float = 5.0,
                 password: str | None = None) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError as exc:
            raise JobStoreUnavailableError(
                "OPTIM_JOBS_DB_URL names PostgreSQL, but psycopg (with its pool) is not "
                "installed: install the extra optim-service[postgres]") from exc
        self.UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError)
        # waited its time already: a pool timeout, a statement timeout (not tried again)
        self._waited = (PoolTimeout, psycopg.errors.QueryCanceled)
        self.where = "the job store (PostgreSQL)"
        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, timeout=timeout_s, open=False,
            check=ConnectionPool.check_connection, name="optim-jobs", kwargs={
                "autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S,
                "options": f"-c statement_timeout={int(timeout_s * 1000)}",
                "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3,
                "keepalives_count": 3} | ({"password": password} if password else {}))
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S + 2)
            self._migrate()
        except (psycopg.Error, PoolTimeout) as exc:
            self._pool.close()
            raise JobStoreUnavailableError(
                f"Cannot use the job store at OPTIM_JOBS_DB_URL ({_first_line(exc)}); check the "
                "URL, the server and the user's rights") from exc

    def _migrate(self) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            migrate(conn.execute, current, {"blob": "BYTEA", "real": "DOUBLE PRECISION"})

    def _call(self, work: Callable[[], T]) -> T:
        """As SqlJobStore._call, trying once more when the connection was dropped under the
        call (the pool checks and replaces it)."""
        try:
            return work()
        except self._waited as exc:
            return super()._call(_raise(exc))
        except self.UNAVAILABLE:
            return super()._call(work)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _write_transaction(self) -> Iterator[Any]:
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    def _lock_creates(self, conn: Any) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_LOCK,))

    def _execute(self, conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return conn.execute(sql.replace("?", "%s"), params)  # the shared SQL uses ?

    def close(self) -> None:
        self._pool.close()


def _raise(exc: BaseException) -> Callable[[], Any]:
    def again() -> Any:
        raise exc
    return again


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
