"""POST /v1/landscape and /v1/analyze."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service import translate
from service.auth.guard import require
from service.deps import GateDep, SettingsDep
from service.jsonio import StrictJSONRoute, answer_response, rendering
from service.problems import AUTH_RESPONSES, PROBLEM_RESPONSES
from service.schemas.requests import AnalyzeRequest, LandscapeRequest
from service.schemas.responses import AnalyzeResponse, LandscapeResponse

router = APIRouter(prefix="/v1", tags=["landscape"], route_class=StrictJSONRoute,
                   responses={**PROBLEM_RESPONSES, **AUTH_RESPONSES},
                   dependencies=[require("compute")])


@router.post("/landscape", response_model=LandscapeResponse)
async def landscape(body: LandscapeRequest, settings: SettingsDep, gate: GateDep
                    ) -> Response:
    """Evaluate the loss on a grid over two coordinates, for contour plots."""
    return answer_response(await gate.run(rendering(translate.run_landscape), body, settings,
                                          wait_s=settings.request_timeout_s))


@router.post("/analyze", response_model=AnalyzeResponse)
async def analyze(body: AnalyzeRequest, settings: SettingsDep, gate: GateDep) -> Response:
    """Value, gradient, curvature and quadratic-model theory at each point."""
    return answer_response(await gate.run(rendering(translate.run_analyze), body, settings,
                                          wait_s=settings.request_timeout_s))
