"""The `loss` object, discriminated by `kind`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from service.schemas.base import Int, Seed, Strict


class ExpressionLossSpec(Strict):
    """A formula in Python-like syntax (`^` is power), differentiated exactly."""

    kind: Literal["expression"]
    expression: str = Field(..., min_length=1, description="e.g. (1 - x)^2 + 100*(y - x^2)^2")
    variables: list[str] | None = Field(None, description="variable order; default: sorted")


class BuiltinLossSpec(Strict):
    """A catalog function (GET /v1/functions)."""

    kind: Literal["builtin"]
    name: str
    dim: Int | None = Field(None, ge=1, description="for N-d functions; default 2")
    params: dict[str, float] | None = None


class QuadraticLossSpec(Strict):
    """f(x) = ½xᵀAx − bᵀx + c with A symmetric."""

    kind: Literal["quadratic"]
    A: list[list[float]]
    b: list[float] | None = None
    c: float = 0.0


class SyntheticData(Strict):
    n_samples: Int = Field(200, ge=1)
    n_features: Int = Field(2, ge=1)
    noise: float = Field(0.1, ge=0)
    seed: Seed = 0
    n_classes: Int = Field(3, ge=2, description="softmax only")
    condition: float = Field(1.0, ge=1, le=1e12,
                             description="feature scale ratio: a ravine for > 1")


class DatasetLossSpec(Strict):
    """The empirical risk over rows of data, with optional minibatches."""

    kind: Literal["dataset"]
    model: Literal["linear", "logistic", "softmax"]
    X: list[list[float]] | None = None
    y: list[float] | None = None
    synthetic: SyntheticData | None = None
    l2: float = Field(0.0, ge=0)
    fit_intercept: bool = True
    standardize: bool = False
    batch_size: Int | None = Field(None, ge=1, description="null: full batch")


LossSpec = Annotated[
    ExpressionLossSpec | BuiltinLossSpec | QuadraticLossSpec | DatasetLossSpec,
    Field(discriminator="kind"),
]
