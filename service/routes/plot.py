"""POST /v1/plot: the contour with every path, and the loss against the step."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service import plots, translate
from service.auth.guard import require
from service.deps import GateDep, SettingsDep
from service.jsonio import StrictJSONRoute
from service.problems import AUTH_RESPONSES, PROBLEM_RESPONSES
from service.schemas.plot import PlotRequest

router = APIRouter(prefix="/v1", tags=["pictures"], route_class=StrictJSONRoute,
                   responses={**PROBLEM_RESPONSES, **AUTH_RESPONSES},
                   dependencies=[require("compute")])
MEDIA_TYPES = plots.MEDIA_TYPES
# Bytes of any format, for clients that ask for them (`Accept: application/octet-stream`):
# generated clients read declared octet-stream answers as files, and image/* types as nothing
OCTET_STREAM = "application/octet-stream"
BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.post("/plot", response_class=Response, responses={200: {
    "content": dict.fromkeys((*MEDIA_TYPES.values(), OCTET_STREAM), BINARY),
    "description": "the picture: bytes of the format's media type (application/octet-stream "
                   "when the request's Accept names only that)"}})
async def plot(body: PlotRequest, settings: SettingsDep, gate: GateDep,
               request: Request) -> Response:
    """Draw an optimize or compare request: loss contours with paths, and loss curves."""
    request.app.state.auth.check_run_steps(request, translate.run_steps(body))
    image = await gate.run(plots.run_plot, body, settings,
                           wait_s=translate.time_budget(body.request, settings))
    accept = request.headers.get("accept", "").split(";")[0].strip().lower()
    media = OCTET_STREAM if accept == OCTET_STREAM else MEDIA_TYPES[body.format]
    return Response(image, media_type=media)
