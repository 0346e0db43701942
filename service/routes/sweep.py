"""POST /v1/sweep."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service import translate
from service.auth.guard import require
from service.deps import GateDep, SettingsDep
from service.jsonio import StrictJSONRoute, answer_response, rendering
from service.problems import AUTH_RESPONSES, PROBLEM_RESPONSES
from service.schemas.requests import SweepRequest
from service.schemas.responses import SweepResponse
from service.tables import CSV_RESPONSE

router = APIRouter(prefix="/v1", tags=["sweep"], route_class=StrictJSONRoute,
                   responses={**PROBLEM_RESPONSES, **AUTH_RESPONSES},
                   dependencies=[require("compute")])


@router.post("/sweep", response_model=SweepResponse, responses=CSV_RESPONSE)
async def sweep(body: SweepRequest, settings: SettingsDep, gate: GateDep, request: Request
                ) -> Response:
    """Run a hyperparameter grid × starts as one batch; one aggregated row per grid point."""
    request.app.state.auth.check_run_steps(request, translate.run_steps(body))
    done = await gate.run(rendering(translate.run_sweep), body, settings,
                          wait_s=translate.time_budget(body, settings))
    request.app.state.metrics.record_work(done.answer)
    return answer_response(done)
