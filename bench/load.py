"""Load: N concurrent clients on loopback for a bounded time, mixing small optimize
requests, comparisons, heavy sweeps and hostile expressions.

    python -m bench.load                    # 64 clients, 60 s, against a server it starts
    python -m bench.load --seconds 10 --url http://127.0.0.1:8000

Reports throughput, p50/p99 latency per kind, statuses (429 rejections, 5xx), and the
server's peak RSS (when it started the server). Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RAVINE = {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"}
KINDS = {
    "small_optimize": (0.55, "/v1/optimize", {
        "loss": {"kind": "builtin", "name": "rosenbrock"}, "max_steps": 200,
        "optimizer": {"name": "adam", "lr": 0.02}, "record": {"max_points": 50}}),
    "compare": (0.15, "/v1/compare", {
        "loss": RAVINE, "start": [-8, 1], "max_steps": 500, "record": {"max_points": 100},
        "optimizers": [{"name": "sgd", "lr": 0.0196}, {"name": "momentum", "lr": 0.0196},
                       {"name": "adam", "lr": 0.1}]}),
    "heavy_sweep": (0.10, "/v1/sweep", {
        "loss": {"kind": "builtin", "name": "rosenbrock"}, "optimizer": {"name": "momentum"},
        "grid": {"lr": [1e-4, 3e-4, 1e-3, 2e-3], "momentum": [0.0, 0.5, 0.9, 0.95]},
        "start": {"random": {"n": 64, "low": -2, "high": 2, "seed": 1}}, "max_steps": 2000}),
    "hostile": (0.20, "/v1/optimize", None),
}
HOSTILE = ["9**9**9**9", "__import__('os').system('id')", "x.__class__", "(" * 250 + "x",
           "1e999*x", "foo(x)", "x +", "-" * 3000 + "x", "((9**9)**9999)**9999 + y"]


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    errors: Counter = field(default_factory=Counter)


def _body(kind: str, rng: random.Random) -> tuple[str, dict]:
    _, path, body = KINDS[kind]
    if body is None:
        return path, {"loss": {"kind": "expression", "expression": rng.choice(HOSTILE)},
                      "start": [1.0, 1.0]}
    return path, body


async def _client(url: str, until: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    names, weights = list(KINDS), [w for w, _, _ in KINDS.values()]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < until:
            kind = rng.choices(names, weights)[0]
            path, body = _body(kind, rng)
            began = time.perf_counter()
            try:
                r = await client.post(path, json=body)
            except httpx.HTTPError as exc:
                tally.errors[type(exc).__name__] += 1
                continue
            tally.latencies[kind].append(time.perf_counter() - began)
            tally.statuses[kind][r.status_code] += 1
            if r.status_code == 429:
                await asyncio.sleep(float(r.headers.get("retry-after", "1")) * rng.random())


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _start_server() -> tuple[subprocess.Popen, str]:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import start_server

    return start_server({"OPTIM_JOBS_DB_PATH": "/tmp/optim-load-jobs.sqlite3",
                         "OPTIM_LOG_LEVEL": "warning"})


async def run_load(url: str, clients: int, seconds: float) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    await asyncio.gather(*[_client(url, until, tally, seed) for seed in range(clients)])
    return tally


def report(tally: Tally, seconds: float, rss: float | None) -> str:
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}; {seconds:g} s",
             "| kind | requests | req/s | p50 ms | p99 ms | statuses |",
             "|---|---|---|---|---|---|"]
    total = 0
    for kind in KINDS:
        values = sorted(tally.latencies.get(kind, []))
        if not values:
            continue
        total += len(values)
        p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(tally.statuses[kind].items()))
        lines.append(f"| {kind} | {len(values)} | {len(values) / seconds:.1f} | "
                     f"{statistics.median(values) * 1000:.1f} | {p99 * 1000:.1f} | {statuses} |")
    lines.append(f"total {total} requests, {total / seconds:.1f} req/s; transport errors: "
                 f"{dict(tally.errors) or 'none'}; server peak RSS: "
                 f"{'n/a' if rss is None else f'{rss:.0f} MB'}")
    return "\n".join(lines)


def server_errors(tally: Tally) -> int:
    return sum(n for c in tally.statuses.values() for s, n in c.items() if s >= 500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    proc = None
    url = args.url
    if url is None:
        proc, url = _start_server()
    try:
        tally = asyncio.run(run_load(url, args.clients, args.seconds))
        alive = httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        rss = _peak_rss_mb(proc.pid) if proc else None
        print(report(tally, args.seconds, rss))
        print(f"server errors (5xx): {server_errors(tally)}; answers afterwards: {alive}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
