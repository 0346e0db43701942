"""What a step rule is: a pair of pure functions over (K, d) arrays plus its hyperparameters.

    init(params) -> State
    update(grads, state, params, hp, t, ctx) -> (step, State)

`hp` holds every hyperparameter as a (K, 1) column already evaluated at step t, so one call
serves a whole sweep. The rule returns the step Δp; the engine owns params, stopping and
recording. `ctx` carries what only some rules need (the Hessian and its eigendecomposition,
the loss values, a value function for line searches). The engine never reads a state again
after passing it to `update`, so a rule may change its arrays in place (the dense ones of
BFGS and L-BFGS are not copied each step).

A first-order rule is written once, coordinate by coordinate (`Elementwise`): its per-step
coefficients and its kernel are plain arithmetic plus a few operations (`Ops`), so the same
code runs on (K, d) arrays with NumPy's operations (its `init` and `update` are derived from
it) and on one coordinate's Python floats with their float twins, in the engine's small-batch
path, where NumPy's per-call cost on arrays of two numbers would dominate. Same code, same
order of operations: both give the same numbers (a root of a negative is nan on both: see
FLOAT_OPS). Second-order rules (Newton) write their array form by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

from optim_core.errors import HyperparameterError
from optim_core.types import Array


class StepContext(NamedTuple):
    values: Array  # (K,) loss at params
    hess: Array | None  # (K, d, d) when the rule needs it
    eigenvalues: Array | None  # (M, d) ascending, M rows: those not certified
    eigenvectors: Array | None  # (M, d, d) columns
    value_fn: Callable[[Array], Array] | None  # loss values at trial params (line search)
    certified: Array | None = None  # (K,) rows certified positive definite (newton.py): the
    # eigendecomposition covers only the other rows, in order (None: every row has it)
    value_grad_fn: Callable[[Array], tuple[Array, Array]] | None = None  # values and grads
    bounds: tuple[Array, Array] | None = None  # the box (lo, hi), each (d,), when there is one


Hyper = SimpleNamespace  # hp.lr, hp.momentum, …: (K, 1) columns or shared floats, or one run's


@dataclass(frozen=True, slots=True)
class Ops:
    """What a kernel may call besides arithmetic: NumPy's functions on arrays, or float twins
    that give NumPy's answers on one coordinate (nan winning a maximum; the root of a negative
    raises ValueError in FLOAT_OPS and is nan in CAREFUL_FLOAT_OPS, see below)."""

    sqrt: Callable[[Any], Any]
    maximum: Callable[[Any, Any], Any]
    where: Callable[[Any, Any, Any], Any]  # (rows, a, b): a where rows holds, else b
    abs: Callable[[Any], Any]
    any: Callable[[Any], bool]  # whether any run has a hyperparameter set (a flag, a decay)
    power: Callable[[Any, Any], Any]  # every power of a hyperparameter (see ARRAY_OPS)


def safe_sqrt(x: float) -> float:
    """math.sqrt with np.sqrt's answer (nan) for a negative number instead of an exception."""
    return math.sqrt(x) if x >= 0.0 else math.nan


def nan_maximum(a: float, b: float) -> float:
    """np.maximum on floats: nan wins."""
    if a != a or b != b:
        return math.nan
    return a if a > b else b


def _pick(rows: Any, a: Any, b: Any) -> Any:
    return a if rows else b


def _root(x: Any) -> Any:
    """np.sqrt, with a shared hyperparameter's float taken by math.sqrt (the same correctly
    rounded root, ~20× cheaper than a NumPy call on a scalar)."""
    return math.sqrt(x) if isinstance(x, float) and x >= 0.0 else np.sqrt(x)


def _any(x: Any) -> bool:
    return bool(x.any()) if isinstance(x, np.ndarray) else bool(x)


# A hyperparameter that every run of a group shares is a float (groups.py), one that differs
# a (K, 1) column: arithmetic on both rounds alike, but Python's pow and NumPy's do not
# always agree in the last bit, so every power of a hyperparameter goes through np.power
# (`ops.power`), which gives a shard whose runs share a value the bits of the whole batch.
ARRAY_OPS = Ops(sqrt=_root, maximum=np.maximum, where=np.where, abs=np.abs, any=_any,
                power=np.power)
# On floats, math.sqrt first (~40 ns less a call than safe_sqrt, three calls an Adam step);
# where it raises (a root of a negative), the float path runs that step again with
# CAREFUL_FLOAT_OPS, whose answer is NumPy's nan. Kernels are pure, so the rerun is exact.
FLOAT_OPS = Ops(sqrt=math.sqrt, maximum=nan_maximum, where=_pick, abs=abs, any=bool,
                power=pow)
CAREFUL_FLOAT_OPS = Ops(sqrt=safe_sqrt, maximum=nan_maximum, where=_pick, abs=abs, any=bool,
                        power=pow)

Coefficients = Callable[[Ops, Hyper, int], tuple]
Kernel = Callable[[tuple, Any, Any, tuple], tuple[Any, tuple]]


@dataclass(frozen=True, slots=True)
class Elementwise:
    """A first-order rule written once.

    coefficients(ops, hp, t) -> c: what the step t shares across coordinates (bias
    corrections, flags), from hp's columns or one run's floats; c[0] is `ops`.
    kernel(c, g, p, state) -> (step, state): one coordinate's step and its new state, where g,
    p and each state slot are (K, d) arrays or one coordinate's floats.
    `state` names each slot and its value at the start (per coordinate).

    Both are pure and use arithmetic and `ops` only; a power of a hyperparameter is
    `ops.power(beta, n)`, never `beta ** n` (see ARRAY_OPS: shards would lose bit-equality,
    which a test on random hyperparameters catches). The float path calls the kernel once per
    coordinate (~60 ns a call there).

    `by_block`: coefficients(ops, hp, t) may take t as a (B, 1, 1) array of steps and answer
    every step's coefficients at once, step along the first axis (no Python branch on a value
    that depends on t): the fused path then builds a block's tables in one call.
    """

    state: dict[str, float]
    coefficients: Coefficients
    kernel: Kernel
    by_block: bool = True

    def init(self, params: Array) -> tuple[Array, ...]:
        return tuple(np.full_like(params, value) for value in self.state.values())

    def update(self, grads: Array, state: tuple[Array, ...], params: Array, hp: Hyper, t: int,
               ctx: StepContext | None = None) -> tuple[Array, tuple[Array, ...]]:
        return self.kernel(self.coefficients(ARRAY_OPS, hp, t), grads, params, state)


@dataclass(frozen=True, slots=True)
class HyperParam:
    """One hyperparameter: its default, its range and whether a schedule may drive it."""

    name: str
    default: Any
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    kind: str = "float"  # float | int | bool | choice
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

    def whole(self, value: Any) -> Any:
        """A whole number given for an int hyperparameter, as an int: a request's grid or
        search choices arrive as floats (JSON's 10 parsed beside 0.5), and answers echo them."""
        if self.kind == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def check_number(self, value: Any) -> float:
        """Validate a plain number against the range (torch-style message); a whole-number
        hyperparameter comes back an int, so answers echo `history_size: 10`, not 10.0."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value):
            raise HyperparameterError(f"Invalid {self.name}: {value!r} (must be a finite number)",
                                      loc=[self.name])
        if self.kind == "int" and float(value) != int(value):
            raise HyperparameterError(f"Invalid {self.name}: {value} (must be a whole number)",
                                      loc=[self.name])
        ok = ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
              and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))
        if not ok:
            raise HyperparameterError(
                f"Invalid {self.name}: {value} (must be {self.bounds_text()})", loc=[self.name])
        return int(value) if self.kind == "int" else float(value)


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
    may_converge(ctx, candidates) -> (K,) rows allowed to report convergence (a gradient
    that vanishes on a curvature the rule rejects is no minimum); `candidates` (K,) the rows
    whose gradient meets grad_tol, the only ones read (a rule may decompose just those)."""

    decompose: Callable[[Array], tuple[Array | None, Array | None, Array | None]]
    may_converge: Callable[[StepContext, Array], Array]


@dataclass(frozen=True, slots=True)
class StepRule:
    name: str
    init: Callable[[Array], NamedTuple]
    update: Callable[..., tuple[Array, NamedTuple]]
    hyperparams: tuple[HyperParam, ...]
    doc: str
    curvature: Curvature | None = None  # second-order rules: what they do with the Hessian
    counters: tuple[str, ...] = ()  # state fields that count per-run events, (K, 1) each
    elementwise: Elementwise | None = None  # first-order rules: the step written once
    model: QuadraticModel | None = None  # stability limit and predicted rate, when they apply
    # Rules that evaluate the loss themselves (line searches, simplices) get a StepContext with
    # the loss's functions; `hessian` rules get the Hessian at params every step.
    uses_loss: bool = False
    hessian: bool = False
    # Rows the rule has ended on its own criterion: state → ((K,) mask, (K,) Reason codes)
    finished: Callable[[Any], tuple[Array, Array]] | None = None
    # The rule counts its evaluations itself (state fields func_evals, grad_evals, hess_evals:
    # totals per run); otherwise one evaluation a step, as the engine makes it.
    counts_evals: bool = False

    @property
    def needs_hessian(self) -> bool:
        return self.curvature is not None or self.hessian

    @property
    def needs_context(self) -> bool:
        return self.needs_hessian or self.uses_loss

    def hyperparam(self, name: str) -> HyperParam:
        for hp in self.hyperparams:
            if hp.name == name:
                return hp
        raise HyperparameterError(
            f"'{self.name}' has no hyperparameter '{name}'; it takes "
            f"{', '.join(h.name for h in self.hyperparams)}", loc=[name])


def elementwise_rule(name: str, rule: Elementwise, hyperparams: tuple[HyperParam, ...],
                     doc: str, model: QuadraticModel | None = None) -> StepRule:
    """The StepRule of a rule written once: its array form is its kernel on NumPy's ops."""
    return StepRule(name, rule.init, rule.update, hyperparams, doc, elementwise=rule,
                    model=model)


def decay_terms(ops: Ops, hp: Hyper, decoupled: Any = False) -> tuple[Any, Any]:
    """(coupled, rate) of torch's weight decay: the kernel adds coupled·p to the gradient
    (L2) and subtracts rate·p from the step (p ← p·(1 − lr·wd), AdamW); None when no run
    needs the term, which saves two passes over (K, d) in the default case.

    `decoupled` is False (L2), True (decoupled), or hp.decoupled_weight_decay (per run).
    """
    wd = hp.weight_decay
    if not ops.any(wd):
        return None, None
    if decoupled is False:
        return wd, None
    if decoupled is True:
        return None, hp.lr * wd
    coupled = ops.where(decoupled, 0.0, wd)
    return (coupled if ops.any(coupled) else None,
            ops.where(decoupled, hp.lr * wd, 0.0) if ops.any(decoupled) else None)


# The two hyperparameters of torch's optional decoupled decay (NAdam, RAdam), which
# decay_terms(ops, hp, hp.decoupled_weight_decay) applies; each rule places them in its torch
# signature's order.
OPTIONAL_WEIGHT_DECAY = HyperParam("weight_decay", 0.0, ge=0,
                                   doc="L2 term (coupled, or decoupled: see below)")
DECOUPLED_WEIGHT_DECAY = HyperParam(
    "decoupled_weight_decay", False, kind="bool",
    doc="decay the parameters (p ← p·(1 − lr·wd)) instead of the gradient")
