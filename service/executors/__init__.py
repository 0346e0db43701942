"""Where jobs' shards run: a process pool on this machine, or a Ray cluster.

Synchronous requests never come here: they run in their compute slot (cache-sized chunks one
after another, optim_core.shards.InProcess), bounded by their time budget. A job's batch is
split for the executor (optim_core.shards.parallel_shards) and merged to the one-batch answer.
"""

from __future__ import annotations

from typing import Any, Protocol

from optim_core.shards import ShardExecutor
from service.errors import ExecutorUnavailableError
from service.settings import Settings

__all__ = ["ExecutorUnavailableError", "JobExecutor", "open_executor"]

class JobExecutor(ShardExecutor, Protocol):
    """A ShardExecutor the service opens at start-up and closes at shutdown."""

    name: str
    workers: int

    def status(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def open_executor(settings: Settings) -> JobExecutor:
    """The executor OPTIM_EXECUTOR names (Ray is imported only when chosen)."""
    if settings.executor == "ray":
        from service.executors.ray_bridge import IsolatedRayExecutor

        return IsolatedRayExecutor(settings)
    from service.executors.pool import PoolExecutor

    return PoolExecutor(settings.workers_cpu)
