"""Request bodies of the studies: /v1/tune, /v1/basins, /v1/benchmark."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, create_model

from service.schemas.base import Int, Seed, Strict
from service.schemas.losses import LossSpec
from service.schemas.optimizers import OPTIMIZER_MODELS, AnyOptimizer
from service.schemas.requests import GridValue, RunOptions, Stop


class SearchRange(Strict):
    """A continuous range: uniform in [low, high], or log-uniform with `log`."""

    low: float
    high: float
    log: bool = False


SearchDimension = SearchRange | Annotated[list[GridValue], Field(min_length=1)]


def _tuned_model(name: str, model: type[Strict]) -> type[Strict]:
    return create_model(
        model.__name__.replace("Optimizer", "Search"), __base__=model,
        __doc__=f"{name} with fixed hyperparameters and a search space over others",
        search=(dict[str, SearchDimension], Field(
            default_factory=dict, description="hyperparameter: {low, high, log} or "
            "[choices]; the others keep their fixed or default values")))


TUNED_MODELS = {name: _tuned_model(name, model) for name, model in OPTIMIZER_MODELS.items()}
TunedOptimizer = Annotated[Union[tuple(TUNED_MODELS.values())],  # noqa: UP007
                           Field(discriminator="name")]


class Pruning(Strict):
    kind: Literal["successive_halving"] = "successive_halving"
    min_steps: Int = Field(..., ge=1, description="the first rung's steps")
    reduction_factor: Int = Field(3, ge=2, le=16,
                                  description="each rung keeps 1/η of its trials")


class TuneRequest(RunOptions):
    optimizers: list[TunedOptimizer] = Field(..., min_length=1)
    trials: Int = Field(20, ge=1, description="trials per optimizer")
    sampler: Literal["random", "sobol", "grid", "tpe"] = Field(
        "random", description="random; sobol (scrambled); grid; tpe: a Parzen-estimator "
        "model fitted between rounds of trials (each round one batch)")
    objective: Literal["final_loss", "steps_to_tol", "auc"] = "final_loss"
    pruning: Pruning | None = None


class BasinsRequest(Strict):
    loss: LossSpec
    optimizer: AnyOptimizer
    bounds: list[Annotated[list[float], Field(min_length=2, max_length=2)]] | None = Field(
        None, min_length=2, max_length=2, description="[[x0, x1], [y0, y1]] of the grid of "
        "starts (default: the catalog function's domain)")
    resolution: list[Annotated[Int, Field(ge=2)]] = Field(
        default_factory=lambda: [40, 40], min_length=2, max_length=2,
        description="[nx, ny] starts")
    max_steps: Int = Field(1000, ge=0)
    stop: Stop = Field(default_factory=Stop)
    seed: Seed = 0
    time_budget_s: float | None = Field(None, gt=0, description="at most the server's budget")


SUITE_NAMES = ("smooth-2d", "multimodal-2d", "rosenbrock-nd")


class BenchmarkRequest(Strict):
    losses: list[LossSpec] | None = Field(None, min_length=1, description="losses with a "
                                          "known minimum value (catalog functions)")
    suite: Literal[SUITE_NAMES] | None = Field(None, description="a named catalog subset")  # type: ignore[valid-type]
    optimizers: list[AnyOptimizer] = Field(..., min_length=1)
    starts_per_loss: Int = Field(8, ge=1)
    seed: Seed = 0
    targets: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8],
        min_length=1, description="precisions of f − f_min")
    max_steps: Int = Field(1000, ge=0)
    stop: Stop = Field(default_factory=Stop)
    time_budget_s: float | None = Field(None, gt=0, description="at most the server's budget")


__all__ = ["BasinsRequest", "BenchmarkRequest", "Pruning", "SearchRange", "TuneRequest"]
