"""GET /healthz and /readyz: answered on the event loop, even while every worker is busy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.deps import GateDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(gate: GateDep) -> dict[str, Any]:
    """Readiness, with the compute load (synchronous requests and jobs share the slots)."""
    return {"status": "ready", "compute": {"busy": gate.busy, "waiting": gate.waiting,
                                           "capacity": gate.max_concurrency,
                                           "queue": gate.max_queue,
                                           "jobs_running": gate.jobs_running,
                                           "job_slots": gate.job_slots}}
