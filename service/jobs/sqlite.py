"""The embedded job store: one SQLite file in WAL mode, the default of a single machine.

One connection per process, shared by its threads under a lock: every thread sees the same
database (per-thread connections, opened at different times, could see different files after
the file was replaced or deleted, and answer 200 and 404 for the same job in turn), and store
calls are short. Several processes may share the file: writes take SQLite's write lock up front
(`BEGIN IMMEDIATE`), so a read-then-write is one atomic step across processes.

Faults: a read-only or full disk, a lock held by another process past the timeout, a vanished
directory are `sqlite3.OperationalError`s, answered 503 (service/jobs/store.py). A database file
deleted under a running process is put back from the open connection (which still reads the
deleted file) with SQLite's backup API, so the jobs it held are not lost; a file replaced by
another process is reopened.

WAL mode keeps its index in the `-shm` file through a shared memory map and writes to it on
every transaction; a write to a mapped page the file system cannot take (the file made
immutable, a full tmpfs) is SIGBUS, which ends the process instead of raising. So before each
store call the files' immutable flag and the free space are checked (a few microseconds) and a
store that could not take a write answers 503 without SQLite touching the map; a fault that
comes within those microseconds is not covered.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from service.errors import JobStoreUnavailableError, StoreUnavailableError
from service.jobs.store import SqlJobStore, migrate

logger = logging.getLogger("service.jobs")
FILE_CHECK_S = 1.0  # how often the file's identity is checked (a stat)
FS_IOC_GETFLAGS = 0x80086601  # Linux: a file's attribute flags (chattr)
FS_IMMUTABLE_FL = 0x10
MIN_FREE_BYTES = 1 << 20  # below this the WAL index may find no page for its next write


class SqliteJobStore(SqlJobStore):
    UNAVAILABLE = (sqlite3.OperationalError, sqlite3.DatabaseError, OSError)

    def __init__(self, path: str | Path, busy_timeout_s: float = 5.0) -> None:
        self.path = str(path)
        self.where = f"the job store at {self.path}"
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._checked_at = 0.0
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._open()  # create the schema (or migrate it) now, not at the first request
        except (OSError, sqlite3.Error) as exc:  # say which setting to fix, at start-up
            raise JobStoreUnavailableError(
                f"Cannot open the job store at {Path(self.path).resolve()} ({exc}); set "
                "OPTIM_JOBS_DB_PATH to a file in a directory this user can write") from exc

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            migrate(conn.execute, current, {"blob": "BLOB", "real": "REAL"})
            conn.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            conn.close()
            raise
        if self._conn is not None:
            self._conn.close()
        self._conn = conn
        self._identity = self._stat()
        self._checked_at = time.monotonic()
        return conn

    def _stat(self) -> tuple[int, int] | None:
        if self.path == ":memory:":
            return None
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (info.st_dev, info.st_ino)

    def _current(self) -> sqlite3.Connection:
        """The connection, after checking (at most every FILE_CHECK_S) that the file is still
        the one it has open: put back if deleted, reopened if replaced."""
        conn = self._conn
        if conn is None:
            return self._open()
        if self.path == ":memory:" or time.monotonic() - self._checked_at < FILE_CHECK_S:
            return conn
        self._checked_at = time.monotonic()
        identity = self._stat()
        if identity == self._identity:
            return conn
        if identity is None:
            self._restore(conn)
        logger.warning("the job store file %s was %s; reopened", self.path,
                       "deleted and put back" if identity is None else "replaced")
        return self._open()

    def _restore(self, conn: sqlite3.Connection) -> None:
        """Write the open (deleted) database back to its path, atomically: copied to a
        temporary file, then linked into place unless another process was faster."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        temporary = f"{self.path}.restore-{os.getpid()}"
        target = sqlite3.connect(temporary)
        try:
            conn.backup(target)
        finally:
            target.close()
        try:
            os.link(temporary, self.path)
        except FileExistsError:
            pass  # another process put it back first: use that one
        finally:
            os.unlink(temporary)

    def _check_writable(self) -> None:
        """503 before SQLite touches its memory map where a write to it would be SIGBUS."""
        if self.path == ":memory:":
            return
        try:
            space = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except OSError:
            return  # the directory vanished: SQLite's own error path answers
        if space.f_bavail * space.f_frsize < MIN_FREE_BYTES:
            raise StoreUnavailableError(f"{self.where} has no free space; retry later")
        for suffix in ("", "-wal", "-shm"):
            if _immutable(self.path + suffix):
                raise StoreUnavailableError(f"{self.where} cannot be written (its file "
                                            f"{os.path.basename(self.path + suffix)} is "
                                            "immutable); retry later")

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if not self._lock.acquire(timeout=self.busy_timeout_s):
            raise StoreUnavailableError(f"{self.where} is busy; retry shortly")
        try:
            self._check_writable()
            yield self._current()
        finally:
            self._lock.release()

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: the write lock up front, so a read-then-write is one atomic step
        across processes (two runners never claim one job)."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")  # may fail too (a full disk): then roll back
            except BaseException:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _immutable(path: str) -> bool:
    """Whether a file carries the immutable attribute (False where the file or the flag
    query is missing: other systems, other file systems)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        flags = fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("l", 0))
        return bool(struct.unpack("l", flags)[0] & FS_IMMUTABLE_FL)
    except OSError:
        return False
    finally:
        os.close(fd)
