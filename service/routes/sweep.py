"""POST /v1/sweep."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service import translate
from service.deps import GateDep, SettingsDep
from service.jsonio import JSONResponse, StrictJSONRoute
from service.problems import PROBLEM_RESPONSES
from service.schemas.requests import SweepRequest
from service.schemas.responses import SweepResponse

router = APIRouter(prefix="/v1", tags=["sweep"], route_class=StrictJSONRoute,
                   responses=PROBLEM_RESPONSES)


@router.post("/sweep", response_model=SweepResponse)
async def sweep(body: SweepRequest, settings: SettingsDep, gate: GateDep, request: Request
                ) -> JSONResponse:
    """Run a hyperparameter grid × starts as one batch; one aggregated row per grid point."""
    answer = await gate.run(translate.run_sweep, body, settings,
                            wait_s=translate.time_budget(body, settings))
    request.app.state.metrics.record_work(answer)
    return JSONResponse(answer)
