"""A large sweep four ways, side by side: one batch (the whole (K, d) array), cache-sized chunks
in one process, the local process pool on every core, and Ray with two workers on a local
cluster (its start-up reported apart). The sweep: a 16-point lr × beta1 grid × 4,096 random
starts × 2,000 Adam steps on Rosenbrock, as a user sends it (expression or builtin). Every way
must give the same rows; the table says so.

    python -m bench.sweep            # the full size (minutes)
    python -m bench.sweep --quick    # 16 × 1,024 × 500, for a look
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from bench.common import available, table
from optim_core import StopCriteria, SweepReport, resolve_starts
from optim_core.api import sweep
from optim_core.losses.catalog import builtin_loss

GRID = {"lr": [0.001, 0.003, 0.01, 0.03], "beta1": [0.5, 0.8, 0.9, 0.95]}


def _timed(fn: Callable[[], SweepReport]) -> tuple[float, SweepReport]:
    began = time.perf_counter()
    report = fn()
    return time.perf_counter() - began, report


def main(quick: bool = False) -> str:
    n, steps = (1024, 500) if quick else (4096, 2000)
    loss = builtin_loss("rosenbrock")
    starts = resolve_starts(loss, {"random": {"n": n, "low": -2, "high": 2, "seed": 1}})
    stop = StopCriteria(grad_tol=1e-6)
    k = n * 16

    def go(**how: object) -> SweepReport:
        return sweep(loss, {"name": "adam"}, GRID, starts, max_steps=steps, stop=stop, **how)

    rows, reference = [], None

    def add(name: str, seconds: float, report: SweepReport, note: str = "") -> None:
        nonlocal reference
        if reference is None:
            reference = (seconds, report)
        same = (report.rows == reference[1].rows and np.array_equal(
            report.batch.final_params, reference[1].batch.final_params))
        rows.append([name, f"{seconds:.2f}", f"{reference[0] / seconds:.2f}×",
                     "yes" if same else "NO", note])

    add("one batch", *_timed(lambda: go(shards=[np.arange(k)])))
    add("local chunks (one process)", *_timed(go))
    from service.executors.pool import PoolExecutor

    cores = len(os.sched_getaffinity(0))
    pool = PoolExecutor(cores)
    first = _timed(lambda: go(executor=pool))
    add(f"local pool, {cores} processes", *_timed(lambda: go(executor=pool)),
        f"first call {first[0]:.2f} s (starts the pool)")
    pool.close()
    if available("ray"):
        add(*_ray(go))
    else:
        rows.append(["Ray, 2 workers", "skipped (ray not installed)", "–", "–", ""])
    return table(f"Sweep of {len(GRID['lr']) * len(GRID['beta1'])} × {n:,} starts × "
                 f"{steps:,} Adam steps on Rosenbrock ({k:,} runs)",
                 ["how", "seconds", "vs one batch", "same rows", "note"], rows)


def _ray(go: Callable[..., SweepReport]) -> tuple[str, float, SweepReport, str]:
    from service.executors.ray_cluster import RayExecutor
    from service.settings import Settings

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    began = time.perf_counter()
    executor = RayExecutor(Settings(executor="ray", ray_address="local", workers_cpu=2))
    executor.status()  # starts the local cluster
    go(executor=executor)  # workers import the engine once
    start_up = time.perf_counter() - began
    try:
        seconds, report = _timed(lambda: go(executor=executor))
    finally:
        executor.close()
    return "Ray, 2 workers (local cluster)", seconds, report, \
        f"cluster start + first sweep {start_up:.1f} s, apart"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(main(parser.parse_args().quick))
