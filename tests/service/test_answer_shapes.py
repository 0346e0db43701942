"""The declared response models own the answers' shape: every field a real answer carries is
declared in its model (recursively), and every declared required field is there. The models
keep extra="allow" so a newer server never breaks an older client; this test is what keeps
the server from sending what it has not declared."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from service.schemas import responses as R

RAVINE = {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"}
NEWTON_SADDLE = {"kind": "expression", "expression": "x^2 - y^2 + 0.1*y^4"}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside an annotation (Optional[X], list[X], dict[str, X], X | None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, typing.ForwardRef):
        return None
    for arg in typing.get_args(annotation) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (dict, typing.Union, types.UnionType):
        return origin is dict or any(_is_mapping(a) for a in typing.get_args(annotation))
    return False


def undeclared(model: type[BaseModel], data: dict[str, Any], path: str = "") -> list[str]:
    problems = []
    fields = model.model_fields
    for name, field in fields.items():
        if field.is_required() and name not in data:
            problems.append(f"{path}{name} (declared, required, missing)")
    for key, value in data.items():
        if key not in fields:
            problems.append(f"{path}{key} (sent, not declared in {model.__name__})")
            continue
        inner = _model_in(fields[key].annotation)
        if inner is None or value is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    problems += undeclared(inner, item, f"{path}{key}[{i}].")
        elif isinstance(value, dict) and not _is_mapping(fields[key].annotation):
            problems += undeclared(inner, value, f"{path}{key}.")
        elif isinstance(value, dict):  # dict[str, Model]
            for k, item in value.items():
                if isinstance(item, dict):
                    problems += undeclared(inner, item, f"{path}{key}[{k}].")
    return problems


CASES = [
    ("/v1/optimize", {"loss": RAVINE, "start": [[-8, 1], [3, 2]], "max_steps": 300,
                      "optimizer": {"name": "sgd", "lr": 0.0196}}, R.OptimizeResponse),
    ("/v1/optimize", {"loss": NEWTON_SADDLE, "start": [0.5, 0.1], "max_steps": 30,
                      "optimizer": {"name": "newton"}}, R.OptimizeResponse),
    ("/v1/optimize", {"loss": {"kind": "dataset", "model": "logistic", "synthetic":
                               {"n_samples": 200, "n_features": 3, "seed": 1},
                               "batch_size": 16},
                      "max_steps": 200, "seed": 3, "optimizer": {"name": "nadam", "lr": 0.05}},
     R.OptimizeResponse),
    ("/v1/compare", {"loss": RAVINE, "start": [-8, 1], "max_steps": 300,
                     "optimizers": [{"name": "sgd", "lr": 0.0196}, {"name": "adam", "lr": 0.1},
                                    {"name": "radam", "lr": 0.05}]}, R.CompareResponse),
    ("/v1/sweep", {"loss": RAVINE, "start": [-8, 1], "max_steps": 200, "include_runs": True,
                   "optimizer": {"name": "momentum"}, "grid": {"lr": [0.001, 0.01, 0.03]}},
     R.SweepResponse),
    ("/v1/analyze", {"loss": NEWTON_SADDLE, "points": [[0, 0], [1, 1]]}, R.AnalyzeResponse),
    ("/v1/landscape", {"loss": RAVINE, "bounds": [[-1, 1], [-1, 1]], "resolution": [5, 4]},
     R.LandscapeResponse),
]


@pytest.mark.parametrize(("path", "body", "model"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
async def test_every_answer_field_is_declared(client, path, body, model):
    r = await client.post(path, json=body)
    assert r.status_code == 200, r.text
    assert undeclared(model, r.json()) == []
    model.model_validate(r.json())


async def test_job_documents_are_declared(client):
    job = (await client.post("/v1/jobs", json={"kind": "optimize", "request": CASES[0][1]})
           ).json()
    assert undeclared(R.Job, job) == []


def test_the_checker_finds_an_undeclared_field():
    assert undeclared(R.SweepRow, {"hyperparameters": {}, "success_rate": 1.0,
                                   "divergence_rate": 0.0, "median_final_loss": 0.1,
                                   "median_steps_to_tol": 3, "surprise": 1}) == [
        "surprise (sent, not declared in SweepRow)"]
