"""Fused kernels against the NumPy engine and JAX, in one run: Adam, 1,000 steps, end points
only, K runs of 2-D Rosenbrock (builtin) and of the same function as an expression; the
first call (compile, or load from the disk cache) reported apart. JAX (optional: `pip install
"jax[cpu]" optax`) runs jit(scan) over the (K, 2) batch on one thread, compile excluded, as
the service computes a batch below 1,024 runs on one core; the fused kernels' own rows say
how many threads they used. Run: python -m bench.fused"""

from __future__ import annotations

import os

# one XLA thread: set before JAX is imported
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")

import tempfile  # noqa: E402
import time
from pathlib import Path

import numpy as np  # noqa: E402

from bench.common import available, median_time, table  # noqa: E402
from optim_core import RecordSpec, StopCriteria, kernels, make_group, run  # noqa: E402
from optim_core.engine.fused import PARALLEL_MIN_RUNS  # noqa: E402
from optim_core.losses.catalog import BuiltinLoss  # noqa: E402
from optim_core.losses.expression import expression_loss  # noqa: E402

STEPS = 1000
SIZES = (1024, 4096, 16384)
LOSSES = {"builtin": BuiltinLoss("rosenbrock"),
          "expression": expression_loss("(1 - x)^2 + 100*(y - x^2)^2")}


def engine(loss, k: int, path: str) -> None:  # noqa: ANN001
    starts = np.tile([-1.2, 1.0], (k, 1))
    run(loss, [make_group("adam", [{"lr": 0.01}] * k)], starts, max_steps=STEPS,
        stop=StopCriteria(grad_tol=0), record=RecordSpec(enabled=False), path=path)


def jax_final(k: int) -> float:
    """Median seconds of JAX's compiled run to the end points (compile excluded)."""
    import jax
    import jax.numpy as jnp
    import optax

    jax.config.update("jax_enable_x64", True)
    optimizer = optax.adam(0.01)

    def total(p):  # noqa: ANN001, ANN202
        x, y = p[:, 0], p[:, 1]
        return jnp.sum((1 - x) ** 2 + 100 * (y - x * x) ** 2)

    def step(carry, _):  # noqa: ANN001, ANN202
        p, state = carry
        updates, state = optimizer.update(jax.grad(total)(p), state, p)
        return (optax.apply_updates(p, updates), state), None

    @jax.jit
    def final(p0):  # noqa: ANN001, ANN202
        (p, _), _ = jax.lax.scan(step, (p0, optimizer.init(p0)), None, length=STEPS)
        return p

    p0 = jnp.asarray(np.tile([-1.2, 1.0], (k, 1)))
    compiled = final.lower(p0).compile()
    return median_time(lambda: jax.block_until_ready(compiled(p0)), repeat=5)


def main() -> None:
    kernels.configure("numba", None, Path(tempfile.mkdtemp(prefix="optim-bench-kernels-")))
    rows = []
    jax_s = ({k: jax_final(k) for k in SIZES} if available("jax") and available("optax")
             else {})
    for name, loss in LOSSES.items():
        for k in SIZES:
            began = time.perf_counter()
            engine(loss, k, "fused")
            first = time.perf_counter() - began
            fused_s = median_time(lambda: engine(loss, k, "fused"), repeat=5)  # noqa: B023
            numpy_s = median_time(lambda: engine(loss, k, "vectorised"), repeat=5)  # noqa: B023
            threads = 2 if k >= PARALLEL_MIN_RUNS else 1
            theirs = jax_s.get(k)
            rows.append([name, f"{k:,}", f"{numpy_s * 1e3:.1f}",
                         f"{fused_s * 1e3:.1f} ({threads} thread{'s' * (threads > 1)})",
                         f"{numpy_s / fused_s:.2f}×", f"{first:.2f}",
                         "not installed" if theirs is None else f"{theirs * 1e3:.1f}",
                         "–" if theirs is None else f"{theirs / fused_s:.2f}×"])
    print(table("Fused kernels against the NumPy engine and JAX (Adam, 1,000 steps)",
                ["loss", "K", "NumPy ms", "fused ms", "vs NumPy", "first call s",
                 "JAX ms (1 thread)", "vs JAX"], rows))


if __name__ == "__main__":
    main()
