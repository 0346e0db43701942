"""POST /v1/benchmark: runtime ECDFs and performance profiles in evaluations, each number
traceable to the /v1/optimize runs it comes from."""

from __future__ import annotations

import numpy as np
import pytest

from optim_core.losses.catalog import builtin_loss
from optim_core.studies.benchmark import draw_starts

OPTIMIZERS = [{"name": "momentum", "lr": 0.001}, {"name": "adam", "lr": 0.05},
              {"name": "lbfgs"}]
TARGETS = [1e-1, 1e-3, 1e-6]


def bench_body(**overrides):
    return {"losses": [{"kind": "builtin", "name": "sphere"},
                       {"kind": "builtin", "name": "rosenbrock"}],
            "optimizers": OPTIMIZERS, "starts_per_loss": 3, "max_steps": 300,
            "targets": TARGETS, "seed": 5} | overrides


async def test_each_hit_is_the_first_recorded_point_under_the_target(client):
    r = await client.post("/v1/benchmark", json=bench_body())
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["losses"] == ["sphere", "rosenbrock"]
    assert answer["targets"] == TARGETS
    rows = {(row["loss"], row["label"]): row for row in answer["table"]}
    assert len(rows) == 6
    for li, name in enumerate(["sphere", "rosenbrock"]):
        loss = builtin_loss(name)
        starts = draw_starts(loss, 3, 5, li)
        for spec in OPTIMIZERS:
            hits = []
            for start in starts:
                run = (await client.post("/v1/optimize", json={
                    "loss": {"kind": "builtin", "name": name}, "start": start.tolist(),
                    "max_steps": 300, "optimizer": spec,
                    "record": {"fields": ["loss", "evals"], "max_points": 302}})).json()["runs"][0]
                gaps = np.minimum.accumulate(np.array(run["trajectory"]["loss"]) - loss.f_min)
                evals = run["trajectory"]["evals"]
                hits.append([evals[int(np.argmax(gaps <= t))] if (gaps <= t).any() else None
                             for t in TARGETS])
            row = rows[(name, spec["name"])]
            for t in range(3):
                reached = [h[t] for h in hits if h[t] is not None]
                assert row["solved"][t] == pytest.approx(len(reached) / 3)
                assert row["median_evals"][t] == (float(np.median(reached)) if reached else None)


async def test_the_ecdf_and_the_profile_agree_with_the_table(client):
    answer = (await client.post("/v1/benchmark", json=bench_body())).json()
    triples = 2 * 3 * 3
    for curve in answer["ecdf"]:
        assert curve["evals"] == sorted(curve["evals"])
        assert np.all(np.diff(curve["fraction"]) > 0)
        solved = sum(row["solved"][t] * row["runs"] for row in answer["table"]
                     if row["label"] == curve["label"] for t in range(3))
        assert (curve["fraction"][-1] if curve["fraction"] else 0) == pytest.approx(
            solved / triples)
    profiles = {p["label"]: p for p in answer["profile"]}
    assert profiles["lbfgs"]["tau"][0] == 1.0
    at_one = sum(p["fraction"][0] for p in profiles.values())
    best = max(e["fraction"][-1] for e in answer["ecdf"])
    assert at_one >= best - 1e-12  # every problem someone solved has a winner at tau = 1
    for p in profiles.values():  # a profile ends where its ECDF ends
        ecdf = next(e for e in answer["ecdf"] if e["label"] == p["label"])
        assert p["fraction"][-1] == pytest.approx(ecdf["fraction"][-1] if ecdf["fraction"]
                                                  else 0)


async def test_a_named_suite_runs_its_catalog_subset(client):
    answer = (await client.post("/v1/benchmark", json={
        "suite": "rosenbrock-nd", "optimizers": [{"name": "lbfgs"}], "starts_per_loss": 2,
        "max_steps": 200, "targets": [1e-2]})).json()
    assert answer["losses"] == ["rosenbrock-2d", "rosenbrock-5d", "rosenbrock-10d"]
    assert answer["meta"]["runs"] == 6


@pytest.mark.parametrize(("change", "loc"), [
    ({"losses": [{"kind": "expression", "expression": "x^2 + y^2"}]}, ["losses", 0]),
    ({"suite": "smooth-2d"}, ["losses"]),
    ({"losses": None}, ["suite"]),
])
async def test_a_benchmark_without_known_minima_or_with_two_suites_is_a_400(client, change,
                                                                          loc):
    body = {k: v for k, v in bench_body(**change).items() if v is not None}
    r = await client.post("/v1/benchmark", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["loc"][1:] == loc


async def test_benchmark_as_a_job(client):
    import asyncio

    body = bench_body(starts_per_loss=2, max_steps=100)
    r = await client.post("/v1/jobs", json={"kind": "benchmark", "request": body})
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    for _ in range(200):
        if (await client.get(f"/v1/jobs/{job}")).json()["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.05)
    result = (await client.get(f"/v1/jobs/{job}/result")).json()
    direct = (await client.post("/v1/benchmark", json=body)).json()
    assert result["ecdf"] == direct["ecdf"] and result["table"] == direct["table"]
