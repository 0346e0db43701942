"""Accept: text/csv on optimize, compare, sweep, tune and job results: long-format tables
with the same numbers as the JSON answer."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from service.tables import wants_csv

RAVINE = {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"}
CSV = {"Accept": "text/csv"}


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def number(cell: str) -> float | None:
    return None if cell == "" else float(cell)


async def test_compare_as_csv_is_every_recorded_point_of_every_run(client):
    body = {"loss": RAVINE, "start": [[-8, 1], [3, -2]], "max_steps": 40,
            "optimizers": [{"name": "sgd", "lr": 0.0196}, {"name": "adam", "lr": 0.1}]}
    answer = (await client.post("/v1/compare", json=body)).json()
    r = await client.post("/v1/compare", json=body, headers=CSV)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["vary"] == "Accept"
    table = rows(r.text)
    assert list(table[0]) == ["run", "label", "step", "x", "y", "loss", "grad_norm", "lr"]
    assert len(table) == sum(len(run["trajectory"]["step"]) for run in answer["runs"])
    for row in table[::7]:
        run = answer["runs"][int(row["run"])]
        t = run["trajectory"]["step"].index(int(row["step"]))
        assert row["label"] == run["label"]
        assert [number(row["x"]), number(row["y"])] == run["trajectory"]["params"][t]
        assert number(row["loss"]) == run["trajectory"]["loss"][t]  # exact: shortest repr
        assert number(row["lr"]) == run["trajectory"]["lr"][t]


async def test_fields_not_recorded_are_empty_and_json_stays_the_default(client):
    body = {"loss": RAVINE, "start": [-8, 1], "max_steps": 5, "optimizer": {"name": "sgd",
                                                                          "lr": 0.01},
            "record": {"fields": ["loss"]}}
    table = rows((await client.post("/v1/optimize", json=body, headers=CSV)).text)
    assert len(table) == 6 and table[0]["x"] == "" and table[0]["lr"] == ""
    assert float(table[-1]["loss"]) > 0
    for accept in (None, "application/json", "application/json, text/csv",
                   "text/csv;q=0.5, application/json"):
        r = await client.post("/v1/optimize", json=body,
                              headers={} if accept is None else {"Accept": accept})
        assert r.headers["content-type"] == "application/json", accept


async def test_a_sweep_as_csv_is_its_rows_with_their_hyperparameters(client):
    body = {"loss": RAVINE, "optimizer": {"name": "momentum"}, "start": [-8, 1],
            "grid": {"lr": [0.005, 0.02], "momentum": [0.0, 0.9]}, "max_steps": 200}
    answer = (await client.post("/v1/sweep", json=body)).json()
    table = rows((await client.post("/v1/sweep", json=body, headers=CSV)).text)
    assert list(table[0]) == ["index", "lr", "momentum", "success_rate", "divergence_rate",
                              "median_final_loss", "median_steps_to_tol"]
    for row, expected in zip(table, answer["rows"], strict=True):
        assert float(row["lr"]) == expected["hyperparameters"]["lr"]
        assert float(row["success_rate"]) == expected["success_rate"]
        assert number(row["median_final_loss"]) == expected["median_final_loss"]


async def test_tune_trials_and_a_jobs_result_as_csv(client):
    body = {"loss": RAVINE, "start": [-8, 1], "max_steps": 100, "trials": 5,
            "optimizers": [{"name": "adam", "search": {"lr": {"low": 0.01, "high": 0.5}}}]}
    answer = (await client.post("/v1/tune", json=body)).json()
    table = rows((await client.post("/v1/tune", json=body, headers=CSV)).text)
    assert list(table[0]) == ["trial", "label", "lr", "objective", "status", "pruned_at",
                              "success_rate"]
    assert [float(row["lr"]) for row in table] == [t["hyperparameters"]["lr"]
                                                   for t in answer["trials"]]
    job = (await client.post("/v1/jobs", json={"kind": "tune", "request": body})).json()["id"]
    for _ in range(200):
        if (await client.get(f"/v1/jobs/{job}")).json()["status"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    r = await client.get(f"/v1/jobs/{job}/result", headers=CSV)
    assert r.headers["content-type"].startswith("text/csv") and rows(r.text) == table


@pytest.mark.parametrize(("accept", "expected"), [
    ("text/csv", True), ("text/csv, application/json", True),
    ("application/json, text/csv", False), ("application/json;q=0.5, text/csv", True),
    ("text/csv;q=0", False), ("*/*", False), ("text/*", False), (None, False),
])
def test_content_negotiation_prefers_what_the_client_ranks_first(accept, expected):
    assert wants_csv(accept) is expected


async def test_parquet_with_its_extra_or_a_406_naming_it(client):
    import importlib.util

    body = {"loss": RAVINE, "start": [-8, 1], "max_steps": 5,
            "optimizer": {"name": "sgd", "lr": 0.01}}
    r = await client.post("/v1/optimize", json=body,
                          headers={"Accept": "application/vnd.apache.parquet"})
    if importlib.util.find_spec("pyarrow") is None:
        assert r.status_code == 406 and "optim-service[parquet]" in r.json()["detail"]
        return
    import pyarrow.parquet

    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    table = pyarrow.parquet.read_table(io.BytesIO(r.content)).to_pylist()
    text = rows((await client.post("/v1/optimize", json=body, headers=CSV)).text)
    assert len(table) == len(text) == 6
    assert [row["loss"] for row in table] == [float(row["loss"]) for row in text]


async def test_a_benchmark_jobs_result_as_csv_is_its_table(client):
    body = {"losses": [{"kind": "builtin", "name": "sphere"}], "starts_per_loss": 2,
            "max_steps": 50, "targets": [0.1, 0.001], "optimizers": [{"name": "lbfgs"}]}
    job = (await client.post("/v1/jobs", json={"kind": "benchmark", "request": body})).json()
    for _ in range(200):
        if (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    answer = (await client.get(f"/v1/jobs/{job['id']}/result")).json()
    table = rows((await client.get(f"/v1/jobs/{job['id']}/result", headers=CSV)).text)
    assert list(table[0]) == ["loss", "label", "runs", "solved_0.1", "solved_0.001",
                              "median_evals_0.1", "median_evals_0.001", "best_gap"]
    assert float(table[0]["solved_0.1"]) == answer["table"][0]["solved"][0]
