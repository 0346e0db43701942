"""Request bodies of the compute endpoints."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from service.schemas.base import Int, Seed, Strict
from service.schemas.losses import LossSpec
from service.schemas.optimizers import (
    OPTIMIZER_MODELS,
    SCHEDULE_UNIONS,
    AnyOptimizer,
    MomentumSchedule,
)

RecordField = Literal["params", "loss", "grad_norm", "lr", "step_size", "evals"]


class RandomStartSpec(Strict):
    n: Int = Field(1, ge=1)
    low: float | list[float] = -1.0
    high: float | list[float] = 1.0
    seed: Seed | None = None


class RandomStart(Strict):
    random: RandomStartSpec


Start = list[float] | list[list[float]] | RandomStart


class Stop(Strict):
    grad_tol: float = Field(1e-8, ge=0)
    loss_tol: float | None = None
    step_tol: float | None = Field(None, ge=0)
    divergence_factor: float = Field(1e8, gt=0)
    patience: Int | None = Field(None, ge=1, description="stagnation steps before `stalled`")


class Record(Strict):
    every: Int = Field(1, ge=1)
    max_points: Int = Field(1000, ge=2)
    fields: list[RecordField] = Field(default_factory=lambda: ["params", "loss", "grad_norm",
                                                               "lr"])


Bound = Annotated[list[float | None], Field(min_length=2, max_length=2)]


class RunOptions(Strict):
    loss: LossSpec
    start: Start | None = None
    bounds: list[Bound] | None = Field(
        None, description="[lo, hi] per coordinate (null: that side open): every run stays in "
        "the box; convergence reads the projected gradient; a start outside is a 400")
    max_steps: Int = Field(1000, ge=0)
    stop: Stop = Field(default_factory=Stop)
    record: Record = Field(default_factory=Record)
    seed: Seed = Field(0, description="seeds random starts and minibatches")
    time_budget_s: float | None = Field(None, gt=0, description="at most the server's budget")


class OptimizeRequest(RunOptions):
    optimizer: AnyOptimizer = Field(default_factory=lambda: OPTIMIZER_MODELS["sgd"](name="sgd"),
                                    description="default: plain SGD")


class CompareRequest(RunOptions):
    optimizers: list[AnyOptimizer] = Field(..., min_length=1)


# a grid value is what a hyperparameter takes: a number, a flag, a choice or a schedule
GridValue = Union[(float, bool, str, *SCHEDULE_UNIONS, MomentumSchedule)]  # noqa: UP007
GridValues = Annotated[list[GridValue], Field(min_length=1)]


class SweepRequest(RunOptions):
    optimizer: AnyOptimizer
    grid: dict[str, GridValues] = Field(..., min_length=1,
                                        description="hyperparameter: [values], in product order")
    include_runs: bool = False


class LandscapeRequest(Strict):
    loss: LossSpec
    bounds: list[list[float]] | None = None
    resolution: list[Annotated[Int, Field(ge=2)]] = Field(
        default_factory=lambda: [100, 100], min_length=2, max_length=2,
        description="[nx, ny], at least 2 points per axis")
    fixed: list[float] | None = None
    axes: list[Int | str] | None = None


class AnalyzeRequest(Strict):
    loss: LossSpec
    points: list[float] | list[list[float]] | None = None


class PlotRequest(Strict):
    request: CompareRequest | OptimizeRequest = Field(
        ..., description="a compare body (with `optimizers`) or an optimize body")
    panels: list[Literal["contour", "loss"]] = Field(
        default_factory=lambda: ["contour", "loss"], min_length=1)
    kind: Literal["contour", "surface", "loss", "rate_map", "basins"] = Field(
        "contour", description="contour: the panels; surface: a 3-D surface with the paths "
        "(and the loss panel when asked); loss: the loss curves only; rate_map: heavy ball's "
        "rate over (lr, momentum), theory beside measured; basins: the first optimizer's "
        "basins of attraction over the bounds")
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
