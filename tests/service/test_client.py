"""The Python client against a real server: every endpoint and error class, sync and async,
job progress, retries on 429 (its models against the OpenAPI document:
test_answer_shapes)."""

from __future__ import annotations

import re

import httpx
import pytest

from optim_client import AsyncOptimClient, OptimClient, ProblemError
from optim_core import OPTIMIZERS
from tests.conftest import ROOT

RAVINE = {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"}
COMPARE = {"loss": RAVINE, "start": [-8, 1], "record": {"max_points": 20},
           "optimizers": [{"name": "sgd", "lr": 0.0196}, {"name": "adam", "lr": 0.1}]}


@pytest.fixture(scope="module")
def server(module_server):
    return module_server


def test_every_endpoint(server):
    with OptimClient(server) as client:
        assert client.health() == {"status": "ok"}
        optimized = client.optimize({"loss": {"kind": "builtin", "name": "booth"},
                                     "optimizer": {"name": "newton"}})
        assert optimized.runs[0].status == "converged"
        assert optimized.runs[0].final.params == pytest.approx([1, 3])
        compared = client.compare(COMPARE)
        assert compared.summary[0].label == "adam" and compared.summary[0].rank == 1
        assert {f.code for f in compared.runs[0].findings} >= {"zigzag"}
        swept = client.sweep({"loss": RAVINE, "start": [1, 1], "optimizer": {"name": "sgd"},
                              "grid": {"lr": [0.001, 0.019, 0.05]}})
        assert len(swept.rows) == 3 and swept.rows[2].divergence_rate == 1.0
        land = client.landscape({"loss": RAVINE, "resolution": [4, 3],
                                 "bounds": [[-1, 1], [-1, 1]]})
        assert len(land.z) == 3 and len(land.z[0]) == 4
        analysis = client.analyze({"loss": RAVINE, "points": [[0, 0]]})
        assert analysis.points[0].kind == "minimum" and analysis.points[0].theory["gd"]
        svg = client.plot(COMPARE, panels=["contour"])
        assert svg.startswith(b"<?xml") and b"run-1" in svg
        assert len(client.optimizers()["optimizers"]) == len(OPTIMIZERS)
        assert any(f["name"] == "rosenbrock" for f in client.functions()["functions"])
        raw = client.request_json("POST", "/v1/compare", COMPARE)  # plain data, same answer
        assert [r["label"] for r in raw["runs"]] == [r.label for r in compared.runs]
        with pytest.raises(ProblemError) as info:
            client.request_json("GET", "/v1/jobs/no-such-job")
        assert info.value.status == 404


@pytest.mark.parametrize(("call", "status", "slug"), [
    (lambda c: c.optimize({"loss": {"kind": "expression", "expression": "x +"},
                           "start": [1]}), 400, "invalid-expression"),
    (lambda c: c.optimize({"loss": RAVINE, "max_steps": 10**9, "start": [1, 1]}), 413,
     "over-limit"),
    (lambda c: c.optimize({"loss": {"kind": "magic"}}), 422, "validation-error"),
    (lambda c: c.job("no-such-job"), 404, "not-found"),
])
def test_problems_raise_problem_errors(server, call, status, slug):
    with OptimClient(server) as client, pytest.raises(ProblemError) as info:
        call(client)
    assert info.value.status == status and info.value.type == f"/problems/{slug}"
    assert info.value.detail and info.value.problem["status"] == status


def test_job_progress_iteration_and_result(server):
    request = {"loss": RAVINE, "start": {"random": {"n": 32, "seed": 2}},
               "optimizer": {"name": "sgd", "lr": 1e-6}, "max_steps": 30_000,
               "record": {"max_points": 5}, "stop": {"grad_tol": 0}}
    with OptimClient(server) as client:
        job = client.submit_job("optimize", request)
        assert job.status in ("queued", "running") and not job.finished
        events = list(client.job_events(job.id))
        assert events[-1].event == "end" and events[-1].data["status"] == "succeeded"
        fractions = [e.data["progress"]["fraction"] for e in events if e.event == "progress"]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        result = client.job_result(job.id)
        assert len(result.runs) == 32 and result.runs[0].steps == 30_000
        assert client.job(job.id).finished


async def test_async_client(server):
    async with AsyncOptimClient(server) as client:
        assert (await client.health())["status"] == "ok"
        compared = await client.compare(COMPARE)
        assert compared.summary[0].label == "adam"
        raw = await client.request_json("GET", "/v1/optimizers")
        assert len(raw["optimizers"]) == len(OPTIMIZERS)
        result = await client.run_job("compare", COMPARE)
        assert [r.label for r in result.runs] == [r.label for r in compared.runs]
        job = await client.submit_job("optimize", {"loss": RAVINE, "start": [1, 1]})
        events = [e async for e in client.job_events(job.id)]
        assert events[0].event == "progress" and events[-1].event == "end"
        with pytest.raises(ProblemError) as info:
            await client.analyze({"loss": {"kind": "expression", "expression": "foo(x)"},
                                  "points": [1]})
        assert info.value.status == 400


def test_retries_on_429_honour_retry_after():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={
                "type": "/problems/overloaded", "title": "busy", "status": 429, "detail": "x"})
        return httpx.Response(200, json={"status": "ok"})

    with OptimClient("http://test", transport=httpx.MockTransport(handler)) as client:
        assert client.health() == {"status": "ok"}
    assert len(calls) == 3
    calls.clear()
    with OptimClient("http://test", retries=1, transport=httpx.MockTransport(handler)) as c, \
            pytest.raises(ProblemError) as info:
        c.health()
    assert info.value.status == 429 and len(calls) == 2


def test_client_imports_only_httpx_and_pydantic():
    source = " ".join(p.read_text() for p in (ROOT / "optim_client").glob("*.py")
                      if p.name != "cli.py")
    imported = set(re.findall(r"^(?:from|import) (\w+)", source, re.M))
    assert imported <= {"__future__", "asyncio", "collections", "os", "json", "time", "html",
                        "typing", "httpx", "pydantic", "optim_client"}


def test_the_documented_client_snippet_runs(server):
    readme = (ROOT / "docs" / "client.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(from optim_client.*?)```", readme, re.S).group(1)
    printed = []
    namespace = {"print": lambda *args: printed.append(args)}
    exec(snippet.replace("http://127.0.0.1:8000", server), namespace)  # our own README text
    assert printed[0] == ("adam", "zigzag")
    assert printed[-1] == ({"lr": 0.019},)
    assert any(p[0] == "end" for p in printed)


ISOLATED = '''
import importlib.abc, sys
ALLOWED = {"optim_client", "httpx", "httpcore", "h11", "h2", "hpack", "hyperframe", "anyio",
           "sniffio", "idna", "certifi", "pydantic", "pydantic_core", "typing_extensions",
           "annotated_types", "typing_inspection", "exceptiongroup", "brotli", "zstandard",
           "socksio", "_brotli"}
class OnlyHttpxAndPydantic(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in ALLOWED or top.startswith("_"):
            return None
        raise ImportError(f"optim_client imported {name}, beyond httpx and pydantic")
sys.meta_path.insert(0, OnlyHttpxAndPydantic())
from optim_client import OptimClient
with OptimClient(sys.argv[1]) as client:
    answer = client.optimize({"loss": {"kind": "builtin", "name": "booth"}, "max_steps": 50})
print(answer.runs[0].status, sorted(m for m in sys.modules if m.split(".")[0] in
      ("numpy", "service", "optim_core", "typer", "rich", "sympy", "fastapi", "orjson")))
'''


def test_the_client_needs_only_httpx_and_pydantic(server):
    """Every import beyond the standard library, httpx and pydantic (and their own
    dependencies) is refused in a fresh interpreter: the client still works end to end."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", ISOLATED, server], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] in ("converged", "max_steps")
    assert out.stdout.strip().endswith("[]")
