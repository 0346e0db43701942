"""Exceptions for input the core cannot use; runtime outcomes are never exceptions.

    OptimCoreError                 (detail, loc, position)
    ├── ExpressionError
    │   ├── ExpressionSyntaxError  the text does not parse or uses a forbidden construct
    │   ├── UnknownNameError       a function or variable name that is not allowed
    │   ├── ExpressionLimitError   the text or its derivatives are too large to work on
    │   └── NonFiniteConstantError a constant evaluates to inf or nan (1e999, 9**9**9)
    ├── LossError                  a loss that cannot be built (bad builtin, non-symmetric A, …)
    │   └── DatasetError           ragged X, labels out of range, …
    ├── DimensionError             start, bounds or axes that do not match the loss
    ├── HyperparameterError        a hyperparameter outside its range
    ├── LimitExceededError         work or memory above the limits the caller passed in
    └── TimeBudgetError            work that cannot give a partial answer ran past its deadline

Each carries no HTTP status: the service maps classes to statuses in one table.
"""

from __future__ import annotations

from collections.abc import Sequence


class OptimCoreError(Exception):
    """Base class: `detail` says what to fix; `loc` points into the request when known."""

    def __init__(
        self,
        detail: str,
        *,
        loc: Sequence[str | int] | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.loc = list(loc) if loc is not None else None
        self.position = position


def _rebuild(cls: type[OptimCoreError], state: dict[str, object]) -> OptimCoreError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("detail", ""))
    error.__dict__.update(state)
    return error


def _reduce(self: OptimCoreError) -> tuple[object, ...]:
    """Pickle with every field, so errors raised in a worker process arrive intact."""
    return _rebuild, (type(self), dict(self.__dict__))


OptimCoreError.__reduce__ = _reduce  # type: ignore[method-assign,assignment]


class ExpressionError(OptimCoreError):
    """The expression text cannot be used."""


class ExpressionSyntaxError(ExpressionError):
    """The text does not parse, or uses a construct outside the allowed grammar."""


class UnknownNameError(ExpressionError):
    """A name that is neither an allowed function, a constant, nor a valid variable."""


class ExpressionLimitError(ExpressionError):
    """The expression (or its derivatives) exceeds a size limit."""


class NonFiniteConstantError(ExpressionError):
    """A constant part of the expression is infinite or undefined."""


class LossError(OptimCoreError):
    """A loss definition that cannot be built."""


class DatasetError(LossError):
    """Data for a sampled loss that cannot be used."""


class DimensionError(OptimCoreError):
    """Shapes that do not match the loss."""


class HyperparameterError(OptimCoreError):
    """A hyperparameter outside its allowed range."""


class LimitExceededError(OptimCoreError):
    """Work or memory above a limit; `limit` names it so the caller can point to its setting."""

    def __init__(self, detail: str, *, limit: str, value: float, maximum: float) -> None:
        super().__init__(detail)
        self.limit = limit
        self.value = value
        self.maximum = maximum


class TimeBudgetError(OptimCoreError):
    """A computation without a meaningful partial answer (a landscape, an analysis) reached
    the deadline the caller passed in; runs, which have one, stop with `time_limit` instead."""
