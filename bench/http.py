"""HTTP: requests/s of a 1-step optimize request and of a 1,000-step request with its
1,001-point trajectory, against a hello-world FastAPI app under the same uvicorn settings
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

from bench.common import table

ROOT = Path(__file__).resolve().parent.parent
HELLO = '''
from fastapi import FastAPI
app = FastAPI()
@app.get("/hello")
async def hello():
    return {"hello": "world"}
'''
ONE_STEP = {"loss": {"kind": "builtin", "name": "rosenbrock"}, "max_steps": 1,
            "optimizer": {"name": "adam"}}
THOUSAND = {"loss": {"kind": "builtin", "name": "rosenbrock"}, "max_steps": 1000,
            "optimizer": {"name": "adam", "lr": 0.01}, "stop": {"grad_tol": 0},
            "record": {"max_points": 1001}}


def _serve(args: list[str], port: int, cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", *args, "--port", str(port),
                             "--log-level", "warning", "--loop", "uvloop", "--http",
                             "httptools"], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env=os.environ | {"OPTIM_JOBS_DB_PATH": ":memory:"})
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc


async def _rate(url: str, method: str, body: dict | None, seconds: float = 5.0,
                clients: int = 16) -> float:
    done = 0
    until = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done
        async with httpx.AsyncClient(timeout=30) as c:
            while time.monotonic() < until:
                r = await c.request(method, url, json=body)
                r.raise_for_status()
                done += 1

    await asyncio.gather(*[client() for _ in range(clients)])
    return done / seconds


def _wrk(url: str, body: dict | None, tmp: str, seconds: int = 5, clients: int = 16
         ) -> float:
    """Requests/s from wrk, counting only 2xx answers."""
    args = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency"]
    if body is not None:
        script = Path(tmp, f"post{clients}.lua")
        script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                          f"wrk.body = {json.dumps(json.dumps(body))}\n")
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rate * (1 - (int(failed.group(1)) / total if failed else 0.0))


def main() -> str:
    use_wrk = shutil.which("wrk") is not None
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
            one = measure("http://127.0.0.1:8912/v1/optimize", "POST", ONE_STEP)
            thousand = measure("http://127.0.0.1:8912/v1/optimize", "POST", THOUSAND, clients=4)
        finally:
            for proc in (hello, ours):
                proc.terminate()
                proc.wait(10)
    rows = [["hello world (GET)", f"{hello_rate:,.0f}", "1.00×"],
            ["optimize, 1 step", f"{one:,.0f}", f"{one / hello_rate:.2f}×"],
            ["optimize, 1,000 steps + 1,001-point trajectory", f"{thousand:,.0f}",
             f"{thousand / hello_rate:.3f}×"]]
    client = "wrk, 1 thread" if use_wrk else "httpx clients (wrk not installed)"
    return table(f"HTTP on loopback, one uvicorn worker (uvloop + httptools), {client}",
                 ["request", "requests/s", "vs hello world"], rows)


if __name__ == "__main__":
    print(main())
