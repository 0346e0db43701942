"""Fused kernels against the NumPy engine, in one run: Adam, 1,000 steps, end points only,
K runs of 2-D Rosenbrock (builtin) and of the same function as an expression; the first
call (compile, or load from the disk cache) reported apart. JAX's row is bench/engine.py's
(`pip install "jax[cpu]" optax`). Run: python -m bench.fused"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import median_time, table
from optim_core import RecordSpec, StopCriteria, kernels, make_group, run
from optim_core.losses.catalog import BuiltinLoss
from optim_core.losses.expression import expression_loss

STEPS = 1000
SIZES = (1024, 4096, 16384)
LOSSES = {"builtin": BuiltinLoss("rosenbrock"),
          "expression": expression_loss("(1 - x)^2 + 100*(y - x^2)^2")}


def engine(loss, k: int, path: str) -> None:  # noqa: ANN001
    starts = np.tile([-1.2, 1.0], (k, 1))
    run(loss, [make_group("adam", [{"lr": 0.01}] * k)], starts, max_steps=STEPS,
        stop=StopCriteria(grad_tol=0), record=RecordSpec(enabled=False), path=path)


def main() -> None:
    kernels.configure("numba", None, Path(tempfile.mkdtemp(prefix="optim-bench-kernels-")))
    rows = []
    for name, loss in LOSSES.items():
        for k in SIZES:
            began = time.perf_counter()
            engine(loss, k, "fused")
            first = time.perf_counter() - began
            fused_s = median_time(lambda: engine(loss, k, "fused"), repeat=5)  # noqa: B023
            numpy_s = median_time(lambda: engine(loss, k, "vectorised"), repeat=5)  # noqa: B023
            rows.append([name, f"{k:,}", f"{numpy_s * 1e3:.1f}", f"{fused_s * 1e3:.1f}",
                         f"{numpy_s / fused_s:.2f}×", f"{first:.2f}"])
    print(table("Fused kernels against the NumPy engine (Adam, 1,000 steps)",
                ["loss", "K", "NumPy ms", "fused ms", "speed-up", "first call s"], rows))


if __name__ == "__main__":
    main()
