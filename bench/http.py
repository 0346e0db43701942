"""HTTP: requests/s of what users send (a 1-step optimize, a 1,000-step optimize with its
1,001-point trajectory, a compare of three optimizers, an analyze), each on the builtin
Rosenbrock and on the same function typed as an expression (cached after its first request),
against a hello-world FastAPI app under the same uvicorn settings
(uvloop + httptools), measured on loopback with wrk (Debian's package; one client thread, so
the server keeps the other core) when it is installed, else with a bounded asyncio httpx load.
The httpx client needs more CPU per request than the servers it measures, so its ratios come
out much closer to 1 than wrk's: compare like with like."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import available, median_time, table
from bench.engine import torch_adam

ROOT = Path(__file__).resolve().parent.parent
HELLO = '''
from fastapi import FastAPI
app = FastAPI()
@app.get("/hello")
async def hello():
    return {"hello": "world"}
'''
ROSENBROCK = "(1-x)^2 + 100*(y-x^2)^2"
LOSSES = {"builtin": {"loss": {"kind": "builtin", "name": "rosenbrock"}},
          "expression": {"loss": {"kind": "expression", "expression": ROSENBROCK},
                         "start": [-1.2, 1.0]}}
REQUESTS = {  # name: (path, body without the loss, wrk clients)
    "optimize, 1 step": ("/v1/optimize", {"max_steps": 1, "optimizer": {"name": "adam"}}, 16),
    "optimize, 1,000 steps + 1,001-point trajectory": (
        "/v1/optimize", {"max_steps": 1000, "optimizer": {"name": "adam", "lr": 0.01},
                         "stop": {"grad_tol": 0}, "record": {"max_points": 1001}}, 4),
    "compare of sgd, momentum, adam (300 steps)": (
        "/v1/compare", {"max_steps": 300, "optimizers": [
            {"name": "sgd", "lr": 0.001}, {"name": "momentum", "lr": 0.001},
            {"name": "adam", "lr": 0.01}]}, 4),
    "analyze, one point": ("/v1/analyze", {"points": [[-1.2, 1.0]]}, 16),
}
THOUSAND = "optimize, 1,000 steps + 1,001-point trajectory"


def _serve(args: list[str], port: int, cwd: Path, env: dict[str, str] | None = None
           ) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", *args, "--port", str(port),
                             "--log-level", "warning", "--loop", "uvloop", "--http",
                             "httptools"], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env=os.environ | {"OPTIM_JOBS_DB_PATH": ":memory:"} | (env or {}))
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc


async def _rate(url: str, method: str, body: dict | None, seconds: float = 5.0,
                clients: int = 16, headers: dict[str, str] | None = None) -> float:
    done = 0
    until = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done
        async with httpx.AsyncClient(timeout=30) as c:
            while time.monotonic() < until:
                r = await c.request(method, url, json=body, headers=headers)
                r.raise_for_status()
                done += 1

    await asyncio.gather(*[client() for _ in range(clients)])
    return done / seconds


def _wrk(url: str, body: dict | None, tmp: str, seconds: int = 5, clients: int = 16,
         headers: dict[str, str] | None = None) -> float:
    """Requests/s from wrk, counting only 2xx answers."""
    args = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency"]
    if body is not None:
        script = Path(tmp, f"post{clients}-{len(headers or {})}.lua")
        extra = "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n"
                        for k, v in (headers or {}).items())
        script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                          f"wrk.body = {json.dumps(json.dumps(body))}\n{extra}")
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rate * (1 - (int(failed.group(1)) / total if failed else 0.0))


def _body(request: str, loss: str) -> dict:
    path, body, _ = REQUESTS[request]
    spec = dict(LOSSES[loss])
    if path == "/v1/analyze":
        spec.pop("start", None)
    return spec | body


def _in_process_ms(request: str, loss: str, repeat: int = 200) -> float:
    """Median ms of one request through the ASGI app in this process (no sockets)."""
    from service.main import create_app
    from service.settings import Settings

    app = create_app(Settings(jobs_db_path=":memory:", symbolic_isolation=False))
    path, body = REQUESTS[request][0], _body(request, loss)

    async def measure() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
            for _ in range(10):  # the first answers the cache miss
                (await c.post(path, json=body)).raise_for_status()
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                (await c.post(path, json=body)).raise_for_status()
                times.append(time.perf_counter() - began)
        return sorted(times)[len(times) // 2] * 1000

    return asyncio.run(measure())


def main() -> str:
    use_wrk = shutil.which("wrk") is not None
    rates: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "hello_app.py").write_text(HELLO)
        hello = _serve(["hello_app:app"], 8911, Path(tmp))
        ours = _serve(["--factory", "service.main:create_app"], 8912, ROOT)

        def measure(url: str, method: str, body: dict | None, clients: int = 16) -> float:
            if use_wrk:
                return _wrk(url, body, tmp, clients=clients)
            return asyncio.run(_rate(url, method, body, clients=clients))

        try:
            hello_rate = measure("http://127.0.0.1:8911/hello", "GET", None)
            for request, (path, _, clients) in REQUESTS.items():
                for loss in LOSSES:
                    body = _body(request, loss)
                    httpx.post(f"http://127.0.0.1:8912{path}", json=body,
                               timeout=30).raise_for_status()  # a cached expression
                    rates[request, loss] = measure(f"http://127.0.0.1:8912{path}", "POST",
                                                   body, clients=clients)
        finally:
            for proc in (hello, ours):
                proc.terminate()
                proc.wait(10)
    rows = [["hello world (GET)", f"{hello_rate:,.0f}", "", "1.00×", ""]]
    for request in REQUESTS:
        builtin, expression = rates[request, "builtin"], rates[request, "expression"]
        rows.append([request, f"{builtin:,.0f}", f"{expression:,.0f}",
                     f"{builtin / hello_rate:.3f}×", f"{expression / builtin:.2f}×"])
    client = "wrk, 1 thread" if use_wrk else "httpx clients (wrk not installed)"
    out = table(f"HTTP on loopback, one uvicorn worker (uvloop + httptools), {client}; "
                f"Rosenbrock as the builtin and as the expression `{ROSENBROCK}` (cached)",
                ["request", "builtin req/s", "expression req/s", "builtin vs hello world",
                 "expression vs builtin"], rows)
    in_process = [[request, f"{_in_process_ms(request, 'builtin'):.2f}",
                   f"{_in_process_ms(request, 'expression'):.2f}"] for request in REQUESTS]
    out += "\n" + table("The same requests in process (ASGI, no sockets), median ms",
                         ["request", "builtin ms", "expression ms"], in_process)
    if available("torch"):
        torch_ms = median_time(lambda: torch_adam(1), repeat=5) * 1000
        per_request = [1000 / rates[THOUSAND, loss] for loss in LOSSES]
        out += "\n" + table(
            "1,000 Adam steps at K = 1 with the trajectory: over HTTP (1 / throughput of the "
            "request above) against a torch.optim.Adam loop in process",
            ["loss", "HTTP ms per request", "torch.optim.Adam ms", "vs torch"],
            [[loss, f"{ms:.2f}", f"{torch_ms:.1f}", f"{torch_ms / ms:.1f}×"]
             for loss, ms in zip(LOSSES, per_request, strict=True)])
    return out
