"""The body of POST /v1/plot: what to run and how to draw it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from service.schemas.base import Int, Strict
from service.schemas.requests import CompareRequest, OptimizeRequest
from service.schemas.studies import BenchmarkRequest


class PlotRequest(Strict):
    request: CompareRequest | OptimizeRequest | BenchmarkRequest = Field(
        ..., description="a compare body (with `optimizers`) or an optimize body; for the "
        "kinds ecdf and profile, a benchmark body")
    panels: list[Literal["contour", "loss"]] = Field(
        default_factory=lambda: ["contour", "loss"], min_length=1)
    kind: Literal["contour", "surface", "loss", "rate_map", "basins", "ecdf", "profile"] = Field(
        "contour", description="contour: the panels; surface: a 3-D surface with the paths "
        "(and the loss panel when asked); loss: the loss curves only; rate_map: heavy ball's "
        "rate over (lr, momentum), theory beside measured; basins: the first optimizer's "
        "basins of attraction over the bounds; ecdf, profile: a benchmark body's runtime "
        "ECDFs or Dolan–Moré profiles")
    format: Literal["svg", "png", "gif", "html", "mp4"] = Field(
        "svg", description="gif, html and mp4 animate the contour and loss panels step by "
        "step (mp4 needs the optional imageio-ffmpeg: optim-service[video])")
    frames: Int = Field(40, ge=2, le=100_000, description="frames of an animation (at most "
                        "the server's OPTIM_MAX_PLOT_FRAMES)")
    bounds: list[list[float]] | None = Field(None, description="default: around paths, minima")
    size: list[Annotated[Int, Field(ge=200, le=4000)]] = Field(
        default_factory=lambda: [1100, 480], min_length=2, max_length=2,
        description="[width, height] in pixels, each 200 to 4000")
    axes: list[Int | str] | None = Field(None, description="the two coordinates shown")
