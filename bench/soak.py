"""A job soak: 1,000 jobs on two replicas sharing one job store, one replica killed (-9)
midway and started again. Every job must end `succeeded` once, with the answer the
synchronous endpoint gives for its request (jobs are deterministic, re-runs included).

    python -m bench.soak                         # two replicas on one SQLite file
    python -m bench.soak --db-url postgresql://… # on a PostgreSQL you started
    python -m bench.soak --jobs 200              # shorter
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import table

ROOT = Path(__file__).resolve().parent.parent


def _request(i: int) -> dict:
    """Job i: a small compare whose answer depends on i (its random starts)."""
    return {"loss": {"kind": "expression", "expression": "(1-x)^2 + 100*(y-x^2)^2"},
            "start": {"random": {"n": 4, "low": -2, "high": 2, "seed": i}},
            "optimizers": [{"name": "adam", "lr": 0.02}, {"name": "momentum", "lr": 5e-4}],
            "max_steps": 3000, "record": {"max_points": 20}}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(env: dict[str, str], port: int) -> subprocess.Popen:
    log = tempfile.NamedTemporaryFile("w+b", prefix=f"soak-{port}-", suffix=".log",
                                      delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT,
                            env=os.environ | env | {"OPTIM_PORT": str(port),
                                                    "OPTIM_HOST": "127.0.0.1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"replica on {port} did not start (log: {log.name})")


def _without_elapsed(answer: dict) -> dict:
    answer["meta"].pop("elapsed_ms", None)
    return answer


def main(jobs: int = 1000, db_url: str | None = None) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"OPTIM_JOB_LEASE_S": "3", "OPTIM_JOB_MAX_ACTIVE": str(jobs + 10),
               "OPTIM_JOB_MAX_ATTEMPTS": "3", "OPTIM_LOG_LEVEL": "warning"}
        env |= ({"OPTIM_JOBS_DB_URL": db_url} if db_url else
                {"OPTIM_JOBS_DB_PATH": str(Path(tmp) / "jobs.sqlite3")})
        ports = [_port(), _port()]
        replicas = [_start(env, port) for port in ports]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        began = time.perf_counter()
        ids = []
        with httpx.Client(timeout=30) as client:
            for i in range(jobs):
                r = client.post(f"{urls[i % 2]}/v1/jobs", json={"kind": "compare",
                                                              "request": _request(i)})
                r.raise_for_status()
                ids.append(r.json()["id"])
            submitted = time.perf_counter() - began
            # kill replica 0 once about a third of the jobs are done, then start it again
            while _count(client, urls[1], ids, ("succeeded",)) < jobs // 3:
                time.sleep(0.2)
            replicas[0].send_signal(signal.SIGKILL)
            replicas[0].wait()
            killed_at = time.perf_counter() - began
            replicas[0] = _start(env, ports[0])
            while _count(client, urls[1], ids, ("succeeded", "failed", "cancelled")) < jobs:
                time.sleep(0.5)
            finished = time.perf_counter() - began
            states = [client.get(f"{urls[1]}/v1/jobs/{job_id}").json() for job_id in ids]
            wrong = _check_results(client, urls, ids)
        for proc in replicas:
            proc.terminate()
            proc.wait(15)
    statuses = {s["status"] for s in states}
    rerun = sum(s["attempts"] > 1 for s in states)
    rows = [[f"{jobs:,}", "PostgreSQL" if db_url else "SQLite (one file)",
             f"{submitted:.1f}", f"{killed_at:.1f}", f"{finished:.1f}",
             ", ".join(sorted(statuses)), str(rerun), str(max(s["attempts"] for s in states)),
             str(wrong)]]
    return table("Job soak: two replicas, one killed (-9) and restarted midway",
                 ["jobs", "store", "all submitted s", "killed at s", "all done s",
                  "statuses", "jobs run again", "max attempts", "results ≠ synchronous"], rows)


def _count(client: httpx.Client, url: str, ids: list[str], statuses: tuple[str, ...]) -> int:
    def status(job_id: str) -> str:
        return client.get(f"{url}/v1/jobs/{job_id}").json()["status"]

    with ThreadPoolExecutor(8) as pool:
        return sum(s in statuses for s in pool.map(status, ids))


def _check_results(client: httpx.Client, urls: list[str], ids: list[str]) -> int:
    """Jobs whose stored result differs from the synchronous answer to the same request."""
    def differs(i: int) -> bool:
        stored = client.get(f"{urls[i % 2]}/v1/jobs/{ids[i]}/result").json()
        direct = client.post(f"{urls[(i + 1) % 2]}/v1/compare", json=_request(i)).json()
        return _without_elapsed(stored) != _without_elapsed(direct)

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(differs, range(len(ids))))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--db-url", default=None)
    args = parser.parse_args()
    print(main(args.jobs, args.db_url))
