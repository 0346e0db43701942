"""The declared response models own the answers' shape. The answer types live in the core
(optim_core.answers); the service declares them on its routes and, with OPTIM_VALIDATE_ANSWERS
(on for every app and server the tests start), refuses to send an answer that does not match
them exactly; the client's pydantic models are held to the exported OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from optim_client import models as client_models
from service import translate
from service.main import create_app
from service.schemas import responses as R
from service.settings import Settings
from tests.conftest import ROOT
from tests.service.test_jobs import wait_for

RAVINE = {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"}
NEWTON_SADDLE = {"kind": "expression", "expression": "x^2 - y^2 + 0.1*y^4"}
OPTIMIZE = {"loss": RAVINE, "start": [[-8, 1], [3, 2]], "max_steps": 300,
            "optimizer": {"name": "sgd", "lr": 0.0196}}


def _exact(model: Any, answer: Any) -> None:
    TypeAdapter(model).validate_python(answer, strict=True, extra="forbid")


CASES = [
    ("/v1/optimize", OPTIMIZE, R.OptimizeResponse),
    ("/v1/optimize", {"loss": NEWTON_SADDLE, "start": [0.5, 0.1], "max_steps": 30,
                      "optimizer": {"name": "newton"}}, R.OptimizeResponse),
    ("/v1/optimize", {"loss": {"kind": "dataset", "model": "logistic", "synthetic":
                               {"n_samples": 200, "n_features": 3, "seed": 1},
                               "batch_size": 16},
                      "max_steps": 200, "seed": 3, "optimizer": {"name": "nadam", "lr": 0.05}},
     R.OptimizeResponse),
    ("/v1/optimize", {"loss": {"kind": "builtin", "name": "rosenbrock"}, "max_steps": 5,
                      "record": {"max_points": 2, "fields": []},
                      "optimizer": {"name": "adam", "lr": 1e300}}, R.OptimizeResponse),
    ("/v1/compare", {"loss": RAVINE, "start": [-8, 1], "max_steps": 300,
                     "optimizers": [{"name": "sgd", "lr": 0.0196}, {"name": "adam", "lr": 0.1},
                                    {"name": "radam", "lr": 0.05}]}, R.CompareResponse),
    ("/v1/sweep", {"loss": RAVINE, "start": [-8, 1], "max_steps": 200, "include_runs": True,
                   "optimizer": {"name": "momentum"}, "grid": {"lr": [0.001, 0.01, 0.03]}},
     R.SweepResponse),
    ("/v1/sweep", {"loss": RAVINE, "start": [-8, 1], "max_steps": 50,
                   "optimizer": {"name": "sgd"}, "grid": {"lr": [5.0, 9.0]}}, R.SweepResponse),
    ("/v1/analyze", {"loss": NEWTON_SADDLE, "points": [[0, 0], [1, 1]]}, R.AnalyzeResponse),
    ("/v1/landscape", {"loss": RAVINE, "bounds": [[-1, 1], [-1, 1]], "resolution": [5, 4]},
     R.LandscapeResponse),
]


@pytest.mark.parametrize(("path", "body", "model"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
async def test_every_answer_matches_its_model_exactly(client, path, body, model):
    r = await client.post(path, json=body)
    assert r.status_code == 200, r.text
    _exact(model, r.json())
    client_model = getattr(client_models, model.__name__)
    client_model.model_validate(r.json())


async def test_job_documents_and_results_match_their_models(client):
    job = (await client.post("/v1/jobs", json={"kind": "optimize", "request": OPTIMIZE})).json()
    _exact(R.Job, job)
    job = await wait_for(client, job["id"])
    assert job["status"] == "succeeded"
    _exact(R.Job, job)
    result = await client.get(f"/v1/jobs/{job['id']}/result")
    assert result.status_code == 200
    _exact(R.OptimizeResponse, result.json())


def test_exact_refuses_an_undeclared_and_a_missing_field():
    row = {"hyperparameters": {}, "success_rate": 1.0, "divergence_rate": 0.0,
           "median_final_loss": 0.1, "median_steps_to_tol": 3}
    _exact(R.SweepRow, row)
    with pytest.raises(ValidationError, match="surprise"):
        _exact(R.SweepRow, row | {"surprise": 1})
    with pytest.raises(ValidationError, match="success_rate"):
        _exact(R.SweepRow, {k: v for k, v in row.items() if k != "success_rate"})


@pytest.mark.parametrize("validate", [True, False])
async def test_an_answer_off_its_model_is_a_500_naming_the_field(validate, tmp_path,
                                                                 monkeypatch):
    real = translate.run_optimize

    def drifted(*args: Any, **kwargs: Any) -> Any:
        answer = real(*args, **kwargs)
        answer["runs"][0]["surprise"] = 1
        del answer["runs"][1]["final"]["grad_norm"]
        return answer

    monkeypatch.setattr(translate, "run_optimize", drifted)
    app = create_app(Settings(validate_answers=validate,
                              jobs_db_path=str(tmp_path / "jobs.sqlite3")))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.post("/v1/optimize", json=OPTIMIZE)
    if not validate:
        assert r.status_code == 200 and r.json()["runs"][0]["surprise"] == 1
        return
    assert r.status_code == 500
    problem = r.json()
    assert problem["type"] == "/problems/answer-shape"
    assert "runs.0.surprise: Extra inputs are not permitted" in problem["detail"]
    assert "runs.1.final.grad_norm: Field required" in problem["detail"]


# The client's models against the exported document ------------------------------------------

DOCUMENT = json.loads((ROOT / "openapi" / "openapi.json").read_text())
COMPONENTS = DOCUMENT["components"]["schemas"]
IGNORED = ("title", "description", "default")


def _answer_components() -> set[str]:
    """Every schema a successful JSON answer of some route refers to, transitively."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[1]
                if name not in found:
                    found.add(name)
                    walk(COMPONENTS[name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for operations in DOCUMENT["paths"].values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2"):
                    walk(response.get("content", {}).get("application/json", {}))
    return found


def _plain(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _plain(v) for k, v in schema.items() if k not in IGNORED}
    if isinstance(schema, list):
        return [_plain(v) for v in schema]
    return schema


def _accepts(client: dict[str, Any], server: dict[str, Any]) -> bool:
    """Whether the client's property schema takes all the server's: equal, or also null."""
    client, server = _plain(client), _plain(server)
    return client == server or client == {"anyOf": [server, {"type": "null"}]} or (
        "anyOf" in server and client == {"anyOf": [*server["anyOf"], {"type": "null"}]})


def mismatches(model: type[BaseModel], component: dict[str, Any]) -> list[str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    mine, theirs = schema.get("properties", {}), component.get("properties", {})
    problems = [f"{name}: in the document, not in the client"
                for name in theirs.keys() - mine.keys()]
    problems += [f"{name}: in the client, not in the document"
                 for name in mine.keys() - theirs.keys()]
    problems += [f"{name}: required by the client, optional in the document"
                 for name in set(schema.get("required", [])) - set(component.get("required", []))]
    problems += [f"{name}: the client takes {_plain(mine[name])}, the document says "
                 f"{_plain(theirs[name])}"
                 for name in mine.keys() & theirs.keys() if not _accepts(mine[name], theirs[name])]
    return sorted(problems)


def test_every_answer_schema_has_a_client_model_that_takes_it():
    names = _answer_components()
    assert {"OptimizeResponse", "CompareResponse", "SweepResponse", "Run", "Diagnostics",
            "Trajectory", "Meta", "Job", "Progress", "AnalyzeResponse"} <= names
    problems = {}
    for name in sorted(names):
        model = getattr(client_models, name, None)
        assert isinstance(model, type) and issubclass(model, BaseModel), \
            f"optim_client.models has no model {name}"
        if found := mismatches(model, COMPONENTS[name]):
            problems[name] = found
    assert problems == {}


def test_the_client_check_finds_drift():
    class Final(BaseModel):  # grad_norm dropped, loss narrowed, an extra field required
        params: list[float | None]
        loss: float
        surprise: int

    assert mismatches(Final, COMPONENTS["Final"]) == [
        "grad_norm: in the document, not in the client",
        "loss: the client takes {'type': 'number'}, the document says "
        "{'anyOf': [{'type': 'number'}, {'type': 'null'}]}",
        "surprise: in the client, not in the document",
        "surprise: required by the client, optional in the document"]
