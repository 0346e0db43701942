"""The local process pool: shards on every core, equal to one batch, with progress, cancel
and a failing shard named; and an HTTP job that it runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from optim_core import StopCriteria, resolve_starts
from optim_core.api import compare, sweep
from optim_core.losses.catalog import builtin_loss
from optim_core.losses.expression import expression_loss
from optim_core.shards import parallel_shards, split
from service.errors import ShardFailedError
from service.executors.pool import PoolExecutor
from tests.service.shard_watch import Watching


@pytest.fixture(scope="module")
def pool() -> Iterator[PoolExecutor]:
    executor = PoolExecutor(2)
    try:
        yield executor
    finally:
        executor.close()


class Poisoned:
    """Rosenbrock, except that runs starting right of x = 1.9 raise (module level: the
    pool's workers import it by name)."""

    def __init__(self) -> None:
        self.inner = expression_loss("(1-x)^2 + 100*(y-x^2)^2", None)
        for name in ("kind", "dim", "names", "minima", "f_min", "domain", "default_start",
                     "stochastic", "value", "hess", "describe"):
            setattr(self, name, getattr(self.inner, name))

    def value_grad(self, params):
        if (params[:, 0] > 1.9).any():
            raise FloatingPointError("poisoned start")
        return self.inner.value_grad(params)


def test_pool_answers_what_one_batch_answers(pool) -> None:
    loss = expression_loss("(1-x)^2 + 100*(y-x^2)^2 + sin(x*y)", None)
    optimizers = [{"name": "adam", "lr": 0.05}, {"name": "nesterov", "lr": 1e-3},
                  {"name": "newton"}]
    starts = resolve_starts(loss, {"random": {"n": 30, "seed": 6}})
    one = compare(loss, optimizers, starts, max_steps=300)
    on_pool = compare(loss, optimizers, starts, max_steps=300, executor=pool,
                      shards=split(90, 11))
    assert on_pool[1] == one[1] and on_pool[2] == one[2]
    for mine, theirs in zip(on_pool[0].runs, one[0].runs, strict=True):
        assert mine["final"] == theirs["final"] and mine["diagnostics"] == theirs["diagnostics"]
        assert np.array_equal(mine["trajectory"]["params"], theirs["trajectory"]["params"])


def test_a_large_batch_spreads_over_every_worker(pool) -> None:
    loss = builtin_loss("rosenbrock")
    starts = resolve_starts(loss, {"random": {"n": 3000, "seed": 1}})
    seen: list[tuple[int, int, int]] = []
    kwargs = {"max_steps": 400, "stop": StopCriteria(grad_tol=0)}
    report = sweep(loss, {"name": "adam"}, {"lr": [0.01, 0.1]}, starts, executor=pool,
                   progress=lambda *a: seen.append(a), **kwargs)
    plan_shards = pool.shards(_plan(loss, starts))
    assert len(plan_shards) >= 2 and max(len(s) for s in plan_shards) <= 4096
    one = sweep(loss, {"name": "adam"}, {"lr": [0.01, 0.1]}, starts, shards=[np.arange(6000)],
                **kwargs)
    assert report.rows == one.rows
    assert np.array_equal(report.batch.final_params, one.batch.final_params)
    assert seen[-1] == (400, 400, 0)
    assert [s[0] for s in seen] == sorted(s[0] for s in seen)


def _plan(loss, starts):
    from optim_core.plan import plan_sweep
    from optim_core.shards import EngineOptions

    return plan_sweep(loss, {"name": "adam"}, {"lr": [0.01, 0.1]}, starts, EngineOptions())


def test_parallel_shards_leave_small_batches_whole() -> None:
    loss = builtin_loss("rosenbrock")
    small = _plan(loss, np.zeros((100, 2)))
    assert len(parallel_shards(small, 8)) == 1  # 200 runs: one shard, no transport
    big = _plan(loss, np.zeros((5000, 2)))
    assert [len(s) for s in parallel_shards(big, 2)] == [3334, 3333, 3333]
    assert len(parallel_shards(big, 1)) == 3  # one worker: cache-sized chunks


def test_cancel_reaches_the_workers_and_keeps_partial_results(pool) -> None:
    loss = builtin_loss("rosenbrock")
    starts = resolve_starts(loss, {"random": {"n": 3000, "seed": 1}})
    began = time.monotonic()
    watch = Watching(pool)
    report = sweep(loss, {"name": "sgd"}, {"lr": [1e-5, 2e-5]}, starts, max_steps=500_000,
                   stop=StopCriteria(grad_tol=0), executor=watch, cancel=watch.all_computing,
                   progress=lambda *a: None)
    assert time.monotonic() - began < 60
    assert (report.batch.steps > 0).all() and (report.batch.steps < 500_000).all()
    assert set(report.batch.status.tolist()) == {6}  # cancelled


def test_a_failing_shard_is_named(pool) -> None:
    starts = np.zeros((300, 2))
    starts[150] = [1.95, 0.0]
    with pytest.raises(ShardFailedError, match=r"Shard 1 \(runs 100–199\).*poisoned start"):
        sweep(Poisoned(), {"name": "adam"}, {"lr": [0.01]}, starts, max_steps=20,
              executor=pool, shards=split(300, 100))
    # the pool is still usable afterwards
    fine = sweep(Poisoned(), {"name": "adam"}, {"lr": [0.01]}, np.zeros((300, 2)),
                 max_steps=20, executor=pool, shards=split(300, 100))
    assert fine.rows[0]["divergence_rate"] == 0.0


def test_ray_without_the_extra_fails_start_up_naming_the_setting(monkeypatch, tmp_path) -> None:
    from service.executors import ExecutorUnavailableError, ray_cluster
    from service.main import create_app
    from service.settings import Settings

    monkeypatch.setattr(ray_cluster, "ray", None)
    with pytest.raises(ExecutorUnavailableError, match=r"OPTIM_EXECUTOR=ray.*optim-service\[ray\]"):
        create_app(Settings(executor="ray", ray_address="local",
                            jobs_db_path=str(tmp_path / "jobs.sqlite3")))


def test_ray_without_an_address_fails_start_up_naming_the_setting(tmp_path) -> None:
    pytest.importorskip("ray")
    from service.executors import ExecutorUnavailableError
    from service.main import create_app
    from service.settings import Settings

    with pytest.raises(ExecutorUnavailableError, match="OPTIM_RAY_ADDRESS"):
        create_app(Settings(executor="ray", jobs_db_path=str(tmp_path / "jobs.sqlite3")))


def test_the_local_executor_never_imports_ray(tmp_path) -> None:
    import subprocess
    import sys

    code = ("import sys; from service.main import create_app; from service.settings import "
            f"Settings; create_app(Settings(jobs_db_path={str(tmp_path / 'j.sqlite3')!r})); "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


async def test_readyz_names_the_local_executor(client) -> None:
    state = (await client.get("/readyz")).json()["executor"]
    assert state["name"] == "local" and state["reachable"] is True
    assert state["workers"] >= 1 and state["started"] is False


def test_a_worker_that_dies_costs_a_rerun_not_the_job(pool) -> None:
    """kill -9 of a pool process mid-job: the pool is replaced, the shards run again, and
    the answer is the one-batch answer; progress never goes back."""
    import os
    import signal
    import threading

    loss = builtin_loss("rosenbrock")
    starts = resolve_starts(loss, {"random": {"n": 3000, "seed": 2}})
    kwargs = {"max_steps": 3000, "stop": StopCriteria(grad_tol=0)}
    seen: list[tuple[int, int, int]] = []
    killed = threading.Event()

    def kill_one_worker(*state) -> None:
        seen.append(state)
        if not killed.is_set() and state[0] > 0 and pool._pool is not None:
            victim = next(iter(pool._pool._processes))
            os.kill(victim, signal.SIGKILL)
            killed.set()

    report = sweep(loss, {"name": "adam"}, {"lr": [0.01, 0.1]}, starts, executor=pool,
                   progress=kill_one_worker, **kwargs)
    assert killed.is_set()
    one = sweep(loss, {"name": "adam"}, {"lr": [0.01, 0.1]}, starts,
                shards=[np.arange(6000)], **kwargs)
    assert report.rows == one.rows
    assert np.array_equal(report.batch.final_params, one.batch.final_params)
    done = [s[0] for s in seen]
    assert done == sorted(done) and seen[-1] == (3000, 3000, 0)


def jam_the_result_pipe(*args) -> None:
    """In a pool worker, in place of a shard: the start of a result message on the pool's
    result pipe (a header promising 1 MB), then death, as a worker killed while sending its
    result (module level: the workers import it by name)."""
    import gc
    import os
    import struct
    from multiprocessing.queues import SimpleQueue

    results = next(o for o in gc.get_objects() if isinstance(o, SimpleQueue))
    os.write(results._writer.fileno(), struct.pack("!i", 1 << 20))
    os._exit(1)


def test_a_worker_that_dies_mid_result_fails_the_job_instead_of_hanging(monkeypatch) -> None:
    """CPython's pool would wait for the rest of the message forever (a job hung for good,
    and the interpreter's exit with it): the dead worker is noticed, the pool freed and
    replaced, and after the retry the job fails naming what happened."""
    import threading

    from service.executors import pool as pool_module

    monkeypatch.setattr(pool_module, "_run", jam_the_result_pipe)
    before = set(threading.enumerate())  # the module's pool has its own reader thread
    executor = PoolExecutor(2)
    loss = builtin_loss("rosenbrock")
    starts = resolve_starts(loss, {"random": {"n": 8, "seed": 2}})
    began = time.monotonic()
    try:
        with pytest.raises(ShardFailedError) as failed:
            sweep(loss, {"name": "adam"}, {"lr": [0.01, 0.1]}, starts, executor=executor,
                  shards=split(16, 8), max_steps=10)
    finally:
        executor.close()
    assert "died during the job on every attempt (2" in failed.value.detail
    assert time.monotonic() - began < 10 * pool_module.JAMMED_AFTER_S
    deadline = time.monotonic() + 10
    while any("ExecutorManager" in type(t).__name__ for t in set(threading.enumerate()) - before):
        assert time.monotonic() < deadline, "a pool's reader thread is still blocked"
        time.sleep(0.1)


async def test_an_unreachable_ray_cluster_is_named_and_fails_its_jobs(monkeypatch, tmp_path):
    """/readyz is 503 naming the setting; a job fails with a 503 problem document
    (executor-unavailable), never a 500; the API goes on."""
    pytest.importorskip("ray")
    import httpx

    from service.main import create_app
    from service.settings import Settings
    from tests.conftest import free_port
    from tests.service.test_jobs import wait_for

    # the driver process tries a Ray Client address for 1 + 2 + 4 s instead of 5 + 10 + 20
    monkeypatch.setenv("RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", "1")
    address = f"ray://127.0.0.1:{free_port()}"
    app = create_app(Settings(executor="ray", ray_address=address,
                              jobs_db_path=str(tmp_path / "jobs.sqlite3")))
    app.state.executor.connect()  # as the lifespan does: fails, and only logs it
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
        ready = r.json()["executor"]
        assert ready["name"] == "ray" and ready["reachable"] is False
        assert f"OPTIM_RAY_ADDRESS={address}" in ready["error"]
        assert r.json()["store"] == {"reachable": True}
        request = {"loss": {"kind": "builtin", "name": "booth"}, "max_steps": 10}
        job = (await client.post("/v1/jobs", json={"kind": "optimize",
                                                   "request": request})).json()
        done = await wait_for(client, job["id"], limit=60)
        assert done["status"] == "failed"
        assert done["error"]["type"] == "/problems/executor-unavailable"
        assert done["error"]["status"] == 503
        assert (await client.get("/healthz")).status_code == 200
        await app.state.jobs.shutdown()
    app.state.executor.close()


def test_a_pool_that_breaks_on_every_attempt_fails_the_job_saying_so(monkeypatch) -> None:
    from concurrent.futures.process import BrokenProcessPool

    from optim_core.shards import EngineOptions
    from service.problems import problem_for

    executor = PoolExecutor(2)
    attempts = []

    def broken(*args, **kwargs):
        attempts.append(1)
        raise BrokenProcessPool("a child process terminated abruptly")

    monkeypatch.setattr(executor, "_run_on_pool", broken)
    loss = builtin_loss("rosenbrock")
    from optim_core.plan import plan_sweep

    plan = plan_sweep(loss, {"name": "adam"}, {"lr": [0.1]}, np.zeros((600, 2)),
                      EngineOptions(max_steps=5))
    with pytest.raises(ShardFailedError) as caught:
        executor.run_shards(plan.work, split(600, 300), deadline_wall=None, cancel=None,
                            progress=None)
    assert len(attempts) == 2
    status, problem, _ = problem_for(caught.value)
    assert status == 500 and problem["type"] == "/problems/shard-failed"
    assert "died during the job on every attempt (2" in problem["detail"]
