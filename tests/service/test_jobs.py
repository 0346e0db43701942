"""Jobs: lifecycle, progress, events, cancellation, failures, persistence across restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import orjson
import pytest

from service.jobs import manager as job_manager
from service.main import create_app
from tests.conftest import free_port, start_server

RAVINE = {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"}
QUICK = {"loss": RAVINE, "start": [[1, 1], [-2, 0.5]], "max_steps": 300,
         "optimizers": [{"name": "sgd", "lr": 0.015}, {"name": "adam", "lr": 0.05}]}
MEDIUM = {"loss": RAVINE, "start": {"random": {"n": 64, "seed": 5}}, "max_steps": 60_000,
          "optimizer": {"name": "sgd", "lr": 1e-9}, "record": {"max_points": 10},
          "stop": {"grad_tol": 0}}  # ~2 s of work, within the synchronous limits
SLOW = {"loss": RAVINE, "start": {"random": {"n": 64, "seed": 3}}, "max_steps": 400_000,
        "optimizer": {"name": "sgd", "lr": 1e-9}, "record": {"max_points": 10},
        "stop": {"grad_tol": 0}}


async def wait_for(client, job_id, statuses=("succeeded", "failed", "cancelled"), limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['status']}")


async def test_lifecycle_result_equals_the_synchronous_answer(client):
    r = await client.post("/v1/jobs", json={"kind": "compare", "request": QUICK})
    assert r.status_code == 202
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}" == job["links"]["self"]
    assert job["status"] in ("queued", "running") and job["kind"] == "compare"
    assert job["created_at"].endswith("Z")
    done = await wait_for(client, job["id"])
    assert done["status"] == "succeeded" and done["progress"]["fraction"] == 1.0
    assert done["started_at"] and done["finished_at"] and done["error"] is None
    result = (await client.get(f"/v1/jobs/{job['id']}/result")).json()
    direct = (await client.post("/v1/compare", json=QUICK)).json()
    for answer in (result, direct):
        answer["meta"].pop("elapsed_ms")
    assert result == direct


async def test_progress_is_monotone_and_the_result_waits(client):
    job = (await client.post("/v1/jobs", json={"kind": "optimize", "request": SLOW})).json()
    r = await client.get(f"/v1/jobs/{job['id']}/result")
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    seen, etas = [], []
    for _ in range(40):
        current = (await client.get(f"/v1/jobs/{job['id']}")).json()
        seen.append(current["progress"]["steps_done"])
        etas.append(current["progress"]["eta_s"])
        if current["status"] == "running" and current["progress"]["steps_done"] > 0:
            progress = current["progress"]
            assert progress["steps_total"] == 400_000 and progress["runs_active"] == 64
            assert 0 < progress["fraction"] < 1
        await asyncio.sleep(0.05)
    assert seen == sorted(seen) and seen[-1] > 0
    # no estimate until the rate is measured (the first report includes the set-up), then one
    assert etas[0] is None and etas[-1] is not None and etas[-1] > 0
    r = await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code in (200, 202)
    done = await wait_for(client, job["id"])
    assert done["status"] == "cancelled"
    # the progress says what was done, not the whole job
    progress = done["progress"]
    assert 0 < progress["steps_done"] < 400_000 and 0 < progress["fraction"] < 1
    assert progress["runs_active"] == 0 and progress["eta_s"] == 0
    assert progress["fraction"] == pytest.approx(progress["steps_done"] / 400_000, abs=1e-5)
    result = (await client.get(f"/v1/jobs/{job['id']}/result")).json()
    assert result["partial"] is True and result["partial_reason"] == "cancelled"
    assert {run["status"] for run in result["runs"]} == {"cancelled"}
    assert all(0 < run["steps"] < 400_000 for run in result["runs"])
    # cancelled jobs stay until deleted; DELETE removes the job and its result
    assert (await client.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 200
    r = await client.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 204 and r.content == b""
    for path in ("", "/result", "/events"):
        assert (await client.get(f"/v1/jobs/{job['id']}{path}")).status_code == 404
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 404
    assert (await client.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 404


async def test_a_finished_job_is_whole_and_not_partial(client):
    job = (await client.post("/v1/jobs", json={"kind": "compare", "request": QUICK})).json()
    done = await wait_for(client, job["id"])
    assert done["progress"]["fraction"] == 1.0 and done["progress"]["steps_done"] == 300
    result = (await client.get(f"/v1/jobs/{job['id']}/result")).json()
    assert "partial" not in result and "partial_reason" not in result


async def test_deleting_a_running_job_stops_it_and_removes_it(client):
    job = (await client.post("/v1/jobs", json={"kind": "optimize", "request": SLOW})).json()
    await wait_for(client, job["id"], statuses=("running",))
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
    assert (await client.get(f"/v1/jobs/{job['id']}")).status_code == 404
    # its runner stops (the job slot is free again): a new job runs to the end
    quick = (await client.post("/v1/jobs", json={"kind": "compare", "request": QUICK})).json()
    assert (await wait_for(client, quick["id"]))["status"] == "succeeded"


async def test_unknown_and_malformed_ids_are_404_before_any_store_call(client):
    for job_id in ("nope", "%00", "a" * 31, "A" * 32, "g" * 32, "0" * 33, "x" * 5000,
                   "0" * 32):
        for method, path in (("GET", ""), ("GET", "/result"), ("GET", "/events"),
                             ("POST", "/cancel"), ("DELETE", "")):
            r = await client.request(method, f"/v1/jobs/{job_id}{path}")
            assert r.status_code == 404, (job_id, method, path, r.text)
            assert r.headers["content-type"] == "application/problem+json"


async def test_jobs_are_listed_newest_first_a_page_at_a_time(client):
    ids = []
    for i in range(5):
        request = QUICK | {"max_steps": 10 + i}
        ids.append((await client.post("/v1/jobs", json={"kind": "compare",
                                                        "request": request})).json()["id"])
    seen, cursor = [], None
    for _ in range(4):
        r = await client.get("/v1/jobs", params={"limit": 2} | ({"cursor": cursor}
                                                                 if cursor else {}))
        assert r.status_code == 200
        page = r.json()
        assert len(page["jobs"]) <= 2
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert (await client.get("/v1/jobs", params={"cursor": "not-a-cursor"})).status_code == 400
    assert (await client.get("/v1/jobs", params={"limit": 0})).status_code == 422
    for job_id in ids:
        await wait_for(client, job_id)


async def test_job_validation_matches_the_endpoint(client):
    bad = {"loss": {"kind": "expression", "expression": "x +"}, "start": [1]}
    r = await client.post("/v1/jobs", json={"kind": "optimize", "request": bad})
    assert r.status_code == 400 and r.json()["position"] == 4
    r = await client.post("/v1/jobs", json={"kind": "optimize", "request": {
        "loss": RAVINE, "optimizer": {"name": "sgd", "lr": -1}}})
    assert r.status_code == 422
    assert any(e["loc"][:2] == ["body", "request"] for e in r.json()["errors"])
    r = await client.post("/v1/jobs", json={"kind": "teleport", "request": {}})
    assert r.status_code == 422
    # an error the engine finds (not the schema) points into `request` as well
    r = await client.post("/v1/jobs", json={"kind": "compare", "request": {
        "loss": RAVINE, "start": [1, 1], "optimizers": [{"name": "sgd", "label": "a"},
                                                        {"name": "adam", "label": "a"}]}})
    assert r.status_code == 400
    assert r.json()["errors"][0]["loc"] == ["body", "request", "optimizers", 1, "label"]
    # over the synchronous limit but within the job limits: 413 for /v1/optimize, 202 here
    big = {"loss": RAVINE, "start": [1, 1], "max_steps": 200_000, "record": {"max_points": 5}}
    assert (await client.post("/v1/optimize", json=big)).status_code == 413
    r = await client.post("/v1/jobs", json={"kind": "optimize", "request": big})
    assert r.status_code == 202
    await client.post(f"/v1/jobs/{r.json()['id']}/cancel")
    r = await client.post("/v1/jobs", json={"kind": "optimize", "request": big | {
        "max_steps": 10**9}})
    assert r.status_code == 413 and r.json()["limit"] == "max_steps"


async def test_a_failed_job_carries_its_problem_document(client, monkeypatch):
    from optim_core.errors import LossError

    real = job_manager.RUNNERS["optimize"]

    def failing(body, settings, dry_run=False, **engine):
        if dry_run:
            return real(body, settings, dry_run=True)
        raise LossError("the loss went away")

    monkeypatch.setitem(job_manager.RUNNERS, "optimize", failing)
    job = (await client.post("/v1/jobs", json={"kind": "optimize", "request": {
        "loss": RAVINE, "start": [1, 1]}})).json()
    done = await wait_for(client, job["id"])
    assert done["status"] == "failed"
    assert done["error"] == {"type": "/problems/invalid-loss", "title": "Loss cannot be used",
                             "status": 400, "detail": "the loss went away"}
    r = await client.get(f"/v1/jobs/{job['id']}/result")
    assert r.status_code == 409 and r.json()["error"]["detail"] == "the loss went away"


async def test_queue_bound_answers_429(settings):
    app = create_app(settings.model_copy(update={"job_max_active": 1}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        first = await c.post("/v1/jobs", json={"kind": "optimize", "request": SLOW})
        assert first.status_code == 202
        r = await c.post("/v1/jobs", json={"kind": "optimize", "request": SLOW})
        assert r.status_code == 429 and r.headers["retry-after"]
        assert r.json()["type"] == "/problems/too-many-jobs" and r.json()["maximum"] == 1
        await c.post(f"/v1/jobs/{first.json()['id']}/cancel")
        await wait_for(c, first.json()["id"])
    await app.state.jobs.shutdown()  # no lifespan here: stop the runner's loops


def test_events_stream_progress_then_end(live_server):
    job = httpx.post(f"{live_server}/v1/jobs", json={"kind": "optimize", "request": SLOW |
                                                     {"max_steps": 20_000}}).json()
    events = []
    with httpx.stream("GET", f"{live_server}/v1/jobs/{job['id']}/events", timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, orjson.loads(line.split(":", 1)[1])))
                if name == "end":
                    break
    kinds = [name for name, _ in events]
    assert kinds[0] == "progress" and kinds[-1] == "end" and kinds.count("end") == 1
    assert events[-1][1]["status"] == "succeeded"
    done = [data["progress"]["steps_done"] for name, data in events if name == "progress"]
    assert done == sorted(done)
    # a client that connects late gets the current state, then the end
    with httpx.stream("GET", f"{live_server}/v1/jobs/{job['id']}/events", timeout=10) as r:
        lines = [line for line in r.iter_lines() if line.startswith("event:")]
    assert lines == ["event: progress", "event: end"]


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request, tmp_path):
    """The job store of a multi-process test: one SQLite file, or one PostgreSQL database."""
    env = {"OPTIM_JOBS_DB_PATH": str(tmp_path / "jobs.sqlite3")}
    if request.param == "postgres":
        env["OPTIM_JOBS_DB_URL"] = request.getfixturevalue("fresh_postgres_db")
    return env


def _store(env):
    from service.jobs import open_job_store

    return open_job_store(env["OPTIM_JOBS_DB_PATH"], env.get("OPTIM_JOBS_DB_URL"))


def _wait_status(url, job_id, statuses, limit=60.0):
    deadline = time.monotonic() + limit
    while True:
        job = httpx.get(f"{url}/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def _without_elapsed(answer):
    answer["meta"].pop("elapsed_ms")
    return answer


def test_results_survive_a_restart_and_a_killed_runners_job_runs_again(store_env):
    """kill -9 mid-job: the lease runs out, the next process runs the job again from the
    start, and its answer is the one the endpoint gives (jobs are deterministic)."""
    env = store_env | {"OPTIM_JOB_LEASE_S": "1"}
    port = free_port()
    proc, url = start_server(env, port)
    try:
        done = httpx.post(f"{url}/v1/jobs", json={"kind": "compare", "request": QUICK}).json()
        _wait_status(url, done["id"], ("succeeded",))
        before = httpx.get(f"{url}/v1/jobs/{done['id']}/result").json()
        killed = httpx.post(f"{url}/v1/jobs", json={"kind": "optimize", "request": MEDIUM}).json()
        _wait_status(url, killed["id"], ("running",))
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no goodbye: the job is left "running"
        proc.wait(10)
    proc, url = start_server(env, port)
    try:
        assert httpx.get(f"{url}/v1/jobs/{done['id']}/result").json() == before
        job = _wait_status(url, killed["id"], ("succeeded", "failed"))
        assert job["status"] == "succeeded" and job["attempts"] == 2
        rerun = httpx.get(f"{url}/v1/jobs/{killed['id']}/result").json()
        direct = httpx.post(f"{url}/v1/optimize", json=MEDIUM, timeout=60).json()
        assert _without_elapsed(rerun) == _without_elapsed(direct)
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_job_fails_as_interrupted_after_its_last_attempt(store_env):
    env = store_env | {"OPTIM_JOB_LEASE_S": "1", "OPTIM_JOB_MAX_ATTEMPTS": "1"}
    proc, url = start_server(env)
    try:
        job = httpx.post(f"{url}/v1/jobs", json={"kind": "optimize", "request": SLOW}).json()
        _wait_status(url, job["id"], ("running",))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    proc, url = start_server(env)
    try:
        failed = _wait_status(url, job["id"], ("failed",), limit=20)
        assert failed["reason"] == "interrupted" and failed["attempts"] == 1
        assert failed["error"]["type"] == "/problems/interrupted"
        assert failed["progress"]["runs_active"] == 0 and failed["progress"]["eta_s"] == 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_two_processes_on_one_store_never_take_each_others_jobs(store_env):
    """B starting up leaves A's running and queued jobs alone; when A dies, B runs them."""
    env = store_env | {"OPTIM_JOB_LEASE_S": "1.5", "OPTIM_MAX_CONCURRENCY": "2"}
    a, url_a = start_server(env)
    b = None
    try:
        first = httpx.post(f"{url_a}/v1/jobs", json={"kind": "optimize",
                                                       "request": MEDIUM}).json()
        _wait_status(url_a, first["id"], ("running",))
        b, url_b = start_server(env)
        time.sleep(2.5)  # longer than a lease: A's heartbeat keeps its job
        seen = httpx.get(f"{url_b}/v1/jobs/{first['id']}").json()
        assert seen["status"] in ("running", "succeeded") and seen["attempts"] == 1
        os.kill(a.pid, signal.SIGKILL)
        a.wait(10)
        second = httpx.post(f"{url_b}/v1/jobs", json={"kind": "compare",
                                                        "request": QUICK}).json()
        assert _wait_status(url_b, second["id"], ("succeeded",))["attempts"] == 1
        finished = _wait_status(url_b, first["id"], ("succeeded", "failed"))
        assert finished["status"] == "succeeded" and finished["attempts"] in (1, 2)
        result = httpx.get(f"{url_b}/v1/jobs/{first['id']}/result").json()
        direct = httpx.post(f"{url_b}/v1/optimize", json=MEDIUM, timeout=60).json()
        assert _without_elapsed(result) == _without_elapsed(direct)
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def test_sigterm_hands_jobs_back_and_never_stores_a_cancel(store_env):
    """A shutdown is no cancel: the running job goes back to the queue without a result, the
    queued one is not started, open event streams get their end event, and the next start
    runs both to the end."""
    env = store_env | {"OPTIM_MAX_CONCURRENCY": "2"}  # one job slot
    proc, url = start_server(env)
    running = httpx.post(f"{url}/v1/jobs", json={"kind": "optimize", "request": MEDIUM}).json()
    queued = httpx.post(f"{url}/v1/jobs", json={"kind": "compare", "request": QUICK}).json()
    _wait_status(url, running["id"], ("running",))
    ends = []
    with httpx.stream("GET", f"{url}/v1/jobs/{running['id']}/events", timeout=30) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("event: progress")
        proc.send_signal(signal.SIGTERM)
        name = None
        for line in lines:
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name == "end":
                ends.append(orjson.loads(line.split(":", 1)[1]))
    assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert len(ends) == 1 and ends[0]["reason"] == "shutdown"
    store = _store(env)
    for job_id in (running["id"], queued["id"]):
        job = store.get(job_id)
        assert job["status"] == "queued" and job["attempts"] == 0, job
        assert store.result(job_id) is None and job["finished_at"] is None
    assert store.get(queued["id"])["started_at"] is None
    proc, url = start_server(env)
    try:
        for job_id in (running["id"], queued["id"]):
            assert _wait_status(url, job_id, ("succeeded",))["attempts"] == 1
        result = httpx.get(f"{url}/v1/jobs/{running['id']}/result").json()
        direct = httpx.post(f"{url}/v1/optimize", json=MEDIUM, timeout=60).json()
        assert _without_elapsed(result) == _without_elapsed(direct)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("kind", ["optimize", "sweep"])
async def test_every_kind_runs_as_a_job(client, kind):
    request = {"loss": RAVINE, "start": [1, 1], "max_steps": 50}
    if kind == "sweep":
        request |= {"optimizer": {"name": "sgd"}, "grid": {"lr": [0.001, 0.01]}}
    job = (await client.post("/v1/jobs", json={"kind": kind, "request": request})).json()
    assert (await wait_for(client, job["id"]))["status"] == "succeeded"
    result = (await client.get(f"/v1/jobs/{job['id']}/result")).json()
    assert ("rows" in result) == (kind == "sweep")


async def test_a_job_whose_answer_cannot_be_stored_fails_instead_of_hanging(client, monkeypatch):
    from service.jobs import manager

    def unserialisable(answer):
        raise TypeError("cannot serialise")

    monkeypatch.setattr(manager, "dumps", unserialisable)
    job = (await client.post("/v1/jobs", json={"kind": "optimize", "request": {
        "loss": RAVINE, "start": [1, 1], "max_steps": 5}})).json()
    done = await wait_for(client, job["id"])
    assert done["status"] == "failed" and done["error"]["status"] == 500


def test_strided_trajectories_serialise():
    import numpy as np

    from service.jsonio import dumps

    strided = np.arange(12.0).reshape(3, 4)[:, ::2]
    expected = b'{"a":[[0.0,2.0],[4.0,6.0],[8.0,10.0]],"b":null}'
    assert dumps({"a": strided, "b": np.float64(np.nan)}) == expected


def test_an_unusable_job_store_path_fails_start_up_with_the_setting_to_fix(tmp_path):
    from service.errors import JobStoreUnavailableError
    from service.jobs.sqlite import SqliteJobStore

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(JobStoreUnavailableError, match="OPTIM_JOBS_DB_PATH"):
        SqliteJobStore(blocker / "jobs.sqlite3")


def test_a_job_store_url_that_is_not_postgresql_fails_start_up_naming_the_setting():
    from service.jobs import JobStoreUnavailableError, open_job_store

    with pytest.raises(JobStoreUnavailableError, match="OPTIM_JOBS_DB_URL"):
        open_job_store(":memory:", "mysql://root@localhost/jobs")


def test_an_unreachable_postgresql_fails_start_up_naming_the_setting():
    pytest.importorskip("psycopg")
    from service.jobs import JobStoreUnavailableError, open_job_store

    with pytest.raises(JobStoreUnavailableError, match="OPTIM_JOBS_DB_URL"):
        open_job_store(":memory:", f"postgresql://nobody@127.0.0.1:{free_port()}/none"
                       "?connect_timeout=2")


def test_the_postgresql_password_may_come_from_a_file(tmp_path, fresh_postgres_db):
    """OPTIM_JOBS_DB_PASSWORD_FILE (a Docker secret): its content is the connection's password
    (the test server trusts local users, so this checks it is passed, not that it is checked);
    an unreadable file fails start-up naming the setting."""
    from service.jobs import JobStoreUnavailableError, open_job_store

    secret = tmp_path / "pg-password"
    secret.write_text("s3cret-from-a-file\n")
    store = open_job_store(":memory:", fresh_postgres_db, password_file=secret)
    try:
        assert store._pool.kwargs["password"] == "s3cret-from-a-file"
    finally:
        store.close()
    with pytest.raises(JobStoreUnavailableError, match="OPTIM_JOBS_DB_PASSWORD_FILE"):
        open_job_store(":memory:", fresh_postgres_db, password_file=tmp_path / "missing")


async def test_a_runner_that_lost_its_lease_stops_and_stores_nothing(tmp_path):
    """The heartbeat learns the lease went to another runner (it expired while this one was
    stuck): the job stops computing here, and this runner never writes its end."""
    from service.settings import Settings

    app = create_app(Settings(max_concurrency=2, job_lease_s=0.6,
                              jobs_db_path=str(tmp_path / "jobs.sqlite3")))
    manager = app.state.jobs
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        job = (await client.post("/v1/jobs", json={"kind": "optimize", "request": SLOW})).json()
        await wait_for(client, job["id"], statuses=("running",))
        manager.store._fetch("UPDATE jobs SET owner = 'another-runner' WHERE id = ?", job["id"],
                             rows="count")
        deadline = time.monotonic() + 10
        while job["id"] in manager.running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert job["id"] not in manager.running  # stopped long before its 400,000 steps
        await asyncio.sleep(0.3)
        after = (await client.get(f"/v1/jobs/{job['id']}")).json()
        assert after["status"] == "running"  # the new runner's, untouched by the old one
        assert manager.store._fetch("SELECT owner FROM jobs WHERE id = ?",
                                    job["id"])[0] == "another-runner"
        await manager.shutdown()


def test_renew_counts_a_job_finished_by_its_owner_as_held_and_a_requeued_one_as_lost(tmp_path):
    """The heartbeat must not mistake a job that just finished for a lost lease."""
    from service.jobs.sqlite import SqliteJobStore

    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    done, running, taken = (f"{i:032x}" for i in range(3))
    for i, job_id in enumerate((done, running, taken)):
        store.create(job_id, "optimize", {"i": i}, max_active=8, retry_after=1)
    for _ in range(3):
        assert store.claim("me", 30.0) is not None
    assert store.finish(done, "succeeded", result=b"{}", ttl_s=60, owner="me")
    store._fetch("UPDATE jobs SET status = 'queued', owner = NULL WHERE id = ?", taken,
                 rows="count")
    assert store.renew([done, running, taken], "me", 30.0) == {done, running}
