"""Small first-order requests on a ready loss run on the event loop; the answer is the same."""

from __future__ import annotations

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
    from service.problems import OverloadedError

    gate = ComputeGate(max_concurrency=1, max_queue=0, retry_after_s=1)
    assert await gate.run(lambda: "inline", inline=True) == "inline"  # a free slot: inline
    gate.admitted = 1  # a long request holds the only slot
    with pytest.raises(OverloadedError):
        await gate.run(lambda: "inline", inline=True)


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
    assert all(inspect.iscoroutinefunction(call) for call in found), found
