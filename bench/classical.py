"""The classical rules, batched, against a loop of scipy.optimize.minimize with the same method
(and torch.optim.LBFGS for lbfgs) on the N-d Rosenbrock from random starts in [−2, 2]ᵈ:
time, function evaluations per run (medians), and the share converged (gradient norm
≤ 1e-5 at the end, the same test for both).

    python -m bench.classical            # K = 1, 64, 1,024 at d = 2, 10, 50
    python -m bench.classical --quick    # K = 1, 64 at d = 2, 10

scipy's loops run one start after another; at K = 1,024 (and for d = 50) the loop's time
is measured on a sample of starts and scaled (`sampled`), its evaluations and share from that
sample. The HTTP row sends one optimize request at K = 1 to a server in this process
(uvicorn on loopback) against one `minimize` call in process.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common import available, median_time, table
from optim_core import StopCriteria, make_group, run
from optim_core.engine.recording import RecordSpec
from optim_core.losses.catalog import BuiltinLoss

TOL = 1e-5  # "converged": gradient norm at the end at most this, for both
GTOL = 1e-6  # both stop on it (ours: 2-norm; scipy: its gtol); neither on small changes
MAX_STEPS = {"lbfgs": 2000, "bfgs": 2000, "cg": 5000, "trust_region": 1000,
             "nelder_mead": 20000}
SCIPY = {"lbfgs": "L-BFGS-B", "bfgs": "BFGS", "cg": "CG", "trust_region": "trust-ncg",
         "nelder_mead": "Nelder-Mead"}
SAMPLE = 32  # starts scipy's loop times at large K, scaled to K


def _starts(d: int, k: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(-2, 2, size=(k, d))


def ours(name: str, d: int, k: int) -> tuple[float, float, float]:
    """(seconds, median evaluations, share converged) of one batched run."""
    loss = BuiltinLoss("rosenbrock", d)
    starts = _starts(d, k)
    settings = {"nelder_mead": {"xatol": 1e-8, "fatol": 1e-12},
                "lbfgs": {"tolerance_change": 1e-14}}.get(name, {})

    def once() -> Any:
        return run(loss, [make_group(name, [settings] * k)], starts, max_steps=MAX_STEPS[name],
                   stop=StopCriteria(grad_tol=GTOL), record=RecordSpec(enabled=False))

    heavy = k > 64 and (d >= 50 or (name == "nelder_mead" and d >= 10))  # seconds a run
    seconds = median_time(once, repeat=1 if heavy else 3)  # a single timing drifted ±15%
    batch = once()
    _, grads = loss.value_grad(batch.final_params)
    share = float(np.mean(np.linalg.norm(grads, axis=1) <= TOL))
    evals = batch.counters["func_evals"]
    return seconds, float(np.median(evals)), share


def scipy_loop(name: str, d: int, k: int) -> tuple[float, float, float, bool]:
    """(seconds for K starts, median nfev, share converged, sampled?) of scipy's loop."""
    from scipy.optimize import minimize

    loss = BuiltinLoss("rosenbrock", d)
    starts = _starts(d, k)
    sampled = k > SAMPLE or (d >= 50 and k > 1)
    chosen = starts[:SAMPLE] if sampled else starts
    method = SCIPY[name]
    fun = lambda x: float(loss.value(x[None])[0])  # noqa: E731
    jac = lambda x: loss.value_grad(x[None])[1][0]  # noqa: E731
    hess = lambda x: loss.hess(x[None])[0]  # noqa: E731
    options = _scipy_options(name)
    kwargs = {} if name == "nelder_mead" else {"jac": jac}
    if name == "trust_region":
        kwargs["hess"] = hess
    nfev, done = [], 0
    began = time.perf_counter()
    for start in chosen:
        result = minimize(fun, start, method=method, options=options, **kwargs)
        nfev.append(result.nfev)
        done += float(np.linalg.norm(jac(result.x))) <= TOL
    seconds = (time.perf_counter() - began) * (k / len(chosen))
    return seconds, float(np.median(nfev)), done / len(chosen), sampled


def _scipy_options(name: str) -> dict[str, Any]:
    options: dict[str, Any] = {"maxiter": MAX_STEPS[name]}
    if name == "nelder_mead":
        return options | {"xatol": 1e-8, "fatol": 1e-12, "maxfev": 10**7}
    options["gtol"] = GTOL
    if name == "lbfgs":
        options["ftol"] = 1e-15
    return options


def torch_lbfgs_loop(d: int, k: int) -> float:
    import torch

    starts = _starts(d, k)[: min(k, SAMPLE)]
    began = time.perf_counter()
    for start in starts:
        p = torch.tensor(start, requires_grad=True)
        opt = torch.optim.LBFGS([p], max_iter=1, max_eval=26, history_size=10,
                                tolerance_change=1e-14, line_search_fn="strong_wolfe")

        def closure(p: Any = p, opt: Any = opt) -> Any:
            opt.zero_grad()
            x = p
            value = torch.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
            value.backward()
            return value

        previous = None
        for _ in range(MAX_STEPS["lbfgs"]):
            value = float(opt.step(closure))
            if float(p.grad.norm()) <= GTOL or value == previous:  # converged, or stuck
                break
            previous = value
    return (time.perf_counter() - began) * k / len(starts)


def http_one(name: str) -> tuple[float, float]:
    """(one optimize request at K = 1 on 10-D Rosenbrock, one minimize call in process)."""
    import httpx
    from scipy.optimize import minimize

    from tests.conftest import start_server

    proc, url = start_server({"OPTIM_LOG_LEVEL": "warning"})
    try:
        start = _starts(10, 1)[0].tolist()
        body = {"loss": {"kind": "builtin", "name": "rosenbrock", "dim": 10}, "start": start,
                "optimizer": {"name": name}, "max_steps": MAX_STEPS[name],
                "stop": {"grad_tol": GTOL},
                "record": {"fields": ["loss"], "max_points": 2}}
        with httpx.Client(timeout=60) as client:
            request = median_time(lambda: client.post(f"{url}/v1/optimize", json=body), repeat=7)
    finally:
        proc.terminate()
        proc.wait(10)
    loss = BuiltinLoss("rosenbrock", 10)
    kwargs: dict[str, Any] = {"jac": lambda x: loss.value_grad(x[None])[1][0]}
    if name == "trust_region":
        kwargs["hess"] = lambda x: loss.hess(x[None])[0]
    if name == "nelder_mead":
        kwargs = {}
    once: Callable[[], Any] = lambda: minimize(  # noqa: E731
        lambda x: float(loss.value(x[None])[0]), np.array(start), method=SCIPY[name],
        options=_scipy_options(name), **kwargs)
    return request, median_time(once, repeat=7)


def main(quick: bool = False) -> str:
    have_scipy, have_torch = available("scipy"), available("torch")
    cases = [(2, 1), (2, 64), (10, 1), (10, 64)] if quick else \
        [(2, 1), (2, 64), (2, 1024), (10, 1), (10, 64), (10, 1024), (50, 64), (50, 1024)]
    rows = []
    for name in SCIPY:
        for d, k in cases:
            if name == "nelder_mead" and d == 50:
                continue  # scipy's simplex needs ~10⁵ evaluations a start there: not a contest
            mine, evals, share = ours(name, d, k)
            if not have_scipy:
                rows.append([name, str(d), f"{k:,}", f"{mine * 1000:.1f}", f"{evals:.0f}",
                             f"{share:.0%}", "scipy not installed", "–", "–", "–", "–"])
                continue
            theirs, their_evals, their_share, sampled = scipy_loop(name, d, k)
            torch_note = "–"
            if name == "lbfgs" and have_torch and d <= 10:
                torch_note = f"{torch_lbfgs_loop(d, k) / mine:.1f}×"
            rows.append([name, str(d), f"{k:,}", f"{mine * 1000:.1f}", f"{evals:.0f}",
                         f"{share:.0%}", f"{theirs * 1000:.0f}" + (" (sampled)" if sampled else ""),
                         f"{their_evals:.0f}", f"{their_share:.0%}", f"{theirs / mine:.1f}×",
                         torch_note])
    out = table("Classical rules on N-d Rosenbrock from random starts: ours batched against "
                "a loop of scipy.optimize.minimize (same method)",
                ["rule", "d", "K", "ours ms", "ours evals", "ours converged", "scipy ms",
                 "scipy evals", "scipy converged", "speed-up vs scipy",
                 "vs torch LBFGS loop"], rows)
    if have_scipy:
        http_rows = []
        for name in SCIPY:
            request, call = http_one(name)
            http_rows.append([name, f"{request * 1000:.1f}", f"{call * 1000:.1f}",
                              f"{call / request:.2f}×"])
        out += "\n" + table("K = 1 over HTTP (one optimize request, 10-D Rosenbrock) against "
                            "one minimize call in process",
                            ["rule", "request ms", "scipy call ms", "ratio"], http_rows)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(main(parser.parse_args().quick))
