"""A fault soak: jobs submitted to two replicas on one PostgreSQL while random faults of every
kind strike (issue 26): PostgreSQL stopped and restarted, frozen, its backends terminated; a
replica killed (-9) and started again; a pool worker frozen; a pool manager killed. Every job
answered 202 must end `succeeded` once, with the answer the synchronous endpoint gives for its
request, and no answer may be a 500.

    python -m bench.faults_soak                 # 1,000 jobs (~15 minutes on 2 cores)
    python -m bench.faults_soak --jobs 200      # shorter

It starts its own PostgreSQL from this machine's initdb/pg_ctl (as the tests do).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import table
from bench.soak import _port, _start, _without_elapsed
from tests.conftest import PostgresServer

FAULTS = ("postgres stopped 3 s", "postgres frozen 4 s", "backends terminated",
          "replica killed and restarted", "pool worker frozen 3 s", "pool manager killed")


def _request(i: int) -> dict:
    """Job i: a compare whose answer depends on i; every tenth spans two pool shards."""
    n = 320 if i % 10 == 0 else 4
    return {"loss": {"kind": "expression", "expression": "(1-x)^2 + 100*(y-x^2)^2"},
            "start": {"random": {"n": n, "low": -2, "high": 2, "seed": i}},
            "optimizers": [{"name": "adam", "lr": 0.02}, {"name": "momentum", "lr": 5e-4}],
            "max_steps": 1500, "record": {"max_points": 10}}


def _descendants(pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True
                              ).stdout.split()
    found = []
    for child in map(int, children):
        found += [child, *_descendants(child)]
    return found


def _started(pid: int) -> int:
    """A process's start time in clock ticks (/proc/<pid>/stat, field 22)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _pool_processes(pid: int, manager: bool) -> list[int]:
    """A replica's pool manager or its pool workers: the children of its forkserver (the
    manager is started first, then the pool's workers; all share the forkserver's command)."""
    for child in _descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"forkserver" in command:
            forked = sorted(_descendants_once(child), key=_started)
            if not forked:
                return []
            return forked[:1] if manager else forked[1:]
    return []


def _descendants_once(pid: int) -> list[int]:
    return [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                           text=True).stdout.split()]


class Soak:
    def __init__(self, jobs: int, pg: PostgresServer, env: dict[str, str]) -> None:
        self.jobs, self.pg, self.env = jobs, pg, env
        self.ports = [_port(), _port()]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.replicas = [_start(env, port) for port in self.ports]
        self.statuses: Counter[int] = Counter()
        self.accepted: dict[str, int] = {}
        self.faults: Counter[str] = Counter()
        self.lock = threading.Lock()

    def submit_all(self) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while i < self.jobs:
                url = self.urls[i % 2]
                try:
                    r = client.post(f"{url}/v1/jobs", json={"kind": "compare",
                                                          "request": _request(i)})
                except httpx.HTTPError:
                    time.sleep(0.5)  # a replica being restarted: try the job again
                    continue
                with self.lock:
                    self.statuses[r.status_code] += 1
                if r.status_code == 202:
                    self.accepted[r.json()["id"]] = i
                    i += 1
                else:
                    time.sleep(0.3)  # 503 (a part is down) or 429: retry the same job
                time.sleep(0.02)

    def strike(self, stop: threading.Event) -> None:
        rng = random.Random(26)
        while not stop.wait(rng.uniform(4, 8)):
            fault = rng.choice(FAULTS)
            self.faults[fault] += 1
            if fault == "postgres stopped 3 s":
                self.pg.stop()
                time.sleep(3)
                self.pg.start()
            elif fault == "postgres frozen 4 s":
                self.pg.signal(signal.SIGSTOP)
                time.sleep(4)
                self.pg.signal(signal.SIGCONT)
            elif fault == "backends terminated":
                import psycopg

                with psycopg.connect(self.pg.url, autocommit=True) as conn:
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE pid <> pg_backend_pid() AND datname LIKE 'optim_%'")
            elif fault == "replica killed and restarted":
                k = rng.randrange(2)
                self.replicas[k].send_signal(signal.SIGKILL)
                self.replicas[k].wait()
                self.replicas[k] = _start(self.env, self.ports[k])
            else:
                manager = fault == "pool manager killed"
                victims = _pool_processes(self.replicas[rng.randrange(2)].pid, manager)
                if not victims:
                    self.faults[f"{fault} (no pool yet)"] += 1
                    continue
                victim = rng.choice(victims)
                if manager:
                    os.kill(victim, signal.SIGKILL)
                else:
                    os.kill(victim, signal.SIGSTOP)
                    time.sleep(3)
                    try:
                        os.kill(victim, signal.SIGCONT)
                    except ProcessLookupError:
                        pass

    def wait_all(self, limit_s: float) -> list[dict]:
        deadline = time.monotonic() + limit_s
        ended: dict[str, dict] = {}
        with httpx.Client(timeout=30) as client:
            while len(ended) < len(self.accepted) and time.monotonic() < deadline:
                for job_id in list(self.accepted):
                    if job_id in ended:
                        continue
                    try:
                        r = client.get(f"{self.urls[1]}/v1/jobs/{job_id}")
                    except httpx.HTTPError:
                        continue
                    if r.status_code == 200 and r.json()["status"] in ("succeeded", "failed",
                                                                       "cancelled"):
                        ended[job_id] = r.json()
                time.sleep(1)
        return list(ended.values())

    def wrong_results(self) -> int:
        def differs(item: tuple[str, int]) -> bool:
            job_id, i = item
            with httpx.Client(timeout=60) as client:
                stored = client.get(f"{self.urls[0]}/v1/jobs/{job_id}/result").json()
                direct = client.post(f"{self.urls[1]}/v1/compare", json=_request(i)).json()
            return _without_elapsed(stored) != _without_elapsed(direct)

        with ThreadPoolExecutor(4) as pool:
            return sum(pool.map(differs, self.accepted.items()))

    def close(self) -> None:
        for proc in self.replicas:
            proc.terminate()
            proc.wait(15)


def main(jobs: int = 1000) -> str:
    pg = PostgresServer()
    soak = None
    try:
        env = {"OPTIM_JOBS_DB_URL": pg.database(), "OPTIM_JOB_LEASE_S": "4",
               "OPTIM_JOB_MAX_ACTIVE": str(jobs + 10), "OPTIM_JOB_MAX_ATTEMPTS": "6",
               "OPTIM_STORE_TIMEOUT_S": "2", "OPTIM_LOG_LEVEL": "warning",
               "OPTIM_MAX_CONCURRENCY": "2"}
        soak = Soak(jobs, pg, env)
        began = time.perf_counter()
        stop = threading.Event()
        striker = threading.Thread(target=soak.strike, args=(stop,), daemon=True)
        striker.start()
        soak.submit_all()
        submitted = time.perf_counter() - began
        ended = soak.wait_all(limit_s=1800)
        stop.set()
        striker.join(60)
        finished = time.perf_counter() - began
        wrong = soak.wrong_results()
    finally:
        if soak is not None:
            soak.close()
        pg.close()
    statuses = Counter(job["status"] for job in ended)
    rows = [[f"{jobs:,}", f"{len(soak.accepted):,}", f"{len(ended):,}",
             ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
             str(sum(job["attempts"] > 1 for job in ended)),
             ", ".join(f"{k}: {v}" for k, v in sorted(soak.statuses.items())),
             str(sum(soak.faults.values())), f"{submitted:.0f}", f"{finished:.0f}", str(wrong)]]
    notes = "; ".join(f"{k} ×{v}" for k, v in sorted(soak.faults.items()))
    return table("Fault soak: two replicas on PostgreSQL under random faults",
                 ["jobs", "accepted (202)", "ended", "statuses", "run again",
                  "submit answers", "faults", "submitted s", "all done s",
                  "results ≠ synchronous"], rows) + f"\n\nFaults: {notes}.\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()
    print(main(args.jobs))
