"""The builtin catalog, quadratics, landscape and point analysis."""

from __future__ import annotations

import numpy as np
import pytest

from optim_core.analyze import analyze
from optim_core.errors import DimensionError, LossError
from optim_core.landscape import landscape
from optim_core.losses.catalog import BUILTINS, BuiltinLoss, catalog_entry
from optim_core.losses.quadratic import QuadraticLoss
from tests.core.finite_differences import check_derivatives

CASES = [(name, d) for name, spec in BUILTINS.items()
         for d in ([2] if spec.dim else [2, 3, 6])]


@pytest.mark.parametrize(("name", "dim"), CASES, ids=[f"{n}-{d}d" for n, d in CASES])
def test_builtin_derivatives_match_finite_differences(name, dim):
    loss = BuiltinLoss(name, dim)
    rng = np.random.default_rng(7)
    domain = loss.domain
    points = rng.uniform(domain[:, 0] * 0.5, domain[:, 1] * 0.5, size=(5, dim))
    check_derivatives(loss, points, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "dim"), CASES, ids=[f"{n}-{d}d" for n, d in CASES])
def test_builtin_minima_are_stationary_with_value_f_min(name, dim):
    loss = BuiltinLoss(name, dim)
    if loss.minima is None:
        assert loss.f_min is None
        return
    values, grads = loss.value_grad(loss.minima)
    np.testing.assert_allclose(values, loss.f_min, atol=1e-12)
    assert np.max(np.abs(grads)) < 1e-9
    assert loss.default_start.shape == (dim,)


def test_catalog_has_the_contract_functions():
    required = {"rosenbrock", "beale", "booth", "himmelblau", "matyas", "three_hump_camel",
                "six_hump_camel", "goldstein_price", "mccormick", "rastrigin", "ackley",
                "sphere", "styblinski_tang", "saddle", "monkey_saddle", "ravine"}
    assert required <= set(BUILTINS)
    assert len(BuiltinLoss("himmelblau").minima) == 4
    assert len(BuiltinLoss("six_hump_camel").minima) == 2
    assert BuiltinLoss("ill_conditioned", params={"condition": 50}).name == "ravine"
    entry = catalog_entry(BUILTINS["rosenbrock"])
    assert entry["default_start"] == [-1.2, 1.0] and entry["n_dimensional"]


def test_builtin_parameters_and_dimensions():
    ravine = BuiltinLoss("ravine", params={"condition": 1000})
    np.testing.assert_allclose(np.linalg.eigvalsh(ravine.hess(np.zeros((1, 2)))[0]), [1, 1000])
    np.testing.assert_allclose(BuiltinLoss("rosenbrock", params={"a": 2}).minima, [[2, 4]])
    with pytest.raises(DimensionError, match="2 dimensions only"):
        BuiltinLoss("beale", dim=3)
    with pytest.raises(LossError, match="Unknown builtin"):
        BuiltinLoss("banana")
    with pytest.raises(LossError, match="no parameter"):
        BuiltinLoss("sphere", params={"a": 1})
    with pytest.raises(LossError, match="must be a finite number > 0"):
        BuiltinLoss("ravine", params={"condition": -1})


def test_quadratic_closed_form_and_validation():
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    loss = QuadraticLoss(A, [1.0, -1.0], 2.0)
    x = np.array([[0.5, -1.5]])
    assert loss.value(x)[0] == pytest.approx(0.5 * x[0] @ A @ x[0] - x[0] @ [1, -1] + 2)
    check_derivatives(loss, x)
    np.testing.assert_allclose(loss.minima[0], np.linalg.solve(A, [1, -1]))
    with pytest.raises(LossError, match="symmetric"):
        QuadraticLoss([[1, 2], [0, 1]])
    with pytest.raises(LossError, match="square"):
        QuadraticLoss([[1, 2, 3]])
    assert QuadraticLoss([[1, 0], [0, -1]]).minima is None


def test_landscape_matches_direct_evaluation():
    loss = BuiltinLoss("rosenbrock", 3)
    x, y, z = landscape(loss, [[-2, 2], [-1, 3]], (7, 5), axes=[0, 2], fixed=[0.0, 0.5, 0.0])
    assert z.shape == (5, 7)
    point = np.array([[x[3], 0.5, y[4]]])
    assert z[4, 3] == pytest.approx(loss.value(point)[0])
    with pytest.raises(DimensionError):
        landscape(loss, [[1, 0], [0, 1]])


def test_analyze_reports_kind_and_theory():
    saddle, = analyze(BuiltinLoss("saddle"), [[0.0, 0.0]])
    assert saddle["kind"] == "saddle" and saddle["eigenvalues"] == [-2.0, 2.0]
    bowl, = analyze(QuadraticLoss(np.diag([1.0, 100.0])), [[1.0, 1.0]])
    theory = bowl["theory"]
    assert theory["stability_limit"] == pytest.approx(0.02)
    assert theory["gd"]["lr"] == pytest.approx(2 / 101)
    assert theory["gd"]["rate"] == pytest.approx(99 / 101)
    assert theory["heavy_ball"]["rate"] == pytest.approx(9 / 11)
    flat, = analyze(BuiltinLoss("monkey_saddle"), [[0.0, 0.0]])
    assert flat["kind"] == "degenerate"
