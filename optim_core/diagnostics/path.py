"""How the path looked: zig-zag and directness.

    oscillation      = Σ_t mean_i [Δp_t,i · Δp_{t−1},i < 0] / (number of step pairs)
                       0 for a smooth descent, 0.5 when one of two coordinates flips every step
    path_efficiency  = ‖p_end − p_start‖ / Σ_t ‖Δp_t‖   (1 for a straight line)
"""

from __future__ import annotations

import numpy as np

from optim_core.types import Array


def oscillation(sign_flips: Array, step_pairs: Array) -> Array:
    """(K,) mean fraction of coordinates whose step changed sign; NaN with fewer than 2 steps."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(step_pairs > 0, sign_flips / np.maximum(step_pairs, 1), np.nan)


def path_efficiency(starts: Array, ends: Array, path_length: Array) -> Array:
    """(K,) straight-line distance over path length; NaN when the run never moved."""
    straight = np.linalg.norm(ends - starts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(path_length > 0, np.minimum(straight / path_length, 1.0), np.nan)
