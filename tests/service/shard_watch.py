"""An executor wrapper for tests: it notes which shards have made progress, so a test can
cancel once every shard is computing (not on a clock, which a loaded machine outruns)."""

from __future__ import annotations

import time
from typing import Any


class Watching:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.started: set[int] = set()
        self.count = 0
        self.began = time.monotonic()

    def shards(self, plan: Any) -> Any:
        return self.inner.shards(plan)

    def run_shards(self, work: Any, shards: Any, *, deadline_wall: Any, cancel: Any,
                   progress: Any) -> Any:
        self.count = len(shards)

        def report(shard: int, done: int, total: int, active: int) -> None:
            if done > 0:
                self.started.add(shard)
            if progress is not None:
                progress(shard, done, total, active)

        return self.inner.run_shards(work, shards, deadline_wall=deadline_wall, cancel=cancel,
                                     progress=report)

    def all_computing(self) -> bool:
        """Every shard has made steps (cancel then reaches each while it computes)."""
        return self.count > 0 and len(self.started) == self.count
