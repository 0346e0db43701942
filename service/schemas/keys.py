"""Bodies and answers of /v1/keys (OPTIM_AUTH=api_key; an admin key manages them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from typing_extensions import TypedDict

from service.schemas.base import Int, Strict

Scope = Literal["compute", "jobs", "metrics", "admin"]


class KeyCreate(Strict):
    """A new key: its name, its scopes, and optionally an expiry and limits of its own."""

    name: str = Field(min_length=1, max_length=100, description="who or what uses the key")
    scopes: list[Scope] = Field(min_length=1, description="compute, jobs, metrics, admin "
                                "(admin holds every scope)")
    expires_in_s: float | None = Field(
        None, gt=0, le=1e10, description="the key stops working this many seconds from now "
        "(null: never)")
    rate: float | None = Field(None, gt=0, le=1e9,
                               description="requests per second (null: no limit)")
    compute_seconds: float | None = Field(
        None, gt=0, le=1e9, description="compute seconds per minute, requests and jobs "
        "together (null: no limit)")
    max_active_jobs: Int | None = Field(None, gt=0, le=2**31 - 1,
                                        description="queued + running jobs (null: no limit)")
    max_run_steps: Int | None = Field(
        None, gt=0, le=2**53 - 1, description="runs × max_steps of one request or job "
        "(null: no limit)")


class KeyLimits(TypedDict):
    rate: float | None
    compute_seconds: float | None
    max_active_jobs: int | None
    max_run_steps: int | None


class KeyInfo(TypedDict):
    """A key as listed (never the key itself)."""

    id: str
    name: str
    scopes: list[str]
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    limits: KeyLimits


class KeyCreated(KeyInfo):
    """A key just made: `key` is shown this once and never again."""

    key: str


class KeyList(TypedDict):
    keys: list[KeyInfo]
