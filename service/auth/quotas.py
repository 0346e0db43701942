"""Per-key limits held across replicas: requests per second and compute seconds per minute.

Decisions are made in memory, on the request's path, with no store call (a key at its limit
never delays another key's requests): each replica keeps a token bucket per key (capacity one
second of the rate, at least one request) and its own compute time per one-second window. A
background thread (every OPTIM_QUOTA_SYNC_S) writes this replica's usage to the store
(`key_usage`, one row per key, replica and window) and reads the others': their requests are
taken from this replica's buckets, their compute time added to the minute's sum. So the
limits hold for the key across every replica, up to what the replicas did within one sync
interval (a key may burst past its rate by at most rate × interval per replica).

Active jobs are counted in the store's create transaction (store.py); runs × steps per
request are checked against the body (guard.py).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict

from service.auth.keys import KeyRecord
from service.auth.keystore import KeyStore
from service.errors import KeyQuotaError, StoreUnavailableError

COMPUTE_SPAN_S = 60  # compute seconds are counted per minute, sliding by the second
KEEP_ROWS_S = 600  # usage rows older than this are deleted
logger = logging.getLogger("service.auth")


class QuotaBook:
    def __init__(self, keys: KeyStore, replica: str, sync_s: float) -> None:
        self.keys, self.replica, self.sync_s = keys, replica, sync_s
        self._lock = threading.Lock()
        self._buckets: dict[str, list[float]] = {}  # key → [tokens, refilled at, capacity]
        self._pending: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        self._compute: dict[str, dict[int, int]] = defaultdict(dict)  # key → window → ms, all
        self._elsewhere: dict[str, dict[int, int]] = defaultdict(dict)  # others' requests
        self._seen: dict[tuple[str, str, int], tuple[int, int]] = {}  # others' rows as read
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_cleanup = 0.0

    # -- on the request's path (in memory) ----------------------------------------------------
    def take_request(self, key: KeyRecord, now: float | None = None) -> None:
        """One request of `key`: a token from its bucket, or KeyQuotaError (rate)."""
        rate = key.limits.rate
        if rate is None and key.limits.compute_seconds is None:
            return
        now = time.time() if now is None else now
        with self._lock:
            if rate is not None:
                capacity = max(1.0, rate)
                if key.id not in self._buckets:  # new here: less what others spent lately
                    span = capacity / rate
                    spent = sum(n for w, n in self._elsewhere.get(key.id, {}).items()
                                if w >= now - span - 1)
                    self._buckets[key.id] = [max(capacity - spent, -capacity), now, capacity]
                tokens, at, _ = self._buckets[key.id]
                tokens = min(capacity, tokens + (now - at) * rate)
                if tokens < 1.0:
                    self._buckets[key.id] = [tokens, now, capacity]
                    wait = math.ceil((1.0 - tokens) / rate)
                    raise KeyQuotaError("rate", rate, wait,
                                        f"This key may send {rate:g} requests per second")
                self._buckets[key.id] = [tokens - 1.0, now, capacity]
            self._pending[(key.id, int(now))][0] += 1

    def check_compute(self, key: KeyRecord, now: float | None = None) -> None:
        """Before compute: KeyQuotaError when the key used its compute seconds this minute."""
        limit = key.limits.compute_seconds
        if limit is None:
            return
        now = time.time() if now is None else now
        since = int(now) - COMPUTE_SPAN_S + 1
        with self._lock:
            windows = {w: ms for w, ms in self._compute.get(key.id, {}).items() if w >= since}
        used_s = sum(windows.values()) / 1000
        if used_s >= limit:
            oldest = min(windows) if windows else int(now)
            raise KeyQuotaError("compute_seconds", limit,
                                max(1, oldest + COMPUTE_SPAN_S - int(now)),
                                f"This key used {used_s:.1f} of its {limit:g} compute seconds "
                                "per minute")

    def charge(self, key_id: str, seconds: float, now: float | None = None) -> None:
        """Compute time spent for a key (a request's, or a job's when it ends)."""
        now = time.time() if now is None else now
        ms = max(0, round(seconds * 1000))
        window = int(now)
        with self._lock:
            self._pending[(key_id, window)][1] += ms
            mine = self._compute[key_id]
            mine[window] = mine.get(window, 0) + ms

    # -- the sync thread ------------------------------------------------------------------------
    def sync(self, now: float | None = None) -> None:
        """Write this replica's usage, read the others' (one write, one read)."""
        now = time.time() if now is None else now
        with self._lock:
            pending = {k: (v[0], v[1]) for k, v in self._pending.items() if v != [0, 0]}
            self._pending.clear()
        try:
            self.keys.add_usage(self.replica, pending)
        except StoreUnavailableError:
            with self._lock:  # kept for the next sync
                for k, (requests, ms) in pending.items():
                    self._pending[k][0] += requests
                    self._pending[k][1] += ms
            raise
        since = int(now) - COMPUTE_SPAN_S
        rows = self.keys.usage_since(since, self.replica)
        with self._lock:
            for key_id, replica, window, requests, ms in rows:
                seen_requests, seen_ms = self._seen.get((key_id, replica, window), (0, 0))
                new_requests, new_ms = requests - seen_requests, ms - seen_ms
                self._seen[(key_id, replica, window)] = (requests, ms)
                bucket = self._buckets.get(key_id)
                if new_requests > 0:  # spent elsewhere: not here
                    spent = self._elsewhere[key_id]
                    spent[window] = spent.get(window, 0) + new_requests
                    if bucket is not None:
                        bucket[0] = max(bucket[0] - new_requests, -bucket[2])
                if new_ms:
                    mine = self._compute[key_id]
                    mine[window] = mine.get(window, 0) + new_ms
            self._seen = {k: v for k, v in self._seen.items() if k[2] >= since}
            for book in (self._compute, self._elsewhere):
                for windows in book.values():
                    for window in [w for w in windows if w < since]:
                        del windows[window]
        if now - self._last_cleanup > COMPUTE_SPAN_S:
            self._last_cleanup = now
            self.keys.drop_usage_before(int(now) - KEEP_ROWS_S)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="optim-quotas", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        warned = 0.0
        while not self._stop.wait(self.sync_s):
            try:
                self.sync()
            except StoreUnavailableError as exc:
                if time.monotonic() - warned > 60:
                    warned = time.monotonic()
                    logger.warning("key usage not synchronised (%s); limits hold per replica "
                                   "until the store answers", exc.detail)
            except Exception:  # never let the thread die: limits would stop being shared
                logger.exception("key usage sync failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.sync_s + 6)
            self._thread = None
        try:
            self.sync()  # what this replica counted last
        except Exception:  # noqa: BLE001 - shutting down: the store may be gone
            logger.debug("last key usage sync failed", exc_info=True)
