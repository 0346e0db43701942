"""POST /v1/plot: the contour with every path, and the loss against the step."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service import translate
from service.deps import GateDep, SettingsDep
from service.jsonio import StrictJSONRoute
from service.problems import PROBLEM_RESPONSES
from service.schemas.requests import PlotRequest

router = APIRouter(prefix="/v1", tags=["pictures"], route_class=StrictJSONRoute,
                   responses=PROBLEM_RESPONSES)
MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


@router.post("/plot", response_class=Response, responses={200: {
    "content": {"image/svg+xml": {}, "image/png": {}},
    "description": "the picture"}})
async def plot(body: PlotRequest, settings: SettingsDep, gate: GateDep) -> Response:
    """Draw an optimize or compare request: loss contours with paths, and loss curves."""
    image = await gate.run(translate.run_plot, body, settings,
                           wait_s=translate.time_budget(body.request, settings))
    return Response(image, media_type=MEDIA_TYPES[body.format])
