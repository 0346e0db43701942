"""API keys: how they are made, stored and read, and the limits a key may carry.

A key is `optim_` and 43 characters of url-safe base64 (32 random bytes). Only its SHA-256
is stored (a key is high-entropy random, so a fast hash is as good as a slow one: nothing to
guess), and the hash found in the store is compared with `hmac.compare_digest`. The key is
shown once, when it is made; its `id` (`key_` and 16 hex digits) names it everywhere else
(logs, metrics, job ownership, revocation).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field

from service.jsonio import iso_time

SCOPES = ("compute", "jobs", "metrics", "admin")
KEY_PREFIX = "optim_"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_PER = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PER_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
                "hour": 3600}


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """A key's own limits (None: none). `rate`: requests per second (a token bucket holding
    one second of them, at least one); `compute_seconds`: compute time per minute, requests
    and jobs together; `max_active_jobs`: queued + running jobs; `max_run_steps`: runs ×
    max_steps of one request or job."""

    rate: float | None = None
    compute_seconds: float | None = None
    max_active_jobs: int | None = None
    max_run_steps: int | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.rate, self.compute_seconds,
                                           self.max_active_jobs, self.max_run_steps))


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    scopes: frozenset[str]
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    limits: KeyLimits = field(default_factory=KeyLimits)

    def usable(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def allows(self, scope: str) -> bool:
        """`admin` holds every scope."""
        return scope in self.scopes or "admin" in self.scopes

    def document(self) -> dict[str, object]:
        """What /v1/keys and `optim keys` show (never the key or its hash)."""
        return {"id": self.id, "name": self.name, "scopes": sorted(self.scopes),
                "created_at": iso_time(self.created_at), "expires_at": iso_time(self.expires_at),
                "revoked_at": iso_time(self.revoked_at),
                "limits": {"rate": self.limits.rate,
                           "compute_seconds": self.limits.compute_seconds,
                           "max_active_jobs": self.limits.max_active_jobs,
                           "max_run_steps": self.limits.max_run_steps}}


def new_key() -> tuple[str, str]:
    """(id, key): a fresh key and the id that names it."""
    return f"key_{secrets.token_hex(8)}", KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def parse_scopes(text: str | list[str]) -> frozenset[str]:
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    chosen = frozenset(s for s in items if s)
    unknown = sorted(chosen - set(SCOPES))
    if unknown or not chosen:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    return chosen


def parse_duration(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' (or a number of seconds) → seconds."""
    text = text.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        match = _DURATION.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is no duration: write e.g. 30d, 12h, 90m or 45s") \
                from None
        seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def parse_per_second(text: str, unit: str = "s") -> float:
    """'50/s', '120/min', '3000/h' → the amount per `unit` (s or m); a plain number is
    already per `unit`."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not value > 0 or value == float("inf"):
            raise ValueError("a rate must be positive")
        return value
    match = _PER.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is no rate: write e.g. 50/s or 120/min")
    per_second = float(match.group(1)) / _PER_SECONDS[match.group(2)]
    if per_second <= 0:
        raise ValueError("a rate must be positive")
    return per_second * _PER_SECONDS[unit]
