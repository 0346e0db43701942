"""Thinning keeps the shape of an oscillating path: odd strides and alternating parity."""

from __future__ import annotations

import numpy as np
import pytest

from optim_core import RecordSpec, StopCriteria, make_group, run
from optim_core.engine.recording import Recorder, thin_indices
from optim_core.losses.quadratic import QuadraticLoss

RAVINE = QuadraticLoss(np.diag([1.0, 100.0]))


@pytest.mark.parametrize(("n", "m"), [(10, 10), (11, 10), (1001, 200), (335, 200), (5, 2),
                                      (3, 2), (1_000_001, 1000), (2000, 999), (7, 3)])
def test_thin_indices_are_even_alternating_and_keep_first_and_last(n, m):
    chosen = thin_indices(n, m)
    assert chosen[0] == 0 and chosen[-1] == n - 1
    assert np.all(np.diff(chosen) > 0) and m - 1 <= len(chosen) <= m if n > m else \
        len(chosen) == n
    gaps = np.diff(chosen[:-1])
    assert np.all(gaps % 2 == 1)  # consecutive indices alternate between even and odd
    assert gaps.max(initial=0) <= np.ceil((n - 1) / (m - 1)) + 2


def _zigzag(k: int, max_steps: int, max_points: int, every: int = 1):
    lr = 0.98 * 2 / 100  # 98% of the stability limit 2/λmax: y flips sign every step
    return run(RAVINE, [make_group("sgd", [{"lr": lr}] * k)], np.tile([-8.0, 1.0], (k, 1)),
               max_steps=max_steps, record=RecordSpec(every=every, max_points=max_points),
               stop=StopCriteria(grad_tol=0))


@pytest.mark.parametrize("k", [1, 64], ids=["float path", "vectorised"])
@pytest.mark.parametrize(("max_steps", "max_points"), [(1000, 200), (5000, 100), (400, 150),
                                                       (3000, 7)])
def test_a_thinned_zigzag_still_zigzags(k, max_steps, max_points):
    batch = _zigzag(k, max_steps, max_points)
    for trajectory in (batch.trajectories[0], batch.trajectories[-1]):
        y = trajectory.params[:, 1]
        assert len(y) >= max_points - 1 and len(y) <= max_points
        flips = np.mean(np.sign(y[1:-1]) != np.sign(y[:-2]))
        assert flips > 0.95, flips  # every consecutive pair is an odd number of steps apart
        steps = trajectory.step
        assert steps[0] == 0 and steps[-1] == max_steps
        np.testing.assert_allclose(trajectory.params, RAVINE_path(steps), rtol=1e-9,
                                   atol=1e-300)


def RAVINE_path(steps: np.ndarray) -> np.ndarray:  # noqa: N802
    """SGD on ½(x² + 100y²) in closed form: each coordinate shrinks by (1 − lr·λ) per step."""
    lr = 0.98 * 2 / 100
    return np.stack([-8.0 * (1 - lr) ** steps, (1 - lr * 100) ** steps], axis=1)


def test_both_paths_keep_the_same_points():
    one, many = _zigzag(1, 3000, 120), _zigzag(16, 3000, 120)
    assert one.trajectories[0].step.tolist() == many.trajectories[7].step.tolist()


def test_a_users_even_every_is_kept():
    trajectory = _zigzag(1, 100, 1000, every=2).trajectories[0]
    assert trajectory.step.tolist() == list(range(0, 101, 2))


def test_a_planned_stride_is_odd():
    recorder = Recorder(2, 2, RecordSpec(max_points=101), max_steps=1000, planned=True)
    assert recorder.stride % 2 == 1 and recorder.stride >= 10
