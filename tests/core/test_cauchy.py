"""L-BFGS-B's pieces (optimizers/cauchy.py) against their definitions, computed another way:
the compact form against the two-loop recursion, the Cauchy point against a dense search
along the projected path, the subspace point against the model's gradient."""

import numpy as np
import pytest

from optim_core.optimizers.cauchy import cauchy_point, compact, subspace_point
from optim_core.optimizers.lbfgs import _two_loop

K, D, M = 6, 5, 4
COUNTS = np.array([4, 4, 2, 3, 1, 4])  # rows with fewer pairs hold zeros past their count
LO = np.array([-1.2, -1.2, -np.inf, -1.2, -1.2])
HI = np.array([1.5, 0.9, np.inf, 1.1, 1.0])


def _memory(seed: int, m: int = M):
    """Pairs (s, Aₖs) of a random positive definite Aₖ per row, and the two-loop's scale."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(K, D, D))
    a = a @ a.transpose(0, 2, 1) + np.eye(D)
    s = rng.normal(size=(m, K, D))
    y = np.einsum("kij,mkj->mki", a, s)
    counts = np.minimum(COUNTS, m)
    for row, count in enumerate(counts):
        s[count:, row] = y[count:, row] = 0.0
    sy = np.einsum("mkd,mkd->mk", s, y)
    rho = np.divide(1.0, sy, out=np.zeros_like(sy), where=sy > 0)
    newest = counts - 1, np.arange(K)
    h_diag = sy[newest] / np.einsum("kd,kd->k", y[newest], y[newest])
    return rng, s, y, rho, h_diag


def _dense(model):
    w, middle, theta = model
    return theta[:, None, None] * np.eye(D) - np.einsum("kad,kab,kbe->kde", w, middle, w)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_compact_form_is_the_inverse_of_the_two_loop(seed):
    rng, s, y, rho, h_diag = _memory(seed)
    g = rng.normal(size=(K, D))
    h_g = -_two_loop(g, s, y, rho, h_diag)
    b = _dense(compact(s, y, 1.0 / h_diag))
    np.testing.assert_allclose(np.einsum("kij,kj->ki", b, h_g), g, atol=1e-10)
    np.testing.assert_allclose(b, b.transpose(0, 2, 1), atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_cauchy_point_is_the_first_minimiser_along_the_projected_path(seed):
    rng, s, y, _, h_diag = _memory(seed)
    g = rng.normal(size=(K, D)) * 2
    x = np.clip(rng.uniform(-1.3, 1.3, size=(K, D)), LO, HI)
    model = compact(s, y, 1.0 / h_diag)
    b = _dense(model)
    point, c = cauchy_point(x, g, LO, HI, model)
    np.testing.assert_allclose(c, np.einsum("kad,kd->ka", model.w, point - x), atol=1e-12)
    ts = np.linspace(0.0, 6.0, 60_001)
    for row in range(K):
        path = np.clip(x[row] - ts[:, None] * g[row], LO, HI) - x[row]
        values = path @ g[row] + 0.5 * np.einsum("ti,ij,tj->t", path, b[row], path)
        rising = np.flatnonzero(np.diff(values) > 1e-13)
        first = rising[0] if rising.size else len(ts) - 1
        np.testing.assert_allclose(point[row], x[row] + path[first], atol=2e-3)
        assert ((point[row] >= LO) & (point[row] <= HI)).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("m", [M, 2], ids=["reduced-hessian", "direct-primal"])
def test_the_subspace_point_minimises_the_model_over_the_free_coordinates(seed, m):
    """Both ways to the subspace step: the reduced Hessian (d ≤ 2m) and the direct primal
    method's 2m × 2m system (d > 2m)."""
    rng, s, y, _, h_diag = _memory(seed, m)
    g = rng.normal(size=(K, D))
    x = np.clip(rng.uniform(-1.3, 1.3, size=(K, D)), LO, HI)
    model = compact(s, y, 1.0 / h_diag)
    b = _dense(model)
    point, c = cauchy_point(x, g, LO, HI, model)
    target, untouched = subspace_point(x, g, LO, HI, model, point, c)

    def value(row, z):
        p = z - x[row]
        return g[row] @ p + 0.5 * p @ b[row] @ p
    for row in range(K):
        assert ((target[row] >= LO) & (target[row] <= HI)).all()
        assert value(row, target[row]) <= value(row, point[row]) + 1e-12
        free = (point[row] > LO) & (point[row] < HI)
        held = ~free
        np.testing.assert_array_equal(target[row][held], point[row][held])
        inside = ((target[row] > LO) & (target[row] < HI))[free].all()
        if inside:  # not cut back: the model's gradient vanishes on the free coordinates
            gradient = g[row] + b[row] @ (target[row] - x[row])
            np.testing.assert_allclose(gradient[free], 0.0, atol=1e-9)
        if untouched[row]:  # the box played no part: the model's own minimiser
            np.testing.assert_allclose(target[row], x[row] - np.linalg.solve(b[row], g[row]),
                                       atol=1e-9)


def test_far_bounds_leave_the_cauchy_and_subspace_points_to_the_model():
    _, s, y, _, h_diag = _memory(5)
    g = np.random.default_rng(6).normal(size=(K, D)) * 0.1
    x = np.zeros((K, D))
    far = np.full(D, 1e6)
    model = compact(s, y, 1.0 / h_diag)
    point, c = cauchy_point(x, g, -far, far, model)
    target, untouched = subspace_point(x, g, -far, far, model, point, c)
    assert untouched.all()
    newton = np.linalg.solve(_dense(model), g[:, :, None])[:, :, 0]
    np.testing.assert_allclose(target, x - newton, atol=1e-10)
