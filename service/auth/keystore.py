"""Keys and their usage in the job store's database (migration 4 of service/jobs/store.py), so
every replica sees the same keys, revocations and usage: SQLite for one machine, PostgreSQL
for several. Calls are synchronous, like the store's; the service makes them on a thread.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from typing import Any

from service.auth.keys import KeyLimits, KeyRecord, key_hash, new_key
from service.jobs.store import SqlJobStore

_COLUMNS = ("id, name, key_hash, scopes, created_at, expires_at, revoked_at, rate, "
            "compute_seconds, max_active_jobs, max_run_steps")


class KeyStore:
    def __init__(self, store: Any) -> None:
        if not isinstance(store, SqlJobStore):
            raise TypeError("keys live in the SQL job store")
        self.store = store

    def create(self, name: str, scopes: Iterable[str], *, expires_in_s: float | None = None,
               limits: KeyLimits | None = None, key: str | None = None
               ) -> tuple[KeyRecord, str]:
        """A new key: its record and the key itself (shown once, never stored). `key`: one
        given from outside (the bootstrap admin key's file) instead of a fresh one."""
        key_id, fresh = new_key()
        key = key or fresh
        limits = limits or KeyLimits()
        now = time.time()
        record = KeyRecord(key_id, name, frozenset(scopes), now,
                           None if expires_in_s is None else now + expires_in_s, None, limits)
        self.store._fetch(
            f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            record.id, name, key_hash(key), ",".join(sorted(record.scopes)), now,
            record.expires_at, None, limits.rate, limits.compute_seconds,
            limits.max_active_jobs, limits.max_run_steps, rows="count")
        return record, key

    def ensure(self, name: str, scopes: Iterable[str], key: str) -> tuple[KeyRecord, bool]:
        """The key given (the bootstrap admin key): created once, found after that. Answers
        the record and whether it was made now."""
        found = self.find(key)
        if found is not None:
            return found, False
        try:
            record, _ = self.create(name, scopes, key=key)
        except Exception:  # replicas starting together: another one stored it first
            found = self.find(key)
            if found is None:
                raise
            return found, False
        return record, True

    def find(self, key: str) -> KeyRecord | None:
        """The record of this key (revoked and expired ones included: the caller decides), or
        None. The lookup is by the key's hash; the hash found is compared in constant time."""
        digest = key_hash(key)
        row = self.store._fetch(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?", digest)
        if row is None or not hmac.compare_digest(row[2], digest):
            return None
        return _record(row)

    def get(self, key_id: str) -> KeyRecord | None:
        row = self.store._fetch(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", key_id)
        return None if row is None else _record(row)

    def listing(self) -> list[KeyRecord]:
        rows = self.store._fetch(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id",
                                 rows="all")
        return [_record(row) for row in rows]

    def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke (idempotent: the first revocation's time is kept); None if no such key."""
        self.store._fetch("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS "
                          "NULL", time.time(), key_id, rows="count")
        return self.get(key_id)

    # -- usage (service/auth/quotas.py) -------------------------------------------------------
    def add_usage(self, replica: str, deltas: dict[tuple[str, int], tuple[int, int]]) -> None:
        """Add this replica's requests and compute milliseconds per (key, window)."""
        def write(conn: Any) -> None:
            for (key_id, window), (requests, compute_ms) in deltas.items():
                self.store._execute(
                    conn, "INSERT INTO key_usage (key_id, replica, window_start, requests, "
                    "compute_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id, replica, "
                    "window_start) DO UPDATE SET requests = key_usage.requests + "
                    "excluded.requests, compute_ms = key_usage.compute_ms + excluded.compute_ms",
                    (key_id, replica, window, requests, compute_ms))
        if deltas:
            self.store._transaction(write)

    def usage_since(self, window: int, replica: str) -> list[tuple[str, str, int, int, int]]:
        """Every other replica's rows from `window` on: (key, replica, window, requests,
        compute_ms)."""
        return [tuple(row) for row in self.store._fetch(  # type: ignore[misc]
            "SELECT key_id, replica, window_start, requests, compute_ms FROM key_usage WHERE "
            "window_start >= ? AND replica <> ?", window, replica, rows="all")]

    def drop_usage_before(self, window: int) -> int:
        return self.store._fetch("DELETE FROM key_usage WHERE window_start < ?", window,
                                 rows="count")


def _record(row: tuple[Any, ...]) -> KeyRecord:
    (key_id, name, _hash, scopes, created, expires, revoked, rate, compute, active,
     run_steps) = row
    return KeyRecord(key_id, name, frozenset(filter(None, scopes.split(","))), created, expires,
                     revoked, KeyLimits(rate, compute, active,
                                        None if run_steps is None else int(run_steps)))
