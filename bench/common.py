"""Timing helpers shared by the benchmarks: medians over repetitions, machine facts."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of `fn()` over `repeat` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def available(module: str) -> bool:
    """Whether an optional baseline can be imported (benchmarks skip it with a note if not)."""
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def versions(*packages: str) -> str:
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def machine() -> str:
    import numpy as np

    blas = "unknown BLAS"
    try:
        from threadpoolctl import threadpool_info

        info = threadpool_info()
        if info:
            blas = f"{info[0].get('internal_api')} {info[0].get('version')}"
    except ImportError:
        config = np.show_config(mode="dicts")  # type: ignore[call-arg]
        blas = config.get("Build Dependencies", {}).get("blas", {}).get("name", blas)
    return (f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform(terse=True)}, "
            f"Python {platform.python_version()}, NumPy {np.__version__} ({blas})")


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
