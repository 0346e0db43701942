"""HTTP: requests/s of a 1-step optimize request and of a 1,000-step request with its
1,001-point trajectory, against a hello-world FastAPI app under the same uvicorn settings
(uvloop + httptools), measured with a bounded asyncio httpx load on loopback."""

from __future__ import annotations

import asyncio
import os
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


def main() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "hello_app.py").write_text(HELLO)
        hello = _serve(["hello_app:app"], 8911, Path(tmp))
        ours = _serve(["--factory", "service.main:create_app"], 8912, ROOT)
        try:
            hello_rate = asyncio.run(_rate("http://127.0.0.1:8911/hello", "GET", None))
            one = asyncio.run(_rate("http://127.0.0.1:8912/v1/optimize", "POST", ONE_STEP))
            thousand = asyncio.run(_rate("http://127.0.0.1:8912/v1/optimize", "POST", THOUSAND,
                                         clients=4))
        finally:
            for proc in (hello, ours):
                proc.terminate()
                proc.wait(10)
    rows = [["hello world (GET)", f"{hello_rate:,.0f}", "1.00×"],
            ["optimize, 1 step", f"{one:,.0f}", f"{one / hello_rate:.2f}×"],
            ["optimize, 1,000 steps + 1,001-point trajectory", f"{thousand:,.0f}",
             f"{thousand / hello_rate:.3f}×"]]
    return table("HTTP on loopback, one uvicorn worker (uvloop + httptools), httpx clients",
                 ["request", "requests/s", "vs hello world"], rows)


if __name__ == "__main__":
    print(main())
