"""Every error class answers a problem document that says what to fix."""

from __future__ import annotations

import pytest

from service.settings import Settings

PROBLEM = "application/problem+json"
RAVINE = {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"}


def assert_problem(r, status, slug):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["type"] == f"/problems/{slug}"
    assert body["title"] and body["detail"]
    return body


async def test_unparseable_expression_is_400_with_position(client):
    r = await client.post("/v1/optimize", json={"loss": {"kind": "expression",
                                                         "expression": "x^2 + $y"},
                                                "start": [1, 1]})
    body = assert_problem(r, 400, "invalid-expression")
    assert body["position"] == 7 and "column 7" in body["detail"]


@pytest.mark.parametrize(("expression", "slug"), [
    ("foo(x)", "unknown-name"), ("1e999*x", "non-finite-constant"),
    ("9**9**9**9 + x", "non-finite-constant"), ("x.__class__", "invalid-expression"),
    ("+".join(["x"] * 1500), "expression-too-large")])
async def test_expression_errors(client, expression, slug):
    r = await client.post("/v1/analyze", json={"loss": {"kind": "expression",
                                                        "expression": expression},
                                               "points": [1]})
    assert_problem(r, 400, slug)


async def test_loss_errors_are_400(client):
    cases = [
        ({"kind": "builtin", "name": "banana"}, "invalid-loss", "Unknown builtin"),
        ({"kind": "builtin", "name": "beale", "dim": 3}, "dimension-mismatch", "2 dimensions"),
        ({"kind": "quadratic", "A": [[1, 2], [0, 1]]}, "invalid-loss", "symmetric"),
        ({"kind": "quadratic", "A": [[1, 0], [0]]}, "invalid-loss", "square"),
        ({"kind": "quadratic", "A": [[1, 0], [0, 1]], "b": [1]}, "invalid-loss", "b must have"),
        ({"kind": "builtin", "name": "sphere", "params": {"q": 1}}, "invalid-loss",
         "no parameter"),
    ]
    for loss, slug, text in cases:
        r = await client.post("/v1/optimize", json={"loss": loss})
        body = assert_problem(r, 400, slug)
        assert text in body["detail"]


async def test_wrong_start_dimension_is_400(client):
    r = await client.post("/v1/optimize", json={"loss": {"kind": "builtin", "name": "sphere"},
                                                "start": [1, 2, 3]})
    body = assert_problem(r, 400, "dimension-mismatch")
    assert "2 coordinates" in body["detail"] and body["errors"][0]["loc"] == ["body", "start"]
    r = await client.post("/v1/optimize", json={"loss": RAVINE, "start": [[1, 2], [3]]})
    assert_problem(r, 400, "dimension-mismatch")
    r = await client.post("/v1/optimize", json={"loss": RAVINE})
    assert "start" in assert_problem(r, 400, "dimension-mismatch")["detail"]


async def test_dataset_errors(client):
    base = {"kind": "dataset", "model": "logistic"}
    cases = [({"X": [[1, 2], [3]], "y": [0, 1]}, "same number of features"),
             ({"X": [[1], [2]], "y": [0]}, "y has 1 values"),
             ({"X": [[1], [2]], "y": [0, 2]}, "0 or 1"),
             ({"X": [[1], [2]], "y": [0, 1], "batch_size": 3}, "larger than"),
             ({}, "either X and y")]
    for extra, text in cases:
        r = await client.post("/v1/optimize", json={"loss": base | extra})
        assert text in assert_problem(r, 400, "invalid-dataset")["detail"]
    r = await client.post("/v1/optimize", json={"loss": {
        "kind": "dataset", "model": "softmax", "X": [[1], [2]], "y": [0, 1.5]}})
    assert_problem(r, 400, "invalid-dataset")


async def test_schema_violations_are_422_with_loc(client):
    r = await client.post("/v1/optimize", json={"loss": RAVINE, "start": [1, 1],
                                                "optimizer": {"name": "adam", "beta1": 1.5}})
    body = assert_problem(r, 422, "validation-error")
    # the location as the client wrote it: no union branch labels such as "adam"
    assert body["errors"] == [{"loc": ["body", "optimizer", "beta1"],
                               "msg": "Input should be less than 1", "type": "less_than"}]
    assert body["detail"] == "body.optimizer.beta1: Input should be less than 1"
    r = await client.post("/v1/optimize", json={"loss": RAVINE, "start": [1, 1],
                                                "optimizer": {"name": "sgd", "lr": 0.1,
                                                              "bogus": 1}})
    assert assert_problem(r, 422, "validation-error")["errors"][0]["loc"] == [
        "body", "optimizer", "bogus"]
    r = await client.post("/v1/optimize", json={"loss": RAVINE, "unknown": True})
    assert_problem(r, 422, "validation-error")
    r = await client.post("/v1/optimize", json={"loss": {"kind": "magic"}})
    assert_problem(r, 422, "validation-error")
    r = await client.post("/v1/optimize", json={"loss": RAVINE, "optimizer": {"name": "lion"}})
    assert_problem(r, 422, "validation-error")
    r = await client.post("/v1/optimize", json={"loss": RAVINE, "max_steps": -1})
    assert_problem(r, 422, "validation-error")


async def test_the_schema_bounds_what_it_can_and_the_rest_is_400(client):
    """A schema-valid body never gets 422: a schedule's values carry its hyperparameter's
    bounds in the schema; what the schema cannot say is a 400 naming the place."""
    document = (await client.get("/openapi.json")).json()["components"]["schemas"]
    linear = document["UnitIntervalLinearSchedule"]["properties"]
    assert linear["start"]["minimum"] == 0 and linear["start"]["exclusiveMaximum"] == 1
    assert document["LinearSchedule"]["properties"]["end"]["exclusiveMinimum"] == 0
    assert document["ExpressionLossSpec"]["properties"]["expression"]["minLength"] == 1
    for name, field in (("momentum", "momentum"), ("adam", "beta1"), ("nesterov", "momentum")):
        schedule = {"name": "linear", "start": -8e-256, "end": 0.9, "steps": 10}
        r = await client.post("/v1/optimize", json={"loss": RAVINE, "start": [1, 1],
                                                    "optimizer": {"name": name, field: schedule}})
        assert_problem(r, 422, "validation-error")
        ok = await client.post("/v1/optimize", json={"loss": RAVINE, "start": [1, 1],
                                                     "max_steps": 5, "optimizer": {
                                                         "name": name,
                                                         field: schedule | {"start": 0.0}}})
        assert ok.status_code == 200, ok.text
    r = await client.post("/v1/optimize", json={"loss": RAVINE, "start": [1, 1], "optimizer": {
        "name": "sgd", "lr": {"name": "linear", "start": 0, "end": 0.1, "steps": 5}}})
    assert_problem(r, 422, "validation-error")
    r = await client.post("/v1/optimize", json={"loss": {"kind": "expression",
                                                         "expression": ""}})
    assert_problem(r, 422, "validation-error")
    # schema-valid, unusable: 400, located in the optimize body's own `optimizer`
    r = await client.post("/v1/optimize", json={"loss": RAVINE, "start": [1, 1], "optimizer": {
        "name": "sgd", "lr": {"name": "warmup_cosine", "lr": 0.1, "warmup_steps": 9,
                              "steps": 5}}})
    body = assert_problem(r, 400, "invalid-hyperparameter")
    assert body["errors"][0]["loc"] == ["body", "optimizer", "lr", "warmup_steps"]
    r = await client.post("/v1/compare", json={"loss": RAVINE, "start": [1, 1], "optimizers": [
        {"name": "adam"}, {"name": "sgd", "lr": {"name": "warmup_cosine", "lr": 0.1,
                                                 "warmup_steps": 9, "steps": 5}}]})
    body = assert_problem(r, 400, "invalid-hyperparameter")
    assert body["errors"][0]["loc"] == ["body", "optimizers", 1, "lr", "warmup_steps"]


async def test_sweep_grid_errors_point_into_the_grid(client):
    r = await client.post("/v1/sweep", json={"loss": RAVINE, "start": [1, 1],
                                             "optimizer": {"name": "sgd"},
                                             "grid": {"lr": [0.1, -1]}})
    body = assert_problem(r, 400, "invalid-hyperparameter")  # the schema cannot bound a grid
    assert body["errors"][0]["loc"] == ["body", "grid", "lr", 1]
    r = await client.post("/v1/sweep", json={"loss": RAVINE, "start": [1, 1],
                                             "optimizer": {"name": "sgd"},
                                             "grid": {"beta9": [1]}})
    assert "beta9" in assert_problem(r, 400, "invalid-hyperparameter")["detail"]
    r = await client.post("/v1/sweep", json={"loss": RAVINE, "start": [1, 1],
                                             "optimizer": {"name": "sgd"}, "grid": {"lr": []}})
    assert_problem(r, 422, "validation-error")


async def test_nan_literals_and_bad_json_are_rejected(client):
    for raw in (b'{"loss": {"kind": "builtin", "name": "sphere"}, "start": [NaN, 1]}',
                b'{"loss": {"kind": "builtin", "name": "sphere"}, "start": [Infinity, 1]}',
                b'{"loss": ', b"[" * 5000 + b"]" * 5000):
        r = await client.post("/v1/optimize", content=raw,
                              headers={"content-type": "application/json"})
        assert_problem(r, 422, "invalid-json")
    r = await client.post("/v1/optimize", content=b'{"loss": {"kind": "builtin", "name": '
                          b'"sphere"}, "start": [1e999, 1]}',
                          headers={"content-type": "application/json"})
    assert r.status_code == 422


async def test_404_and_405_are_problems(client):
    assert_problem(await client.get("/v1/nothing"), 404, "not-found")
    assert_problem(await client.get("/v1/optimize"), 405, "method-not-allowed")


async def test_limits_are_413_naming_the_setting(client):
    r = await client.post("/v1/optimize", json={"loss": RAVINE, "max_steps": 10**6,
                                                "start": [1, 1]})
    body = assert_problem(r, 413, "over-limit")
    assert "OPTIM_MAX_STEPS" in body["detail"] and "POST /v1/jobs" in body["detail"]
    assert body["limit"] == "max_steps"
    r = await client.post("/v1/optimize", json={"loss": RAVINE, "start": {
        "random": {"n": 10**7}}})
    assert assert_problem(r, 413, "over-limit")["limit"] == "max_runs"
    r = await client.post("/v1/landscape", json={"loss": RAVINE, "resolution": [2000, 2000]})
    assert assert_problem(r, 413, "over-limit")["limit"] == "max_landscape_points"


async def test_work_limit(settings):
    import httpx

    from service.main import create_app

    app = create_app(Settings(max_work=1000))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        r = await c.post("/v1/optimize", json={"loss": RAVINE, "start": [1, 1],
                                               "max_steps": 1000})
        assert_problem(r, 413, "over-limit")


async def test_body_limit_before_parsing():
    import httpx

    from service.main import create_app

    app = create_app(Settings(max_body_bytes=100))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        r = await c.post("/v1/optimize", content=b"{" + b" " * 200 + b"}",
                         headers={"content-type": "application/json"})
        body = assert_problem(r, 413, "body-too-large")
        assert "OPTIM_MAX_BODY_BYTES" in body["detail"]

        async def chunks():
            for _ in range(10):
                yield b" " * 50

        r = await c.post("/v1/optimize", content=chunks(),
                         headers={"content-type": "application/json"})
        assert_problem(r, 413, "body-too-large")


async def test_time_budget_returns_partial_runs(client):
    r = await client.post("/v1/optimize", json={
        "loss": RAVINE, "start": [1, 1], "optimizer": {"name": "sgd", "lr": 1e-9},
        "max_steps": 100000, "time_budget_s": 0.2, "record": {"max_points": 10}})
    assert r.status_code == 200
    run = r.json()["runs"][0]
    assert run["status"] == "time_limit" and 0 < run["steps"] < 100000


async def test_unexpected_errors_are_generic_500_problems(settings, monkeypatch):
    import httpx

    from service import translate
    from service.main import create_app

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(translate, "run_analyze", boom)
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(
            app=app, raise_app_exceptions=False), base_url="http://t") as c:
        r = await c.post("/v1/analyze", json={"loss": RAVINE, "points": [1, 1]})
    body = assert_problem(r, 500, "internal")
    assert "secret" not in body["detail"]


async def test_overload_answers_429_with_retry_after(settings):
    import asyncio

    import httpx

    from service.main import create_app

    app = create_app(Settings(max_concurrency=1, max_queue=0))
    slow = {"loss": RAVINE, "start": [1, 1], "optimizer": {"name": "sgd", "lr": 1e-9},
            "max_steps": 100000, "time_budget_s": 1.0, "record": {"max_points": 2}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        first = asyncio.create_task(c.post("/v1/optimize", json=slow))
        await asyncio.sleep(0.2)
        r = await c.post("/v1/optimize", json=slow)
        body = assert_problem(r, 429, "overloaded")
        assert r.headers["retry-after"] == "1" and "retry" in body["detail"]
        assert (await c.get("/healthz")).status_code == 200
        assert (await first).status_code == 200


async def test_work_estimate_counts_rows_and_newton(client):
    big_fit = {"loss": {"kind": "dataset", "model": "logistic", "synthetic": {
        "n_samples": 100_000, "n_features": 10, "noise": 0.5, "seed": 0}},
        "optimizer": {"name": "sgd", "lr": 0.1}, "max_steps": 1000}
    r = await client.post("/v1/optimize", json=big_fit)
    body = assert_problem(r, 413, "over-limit")
    assert body["limit"] == "max_work" and "POST /v1/jobs" in body["detail"]
    r = await client.post("/v1/jobs", json={"kind": "optimize", "request": big_fit})
    assert r.status_code == 202
    await client.delete(f"/v1/jobs/{r.json()['id']}")
    # the same minibatch fit touches 64 rows a step: within the synchronous limit
    small = big_fit | {"loss": big_fit["loss"] | {"batch_size": 64}, "max_steps": 10}
    assert (await client.post("/v1/optimize", json=small)).status_code == 200


def test_step_cost_grows_with_newton_and_rows():
    from optim_core.losses.catalog import BuiltinLoss
    from optim_core.losses.dataset import dataset_loss
    from optim_core.plan import step_cost

    sphere = BuiltinLoss("sphere", 50)
    assert step_cost(sphere, "adam") == 50
    assert step_cost(sphere, "newton") == 50 * 100
    data = dataset_loss({"model": "linear", "synthetic": {"n_samples": 1000, "n_features": 3,
                                                         "noise": 0.1, "seed": 0}})
    assert step_cost(data, "sgd") == 4 * 1000
    minibatch = dataset_loss({"model": "linear", "batch_size": 10, "synthetic": {
        "n_samples": 1000, "n_features": 3, "noise": 0.1, "seed": 0}})
    assert step_cost(minibatch, "sgd") == 4 * 10


@pytest.mark.parametrize("headers", [{}, {"content-type": "text/plain"},
                                     {"content-type": "application/x-www-form-urlencoded"}])
async def test_a_body_not_sent_as_json_is_a_415_naming_the_header(client, headers):
    body = b'{"loss": {"kind": "builtin", "name": "booth"}}'
    r = await client.post("/v1/optimize", content=body, headers=headers)
    assert r.status_code == 415
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"] == "/problems/unsupported-media-type"
    assert "content-type: application/json" in problem["detail"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8",
                                          "Application/JSON", "application/problem+json"])
async def test_json_media_types_with_parameters_are_accepted(client, content_type):
    body = b'{"loss": {"kind": "builtin", "name": "booth"}, "max_steps": 2}'
    r = await client.post("/v1/optimize", content=body, headers={"content-type": content_type})
    assert r.status_code == 200, r.text


async def test_405_names_every_method_of_the_path(client):
    r = await client.request("PUT", "/v1/jobs/abc")
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) == {"DELETE", "GET"}
    assert "DELETE" in r.json()["detail"]
