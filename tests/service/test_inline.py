"""Small first-order requests on a ready loss run on the event loop; the answer is the same."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from optim_core.losses.expression import expression_loss
from service import translate
from service.compute import ComputeGate
from service.schemas.requests import CompareRequest, OptimizeRequest
from service.settings import Settings

ROSENBROCK = {"kind": "builtin", "name": "rosenbrock"}


def small(body: dict, settings: Settings | None = None) -> bool:
    model = CompareRequest if "optimizers" in body else OptimizeRequest
    return translate.is_small(model.model_validate(body), settings or Settings())


def test_which_requests_run_inline():
    assert small({"loss": ROSENBROCK, "max_steps": 1, "optimizer": {"name": "adam"}})
    assert small({"loss": ROSENBROCK, "max_steps": 1000})
    assert not small({"loss": ROSENBROCK, "max_steps": 1001})  # past inline_max_work
    assert not small({"loss": ROSENBROCK, "max_steps": 300, "start": [[0, 0], [1, 1]],
                      "optimizers": [{"name": "sgd"}, {"name": "adam"}]})  # 4 × 300
    assert small({"loss": ROSENBROCK, "max_steps": 100, "start": {"random": {"n": 5}},
                  "optimizers": [{"name": "sgd"}, {"name": "adam"}]})
    assert not small({"loss": ROSENBROCK, "max_steps": 5, "optimizer": {"name": "newton"}})
    assert not small({"loss": {"kind": "builtin", "name": "sphere", "dim": 11},
                      "max_steps": 5})
    assert small({"loss": {"kind": "quadratic", "A": [[1, 0], [0, 9]]}, "max_steps": 50})
    assert not small({"loss": {"kind": "dataset", "model": "linear", "synthetic": {
        "n_samples": 20, "n_features": 2}}, "max_steps": 5})
    assert not small({"loss": ROSENBROCK, "max_steps": 1},
                     Settings(inline_max_work=0, jobs_db_path=":memory:"))


def test_an_expression_runs_inline_only_once_it_is_cached():
    text = "(x - 0.25)^2 + 3*(y + x)^2 + 0.125"
    body = {"loss": {"kind": "expression", "expression": text}, "start": [1, 1],
            "max_steps": 10}
    assert not small(body)  # a miss would wait for the symbolic worker: not on the loop
    expression_loss(text, None, translate._expression_limits(Settings()))
    assert small(body)


def test_a_long_tape_counts_in_the_inline_work():
    text = " + ".join(f"sin({i}*x + y)^2*exp(-(x - {i})^2)" for i in range(1, 9))
    loss = expression_loss(text, None, translate._expression_limits(Settings()))
    assert len(loss._value_grad_tape.instructions) > 4 * translate.INLINE_TAPE
    body = {"loss": {"kind": "expression", "expression": text}, "start": [0.5, 0.5]}
    assert small(body | {"max_steps": 100})
    assert not small(body | {"max_steps": 900})  # fine for a short tape, not for this one


@pytest.mark.parametrize("body", [
    {"loss": ROSENBROCK, "max_steps": 200, "optimizer": {"name": "adam", "lr": 0.05}},
    {"loss": {"kind": "quadratic", "A": [[1, 0], [0, 50]]}, "start": [[3, 1], [-2, 2]],
     "max_steps": 100, "optimizers": [{"name": "momentum", "lr": 0.01}, {"name": "sgd"}]},
])
async def test_inline_and_threaded_answers_agree(client, settings, body, monkeypatch):
    seen = []
    original = ComputeGate.run

    async def spy(self, fn, *args, inline=False, **kwargs):
        seen.append(inline)
        return await original(self, fn, *args, inline=inline, **kwargs)

    monkeypatch.setattr(ComputeGate, "run", spy)
    path = "/v1/compare" if "optimizers" in body else "/v1/optimize"
    inline = await client.post(path, json=body)
    settings.inline_max_work = 0  # the app reads this very settings object
    threaded = await client.post(path, json=body)
    assert seen == [True, False]
    a, b = inline.json(), threaded.json()
    assert inline.status_code == threaded.status_code == 200
    for run_a, run_b in zip(a["runs"], b["runs"], strict=True):
        assert run_a == run_b


async def test_small_requests_queue_and_get_429_when_the_service_is_saturated():
    from service.errors import OverloadedError

    gate = ComputeGate(max_concurrency=1, max_queue=0, retry_after_s=1)
    assert await gate.run(lambda: "inline", inline=True) == "inline"  # a free slot: inline
    await gate.limiter.acquire_on_behalf_of("long request")  # holds the only slot
    gate.admitted = 1
    with pytest.raises(OverloadedError):
        await gate.run(lambda: "inline", inline=True)


async def test_jobs_count_in_the_gate_and_never_take_the_last_slot():
    import threading

    from service.errors import OverloadedError

    gate = ComputeGate(max_concurrency=2, max_queue=4, retry_after_s=3)
    assert gate.job_slots == 1
    release = threading.Event()
    assert gate.reserve_job()  # the runner takes a job slot before it claims a job
    assert not gate.reserve_job()  # the only one
    job = asyncio.get_running_loop().create_task(gate.run_job(release.wait))
    while gate.busy < 1:
        await asyncio.sleep(0.01)
    assert gate.jobs_running == 1
    assert await gate.run(lambda: "answered", wait_s=1) == "answered"  # the slot jobs leave
    await gate.limiter.acquire_on_behalf_of("long request")  # takes the last slot
    began = asyncio.get_running_loop().time()
    with pytest.raises(OverloadedError) as caught:
        await gate.run(lambda: "late", wait_s=0.2)
    assert caught.value.waited_s == 0.2 and caught.value.retry_after == 3
    assert asyncio.get_running_loop().time() - began < 2
    gate.limiter.release_on_behalf_of("long request")
    release.set()
    assert await job is True
    assert gate.busy == 0 and gate.jobs_running == 0


async def test_jobs_on_a_cluster_hold_no_compute_slot():
    """With Ray the job's thread waits on the cluster: it leaves every slot to requests, and
    a replica runs several such jobs at once (four per slot by default, or the setting)."""
    import threading

    gate = ComputeGate(max_concurrency=2, max_queue=4, retry_after_s=3, jobs_hold_slots=False)
    assert gate.job_slots == 8
    assert ComputeGate(2, 4, 3, job_slots=3, jobs_hold_slots=False).job_slots == 3
    assert ComputeGate(2, 4, 3, job_slots=5).job_slots == 1  # local: never the last slot
    release = threading.Event()
    assert all(gate.reserve_job() for _ in range(3))
    jobs = [asyncio.get_running_loop().create_task(gate.run_job(release.wait))
            for _ in range(3)]
    while gate.job_limiter.borrowed_tokens < 3:
        await asyncio.sleep(0.01)
    assert gate.busy == 0 and gate.jobs_running == 3 and gate.waiting == 0
    answers = await asyncio.gather(*(gate.run(lambda: "answered", wait_s=1) for _ in range(2)))
    assert answers == ["answered", "answered"]  # both slots were the requests'
    # admission counts only slots jobs hold: with more remote jobs than slots + queue,
    # requests are still admitted
    small = ComputeGate(1, 0, 3, job_slots=4, jobs_hold_slots=False)
    assert all(small.reserve_job() for _ in range(3))
    more = [asyncio.get_running_loop().create_task(small.run_job(release.wait))
            for _ in range(3)]
    while small.job_limiter.borrowed_tokens < 3:
        await asyncio.sleep(0.01)
    assert await small.run(lambda: "admitted", wait_s=1) == "admitted"
    release.set()
    assert await asyncio.gather(*more) == [True, True, True]
    assert await asyncio.gather(*jobs) == [True, True, True]


async def test_a_request_that_cannot_get_a_slot_in_its_budget_is_a_503(settings):
    from service.main import create_app

    app = create_app(settings.model_copy(update={"max_concurrency": 1}))
    await app.state.gate.limiter.acquire_on_behalf_of("long request")  # holds the only slot
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.post("/v1/optimize", json={"loss": {"kind": "builtin", "name": "booth"},
                                               "time_budget_s": 0.3, "max_steps": 5000})
        ready = (await c.get("/readyz")).json()["compute"]
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["type"] == "/problems/busy" and "0.3 s" in r.json()["detail"]
    assert ready["busy"] == 1 and ready["job_slots"] == 1


def test_every_route_dependency_is_async():
    """FastAPI runs a sync dependency on a worker thread: two thread hops per request cost
    more than a small request's whole computation."""
    import inspect

    from fastapi.routing import APIRoute

    from service.main import ROUTE_MODULES

    def calls(dependant):
        for sub in dependant.dependencies:
            yield sub.call
            yield from calls(sub)

    routes = [r for m in ROUTE_MODULES for r in m.router.routes if isinstance(r, APIRoute)]
    found = [call for route in routes for call in calls(route.dependant)]
    assert len(found) >= 10
    def runs_on_the_loop(call):  # a coroutine, an async generator, or an object with either
        return any(inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)
                   for f in (call, type(call).__call__))

    assert all(runs_on_the_loop(call) for call in found), found


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/optimize", {"loss": ROSENBROCK, "max_steps": 3000}),  # past the inline work
    ("/v1/sweep", {"loss": ROSENBROCK, "max_steps": 50, "optimizer": {"name": "sgd"},
                   "grid": {"lr": [1e-4, 1e-3]}}),
    ("/v1/landscape", {"loss": ROSENBROCK, "resolution": [40, 30]}),
    ("/v1/analyze", {"loss": ROSENBROCK, "points": [[0, 0], [1, 1]]})])
async def test_answers_are_written_on_the_worker_not_the_event_loop(client, path, body,
                                                                    monkeypatch):
    """A large answer's JSON (~75 ms for 40 MB) must not hold up the event loop."""
    import threading

    from service import jsonio

    writers = []
    real = jsonio.dumps

    def dumps(content):
        writers.append(threading.current_thread())
        return real(content)

    monkeypatch.setattr(jsonio, "dumps", dumps)
    r = await client.post(path, json=body)
    assert r.status_code == 200, r.text
    assert writers and threading.main_thread() not in writers
