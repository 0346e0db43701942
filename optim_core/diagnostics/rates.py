"""How fast the loss fell.

    loss_reduction    (f₀ − f*)/(f_end − f*) with f* = f_min when known, else f₀/f_end for
                      positive losses
    convergence_rate  geometric mean of successive loss-gap ratios (f_{t+1} − f*)/(f_t − f*)
                      over the last part of the run: the last half of the steps whose gap is
                      still above round-off (at most the last RATE_WINDOW steps);
                      with f* unknown the gaps are the successive decreases |f_t − f_{t+1}|,
                      which shrink at the same rate near a linearly convergent minimum.
                      Gaps at round-off level are ignored.

For gradient descent on a quadratic at its best fixed lr the loss gap shrinks by ρ² per step,
ρ = (κ−1)/(κ+1): the theory module reports both ρ and ρ² (`loss_rate`), the latter on the same
scale as convergence_rate.
"""

from __future__ import annotations

import numpy as np

from optim_core.types import Array

_ROUNDOFF = 1e-14  # gaps below this fraction of the loss scale are noise, not progress


def loss_reduction(initial: Array, final: Array, f_min: float | None) -> Array:
    with np.errstate(invalid="ignore", divide="ignore"):
        if f_min is not None:
            return (initial - f_min) / (final - f_min)
        return np.where((initial > 0) & (final > 0), initial / final, np.nan)


def chronological(ring: Array, final_steps: Array) -> Array:
    """Reorder ring buffers (K, W) so column W−1 is each run's final step; NaN before step 0.

    A run's oldest kept loss sits in slot (final + 1) mod W, so its row is that rotation:
    done once per distinct rotation (runs that stop together share one), not by a (K, W)
    gather, which took ~6 ms at K = 4,096, W = 100."""
    k, w = ring.shape
    oldest = (final_steps + 1) % w
    shifts = np.unique(oldest).tolist()
    if len(shifts) == 1:  # every run stopped at the same step (max_steps): one copy
        ordered = np.concatenate((ring[:, shifts[0]:], ring[:, :shifts[0]]), axis=1)
    else:
        ordered = np.empty(ring.shape)
        for shift in shifts:
            rows = oldest == shift
            block = ring[rows]
            ordered[rows] = np.concatenate((block[:, shift:], block[:, :shift]), axis=1)
    young = final_steps < w - 1  # fewer than W steps taken: the first columns precede step 0
    if young.any():
        before_start = np.arange(w)[None, :] < (w - 1 - final_steps[young])[:, None]
        ordered[young] = np.where(before_start, np.nan, ordered[young])
    return ordered


def convergence_rate(ring: Array, final_steps: Array, f_min: float | None) -> Array:
    """(K,) per-step loss-gap ratio over the last part of each run; NaN when undefined."""
    if not (final_steps >= 2).any():
        return np.full(final_steps.shape, np.nan)  # a rate needs two ratios, three losses
    losses = chronological(ring, final_steps)  # (K, W)
    k, w = losses.shape
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if f_min is not None:
            gaps = losses - f_min
            floor = _ROUNDOFF * max(abs(f_min), 1e-300) + 1e-300
        else:
            gaps = np.abs(np.diff(losses, axis=1))
            gaps = np.concatenate([np.full((k, 1), np.nan), gaps], axis=1)
            floor = _ROUNDOFF * np.nanmax(np.abs(losses), axis=1, initial=0.0)[:, None] + 1e-300
        measurable = np.isfinite(gaps) & (gaps > floor)
        # The run's last measurable step: past it the gap is round-off, not progress.
        last = w - 1 - np.argmax(measurable[:, ::-1], axis=1)
        last_step = final_steps - (w - 1 - last)
        window = np.minimum(last_step // 2 + 1, last + 1)  # the last half of that part
        column = np.arange(w)[None, :]
        valid = measurable & (column <= last[:, None]) & (column > (last - window)[:, None])
        first = np.argmax(valid, axis=1)
        count = np.where(valid.any(axis=1), last - first, 0)
        rows = np.arange(k)
        log_first = np.log(np.where(valid[rows, first], gaps[rows, first], np.nan))
        log_last = np.log(np.where(valid[rows, last], gaps[rows, last], np.nan))
        rate = np.exp((log_last - log_first) / np.where(count > 0, count, np.nan))
    return np.where(count >= 2, rate, np.nan)
