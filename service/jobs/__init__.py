"""Long work as jobs: a store (SQLite or PostgreSQL) and a manager that runs them."""

from __future__ import annotations

from pathlib import Path

from service.errors import JobStoreUnavailableError
from service.jobs.store import Store
from service.settings import read_secret


def open_job_store(db_path: str, db_url: str | None = None, *, pool_size: int = 8,
                   timeout_s: float = 5.0, password_file: Path | None = None) -> Store:
    """The store the settings name: PostgreSQL when `db_url` is a postgresql:// URL (several
    replicas on one database), else the embedded SQLite file at `db_path`. The password may
    come from a file (a secret) rather than the URL."""
    if db_url:
        if not db_url.startswith(("postgresql://", "postgres://")):
            raise JobStoreUnavailableError(
                f"OPTIM_JOBS_DB_URL must be a postgresql:// URL, got {db_url.split(':')[0]}:…")
        from service.jobs.postgres import PostgresJobStore

        password = None if password_file is None else read_secret(
            password_file, "jobs_db_password_file", JobStoreUnavailableError)
        return PostgresJobStore(db_url, pool_size=pool_size, timeout_s=timeout_s,
                                password=password)
    from service.jobs.sqlite import SqliteJobStore

    return SqliteJobStore(db_path, busy_timeout_s=timeout_s)


__all__ = ["JobStoreUnavailableError", "Store", "open_job_store"]
