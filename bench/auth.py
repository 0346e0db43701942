"""What keys cost: a 1-step optimize (what a teaching page sends on every slider move) with
OPTIM_AUTH=none against OPTIM_AUTH=api_key, the key carrying a rate and a compute-seconds
limit so the quota path runs too. Two measures, each side by side in the same run: the
median time of one request through the ASGI app in this process (no sockets: the server's
own cost, where the check's share is largest), and requests/s over loopback against two
uvicorn servers (wrk when installed, else an asyncio httpx load). Target: auth on costs at
most 5% of the requests/s."""

from __future__ import annotations

import asyncio
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import table
from bench.http import _rate, _wrk
from bench.http import _serve as _serve_app

ROOT = Path(__file__).resolve().parent.parent
BODY = {"loss": {"kind": "builtin", "name": "rosenbrock"}, "max_steps": 1,
        "optimizer": {"name": "adam"}}
LIMITS = {"rate": 1e6, "compute_seconds": 1e6}


def _in_process_ms(auth: bool, repeat: int = 400) -> float:
    from service.auth import KeyLimits
    from service.main import create_app
    from service.settings import Settings

    app = create_app(Settings(jobs_db_path=":memory:", auth="api_key" if auth else "none"))

    async def measure() -> float:
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=transport, base_url="http://bench") as c:
            headers = {}
            if auth:
                _, key = app.state.auth.keys.create("bench", ["compute"],
                                                    limits=KeyLimits(**LIMITS))
                headers = {"Authorization": f"Bearer {key}"}
            for _ in range(200):  # warm: the loss cache, the key cache, the allocator
                await c.post("/v1/optimize", json=BODY, headers=headers)
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                r = await c.post("/v1/optimize", json=BODY, headers=headers)
                times.append(time.perf_counter() - start)
                assert r.status_code == 200, r.text
            return statistics.median(times) * 1000

    return asyncio.run(measure())


def _serve(port: int, env: dict[str, str]) -> subprocess.Popen:
    return _serve_app(["--factory", "service.main:create_app"], port, ROOT, env)


def _http_rates(rounds: int = 3) -> tuple[float, float, str]:
    """Median requests/s of (auth off, auth on), alternating so drift hits both."""
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        admin = secrets.token_urlsafe(32)
        Path(tmp, "admin").write_text(admin)
        off = _serve(8921, {"OPTIM_AUTH": "none"})
        on = _serve(8922, {"OPTIM_AUTH": "api_key",
                           "OPTIM_BOOTSTRAP_ADMIN_KEY_FILE": str(Path(tmp, "admin"))})
        try:
            made = httpx.post("http://127.0.0.1:8922/v1/keys", json={
                "name": "bench", "scopes": ["compute"], **LIMITS},
                headers={"Authorization": f"Bearer {admin}"}).json()
            key = made["key"]
            rates: dict[bool, list[float]] = {False: [], True: []}
            use_wrk = shutil.which("wrk") is not None
            for _ in range(rounds):
                for auth, port in ((False, 8921), (True, 8922)):
                    url = f"http://127.0.0.1:{port}/v1/optimize"
                    headers = {"Authorization": f"Bearer {key}"} if auth else {}
                    if use_wrk:
                        rates[auth].append(_wrk(url, BODY, tmp, headers=headers))
                    else:
                        rates[auth].append(asyncio.run(
                            _rate(url, "POST", BODY, seconds=4, headers=headers)))
            tool = "wrk" if use_wrk else "httpx"
            return statistics.median(rates[False]), statistics.median(rates[True]), tool
        finally:
            for proc in (off, on):
                proc.terminate()
                proc.wait(10)


def main() -> str:
    pairs = [(_in_process_ms(False), _in_process_ms(True)) for _ in range(3)]  # alternating
    off_ms = statistics.median(p[0] for p in pairs)
    on_ms = statistics.median(p[1] for p in pairs)
    off_rate, on_rate, tool = _http_rates(rounds=5)
    rows = [["in process (ASGI), ms per request", f"{off_ms:.3f}", f"{on_ms:.3f}",
             f"{on_ms / off_ms:.3f}×"],
            [f"loopback ({tool}), requests/s", f"{off_rate:.0f}", f"{on_rate:.0f}",
             f"{on_rate / off_rate:.3f}×"]]
    return (table("Keys: a 1-step optimize with auth off and on",
                  ["measure", "OPTIM_AUTH=none", "OPTIM_AUTH=api_key", "on / off"], rows)
            + "\nThe key carries a rate and a compute-seconds limit (both far above the load), "
            "so every request takes the key check (cached) and the quota book.\n")


if __name__ == "__main__":
    print(main())
