"""Findings on constructed cases where the right finding is known."""

from __future__ import annotations

import numpy as np
import pytest

from optim_core import StopCriteria, optimize
from optim_core.losses.dataset import dataset_loss
from optim_core.losses.expression import expression_loss
from optim_core.losses.quadratic import QuadraticLoss

RAVINE = QuadraticLoss(np.diag([1.0, 100.0]))
START = np.array([[-8.0, 1.0]])


def findings(loss, optimizer, start=START, **options):
    run = optimize(loss, [optimizer], start, **options).runs[0]
    return run, {f["code"]: f for f in run["findings"]}


def test_sgd_just_below_the_stability_limit_zigzags():
    run, found = findings(RAVINE, {"name": "sgd", "lr": 0.98 * 2 / 100}, max_steps=300)
    assert "zigzag" in found and "unstable_lr" not in found
    zig = found["zigzag"]
    assert zig["data"]["ratio"] == pytest.approx(0.98)
    assert zig["data"]["stability_limit"] == pytest.approx(0.02)
    assert "98% of the stability limit 0.02" in zig["message"]
    assert "slow_ravine" in found


def test_sgd_just_above_the_stability_limit_is_unstable_and_diverges():
    run, found = findings(RAVINE, {"name": "sgd", "lr": 1.05 * 2 / 100}, max_steps=2000)
    assert run["status"] == "diverged"
    assert {"unstable_lr", "diverged"} <= set(found) and "zigzag" not in found
    assert found["unstable_lr"]["data"]["ratio"] == pytest.approx(1.05)
    assert f"step {run['steps']}" in found["diverged"]["message"]
    assert "above the stability limit" in found["diverged"]["message"]


def test_adam_on_the_same_ravine_does_not_zigzag():
    run, found = findings(RAVINE, {"name": "adam", "lr": 0.98 * 2 / 100}, max_steps=3000)
    assert "zigzag" not in found and "unstable_lr" not in found
    assert run["diagnostics"]["oscillation"] < 0.3


def test_momentum_stability_limit_accounts_for_the_momentum():
    # heavy ball is stable up to lr < 2(1 + μ)/λmax = 0.038 for μ = 0.9
    run, found = findings(RAVINE, {"name": "momentum", "lr": 0.03, "momentum": 0.9},
                          max_steps=2000)
    assert "unstable_lr" not in found and run["status"] == "converged"


def test_rate_vs_theory_agrees_for_gd_on_a_quadratic():
    loss = QuadraticLoss(np.array([[3.0, 1.0], [1.0, 2.0]]), [1.0, 1.0])
    lam = np.linalg.eigvalsh(loss.A)
    run, found = findings(loss, {"name": "sgd", "lr": 2 / lam.sum()}, start=np.array([[4.0, -3]]),
                          max_steps=400, stop=StopCriteria(grad_tol=1e-14))
    rate = found["rate_vs_theory"]
    assert rate["data"]["agrees"] is True
    rho = (lam[1] - lam[0]) / (lam[1] + lam[0])
    assert rate["data"]["predicted"] == pytest.approx(rho**2)
    assert rate["data"]["measured"] == pytest.approx(rho**2, rel=0.05)
    assert "converged" in found and "Converged in" in found["converged"]["message"]


def test_newton_on_a_saddle_reports_how_it_handled_it():
    loss = expression_loss("x^2 - y^2")
    run, found = findings(loss, {"name": "newton"}, start=np.array([[1.0, 0.0]]), max_steps=50)
    assert "newton_fallback" in found
    data = found["newton_fallback"]["data"]
    assert data["fallback_steps"] == run["work"]["fallback_steps"] > 0
    assert data["escape_steps"] >= 1 and "escape" in found["newton_fallback"]["message"]


def test_newton_on_a_singular_softmax_hessian_names_the_flat_directions():
    """Softmax weights are determined only up to a shift shared by the classes: without l2
    the Hessian has p + 1 zero eigenvalues, Newton can only fall back, and the finding says
    why and what to do."""
    loss = dataset_loss({"model": "softmax", "synthetic": {"n_samples": 200, "n_features": 3,
                                                            "noise": 0.1, "seed": 0,
                                                            "n_classes": 3}})
    run, found = findings(loss, {"name": "newton", "line_search": True},
                          start=np.zeros((1, loss.dim)), max_steps=20)
    assert run["work"]["newton_steps"] == 0 and run["status"] == "max_steps"
    fallback = found["newton_fallback"]
    assert fallback["data"]["flat_directions"] == 4  # 3 features + the intercept
    assert "4 of 12 curvatures are flat" in fallback["message"]
    assert 'fallback "damped"' in fallback["message"]
    damped, found = findings(loss, {"name": "newton", "line_search": True,
                                    "fallback": "damped"},
                             start=np.zeros((1, loss.dim)), max_steps=20)
    assert damped["final"]["loss"] < 0.01 * run["final"]["loss"]
    assert 'fallback "damped"' not in found["newton_fallback"]["message"]


def test_a_run_that_ends_at_a_saddle_says_so():
    loss = expression_loss("x^2 - y^2")
    run, found = findings(loss, {"name": "sgd", "lr": 0.1}, start=np.array([[1.0, 0.0]]))
    assert run["status"] == "converged"  # gradient descent cannot see the saddle
    assert "saddle" in found and "indefinite" in found["saddle"]["message"]


def test_a_plateau_stalls():
    loss = expression_loss("abs(x) + y^2")
    run, found = findings(loss, {"name": "sgd", "lr": 1.0}, start=np.array([[0.5, 0.0]]),
                          stop=StopCriteria(patience=25))
    assert run["status"] == "stalled" and "stalled" in found
    assert "25 steps" in found["stalled"]["message"]


def test_minibatch_sgd_at_constant_lr_hits_a_noise_floor():
    loss = dataset_loss({"model": "linear", "batch_size": 4, "synthetic": {
        "n_samples": 400, "n_features": 3, "noise": 1.0, "seed": 0}})
    run, found = findings(loss, {"name": "sgd", "lr": 0.05}, start=np.zeros((1, loss.dim)),
                          max_steps=3000, seed=1)
    assert run["status"] == "max_steps"
    noise = found["noise_floor"]
    assert noise["data"]["gap"] > 0
    assert noise["data"]["level"] == pytest.approx(loss.f_min + noise["data"]["gap"])
    assert "minibatch noise" in noise["message"]
    assert "zigzag" not in found  # the sign flips are noise, not curvature


def test_findings_never_contradict_the_status():
    cases = [(RAVINE, {"name": "sgd", "lr": 0.03}), (RAVINE, {"name": "sgd", "lr": 0.001}),
             (RAVINE, {"name": "newton"}), (expression_loss("x^2 - y^2"), {"name": "sgd"})]
    for loss, optimizer in cases:
        run, found = findings(loss, optimizer, start=np.array([[1.0, 0.5]]), max_steps=500)
        status_codes = {"converged", "diverged", "stalled", "max_steps", "time_limit"}
        assert set(found) & status_codes == {run["status"]}
        for f in found.values():
            assert f["message"].endswith(".") and f["data"] is not None


def _codes(loss, optimizer, start, steps=500):
    run_ = optimize(loss, [optimizer], np.array([start], dtype=float), max_steps=steps).runs[0]
    return run_, {f["code"]: f for f in run_["findings"]}


def test_the_classical_rules_findings():
    from optim_core.losses.catalog import BuiltinLoss

    # a kink: no strong-Wolfe point on some steps, an update skipped, the search then stuck
    run_, found = _codes(expression_loss("abs(x) + 2*abs(y)"), {"name": "bfgs"}, [1.3, -0.7])
    assert run_["status"] == "stalled" and run_["reason"] == "no_descent"
    assert "line search found no lower point" in found["stalled"]["message"]
    assert found["line_search_failed"]["data"]["failures"] == \
        run_["work"]["line_search_failures"] > 0
    assert found["curvature_pair_rejected"]["data"]["skipped_updates"] == \
        run_["work"]["skipped_updates"] > 0
    # conjugate gradient on a 2-D quadratic: done within 2 steps, and says why
    run_, found = _codes(expression_loss("(x-1)^2 + 3*(y+2)^2 + x*y"),
                         {"name": "cg", "c2": 1e-10}, [3.0, 3.0])
    assert run_["steps"] <= 2 and found["cg_finite_termination"]["data"]["within"] is True
    # the trust region on a kink: the model stops predicting a decrease
    run_, found = _codes(expression_loss("abs(x) + abs(y)"), {"name": "trust_region"},
                         [1.3, -0.7])
    assert run_["reason"] == "trust_region" and "trust_radius_collapsed" in found
    # Nelder–Mead ends by its simplex, at a minimum here
    run_, found = _codes(BuiltinLoss("rosenbrock"), {"name": "nelder_mead"}, [-1.2, 1.0])
    assert run_["reason"] == "simplex" and "a minimum" in found["simplex_collapsed"]["message"]
    assert "zigzag" not in found  # a first-order rule's pathology only


def test_a_one_step_run_says_one_step():
    """Newton ends a quadratic in one step: "Converged in 1 step", not "1 steps"."""
    run, found = findings(RAVINE, {"name": "newton"}, max_steps=50)
    assert run["steps"] == 1
    assert found["converged"]["message"].startswith("Converged in 1 step (")
