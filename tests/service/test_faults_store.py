"""Faults of the job store against real servers under a mixed load (submits, polls, event
streams, synchronous requests): PostgreSQL stopped and restarted, frozen, its backends
terminated, its connection pool exhausted; SQLite's disk full or read-only, its files deleted.
After each: no 500 was answered (a store fault is a 503), synchronous requests never waited on
the store, every accepted job ended once with the answer a lone run gives, and the service is
ready again within a bound. The active-jobs limit holds under concurrent submits."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PostgresServer, start_server
from tests.service.fault_load import (
    Load,
    assert_results_are_lone_answers,
    wait_all_ended,
)

SLOW = {"loss": {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"},
        "start": {"random": {"n": 64, "seed": 3}}, "max_steps": 400_000,
        "optimizer": {"name": "sgd", "lr": 1e-9}, "record": {"max_points": 10},
        "stop": {"grad_tol": 0}}
FAST_STORE = {"OPTIM_STORE_TIMEOUT_S": "2", "OPTIM_JOB_LEASE_S": "6",
              "OPTIM_JOB_POLL_INTERVAL_S": "0.2", "OPTIM_MAX_CONCURRENCY": "3",
              "OPTIM_JOB_MAX_ACTIVE": "1000"}


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own: the tests stop, freeze and restart it."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def replica(pg: PostgresServer, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    proc, url = start_server(FAST_STORE | {"OPTIM_JOBS_DB_URL": pg.database(),
                                           "OPTIM_JOBS_DB_PATH": str(tmp_path / "x.sqlite3")})
    try:
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(30)


def _ready_within(url: str, limit: float) -> float:
    began = time.monotonic()
    while httpx.get(f"{url}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() - began < limit, "not ready again in time"
        time.sleep(0.2)
    return time.monotonic() - began


def _check(load: Load, url: str) -> None:
    assert load.errors == [], load.errors[:5]
    assert set(load.statuses["sync"]) == {200}, load.statuses["sync"]
    assert load.accepted, "no job was accepted"
    ended = wait_all_ended(url, list(load.accepted))
    assert {job["status"] for job in ended.values()} == {"succeeded"}, \
        [j for j in ended.values() if j["status"] != "succeeded"][:3]
    assert_results_are_lone_answers(url, load.accepted)


def test_postgresql_stopped_and_restarted_under_load(pg, replica) -> None:
    proc, url = replica
    with Load([url]) as load:
        time.sleep(2)
        pg.stop()
        time.sleep(1)
        unready = httpx.get(f"{url}/readyz", timeout=10)
        assert unready.status_code == 503 and unready.json()["store"]["reachable"] is False
        r = httpx.post(f"{url}/v1/jobs", json={"kind": "optimize", "request": SLOW}, timeout=30)
        assert r.status_code == 503 and r.json()["type"] == "/problems/store-unavailable"
        assert int(r.headers["retry-after"]) >= 1
        assert httpx.post(f"{url}/v1/optimize", json={"loss": {"kind": "builtin",
                                                              "name": "booth"}},
                          timeout=10).status_code == 200
        time.sleep(3)
        pg.start()
        assert _ready_within(url, 20) < 20
        time.sleep(2)
    assert load.statuses["submit"][503] + load.statuses["poll"][503] > 0  # the fault was seen
    assert proc.poll() is None
    _check(load, url)


def test_postgresql_frozen_answers_503_in_bounded_time_and_never_holds_compute(
        pg, replica) -> None:
    proc, url = replica
    with Load([url]) as load:
        time.sleep(2)
        pg.signal(signal.SIGSTOP)
        try:
            time.sleep(1)
            began = time.monotonic()
            r = httpx.get(f"{url}/v1/jobs?limit=3", timeout=30)
            assert r.status_code == 503 and time.monotonic() - began < 6
            began = time.monotonic()
            ok = httpx.post(f"{url}/v1/optimize", json={"loss": {"kind": "builtin",
                                                                "name": "booth"}}, timeout=10)
            assert ok.status_code == 200 and time.monotonic() - began < 2
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            time.sleep(6)
        finally:
            pg.signal(signal.SIGCONT)
        assert _ready_within(url, 20) < 20
        time.sleep(2)
    assert load.sync_slowest < 3  # synchronous compute never waited on the store
    assert proc.poll() is None
    _check(load, url)


def test_terminated_backends_cost_no_accepted_job(pg, replica) -> None:
    import psycopg

    proc, url = replica
    with Load([url]) as load:
        for _ in range(4):
            time.sleep(1.5)
            with psycopg.connect(pg.url, autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                             "pid <> pg_backend_pid() AND datname LIKE 'optim_%'")
        time.sleep(2)
    assert proc.poll() is None
    _check(load, url)


def test_an_exhausted_connection_pool_is_503_not_500(pg, tmp_path) -> None:
    proc, url = start_server(FAST_STORE | {"OPTIM_JOBS_DB_URL": pg.database(),
                                           "OPTIM_JOBS_DB_POOL_SIZE": "2",
                                           "OPTIM_JOBS_DB_PATH": str(tmp_path / "x.sqlite3")})
    try:
        with Load([url], submitters=2, pollers=12, streams=24, pause_s=0.01) as load:
            time.sleep(8)
        _check(load, url)
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_the_active_jobs_limit_holds_under_concurrent_submits(pg, tmp_path, store) -> None:
    """60 submits at once to two replicas, the limit 8: exactly 8 accepted, the rest 429."""
    env = {"OPTIM_JOB_MAX_ACTIVE": "8", "OPTIM_JOBS_DB_PATH": str(tmp_path / "jobs.sqlite3")}
    if store == "postgres":
        env["OPTIM_JOBS_DB_URL"] = pg.database()
    a, url_a = start_server(env)
    b, url_b = start_server(env)
    try:
        def submit(i: int) -> int:
            url = (url_a, url_b)[i % 2]
            return httpx.post(f"{url}/v1/jobs", json={"kind": "optimize", "request": SLOW},
                              timeout=60).status_code

        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            statuses = list(pool.map(submit, range(60)))
        assert statuses.count(202) == 8 and statuses.count(429) == 52, statuses
        ready = httpx.get(f"{url_a}/readyz").json()["compute"]
        assert ready["jobs_running"] <= ready["job_slots"]
        for job in httpx.get(f"{url_a}/v1/jobs?limit=50").json()["jobs"]:
            httpx.delete(f"{url_a}/v1/jobs/{job['id']}")
    finally:
        for proc in (a, b):
            proc.terminate()
            proc.wait(30)


# -- SQLite ---------------------------------------------------------------------------------
@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 64 MB tmpfs the test can fill (root only; skipped otherwise); roomy enough that the
    store's own WAL (checkpointed every ~4 MB) never fills it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")
    mountpoint = Path(subprocess.run(["mktemp", "-d", "/tmp/optim-disk-XXXXXX"],
                                     capture_output=True, text=True).stdout.strip())
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mountpoint)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode()[:200]}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
        shutil.rmtree(mountpoint, ignore_errors=True)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    return filler


def test_sqlite_on_a_full_disk_answers_503_and_loses_nothing(small_disk) -> None:
    proc, url = start_server(FAST_STORE | {"OPTIM_JOBS_DB_PATH": str(small_disk / "jobs.db")})
    try:
        with Load([url]) as load:
            time.sleep(2)
            filler = _fill(small_disk)
            time.sleep(1)
            r = httpx.post(f"{url}/v1/jobs", json={"kind": "optimize", "request": SLOW})
            assert r.status_code == 503 and r.json()["type"] == "/problems/store-unavailable"
            time.sleep(2)
            filler.unlink()
            time.sleep(3)
        assert load.statuses["submit"][503] > 0
        assert proc.poll() is None
        _check(load, url)
    finally:
        proc.terminate()
        proc.wait(30)


def _immutable(paths: list[Path], on: bool) -> bool:
    flag = "+i" if on else "-i"
    return all(subprocess.run(["chattr", flag, str(p)], capture_output=True).returncode == 0
               for p in paths if p.exists())


def test_sqlite_files_made_read_only_answer_503_and_lose_nothing(tmp_path) -> None:
    """The database and its WAL made immutable under the running replica (writes through its
    open files fail, as on a file system remounted read-only), then writable again."""
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("chattr needs root")
    db = tmp_path / "jobs.sqlite3"
    files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    proc, url = start_server(FAST_STORE | {"OPTIM_JOBS_DB_PATH": str(db)})
    try:
        with Load([url]) as load:
            time.sleep(2)
            if not _immutable(files, True):
                pytest.skip("this file system does not take the immutable flag")
            try:
                time.sleep(1)
                r = httpx.post(f"{url}/v1/jobs", json={"kind": "optimize", "request": SLOW})
                assert r.status_code == 503, r.text
                assert r.json()["type"] == "/problems/store-unavailable"
                time.sleep(3)
            finally:
                _immutable(files, False)
            assert _ready_within(url, 20) < 20
            time.sleep(2)
        assert load.statuses["submit"][503] > 0
        assert proc.poll() is None
        _check(load, url)
    finally:
        _immutable(files, False)
        proc.terminate()
        proc.wait(30)


def test_sqlite_files_deleted_under_a_running_replica_are_put_back(tmp_path) -> None:
    db = tmp_path / "store" / "jobs.sqlite3"
    proc, url = start_server(FAST_STORE | {"OPTIM_JOBS_DB_PATH": str(db)})
    try:
        with Load([url]) as load:
            time.sleep(2)
            before = set(load.accepted)
            shutil.rmtree(db.parent)
            time.sleep(3)
            seen = [httpx.get(f"{url}/v1/jobs/{job}").status_code for job in before
                    for _ in range(3)]
            assert set(seen) == {200}, seen  # the same answer every time, never 404
            assert db.exists()  # put back from the open database
        assert proc.poll() is None
        _check(load, url)
    finally:
        proc.terminate()
        proc.wait(30)
