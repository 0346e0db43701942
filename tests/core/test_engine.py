"""The engine: statuses, stopping, recording, Newton's guards, diagnostics with known answers."""

from __future__ import annotations

import time

import numpy as np
import pytest

from optim_core import RecordSpec, Status, StopCriteria, make_group, optimize, run
from optim_core.engine.recording import Recorder
from optim_core.losses.catalog import BuiltinLoss
from optim_core.losses.expression import expression_loss
from optim_core.losses.quadratic import QuadraticLoss
from optim_core.reports import build_reports


def test_one_batch_yields_every_status():
    loss = expression_loss("abs(x) + y^2")
    settings = [
        {"lr": 0.25},  # converged: x stays 0, y halves each step
        {"lr": 2.0},  # diverged: y ← −3y
        {"lr": 1.0},  # stalled: x flips between ±0.5, the loss never improves
        {"lr": 1e-4},  # max_steps at its own limit of 50
        {"lr": 1e-9},  # time_limit: still running when the deadline passes
    ]
    starts = np.array([[0, 1], [0, 1], [0.5, 0], [0, 1], [0, 1.0]])
    max_steps = np.array([10**6, 10**6, 10**6, 50, 10**9])
    batch = run(loss, [make_group("sgd", settings)], starts, max_steps=max_steps,
                stop=StopCriteria(grad_tol=1e-10, patience=20),
                record=RecordSpec(enabled=False), deadline=time.monotonic() + 0.5)
    assert [Status(s).label for s in batch.status] == [
        "converged", "diverged", "stalled", "max_steps", "time_limit"]
    assert batch.steps[3] == 50
    assert batch.reason.tolist()[:3] == [1, 5, 6]  # grad_tol, blow_up, patience


def test_non_finite_values_diverge_without_exceptions():
    loss = expression_loss("log(x) + y^2")
    batch = run(loss, [make_group("sgd", [{"lr": 10.0}])], np.array([[0.5, 1.0]]),
                max_steps=100)
    assert Status(batch.status[0]).label == "diverged"
    assert batch.reason[0] == 4  # non_finite


def test_loss_tol_and_step_tol():
    loss = expression_loss("x^2 + y^2")
    group = make_group("sgd", [{"lr": 0.1}, {"lr": 0.1}])
    a = run(loss, [group], np.array([[1.0, 1.0], [1.0, 1.0]]),
            stop=StopCriteria(loss_tol=1e-4))
    assert list(a.reason) == [2, 2]
    assert np.all(a.final_loss <= 1e-4)
    b = run(loss, [make_group("sgd", [{"lr": 0.1}])], np.array([[1.0, 1.0]]),
            stop=StopCriteria(step_tol=1e-3, grad_tol=0))
    assert b.reason[0] == 3
    # the step into the last point was ≤ 1e-3: ‖0.2·p‖ ≤ 1e-3
    assert np.linalg.norm(b.final_params[0]) * 0.2 / 0.8 <= 1e-3 + 1e-12


def test_frozen_runs_keep_their_final_state():
    loss = expression_loss("x^2")
    batch = run(loss, [make_group("sgd", [{"lr": 0.5}, {"lr": 0.01}])], np.array([[1.0], [1.0]]),
                max_steps=100)
    assert batch.steps[0] == 1 and batch.final_params[0, 0] == 0.0
    np.testing.assert_allclose(batch.final_params[1, 0], 0.98**100)


def test_recording_thins_evenly_and_keeps_first_and_last():
    loss = expression_loss("x^2 + y^2")
    batch = run(loss, [make_group("sgd", [{"lr": 1e-4}])], np.array([[1.0, 1.0]]),
                max_steps=5000, record=RecordSpec(max_points=100))
    traj = batch.trajectories[0]
    assert traj.step[0] == 0 and traj.step[-1] == 5000 and len(traj.step) <= 100
    assert len(traj.step) >= 90
    np.testing.assert_allclose(traj.params[-1], batch.final_params[0])
    np.testing.assert_allclose(traj.loss, loss.value(traj.params))
    assert np.all(np.diff(traj.step) > 0)


def test_recorder_memory_is_bounded_by_max_points():
    recorder = Recorder(3, 2, RecordSpec(max_points=10), max_steps=10**6)
    assert recorder.buffers["params"].shape[0] == 30  # 3·max_points: see recording.py


def test_recorder_assembles_runs_that_stop_at_different_steps():
    """Runs stopped between recorded steps get their final point appended; one stopped on a
    recorded step keeps it as its last; a full buffer still holds every point."""
    recorder = Recorder(3, 1, RecordSpec(every=2, max_points=100, fields=("params", "loss")),
                        max_steps=10)
    active = {0: [0, 1, 2], 2: [0, 1, 2], 4: [1, 2], 6: [1, 2], 8: [2], 10: [2]}
    for t, rows in active.items():
        index = np.array(rows)
        recorder.write(t, index, {"params": (10.0 * t + index)[:, None],
                                  "loss": -(10.0 * t + index)})
    finals = {"params": np.array([[1000.0], [1001.0], [1002.0]]),
              "loss": np.array([-1000.0, -1001.0, -1002.0])}
    first, second, third = recorder.assemble(np.array([3, 6, 10]), finals)
    assert first.step.tolist() == [0, 2, 3] and first.params[:, 0].tolist() == [0, 20, 1000]
    assert first.loss.tolist() == [0, -20, -1000]
    assert second.step.tolist() == [0, 2, 4, 6]
    assert second.params[:, 0].tolist() == [1, 21, 41, 61]
    assert third.step.tolist() == [0, 2, 4, 6, 8, 10]
    assert third.loss.tolist() == [-2, -22, -42, -62, -82, -102]


def test_record_every_and_fields():
    loss = expression_loss("x^2")
    batch = run(loss, [make_group("sgd", [{"lr": 0.01}])], np.array([[1.0]]), max_steps=10,
                record=RecordSpec(every=3, fields=("loss", "lr")))
    traj = batch.trajectories[0]
    assert traj.step.tolist() == [0, 3, 6, 9, 10]
    assert traj.params is None and traj.lr.tolist() == [0.01] * 5


def test_lr_schedule_is_recorded_per_step():
    loss = expression_loss("x^2")
    sched = {"name": "step", "lr": 0.1, "step_size": 2, "gamma": 0.5}
    batch = run(loss, [make_group("sgd", [{"lr": sched}])], np.array([[1.0]]), max_steps=5,
                stop=StopCriteria(grad_tol=0))
    np.testing.assert_allclose(batch.trajectories[0].lr[:5], [0.1, 0.1, 0.05, 0.05, 0.025])


def test_newton_leaves_an_exact_saddle_and_the_ridge():
    loss = expression_loss("x^2 - y^2 + y^4/4")
    # damped lifts λmin to `damping`, so its steps near negative curvature are huge: the
    # contract's robust use turns the line search on.
    for settings in ({"fallback": "gradient"}, {"fallback": "damped", "line_search": True},
                     {"fallback": "saddle_free"}):
        fallback = settings["fallback"]
        batch = run(loss, [make_group("newton", [settings])],
                    np.array([[1.0, 0.0]]), max_steps=2000)
        assert Status(batch.status[0]).label == "converged", fallback
        np.testing.assert_allclose(np.abs(batch.final_params[0]), [0.0, np.sqrt(2)], atol=1e-6)
        assert batch.counters["escape_steps"][0] >= 1
    # at the exact saddle point (0, 0) the gradient is zero: Newton must not call it converged
    at_saddle = run(loss, [make_group("newton", [{}])], np.array([[0.0, 0.0]]), max_steps=2000)
    assert Status(at_saddle.status[0]).label == "converged"
    assert abs(at_saddle.final_params[0, 1]) > 1.0


def test_newton_on_a_plain_saddle_reports_its_fallbacks():
    loss = BuiltinLoss("saddle")
    report = optimize(loss, [{"name": "newton", "fallback": "saddle_free"}],
                      np.array([[0.5, 0.0]]), max_steps=50)
    run_ = report.runs[0]
    assert run_["work"]["fallback_steps"] > 0
    codes = {f["code"] for f in run_["findings"]}
    assert "newton_fallback" in codes


def test_newton_handles_singular_and_indefinite_rows_in_one_batch():
    loss = expression_loss("x^4 + y^2")  # singular Hessian along x at x = 0
    batch = run(loss, [make_group("newton", [{}, {"fallback": "damped"}])],
                np.array([[0.0, 1.0], [1.0, 1.0]]), max_steps=2000)
    assert np.all(np.isfinite(batch.final_params))
    assert all(Status(s).label == "converged" for s in batch.status)
    assert batch.counters["fallback_steps"][0] > 900  # singular: every step falls back


def test_newton_line_search_is_monotone():
    loss = BuiltinLoss("rosenbrock")
    batch = run(loss, [make_group("newton", [{"line_search": True}])],
                np.array([[-1.2, 1.0]]), max_steps=100)
    losses = batch.trajectories[0].loss
    assert np.all(np.diff(losses) <= 1e-12)
    assert Status(batch.status[0]).label == "converged"


def test_newton_line_search_settles_a_local_minimum_below_round_off():
    """10-D Rosenbrock has a local minimum near (−1, 1, …, 1) with f ≈ 3.99. There the Armijo
    decrease falls below the round-off of f; without the round-off slack the search halved
    30 times per step and the runs hit max_steps instead of converging."""
    loss = BuiltinLoss("rosenbrock", 10)
    starts = np.random.default_rng(0).uniform(-2, 2, size=(64, 10))
    batch = run(loss, [make_group("newton", [{"line_search": True,
                                               "fallback": "saddle_free"}] * 64)],
                starts, max_steps=200, stop=StopCriteria(grad_tol=1e-8))
    assert np.all(batch.status == Status.CONVERGED)
    local = batch.final_loss > 1.0
    assert local.any() and np.all(batch.steps < 60)
    np.testing.assert_allclose(batch.final_params[local][:, 0], -0.99326, atol=1e-4)


def test_certificate_only_for_clearly_positive_definite_batches():
    from optim_core.optimizers.newton import certified_rows

    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 4, 4))
    spd = a @ a.transpose(0, 2, 1) + 4 * np.eye(4)
    assert certified_rows(spd).all()
    mixed = spd.copy()
    mixed[2] = np.diag([1.0, -1.0, 2.0, 3.0])  # indefinite
    mixed[1] = np.diag([1.0, 1.0, 1.0, 1e-9])  # positive, but below the rule's relative tol
    mixed[4] = 0.0
    np.testing.assert_array_equal(certified_rows(mixed), [True, False, False, True, False])
    # λmin above twice the tolerance times ‖H‖_F = √3: certified; the input is untouched
    near = np.diag([1.0, 1.0, 1.0, 1.0])[None] * np.array([1.0, 1.0, 1.0, 4.1e-8])
    before = near.copy()
    assert certified_rows(near).all()
    np.testing.assert_array_equal(near, before)
    assert not certified_rows(near * np.array([1.0, 1.0, 1.0, 0.5])).any()


@pytest.mark.parametrize("fallback", ["gradient", "damped", "saddle_free"])
def test_newton_takes_the_same_steps_with_and_without_the_certificate(monkeypatch, fallback):
    """Certified rows solve H·Δ = g, the others go through eigh: batches that mix both (and
    mixed per-row hyperparameters) end where the eigh-only path ends."""
    from optim_core.optimizers import newton

    loss = BuiltinLoss("rosenbrock", 6)
    starts = np.random.default_rng(1).uniform(-2, 2, size=(16, 6))
    settings = [{"line_search": True, "fallback": fallback, "lr": 1.0 if i % 3 else 0.8}
                for i in range(16)]
    shares = []
    certify = newton.certified_rows

    def recording(hess):
        rows = certify(hess)
        shares.append(rows.mean())
        return rows

    monkeypatch.setattr(newton, "certified_rows", recording)  # decompose looks it up
    fast = run(loss, [make_group("newton", settings)], starts, max_steps=100)
    assert any(0 < share < 1 for share in shares) and 1.0 in shares  # mixed and whole
    monkeypatch.setattr(newton, "certified_rows",
                        lambda hess: np.zeros(hess.shape[0], dtype=bool))
    slow = run(loss, [make_group("newton", settings)], starts, max_steps=100)
    np.testing.assert_array_equal(fast.status, slow.status)
    np.testing.assert_array_equal(fast.steps, slow.steps)
    np.testing.assert_allclose(fast.final_params, slow.final_params, rtol=1e-9, atol=1e-12)
    for name in newton.NEWTON.counters:
        np.testing.assert_array_equal(fast.counters[name], slow.counters[name])


def test_certificate_without_numpys_row_wise_cholesky_is_all_or_nothing(monkeypatch):
    from optim_core.optimizers import newton

    def raising(matrices, signature):
        raise np.linalg.LinAlgError("not positive definite")

    for replacement in (None, raising):  # no row-wise gufunc, or one that raises
        monkeypatch.setattr(newton, "_CHOLESKY_ROWS", replacement)
        spd = np.array([np.eye(3), np.diag([1.0, 2.0, 3.0])])
        assert newton.certified_rows(spd).all()
        spd[1, 2, 2] = -1.0
        assert not newton.certified_rows(spd).any()


def test_oscillation_known_answers():
    ravine = QuadraticLoss(np.diag([1.0, 100.0]))
    zig = optimize(ravine, [{"name": "sgd", "lr": 0.98 * 2 / 100}], np.array([[-8.0, 1.0]]),
                   max_steps=200).runs[0]
    assert zig["diagnostics"]["oscillation"] == pytest.approx(0.5, abs=0.02)
    sphere = BuiltinLoss("sphere")
    smooth = optimize(sphere, [{"name": "sgd", "lr": 0.1}], np.array([[1.0, -2.0]]),
                      max_steps=200).runs[0]
    assert smooth["diagnostics"]["oscillation"] == 0.0
    assert smooth["diagnostics"]["path_efficiency"] == pytest.approx(1.0)


@pytest.mark.parametrize("kappa", [10.0, 50.0])
def test_measured_rate_matches_quadratic_theory(kappa):
    loss = QuadraticLoss(np.diag([1.0, kappa]))
    lr = 2.0 / (1.0 + kappa)
    rho = (kappa - 1) / (kappa + 1)
    run_ = optimize(loss, [{"name": "sgd", "lr": lr}], np.array([[3.0, 2.0]]), max_steps=300,
                    stop=StopCriteria(grad_tol=1e-12)).runs[0]
    # the loss gap shrinks by ρ² per step; the error by ρ
    assert run_["diagnostics"]["convergence_rate"] == pytest.approx(rho**2, rel=0.05)
    agree = [f for f in run_["findings"] if f["code"] == "rate_vs_theory"]
    assert agree and agree[0]["data"]["agrees"] is True


def test_distance_to_minimum_and_curvature_at_the_end():
    loss = BuiltinLoss("himmelblau")
    report = optimize(loss, [{"name": "newton"}], np.array([[-3.0, -3.0]]), max_steps=50)
    diag = report.runs[0]["diagnostics"]
    assert diag["distance_to_minimum"] < 1e-8
    assert diag["final_curvature"]["kind"] == "minimum"
    assert diag["final_curvature"]["condition_number"] > 1


def test_progress_and_cancel_callbacks():
    loss = expression_loss("x^2")
    seen = []
    batch = run(loss, [make_group("sgd", [{"lr": 1e-6}])], np.array([[1.0]]), max_steps=1000,
                progress=lambda done, total, active: seen.append((done, total, active)),
                cancel=lambda: len(seen) >= 3, progress_every=10)
    assert Status(batch.status[0]).label == "cancelled"
    assert seen[0] == (10, 1000, 1) and 30 <= batch.steps[0] <= 40


def test_reports_are_json_ready():
    import orjson

    loss = BuiltinLoss("saddle")
    # y doubles every step: the loss falls to −inf and the run diverges once it overflows
    report = optimize(loss, [{"name": "sgd", "lr": 0.5}], np.array([[1.0, 0.5]]), max_steps=3000)
    body = orjson.dumps(report.runs, option=orjson.OPT_SERIALIZE_NUMPY)
    assert b"NaN" not in body and b"Infinity" not in body
    assert report.runs[0]["status"] == "diverged"
    assert report.runs[0]["reason"] == "non_finite"
    assert build_reports  # the public helper stays importable


def test_reports_read_each_runs_hyperparameters_from_shared_or_own_columns():
    """Runs that share a value get it as a float (a scalar to NumPy); the
    findings still read every run's own lr (unstable_lr: lr above 2/λmax = 0.02)."""
    from optim_core.reports import build_reports

    ravine = QuadraticLoss(np.diag([1.0, 100.0]))
    starts = np.array([[1.0, 1.0], [2.0, -1.0]])

    def unstable(settings):
        group = make_group("sgd", settings)
        batch = run(ravine, [group], starts, max_steps=30)
        reports = build_reports(ravine, batch, ["a", "b"], StopCriteria())
        return group, ["unstable_lr" in {f["code"] for f in r["findings"]} for r in reports]

    group, flags = unstable([{"lr": 0.021}] * 2)
    assert group.hyper_at(0).lr == 0.021 and flags == [True, True]
    group, flags = unstable([{"lr": 0.021}, {"lr": 0.001}])
    assert group.hyper_at(0).lr.shape == (2, 1) and flags == [True, False]


def test_builtin_losses_are_built_once_and_shared_read_only():
    from optim_core.losses.catalog import builtin_loss

    a = builtin_loss("rosenbrock", 3, {"b": 50.0})
    assert builtin_loss("rosenbrock", 3, {"b": 50.0}) is a
    assert builtin_loss("rosenbrock", 3, {"b": 60.0}) is not a
    with pytest.raises(ValueError, match="read-only"):
        a.default_start[0] = 7.0


def test_allocator_thresholds_are_set_once_and_only_for_large_batches(monkeypatch):
    from optim_core.engine import allocator

    calls = []
    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.setattr(allocator, "_set_thresholds", lambda: calls.append(1) or True)
    assert allocator.reuse_large_blocks(4096, 4) is False  # K·d = 16,384: small enough
    assert calls == []
    assert allocator.reuse_large_blocks(65536, 2) is True
    assert allocator.reuse_large_blocks(65536, 2) is True and calls == [1]


def test_allocator_thresholds_take_on_glibc():
    import platform

    from optim_core.engine import allocator

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert allocator._set_thresholds() is True


def test_every_per_run_array_of_the_loop_is_compressed(monkeypatch):
    """After each compression every array of the loop either covers all K runs (results) or
    the active rows (ACTIVE_FIELDS): an array left out of the table keeps stopped rows."""
    from optim_core.engine import loop

    loss = expression_loss("x^2 + 3*y^2 + 0.1*x*y")
    starts = np.random.default_rng(5).uniform(-2, 2, size=(40, 2))
    settings = [{"lr": 0.01 * (1 + i % 7)} for i in range(40)]  # rows stop at different steps
    checked = []
    compress = loop._Loop._compress

    def checking(self, keep, bounds):
        compress(self, keep, bounds)
        active = self.rows.size
        axes = {f.name: f.axis for f in loop.ACTIVE_FIELDS}
        for name, value in vars(self).items():
            if not isinstance(value, np.ndarray) or value.ndim == 0:
                continue
            if name in axes:
                assert value.shape[axes[name]] == active, name
                continue
            sizes = {value.shape[0], value.shape[-1]}
            assert self.k in sizes, f"{name} is per active row but not in ACTIVE_FIELDS"
        checked.append(active)

    monkeypatch.setattr(loop._Loop, "_compress", checking)
    batch = run(loss, [make_group("sgd", settings)], starts, max_steps=400,
                stop=StopCriteria(grad_tol=1e-6), path="vectorised")
    assert len(checked) >= 3 and batch.status.tolist().count(1) >= 20


@pytest.mark.parametrize("criteria", [
    StopCriteria(),
    StopCriteria(grad_tol=0.3, loss_tol=0.2, step_tol=0.1, divergence_factor=2.0, patience=3),
    StopCriteria(grad_tol=0.0, loss_tol=None, step_tol=0.5, patience=None),
])
def test_one_run_and_a_batch_apply_the_same_stop_tests(criteria):
    """check_termination (arrays) and run_verdict (one run's floats) come from one list of
    tests: every row of a batch gets the verdict it gets alone, in the same priority."""
    from optim_core.engine.stopping import check_termination, run_verdict

    rng = np.random.default_rng(7)
    k = 400
    values = rng.choice([0.1, 0.5, 5.0, 50.0, np.nan, np.inf, -np.inf], size=k)
    grad_norms = rng.choice([0.0, 0.2, 1.0, np.nan], size=k)
    params = rng.choice([0.0, 1.0, np.inf, np.nan], p=[0.45, 0.45, 0.05, 0.05], size=(k, 2))
    f0 = rng.choice([-3.0, 0.0, 1.0, 10.0], size=k)
    last_step = rng.choice([0.05, 0.3, 1.0], size=k)
    last_improvement = rng.integers(0, 10, size=k)
    max_steps = rng.integers(5, 12, size=k)
    for t in (0, 6, 11):
        status, reason = check_termination(
            criteria, t=t, max_steps=max_steps, values=values, grad_norms=grad_norms,
            params=params, f0=f0, last_step_norm=last_step, last_improvement=last_improvement,
            may_converge=None)
        alone = [run_verdict(criteria, t=t, max_steps=int(max_steps[i]), values=values[i],
                             grad_norms=grad_norms[i], params=params[i].tolist(), f0=f0[i],
                             last_step_norm=last_step[i], last_improvement=last_improvement[i])
                 for i in range(k)]
        assert [(int(s), int(r)) for s, r in zip(status, reason, strict=True)] == alone
        assert len(set(alone)) >= 3  # the cases reach several criteria


def test_both_paths_fill_every_declared_result_field():
    """RESULT_FIELDS is the one list of per-run results: each path gives every field (a
    missing or unknown one raises), and the batches they build agree field by field."""
    from optim_core.engine.results import (
        NAMES,
        RESULT_FIELDS,
        empty_results,
        results_from_runs,
        write_rows,
    )

    shapes = {name: a.shape for name, a in empty_results(3, 2, 5).items()}
    assert shapes["final_params"] == (3, 2) and shapes["recent_losses"] == (3, 5)
    assert set(shapes) == set(NAMES) and len(NAMES) == len(RESULT_FIELDS)
    row = dict.fromkeys(NAMES, 0) | {"final_params": [1.0, 2.0],
                                          "recent_losses": [0.0] * 5}
    with pytest.raises(KeyError):
        write_rows(empty_results(3, 2, 5), slice(None), {k: v for k, v in row.items()
                                                          if k != "path_length"})
    with pytest.raises(KeyError):
        results_from_runs([row | {"path_lenght": 1.0}], 2, 5)
    loss = BuiltinLoss("rosenbrock")
    starts = np.array([[-1.2, 1.0], [0.5, 0.5]])
    groups = [make_group("momentum", [{"lr": 0.001, "momentum": 0.9}] * 2)]
    on_floats = run(loss, groups, starts, max_steps=60, path="floats")
    vectorised = run(loss, groups, starts, max_steps=60, path="vectorised")
    for name in ("status", "reason", "steps", "final_params", "final_loss", "initial_loss",
                 "best_loss", "path_length", "sign_flips", "recent_losses", "hess_evals",
                 "grad_evals", "steps_to_tol"):
        np.testing.assert_allclose(getattr(on_floats, name), getattr(vectorised, name),
                                   rtol=1e-12, err_msg=name)


@pytest.mark.parametrize(("field", "at", "bad", "partner_zero"), [
    ("values", 5, np.nan, False), ("values", 5, np.inf, False), ("values", 5, -np.inf, False),
    ("values", 5, np.inf, True),  # its gradient square 0: inf·0 is nan, still caught
    ("grad_squares", 7, np.inf, False), ("grad_squares", 7, np.nan, False),
    ("grad_squares", 7, np.inf, True),  # its value 0
    ("params", (3, 1), np.nan, False), ("params", (3, 1), -np.inf, False)])
def test_the_screen_never_misses_a_non_finite_number(field, at, bad, partner_zero):
    """The screen sums values, squared gradient norms and parameters: a non-finite entry
    anywhere (next to a zero too) must send the step to the full check."""
    from optim_core.engine.stopping import screen

    rng = np.random.default_rng(0)
    k = 4096
    arrays = {"values": rng.uniform(0, 1, k), "grad_squares": rng.uniform(1, 2, k),
              "params": rng.uniform(-1, 1, (k, 2))}
    common = {"t": 1, "blow_up_at": np.full(k, 1e9), "converge_checked": True}
    never = StopCriteria(grad_tol=0.0)
    assert screen(never, **arrays, **common) is False
    arrays[field][at] = bad
    if partner_zero:
        arrays["grad_squares" if field == "values" else "values"][at] = 0.0
    with np.errstate(all="ignore"):
        assert screen(never, **arrays, **common) is True
