"""The small-batch float path against the vectorised one: tapes, losses, rules, the engine.

Each piece runs on arrays and on floats (rules and N-d builtin losses are written once, the
expression tape is interpreted twice); these tests hold the two together, field by field, on
cases chosen to reach every branch (schedules, every stopping reason, thinning, non-finite
values, deadlines and callbacks).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optim_core import OPTIMIZERS, RecordSpec, Status, StopCriteria, make_group, run
from optim_core.engine import small
from optim_core.expressions import compile as vectorised
from optim_core.expressions.compile import compile_outputs
from optim_core.expressions.functions import FUNCTIONS
from optim_core.expressions.scalar import _FLOAT_FUNCTIONS, float_tape
from optim_core.losses.catalog import BUILTINS, BuiltinLoss
from optim_core.losses.dataset import dataset_loss
from optim_core.losses.expression import ExpressionLimits, derive, expression_loss
from optim_core.losses.quadratic import QuadraticLoss
from optim_core.optimizers.base import CAREFUL_FLOAT_OPS, Hyper
from tests.core.optimizer_cases import CASES

RTOL = 1e-12
RNG = np.random.default_rng(20261130)


def assert_same(a, b, rtol=RTOL, scaled=False, unit_terms=False):
    """Equal to `rtol`. `scaled` adds an absolute floor at rtol times the largest magnitude
    (at least 1 with `unit_terms`: expressions whose terms are of order one), for one point's
    value and gradient: where terms cancel, a last-bit difference between libm and NumPy's
    SIMD functions is large relative to the small result, not to the terms (a generated point
    whose whole gradient was ~4e-4 differed by 1.7e-16)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    finite = np.abs(b[np.isfinite(b)])
    scale = float(finite.max()) if scaled and finite.size else 0.0
    scale = max(scale, 1.0) if unit_terms else scale
    np.testing.assert_allclose(a, b, rtol=rtol, atol=max(rtol * scale, 1e-300),
                               equal_nan=True)


# -- tapes and losses --------------------------------------------------------------------------

def test_every_tape_function_has_a_float_form():
    table = set(vectorised._UNARY.values()) | {
        vectorised._square, vectorised._cube, vectorised._reciprocal,
        vectorised._reciprocal_sqrt, np.sqrt, np.power}
    own_opcodes = {vectorised._sum, vectorised._product, vectorised._minimum,
                   vectorised._maximum, vectorised._square}
    assert table - own_opcodes <= set(_FLOAT_FUNCTIONS)


EVERY_FUNCTION = [f"{name}(0.3*x - 0.2*y)" for name in FUNCTIONS if name not in ("min", "max")]
EVERY_FUNCTION += ["min(x, y^2, 0.5)", "max(x, y, -x*y)", "x^y", "(x^2 + 1)^(-0.5)",
                   "1/(1 + x^2) + y^3", "sqrt(x^2 + y^2 + 1)", "exp(x)*log(y^2 + 1)"]


@pytest.mark.parametrize("text", EVERY_FUNCTION)
def test_float_tape_matches_numpy_tape(text):
    loss = expression_loss(text)
    floats = float_tape(loss._value_grad_tape)
    assert floats is not None
    points = RNG.uniform(-0.9, 0.9, size=(25, loss.dim))
    expected = loss._value_grad_tape.evaluate(points)
    got = np.array([[v, *g] for v, g in map(floats.value_grad, points.tolist())])
    for g, e in zip(got, expected, strict=True):
        assert_same(g, e, rtol=1e-13, scaled=True)


FUSABLE = ["(1-x)^2 + 100*(y-x^2)^2", "x*y*z - 3*x*y + 2*z^2 - x", "-(x - y)^2 - 2*x*y*z*w",
           "x + 2*y + 3*z + 4*w - x*y*z*w*5", "(x - 1)*(y - 2)*(z - 3) - w*(x - w)",
           "sin(x - y)*exp(-x*y) - 0.5*(z - w)^2"]


@pytest.mark.parametrize("text", FUSABLE + EVERY_FUNCTION)
def test_fused_products_give_the_unfused_tape_to_the_bit(text):
    """SUB and MULADD are exact rewrites: every bit equal to one instruction per tape entry,
    including where products are chained through one slot (n-ary products and sums)."""
    loss = expression_loss(text)
    fused = float_tape(loss._value_grad_tape)
    plain = float_tape(loss._value_grad_tape, fused=False)
    assert fused is not None and plain is not None
    points = RNG.uniform(-3, 3, size=(50, loss.dim))
    for p in points.tolist():
        got, want = (np.array([v, *g]) for v, g in (fused.value_grad(p), plain.value_grad(p)))
        assert np.array_equal(got, want, equal_nan=True)
        assert np.array_equal(np.signbit(got), np.signbit(want))  # −0.0 stays −0.0
    if text in FUSABLE:
        assert len(fused.program) < len(plain.program)


def _plain_and_differences(text):
    """The value-and-gradient tape of `text` without and with differences (a − b)."""
    parts = derive(text, None, ExpressionLimits())
    outputs = [parts.expr, *parts.gradient]
    return (compile_outputs(outputs, parts.symbols, differences=False),
            compile_outputs(outputs, parts.symbols))


def test_rosenbrock_tape_fuses_to_eleven_instructions():
    plain, differences = _plain_and_differences("(1-x)^2 + 100*(y-x^2)^2")
    assert len(float_tape(plain, fused=False).program) == 17
    assert len(float_tape(differences, fused=False).program) == 15  # y − x², 1 − x subtracted
    assert len(float_tape(differences).program) == 11
    assert len(expression_loss("(1-x)^2 + 100*(y-x^2)^2")._value_grad_floats.program) == 11


@pytest.mark.parametrize("text", FUSABLE + EVERY_FUNCTION + [
    "x - y", "-x + y", "-x - y + 3", "-x - y - x*y", "3 - x - y - x*y + y^2",
    "exp(-(x - 1)^2 - y^2) - 0.5*log(1 + (x - y)^2)", "-(x - y)^2 - 2*x*y"])
def test_differences_give_the_plain_tape_to_the_bit(text):
    """The vectorised tape computes a + (−b) as a − b instead of multiplying by −1 and adding:
    the same numbers, every bit (NaN and signed zeros included), never more instructions."""
    plain, differences = _plain_and_differences(text)
    points = np.vstack([RNG.uniform(-3, 3, size=(200, plain.n_inputs)),
                        np.zeros((1, plain.n_inputs)), np.full((1, plain.n_inputs), -0.0)])
    got, want = differences.evaluate(points), plain.evaluate(points)
    assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    assert len(differences.instructions) <= len(plain.instructions)
    if text in ("x - y", "-x + y", "(1-x)^2 + 100*(y-x^2)^2"):
        assert len(differences.instructions) < len(plain.instructions)


@pytest.mark.parametrize(("text", "point"), [
    ("log(x) + y", [0.0, 1.0]),  # log(0) = −inf: math raises, NumPy answers
    ("log(x) + y", [-1.0, 1.0]),  # nan
    ("1/x + y", [0.0, 2.0]),  # inf
    ("exp(x) + y", [1000.0, 0.0]),  # overflow
    ("sqrt(x) + y", [-4.0, 0.0]),
    ("asin(x) + y", [2.0, 0.0]),
    ("x^y", [-8.0, 1 / 3]),  # negative base, fractional power
    ("x^y", [0.0, -1.0]),
    ("cosh(x) + y", [800.0, 0.0]),
    ("sin(x) + y", [np.inf, 0.0]),
])
def test_float_tape_falls_back_to_numpy_semantics(text, point):
    loss = expression_loss(text)
    value, grads = loss.point_value_grad(point)
    expected = loss.value_grad(np.array([point]))
    assert_same([value, *grads], [expected[0][0], *expected[1][0]])


@given(st.lists(st.floats(-3, 3), min_size=2, max_size=2),
       st.sampled_from(["sin(x*y) + softplus(x - y)", "sigmoid(3*x)*tanh(y) + abs(x - y)",
                        "log1p(x^2) + atan(y/(1 + x^2))", "sign(x)*y^2 + max(x, y)"]))
@settings(max_examples=60, deadline=None)
def test_float_tape_on_generated_points(point, text):
    loss = expression_loss(text)
    value, grads = loss.point_value_grad(point)
    expected = loss.value_grad(np.array([point]))
    assert_same([value, *grads], [expected[0][0], *expected[1][0]], rtol=1e-13, scaled=True,
                unit_terms=True)  # inputs in [-3, 3]: every term of these is of order one


N_D = [name for name, spec in BUILTINS.items() if spec.dim is None]


@pytest.mark.parametrize("name", N_D)
@pytest.mark.parametrize("dim", [2, 3, 5])
def test_builtin_point_form_matches_batch(name, dim):
    loss = BuiltinLoss(name, dim)
    points = RNG.uniform(-2, 2, size=(10, dim))
    values, grads = loss.value_grad(points)
    for p, v, g in zip(points, values, grads, strict=True):
        value, grad = loss.point_value_grad(p.tolist())
        assert_same([value, *grad], [v, *g], rtol=1e-13, scaled=True)


def test_every_fixed_builtin_and_quadratic_point_form_matches_batch():
    losses = [BuiltinLoss(n) for n, s in BUILTINS.items() if s.dim is not None]
    losses.append(QuadraticLoss([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]],
                                [1.0, -1.0, 0.5], 2.0))
    for loss in losses:
        points = RNG.uniform(-1.5, 1.5, size=(10, loss.dim))
        values, grads = loss.value_grad(points)
        for p, v, g in zip(points, values, grads, strict=True):
            value, grad = loss.point_value_grad(p.tolist())
            assert_same([value, *grad], [v, *g], rtol=1e-12, scaled=True)


# -- rules -------------------------------------------------------------------------------------

# the rules that step from the gradient alone (the classical ones evaluate the loss themselves)
FIRST_ORDER = [name for name, rule in OPTIMIZERS.items() if not rule.needs_context]
# every first-order rule's unscheduled settings from its record (tests/core/optimizer_cases.py)
RULE_SETTINGS = {name: [s for _, batch in CASES[name].batches for s in batch
                        if not any(isinstance(v, dict) for v in s.values())]
                 for name in FIRST_ORDER}


def test_every_first_order_rule_is_written_once_and_newton_is_not():
    assert all(RULE_SETTINGS[name] for name in FIRST_ORDER)
    assert all(OPTIMIZERS[name].elementwise is not None for name in FIRST_ORDER)
    for name in ("newton", "lbfgs", "bfgs", "cg", "trust_region", "nelder_mead"):
        assert OPTIMIZERS[name].elementwise is None and name not in FIRST_ORDER


@pytest.mark.parametrize("name", FIRST_ORDER)
@pytest.mark.filterwarnings("ignore:invalid value")  # the inf below makes nan on purpose
def test_float_rule_matches_vectorised_update(name):
    """The kernel on arrays (NumPy's ops) and on each coordinate's floats (their twins), fed
    the same gradients (with a nan and an inf among them) for 30 steps."""
    rule = OPTIMIZERS[name]
    for setting in RULE_SETTINGS[name]:
        group = make_group(name, [setting])
        hp = group.hyper_at(0)
        floats_hp = Hyper(**group.settings[0])
        params = RNG.normal(size=(1, 3))
        state = rule.init(params)
        float_states = [tuple(rule.elementwise.state.values())] * 3  # per coordinate
        float_params = params[0].tolist()
        for t in range(30):
            grads = RNG.normal(size=(1, 3)) * 10.0 ** RNG.integers(-3, 3)
            if t == 20:
                grads[0, 1] = np.inf
            step, state = rule.update(grads, state, params, hp, t, None)
            c = rule.elementwise.coefficients(CAREFUL_FLOAT_OPS, floats_hp, t)
            float_step = []
            for i, (g, p) in enumerate(zip(grads[0].tolist(), float_params, strict=True)):
                s, float_states[i] = rule.elementwise.kernel(c, g, p, float_states[i])
                float_step.append(s)
            assert_same(float_step, step[0], rtol=CASES[name].float_rtol, scaled=True)
            params = params + step
            float_params = [p + s for p, s in zip(float_params, float_step, strict=True)]


# -- the engine --------------------------------------------------------------------------------

def both_paths(loss, groups, starts, **kwargs):
    a = run(loss, groups, starts, path="vectorised", **kwargs)
    b = run(loss, groups, starts, path="floats", **kwargs)
    return a, b


def assert_batches_equal(a, b, rtol=RTOL):
    for name in ("status", "reason", "steps", "steps_to_tol", "group_index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("final_params", "final_loss", "final_grad_norm", "initial_loss", "best_loss",
                 "path_length", "sign_flips", "step_pairs", "recent_losses", "grad_evals",
                 "hess_evals"):
        assert_same(getattr(b, name), getattr(a, name), rtol=rtol)
    assert a.engine_steps == b.engine_steps and a.counters == b.counters == {}
    if a.trajectories is None:
        assert b.trajectories is None
        return
    for ta, tb in zip(a.trajectories, b.trajectories, strict=True):
        np.testing.assert_array_equal(ta.step, tb.step)
        for name in ("params", "loss", "grad_norm", "lr"):
            va, vb = getattr(ta, name), getattr(tb, name)
            assert (va is None) == (vb is None)
            if va is not None:
                assert_same(vb, va, rtol=rtol)


ROSENBROCK = BuiltinLoss("rosenbrock")


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_engine_paths_agree_for_every_rule(name):
    group = make_group(name, RULE_SETTINGS[name])
    starts = np.tile([-1.2, 1.0], (group.size, 1))
    a, b = both_paths(ROSENBROCK, [group], starts, max_steps=300,
                      stop=StopCriteria(grad_tol=1e-3))
    assert_batches_equal(a, b, rtol=1e-10)


SCHEDULED = [
    ("sgd", {"lr": {"name": "cosine", "lr": 0.1, "steps": 40, "lr_min": 0.01}}),
    ("sgd", {"lr": {"name": "warmup_cosine", "lr": 0.1, "warmup_steps": 10, "steps": 50}}),
    ("sgd", {"lr": {"name": "step", "lr": 0.1, "step_size": 7, "gamma": 0.5}}),
    ("sgd", {"lr": {"name": "exponential", "lr": 0.1, "gamma": 0.97}}),
    ("sgd", {"lr": {"name": "inverse_time", "lr": 0.1, "decay": 0.05}}),
    ("momentum", {"lr": 0.05, "momentum_schedule": {"start": 0.5, "end": 0.9, "steps": 30}}),
    ("adam", {"lr": {"name": "constant", "lr": 0.05},
              "beta1": {"name": "linear", "start": 0.5, "end": 0.9, "steps": 20}}),
]


@pytest.mark.parametrize(("name", "setting"), SCHEDULED)
def test_engine_paths_agree_with_schedules(name, setting):
    loss = expression_loss("x^2 + 10*y^2 + x*y")
    a, b = both_paths(loss, [make_group(name, [setting])], np.array([[2.0, -1.5]]),
                      max_steps=2500, stop=StopCriteria(grad_tol=0.0))  # > one schedule block
    assert_batches_equal(a, b, rtol=1e-9)
    lr = a.trajectories[0].lr
    assert len(np.unique(lr)) > 1 or name != "sgd"


def test_engine_paths_agree_on_every_stopping_reason():
    loss = expression_loss("abs(x) + y^2")
    settings_ = [{"lr": 0.25}, {"lr": 2.0}, {"lr": 1.0}, {"lr": 1e-4}]
    starts = np.array([[0, 1], [0, 1], [0.5, 0], [0, 1]], dtype=float)
    a, b = both_paths(loss, [make_group("sgd", settings_)], starts,
                      max_steps=np.array([10**4, 10**4, 10**4, 50]),
                      stop=StopCriteria(grad_tol=1e-10, patience=20))
    assert [Status(s).label for s in b.status] == ["converged", "diverged", "stalled",
                                                   "max_steps"]
    assert_batches_equal(a, b)
    quad = expression_loss("x^2 + y^2")
    for stop in (StopCriteria(loss_tol=1e-4), StopCriteria(step_tol=1e-3, grad_tol=0)):
        a, b = both_paths(quad, [make_group("sgd", [{"lr": 0.1}, {"lr": 0.01}])],
                          np.array([[1.0, 1.0], [2.0, -1.0]]), max_steps=5000, stop=stop)
        assert_batches_equal(a, b)
    a, b = both_paths(expression_loss("log(x) + y^2"), [make_group("sgd", [{"lr": 10.0}])],
                      np.array([[0.5, 1.0]]), max_steps=100)
    assert b.reason[0] == 4  # non-finite: NumPy's nan, reached through the fallback
    assert_batches_equal(a, b)


def test_engine_paths_agree_on_a_start_that_is_not_finite():
    a, b = both_paths(ROSENBROCK, [make_group("adam", [{}])], np.array([[np.nan, 1.0]]),
                      max_steps=10)
    assert b.status[0] == Status.DIVERGED and b.steps[0] == 0
    assert_batches_equal(a, b)


@pytest.mark.parametrize("spec", [
    RecordSpec(), RecordSpec(every=3, fields=("loss", "lr")), RecordSpec(max_points=7),
    RecordSpec(max_points=50, every=2, fields=("params", "grad_norm")),
    RecordSpec(enabled=False)])
def test_engine_paths_agree_on_recording_and_thinning(spec):
    loss = expression_loss("(x - 1)^2 + 5*(y + x^2)^2")
    a, b = both_paths(loss, [make_group("momentum", [{"lr": 0.001}])], np.array([[0.0, 0.0]]),
                      max_steps=4321, stop=StopCriteria(grad_tol=0.0), record=spec)
    assert_batches_equal(a, b, rtol=1e-10)


def test_engine_paths_agree_on_other_losses():
    quadratic = QuadraticLoss([[1.0, 0.0], [0.0, 50.0]], [1.0, 1.0])
    full_batch = dataset_loss({"model": "logistic", "synthetic": {
        "n_samples": 40, "n_features": 2, "noise": 0.3, "seed": 1}})  # deterministic
    for loss, start in [(quadratic, [3.0, 1.0]), (BuiltinLoss("ravine", 4), [1.0] * 4),
                        (full_batch, [0.0] * 3),
                        (BuiltinLoss("ackley"), [1.5, -1.0]),  # no float form: through NumPy
                        (BuiltinLoss("himmelblau"), [0.0, 0.0])]:
        group = make_group("nesterov", [{"lr": 0.01}, {"lr": 0.001}])
        a, b = both_paths(loss, [group], np.tile(start, (2, 1)), max_steps=500)
        assert_batches_equal(a, b, rtol=1e-10)


def test_runs_in_mixed_groups_keep_their_order():
    groups = [make_group("sgd", [{"lr": 0.001}]), make_group("adam", [{"lr": 0.1}] * 2),
              make_group("rmsprop", [{"lr": 0.01}])]
    # its own generator: the module's RNG would hand out other starts in another test order
    starts = np.random.default_rng(345).uniform(-2, 2, size=(4, 2))
    a, b = both_paths(ROSENBROCK, groups, starts, max_steps=200)
    assert_batches_equal(a, b, rtol=1e-10)


def test_deadline_cancel_and_progress_on_the_float_path():
    loss = expression_loss("x^2 + y^2")
    group = make_group("sgd", [{"lr": 1e-9}] * 2)
    starts = np.ones((2, 2))
    late = run(loss, [group], starts, max_steps=10**9, deadline=time.monotonic() + 0.2,
               path="floats")
    assert [Status(s).label for s in late.status] == ["time_limit", "time_limit"]
    assert late.steps[0] > 0  # the first run used the budget; the second stops at its start
    seen = []
    cancelled = run(loss, [group], starts, max_steps=1000, path="floats", progress_every=10,
                    progress=lambda done, total, active: seen.append((done, total, active)),
                    cancel=lambda: len(seen) >= 3)
    assert [Status(s).label for s in cancelled.status] == ["cancelled", "cancelled"]
    assert seen[0] == (5, 1000, 2)  # run 1 of 2 at step 10: 0.5% of the batch
    assert seen[-1][2] == 0 and [s[0] for s in seen] == sorted(s[0] for s in seen)


def test_auto_takes_the_float_path_only_where_it_applies():
    adam = make_group("adam", [{}])
    assert small.fits(ROSENBROCK, [adam], 1, 2)
    assert small.fits(ROSENBROCK, [make_group("adam", [{}] * 12)], 12, 2)
    assert not small.fits(ROSENBROCK, [make_group("adam", [{}] * 13)], 13, 2)
    assert not small.fits(ROSENBROCK, [make_group("newton", [{}])], 1, 2)
    assert small.fits(BuiltinLoss("sphere", 68), [adam], 1, 68)
    assert not small.fits(BuiltinLoss("sphere", 69), [adam], 1, 69)
    assert small.fits(ROSENBROCK, [make_group("adam", [{}] * 4)], 4, 14)
    assert not small.fits(ROSENBROCK, [make_group("adam", [{}] * 4)], 4, 15)
    synthetic = {"n_samples": 50, "n_features": 2, "noise": 0.1, "seed": 0}
    stochastic = dataset_loss({"model": "linear", "synthetic": synthetic, "batch_size": 10})
    assert not small.fits(stochastic, [adam], 1, stochastic.dim)
    with pytest.raises(ValueError, match="first-order"):
        run(ROSENBROCK, [make_group("newton", [{}])], np.array([[0.0, 0.0]]), path="floats")
    with pytest.raises(ValueError, match="path must be"):
        run(ROSENBROCK, [adam], np.array([[0.0, 0.0]]), path="fast")


def test_engine_paths_agree_on_zero_steps_and_on_runs_with_their_own_max_steps():
    loss = expression_loss("x^2 + 3*y^2")
    group = make_group("adam", [{"lr": 0.1}] * 3)
    starts = np.array([[1.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    a, b = both_paths(loss, [group], starts, max_steps=0)
    assert b.steps.tolist() == [0, 0, 0] and len(b.trajectories[0].step) == 1
    assert_batches_equal(a, b)
    a, b = both_paths(loss, [group], starts, max_steps=np.array([5, 0, 40]),
                      stop=StopCriteria(grad_tol=0.0))
    assert b.steps.tolist() == [5, 0, 40]
    assert_batches_equal(a, b)


def test_a_rule_without_lr_runs_on_both_paths(monkeypatch):
    """The float path once read hp["lr"] for the record and failed on a rule without one."""
    from optim_core.optimizers.base import Elementwise, HyperParam, elementwise_rule

    def coefficients(ops, hp, t):
        return (-hp.scale,)

    def kernel(c, g, p, state):
        return c[0] * g, state

    rule = elementwise_rule("scaled", Elementwise({}, coefficients, kernel),
                            (HyperParam("scale", 0.1, gt=0),), "gradient steps of a fixed scale")
    monkeypatch.setitem(OPTIMIZERS, "scaled", rule)
    group = make_group("scaled", [{"scale": 0.2}])
    a, b = both_paths(expression_loss("x^2 + y^2"), [group], np.array([[1.0, -1.0]]),
                      max_steps=50, stop=StopCriteria(grad_tol=1e-6))
    assert_batches_equal(a, b)
    assert np.isnan(a.trajectories[0].lr).all() and np.isnan(b.trajectories[0].lr).all()


@pytest.mark.parametrize("where", ["kernel", "coefficients"])
@pytest.mark.filterwarnings("ignore:invalid value")
def test_a_root_of_a_negative_is_nan_on_both_paths(monkeypatch, where):
    """The float path takes roots with math.sqrt, which raises where np.sqrt answers nan: the
    step is then run again with the careful ops, so both paths see nan at the same step (here
    from step 3 on: the run is reported diverged there, on both)."""
    from optim_core.optimizers.base import Elementwise, HyperParam, elementwise_rule

    def coefficients(ops, hp, t):
        return ops, -hp.lr, (ops.sqrt(2.0 - t) if where == "coefficients" else 1.0), t

    def kernel(c, g, p, state):
        ops, neg_lr, root, t = c
        scale = ops.sqrt(2.0 - t + 0.0 * g) if where == "kernel" else root
        return neg_lr * scale * g, state

    rule = elementwise_rule("rooted", Elementwise({}, coefficients, kernel),
                            (HyperParam("lr", 0.1, gt=0),), "a root that goes negative")
    monkeypatch.setitem(OPTIMIZERS, "rooted", rule)
    group = make_group("rooted", [{"lr": 0.1}])
    a, b = both_paths(expression_loss("x^2 + y^2"), [group], np.array([[1.0, -1.0]]),
                      max_steps=10)
    assert_batches_equal(a, b)
    assert b.status.tolist() == [Status.DIVERGED] and b.steps.tolist() == [4]


# -- every rule written once, on random hyperparameters ----------------------------------------

def _setting(rule, draw):
    """Random values inside each hyperparameter's declared range (flags both ways)."""
    out = {}
    for hp in rule.hyperparams:
        if hp.kind == "bool":
            out[hp.name] = draw(st.booleans())
        elif hp.kind == "float":
            low = hp.gt if hp.gt is not None else hp.ge if hp.ge is not None else 0.0
            high = hp.lt if hp.lt is not None else hp.le if hp.le is not None else 2.0
            value = draw(st.floats(low, min(high, low + 2.0), exclude_min=hp.gt is not None,
                                   exclude_max=hp.lt is not None))
            out[hp.name] = value
    return out


# Python's pow and NumPy's differ in the last bit now and then, and a bias correction 1 − βᵗ
# with β near 1 divides that by 1 − β: with β ≤ 0.999, ~1e-13 relative at worst, so 1e-8 is
# loose for rounding and tight for a wrong formula. Past 0.999 (drawn too, for the bitwise
# part) RAdam's ρₜ = ρ∞ − 2tβᵗ/(1 − βᵗ) cancels ~1e5-fold: floats and arrays are not compared.
RANDOM_FLOAT_RTOL = 1e-8
WELL_CONDITIONED_BETA = 0.999


@pytest.mark.parametrize("name", FIRST_ORDER)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
@pytest.mark.filterwarnings("ignore:invalid value", "ignore:overflow", "ignore:divide by zero")
def test_a_kernel_agrees_with_itself_on_any_hyperparameters(name, data):
    """Three runs with random settings (flags and decays both ways, any value in range): the
    batched update equals each run's own update to the bit (what bit-equal shards rest on),
    and each run's kernel on floats equals its row (where its betas are ≤ 0.999)."""
    rule = OPTIMIZERS[name]
    rows = [_setting(rule, data.draw) for _ in range(3)]
    batch = make_group(name, rows)
    singles = [make_group(name, [row]) for row in rows]
    params = RNG.normal(size=(3, 2))
    state = rule.init(params)
    single_states = [rule.init(params[i:i + 1]) for i in range(3)]
    float_states = [[tuple(rule.elementwise.state.values())] * 2 for _ in range(3)]
    for t in range(12):
        grads = RNG.normal(size=(3, 2)) * 10.0 ** RNG.integers(-4, 4)
        step, state = rule.update(grads, state, params, batch.hyper_at(t), t)
        for i, single in enumerate(singles):
            own, single_states[i] = rule.update(grads[i:i + 1], single_states[i],
                                                params[i:i + 1], single.hyper_at(t), t)
            np.testing.assert_array_equal(own[0], step[i])
            if any(rows[i][hp.name] > WELL_CONDITIONED_BETA for hp in rule.hyperparams
                   if hp.lt == 1):
                continue
            c = rule.elementwise.coefficients(CAREFUL_FLOAT_OPS, Hyper(**batch.settings[i]), t)
            for j in range(2):
                s, float_states[i][j] = rule.elementwise.kernel(
                    c, float(grads[i, j]), float(params[i, j]), float_states[i][j])
                assert_same([s], step[i, j:j + 1], rtol=RANDOM_FLOAT_RTOL, scaled=True)
        params = params + step
