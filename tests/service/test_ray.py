"""Ray executor on a local cluster (one per module): equal answers, progress, cancel with
partial results, a failing shard, and an HTTP job on OPTIM_EXECUTOR=ray answering exactly
what the local executor answers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from optim_core import StopCriteria, resolve_starts  # noqa: E402
from optim_core.api import sweep  # noqa: E402
from optim_core.losses.catalog import builtin_loss  # noqa: E402
from optim_core.losses.dataset import dataset_loss  # noqa: E402
from optim_core.losses.expression import expression_loss  # noqa: E402
from optim_core.shards import split  # noqa: E402
from service.errors import ShardFailedError  # noqa: E402
from service.executors.ray_cluster import RayExecutor  # noqa: E402
from service.main import create_app  # noqa: E402
from service.problems import problem_for  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.service.shard_watch import Watching  # noqa: E402
from tests.service.test_jobs import wait_for  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_cluster() -> Iterator[None]:
    """A cluster of this module's own: never a bare ray.init(), never `ray stop`."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def executor() -> RayExecutor:
    return RayExecutor(Settings(executor="ray", ray_address="local", workers_cpu=2,
                                shard_retries=1))


def _minibatch():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    y = (X @ [1.0, -2.0, 0.5] > 0).astype(float)
    return dataset_loss({"model": "logistic", "X": X.tolist(), "y": y.tolist(),
                         "batch_size": 16}, max_values=10**6, max_dim=10)


@pytest.mark.parametrize("make_loss", [
    lambda: builtin_loss("rosenbrock"),
    lambda: expression_loss("(1-x)^2 + 100*(y-x^2)^2 + sin(x*y)", None),
    _minibatch,
], ids=["builtin", "expression", "seeded minibatch"])
def test_ray_answers_what_one_batch_answers(executor, make_loss) -> None:
    loss = make_loss()
    starts = resolve_starts(loss, {"random": {"n": 40, "seed": 2}})
    options = {"max_steps": 200, "seed": 7, "include_runs": True}
    one = sweep(loss, {"name": "adam"}, {"lr": [0.01, 0.1]}, starts, **options)
    on_ray = sweep(loss, {"name": "adam"}, {"lr": [0.01, 0.1]}, starts, executor=executor,
                   shards=split(80, 9), **options)
    assert on_ray.rows == one.rows and on_ray.best == one.best
    for name in ("final_params", "final_loss", "status", "steps", "path_length"):
        assert np.array_equal(getattr(on_ray.batch, name), getattr(one.batch, name),
                              equal_nan=True), name
    assert [r["trajectory"]["params"].tolist() for r in on_ray.runs] == \
        [r["trajectory"]["params"].tolist() for r in one.runs]


def test_progress_rises_to_done(executor) -> None:
    loss = builtin_loss("rosenbrock")
    starts = resolve_starts(loss, {"random": {"n": 2000, "seed": 1}})
    seen: list[tuple[int, int, int]] = []
    sweep(loss, {"name": "sgd"}, {"lr": [1e-5, 2e-5]}, starts, max_steps=3000,
          stop=StopCriteria(grad_tol=0), executor=executor, progress=lambda *a: seen.append(a))
    done = [s[0] for s in seen]
    assert len(seen) >= 2 and done == sorted(done)
    assert seen[-1] == (3000, 3000, 0) and 0 < seen[0][0] <= 3000


def test_cancel_stops_every_shard_and_keeps_partial_results(executor, no_ray_cancel) -> None:
    loss = builtin_loss("rosenbrock")
    starts = resolve_starts(loss, {"random": {"n": 4000, "seed": 1}})
    began = time.monotonic()
    watch = Watching(executor)
    report = sweep(loss, {"name": "sgd"}, {"lr": [1e-5, 2e-5]}, starts, max_steps=200_000,
                   stop=StopCriteria(grad_tol=0), executor=watch, cancel=watch.all_computing,
                   progress=lambda *a: None)
    assert time.monotonic() - began < 60  # 200,000 steps of 8,000 runs would take minutes
    steps = report.batch.steps
    assert (steps > 0).all() and (steps < 200_000).all()
    assert set(report.batch.status.tolist()) == {6}  # cancelled, each with its own partial
    assert np.isfinite(report.batch.final_loss).all()
    assert len(report.rows) == 2 and no_ray_cancel == []


class Poisoned:
    """Rosenbrock, except that the runs starting right of x = 1.9 raise."""

    def __init__(self) -> None:
        self.inner = expression_loss("(1-x)^2 + 100*(y-x^2)^2", None)
        for name in ("kind", "dim", "names", "minima", "f_min", "domain",
                     "default_start", "stochastic", "value", "hess", "describe"):
            setattr(self, name, getattr(self.inner, name))

    def value_grad(self, params):
        if (params[:, 0] > 1.9).any():
            raise FloatingPointError("poisoned start")
        return self.inner.value_grad(params)


class DiesOnce(Poisoned):
    """Rosenbrock whose first evaluation anywhere ends its worker process (as the kernel's
    out-of-memory killer would): the marker file makes it once per test."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def value_grad(self, params):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return self.inner.value_grad(params)
        os._exit(1)


@pytest.fixture()
def no_ray_cancel(monkeypatch) -> list:
    """`ray.cancel` of a task whose result is stored but whose reply is in flight ends the
    calling process (a CHECK in Ray's core worker): the executor must never call it."""
    calls: list = []
    monkeypatch.setattr(ray, "cancel", lambda *a, **k: calls.append(a))
    return calls


def test_a_failing_shard_fails_the_job_naming_it(executor, no_ray_cancel) -> None:
    loss = Poisoned()
    starts = np.zeros((300, 2))
    starts[250] = [1.95, 0.0]  # run 250 lies in the third shard of 100
    with pytest.raises(ShardFailedError) as caught:
        sweep(loss, {"name": "adam"}, {"lr": [0.01]}, starts, max_steps=20, executor=executor,
              shards=split(300, 100))
    status, problem, _ = problem_for(caught.value)
    assert status == 500 and problem["type"] == "/problems/shard-failed"
    assert problem["shard"] == 2 and problem["runs"] == [200, 299]
    assert problem["detail"].startswith("Shard 2 (runs 200–299) failed: ")
    assert "poisoned start" in problem["detail"]  # not retried: it would raise again
    assert no_ray_cancel == []


def test_a_shard_whose_worker_dies_is_retried_with_the_same_answer(executor, tmp_path) -> None:
    loss = DiesOnce(str(tmp_path / "died"))
    starts = resolve_starts(loss.inner, {"random": {"n": 30, "seed": 3}})
    on_ray = sweep(loss, {"name": "adam"}, {"lr": [0.01, 0.1]}, starts, max_steps=100,
                   executor=executor, shards=split(60, 20))
    here = sweep(loss.inner, {"name": "adam"}, {"lr": [0.01, 0.1]}, starts, max_steps=100)
    assert (tmp_path / "died").exists()  # a worker did die
    assert on_ray.rows == here.rows
    assert np.array_equal(on_ray.batch.final_params, here.batch.final_params)


def test_a_failing_shard_stops_the_other_shards(executor, no_ray_cancel) -> None:
    """Shard 0 fails at once; the 19 others (minutes of work on two CPUs) stop through the
    job's cancel flag, queued ones as they start: the cluster is free again within seconds."""
    starts = np.zeros((2000, 2))
    starts[5] = [1.95, 0.0]
    with pytest.raises(ShardFailedError):
        sweep(Poisoned(), {"name": "sgd"}, {"lr": [1e-6]}, starts, max_steps=2_000_000,
              stop=StopCriteria(grad_tol=0), executor=executor, shards=split(2000, 20))
    began = time.monotonic()
    loss = builtin_loss("rosenbrock")
    after = sweep(loss, {"name": "adam"}, {"lr": [0.01]}, np.zeros((4, 2)), max_steps=50,
                  executor=executor, shards=split(4, 2))
    assert time.monotonic() - began < 30 and len(after.rows) == 1
    assert no_ray_cancel == []


SWEEP = {"loss": {"kind": "builtin", "name": "rosenbrock"},
         "optimizer": {"name": "adam"}, "grid": {"lr": [0.01, 0.03, 0.1]},
         "start": {"random": {"n": 1500, "low": -2, "high": 2, "seed": 4}}, "max_steps": 150}


async def _job_answer(settings: Settings) -> dict:
    import httpx

    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        job = (await client.post("/v1/jobs", json={"kind": "sweep", "request": SWEEP})).json()
        done = await wait_for(client, job["id"], limit=120)
        assert done["status"] == "succeeded", done
        assert done["progress"]["fraction"] == 1.0
        answer = (await client.get(f"/v1/jobs/{job['id']}/result")).json()
        ready = (await client.get("/readyz")).json()
    await app.state.jobs.shutdown()
    app.state.executor.close()  # the pool's processes; Ray: this module's cluster stays up
    answer["meta"].pop("elapsed_ms")
    return answer | {"executor": ready["executor"], "compute": ready["compute"]}


async def test_an_http_job_on_ray_answers_what_local_answers(tmp_path) -> None:
    local = await _job_answer(Settings(jobs_db_path=str(tmp_path / "a.sqlite3"),
                                       workers_cpu=2, max_concurrency=2))
    on_ray = await _job_answer(Settings(jobs_db_path=str(tmp_path / "b.sqlite3"),
                                        executor="ray", ray_address="local", workers_cpu=2,
                                        max_concurrency=2))
    assert local.pop("executor")["name"] == "local"
    assert local.pop("compute")["job_slots"] == 1  # local jobs compute here: all but one slot
    assert on_ray.pop("compute")["job_slots"] == 8  # Ray jobs wait: four per compute slot
    ray_state = on_ray.pop("executor")
    assert ray_state["name"] == "ray" and ray_state["reachable"] is True
    assert ray_state["workers"] == 2
    assert on_ray == local
    assert len(local["rows"]) == 3


def test_a_server_process_joins_the_cluster_by_address(tmp_path) -> None:
    """A replica as deployed: its own process, OPTIM_RAY_ADDRESS naming a running cluster
    (this module's, by its GCS address); a job's answer equals the in-process one batch."""
    import httpx

    from optim_core import resolve_starts as starts_of
    from tests.conftest import start_server
    from tests.service.test_jobs import _wait_status

    address = ray.get_runtime_context().gcs_address
    proc, url = start_server({"OPTIM_EXECUTOR": "ray", "OPTIM_RAY_ADDRESS": address,
                              "OPTIM_JOBS_DB_PATH": str(tmp_path / "jobs.sqlite3"),
                              "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        ready = httpx.get(f"{url}/readyz", timeout=10).json()["executor"]
        assert ready == {"name": "ray", "address": address, "reachable": True, "workers": 2}
        job = httpx.post(f"{url}/v1/jobs", json={"kind": "sweep", "request": SWEEP}).json()
        assert _wait_status(url, job["id"], ("succeeded", "failed"))["status"] == "succeeded"
        answer = httpx.get(f"{url}/v1/jobs/{job['id']}/result", timeout=30).json()
    finally:
        proc.terminate()
        proc.wait(20)
    loss = builtin_loss("rosenbrock")
    here = sweep(loss, {"name": "adam"}, SWEEP["grid"],
                 starts_of(loss, SWEEP["start"]), max_steps=SWEEP["max_steps"])
    assert answer["rows"] == here.rows and answer["best"] == here.best


def test_a_killed_control_actor_costs_progress_not_the_job_nor_the_next(executor) -> None:
    """The job-control actor killed mid-job: the job ends with its one-batch answer (its
    shards go on without progress reports), and the next jobs get a new actor."""
    import threading

    loss = builtin_loss("rosenbrock")
    starts = resolve_starts(loss, {"random": {"n": 3000, "seed": 6}})
    options = {"max_steps": 3000, "stop": StopCriteria(grad_tol=0)}
    seen: list[tuple[int, int, int]] = []
    watch = Watching(executor)
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(report=sweep(
        loss, {"name": "sgd"}, {"lr": [1e-4]}, starts, executor=watch,
        progress=lambda *a: seen.append(a), **options)))
    thread.start()
    deadline = time.monotonic() + 60
    while not watch.all_computing():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ray.kill(executor._control)
    thread.join(120)
    assert not thread.is_alive()
    here = sweep(loss, {"name": "sgd"}, {"lr": [1e-4]}, starts, **options)
    assert answer["report"].rows == here.rows
    again = sweep(loss, {"name": "sgd"}, {"lr": [1e-4]}, starts, executor=executor,
                  progress=lambda *a: seen.append(a), **options)
    assert again.rows == here.rows and seen[-1] == (3000, 3000, 0)
