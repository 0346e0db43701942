"""What the local quadratic model predicts, for measured rates to be set beside.

For f ≈ ½xᵀHx with eigenvalues 0 < μ = λmin ≤ L = λmax, κ = L/μ:
    stability limit of gradient descent    lr < 2/L
    best fixed GD step                     lr = 2/(μ + L),  error rate ρ = (κ−1)/(κ+1)
    best heavy ball (Polyak)               lr = 4/(√L + √μ)²,  momentum = ((√κ−1)/(√κ+1))²,
                                           error rate (√κ−1)/(√κ+1)
    the loss gap shrinks by the square of the error rate per step (`loss_rate`).
    GD at a given lr: error rate max_i |1 − lr·λ_i|.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optim_core.types import Array


def gd_rate(lr: float, lam: Array) -> float:
    """Asymptotic per-step error contraction of GD at `lr` on curvatures `lam`."""
    return float(np.max(np.abs(1.0 - lr * np.asarray(lam))))


def quadratic_theory(lam: Array) -> dict[str, Any] | None:
    """Best GD and heavy-ball settings and rates, or None unless the curvature is positive."""
    lam = np.asarray(lam, dtype=float)
    if lam.size == 0 or not np.all(np.isfinite(lam)):
        return None
    mu, big = float(np.min(lam)), float(np.max(lam))
    if big <= 0:
        return {"stability_limit": None, "condition_number": None, "gd": None,
                "heavy_ball": None}
    stability = 2.0 / big
    if mu <= 1e-12 * big:
        return {"stability_limit": stability, "condition_number": None, "gd": None,
                "heavy_ball": None}
    kappa = big / mu
    rho = (kappa - 1.0) / (kappa + 1.0)
    root = math.sqrt(kappa)
    rho_hb = (root - 1.0) / (root + 1.0)
    return {
        "stability_limit": stability,
        "condition_number": kappa,
        "gd": {"lr": 2.0 / (mu + big), "rate": rho, "loss_rate": rho * rho},
        "heavy_ball": {
            "lr": 4.0 / (math.sqrt(big) + math.sqrt(mu)) ** 2,
            "momentum": rho_hb * rho_hb,
            "rate": rho_hb,
            "loss_rate": rho_hb * rho_hb,
        },
    }


def heavy_ball_rate(lr: float, momentum: float, lam: Array, *, nesterov: bool = False) -> float:
    """Spectral radius of the momentum iteration on curvatures `lam` (error rate per step).

    Heavy ball:  z² − (1 + μ − lr·λ)·z + μ = 0
    Nesterov:    z² − (1 + μ)(1 − lr·λ)·z + μ(1 − lr·λ) = 0
    """
    lam = np.asarray(lam, dtype=float)
    if nesterov:
        b = (1.0 + momentum) * (1.0 - lr * lam)
        c = momentum * (1.0 - lr * lam)
    else:
        b = 1.0 + momentum - lr * lam
        c = np.full_like(lam, momentum)
    disc = (b * b - 4.0 * c).astype(complex)
    roots = np.stack([(b + np.sqrt(disc)) / 2.0, (b - np.sqrt(disc)) / 2.0])
    return float(np.max(np.abs(roots)))
