"""POST /v1/basins: every grid start labelled with the minimum /v1/optimize reaches from it."""

from __future__ import annotations

import numpy as np
import pytest

HIMMELBLAU = {"kind": "builtin", "name": "himmelblau"}


def basins_body(**overrides):
    return {"loss": HIMMELBLAU, "optimizer": {"name": "sgd", "lr": 0.01},
            "bounds": [[-5, 5], [-5, 5]], "resolution": [12, 10], "max_steps": 1000} | overrides


async def test_himmelblaus_four_basins_and_each_start_labelled_by_where_it_ends(client):
    r = await client.post("/v1/basins", json=basins_body())
    assert r.status_code == 200, r.text
    answer = r.json()
    assert len(answer["x"]) == 12 and len(answer["y"]) == 10
    assert np.array(answer["labels"]).shape == (10, 12)
    assert np.array(answer["steps"]).shape == (10, 12)
    minima = np.array(answer["minima"])
    assert minima.shape == (4, 2)
    assert sorted(answer["share"]) == ["0", "1", "2", "3"]
    assert sum(answer["share"].values()) == pytest.approx(1.0)
    labels = np.array(answer["labels"])
    for j, i in [(0, 0), (0, 11), (9, 0), (9, 11), (4, 6), (7, 3)]:
        start = [answer["x"][i], answer["y"][j]]
        run = (await client.post("/v1/optimize", json={
            "loss": HIMMELBLAU, "start": start, "max_steps": 1000,
            "optimizer": {"name": "sgd", "lr": 0.01}})).json()["runs"][0]
        assert run["status"] == "converged"
        nearest = int(np.argmin(np.linalg.norm(minima - run["final"]["params"], axis=1)))
        assert labels[j, i] == nearest
        assert answer["steps"][j][i] == run["steps"]
    for label, share in answer["share"].items():
        assert share == pytest.approx(np.mean(labels == int(label)))


async def test_other_losses_get_their_minima_from_the_end_points(client):
    body = basins_body(loss={"kind": "expression", "expression": "(x^2 - 1)^2 + y^2"},
                       bounds=[[-2, 2], [-1, 1]], resolution=[20, 5],
                       optimizer={"name": "sgd", "lr": 0.05})
    answer = (await client.post("/v1/basins", json=body)).json()
    minima = sorted(answer["minima"])
    assert np.allclose(minima, [[-1, 0], [1, 0]], atol=1e-6)
    labels = np.array(answer["labels"])
    left = labels[:, :10]  # x < 0 goes to (−1, 0), x > 0 to (1, 0)
    right = labels[:, 10:]
    index_left = answer["minima"].index(min(answer["minima"]))
    assert (left == index_left).all() and (right == 1 - index_left).all()


async def test_diverged_and_unfinished_starts_have_their_own_labels(client):
    diverged = (await client.post("/v1/basins", json=basins_body(
        optimizer={"name": "sgd", "lr": 0.1}))).json()
    assert diverged["share"].get("-2", 0) > 0.5
    assert (np.array(diverged["labels"]) == -2).mean() == pytest.approx(diverged["share"]["-2"])
    short = (await client.post("/v1/basins", json=basins_body(max_steps=3))).json()
    assert short["share"] == {"-1": 1.0}


@pytest.mark.parametrize(("change", "status", "slug"), [
    ({"loss": {"kind": "builtin", "name": "rosenbrock", "dim": 3}}, 400, "dimension-mismatch"),
    ({"bounds": [[1, -1], [-5, 5]]}, 400, "dimension-mismatch"),
    ({"resolution": [1000, 1000]}, 413, "over-limit"),
    ({"optimizer": {"name": "adam", "lr": 0.1, "momentum_schedule": {"steps": 3}}}, 422,
     "validation-error"),
])
async def test_bad_bodies_say_what_to_fix(client, change, status, slug):
    r = await client.post("/v1/basins", json=basins_body(**change))
    assert r.status_code == status, r.text
    assert r.json()["type"] == f"/problems/{slug}"
