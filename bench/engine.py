"""Engine throughput: Adam on 2-D Rosenbrock, 1,000 steps, full trajectory recorded, K runs,
through the public optim_core API, against torch.optim.Adam with autograd on a (K, 2) tensor
recording the same trajectory (optional: skipped with a note when torch is missing)."""

from __future__ import annotations

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


def main(sizes: tuple[int, ...] = SIZES) -> str:
    have_torch = available("torch")
    rows = []
    for k in sizes:
        repeat = 5 if k <= 4096 else 2
        mine = median_time(lambda k=k: ours(k), repeat=repeat)
        theirs = median_time(lambda k=k: torch_adam(k), repeat=repeat) if have_torch else None
        rows.append([f"{k:,}", f"{mine * 1000:.1f}",
                     "skipped (torch not installed)" if theirs is None else f"{theirs * 1000:.1f}",
                     "–" if theirs is None else f"{theirs / mine:.2f}×"])
    return table("Engine: Adam on Rosenbrock, 1,000 steps with the full trajectory",
                 ["K runs", "optim_core ms", "torch.optim.Adam ms", "speed-up"], rows)


if __name__ == "__main__":
    print(main())
