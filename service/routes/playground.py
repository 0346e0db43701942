"""GET /: the playground page, shipped inside the package (no network at run time)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from fastapi import APIRouter
from starlette.responses import HTMLResponse

router = APIRouter(tags=["playground"])


@lru_cache(maxsize=1)
def _page() -> str:
    return resources.files("service").joinpath("static/playground.html").read_text("utf-8")


@router.get("/", response_class=HTMLResponse)
async def playground() -> HTMLResponse:
    """The interactive playground: losses, optimizers, paths, diagnostics and findings."""
    return HTMLResponse(_page())
