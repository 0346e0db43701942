"""The diagnostic helpers on their own: curvature kinds and the convergence rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optim_core.diagnostics import curvature, rates


def test_kind_classifies_every_case_and_skips_non_finite_rows():
    lam = np.array([[1.0, 5.0, 9.0],
                    [-9.0, -5.0, -1.0],
                    [-2.0, 0.5, 3.0],
                    [0.0, 1.0, 2.0],
                    [-1e-12, 1.0, 2.0],  # within 1e-8·max|λ| of zero: degenerate
                    [np.nan, 1.0, 2.0],
                    [1.0, 2.0, np.inf],
                    [0.0, 0.0, 0.0]])
    assert curvature.kind(lam) == ["minimum", "maximum", "saddle", "degenerate", "degenerate",
                                   None, None, "degenerate"]
    assert curvature.kind(np.empty((0, 2))) == []


def test_eigenvalues_are_nan_only_in_rows_whose_hessian_is_not_finite():
    hess = np.array([[[2.0, 1.0], [1.0, 2.0]], [[np.nan, 0.0], [0.0, 1.0]],
                     [[4.0, 0.0], [0.0, -1.0]]])
    lam = curvature.eigenvalues(hess)
    np.testing.assert_allclose(lam[0], [1.0, 3.0])
    assert np.isnan(lam[1]).all()
    np.testing.assert_allclose(lam[2], [-1.0, 4.0])
    np.testing.assert_allclose(curvature.eigenvalues(hess[[0]]), [[1.0, 3.0]])
    cond = curvature.condition_number(np.array([[1.0, 3.0], [0.0, 2.0]]))
    assert cond[0] == 3.0 and math.isinf(cond[1])


def test_convergence_rate_needs_three_losses_and_recovers_a_geometric_rate():
    window = 8
    ring = np.full((3, window), np.nan)
    ring[0, :2] = [4.0, 2.0]  # steps 0 and 1: a single ratio is no rate
    losses = 10.0 * 0.5 ** np.arange(6)  # steps 0 … 5, gap ratio 0.5 to f* = 0
    ring[1, :6] = losses
    ring[2, :6] = losses
    rate = rates.convergence_rate(ring, np.array([1, 5, 5]), 0.0)
    assert math.isnan(rate[0])
    np.testing.assert_allclose(rate[1:], [0.5, 0.5])
    only_short = rates.convergence_rate(ring[:1], np.array([1]), 0.0)
    assert only_short.shape == (1,) and math.isnan(only_short[0])
    unknown_min = rates.convergence_rate(ring[1:2], np.array([5]), None)
    np.testing.assert_allclose(unknown_min, [0.5])


@pytest.mark.parametrize("window", [1, 2, 5, 100])
def test_chronological_is_each_rings_rotation(window):
    """Column W−1 is the run's final step, column j the step W−1−j before it, NaN before step
    0: the rotation per distinct shift equals the gather it replaced, element by element."""
    from optim_core.diagnostics.rates import chronological

    rng = np.random.default_rng(window)
    for k in (0, 1, 9, 300):
        ring = rng.normal(size=(k, window))
        for final in (rng.integers(0, 3 * window, size=k), np.full(k, 2 * window + 3),
                      np.full(k, 1)):
            steps = final[:, None] + np.arange(window)[None, :] - (window - 1)
            gathered = ring[np.arange(k)[:, None], steps % window]
            expected = np.where(steps >= 0, gathered, np.nan)
            assert np.array_equal(chronological(ring, final), expected, equal_nan=True)


def test_a_diverged_run_reports_nulls_without_a_warning():
    import warnings

    from optim_core import optimize
    from optim_core.losses.catalog import builtin_loss

    loss = builtin_loss("rosenbrock")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in the report stage would raise here
        report = optimize(loss, [{"name": "adam", "lr": 1e300}], np.array([[-1.2, 1.0]]),
                          max_steps=5)
    run = report.runs[0]
    assert run["status"] == "diverged"
    assert run["diagnostics"]["distance_to_minimum"] is None
