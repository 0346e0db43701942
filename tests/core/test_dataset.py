"""Sampled losses: exact full-batch derivatives, least squares, minibatches and seeds."""

from __future__ import annotations

import numpy as np
import pytest

from optim_core import StopCriteria, make_group, optimize, run
from optim_core.engine.recording import RecordSpec
from optim_core.errors import DatasetError, LimitExceededError
from optim_core.losses.dataset import DatasetLoss, dataset_loss, synthetic
from tests.core.finite_differences import check_derivatives


def make(model, batch=None, **extra):
    spec = {"model": model, "synthetic": {"n_samples": 300, "n_features": 4, "noise": 0.3,
                                          "seed": 2, "n_classes": 3, "condition": 1.0},
            "batch_size": batch} | extra
    return dataset_loss(spec)


@pytest.mark.parametrize("model", ["linear", "logistic", "softmax"])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_full_batch_derivatives_match_finite_differences(model, l2):
    loss = make(model, l2=l2)
    params = np.random.default_rng(0).normal(scale=0.5, size=(3, loss.dim))
    check_derivatives(loss, params)


def test_linear_newton_equals_lstsq_in_one_step():
    X, y = synthetic("linear", 500, 5, 0.5, seed=9)
    loss = DatasetLoss("linear", X, y)
    batch = run(loss, [make_group("newton", [{}])], np.zeros((1, loss.dim)), max_steps=1,
                stop=StopCriteria(grad_tol=0))
    expected, *_ = np.linalg.lstsq(np.hstack([X, np.ones((500, 1))]), y, rcond=None)
    np.testing.assert_allclose(batch.final_params[0], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss.minima[0], expected, rtol=1e-10, atol=1e-12)


def test_logistic_with_l2_under_newton_matches_scipy():
    minimize = pytest.importorskip("scipy.optimize").minimize
    loss = make("logistic", l2=0.1)
    report = optimize(loss, [{"name": "newton"}], np.zeros((1, loss.dim)), max_steps=50)
    theirs = minimize(lambda w: loss.value(w[None])[0], np.zeros(loss.dim),
                      jac=lambda w: loss.value_grad(w[None])[1][0], method="BFGS",
                      options={"gtol": 1e-12}).x
    assert report.runs[0]["status"] == "converged"
    np.testing.assert_allclose(report.runs[0]["final"]["params"], theirs, atol=1e-6)


def test_intercept_is_not_regularised():
    loss = make("linear", l2=5.0)
    params = np.zeros((1, loss.dim))
    params[0, -1] = 3.0  # only the intercept
    base = make("linear")
    assert loss.value(params)[0] == pytest.approx(base.value(params)[0])


def test_minibatch_momentum_reaches_near_the_optimum():
    loss = make("linear", batch=32)
    report = optimize(loss, [{"name": "momentum", "lr": 0.01, "momentum": 0.9}],
                      np.zeros((1, loss.dim)), max_steps=2000, seed=5)
    run_ = report.runs[0]
    assert run_["final"]["loss"] < 1.2 * loss.f_min
    assert run_["trajectory"]["loss"][-1] == pytest.approx(run_["final"]["loss"])


def test_same_seed_same_path_other_seed_other_path():
    loss = make("logistic", batch=16)

    def path(seed):
        return optimize(loss, [{"name": "sgd", "lr": 0.1}], np.zeros((1, loss.dim)),
                        max_steps=100, seed=seed).runs[0]["trajectory"]["params"]

    np.testing.assert_array_equal(path(1), path(1))
    assert not np.array_equal(path(1), path(2))


def test_batched_runs_equal_single_runs_for_the_same_streams():
    loss = make("softmax", batch=20)
    starts = np.random.default_rng(3).normal(size=(3, loss.dim))
    settings = [{"lr": 0.05}, {"lr": 0.1}, {"lr": 0.2}]
    record = RecordSpec(fields=("params",), max_points=200)
    together = run(loss, [make_group("sgd", settings)], starts, max_steps=60, seed=11,
                   record=record, stop=StopCriteria(grad_tol=0))
    for k in range(3):
        alone = run(loss, [make_group("sgd", [settings[k]])], starts[k:k + 1], max_steps=60,
                    seed=11, streams=np.array([k]), record=record, stop=StopCriteria(grad_tol=0))
        np.testing.assert_array_equal(together.trajectories[k].params,
                                      alone.trajectories[0].params)


def test_every_optimizer_in_a_comparison_sees_the_same_minibatches():
    loss = make("linear", batch=10)
    report = optimize(loss, [{"name": "sgd", "lr": 0.01}, {"name": "sgd", "lr": 0.01,
                                                            "label": "again"}],
                      np.zeros((1, loss.dim)), max_steps=30, seed=4)
    np.testing.assert_array_equal(report.runs[0]["trajectory"]["params"],
                                  report.runs[1]["trajectory"]["params"])


def test_minibatch_sampler_covers_each_epoch_once():
    loss = make("linear", batch=64)
    sampler = loss.make_sampler(np.arange(2), seed=0)
    epoch = np.concatenate([sampler.draw(np.arange(2), t) for t in range(sampler.per_epoch)],
                           axis=1)
    assert epoch.shape == (2, 300)
    assert np.array_equal(np.sort(epoch[0]), np.arange(300))
    assert not np.array_equal(epoch[0], epoch[1])


def test_prefetched_permutations_equal_permutations_drawn_in_line():
    """The next epoch is shuffled on a helper thread; each run's stream is used in the same
    order, so the batches are the ones an in-line draw gives, also when runs stop."""
    loss = make("linear", batch=64)
    rows = np.arange(3)
    prefetched = loss.make_sampler(rows, seed=7)
    in_line = loss.make_sampler(rows, seed=7, horizon=0)  # horizon 0: never prefetch
    for t in range(4 * prefetched.per_epoch):
        active = rows if t < 6 else rows[[0, 2]]  # run 1 stops in the second epoch
        np.testing.assert_array_equal(prefetched.draw(active, t), in_line.draw(active, t))
    assert in_line._next is None


@pytest.mark.parametrize("model", ["linear", "logistic", "softmax"])
def test_runs_in_cache_sized_blocks_equal_one_block(model, monkeypatch):
    loss = make(model, batch=16)
    rng = np.random.default_rng(5)
    params = rng.normal(size=(7, loss.dim))
    batch = np.stack([rng.permutation(300)[:16] for _ in range(7)])
    whole = loss.minibatch_value_grad(params, batch)
    monkeypatch.setattr("optim_core.losses.dataset.CACHE_BLOCK_BYTES", 16 * loss.width * 8 * 3)
    blocked = loss.minibatch_value_grad(params, batch)  # blocks of 3, 2, 2 runs
    np.testing.assert_array_equal(blocked[0], whole[0])
    np.testing.assert_array_equal(blocked[1], whole[1])


def test_sampler_draws_in_line_for_rows_it_did_not_prefetch():
    """The engine's active rows only shrink; a caller that brings a run back still gets a
    full fresh permutation for it (drawn in line), not a stale one."""
    loss = make("linear", batch=100)
    sampler = loss.make_sampler(np.arange(2), seed=1)
    for t in range(sampler.per_epoch):
        sampler.draw(np.array([0]), t)  # epoch 1 is prefetched for run 0 only
    stale = sampler.perms[1].copy()  # run 1's permutation of epoch 0
    epoch = np.concatenate([sampler.draw(np.arange(2), t)
                            for t in range(sampler.per_epoch, 2 * sampler.per_epoch)], axis=1)
    assert np.array_equal(np.sort(epoch[1]), np.arange(300))
    assert not np.array_equal(epoch[1], stale)


@pytest.mark.parametrize("model", ["linear", "logistic", "softmax"])
def test_value_alone_equals_value_grad(model):
    loss = make(model, l2=0.2)
    params = np.random.default_rng(4).normal(size=(5, loss.dim))
    np.testing.assert_array_equal(loss.value(params), loss.value_grad(params)[0])


def test_recorded_losses_are_full_batch_between_convergence_checks():
    loss = make("logistic", batch=16)
    batch = run(loss, [make_group("sgd", [{"lr": 0.1}])], np.zeros((1, loss.dim)),
                max_steps=95, seed=3, eval_every=1000,
                record=RecordSpec(every=7, fields=("params", "loss")))
    traj = batch.trajectories[0]
    np.testing.assert_allclose(traj.loss, loss.value(traj.params), rtol=1e-12)


def test_standardize_improves_conditioning():
    raw = make("linear")
    spec = {"model": "linear", "synthetic": {"n_samples": 300, "n_features": 4, "noise": 0.3,
                                             "seed": 2, "condition": 400.0}}
    ill = dataset_loss(spec)
    fixed = dataset_loss(spec | {"standardize": True})

    def kappa(loss):
        lam = np.linalg.eigvalsh(loss.hess(np.zeros((1, loss.dim)))[0])
        return lam[-1] / lam[0]

    assert kappa(ill) > 100 and kappa(fixed) < 3 and kappa(raw) < 10


def test_dataset_validation():
    with pytest.raises(DatasetError, match="same number of features"):
        dataset_loss({"model": "linear", "X": [[1, 2], [3]], "y": [1, 2]})
    with pytest.raises(DatasetError, match="class indices"):
        dataset_loss({"model": "softmax", "X": [[1], [2]], "y": [0, -1]})
    with pytest.raises(DatasetError, match="batch_size"):
        dataset_loss({"model": "linear", "X": [[1], [2]], "y": [1, 2], "batch_size": 5})
    with pytest.raises(LimitExceededError):
        dataset_loss({"model": "linear", "synthetic": {"n_samples": 10**6, "n_features": 10,
                                                       "noise": 0.1, "seed": 0}})


def test_blocked_full_batch_products_match_one_product():
    """Past ROW_BLOCK rows the value and gradient are summed block by block: the same
    numbers as one product over all rows, to rounding."""
    from optim_core.losses import dataset as ds

    rng = np.random.default_rng(7)
    n = 2 * ds.ROW_BLOCK + 123
    X = rng.normal(size=(n, 5))
    y = (X @ rng.normal(size=5) > 0).astype(float)
    loss = ds.dataset_loss({"model": "logistic", "X": X.tolist(), "y": y.tolist()},
                           max_values=10**7, max_dim=50)
    params = rng.normal(size=(7, loss.dim)) * 0.3
    values, grads = loss.value_grad(params)
    Xt = loss.X
    z = Xt @ params.T  # (n, K), one product
    expected_values = np.mean(np.logaddexp(0.0, z) - y[:, None] * z, axis=0)
    expected_grads = ((1 / (1 + np.exp(-z)) - y[:, None]).T @ Xt) / n
    np.testing.assert_allclose(values, expected_values, rtol=1e-12)
    np.testing.assert_allclose(grads, expected_grads, rtol=1e-10, atol=1e-14)
