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
    # ended by the rule's own criterion
    SIMPLEX = 10  # Nelder–Mead: the simplex within xatol and its values within fatol
    TOLERANCE_GRAD = 11  # L-BFGS (torch): max |g| ≤ tolerance_grad
    NO_DESCENT = 12  # the direction is not a descent direction (gᵀd ≥ −tolerance_change)
    TRUST_REGION = 13  # the model predicts no decrease, or the radius collapsed
    TOLERANCE_CHANGE = 14  # L-BFGS (torch): gᵀd > −tolerance_change, the decrease is spent

    @property
    def label(self) -> str:
        return self.name.lower()


STATUS_LABELS = tuple(s.label for s in Status)
REASON_LABELS = tuple(r.label for r in Reason)


_AT_TOLERANCE = np.zeros(len(Reason), dtype=bool)
_AT_TOLERANCE[[Reason.GRAD_TOL, Reason.LOSS_TOL, Reason.STEP_TOL, Reason.SIMPLEX,
               Reason.TOLERANCE_GRAD, Reason.TOLERANCE_CHANGE]] = True
# the status each of a rule's own reasons means
RULE_STATUS = {Reason.SIMPLEX: Status.CONVERGED, Reason.TOLERANCE_GRAD: Status.CONVERGED,
               Reason.TOLERANCE_CHANGE: Status.CONVERGED, Reason.NO_DESCENT: Status.STALLED,
               Reason.TRUST_REGION: Status.STALLED}


def at_tolerance(reason: np.ndarray) -> np.ndarray:
    """Where a run stopped by meeting a tolerance (a table lookup: np.isin costs ~15 µs)."""
    return _AT_TOLERANCE[reason]
