"""Every rule against torch.optim step by step, against hand-computed steps, and batched
against looped."""

from __future__ import annotations

import numpy as np
import pytest

from optim_core import OPTIMIZERS, HyperparameterError, StopCriteria, make_group, run
from optim_core.engine.recording import RecordSpec
from optim_core.losses.catalog import BuiltinLoss
from optim_core.losses.expression import expression_loss
from optim_core.schedules import as_schedule
from tests.core.optimizer_cases import CASES

NO_STOP = StopCriteria(grad_tol=0.0, divergence_factor=1e300)
STEPS = 40
LOSSES = {
    "rosenbrock": (BuiltinLoss("rosenbrock"), [-1.2, 1.0]),
    "coupled quadratic": (expression_loss("3*x^2 + x*y + 0.5*y^2 - x + 2*y"), [1.5, -2.0]),
}


def trajectory(loss, name, settings, start, steps=STEPS, path="auto"):
    group = make_group(name, settings)
    starts = np.tile(start, (len(settings), 1))
    batch = run(loss, [group], starts, max_steps=steps, stop=NO_STOP,
                record=RecordSpec(fields=("params",), max_points=steps + 1), path=path)
    return [t.params for t in batch.trajectories]  # K arrays of (T_k, d)


def test_registry_has_every_rule_of_the_contract():
    assert list(OPTIMIZERS)[:8] == ["sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam",
                                    "adamw", "nadam"]
    assert {"radam", "adamax", "adadelta", "newton", "lbfgs", "bfgs", "cg", "trust_region",
            "nelder_mead"} <= set(OPTIMIZERS)


def test_every_registered_rule_has_a_test_record():
    """A rule without a record would silently lose every test generated from the records."""
    assert set(CASES) == set(OPTIMIZERS), set(OPTIMIZERS) ^ set(CASES)
    for name, case in CASES.items():
        assert case.batches and case.converges is not None, name
        assert (case.torch_class is None) == (case.torch_kwargs is None), name
        assert (case.torch_class is None) != (case.reference is None), \
            f"{name}: a rule names one reference (a torch class, or another)"
        assert case.torch_class is not None or OPTIMIZERS[name].elementwise is None, \
            f"{name}: a first-order rule is stepped against its torch class"


TORCH_RULES = [name for name, case in CASES.items() if case.torch_class]


@pytest.mark.parametrize("name", TORCH_RULES)
def test_defaults_are_torch_defaults(name):
    """Every default that torch's constructor has, ours has too (lr included), except where
    the API contract sets another (the record's contract_defaults)."""
    import inspect

    torch = pytest.importorskip("torch")
    signature = inspect.signature(getattr(torch.optim, CASES[name].torch_class).__init__)
    ours = _torch_params(name, {}, 0)
    compared = 0
    for key, value in ours.items():
        default = signature.parameters[key].default
        if key in CASES[name].contract_defaults:
            assert value != default, f"{name}.{key} equals torch's default now: unlist it"
            continue
        assert value == default, (name, key, value, default)
        compared += 1
    assert compared >= 1


def _torch_params(name, settings, t):
    """Torch keyword arguments for one row at step t (schedules evaluated at t)."""
    def at(v, key):
        return as_schedule(v, hyperparameter=key).at(t) if isinstance(v, dict) else v
    s = dict(settings)
    if "momentum_schedule" in s:
        sched = s.pop("momentum_schedule")
        s["momentum"] = {"name": "linear", **sched}
    rule = OPTIMIZERS[name]
    full = {hp.name: at(s.get(hp.name, hp.default), hp.name) for hp in rule.hyperparams}
    return CASES[name].torch_kwargs(full)


def _torch_loss(torch, loss_name, p):
    x, y = p[0], p[1]
    if loss_name == "rosenbrock":
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2
    return 3 * x**2 + x * y + 0.5 * y**2 - x + 2 * y


TORCH_CASES = [(name, desc, batch, loss_name, path)
               for name, case in CASES.items() if case.torch_class
               for desc, batch in case.batches for loss_name in LOSSES
               for path in ("vectorised", "floats")
               if path == "vectorised" or OPTIMIZERS[name].elementwise is not None]


@pytest.mark.parametrize(("name", "desc", "settings", "loss_name", "path"), TORCH_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[3]}-{c[4]}" for c in TORCH_CASES])
def test_rule_matches_torch_step_by_step(name, desc, settings, loss_name, path):
    """Both engine paths: the (K, d) arrays and the small-batch float path. torch keeps
    scalar state (NAdam's μ product, the step count) in the default dtype: float64 here, as
    ours, or NAdam's reference would carry float32 rounding (~1e-10 after a few steps)."""
    torch = pytest.importorskip("torch")
    loss, start = LOSSES[loss_name]
    ours = trajectory(loss, name, settings, start, path=path)
    cls = getattr(torch.optim, CASES[name].torch_class)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _compare_with_torch(torch, cls, name, settings, loss_name, start, ours)
    finally:
        torch.set_default_dtype(default_dtype)


def _compare_with_torch(torch, cls, name, settings, loss_name, start, ours):
    for row, s in enumerate(settings):
        p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        kwargs0 = _torch_params(name, s, 0)
        opt = cls([p], **kwargs0)
        reference = [p.detach().numpy().copy()]
        for t in range(STEPS):
            for group in opt.param_groups:
                group.update(_torch_params(name, s, t))
            opt.zero_grad()
            _torch_loss(torch, loss_name, p).backward()
            opt.step()
            reference.append(p.detach().numpy().copy())
        np.testing.assert_allclose(ours[row], np.array(reference), rtol=1e-10, atol=1e-12)
        assert len(reference) == STEPS + 1


def test_hand_computed_first_steps():
    loss = expression_loss("x^2")
    start = [1.0]
    # SGD: x ← x − 0.1·2x
    np.testing.assert_allclose(trajectory(loss, "sgd", [{"lr": 0.1}], start, 2)[0][:, 0],
                               [1.0, 0.8, 0.64])
    # Momentum 0.9: v1 = 2, x1 = 0.8; v2 = 0.9·2 + 1.6 = 3.4, x2 = 0.8 − 0.34
    np.testing.assert_allclose(
        trajectory(loss, "momentum", [{"lr": 0.1, "momentum": 0.9}], start, 2)[0][:, 0],
        [1.0, 0.8, 0.46])
    # Nesterov 0.9: v1 = 2, x1 = 1 − 0.1·(2 + 1.8) = 0.62
    np.testing.assert_allclose(
        trajectory(loss, "nesterov", [{"lr": 0.1, "momentum": 0.9}], start, 1)[0][:, 0],
        [1.0, 0.62])
    # Adam's first step is lr·g/(|g| + eps) after bias correction: 1 − 0.1·2/(2 + 1e-8)
    adam = trajectory(loss, "adam", [{"lr": 0.1}], start, 1)[0][:, 0]
    np.testing.assert_allclose(adam, [1.0, 1.0 - 0.1 * 2 / (2 + 1e-8)], rtol=1e-14)
    # AdaGrad: s = 4, x1 = 1 − 0.5·2/(2 + 1e-10)
    np.testing.assert_allclose(trajectory(loss, "adagrad", [{"lr": 0.5}], start, 1)[0][1, 0],
                               1 - 0.5 * 2 / (2 + 1e-10))
    # RMSProp rho 0.9: s = 0.1·4 = 0.4, x1 = 1 − 0.01·2/(√0.4 + 1e-8)
    np.testing.assert_allclose(trajectory(loss, "rmsprop", [{}], start, 1)[0][1, 0],
                               1 - 0.01 * 2 / (np.sqrt(0.4) + 1e-8))
    # AdamW decays first: 1·(1 − 0.1·0.01) minus the Adam step
    np.testing.assert_allclose(trajectory(loss, "adamw", [{"lr": 0.1}], start, 1)[0][1, 0],
                               1 - 0.1 * 0.01 - 0.1 * 2 / (2 + 1e-8))
    # Newton on a quadratic: one step lands on the minimum
    quad = expression_loss("2*(x - 3)^2 + (y + 1)^2 + x*y")
    newton = trajectory(quad, "newton", [{}], [10.0, 10.0], 1)[0][1]
    expected = np.linalg.solve([[4.0, 1.0], [1.0, 2.0]], [12.0, -2.0])
    np.testing.assert_allclose(newton, expected, rtol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_batched_equals_looped(name):
    """The vectorised batch equals single vectorised runs to the bit, and the float path's
    runs (first-order rules) up to rounding: same operations in the same order, but NumPy's
    SIMD pow rounds β^t differently from libm's in the last bit."""
    loss, start = LOSSES["rosenbrock"]
    settings = [s for _, batch in CASES[name].batches for s in batch]
    batched = trajectory(loss, name, settings, start, 25, path="vectorised")
    for row, s in enumerate(settings):
        single = trajectory(loss, name, [s], start, 25, path="vectorised")[0]
        np.testing.assert_array_equal(batched[row], single)
        if OPTIMIZERS[name].elementwise is not None:
            floats = trajectory(loss, name, [s], start, 25, path="floats")[0]
            np.testing.assert_allclose(batched[row], floats, rtol=1e-13, atol=1e-15)


ERROR_CASES = [(name, kwargs, match) for name, case in CASES.items()
               for kwargs, match in case.errors]


@pytest.mark.parametrize(("name", "kwargs", "match"), ERROR_CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in ERROR_CASES])
def test_invalid_hyperparameters_raise(name, kwargs, match):
    with pytest.raises(HyperparameterError, match=match):
        make_group(name, [kwargs])


def test_unknown_hyperparameter_and_rule_raise():
    with pytest.raises(HyperparameterError, match="has no hyperparameter 'beta3'"):
        make_group("adam", [{"beta3": 0.5}])
    with pytest.raises(HyperparameterError, match="Unknown optimizer"):
        make_group("lion", [{}])


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_rule_converges_on_a_quadratic(name):
    loss = expression_loss("0.5*(x^2 + 4*y^2)")
    batch = run(loss, [make_group(name, [CASES[name].converges])], np.array([[3.0, -2.0]]),
                max_steps=5000, stop=StopCriteria(grad_tol=1e-6))
    assert batch.status[0] == 1, (name, batch.final_params)
    assert np.linalg.norm(batch.final_params[0]) < 1e-2


@pytest.mark.parametrize(("name", "settings", "steps"), [
    ("momentum", {"lr": 1e-3, "momentum": 0.9}, 20000),
    ("nesterov", {"lr": 1e-3, "momentum": 0.9}, 20000),
    ("adam", {"lr": 0.02}, 20000),
    ("newton", {}, 25),
])
def test_rules_solve_rosenbrock(name, settings, steps):
    loss = BuiltinLoss("rosenbrock")
    batch = run(loss, [make_group(name, [settings])], np.array([[-1.2, 1.0]]),
                max_steps=steps, stop=StopCriteria(grad_tol=1e-6))
    assert batch.status[0] == 1
    np.testing.assert_allclose(batch.final_params[0], [1.0, 1.0], atol=1e-4)
    if name == "newton":
        assert batch.steps[0] <= 25
