"""A large synchronous optimize end to end: 4,096 Adam runs × 1,000 steps on Rosenbrock over
HTTP (one uvicorn worker), against a torch.optim.Adam loop in process on the same work (which
records every step's parameters and loss in a tensor and reports nothing), with the request's
stages timed apart in process: plan, engine, reports (findings included), JSON.

Two recordings: the end points only (`max_points: 2`), and 100 points a run (a 40 MB answer;
a 1,000-point default would be over the synchronous `OPTIM_MAX_RECORDED_VALUES`).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from bench.common import available, median_time, table
from bench.engine import torch_adam
from bench.http import _serve

ROOT = Path(__file__).resolve().parent.parent
RUNS, STEPS = 4096, 1000
PORT = 8913


def _body(max_points: int) -> dict:
    return {"loss": {"kind": "builtin", "name": "rosenbrock"},
            "optimizer": {"name": "adam", "lr": 0.01},
            "start": {"random": {"n": RUNS, "seed": 1}}, "max_steps": STEPS,
            "stop": {"grad_tol": 0}, "record": {"max_points": max_points}}


def _stages(max_points: int, repeat: int = 5) -> dict[str, float]:
    """Median ms of each stage of the request, in process."""
    from optim_core import RecordSpec, StopCriteria, resolve_starts
    from optim_core.losses.catalog import builtin_loss
    from optim_core.plan import plan_optimize
    from optim_core.reports import optimize_report
    from optim_core.shards import EngineOptions, execute
    from service.jsonio import dumps

    loss = builtin_loss("rosenbrock")
    starts = resolve_starts(loss, {"random": {"n": RUNS, "seed": 1}})
    options = EngineOptions(STEPS, StopCriteria(grad_tol=0), RecordSpec(max_points=max_points),
                            None, 10)
    times: dict[str, list[float]] = {"plan": [], "engine": [], "reports": [], "JSON": []}
    for _ in range(repeat + 1):
        began = time.perf_counter()
        plan = plan_optimize(loss, [{"name": "adam", "lr": 0.01}], starts, options)
        planned = time.perf_counter()
        batch = execute(plan)
        ran = time.perf_counter()
        report = optimize_report(plan, batch, True)
        reported = time.perf_counter()
        dumps({"runs": report.runs})
        done = time.perf_counter()
        for name, spent in zip(times, (planned - began, ran - planned, reported - ran,
                                       done - reported), strict=True):
            spent_ms = spent * 1000
            times[name].append(spent_ms)
    return {name: sorted(values[1:])[repeat // 2] for name, values in times.items()}


def main() -> str:
    torch_ms = median_time(lambda: torch_adam(RUNS), repeat=5) * 1000 if available("torch") \
        else None
    server = _serve(["--factory", "service.main:create_app"], PORT, ROOT)
    rows = []
    try:
        with httpx.Client(timeout=120) as client:
            for points in (2, 100):
                body = _body(points)

                def request(body: dict = body) -> int:
                    answer = client.post(f"http://127.0.0.1:{PORT}/v1/optimize", json=body)
                    answer.raise_for_status()
                    return len(answer.content)

                size = request()
                http_ms = median_time(request, repeat=5) * 1000
                stages = _stages(points)
                ratio = "" if torch_ms is None else f"{torch_ms / http_ms:.2f}×"
                rows.append([f"{points}", f"{size / 1e6:.1f}", f"{http_ms:.0f}",
                             *(f"{stages[s]:.0f}" for s in ("plan", "engine", "reports",
                                                            "JSON")),
                             "skipped" if torch_ms is None else f"{torch_ms:.0f}", ratio])
    finally:
        server.terminate()
        server.wait(10)
    return table(f"Optimize of {RUNS:,} Adam runs × {STEPS:,} steps on Rosenbrock: over HTTP "
                 "against a torch.optim.Adam loop in process; the stages in process",
                 ["points a run", "answer MB", "HTTP ms", "plan ms", "engine ms",
                  "reports ms", "JSON ms", "torch ms", "vs torch"], rows)


if __name__ == "__main__":
    print(main())
