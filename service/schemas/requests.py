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
