"""POST /v1/tune, /v1/basins, /v1/benchmark: studies, each many runs as vectorised batches."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service import studies, translate
from service.auth.guard import require
from service.deps import GateDep, SettingsDep
from service.jsonio import StrictJSONRoute, answer_response, rendering
from service.problems import AUTH_RESPONSES, PROBLEM_RESPONSES
from service.schemas.responses import BasinsResponse, BenchmarkResponse, TuneResponse
from service.schemas.studies import BasinsRequest, BenchmarkRequest, TuneRequest
from service.tables import CSV_RESPONSE

router = APIRouter(prefix="/v1", tags=["studies"], route_class=StrictJSONRoute,
                   responses={**PROBLEM_RESPONSES, **AUTH_RESPONSES},
                   dependencies=[require("compute")])


@router.post("/tune", response_model=TuneResponse, responses=CSV_RESPONSE)
async def tune(body: TuneRequest, settings: SettingsDep, gate: GateDep, request: Request
               ) -> Response:
    """Search each optimizer's hyperparameters (every trial × start in one batch, or in rungs
    with successive halving), then compare the optimizers at their best settings."""
    request.app.state.auth.check_run_steps(request, translate.run_steps(body))
    done = await gate.run(rendering(studies.run_tune), body, settings,
                          wait_s=translate.time_budget(body, settings))
    request.app.state.metrics.record_work(done.answer)
    return answer_response(done)


@router.post("/basins", response_model=BasinsResponse)
async def basins(body: BasinsRequest, settings: SettingsDep, gate: GateDep, request: Request
                 ) -> Response:
    """Which minimum the optimizer reaches from each start of a grid (one batch)."""
    request.app.state.auth.check_run_steps(
        request, body.resolution[0] * body.resolution[1] * max(1, body.max_steps))
    done = await gate.run(rendering(studies.run_basins), body, settings,
                          wait_s=translate.time_budget(body, settings))
    request.app.state.metrics.record_work(done.answer)
    return answer_response(done)


@router.post("/benchmark", response_model=BenchmarkResponse)
async def benchmark(body: BenchmarkRequest, settings: SettingsDep, gate: GateDep,
                    request: Request) -> Response:
    """Optimizers over a suite of losses: runtime ECDFs and performance profiles in function
    evaluations, and a table per loss."""
    losses = len(body.losses) if body.losses is not None else 6
    request.app.state.auth.check_run_steps(
        request, losses * len(body.optimizers) * body.starts_per_loss * max(1, body.max_steps))
    done = await gate.run(rendering(studies.run_benchmark), body, settings,
                          wait_s=translate.time_budget(body, settings))
    request.app.state.metrics.record_work(done.answer)
    return answer_response(done)
