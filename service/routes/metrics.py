"""GET /metrics in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from service.auth.guard import require
from service.problems import AUTH_RESPONSES

router = APIRouter(tags=["health"], dependencies=[require("metrics")],
                   responses=AUTH_RESPONSES)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Requests by route and status, latency histograms, work computed, rejections by reason."""
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
