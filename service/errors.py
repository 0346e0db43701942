"""The service's own exceptions (the core's are in optim_core.errors); problems.py maps each to
its problem document. This module imports nothing from `service`, so any module may raise them
without an import circle.

    Exception
    ├── OverloadedError            429 (no slot, no queue place) or 503 busy (waited its budget)
    ├── SymbolicTimeoutError       504
    ├── ShardFailedError           500 (a job's shard raised, or its worker was lost every time)
    ├── ExecutorUnavailableError   503 (the pool or the cluster cannot be used now)
    ├── StoreUnavailableError      503 (the job store does not answer, or refuses to write)
    ├── JobLimitError              429 (the active-jobs limit, checked in the store's transaction)
    ├── AuthenticationError        401 (no key, or a key that is unknown, expired or revoked)
    ├── ScopeError                 403 (the key lacks the scope the endpoint needs)
    ├── KeyQuotaError              429 (one of the key's own limits)
    ├── JobStoreUnavailableError   start-up: the store cannot be opened at all (names the setting)
    └── StartupError               start-up: another setting cannot be used (names it)
"""

from __future__ import annotations

from typing import Any


class OverloadedError(Exception):
    """Every compute slot and queue place is taken (429), or a request waited its whole time
    budget for a slot (503, `waited_s`)."""

    def __init__(self, retry_after: int, waited_s: float | None = None) -> None:
        super().__init__("overloaded")
        self.retry_after = retry_after
        self.waited_s = waited_s


class SymbolicTimeoutError(Exception):
    """The symbolic stage did not finish within its time limit."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ShardFailedError(Exception):
    """A shard of a job failed (an exception in it, or its worker lost on every retry): the
    job fails, naming it. `retries`: the retries spent, 0 for an exception (not retried)."""

    def __init__(self, shard: int, runs: Any, retries: int, cause: Exception) -> None:
        first, last = int(runs[0]), int(runs[-1])
        reason = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        tried = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
        self.detail = f"Shard {shard} (runs {first}–{last}) failed{tried}: {reason[:300]}"
        super().__init__(self.detail)
        self.shard, self.first_run, self.last_run = shard, first, last

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its fields (it crosses from the Ray executor's process to the API's)."""
        return (_shard_failed, (self.detail, self.shard, self.first_run, self.last_run))


def _shard_failed(detail: str, shard: int, first: int, last: int) -> ShardFailedError:
    error = ShardFailedError.__new__(ShardFailedError)
    Exception.__init__(error, detail)
    error.detail, error.shard, error.first_run, error.last_run = detail, shard, first, last
    return error


class ExecutorUnavailableError(RuntimeError):
    """The configured executor cannot be used: at start-up (naming the setting), or while a
    job runs (the cluster was lost): the job fails with this, a 503 problem."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class StoreUnavailableError(RuntimeError):
    """The job store did not answer in time, refused the connection, or cannot write (read-only
    file, full disk): a 503 with Retry-After; nothing was accepted or changed."""

    def __init__(self, detail: str, retry_after: int = 2) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class JobLimitError(Exception):
    """The active-jobs limit (queued + running) is reached: a 429 naming it."""

    def __init__(self, limit: int, retry_after: int) -> None:
        self.detail = (f"{limit} jobs are queued or running, the limit (setting "
                       f"OPTIM_JOB_MAX_ACTIVE); retry after {retry_after} s")
        super().__init__(self.detail)
        self.limit = limit
        self.retry_after = retry_after


class AuthenticationError(Exception):
    """No usable API key (OPTIM_AUTH=api_key): a 401 with WWW-Authenticate: Bearer."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ScopeError(Exception):
    """The key is valid but lacks the scope the endpoint needs: a 403 naming it."""

    def __init__(self, scope: str, key_id: str) -> None:
        self.scope = scope
        self.detail = (f"The key {key_id} lacks the scope {scope!r} this endpoint needs; ask "
                       "an admin for a key with it")
        super().__init__(self.detail)


class KeyQuotaError(Exception):
    """A key's own limit (rate, compute seconds, active jobs, runs × steps): a 429 naming the
    limit, with Retry-After."""

    def __init__(self, limit: str, maximum: float, retry_after: int, detail: str) -> None:
        self.limit, self.maximum, self.retry_after = limit, maximum, max(1, int(retry_after))
        self.detail = f"{detail}; retry after {self.retry_after} s"
        super().__init__(self.detail)


class JobStoreUnavailableError(RuntimeError):
    """The job store cannot be created or opened (the service cannot start)."""


class StartupError(RuntimeError):
    """A setting that cannot be used (an unreadable or weak bootstrap key file): the service
    does not start, and says which setting to fix."""
