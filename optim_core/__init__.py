"""optim_core: the pure engine (NumPy and SymPy, no HTTP).

Losses on (K, d) batches, step rules as (init, update) pairs in one registry, schedules, a
vectorised engine that advances many runs at once, diagnostics and findings.
"""

from optim_core.api import BatchReport, SweepReport, optimize, resolve_starts, summarize, sweep
from optim_core.engine.groups import RunGroup, make_group
from optim_core.engine.loop import run
from optim_core.engine.recording import RecordSpec
from optim_core.engine.results import RunBatch
from optim_core.engine.status import Reason, Status
from optim_core.engine.stopping import StopCriteria
from optim_core.errors import (
    DatasetError,
    DimensionError,
    ExpressionError,
    ExpressionLimitError,
    ExpressionSyntaxError,
    HyperparameterError,
    LimitExceededError,
    LossError,
    NonFiniteConstantError,
    OptimCoreError,
    UnknownNameError,
)
from optim_core.expressions.parse import ExpressionLimits
from optim_core.losses.catalog import BUILTINS, BuiltinLoss
from optim_core.losses.expression import ExpressionLoss, expression_loss
from optim_core.losses.quadratic import QuadraticLoss
from optim_core.optimizers import OPTIMIZERS
from optim_core.schedules import SCHEDULES

__all__ = [
    "BUILTINS", "OPTIMIZERS", "SCHEDULES",
    "BatchReport", "BuiltinLoss", "DatasetError", "DimensionError", "ExpressionError",
    "ExpressionLimitError", "ExpressionLimits", "ExpressionLoss", "ExpressionSyntaxError",
    "HyperparameterError", "LimitExceededError", "LossError", "NonFiniteConstantError",
    "OptimCoreError", "QuadraticLoss", "Reason", "RecordSpec", "RunBatch", "RunGroup", "Status",
    "StopCriteria", "SweepReport", "UnknownNameError", "expression_loss", "make_group",
    "optimize", "resolve_starts", "run", "summarize", "sweep",
]
