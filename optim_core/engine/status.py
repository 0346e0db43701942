"""Per-run outcomes as integer codes (scipy's per-element status convention)."""

from __future__ import annotations

from enum import IntEnum


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
