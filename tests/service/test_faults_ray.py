"""Faults of the Ray cluster against a real server process: a cluster reached by a `ray://`
address with Ray's token authentication on (as compose.yaml runs it) that goes away and comes
back; the raylet of a replica's own cluster killed mid-job. The API process never ends: jobs
fail with executor-unavailable (503), /readyz is 503 while the cluster is gone, and the
executor heals on its own."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("ray")

from tests.conftest import free_port, start_server  # noqa: E402
from tests.service.test_jobs import _wait_status  # noqa: E402

SWEEP = {"loss": {"kind": "builtin", "name": "rosenbrock"},
         "optimizer": {"name": "adam"}, "grid": {"lr": [0.01, 0.1]},
         "start": {"random": {"n": 1200, "low": -2, "high": 2, "seed": 4}}, "max_steps": 100}
LONG = SWEEP | {"max_steps": 400_000, "stop": {"grad_tol": 0}, "optimizer": {"name": "sgd"},
                "grid": {"lr": [1e-7, 2e-7]}}
RAY = str(Path(sys.executable).parent / "ray")


def _ready(url: str, want: int, limit: float) -> dict:
    """Poll /readyz until it answers `want`."""
    deadline = time.monotonic() + limit
    while True:
        r = httpx.get(f"{url}/readyz", timeout=10)
        if r.status_code == want:
            return r.json()
        assert time.monotonic() < deadline, r.text
        time.sleep(0.5)


class Head:
    """A Ray head started by the test (`ray start --head --block`), stopped by its pid."""

    def __init__(self, env: dict[str, str], client_port: int, gcs_port: int) -> None:
        self.env, self.client_port, self.gcs_port = env, client_port, gcs_port
        self.temp = tempfile.mkdtemp(prefix="r")  # short: Ray's socket paths have a limit
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [RAY, "start", "--head", "--block", f"--port={self.gcs_port}",
             f"--ray-client-server-port={self.client_port}", "--num-cpus=2",
             "--include-dashboard=false", f"--temp-dir={self.temp}", "--disable-usage-stats"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # `--block` stops its node's processes
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def token_env(tmp_path: Path) -> dict[str, str]:
    token = tmp_path / "ray_token"
    token.write_text(secrets.token_hex(32))
    return os.environ | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                         "RAY_USAGE_STATS_ENABLED": "0",
                         # a lost Ray Client connection is given up after 5 s, not 30
                         "RAY_CLIENT_RECONNECT_GRACE_PERIOD": "5",
                         "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "2"}


@pytest.fixture
def head(token_env: dict[str, str]) -> Iterator[Head]:
    node = Head(token_env, free_port(), free_port())
    node.start()
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(node.temp, ignore_errors=True)


def test_a_ray_client_replica_with_token_auth_survives_the_cluster_going_and_coming(
        head: Head, token_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: token_env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH",
                                     "RAY_USAGE_STATS_ENABLED",
                                     "RAY_CLIENT_RECONNECT_GRACE_PERIOD",
                                     "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S")}
    env |= {"OPTIM_EXECUTOR": "ray", "OPTIM_RAY_ADDRESS": f"ray://127.0.0.1:{head.client_port}",
            "OPTIM_JOBS_DB_PATH": str(tmp_path / "jobs.sqlite3")}
    proc, url = start_server(env)
    try:
        ready = _ready(url, 200, limit=90)["executor"]
        assert ready["reachable"] is True and ready["workers"] == 2
        job = httpx.post(f"{url}/v1/jobs", json={"kind": "sweep", "request": SWEEP}).json()
        assert _wait_status(url, job["id"], ("succeeded", "failed"), 120)["status"] == "succeeded"
        first = httpx.get(f"{url}/v1/jobs/{job['id']}/result").json()
        direct = httpx.post(f"{url}/v1/sweep", json=SWEEP, timeout=60).json()
        assert first["rows"] == direct["rows"]

        head.stop()  # the whole cluster goes away
        down = _ready(url, 503, limit=60)
        assert down["executor"]["reachable"] is False and down["store"]["reachable"] is True
        job = httpx.post(f"{url}/v1/jobs", json={"kind": "sweep", "request": SWEEP}).json()
        failed = _wait_status(url, job["id"], ("succeeded", "failed"), 120)
        assert failed["status"] == "failed", failed
        assert failed["error"]["type"] == "/problems/executor-unavailable"
        assert failed["error"]["status"] == 503
        assert proc.poll() is None  # the API goes on
        assert httpx.post(f"{url}/v1/sweep", json=SWEEP, timeout=60).status_code == 200

        head.start()  # the cluster comes back at the same address: no restart of the API
        _ready(url, 200, limit=120)
        job = httpx.post(f"{url}/v1/jobs", json={"kind": "sweep", "request": SWEEP}).json()
        assert _wait_status(url, job["id"], ("succeeded", "failed"), 120)["status"] == "succeeded"
        assert httpx.get(f"{url}/v1/jobs/{job['id']}/result").json()["rows"] == first["rows"]
    finally:
        proc.terminate()
        proc.wait(30)


def _descendants(pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True
                              ).stdout.split()
    found = []
    for child in map(int, children):
        found += [child, *_descendants(child)]
    return found


def _raylets_of(pid: int) -> list[int]:
    raylets = []
    for child in _descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"raylet/raylet" in command.split(b"\0")[0]:
            raylets.append(child)
    return raylets


def test_a_killed_raylet_fails_the_job_and_never_the_api(tmp_path: Path) -> None:
    """A replica on a cluster of its own (`local`): its raylet killed mid-job. Ray ends the
    driver process of a lost raylet; the driver is the executor's child, not the API."""
    proc, url = start_server({"OPTIM_EXECUTOR": "ray", "OPTIM_RAY_ADDRESS": "local",
                              "OPTIM_WORKERS_CPU": "2", "RAY_USAGE_STATS_ENABLED": "0",
                              "OPTIM_JOBS_DB_PATH": str(tmp_path / "jobs.sqlite3")})
    try:
        _ready(url, 200, limit=90)
        job = httpx.post(f"{url}/v1/jobs", json={"kind": "sweep", "request": LONG}).json()
        _wait_status(url, job["id"], ("running",), 60)
        deadline = time.monotonic() + 60
        while not (raylets := _raylets_of(proc.pid)):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        time.sleep(2)  # the shards compute
        for raylet in raylets:
            os.kill(raylet, signal.SIGKILL)
        failed = _wait_status(url, job["id"], ("succeeded", "failed", "cancelled"), 120)
        assert failed["status"] == "failed", failed
        assert failed["error"]["type"] == "/problems/executor-unavailable"
        assert proc.poll() is None  # the API process lives
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        _ready(url, 200, limit=120)  # a new driver, a new cluster
        job = httpx.post(f"{url}/v1/jobs", json={"kind": "sweep", "request": SWEEP}).json()
        assert _wait_status(url, job["id"], ("succeeded", "failed"), 120)["status"] == "succeeded"
    finally:
        proc.terminate()
        proc.wait(30)
