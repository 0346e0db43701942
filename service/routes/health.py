"""GET /healthz and /readyz: answered on the event loop, even while every worker is busy."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.deps import GateDep
from service.errors import StoreUnavailableError
from service.jsonio import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (whatever its parts do)."""
    return {"status": "ok"}


CHECK_S = 2.0  # a store that does not answer in this time counts as unreachable
# the Ray executor answers within its own 2 s (service/executors/ray_bridge.py, STATUS_S),
# with the reason when the cluster is not there; this is only the last guard
EXECUTOR_CHECK_S = 3.0


async def _store_state(request: Request) -> dict[str, Any]:
    manager = request.app.state.jobs
    try:
        await manager.call(manager.store.ping, timeout_s=CHECK_S)
    except StoreUnavailableError as exc:
        return {"reachable": False, "error": exc.detail[:200]}
    return {"reachable": True}


async def _executor_state(request: Request) -> dict[str, Any]:
    executor = request.app.state.executor
    if executor.name == "local":
        return executor.status()
    # a network round trip: off the event loop, and not for long
    state = {"name": executor.name, "reachable": False, "error": "no answer in time"}
    with anyio.move_on_after(EXECUTOR_CHECK_S):
        state = await anyio.to_thread.run_sync(executor.status, abandon_on_cancel=True)
    return state


@router.get("/readyz", responses={503: {"description": "Not ready: the job store or the "
                                              "executor is unreachable (the same document)"}})
async def readyz(gate: GateDep, request: Request) -> Response:
    """Readiness: 200 when the job store answers and the executor is reachable, else 503;
    with the compute load (synchronous requests and jobs share the slots) and each part's
    state."""
    store, executor = await _store_state(request), await _executor_state(request)
    ready = store["reachable"] and executor.get("reachable", False)
    return JSONResponse({
        "status": "ready" if ready else "unavailable",
        "compute": {"busy": gate.busy, "waiting": gate.waiting, "capacity": gate.max_concurrency,
                    "queue": gate.max_queue, "jobs_running": gate.jobs_running,
                    "job_slots": gate.job_slots},
        "store": store, "executor": executor}, status_code=200 if ready else 503)
