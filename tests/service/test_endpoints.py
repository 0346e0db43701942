"""Every endpoint through httpx.ASGITransport: status, content type and exact fields."""

from __future__ import annotations

import math

import httpx
import pytest

from service.main import create_app
from service.settings import Settings

ROSENBROCK = {"kind": "builtin", "name": "rosenbrock"}
RAVINE = {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"}


async def test_optimize_default_start_and_run_shape(client):
    r = await client.post("/v1/optimize", json={"loss": ROSENBROCK, "optimizer": {
        "name": "newton"}, "max_steps": 50})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["loss"]["kind"] == "builtin" and body["loss"]["variables"] == ["x", "y"]
    run = body["runs"][0]
    assert run["start"] == [-1.2, 1.0]
    assert run["status"] == "converged" and run["reason"] == "grad_tol"
    assert run["final"]["params"] == pytest.approx([1.0, 1.0], abs=1e-8)
    diag = run["diagnostics"]
    assert set(diag) >= {"best_loss", "loss_reduction", "steps_to_tol", "oscillation",
                         "path_efficiency", "convergence_rate", "final_curvature",
                         "distance_to_minimum"}
    assert diag["steps_to_tol"] == run["steps"] and diag["distance_to_minimum"] < 1e-8
    assert diag["final_curvature"]["kind"] == "minimum"
    traj = run["trajectory"]
    assert traj["step"][0] == 0 and traj["step"][-1] == run["steps"]
    assert len(traj["params"]) == len(traj["loss"]) == len(traj["grad_norm"]) == len(traj["lr"])
    assert {f["code"] for f in run["findings"]} >= {"converged"}
    assert body["meta"]["runs"] == 1


async def test_expression_loss_echoes_gradient_and_hessian(client):
    r = await client.post("/v1/optimize", json={"loss": {"kind": "expression",
                                                         "expression": "x^2*y + y^2"},
                                                "start": [1, 1], "max_steps": 3})
    loss = r.json()["loss"]
    assert loss["variables"] == ["x", "y"] and loss["dim"] == 2
    assert loss["gradient"] == ["2*x*y", "x**2 + 2*y"]
    assert loss["hessian"] == [["2*y", "2*x"], ["2*x", "2"]]


async def test_several_starts_and_random_starts(client):
    r = await client.post("/v1/optimize", json={"loss": RAVINE, "start": [[1, 1], [2, -1]],
                                                "optimizer": {"name": "sgd", "lr": 0.01}})
    assert [run["start"] for run in r.json()["runs"]] == [[1, 1], [2, -1]]
    body = {"loss": RAVINE, "start": {"random": {"n": 5, "low": -2, "high": [2, 3], "seed": 4}},
            "max_steps": 2}
    a, b = (await client.post("/v1/optimize", json=body)).json(), (
        await client.post("/v1/optimize", json=body)).json()
    starts = [run["start"] for run in a["runs"]]
    assert len(starts) == 5 and starts == [run["start"] for run in b["runs"]]
    assert all(-2 <= s[0] <= 2 and -2 <= s[1] <= 3 for s in starts)


async def test_record_fields_every_and_thinning(client):
    r = await client.post("/v1/optimize", json={
        "loss": RAVINE, "start": [1, 1], "optimizer": {"name": "sgd", "lr": 1e-4},
        "max_steps": 500, "record": {"every": 2, "max_points": 50, "fields": ["loss"]}})
    traj = r.json()["runs"][0]["trajectory"]
    assert set(traj) == {"step", "loss"}
    assert traj["step"][0] == 0 and traj["step"][-1] == 500 and len(traj["step"]) <= 50


async def test_stop_criteria_and_statuses(client):
    r = await client.post("/v1/compare", json={
        "loss": RAVINE, "start": [1, 1], "max_steps": 1000,
        "stop": {"loss_tol": 1e-6, "divergence_factor": 1e6},
        "optimizers": [{"name": "sgd", "lr": 0.0199}, {"name": "sgd", "lr": 0.03},
                       {"name": "sgd", "lr": 1e-6}]})
    runs = r.json()["runs"]
    assert [(x["status"], x["reason"]) for x in runs] == [
        ("converged", "loss_tol"), ("diverged", "blow_up"), ("max_steps", "max_steps")]
    assert runs[1]["final"]["loss"] is not None


async def test_non_finite_numbers_are_null_in_answers(client):
    r = await client.post("/v1/optimize", json={"loss": {"kind": "expression",
                                                         "expression": "log(x)"},
                                                "start": [0.5], "optimizer": {"name": "sgd",
                                                                              "lr": 10}})
    run = r.json()["runs"][0]
    assert run["status"] == "diverged" and run["reason"] == "non_finite"
    assert b"NaN" not in r.content and b"Infinity" not in r.content
    assert None in run["trajectory"]["loss"] or run["final"]["loss"] is None


async def test_compare_is_optimizer_major_with_a_ranked_summary(client):
    r = await client.post("/v1/compare", json={
        "loss": RAVINE, "start": [[-8, 1], [5, -1]],
        "optimizers": [{"name": "sgd", "lr": 0.0196},
                       {"name": "momentum", "lr": 0.0196,
                        "momentum_schedule": {"start": 0.5, "end": 0.9, "steps": 50}},
                       {"name": "adam", "lr": 0.1, "label": "Adam 0.1"}]})
    body = r.json()
    assert [x["label"] for x in body["runs"]] == ["sgd", "sgd", "momentum", "momentum",
                                                  "Adam 0.1", "Adam 0.1"]
    assert [x["start"] for x in body["runs"]][:2] == [[-8, 1], [5, -1]]
    summary = body["summary"]
    assert [s["rank"] for s in summary] == [1, 2, 3]
    assert summary[0]["label"] == "momentum" and summary[-1]["label"] == "sgd"
    assert set(summary[0]) >= {"label", "optimizer", "converged", "diverged",
                               "median_steps_to_tol", "best_final_loss", "rank"}
    assert summary[0]["optimizer"]["momentum"] == {"name": "linear", "start": 0.5, "end": 0.9,
                                                   "steps": 50}
    assert body["findings"][0]["code"] == "compare" and "momentum" in body["findings"][0][
        "message"]
    sgd_codes = {f["code"] for f in body["runs"][0]["findings"]}
    assert {"zigzag", "slow_ravine"} <= sgd_codes and "unstable_lr" not in sgd_codes
    adam_codes = {f["code"] for f in body["runs"][4]["findings"]}
    assert "zigzag" not in adam_codes


async def test_duplicate_optimizer_names_get_distinct_labels(client):
    r = await client.post("/v1/compare", json={"loss": RAVINE, "start": [1, 1], "max_steps": 5,
                                               "optimizers": [{"name": "sgd", "lr": 0.01},
                                                              {"name": "sgd", "lr": 0.001}]})
    assert [s["label"] for s in r.json()["summary"]] in (
        ["sgd(lr=0.01)", "sgd(lr=0.001)"], ["sgd(lr=0.001)", "sgd(lr=0.01)"])


async def test_labels_are_unique_and_a_label_given_twice_is_refused(client):
    same = [{"name": "sgd"}, {"name": "sgd"}, {"name": "adam", "label": "sgd #2"}]
    r = await client.post("/v1/compare", json={"loss": RAVINE, "start": [1, 1], "max_steps": 5,
                                               "optimizers": same})
    assert r.status_code == 200
    assert [run["label"] for run in r.json()["runs"]] == ["sgd", "sgd #3", "sgd #2"]
    assert sorted(s["label"] for s in r.json()["summary"]) == ["sgd", "sgd #2", "sgd #3"]
    twice = [{"name": "sgd", "label": "fast"}, {"name": "adam", "label": "fast"}]
    r = await client.post("/v1/compare", json={"loss": RAVINE, "start": [1, 1], "max_steps": 5,
                                               "optimizers": twice})
    assert r.status_code == 400  # schema-valid: the schema cannot say labels differ
    assert r.json()["errors"] == [{"loc": ["body", "optimizers", 1, "label"],
                                   "msg": "Label 'fast' is given to optimizers 0 and 1; "
                                          "labels must differ"}]


async def test_sweep_rows_in_product_order_and_best(client):
    r = await client.post("/v1/sweep", json={
        "loss": RAVINE, "start": [[1, 1], [-1, 2], [3, 0.5]],
        "optimizer": {"name": "momentum"},
        "grid": {"lr": [0.001, 0.01, 0.05], "momentum": [0.0, 0.5, 0.9]}, "max_steps": 2000})
    assert r.status_code == 200
    body = r.json()
    rows = body["rows"]
    assert [(x["hyperparameters"]["lr"], x["hyperparameters"]["momentum"]) for x in rows] == [
        (lr, m) for lr in (0.001, 0.01, 0.05) for m in (0.0, 0.5, 0.9)]
    # lr 0.05 with momentum 0 is above 2/λmax = 0.02: it diverges and can never be best
    assert rows[6]["divergence_rate"] == 1.0 and rows[6]["success_rate"] == 0.0
    best = body["best"]
    assert rows[best["index"]]["divergence_rate"] <= 0.5
    assert best["hyperparameters"] == rows[best["index"]]["hyperparameters"]
    assert best["reason"]
    assert "runs" not in body and body["meta"]["runs"] == 27


async def test_sweep_over_schedules_and_with_runs(client):
    r = await client.post("/v1/sweep", json={
        "loss": RAVINE, "start": [1, 1], "optimizer": {"name": "sgd"}, "max_steps": 50,
        "include_runs": True, "record": {"max_points": 3},
        "grid": {"lr": [0.01, {"name": "exponential", "lr": 0.015, "gamma": 0.99}]}})
    body = r.json()
    assert body["rows"][1]["hyperparameters"]["lr"]["name"] == "exponential"
    assert len(body["runs"]) == 2 and len(body["runs"][0]["trajectory"]["step"]) == 3


async def test_a_schedule_takes_its_hyperparameters_range_not_lrs(client):
    """beta1 and momentum may be 0, held by a constant schedule too (the schema allowed it;
    the engine refused it as an lr once); lr stays > 0 and a decay may end at 0, not below."""
    held = [{"name": "adam", "lr": 0.1, "beta1": {"name": "constant", "lr": 0.0}},
            {"name": "adam", "lr": 0.1, "beta1": 0.0},
            {"name": "momentum", "momentum": {"name": "constant", "lr": 0.0}},
            {"name": "sgd"}]
    r = await client.post("/v1/compare", json={"loss": RAVINE, "start": [1, 1],
                                               "optimizers": held, "max_steps": 30})
    assert r.status_code == 200, r.text
    finals = [run["final"]["params"] for run in r.json()["runs"]]
    assert finals[0] == finals[1] and finals[2] == finals[3]  # β1 = 0 / μ = 0, exactly
    for optimizer, where in (
            ({"name": "sgd", "lr": {"name": "constant", "lr": 0.0}}, ["lr", "lr"]),
            ({"name": "sgd", "lr": {"name": "cosine", "lr": 0.1, "steps": 9, "lr_min": -1}},
             ["lr", "lr_min"]),
            ({"name": "adam", "beta1": {"name": "constant", "lr": 1.0}}, ["beta1", "lr"])):
        r = await client.post("/v1/optimize", json={"loss": RAVINE, "start": [1, 1],
                                                    "optimizer": optimizer, "max_steps": 3})
        assert r.status_code in (400, 422), r.text
        assert any(e["loc"][-2:] == where for e in r.json()["errors"]), r.text


async def test_landscape_grid(client):
    r = await client.post("/v1/landscape", json={"loss": ROSENBROCK,
                                                 "bounds": [[-2, 2], [-1, 3]],
                                                 "resolution": [5, 3]})
    body = r.json()
    assert len(body["x"]) == 5 and len(body["y"]) == 3
    assert len(body["z"]) == 3 and len(body["z"][0]) == 5
    assert body["z"][1][3] == pytest.approx((1 - 1) ** 2 + 100 * (1 - 1) ** 2)  # (1, 1)
    r = await client.post("/v1/landscape", json={
        "loss": {"kind": "builtin", "name": "sphere", "dim": 4}, "axes": ["x2", "x4"],
        "fixed": [1, 0, 2, 0], "resolution": [3, 3], "bounds": [[-1, 1], [-1, 1]]})
    assert r.json()["variables"] == ["x2", "x4"] and r.json()["z"][1][1] == pytest.approx(5.0)


async def test_analyze_points_and_theory(client):
    r = await client.post("/v1/analyze", json={"loss": RAVINE, "points": [[1, 1], [0, 0]]})
    body = r.json()
    assert body["loss"]["hessian"] == [["1", "0"], ["0", "100"]]
    assert body["loss"]["latex"]["expression"]
    p = body["points"][0]
    assert p["value"] == pytest.approx(50.5) and p["gradient"] == [1.0, 100.0]
    assert p["eigenvalues"] == [1.0, 100.0] and p["condition_number"] == 100.0
    assert p["kind"] == "convex"  # the gradient does not vanish at (1, 1)
    assert body["points"][1]["kind"] == "minimum"
    assert p["theory"]["condition_number"] == p["condition_number"]
    assert p["theory"]["stability_limit"] == pytest.approx(0.02)
    assert p["theory"]["gd"]["lr"] == pytest.approx(2 / 101)
    assert p["theory"]["gd"]["rate"] == pytest.approx(99 / 101)
    assert p["theory"]["heavy_ball"]["rate"] == pytest.approx((10 - 1) / (10 + 1))
    saddle = await client.post("/v1/analyze", json={"loss": {"kind": "builtin",
                                                             "name": "saddle"},
                                                    "points": [0, 0]})
    assert saddle.json()["points"][0]["kind"] == "saddle"


@pytest.mark.parametrize(("point", "kind"), [
    ([0, 0], "saddle"), ([0, 1.5], "convex"),
    ([0, 2 ** 0.5], "minimum"), ([0, 0.5], "indefinite"), ([0, -2 ** 0.5], "minimum"),
    ([3, 2 ** 0.5], "convex"), ([0, (2 / 3) ** 0.5], "degenerate"),
])
async def test_analyze_names_critical_points_only_where_the_gradient_vanishes(
        client, point, kind):
    r = await client.post("/v1/analyze", json={
        "loss": {"kind": "expression", "expression": "x^2 - y^2 + y^4/4"}, "points": [point]})
    p = r.json()["points"][0]
    assert p["kind"] == kind, p
    assert p["condition_number"] == (p["theory"] or {}).get("condition_number",
                                                            p["condition_number"])


async def test_analyze_concave_and_maximum(client):
    r = await client.post("/v1/analyze", json={
        "loss": {"kind": "expression", "expression": "-(x^2 + 3*y^2)"},
        "points": [[0, 0], [1, 1]]})
    assert [p["kind"] for p in r.json()["points"]] == ["maximum", "concave"]
    saddle = (await client.post("/v1/analyze", json={
        "loss": {"kind": "builtin", "name": "saddle"}, "points": [[0, 0]]})).json()["points"][0]
    assert saddle["condition_number"] == 1.0 == saddle["theory"]["condition_number"]


async def test_catalogs(client):
    from optim_core.optimizers import OPTIMIZERS

    opt = (await client.get("/v1/optimizers")).json()
    names = [o["name"] for o in opt["optimizers"]]
    assert names == list(OPTIMIZERS)  # the registry's order, every rule
    lbfgs = next(o for o in opt["optimizers"] if o["name"] == "lbfgs")
    assert {h["name"]: h["default"] for h in lbfgs["hyperparameters"]} == {
        "lr": 1.0, "history_size": 10, "line_search": "strong_wolfe",
        "tolerance_change": 1e-9, "tolerance_grad": 1e-7}
    history = next(h for h in lbfgs["hyperparameters"] if h["name"] == "history_size")
    assert history["type"] == "integer"
    nadam = next(o for o in opt["optimizers"] if o["name"] == "nadam")
    assert {h["name"]: h["default"] for h in nadam["hyperparameters"]} == {
        "lr": 0.002, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0,
        "momentum_decay": 0.004, "decoupled_weight_decay": False}
    rmsprop = next(o for o in opt["optimizers"] if o["name"] == "rmsprop")
    rho = next(h for h in rmsprop["hyperparameters"] if h["name"] == "rho")
    assert rho == {"name": "rho", "default": 0.9, "type": "number", "ge": 0, "lt": 1,
                   "description": rho["description"], "schedulable": False}
    assert {s["name"] for s in opt["schedules"]} == {"constant", "step", "exponential",
                                                    "inverse_time", "cosine", "warmup_cosine",
                                                    "linear"}
    functions = (await client.get("/v1/functions")).json()["functions"]
    rosen = next(f for f in functions if f["name"] == "rosenbrock")
    assert rosen["default_start"] == [-1.2, 1.0] and rosen["minima"] == [[1.0, 1.0]]
    assert len(functions) >= 16


async def test_health(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = (await client.get("/readyz")).json()
    assert ready["status"] == "ready" and ready["compute"]["capacity"] == 2


async def test_docs_and_openapi_are_served(client):
    from importlib.metadata import version

    from optim_core.optimizers import OPTIMIZERS

    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert spec["paths"]["/v1/optimize"]["post"]["operationId"] == "optimize"
    assert spec["info"]["version"] == version("optim-service")
    assert all(name in spec["info"]["description"] for name in OPTIMIZERS)


async def test_every_operation_with_a_body_has_an_example_the_server_accepts(tmp_path):
    """Swagger UI's Try-it-out starts from these: each must work as it is (with keys on and an
    admin key, so that the keys' own operations work too)."""
    from service.auth import KeyLimits

    app = create_app(Settings(auth="api_key", max_concurrency=2, max_queue=4,
                              jobs_db_path=str(tmp_path / "jobs.sqlite3")))
    _, admin = app.state.auth.keys.create("swagger", ["admin"], limits=KeyLimits())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                               headers={"Authorization": f"Bearer {admin}"})
    spec = (await client.get("/openapi.json")).json()
    tried = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "requestBody" not in operation:
                continue
            examples = operation["requestBody"]["content"]["application/json"]["examples"]
            assert examples, operation["operationId"]
            for example in examples.values():
                r = await client.request(method.upper(), path, json=example["value"])
                assert r.status_code in (200, 201, 202), (path, r.text[:500])
                tried.append(operation["operationId"])
    await client.aclose()
    assert {"optimize", "compare", "sweep", "landscape", "analyze", "plot",
            "submit_job", "create_key"} <= set(tried)


async def test_dataset_loss_through_the_api(client):
    r = await client.post("/v1/optimize", json={
        "loss": {"kind": "dataset", "model": "linear",
                 "synthetic": {"n_samples": 200, "n_features": 3, "noise": 0.1, "seed": 3}},
        "optimizer": {"name": "newton"}, "max_steps": 5})
    body = r.json()
    assert body["loss"]["variables"] == ["w1", "w2", "w3", "b"]
    run = body["runs"][0]
    assert run["start"] == [0, 0, 0, 0] and run["status"] == "converged"
    assert run["diagnostics"]["distance_to_minimum"] < 1e-8
    assert math.isfinite(run["final"]["loss"])


async def test_the_newer_rules_run_compare_and_sweep(client):
    """NAdam, RAdam, Adamax and Adadelta through the API, as any rule: run, validated."""
    body = {"loss": {"kind": "builtin", "name": "rosenbrock"}, "start": [-1.2, 1.0],
            "max_steps": 2000,
            "optimizers": [{"name": "nadam", "lr": 0.01}, {"name": "radam", "lr": 0.003},
                           {"name": "adamax", "lr": 0.02},
                           {"name": "adadelta", "lr": 1.0, "eps": 1e-4}]}
    r = await client.post("/v1/compare", json=body)
    assert r.status_code == 200, r.text
    runs = r.json()["runs"]
    assert [run["optimizer"] for run in runs] == ["nadam", "radam", "adamax", "adadelta"]
    for run in runs:
        assert run["final"]["loss"] < 0.5 * run["diagnostics"]["initial_loss"]
    swept = await client.post("/v1/sweep", json={
        "loss": {"kind": "builtin", "name": "rosenbrock"}, "start": [-1.2, 1.0],
        "max_steps": 300, "optimizer": {"name": "nadam"},
        "grid": {"momentum_decay": [0.0, 0.004, 0.04], "decoupled_weight_decay": [False, True]}})
    assert swept.status_code == 200 and len(swept.json()["rows"]) == 6
    bad = await client.post("/v1/optimize", json={
        "loss": {"kind": "builtin", "name": "rosenbrock"},
        "optimizer": {"name": "adadelta", "rho": 1.0}})
    assert bad.status_code == 422 and "rho" in str(bad.json()["errors"])


async def test_the_classical_rules_through_the_api(client):
    """Each classical rule solves Rosenbrock from its standard start; `work` counts the
    evaluations (Nelder–Mead no gradients), the trajectory records α and evaluations, and
    compare ranks by evaluations to tolerance."""
    rosenbrock = {"kind": "builtin", "name": "rosenbrock"}
    for name, settings in (("lbfgs", {}), ("bfgs", {"c2": 0.9}), ("cg", {"beta": "dai_yuan"}),
                           ("trust_region", {"subproblem": "exact"}), ("nelder_mead", {})):
        r = await client.post("/v1/optimize", json={
            "loss": rosenbrock, "max_steps": 5000, "optimizer": {"name": name, **settings},
            "record": {"fields": ["params", "loss", "step_size", "evals"]}})
        assert r.status_code == 200, r.text
        run = r.json()["runs"][0]
        assert run["status"] == "converged", (name, run["reason"])
        assert run["final"]["params"] == pytest.approx([1.0, 1.0], abs=1e-3)
        work = run["work"]
        assert work["func_evals"] >= run["steps"] and work["hess_evals"] >= 0
        assert (work["grad_evals"] == 0) == (name == "nelder_mead")
        trajectory = run["trajectory"]
        assert trajectory["evals"][-1] == work["func_evals"]
        assert trajectory["evals"] == sorted(trajectory["evals"])
        assert trajectory["step_size"][0] is None  # no step led to the start
    compared = (await client.post("/v1/compare", json={
        "loss": rosenbrock, "start": [[-1.2, 1.0], [0.5, -0.5], [1.5, 2.0]], "max_steps": 5000,
        "optimizers": [{"name": "adam", "lr": 0.05}, {"name": "lbfgs"},
                       {"name": "nelder_mead"}]})).json()
    summary = {s["label"]: s for s in compared["summary"]}
    assert summary["lbfgs"]["rank"] == 1 and summary["lbfgs"]["median_evals_to_tol"] < 100
    runs = [r for r in compared["runs"] if r["label"] == "lbfgs" and r["status"] == "converged"]
    evals = sorted(r["work"]["func_evals"] for r in runs)
    assert summary["lbfgs"]["median_evals_to_tol"] == evals[len(evals) // 2]


async def test_bounds_keep_every_run_in_the_box(client):
    body = {"loss": {"kind": "builtin", "name": "rosenbrock"}, "bounds": [[-2, 0.5], [None, 0.3]],
            "start": [[-1.5, 0.2], [0.2, -1.0]], "max_steps": 3000}
    for optimizer in ({"name": "lbfgs"}, {"name": "newton"}, {"name": "adam", "lr": 0.02}):
        r = await client.post("/v1/optimize", json=body | {"optimizer": optimizer})
        assert r.status_code == 200, r.text
        for run in r.json()["runs"]:
            assert run["at_bound"] is True and run["status"] == "converged", (optimizer, run)
            assert run["final"]["params"] == pytest.approx([0.5, 0.25], abs=2e-3)
    inside = await client.post("/v1/optimize", json=body | {"bounds": [[-2, 2], [-2, 2]],
                                                            "optimizer": {"name": "lbfgs"}})
    assert [run["at_bound"] for run in inside.json()["runs"]] == [False, False]
    swept = await client.post("/v1/sweep", json=body | {"optimizer": {"name": "bfgs"},
                                                        "grid": {"c2": [0.5, 0.9]},
                                                        "include_runs": True})
    assert swept.status_code == 200 and all(r["at_bound"] for r in swept.json()["runs"])
    outside = await client.post("/v1/optimize", json=body | {"start": [1.0, 1.0]})
    assert outside.status_code == 400 and outside.json()["errors"][0]["loc"] == ["body", "start"]
    for bad in ([[0, 1]], [[1, 0], [0, 1]], [[0, 1], [0]]):
        r = await client.post("/v1/optimize", json=body | {"bounds": bad})
        assert r.status_code in (400, 422), bad
    job = await client.post("/v1/jobs", json={"kind": "optimize", "request": body | {
        "start": [5.0, 5.0]}})
    assert job.status_code == 400


async def test_a_whole_number_hyperparameter_is_echoed_as_an_int(client):
    """history_size is an int: optimize's meta, a sweep's rows and a tune's trials say 3,
    not 3.0, however the request wrote it (a grid or a list of choices parses as floats)."""
    loss = {"kind": "builtin", "name": "rosenbrock"}
    r = await client.post("/v1/optimize", json={"loss": loss, "start": [0, 0], "max_steps": 2,
                                                "optimizer": {"name": "lbfgs",
                                                              "history_size": 3.0}})
    assert r.status_code == 200, r.text
    assert '"history_size":3,' in r.text and "3.0" not in r.text.split('"meta"')[1]
    r = await client.post("/v1/sweep", json={"loss": loss, "start": [0, 0], "max_steps": 5,
                                             "optimizer": {"name": "lbfgs"},
                                             "grid": {"history_size": [3, 10], "lr": [1]}})
    rows = r.json()["rows"]
    assert [row["hyperparameters"] for row in rows] == [{"history_size": 3, "lr": 1.0},
                                                        {"history_size": 10, "lr": 1.0}]
    assert all(type(row["hyperparameters"]["history_size"]) is int for row in rows)
    r = await client.post("/v1/tune", json={
        "loss": loss, "start": [[0, 0]], "max_steps": 5, "trials": 2, "sampler": "grid",
        "optimizers": [{"name": "lbfgs", "search": {"history_size": [3, 30]}}]})
    trials = r.json()["trials"]
    assert [type(t["hyperparameters"]["history_size"]) for t in trials] == [int, int]


async def test_momentum_schedule_takes_the_seeds_start_and_end_where_left_out(client):
    """The schema gives momentum_schedule start 0.5 and end 0.9 by default; the engine fills
    them too (a body with only `steps` was a 400 once: found by schemathesis)."""
    short = {"name": "nesterov", "momentum_schedule": {"steps": 5}}
    full = {"name": "nesterov", "momentum_schedule": {"start": 0.5, "end": 0.9, "steps": 5}}
    r = await client.post("/v1/compare", json={"loss": RAVINE, "start": [1, 1],
                                               "optimizers": [short, full], "max_steps": 20})
    assert r.status_code == 200, r.text
    runs = r.json()["runs"]
    assert runs[0]["final"] == runs[1]["final"]
    assert r.json()["meta"]["optimizers"][0]["momentum"] == {
        "name": "linear", "start": 0.5, "end": 0.9, "steps": 5}
