"""The compute gate: at most N requests computing at once, a short bounded queue, and an
immediate 429 beyond it, so the event loop (and /healthz) stays free."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from service.problems import OverloadedError

T = TypeVar("T")


class ComputeGate:
    def __init__(self, max_concurrency: int, max_queue: int, retry_after_s: int) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self.limiter = anyio.CapacityLimiter(max_concurrency)
        self.admitted = 0

    @property
    def busy(self) -> int:
        return min(self.admitted, self.max_concurrency)

    @property
    def waiting(self) -> int:
        return max(0, self.admitted - self.max_concurrency)

    async def run(self, fn: Callable[..., T], *args: Any, inline: bool = False,
                  **kwargs: Any) -> T:
        """Run `fn` on a worker thread, or raise OverloadedError at once when full.

        `inline` work (a few milliseconds at most, decided by the caller) runs right here on
        the event loop while a compute slot is free: the thread hop and the GIL hand-over cost
        more than such work itself. When every slot is taken the service is saturated, and
        such a request queues or gets its 429 like any other.
        """
        if inline and self.admitted < self.max_concurrency:
            return fn(*args, **kwargs)
        if self.admitted >= self.max_concurrency + self.max_queue:
            raise OverloadedError(self.retry_after_s)
        self.admitted += 1
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs),
                                                  limiter=self.limiter)
        finally:
            self.admitted -= 1
