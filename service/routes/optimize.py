"""POST /v1/optimize and /v1/compare."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service import translate
from service.auth.guard import require
from service.compute import ComputeGate
from service.deps import GateDep, SettingsDep
from service.jsonio import StrictJSONRoute, answer_response, rendering
from service.problems import AUTH_RESPONSES, PROBLEM_RESPONSES
from service.schemas.requests import CompareRequest, OptimizeRequest
from service.schemas.responses import CompareResponse, OptimizeResponse
from service.settings import Settings
from service.tables import CSV_RESPONSE

router = APIRouter(prefix="/v1", tags=["optimize"], route_class=StrictJSONRoute,
                   responses={**PROBLEM_RESPONSES, **AUTH_RESPONSES},
                   dependencies=[require("compute")])


async def _answer(body: OptimizeRequest | CompareRequest, settings: Settings,
                  gate: ComputeGate, request: Request) -> Response:
    request.app.state.auth.check_run_steps(request, translate.run_steps(body))
    done = await gate.run(rendering(translate.run_optimize), body, settings,
                          inline=translate.is_small(body, settings),
                          wait_s=translate.time_budget(body, settings))
    request.app.state.metrics.record_work(done.answer)
    return answer_response(done)


@router.post("/optimize", response_model=OptimizeResponse, responses=CSV_RESPONSE)
async def optimize(body: OptimizeRequest, settings: SettingsDep, gate: GateDep,
                   request: Request) -> Response:
    """Run one optimizer from one or more starts; answer trajectories, diagnostics, findings."""
    return await _answer(body, settings, gate, request)


@router.post("/compare", response_model=CompareResponse, responses=CSV_RESPONSE)
async def compare(body: CompareRequest, settings: SettingsDep, gate: GateDep,
                  request: Request) -> Response:
    """Run several optimizers from the same starts in one batch and rank them."""
    return await _answer(body, settings, gate, request)
