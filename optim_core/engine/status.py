"""Per-run outcomes as integer codes (scipy's per-element status convention)."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Status(IntEnum):
    RUNNING = 0
    CONVERGED = 1
    DIVERGED = 2
    STALLED = 3
    MAX_STEPS = 4
    TIME_LIMIT = 5
    CANCELLED = 6

    @property
    def label(self) -> str:
        return self.name.lower()


class Reason(IntEnum):
    NONE = 0
    GRAD_TOL = 1
    LOSS_TOL = 2
    STEP_TOL = 3
    NON_FINITE = 4
    BLOW_UP = 5
    PATIENCE = 6
    MAX_STEPS = 7
    TIME_LIMIT = 8
    CANCELLED = 9

    @property
    def label(self) -> str:
        return self.name.lower()


STATUS_LABELS = tuple(s.label for s in Status)
REASON_LABELS = tuple(r.label for r in Reason)


_AT_TOLERANCE = np.zeros(len(Reason), dtype=bool)
_AT_TOLERANCE[[Reason.GRAD_TOL, Reason.LOSS_TOL, Reason.STEP_TOL]] = True


def at_tolerance(reason: np.ndarray) -> np.ndarray:
    """Where a run stopped by meeting a tolerance (a table lookup: np.isin costs ~15 µs)."""
    return _AT_TOLERANCE[reason]
