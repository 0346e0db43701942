"""Plan → shards → merge: any split of a batch answers exactly what one batch answers."""

from __future__ import annotations

import pickle

import numpy as np
import orjson
import pytest

from optim_core import RecordSpec, StopCriteria, expression_loss, resolve_starts
from optim_core.api import compare, optimize, sweep
from optim_core.engine.groups import make_group
from optim_core.engine.loop import run
from optim_core.losses.catalog import builtin_loss
from optim_core.losses.dataset import dataset_loss
from optim_core.losses.quadratic import QuadraticLoss
from optim_core.plan import plan_sweep
from optim_core.shards import (
    EngineOptions,
    InProcess,
    ProgressTracker,
    default_shards,
    execute,
    merge,
    run_shard,
    shard_groups,
    split,
)

PER_RUN = ("status", "reason", "steps", "final_params", "final_loss", "final_grad_norm",
           "initial_loss", "best_loss", "steps_to_tol", "path_length", "sign_flips",
           "recent_losses", "grad_evals", "hess_evals")


def _json(value: object) -> bytes:
    return orjson.dumps(value, default=lambda a: a.tolist(), option=orjson.OPT_SERIALIZE_NUMPY)


def _dataset(batch_size: int | None, n: int = 300) -> object:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 4))
    y = (X @ [1.0, -2.0, 0.5, 1.0] + 0.3 * rng.normal(size=n) > 0).astype(float)
    spec = {"model": "logistic", "X": X.tolist(), "y": y.tolist(), "l2": 0.01}
    if batch_size:
        spec["batch_size"] = batch_size
    return dataset_loss(spec, max_values=10**7, max_dim=100)


# (name, loss, base, grid, starts, options): each on the vectorised path (K·(d+4) > 48)
CASES = [
    ("builtin adam", lambda: builtin_loss("rosenbrock"), {"name": "adam"},
     {"lr": [0.01, 0.1]}, 24, {"max_steps": 600}),
    ("builtin sgd, decimated", lambda: builtin_loss("rosenbrock"), {"name": "sgd"},
     {"lr": [0.001, 0.0021]}, 24, {"max_steps": 3000}),
    ("expression momentum schedule",
     lambda: expression_loss("(1-x)^2 + 100*(y-x^2)^2 + sin(3*x)*exp(-y^2) + log(1+x^2)", None),
     {"name": "momentum", "lr": 0.001, "momentum_schedule": {"start": 0.5, "end": 0.9,
                                                              "steps": 200}},
     {"weight_decay": [0.0, 0.01]}, 20, {"max_steps": 500}),
    ("newton", lambda: builtin_loss("himmelblau"), {"name": "newton"},
     {"lr": [1.0, 0.5]}, 20, {"max_steps": 100}),
    ("rastrigin in 7-d", lambda: builtin_loss("rastrigin", 7), {"name": "rmsprop"},
     {"lr": [0.01, 0.05]}, 12, {"max_steps": 400}),
    ("seeded minibatch", lambda: _dataset(16), {"name": "adam"}, {"lr": [0.01, 0.1]}, 10,
     {"max_steps": 300, "seed": 5}),
    ("full-batch dataset", lambda: _dataset(None), {"name": "adamw"}, {"lr": [0.05, 0.2]}, 10,
     {"max_steps": 300}),
    # past dataset.ROW_BLOCK rows the products go block by block
    ("full-batch dataset, 9,000 rows", lambda: _dataset(None, 9000), {"name": "adam"},
     {"lr": [0.05]}, 12, {"max_steps": 60}),
]


def _splits(k: int) -> list[list[np.ndarray]]:
    shuffled = np.random.default_rng(0).permutation(k)
    return [split(k, 1), split(k, 7), [np.arange(3), np.arange(3, k)],
            [np.sort(part) for part in np.array_split(shuffled, 4)]]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_split_answers_what_one_batch_answers(case) -> None:
    _, make_loss, base, grid, n, options = case
    loss = make_loss()
    starts = resolve_starts(loss, {"random": {"n": n, "low": -2, "high": 2, "seed": 3}})
    record = RecordSpec(max_points=40)
    one = sweep(loss, base, grid, starts, include_runs=True, record=record, **options)
    k = one.batch.status.shape[0]
    assert one.runs is not None and len(one.runs) == k
    for shards in _splits(k):
        other = sweep(loss, base, grid, starts, include_runs=True, record=record,
                      shards=shards, **options)
        for name in PER_RUN:
            assert np.array_equal(getattr(one.batch, name), getattr(other.batch, name),
                                  equal_nan=True), (name, len(shards))
        assert other.rows == one.rows and other.best == one.best
        assert _json(other.runs) == _json(one.runs)  # trajectories, diagnostics, findings


def test_decimated_trajectories_do_not_depend_on_neighbours() -> None:
    """A run that stops early keeps the points it had, however long the others go on."""
    loss = expression_loss("x^2 + 0.001*y^2", None)
    starts = np.array([[1.0, 0.0], [0.0, 1.0]] * 20)  # even rows converge fast, odd ones not
    spec = {"name": "sgd", "lr": 0.4}
    record = RecordSpec(max_points=10)
    together = optimize(loss, [spec], starts, max_steps=2000, record=record)
    alone = optimize(loss, [spec], starts[::2], max_steps=2000, record=record)
    assert together.batch.steps[0] < 40 < 2000 == together.batch.steps[1]
    assert together.batch.trajectories is not None
    assert together.batch.trajectories[1].step[1] > 9  # the buffers were decimated meanwhile
    assert _json(together.runs[0]["trajectory"]) == _json(alone.runs[0]["trajectory"])
    assert len(together.runs[0]["trajectory"]["step"]) == 10


def test_compare_split_over_optimizers_and_starts() -> None:
    loss = expression_loss("x^2 + 10*y^2 + 0.1*x*y", None)
    optimizers = [{"name": "sgd", "lr": 0.05}, {"name": "adam", "lr": 0.1},
                  {"name": "adam", "lr": 0.01}, {"name": "newton"}]
    starts = resolve_starts(loss, {"random": {"n": 9, "seed": 2}})
    one = compare(loss, optimizers, starts, max_steps=300)
    split_answer = compare(loss, optimizers, starts, max_steps=300, shards=split(36, 5))
    assert _json(one[0].runs) == _json(split_answer[0].runs)
    assert one[1] == split_answer[1] and one[2] == split_answer[2]


def test_quadratic_splits_agree_within_blas_rounding() -> None:
    """params @ A is one BLAS product over the batch: a split may round a row's sums
    differently in the last bits (documented), never more."""
    rng = np.random.default_rng(4)
    m = rng.normal(size=(24, 24))
    loss = QuadraticLoss(m @ m.T / 24 + np.eye(24), rng.normal(size=24), 0.0)
    starts = rng.normal(size=(40, 24))
    one = sweep(loss, {"name": "adam"}, {"lr": [0.01, 0.05]}, starts, max_steps=200)
    other = sweep(loss, {"name": "adam"}, {"lr": [0.01, 0.05]}, starts, max_steps=200,
                  shards=split(80, 1))
    np.testing.assert_allclose(other.batch.final_params, one.batch.final_params, rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(other.batch.final_loss, one.batch.final_loss, rtol=1e-9)
    assert np.array_equal(other.batch.status, one.batch.status)


def test_restarting_stream_ids_per_shard_would_change_minibatches() -> None:
    """The negative case: shards that numbered their runs' streams from 0 would draw other
    minibatches, and the answer would change with the split."""
    loss = _dataset(16)
    starts = resolve_starts(loss, {"random": {"n": 10, "seed": 3}})
    plan = plan_sweep(loss, {"name": "sgd"}, {"lr": [0.05]}, starts,
                      EngineOptions(max_steps=50, seed=5, record=RecordSpec(enabled=False)))
    right = run_shard(plan.work, np.arange(5, 10))
    groups = shard_groups(plan.work, np.arange(5, 10))
    restarted = run(loss, groups, starts[5:10], max_steps=50, seed=5, streams=np.arange(5),
                    record=RecordSpec(enabled=False), path="vectorised")
    assert not np.array_equal(right.fields["final_params"], restarted.final_params)
    whole = execute(plan)
    assert np.array_equal(whole.final_params[5:10], right.fields["final_params"])


def test_merge_needs_every_run_exactly_once() -> None:
    loss = builtin_loss("sphere", 3)
    starts = np.ones((4, 3))
    plan = plan_sweep(loss, {"name": "sgd"}, {"lr": [0.1, 0.2]}, starts,
                      EngineOptions(max_steps=5, record=RecordSpec(enabled=False)))
    parts = [run_shard(plan.work, np.arange(0, 4)), run_shard(plan.work, np.arange(3, 8))]
    with pytest.raises(ValueError, match="0 missing, 1 repeated"):
        merge(plan, parts, 0.0)
    with pytest.raises(ValueError, match="4 missing"):
        merge(plan, parts[:1], 0.0)
    shards = split(1000, 64)
    assert np.array_equal(np.sort(np.concatenate(shards)), np.arange(1000))
    assert {len(s) for s in shards} == {62, 63}  # as even as possible, none over 64


def test_default_shards_are_cache_sized_and_small_batches_stay_whole() -> None:
    loss = builtin_loss("rosenbrock")
    big = plan_sweep(loss, {"name": "adam"}, {"lr": [0.1, 0.01, 0.001]},
                     np.zeros((4096, 2)), EngineOptions(record=RecordSpec(enabled=False)))
    shards = default_shards(big)
    assert len(shards) == 3 and all(len(s) == 4096 for s in shards)
    small = plan_sweep(loss, {"name": "adam"}, {"lr": [0.1]}, np.zeros((2, 2)),
                       EngineOptions())
    assert small.work.options.path == "floats" and len(default_shards(small)) == 1


def test_progress_rises_to_done_and_a_deadline_keeps_partial_results() -> None:
    loss = builtin_loss("rosenbrock")
    starts = resolve_starts(loss, {"random": {"n": 30, "seed": 1}})
    seen: list[tuple[int, int, int]] = []
    report = sweep(loss, {"name": "sgd"}, {"lr": [1e-4, 2e-4]}, starts, max_steps=400,
                   shards=split(60, 20), progress=lambda *a: seen.append(a))
    done = [s[0] for s in seen]
    assert done == sorted(done) and seen[-1] == (400, 400, 0)
    assert report.batch.steps.max() == 400
    cut = sweep(loss, {"name": "sgd"}, {"lr": [1e-4, 2e-4]}, starts, max_steps=400,
                shards=split(60, 20), deadline=0.0)  # long past
    assert set(cut.batch.status.tolist()) == {6} or cut.batch.steps.max() == 0


def test_cancel_reaches_every_shard() -> None:
    loss = builtin_loss("rosenbrock")
    starts = resolve_starts(loss, {"random": {"n": 30, "seed": 1}})
    report = sweep(loss, {"name": "sgd"}, {"lr": [1e-4]}, starts, max_steps=400,
                   shards=split(30, 10), cancel=lambda: True)
    assert (report.batch.steps == 0).all()
    assert set(report.batch.reason.tolist()) == {int(report.batch.reason[0])}


def test_shard_work_pickles_with_its_loss() -> None:
    """Shards travel to pool processes and Ray workers: every kind of loss pickles."""
    for loss in (builtin_loss("rosenbrock"), builtin_loss("rastrigin", 5),
                 expression_loss("x^2 + exp(y)", None), _dataset(16),
                 QuadraticLoss(np.eye(2), None, 0.0)):
        starts = np.full((3, loss.dim), 0.5)
        plan = plan_sweep(loss, {"name": "adam"}, {"lr": [0.1]}, starts,
                          EngineOptions(max_steps=20, seed=1, stop=StopCriteria()))
        copy = pickle.loads(pickle.dumps(plan.work))
        here, there = run_shard(plan.work, np.arange(3)), run_shard(copy, np.arange(3))
        assert np.array_equal(here.fields["final_params"], there.fields["final_params"])


def test_progress_tracker_counts_finished_shards_as_done() -> None:
    seen: list[tuple[int, int, int]] = []
    tracker = ProgressTracker([np.arange(10), np.arange(10, 30)], 100,
                              lambda *a: seen.append(a))
    tracker.update(1, 50, 100, 20)
    assert seen[-1] == (33, 100, 30)  # (0·10 + 0.5·20) / 30 of 100 steps
    tracker.update(0, 100, 100, 0)  # the first shard's runs all stopped on their own
    assert seen[-1] == (67, 100, 20)
    tracker.update(1, 60, 100, 0)  # the second was cancelled at step 60: how far it got
    tracker.finish()
    assert seen[-1] == (73, 100, 0)  # (1·10 + 0.6·20) / 30 of 100 steps, not 100


def test_a_batch_reports_how_far_it_got_when_cancelled_and_all_of_it_when_done() -> None:
    """The engine's last progress report: max_steps when every run ended on its own (however
    early), the mean steps of the interrupted runs (finished ones whole) when cancelled."""
    loss = builtin_loss("sphere")

    def last_report(path: str, lr: float, **options: object) -> tuple[int, int, int]:
        reports: list[tuple[int, int, int]] = []
        run(loss, [make_group("sgd", [{"lr": lr}] * 3)], np.ones((3, 2)), max_steps=1000,
            progress=lambda *a: reports.append(a), path=path, **options)
        return reports[-1]

    for path in ("vectorised", "floats"):
        assert last_report(path, 0.4) == (1000, 1000, 0)  # converged in ~40 steps: complete
        calls = iter(range(10**6))
        done, total, active = last_report(path, 1e-9, stop=StopCriteria(grad_tol=0),
                                          cancel=lambda c=calls: next(c) >= 2,
                                          progress_every=50)
        assert total == 1000 and active == 0 and 0 < done < 1000, (path, done)


    InProcess()  # the default executor needs nothing to start
