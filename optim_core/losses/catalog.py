"""The builtin test functions: one table entry each, with minima, domain, default start.

Fixed 2-D functions are formulas run through the expression pipeline (exact derivatives);
N-d functions have analytic value, gradient and Hessian, their value and gradient written once
as elementwise terms that both the vectorised form and the float form run (see "N-d
functions" below; Ackley has no float form). Minima are the global ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from optim_core.errors import DimensionError, LossError
from optim_core.losses.base import LossBase, default_names
from optim_core.losses.expression import ExpressionLoss, expression_loss
from optim_core.types import Array, Grads, Hess, Params, Values

# (params, parameters, order) -> values, and the gradient (order ≥ 1) and Hessian (order 2),
# None where not asked for: the line search and the Hessian step ask for only what they use
NdFunction = Callable[[Params, Mapping[str, float], int],
                      tuple[Values, Grads | None, Hess | None]]
PointFunction = Callable[[list[float]], tuple[float, list[float]]]
# (dim, params) -> value and gradient at one point of floats, for the engine's small-batch
# path: built from the same terms as the batch form, in its order of operations
FloatFactory = Callable[[int, Mapping[str, float]], PointFunction]


@dataclass(frozen=True, slots=True)
class ParamSpec:
    default: float
    gt: float | None = None
    doc: str = ""


@dataclass(frozen=True, slots=True)
class BuiltinSpec:
    """One catalog entry; `formula` is either evaluated (fixed dim) or documentation (N-d)."""

    name: str
    formula: str
    description: str
    tags: tuple[str, ...]
    domain: tuple[float, float] | tuple[tuple[float, float], ...]
    start: tuple[float, ...]  # tiled to the dimension for N-d functions
    minima: Callable[[int, Mapping[str, float]], Array | None]
    f_min: Callable[[int, Mapping[str, float]], float | None]
    dim: int | None = 2  # None: any dimension ≥ min_dim
    min_dim: int = 1
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    evaluate: NdFunction | None = None  # N-d functions: (value, grad, hess?) on a batch
    floats: FloatFactory | None = None  # N-d functions: the same on one point of floats
    hessian: Callable[[Params, Mapping[str, float]], Hess] | None = None  # N-d: the Hessian
    # alone, where it is cheaper than `evaluate` at order 2 (Newton asks for it every step)
    form: Separable | Pairs | None = None  # N-d: the terms, for the fused kernels


def _points(*points: tuple[float, ...]) -> Callable[[int, Mapping[str, float]], Array]:
    return lambda dim, p: np.array(points, dtype=float)


def _const(value: float | None) -> Callable[[int, Mapping[str, float]], float | None]:
    return lambda dim, p: value


def _none(dim: int, p: Mapping[str, float]) -> None:
    return None


# ---- N-d functions -------------------------------------------------------------------------
#
# Each is written once, as elementwise arithmetic that runs on a (K, d) array (the vectorised
# form) and on one coordinate's floats (the float form of the small-batch path); `ops` is
# `np` or `math` for the few functions whose spelling differs. A separable function is a sum
# of one term per coordinate (`_separable` builds both forms from its term); Rosenbrock sums
# one term per pair of neighbours. The Hessians are vectorised only (the float path is
# first-order).

# (ops, x, params, weight) -> (the coordinate's term, its derivative)
Term = Callable[[Any, Any, Mapping[str, float], Any], tuple[Any, Any]]


@dataclass(frozen=True, slots=True)
class Separable:
    """Σᵢ scale·term(xᵢ) (+ offset): what the fused kernels compile (kernels/codegen.py)."""

    term: Term
    scale: float = 1.0
    offset: Callable[[int, Mapping[str, float]], float] | None = None
    weights: Callable[[int, Mapping[str, float]], Array] | None = None


@dataclass(frozen=True, slots=True)
class Pairs:
    """Σᵢ pair(xᵢ, xᵢ₊₁, a, b) with the pair's derivatives in head and tail (Rosenbrock)."""

    pair: Callable[[Any, Any, float, float], tuple[Any, Any, Any]]
    names: tuple[str, str] = ("a", "b")


def _separable(term: Term, *, offset: Callable[[int, Mapping[str, float]], float] | None = None,
               scale: float = 1.0, weights: Callable[[int, Mapping[str, float]], Array] | None
               = None, hessian: Callable[[Params, Mapping[str, float]], Hess] | None = None
               ) -> tuple[NdFunction, FloatFactory, Separable]:
    """The vectorised and the float form of Σᵢ scale·term(xᵢ) (+ offset), and its terms."""

    def evaluate(x: Params, p: Mapping[str, float], order: int
                 ) -> tuple[Values, Grads | None, Hess | None]:
        d = x.shape[1]
        terms, derivatives = term(np, x, p, None if weights is None else weights(d, p))
        values = np.einsum("ki->k", terms)  # a per-row sum, the same at any K
        values = scale * values if scale != 1.0 else values
        if offset is not None:
            values = offset(d, p) + values
        return (values, derivatives if order else None,
                hessian(x, p) if order == 2 and hessian is not None else None)

    def floats(dim: int, p: Mapping[str, float]) -> PointFunction:
        per_coordinate = [None] * dim if weights is None else weights(dim, p).tolist()
        base = None if offset is None else offset(dim, p)

        def value_grad(x: list[float]) -> tuple[float, list[float]]:
            value, grads = 0.0, []
            for xi, wi in zip(x, per_coordinate):
                t, g = term(math, xi, p, wi)
                value += t
                grads.append(g)
            value = scale * value if scale != 1.0 else value
            return (value if base is None else base + value), grads

        return value_grad

    return evaluate, floats, Separable(term, scale, offset, weights)


def _sphere_term(ops: Any, x: Any, p: Mapping[str, float], w: Any) -> tuple[Any, Any]:
    return x * x, 2.0 * x


def _rastrigin_term(ops: Any, x: Any, p: Mapping[str, float], w: Any) -> tuple[Any, Any]:
    A = w  # the amplitude, as a per-coordinate weight: a term reads no mapping (fused kernels)
    angle = 2.0 * math.pi * x
    return x * x - A * ops.cos(angle), 2.0 * x + 2.0 * math.pi * A * ops.sin(angle)


def _styblinski_tang_term(ops: Any, x: Any, p: Mapping[str, float], w: Any
                          ) -> tuple[Any, Any]:
    x2 = x * x
    return x2 * x2 - 16.0 * x2 + 5.0 * x, 2.0 * x2 * x - 16.0 * x + 2.5


def _ravine_term(ops: Any, x: Any, p: Mapping[str, float], w: Any) -> tuple[Any, Any]:
    g = x * w
    return x * g, g


def _rosenbrock_pair(head: Any, tail: Any, a: float, b: float) -> tuple[Any, Any, Any]:
    """The term of one neighbouring pair and its derivatives in head and in tail."""
    inner = tail - head * head
    gap = a - head
    return b * inner * inner + gap * gap, -4.0 * b * head * inner - 2.0 * gap, 2.0 * b * inner


def _rosenbrock(x: Params, p: Mapping[str, float], order: int) -> tuple[Values, Grads | None,
                                                                        Hess | None]:
    if x.shape[1] == 2:
        return _rosenbrock_2d(x, p, order)
    terms, d_head, d_tail = _rosenbrock_pair(x[:, :-1], x[:, 1:], p["a"], p["b"])
    values = np.sum(terms, axis=1)
    if not order:
        return values, None, None
    grads = np.zeros_like(x)
    grads[:, :-1] = d_head
    grads[:, 1:] += d_tail
    return values, grads, _rosenbrock_hess(x, p) if order == 2 else None


def _rosenbrock_2d(x: Params, p: Mapping[str, float], order: int) -> tuple[Values, Grads | None,
                                                                           Hess | None]:
    """One pair: its term is the value, computed on the two columns as 1-D views (NumPy's
    loops over (K, 1) views cost ~25% more: 20 → 16 µs at K = 4,096). The same numbers as the
    N-d form: the tail's derivative is 0 + d_tail there too (−0 → 0)."""
    values, d_head, d_tail = _rosenbrock_pair(x[:, 0], x[:, 1], p["a"], p["b"])
    if not order:
        return values, None, None
    grads = np.empty_like(x)
    grads[:, 0] = d_head
    np.add(0.0, d_tail, out=grads[:, 1])
    return values, grads, _rosenbrock_hess(x, p) if order == 2 else None


def _rosenbrock_floats(dim: int, p: Mapping[str, float]) -> PointFunction:
    a, b = p["a"], p["b"]

    def value_grad(x: list[float]) -> tuple[float, list[float]]:
        # grads[:, :-1] = d_head, then grads[:, 1:] += d_tail, in one pass: each coordinate
        # gets its d_head, plus the d_tail of the pair before it
        value, grads, carry = 0.0, [], None
        head = x[0]
        for i in range(1, dim):
            tail = x[i]
            t, d_head, d_tail = _rosenbrock_pair(head, tail, a, b)
            value += t
            grads.append(d_head if carry is None else d_head + carry)
            head, carry = tail, d_tail
        grads.append(0.0 + carry)
        return value, grads

    return value_grad


def _rosenbrock_hess(x: Params, p: Mapping[str, float]) -> Hess:
    b = p["b"]
    k, d = x.shape
    hess = np.zeros((k, d, d))
    flat = hess.reshape(k, d * d)  # strided slices of the flat matrix: no index arrays
    diag = flat[:, :: d + 1]
    diag[:, :-1] = 12.0 * b * x[:, :-1] ** 2 - 4.0 * b * x[:, 1:] + 2.0
    diag[:, 1:] += 2.0 * b
    off = -4.0 * b * x[:, :-1]
    flat[:, 1 :: d + 1] = off  # (i, i + 1)
    flat[:, d :: d + 1] = off  # (i + 1, i)
    return hess


def _diagonal_hess(diag: Array) -> Hess:
    k, d = diag.shape
    hess = np.zeros((k, d, d))
    hess.reshape(k, d * d)[:, :: d + 1] = diag
    return hess


def _ackley(x: Params, p: Mapping[str, float], order: int) -> tuple[Values, Grads | None,
                                                                    Hess | None]:
    a, b, c = p["a"], p["b"], p["c"]
    d = x.shape[1]
    r = np.sqrt(np.einsum("ki,ki->k", x, x) / d)
    s = np.mean(np.cos(c * x), axis=1)
    decay = np.exp(-b * r)
    wave = np.exp(s)
    values = -a * decay - wave + a + math.e
    if not order:
        return values, None, None
    safe_r = np.where(r > 0, r, 1.0)
    grad_r = np.where((r > 0)[:, None], x / (d * safe_r[:, None]), 0.0)  # (K, d)
    grad_s = -c * np.sin(c * x) / d
    grads = a * b * decay[:, None] * grad_r - wave[:, None] * grad_s
    if order == 1:
        return values, grads, None
    eye = np.eye(d)
    # ∇²r = I/(d r) − ∇r∇rᵀ/r: unbounded at r = 0, where the function has a kink.
    outer_r = np.einsum("ki,kj->kij", grad_r, grad_r)
    hess_r = (eye[None] / d - outer_r) / safe_r[:, None, None]
    hess_r = np.where((r > 0)[:, None, None], hess_r, np.where(eye > 0, np.inf, 0.0)[None])
    hess = a * b * decay[:, None, None] * (hess_r - b * outer_r)
    hess -= wave[:, None, None] * (np.einsum("ki,kj->kij", grad_s, grad_s)
                                   + eye[None] * (-c * c * np.cos(c * x) / d)[:, :, None])
    return values, grads, hess


_ST_ROOT = -2.903534027771178  # the root of 2x³ − 16x + 2.5 = 0 that is the global minimiser


def _ravine_weights(d: int, condition: float) -> Array:
    return condition ** (np.arange(d) / (d - 1)) if d > 1 else np.ones(1)


_sphere, _sphere_floats, _sphere_form = _separable(
    _sphere_term, hessian=lambda x, p: np.broadcast_to(2.0 * np.eye(x.shape[1]),
                                                       (x.shape[0], x.shape[1], x.shape[1])))
_rastrigin, _rastrigin_floats, _rastrigin_form = _separable(
    _rastrigin_term, offset=lambda d, p: p["A"] * d, weights=lambda d, p: np.full(d, p["A"]),
    hessian=lambda x, p: _diagonal_hess(2.0 + 4.0 * math.pi**2 * p["A"]
                                        * np.cos(2.0 * math.pi * x)))
_styblinski_tang, _styblinski_tang_floats, _styblinski_tang_form = _separable(
    _styblinski_tang_term, scale=0.5, hessian=lambda x, p: _diagonal_hess(6.0 * x * x - 16.0))
_ravine, _ravine_floats, _ravine_form = _separable(
    _ravine_term, scale=0.5, weights=lambda d, p: _ravine_weights(d, p["condition"]),
    hessian=lambda x, p: np.broadcast_to(np.diag(_ravine_weights(x.shape[1], p["condition"])),
                                         (x.shape[0], x.shape[1], x.shape[1])))


def _rosenbrock_minima(dim: int, p: Mapping[str, float]) -> Array | None:
    a = p["a"]
    if dim == 2:
        return np.array([[a, a * a]])
    if a in (0.0, 1.0):
        return np.full((1, dim), a)
    return None


def _rosenbrock_f_min(dim: int, p: Mapping[str, float]) -> float | None:
    return 0.0 if _rosenbrock_minima(dim, p) is not None else None


def _styblinski_f_min(dim: int, p: Mapping[str, float]) -> float:
    x = _ST_ROOT
    return dim * 0.5 * (x**4 - 16 * x**2 + 5 * x)


_HIMMELBLAU_MINIMA = _points(
    (3.0, 2.0),
    (-2.805118086952745, 3.131312518250573),
    (-3.779310253377747, -3.283185991286170),
    (3.584428340330492, -1.848126526964404),
)
_MCCORMICK_MIN = (0.5 - math.pi / 3, -0.5 - math.pi / 3)

BUILTINS: dict[str, BuiltinSpec] = {
    spec.name: spec
    for spec in (
        BuiltinSpec(
            "rosenbrock", "sum(b*(x[i+1] - x[i]^2)^2 + (a - x[i])^2)",
            "Banana-shaped curved valley; easy to find, slow to follow to (a, a²).",
            ("ravine", "curved-valley"), ((-2.0, 2.0), (-1.0, 3.0)), (-1.2, 1.0),
            _rosenbrock_minima, _rosenbrock_f_min, dim=None, min_dim=2,
            params={"a": ParamSpec(1.0, doc="valley target"),
                    "b": ParamSpec(100.0, gt=0, doc="valley steepness")},
            evaluate=_rosenbrock, floats=_rosenbrock_floats, hessian=_rosenbrock_hess,
            form=Pairs(_rosenbrock_pair),
        ),
        BuiltinSpec(
            "beale", "(1.5 - x + x*y)^2 + (2.25 - x + x*y^2)^2 + (2.625 - x + x*y^3)^2",
            "Flat plateau with sharp ridges in the corners; minimum at (3, 0.5).",
            ("plateau", "ridges"), (-4.5, 4.5), (1.0, 1.0), _points((3.0, 0.5)), _const(0.0),
        ),
        BuiltinSpec(
            "booth", "(x + 2*y - 7)^2 + (2*x + y - 5)^2",
            "A plain convex quadratic bowl; minimum at (1, 3).",
            ("convex", "quadratic"), (-10.0, 10.0), (0.0, 0.0), _points((1.0, 3.0)), _const(0.0),
        ),
        BuiltinSpec(
            "himmelblau", "(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
            "Four equal minima; which one a run finds depends on where it starts.",
            ("multimodal",), (-5.0, 5.0), (0.0, 0.0), _HIMMELBLAU_MINIMA, _const(0.0),
        ),
        BuiltinSpec(
            "matyas", "0.26*(x^2 + y^2) - 0.48*x*y",
            "A flat, tilted ravine along x = y (condition number 25); minimum at the origin.",
            ("ravine", "plateau"), (-10.0, 10.0), (8.0, 2.0), _points((0.0, 0.0)), _const(0.0),
        ),
        BuiltinSpec(
            "three_hump_camel", "2*x^2 - 1.05*x^4 + x^6/6 + x*y + y^2",
            "Two local minima beside the global one at the origin.",
            ("multimodal",), (-5.0, 5.0), (2.0, -1.0), _points((0.0, 0.0)), _const(0.0),
        ),
        BuiltinSpec(
            "six_hump_camel", "(4 - 2.1*x^2 + x^4/3)*x^2 + x*y + (-4 + 4*y^2)*y^2",
            "Six local minima, two of them global at (±0.0898, ∓0.7127).",
            ("multimodal",), ((-3.0, 3.0), (-2.0, 2.0)), (-1.0, 1.0),
            _points((0.08984201310031806, -0.7126564030207396),
                    (-0.08984201310031806, 0.7126564030207396)),
            _const(-1.0316284534898774),
        ),
        BuiltinSpec(
            "goldstein_price",
            "(1 + (x + y + 1)^2*(19 - 14*x + 3*x^2 - 14*y + 6*x*y + 3*y^2))"
            "*(30 + (2*x - 3*y)^2*(18 - 32*x + 12*x^2 + 48*y - 36*x*y + 27*y^2))",
            "Steep, multimodal, with values over six orders of magnitude; minimum 3 at (0, −1).",
            ("multimodal", "steep"), (-2.0, 2.0), (-0.5, 0.5), _points((0.0, -1.0)), _const(3.0),
        ),
        BuiltinSpec(
            "mccormick", "sin(x + y) + (x - y)^2 - 1.5*x + 2.5*y + 1",
            "A smooth valley with a sinusoidal floor; minimum at (0.5 − π/3, −0.5 − π/3).",
            ("valley",), ((-1.5, 4.0), (-3.0, 4.0)), (0.0, 0.0), _points(_MCCORMICK_MIN),
            _const(-math.sqrt(3) / 2 - math.pi / 3),
        ),
        BuiltinSpec(
            "rastrigin", "A*n + sum(x[i]^2 - A*cos(2*pi*x[i]))",
            "A bowl covered in a regular grid of local minima; global minimum at the origin.",
            ("multimodal",), (-5.12, 5.12), (2.5, -2.2), lambda d, p: np.zeros((1, d)),
            _const(0.0), dim=None, params={"A": ParamSpec(10.0, gt=0, doc="ripple height")},
            evaluate=_rastrigin, floats=_rastrigin_floats, form=_rastrigin_form,
        ),
        BuiltinSpec(
            "ackley",
            "-a*exp(-b*sqrt(mean(x^2))) - exp(mean(cos(c*x))) + a + e",
            "A nearly flat outer region with a deep hole at the origin, covered in ripples.",
            ("multimodal", "plateau"), (-5.0, 5.0), (2.5, -1.5), lambda d, p: np.zeros((1, d)),
            _const(0.0), dim=None,
            params={"a": ParamSpec(20.0, doc="hole depth"), "b": ParamSpec(0.2, gt=0, doc="width"),
                    "c": ParamSpec(2 * math.pi, doc="ripple frequency")},
            evaluate=_ackley,
        ),
        BuiltinSpec(
            "sphere", "sum(x[i]^2)",
            "The round bowl: every direction has the same curvature (condition number 1).",
            ("convex", "quadratic"), (-5.0, 5.0), (1.5, -2.0), lambda d, p: np.zeros((1, d)),
            _const(0.0), dim=None, evaluate=_sphere, floats=_sphere_floats, form=_sphere_form,
        ),
        BuiltinSpec(
            "styblinski_tang", "sum(x[i]^4 - 16*x[i]^2 + 5*x[i])/2",
            "2ⁿ local minima; the global one at x_i = −2.9035.",
            ("multimodal",), (-5.0, 5.0), (0.0, 0.0),
            lambda d, p: np.full((1, d), _ST_ROOT), _styblinski_f_min, dim=None,
            evaluate=_styblinski_tang, floats=_styblinski_tang_floats, form=_styblinski_tang_form,
        ),
        BuiltinSpec(
            "saddle", "x^2 - y^2",
            "The plain saddle: a minimum along x, a maximum along y; unbounded below.",
            ("saddle", "unbounded"), (-2.0, 2.0), (1.0, 0.001), _none, _const(None),
        ),
        BuiltinSpec(
            "monkey_saddle", "x^3 - 3*x*y^2",
            "A degenerate saddle with three downhill valleys; the Hessian vanishes at the origin.",
            ("saddle", "degenerate", "unbounded"), (-2.0, 2.0), (1.0, 0.5), _none, _const(None),
        ),
        BuiltinSpec(
            "ravine", "0.5*sum(condition^((i-1)/(n-1)) * x[i]^2)",
            "The textbook ravine: a quadratic whose curvatures run from 1 to `condition` "
            "(in 2-D, ½(x² + κy²)); plain gradient descent zig-zags across it.",
            ("ravine", "convex", "quadratic", "ill-conditioned"),
            ((-10.0, 10.0), (-2.5, 2.5)), (-8.0, 1.0),
            lambda d, p: np.zeros((1, d)), _const(0.0), dim=None, min_dim=2,
            params={"condition": ParamSpec(100.0, gt=0, doc="κ = λmax/λmin")},
            evaluate=_ravine, floats=_ravine_floats, form=_ravine_form,
        ),
    )
}
ALIASES = {"ill_conditioned": "ravine"}


class BuiltinLoss(LossBase):
    """A catalog function at a given dimension and parameters."""

    kind = "builtin"

    def __init__(self, name: str, dim: int | None = None, params: Mapping[str, float] | None = None
                 ) -> None:
        canonical = ALIASES.get(name, name)
        spec = BUILTINS.get(canonical)
        if spec is None:
            raise LossError(
                f"Unknown builtin function '{name}'; choose one of "
                f"{', '.join(sorted([*BUILTINS, *ALIASES]))} (GET /v1/functions)",
                loc=["name"],
            )
        dim = 2 if dim is None else int(dim)
        if spec.dim is not None and dim != spec.dim:
            raise DimensionError(f"'{name}' is defined in {spec.dim} dimensions only, not {dim}",
                                 loc=["dim"])
        if dim < spec.min_dim:
            raise DimensionError(f"'{name}' needs at least {spec.min_dim} dimensions",
                                 loc=["dim"])
        values = _resolve_params(spec, params or {})
        self.quadratic = "quadratic" in spec.tags
        self.spec = spec
        self.name = canonical
        self.params = values
        self.dim = dim
        self.names = default_names(dim)
        self.minima = spec.minima(dim, values)
        self.f_min = spec.f_min(dim, values)
        self.domain = _domain(spec, dim)
        self.default_start = np.resize(np.array(spec.start, dtype=float), dim)
        self._expression: ExpressionLoss | None = (
            expression_loss(spec.formula, list(self.names)) if spec.evaluate is None else None
        )
        self._floats = spec.floats(dim, values) if spec.floats is not None else None
        if self._expression is not None or self._floats is not None:  # bound once, no hop
            self.point_value_grad = (  # type: ignore[method-assign]
                self._expression.point_value_grad if self._expression is not None
                else self._floats)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as its name, dimension and parameters (shards travel to other processes;
        the float closures do not pickle, and rebuilding is cached there)."""
        return builtin_loss, (self.name, self.dim, dict(self.params))

    def value(self, params: Params) -> Values:
        if self._expression is not None:
            return self._expression.value(params)
        return self.spec.evaluate(params, self.params, 0)[0]  # type: ignore[misc]

    def value_grad(self, params: Params) -> tuple[Values, Grads]:
        if self._expression is not None:
            return self._expression.value_grad(params)
        values, grads, _ = self.spec.evaluate(params, self.params, 1)  # type: ignore[misc]
        return values, grads  # type: ignore[return-value]

    def hess(self, params: Params) -> Hess:
        if self._expression is not None:
            return self._expression.hess(params)
        if self.spec.hessian is not None:
            return self.spec.hessian(params, self.params)
        hess = self.spec.evaluate(params, self.params, 2)[2]  # type: ignore[misc]
        return np.array(hess, dtype=float)

    def describe(self) -> dict[str, Any]:
        described = {
            "kind": self.kind,
            "name": self.name,
            "dim": self.dim,
            "variables": list(self.names),
            "params": dict(self.params),
            "formula": self.spec.formula,
            "minima": None if self.minima is None else self.minima.tolist(),
            "f_min": self.f_min,
            "domain": self.domain.tolist(),
        }
        if self._expression is not None:
            described |= {k: v for k, v in self._expression.describe().items()
                          if k in ("gradient", "hessian", "latex")}
        return described


@lru_cache(maxsize=256)
def _cached_builtin(name: str, dim: int | None, params: tuple[tuple[str, float], ...]
                    ) -> BuiltinLoss:
    loss = BuiltinLoss(name, dim, dict(params))
    for array in (loss.minima, loss.domain, loss.default_start):
        if array is not None:
            array.flags.writeable = False  # shared between requests: never changed in place
    return loss


def builtin_loss(name: str, dim: int | None = None, params: Mapping[str, float] | None = None
                 ) -> BuiltinLoss:
    """A BuiltinLoss, built once per (name, dim, params) and shared: building one checks the
    parameters and derives minima and domain, a noticeable part of a small request."""
    return _cached_builtin(name, dim, tuple(sorted((params or {}).items())))


def _domain(spec: BuiltinSpec, dim: int) -> Array:
    """(dim, 2) bounds: one pair for every coordinate, or per-coordinate pairs cycled."""
    domain = np.array(spec.domain, dtype=float).reshape(-1, 2)
    return domain[np.arange(dim) % len(domain)]


def _resolve_params(spec: BuiltinSpec, given: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(given) - set(spec.params))
    if unknown:
        allowed = ", ".join(spec.params) or "none"
        raise LossError(f"'{spec.name}' has no parameter {', '.join(unknown)}; its parameters: "
                        f"{allowed}", loc=["params"])
    values: dict[str, float] = {}
    for name, param in spec.params.items():
        value = float(given.get(name, param.default))
        if not math.isfinite(value) or (param.gt is not None and value <= param.gt):
            raise LossError(f"Parameter {name} of '{spec.name}' must be a finite number"
                            + (f" > {param.gt}" if param.gt is not None else "")
                            + f", got {value}", loc=["params", name])
        values[name] = value
    return values


def catalog_entry(spec: BuiltinSpec) -> dict[str, Any]:
    """The public description of one builtin, for GET /v1/functions."""
    dim = 2 if spec.dim is None else spec.dim
    defaults = {k: v.default for k, v in spec.params.items()}
    minima = spec.minima(dim, defaults)
    return {
        "name": spec.name,
        "formula": spec.formula,
        "description": spec.description,
        "tags": list(spec.tags),
        "dim": spec.dim,
        "n_dimensional": spec.dim is None,
        "min_dim": spec.min_dim if spec.dim is None else spec.dim,
        "params": {k: {"default": v.default, "gt": v.gt, "description": v.doc}
                   for k, v in spec.params.items()},
        "minima": None if minima is None else minima.tolist(),
        "f_min": spec.f_min(dim, defaults),
        "domain": _domain(spec, dim).tolist(),
        "default_start": np.resize(np.array(spec.start, dtype=float), dim).tolist(),
        "aliases": [a for a, target in ALIASES.items() if target == spec.name],
    }
