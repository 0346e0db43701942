"""check_grads-style central differences for gradients and Hessians (autograd's test_util)."""

from __future__ import annotations

import numpy as np


def check_derivatives(loss, points: np.ndarray, h: float = 1e-6, rtol: float = 1e-5,
                      atol: float = 1e-6) -> None:
    points = np.asarray(points, dtype=float)
    k, d = points.shape
    _, grads = loss.value_grad(points)
    hess = loss.hess(points)
    eye = np.eye(d)
    for i in range(d):
        step = h * np.maximum(1.0, np.abs(points[:, i]))[:, None] * eye[i]
        plus, minus = loss.value(points + step), loss.value(points - step)
        fd_grad = (plus - minus) / (2 * step[:, i])
        np.testing.assert_allclose(grads[:, i], fd_grad, rtol=rtol, atol=atol,
                                   err_msg=f"gradient component {i}")
        _, g_plus = loss.value_grad(points + step)
        _, g_minus = loss.value_grad(points - step)
        fd_hess = (g_plus - g_minus) / (2 * step[:, i:i + 1])
        np.testing.assert_allclose(hess[:, :, i], fd_hess, rtol=rtol, atol=atol * 10,
                                   err_msg=f"Hessian column {i}")
    np.testing.assert_allclose(hess, np.swapaxes(hess, 1, 2), atol=1e-9)
