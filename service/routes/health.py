"""GET /healthz and /readyz: answered on the event loop, even while every worker is busy."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request

from service.deps import GateDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


EXECUTOR_CHECK_S = 2.0  # a cluster that does not answer in this time counts as unreachable


@router.get("/readyz")
async def readyz(gate: GateDep, request: Request) -> dict[str, Any]:
    """Readiness, with the compute load (synchronous requests and jobs share the slots) and
    where jobs' shards run (the executor, and whether it is reachable)."""
    executor = request.app.state.executor
    if executor.name == "local":
        state = executor.status()
    else:  # a network round trip: off the event loop, and not for long
        state = {"name": executor.name, "reachable": False, "error": "no answer in time"}
        with anyio.move_on_after(EXECUTOR_CHECK_S):
            state = await anyio.to_thread.run_sync(executor.status, abandon_on_cancel=True)
    return {"status": "ready", "compute": {"busy": gate.busy, "waiting": gate.waiting,
                                           "capacity": gate.max_concurrency,
                                           "queue": gate.max_queue,
                                           "jobs_running": gate.jobs_running,
                                           "job_slots": gate.job_slots},
            "executor": state}
