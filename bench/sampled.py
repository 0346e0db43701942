"""Sampled losses: minibatch SGD with momentum on least squares (n = 100,000, p = 50,
batch 256, 10 epochs), one run and 32 runs with their own shuffles, against a hand-written
torch loop on the CPU doing the same. optim_core also records the full-batch loss once per
epoch (11 points, each a pass over all rows for every run); the torch loop records nothing."""

from __future__ import annotations

import numpy as np

from bench.common import available, median_time, table
from optim_core import RecordSpec, StopCriteria, make_group, run
from optim_core.losses.dataset import DatasetLoss, synthetic

N, P, BATCH, EPOCHS = 100_000, 50, 256, 10
STEPS = EPOCHS * -(-N // BATCH)


def _data() -> tuple[np.ndarray, np.ndarray]:
    return synthetic("linear", N, P, 0.5, seed=0)


def ours(k: int, X: np.ndarray, y: np.ndarray) -> None:
    loss = DatasetLoss("linear", X, y, batch_size=BATCH)
    run(loss, [make_group("momentum", [{"lr": 0.01, "momentum": 0.9}] * k)],
        np.zeros((k, loss.dim)), max_steps=STEPS, stop=StopCriteria(grad_tol=0),
        record=RecordSpec(max_points=EPOCHS + 1, fields=("loss",)), seed=0, eval_every=10**9)


def torch_loop(k: int, X: np.ndarray, y: np.ndarray) -> None:
    import torch

    Xt = torch.tensor(np.hstack([X, np.ones((N, 1))]))
    yt = torch.tensor(y)
    w = torch.zeros((k, P + 1), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    for _ in range(EPOCHS):
        perms = torch.stack([torch.randperm(N, generator=generator) for _ in range(k)])
        for start in range(0, N, BATCH):
            idx = perms[:, start:start + BATCH]  # (k, B)
            xb, yb = Xt[idx], yt[idx]  # (k, B, p + 1), (k, B)
            opt.zero_grad()
            residual = torch.einsum("kbi,ki->kb", xb, w) - yb
            (residual.pow(2).mean(dim=1).sum()).backward()
            opt.step()


def main() -> str:
    X, y = _data()
    have_torch = available("torch")
    rows = []
    for k in (1, 32):
        mine = median_time(lambda k=k: ours(k, X, y), repeat=3)
        theirs = median_time(lambda k=k: torch_loop(k, X, y), repeat=3) if have_torch else None
        rows.append([str(k), f"{mine * 1000:.0f}",
                     "skipped (torch not installed)" if theirs is None else f"{theirs * 1000:.0f}",
                     "–" if theirs is None else f"{theirs / mine:.2f}×"])
    return table(f"Minibatch SGD + momentum, least squares n = {N:,}, p = {P}, batch {BATCH}, "
                 f"{EPOCHS} epochs ({STEPS:,} steps)",
                 ["K runs (own shuffles)", "optim_core ms", "torch loop ms", "speed-up"], rows)


if __name__ == "__main__":
    print(main())
