"""Progress and cancel of a shard in another process, at most every REMOTE_CHECK_S.

The engine calls both every 50 steps; across processes each call is a round trip (Ray actor,
multiprocessing manager) whose CPU the shards on a small machine would lose. A shard's last
report (no runs active) always goes through.
"""

from __future__ import annotations

import time
from collections.abc import Callable

REMOTE_CHECK_S = 0.5


def throttled(send: Callable[[tuple[int, int, int]], object], ask: Callable[[], bool]
              ) -> tuple[Callable[[int, int, int], None], Callable[[], bool]]:
    """The engine's (progress, cancel) callbacks over a remote `send` and `ask`."""
    last_sent = last_asked = float("-inf")
    cancelled = False

    def progress(done: int, total: int, active: int) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if active == 0 or now - last_sent >= REMOTE_CHECK_S:
            last_sent = now
            send((done, total, active))

    def cancel() -> bool:
        nonlocal last_asked, cancelled
        now = time.monotonic()
        if not cancelled and now - last_asked >= REMOTE_CHECK_S:
            last_asked = now
            cancelled = bool(ask())
        return cancelled

    return progress, cancel
