"""Fused step kernels: the engine's step, its loss and its bookkeeping compiled into one loop
over the runs with numba (the optional `fast` extra).

The NumPy engine makes ~45 passes over the (K, d) arrays a step, each near its memory floor;
a fused kernel keeps one run's coordinates, gradient and rule state in registers for the
whole step. Nothing here is a second copy of a rule or a loss: the generated code calls each
rule's own `Elementwise.kernel` and each builtin's own term, compiled by numba, and an
expression's checked tape written out instruction by instruction (never user text).

`OPTIM_KERNELS` (the service's setting) picks the path: `numpy` never compiles, `numba`
takes the fused path for every batch it covers, `auto` (default) where numba is installed,
the batch is large (FUSED_MIN_RUNS) and the compile pays for itself (see `choose`).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

MODES = ("auto", "numpy", "numba")
# Below this many runs the vectorised loop's per-step cost is small and a first compile
# (~1–3 s) would dominate: the fused path never serves them under `auto` (K ≤ 64 stays
# exactly as it was; the float path serves the smallest batches).
FUSED_MIN_RUNS = 256
# Under `auto`, a kernel not yet compiled (in this process or on disk) is compiled at once
# only for a batch of at least this many run-step-coordinates: ~10–20 s of NumPy work on one
# core, which a cold compile (4–11 s on a 2-core machine, longer when a job's shards compile
# side by side) then pays for; smaller batches run on NumPy while it compiles in the
# background. At 150 million, a 16 × 4,096 × 2,000 Adam sweep job took 18.7 s the first
# time (14 s compiling) against 6 s on NumPy.
COMPILE_PAYS_RUN_STEPS = 600_000_000


_mode = "numpy"  # the pure library's default; the service configures its setting's
_threads: int | None = None
_cache_dir: Path | None = None
_idle_cpus: Callable[[], int] | None = None


def configure(mode: str, threads: int | None = None, cache_dir: Path | None = None) -> None:
    """The host's choice (the service's OPTIM_KERNELS, OPTIM_KERNEL_THREADS and
    OPTIM_KERNEL_CACHE_DIR): the core reads no settings of its own."""
    global _mode, _threads, _cache_dir
    if mode not in MODES:
        raise ValueError(f"kernels must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "numba":
        require_numba()
    _mode, _threads, _cache_dir = mode, threads, cache_dir
    share_cpus_with(None)


def share_cpus_with(idle_cpus: Callable[[], int] | None) -> None:
    """A host that runs other work beside the engine (the service's compute gate) says how
    many CPUs stand idle now; a fused batch then takes its own CPU and at most those."""
    global _idle_cpus
    _idle_cpus = idle_cpus


def cache_dir() -> Path:
    """Where generated kernels and numba's cache of them live (configure, else a temporary
    directory of this user)."""
    if _cache_dir is not None:
        return Path(_cache_dir)
    return Path(tempfile.gettempdir()) / f"optim-kernels-{os.getuid()}"


def mode() -> str:
    return _mode


def threads() -> int | None:
    """Threads a fused batch may use now (None: numba's default, every core): the configured
    number, or fewer when the host's other work holds CPUs (share_cpus_with)."""
    if _idle_cpus is None:
        return _threads
    available = 1 + max(0, _idle_cpus())
    return available if _threads is None else min(_threads, available)


def numba_available() -> bool:
    """Whether the `fast` extra is installed (checked without importing numba)."""
    return importlib.util.find_spec("numba") is not None


class FusedUnavailable(RuntimeError):
    """The fused path cannot serve this batch (the caller takes the NumPy engine)."""


def require_numba() -> None:
    if not numba_available():
        raise FusedUnavailable(
            "OPTIM_KERNELS=numba needs numba: pip install 'optim-service[fast]'")
