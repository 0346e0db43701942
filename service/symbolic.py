"""The symbolic stage (parse + differentiate) in worker processes with a hard time limit.

In-process timeouts cannot interrupt SymPy or big-integer work, so an expression that takes
too long is killed with its worker (pebble replaces it) and answered 504. The compiled-loss
cache stays in this process (optim_core's), so only cache misses cross to a worker.
"""

from __future__ import annotations

import atexit
import gc
import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from pebble import ProcessExpired, ProcessPool

from optim_core.errors import ExpressionLimitError
from optim_core.expressions.parse import ExpressionLimits
from optim_core.losses.expression import SymbolicParts, derive
from service.errors import SymbolicTimeoutError

_lock = threading.Lock()
_pools: dict[int, ProcessPool] = {}


def _pool(workers: int, *, replace: bool = False) -> ProcessPool:
    """One pool per process and size, started on first use (spawned: no forked threads)."""
    with _lock:
        pool = _pools.get(workers)
        if replace and pool is not None:
            pool.stop()
            pool = None
        if pool is None or not pool.active:
            pool = ProcessPool(max_workers=workers,
                               context=multiprocessing.get_context("spawn"))
            _pools[workers] = pool
        return pool


@atexit.register
def shutdown() -> None:
    """Stop the worker pools and drop them, so their queues and locks are released before the
    interpreter exits (otherwise the resource tracker warns of leaked semaphores)."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()
        pool.join(timeout=5)
        if pool.active:
            pool.stop()
            pool.join(timeout=5)
    del pools
    gc.collect()


class IsolatedDeriver:
    """A `deriver` for optim_core.expression_loss that runs `derive` in a worker process."""

    def __init__(self, timeout_s: float, workers: int = 1,
                 function: Callable[..., SymbolicParts] = derive) -> None:
        self.timeout_s = timeout_s
        self.workers = workers
        self.function = function  # what the worker runs: optim_core's derive

    def __call__(self, text: str, variables: list[str] | None, limits: ExpressionLimits
                 ) -> SymbolicParts:
        try:
            return self._derive(text, variables, limits, _pool(self.workers))
        except BrokenProcessPool:  # a worker could not start or the pool died: start afresh
            return self._derive(text, variables, limits, _pool(self.workers, replace=True))

    def _derive(self, text: str, variables: list[str] | None, limits: ExpressionLimits,
                pool: ProcessPool) -> SymbolicParts:
        future = pool.schedule(self.function, args=(text, variables, limits),
                               timeout=self.timeout_s)
        try:
            return future.result()
        except FutureTimeout:
            raise SymbolicTimeoutError(
                f"Differentiating this expression took longer than {self.timeout_s:g} s (setting "
                "OPTIM_SYMBOLIC_TIMEOUT_S); simplify it") from None
        except ProcessExpired:
            raise ExpressionLimitError(
                "The symbolic stage ran out of resources on this expression; simplify it"
            ) from None


def warm_up(timeout_s: float, workers: int = 1) -> None:
    """Start the worker pool and import SymPy in it, so the first request does not wait."""
    try:
        IsolatedDeriver(timeout_s, workers)("x", None, ExpressionLimits())
    except Exception:  # a slow start is not fatal: the first request will try again
        logging.getLogger("service").warning("symbolic worker warm-up failed", exc_info=True)
