"""Engine throughput: Adam on 2-D Rosenbrock, 1,000 steps, full trajectory recorded, K runs,
through the public optim_core API, against torch.optim.Adam with autograd on a (K, 2) tensor
recording the same trajectory, and JAX (jit + lax.scan with optax, float64, the trajectory as
the scan's output; compile time reported apart). Both baselines are optional: skipped with a
note when not installed (`pip install "jax[cpu]" optax`)."""

from __future__ import annotations

import time

import numpy as np

from bench.common import available, median_time, table
from optim_core import RecordSpec, StopCriteria, make_group, run
from optim_core.losses.catalog import BuiltinLoss

STEPS = 1000
SIZES = (1, 16, 256, 4096, 65536)


def ours(k: int) -> None:
    starts = np.tile([-1.2, 1.0], (k, 1))
    run(BuiltinLoss("rosenbrock"), [make_group("adam", [{"lr": 0.01}] * k)], starts,
        max_steps=STEPS, stop=StopCriteria(grad_tol=0),
        record=RecordSpec(max_points=STEPS + 1, fields=("params", "loss")))


def torch_adam(k: int) -> None:
    import torch

    p = torch.tensor(np.tile([-1.2, 1.0], (k, 1)), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.01)
    params = torch.empty((STEPS + 1, k, 2), dtype=torch.float64)
    losses = torch.empty((STEPS + 1, k), dtype=torch.float64)
    for t in range(STEPS + 1):
        opt.zero_grad()
        x, y = p[:, 0], p[:, 1]
        f = (1 - x) ** 2 + 100 * (y - x * x) ** 2
        params[t] = p.detach()
        losses[t] = f.detach()
        if t < STEPS:
            f.sum().backward()
            opt.step()


def jax_adam(k: int) -> tuple[float, float]:
    """(compile seconds, median run seconds) of a jit-compiled lax.scan over the steps."""
    import jax
    import jax.numpy as jnp
    import optax

    jax.config.update("jax_enable_x64", True)
    optimizer = optax.adam(0.01)

    def losses(p):  # noqa: ANN001, ANN202
        x, y = p[:, 0], p[:, 1]
        return (1 - x) ** 2 + 100 * (y - x * x) ** 2

    def step(carry, _):  # noqa: ANN001, ANN202
        p, state = carry
        values, grads = jax.value_and_grad(lambda q: jnp.sum(losses(q)))(p)
        updates, state = optimizer.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), (p, losses(p))

    @jax.jit
    def trajectory(p0):  # noqa: ANN001, ANN202
        (p, _), (params, values) = jax.lax.scan(step, (p0, optimizer.init(p0)), None,
                                                length=STEPS)
        return (jnp.concatenate([params, p[None]]),
                jnp.concatenate([values, losses(p)[None]]))

    p0 = jnp.asarray(np.tile([-1.2, 1.0], (k, 1)))
    began = time.perf_counter()
    compiled = trajectory.lower(p0).compile()
    compile_s = time.perf_counter() - began
    run_s = median_time(lambda: jax.block_until_ready(compiled(p0)),
                        repeat=5 if k <= 4096 else 2)
    return compile_s, run_s


def main(sizes: tuple[int, ...] = SIZES) -> str:
    have_torch, have_jax = available("torch"), available("jax") and available("optax")
    rows = []
    for k in sizes:
        repeat = 5 if k <= 4096 else 2
        mine = median_time(lambda k=k: ours(k), repeat=repeat)
        theirs = median_time(lambda k=k: torch_adam(k), repeat=repeat) if have_torch else None
        row = [f"{k:,}", f"{mine * 1000:.1f}",
               "skipped (torch not installed)" if theirs is None else f"{theirs * 1000:.1f}",
               "–" if theirs is None else f"{theirs / mine:.2f}×"]
        if have_jax:
            compile_s, run_s = jax_adam(k)
            row += [f"{run_s * 1000:.1f}", f"{compile_s * 1000:.0f}", f"{run_s / mine:.2f}×",
                    f"{(run_s + compile_s) / mine:.2f}×"]
        else:
            row += ["skipped (jax not installed)", "–", "–", "–"]
        rows.append(row)
    return table("Engine: Adam on Rosenbrock, 1,000 steps with the full trajectory",
                 ["K runs", "optim_core ms", "torch.optim.Adam ms", "vs torch", "JAX run ms",
                  "JAX compile ms", "vs JAX run", "vs JAX incl. compile"], rows)


if __name__ == "__main__":
    print(main())
