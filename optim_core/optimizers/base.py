"""What a step rule is: a pair of pure functions over (K, d) arrays plus its hyperparameters.

    init(params) -> State
    update(grads, state, params, hp, t, ctx) -> (step, State)

`hp` holds every hyperparameter as a (K, 1) column already evaluated at step t, so one call
serves a whole sweep. The rule returns the step Δp; the engine owns params, stopping and
recording. `ctx` carries what only some rules need (the Hessian and its eigendecomposition,
the loss values, a value function for line searches).

A first-order rule also has a float form (`FloatRule`): the same formula on one run's Python
floats, used by the engine's small-batch path, where NumPy's per-call cost on arrays of two
numbers would dominate. It keeps the vectorised form's order of operations, so both give the
same numbers, and it never raises (every divisor carries eps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

from optim_core.errors import HyperparameterError
from optim_core.types import Array, Column


class StepContext(NamedTuple):
    values: Array  # (K,) loss at params
    hess: Array | None  # (K, d, d) when the rule needs it
    eigenvalues: Array | None  # (M, d) ascending, M rows: those not certified
    eigenvectors: Array | None  # (M, d, d) columns
    value_fn: Callable[[Array], Array] | None  # loss values at trial params (line search)
    certified: Array | None = None  # (K,) rows certified positive definite (newton.py): the
    # eigendecomposition covers only the other rows, in order (None: every row has it)


Hyper = SimpleNamespace  # hp.lr, hp.momentum, …: (K, 1) columns, or one run's floats
FloatStep = Callable[[list[float], list[list[float]], list[float], Hyper, int], list[float]]


@dataclass(frozen=True, slots=True)
class FloatRule:
    """A rule on one run: step(grads, state, params, hp, t) -> step, updating `state` in place.

    `state` is `n_state` lists of d floats, all zero at the start; `hp` holds each
    hyperparameter's value at step t as an attribute, as the vectorised form's columns do
    (`hp.lr`: a float, or a bool for flags). Unlike the
    vectorised form this one is not pure: its lists belong to one run of the float path and
    nothing else sees them, and new lists every step would cost more than the arithmetic.
    """

    n_state: int
    step: FloatStep


@dataclass(frozen=True, slots=True)
class HyperParam:
    """One hyperparameter: its default, its range and whether a schedule may drive it."""

    name: str
    default: Any
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    kind: str = "float"  # float | bool | choice
    choices: tuple[str, ...] = ()
    schedulable: bool = False
    schedules: tuple[str, ...] | None = None  # allowed schedule names; None: all
    doc: str = ""

    def bounds_text(self) -> str:
        parts = []
        if self.gt is not None:
            parts.append(f"> {self.gt}")
        if self.ge is not None:
            parts.append(f">= {self.ge}")
        if self.lt is not None:
            parts.append(f"< {self.lt}")
        if self.le is not None:
            parts.append(f"<= {self.le}")
        return " and ".join(parts)

    def check_number(self, value: Any) -> float:
        """Validate a plain number against the range (torch-style message)."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value):
            raise HyperparameterError(f"Invalid {self.name}: {value!r} (must be a finite number)",
                                      loc=[self.name])
        ok = ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
              and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))
        if not ok:
            raise HyperparameterError(
                f"Invalid {self.name}: {value} (must be {self.bounds_text()})", loc=[self.name])
        return float(value)


@dataclass(frozen=True, slots=True)
class QuadraticModel:
    """What the local quadratic model says about a rule whose step is lr times a (momentum)
    gradient; the findings read it, so they name no rule.

    stability_limit(λmax, momentum) -> the largest stable lr (None: no limit applies);
    loss_rate(lr, momentum, λ) -> the predicted per-step loss-gap ratio."""

    stability_limit: Callable[[float, float], float | None]
    loss_rate: Callable[[float, float, Array], float | None]
    slow_in_ravines: bool = False  # needs ~κ steps on a ravine (plain gradient descent)


@dataclass(frozen=True, slots=True)
class Curvature:
    """What a second-order rule does with the Hessian before its step, so the engine runs it
    without knowing the rule.

    decompose(hess) -> (certified, eigenvalues, eigenvectors): hess (K, d, d), possibly with
    non-finite rows; `certified` (K,) rows proven fit for the rule's plain step, and the
    eigendecomposition of the other rows only, in order (nan eigenvalues for non-finite rows).
    may_converge(ctx) -> (K,) rows allowed to report convergence (a gradient that vanishes on
    a curvature the rule rejects is no minimum)."""

    decompose: Callable[[Array], tuple[Array, Array | None, Array | None]]
    may_converge: Callable[[StepContext], Array]


@dataclass(frozen=True, slots=True)
class StepRule:
    name: str
    init: Callable[[Array], NamedTuple]
    update: Callable[..., tuple[Array, NamedTuple]]
    hyperparams: tuple[HyperParam, ...]
    doc: str
    curvature: Curvature | None = None  # second-order rules: what they do with the Hessian
    counters: tuple[str, ...] = ()  # state fields that count per-run events, (K, 1) each
    floats: FloatRule | None = None  # the same rule on one run's floats (small-batch path)
    model: QuadraticModel | None = None  # stability limit and predicted rate, when they apply

    @property
    def needs_hessian(self) -> bool:
        return self.curvature is not None

    def hyperparam(self, name: str) -> HyperParam:
        for hp in self.hyperparams:
            if hp.name == name:
                return hp
        raise HyperparameterError(
            f"'{self.name}' has no hyperparameter '{name}'; it takes "
            f"{', '.join(h.name for h in self.hyperparams)}", loc=[name])


def coupled_decay(grads: Array, params: Array, weight_decay: Column) -> Array:
    """torch's L2 weight decay: added to the gradient (g + wd·p); two passes over (K, d)
    saved when no run decays (the default)."""
    if not np.any(weight_decay):
        return grads
    return grads + weight_decay * params


def coupled_decay_floats(grads: list[float], params: list[float], weight_decay: float
                         ) -> list[float]:
    """coupled_decay on one run's floats: the gradient itself when wd = 0."""
    if not weight_decay:
        return grads
    return [g + weight_decay * p for g, p in zip(grads, params)]


def optional_decoupled_decay(grads: Array, params: Array, hp: Any) -> Array:
    """The gradient of a rule with `decoupled_weight_decay`: g + wd·p on the rows that couple
    their decay (torch's NAdam and RAdam), g itself where every row decouples or wd = 0."""
    coupled = np.where(hp.decoupled_weight_decay, 0.0, hp.weight_decay)
    return grads + coupled * params if np.any(coupled) else grads


def decoupled_decay_step(step: Array, params: Array, hp: Any) -> Array:
    """The step with p ← p·(1 − lr·wd) folded in, on the rows that decouple their decay."""
    if not (np.any(hp.weight_decay) and np.any(hp.decoupled_weight_decay)):
        return step
    return step - np.where(hp.decoupled_weight_decay, hp.lr * hp.weight_decay, 0.0) * params


def optional_decoupled_decay_floats(grads: list[float], params: list[float],
                                    hp: Hyper) -> list[float]:
    """optional_decoupled_decay on one run's floats."""
    if hp.decoupled_weight_decay:
        return grads
    return coupled_decay_floats(grads, params, hp.weight_decay)


def decoupled_decay_step_floats(step: list[float], params: list[float], hp: Hyper
                                ) -> list[float]:
    """decoupled_decay_step on one run's floats."""
    if not (hp.decoupled_weight_decay and hp.weight_decay):
        return step
    decay = hp.lr * hp.weight_decay
    return [s - decay * p for s, p in zip(step, params)]


# The two hyperparameters of torch's optional decoupled decay (NAdam, RAdam), which the four
# functions above apply; each rule places them in its torch signature's order.
OPTIONAL_WEIGHT_DECAY = HyperParam("weight_decay", 0.0, ge=0,
                                   doc="L2 term (coupled, or decoupled: see below)")
DECOUPLED_WEIGHT_DECAY = HyperParam(
    "decoupled_weight_decay", False, kind="bool",
    doc="decay the parameters (p ← p·(1 − lr·wd)) instead of the gradient")


def bias_correction(beta: Column, t: int) -> Column:
    """1 − βᵗ⁺¹ for the 0-based step t (torch counts steps from 1)."""
    return 1.0 - beta ** (t + 1)


def safe_sqrt(x: float) -> float:
    """math.sqrt with np.sqrt's answer (nan) for a negative number instead of an exception."""
    return math.sqrt(x) if x >= 0.0 else math.nan


def nan_maximum(a: float, b: float) -> float:
    """np.maximum on floats: nan wins."""
    if a != a or b != b:
        return math.nan
    return a if a > b else b


def zeros_state(params: Array, n: int) -> tuple[Array, ...]:
    return tuple(np.zeros_like(params) for _ in range(n))
