"""Request ids, metrics, JSON logs, and the symbolic stage's hard time limit."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest

from service.main import create_app
from service.observability import JsonFormatter, request_id

RAVINE = {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"}


async def test_every_answer_has_a_request_id(client):
    r = await client.get("/healthz")
    first = r.headers["x-request-id"]
    assert len(first) == 32
    again = (await client.get("/healthz")).headers["x-request-id"]
    assert again != first and again[:16] == first[:16]  # one process prefix, a new counter
    r = await client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/healthz", headers={"x-request-id": "bad id; drop" * 50})
    assert len(r.headers["x-request-id"]) == 32  # not echoed: replaced by a fresh one
    r = await client.post("/v1/optimize", json={"loss": {"kind": "magic"}})
    assert r.status_code == 422 and r.headers["x-request-id"]


async def test_metrics_count_requests_work_rejections_and_cache(client):
    await client.post("/v1/optimize", json={"loss": RAVINE, "start": [1, 1], "max_steps": 10,
                                            "optimizer": {"name": "sgd", "lr": 1e-3}})
    await client.post("/v1/optimize", json={"loss": RAVINE, "start": [1, 1], "max_steps": 10})
    await client.post("/v1/optimize", json={"loss": {"kind": "expression",
                                                     "expression": "x +"}, "start": [1]})
    await client.post("/v1/optimize", json={"loss": RAVINE, "max_steps": 10**9,
                                            "start": [1, 1]})
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'optim_requests_total{method="POST",route="/v1/optimize",status="200"} 2.0' in text
    assert 'optim_rejections_total{reason="invalid-expression"} 1.0' in text
    assert 'optim_rejections_total{reason="over-limit"} 1.0' in text
    assert "optim_runs_total 2.0" in text and "optim_steps_total 20.0" in text
    assert 'optim_request_duration_seconds_bucket{le="10.0",route="/v1/optimize"}' in text
    assert "optim_symbolic_cache_hits_total" in text


def test_log_lines_are_json_with_the_request_id():
    token = request_id.set("rid-7")
    try:
        record = logging.LogRecord("service.access", logging.INFO, __file__, 1, "%s %s", ("GET",
                                   "/x"), None)
        record.status = 200
        entry = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert entry["request_id"] == "rid-7" and entry["message"] == "GET /x"
    assert entry["status"] == 200 and entry["level"] == "info"


def test_an_overrunning_worker_is_killed_and_replaced():
    from optim_core.expressions.parse import ExpressionLimits
    from service.errors import SymbolicTimeoutError
    from service.symbolic import IsolatedDeriver
    from tests.service.slow_symbolic import sleepy_derive

    began = time.monotonic()
    with pytest.raises(SymbolicTimeoutError, match="OPTIM_SYMBOLIC_TIMEOUT_S"):
        IsolatedDeriver(0.5, function=sleepy_derive)("x^2", None, ExpressionLimits())
    assert time.monotonic() - began < 5  # not the 60 s the function wanted
    parts = IsolatedDeriver(5.0)("x^2 + y", None, ExpressionLimits())
    assert parts.names == ("x", "y")


async def test_symbolic_stage_overrun_is_504_and_the_pool_recovers(settings, monkeypatch):
    from service import translate
    from tests.service.slow_symbolic import sleepy_derive

    real = translate.IsolatedDeriver
    monkeypatch.setattr(translate, "IsolatedDeriver",
                        lambda timeout, workers: real(0.5, workers, function=sleepy_derive))
    slow = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=slow),
                                 base_url="http://t") as c:
        r = await c.post("/v1/analyze", json={"loss": {"kind": "expression",
                                                        "expression": "x^3 + sin(y)*cosh(x)"},
                                              "points": [0.1, 0.2]})
        assert r.status_code == 504 and r.headers["content-type"] == "application/problem+json"
        assert "OPTIM_SYMBOLIC_TIMEOUT_S" in r.json()["detail"]
        assert (await c.get("/healthz")).status_code == 200
    monkeypatch.setattr(translate, "IsolatedDeriver", real)
    normal = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=normal),
                                 base_url="http://t") as c:
        r = await c.post("/v1/analyze", json={"loss": {"kind": "expression",
                                                        "expression": "x^3 + sin(y)*cosh(x)"},
                                              "points": [0.1, 0.2]})
        assert r.status_code == 200


async def test_unhandled_errors_are_logged_with_their_request_id(client, monkeypatch, caplog):
    from service import translate

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(translate, "run_landscape", broken)
    with caplog.at_level(logging.ERROR, logger="service"):
        r = await client.post("/v1/landscape", json={"loss": {"kind": "builtin",
                                                              "name": "booth"}},
                              headers={"x-request-id": "trace-500"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "trace-500"
    errors = [json.loads(JsonFormatter().format(rec)) for rec in caplog.records
              if rec.levelno >= logging.ERROR]
    assert errors and all(e["request_id"] == "trace-500" for e in errors)


async def test_docs_routes_are_counted_under_their_own_names(client):
    for path in ("/docs", "/redoc", "/openapi.json", "/nowhere"):
        await client.get(path)
    text = (await client.get("/metrics")).text
    for route in ("/docs", "/redoc", "/openapi.json"):
        assert f'route="{route}"' in text
    assert 'route="unmatched",status="404"' in text


async def test_readyz_and_metrics_show_the_compute_slots(client):
    ready = (await client.get("/readyz")).json()["compute"]
    assert ready == {"busy": 0, "waiting": 0, "capacity": 2, "queue": 4, "jobs_running": 0,
                     "job_slots": 1}
    text = (await client.get("/metrics")).text
    assert "optim_compute_busy 0.0" in text and "optim_jobs_running 0.0" in text
