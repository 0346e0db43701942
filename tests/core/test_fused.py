"""The fused kernels against the vectorised loop, field by field: every first-order rule,
every loss kind with a fused form, schedules, sweeps, every stopping reason, recording,
deadlines and cancellation, sharding. Compiles happen once per (rule, coefficients, loss);
each test uses a fresh cache directory of its session, so a cold compile is what is tested.
"""

from __future__ import annotations

import numpy as np
import pytest

from optim_core import OPTIMIZERS, RecordSpec, Status, StopCriteria, kernels, make_group, run
from optim_core.engine import fused
from optim_core.losses.catalog import BuiltinLoss
from optim_core.losses.dataset import dataset_loss
from optim_core.losses.expression import expression_loss
from optim_core.losses.quadratic import QuadraticLoss

pytest.importorskip("numba")

FIELDS = ("status", "reason", "steps", "final_params", "final_loss", "final_grad_norm",
          "initial_loss", "best_loss", "path_length", "sign_flips", "recent_losses",
          "grad_evals", "steps_to_tol")
ELEMENTWISE = sorted(name for name, rule in OPTIMIZERS.items() if rule.elementwise is not None)
RNG = np.random.default_rng(20261207)


@pytest.fixture(scope="module", autouse=True)
def kernel_cache(tmp_path_factory):
    kernels.configure("numpy", None, tmp_path_factory.mktemp("kernels"))
    yield
    kernels.configure("numpy")


def both(loss, groups, starts, rtol=1e-13, atol=1e-300, **options):
    """The vectorised and the fused batch, compared field by field (rtol 0: to the bit).
    Past two coordinates NumPy's einsum sums a norm's squares in its own order: the last bit
    of a norm may differ, hence a few ulps by default; in two dimensions, to the bit."""
    a = run(loss, groups, starts, path="vectorised", **options)
    b = run(loss, groups, starts, path="fused", **options)
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if rtol == 0.0 or x.dtype.kind != "f":
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, equal_nan=True,
                                       err_msg=name)
    if a.trajectories is not None:
        for ta, tb in zip(a.trajectories, b.trajectories, strict=True):
            for key, value in ta.as_dict().items():
                np.testing.assert_allclose(value, tb.as_dict()[key], rtol=rtol,
                                           atol=atol, equal_nan=True, err_msg=key)
    return a, b


def starts(k, d, low=-2.0, high=2.0):
    return RNG.uniform(low, high, (k, d))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_rule_on_rosenbrock(name):
    loss = BuiltinLoss("rosenbrock", 3)
    k = 12
    settings = [{"lr": 1e-3}] * k if "lr" in {h.name for h in OPTIMIZERS[name].hyperparams} \
        else [{}] * k
    both(loss, [make_group(name, settings)], starts(k, 3), max_steps=150,
         record=RecordSpec(max_points=20))


@pytest.mark.parametrize(("name", "settings"), [
    ("adamw", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("nadam", {"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True}),
    ("radam", {"lr": 0.01, "weight_decay": 0.05}),
    ("rmsprop", {"lr": 0.001, "centered": True, "momentum": 0.5, "weight_decay": 0.01}),
    ("momentum", {"lr": {"name": "cosine", "lr": 0.01, "steps": 80},
                  "momentum": {"name": "linear", "start": 0.5, "end": 0.9, "steps": 40}}),
])
def test_options_and_schedules(name, settings):
    loss = BuiltinLoss("styblinski_tang", 4)
    both(loss, [make_group(name, [settings] * 6)], starts(6, 4), max_steps=120,
         record=RecordSpec(max_points=15))


@pytest.mark.parametrize("loss", [
    BuiltinLoss("sphere", 5), BuiltinLoss("rastrigin", 3), BuiltinLoss("ravine", 4),
    BuiltinLoss("beale"), BuiltinLoss("rosenbrock", 2),
], ids=lambda loss: f"{loss.name}-{loss.dim}")
def test_every_builtin_form(loss):
    """Rastrigin's value is a sum of terms of order A = 10 that cancel near its minima: libm's
    cosine and NumPy's differ in the last bit of a term, hence an absolute floor there."""
    k = 16
    exact = loss.dim == 2
    both(loss, [make_group("adam", [{"lr": 0.01}] * k)], starts(k, loss.dim, -1.0, 1.0),
         rtol=0.0 if exact else 1e-13, atol=1e-12 if loss.name == "rastrigin" else 1e-300,
         max_steps=200, record=RecordSpec(max_points=25))


def test_expression_with_transcendental_functions_to_the_last_bits():
    """libm's functions against NumPy's SIMD loops: terms of order one differ in their last
    bit, which is large beside a gradient that has almost vanished (an absolute floor)."""
    loss = expression_loss("softplus(x - 1) + exp(0.1*y)*cos(x*y) + log1p(x^2) + sqrt(1 + y^2)")
    k = 16
    both(loss, [make_group("adam", [{"lr": 0.02}] * k)], starts(k, 2), rtol=1e-9, atol=1e-12,
         max_steps=200, record=RecordSpec(max_points=25))


def test_a_sweep_with_per_run_hyperparameters_and_two_rules():
    loss = expression_loss("(x - 1)^2 + 10*(y - x^2)^2")
    lrs = np.geomspace(1e-4, 0.05, 9)
    groups = [make_group("adam", [{"lr": float(lr), "beta1": float(b)}
                                  for lr, b in zip(lrs, np.linspace(0.5, 0.95, 9), strict=True)]),
              make_group("sgd", [{"lr": float(lr) / 10} for lr in lrs])]
    both(loss, groups, starts(18, 2), rtol=0.0, max_steps=300, record=RecordSpec(enabled=False))


def test_a_sweep_in_stretches_of_equal_settings_runs_as_segments_with_the_same_bits():
    """A sweep's runs come one grid point after another: the kernels run each stretch of
    equal settings as its own segment (one coefficient a step), with the bits of the
    vectorised loop and of the unsplit per-run tables."""
    loss = BuiltinLoss("rosenbrock", 2)
    per_point = fused.SEGMENT_RUNS + 3
    grid = [{"lr": 0.002, "beta1": 0.5}, {"lr": 0.01, "beta1": 0.9},
            {"lr": 0.03, "beta1": 0.95, "amsgrad": True}]
    groups = [make_group("adam", [g for g in grid for _ in range(per_point)])]
    assert [first for _, first in fused.uniform_segments(groups)] == [0, per_point,
                                                                      2 * per_point]
    points = np.tile(starts(per_point, 2), (3, 1))
    _, split = both(loss, groups, points, rtol=0.0, max_steps=150,
                    stop=StopCriteria(grad_tol=1e-3), record=RecordSpec(max_points=7))
    mixed = [make_group("adam", [grid[i % 3] for i in range(3 * per_point)])]
    assert len(fused.uniform_segments(mixed)) == 1  # stretches of one run: kept whole
    i = np.arange(3 * per_point)
    order = (i % 3) * per_point + i // 3  # mixed run i: grid point i % 3, start i // 3
    _, whole = both(loss, mixed, points[order], rtol=0.0, max_steps=150,
                    stop=StopCriteria(grad_tol=1e-3), record=RecordSpec(enabled=False))
    np.testing.assert_array_equal(whole.final_params, split.final_params[order])
    np.testing.assert_array_equal(whole.steps, split.steps[order])


def test_every_recorded_field_with_scheduled_and_per_run_lr_as_in_the_vectorised_loop():
    """step_size (each run's last lr, written once a block from its last step's row of the
    lr table) and the other recorded fields, with an lr schedule, a per-run lr and runs
    stopping inside blocks."""
    from optim_core.engine.recording import FIELDS as RECORDED

    loss = BuiltinLoss("rosenbrock", 2)
    lrs = [{"lr": {"name": "cosine", "lr": 0.02, "steps": 90}}] * 5 + \
        [{"lr": float(lr)} for lr in np.geomspace(1e-3, 0.03, 5)]
    both(loss, [make_group("adam", lrs)], starts(10, 2), rtol=0.0,
         max_steps=np.array([120, 37, 64, 200, 5, 120, 37, 64, 200, 5]),
         stop=StopCriteria(grad_tol=0.5), record=RecordSpec(max_points=9, fields=RECORDED))


def test_every_stopping_reason_and_per_run_step_limits():
    loss = BuiltinLoss("sphere", 2)
    cases = [
        ({"lr": 0.1}, StopCriteria(grad_tol=1e-3)),  # converged on the gradient
        ({"lr": 0.1}, StopCriteria(grad_tol=0, loss_tol=1e-4)),  # on the loss
        ({"lr": 1e-9}, StopCriteria(grad_tol=0, step_tol=1e-6)),  # on the step
        ({"lr": 1e-12}, StopCriteria(grad_tol=0, patience=1)),  # patience: no strict gain
        ({"lr": 3.0}, StopCriteria(grad_tol=0, divergence_factor=10.0)),  # blow-up
    ]
    for settings, stop in cases:
        a, _ = both(loss, [make_group("sgd", [settings] * 4)], starts(4, 2),
                    max_steps=np.array([200, 150, 3, 0]), stop=stop,
                    record=RecordSpec(max_points=10))
        assert len(set(a.reason.tolist())) >= 2  # the step limits cut some runs short
    huge = both(loss, [make_group("sgd", [{"lr": 1e200}] * 3)], starts(3, 2), max_steps=50)[1]
    assert (huge.status == Status.DIVERGED).all()


def test_a_gradient_just_above_the_tolerance_goes_on_as_in_the_vectorised_loop():
    """The kernel's fast step screens the squared gradient norm against grad_tol² widened
    by a few ulps, and hands a step the screen flags to the general loop's exact tests: a
    run whose smallest norm lies one ulp above grad_tol goes on to the same end as in the
    vectorised loop; with grad_tol at that norm, it converges there."""
    loss = BuiltinLoss("rosenbrock", 2)
    points = np.repeat(starts(1, 2), 6, axis=0)  # all alike: the chunk steps as one
    groups = [make_group("adam", [{"lr": 0.01}] * 6)]
    probe = run(loss, groups, points, max_steps=40, path="vectorised",
                stop=StopCriteria(grad_tol=0), record=RecordSpec(max_points=41))
    norms = probe.trajectories[2].as_dict()["grad_norm"][:40]
    lowest = float(norms.min())
    tol = float(np.nextafter(lowest, 0.0))  # one ulp below: the exact test never holds
    _, b = both(loss, groups, points, rtol=0.0, max_steps=40, stop=StopCriteria(grad_tol=tol),
                record=RecordSpec(enabled=False))
    assert (b.steps == 40).all()
    _, at = both(loss, groups, points, rtol=0.0, max_steps=40,
                 stop=StopCriteria(grad_tol=lowest), record=RecordSpec(enabled=False))
    assert (at.steps == int(norms.argmin())).all() and (at.status == Status.CONVERGED).all()


def test_cancel_and_deadline_stop_every_run_at_a_block_boundary():
    loss = BuiltinLoss("rosenbrock", 2)
    groups = [make_group("adam", [{"lr": 1e-4}] * 8)]
    cancelled = run(loss, groups, starts(8, 2), max_steps=10_000, path="fused",
                    cancel=lambda: True, progress_every=50)
    assert (cancelled.status == Status.CANCELLED).all() and (cancelled.steps == 0).all()
    calls = []

    def cancel_later():
        calls.append(1)
        return len(calls) > 3

    later = run(loss, groups, starts(8, 2), max_steps=10_000, path="fused",
                cancel=cancel_later, progress_every=50)
    assert (later.status == Status.CANCELLED).all() and (later.steps == 150).all()
    late = run(loss, groups, starts(8, 2), max_steps=10_000, path="fused", deadline=0.0)
    assert (late.status == Status.TIME_LIMIT).all()


def test_progress_is_reported_between_blocks():
    seen = []
    run(BuiltinLoss("sphere", 3), [make_group("sgd", [{"lr": 1e-3}] * 5)], starts(5, 3),
        max_steps=200, path="fused", progress=lambda *a: seen.append(a), progress_every=50,
        stop=StopCriteria(grad_tol=0))
    assert seen[0] == (50, 200, 5) and seen[-1] == (200, 200, 0)


def test_losses_without_a_fused_form_take_the_vectorised_loop():
    ackley = BuiltinLoss("ackley", 3)
    quadratic = QuadraticLoss(np.diag([1.0, 10.0]))
    data = dataset_loss({"model": "linear", "synthetic": {
        "n_samples": 50, "n_features": 2, "noise": 0.3, "seed": 2, "n_classes": 2,
        "condition": 1.0}})
    wide = BuiltinLoss("sphere", fused.MAX_DIM + 1)  # coordinates are unrolled up to MAX_DIM
    for loss in (ackley, quadratic, data, wide):
        assert not fused.covers(loss, [make_group("sgd", [{}])], None, None)
    points = starts(3, 3)
    a = run(ackley, [make_group("sgd", [{}] * 3)], points, max_steps=20, path="fused")
    b = run(ackley, [make_group("sgd", [{}] * 3)], points, max_steps=20, path="vectorised")
    np.testing.assert_array_equal(a.final_params, b.final_params)
    assert not fused.covers(BuiltinLoss("sphere"), [make_group("newton", [{}])], None, None)


def test_auto_chooses_by_size_and_compile_cost(monkeypatch):
    loss = BuiltinLoss("rosenbrock", 2)
    small = [make_group("adam", [{}] * 64)]
    assert not fused.choose("auto", loss, small, 64, 10**6, None, None)
    assert not fused.choose("numpy", loss, small, 4096, 10**6, None, None)
    assert fused.choose("numba", loss, small, 64, 10, None, None)
    large = [make_group("adam", [{}] * 4096)]
    assert fused.choose("auto", loss, large, 4096, 80_000, None, None)  # pays its compile
    monkeypatch.setattr(kernels, "COMPILE_PAYS_RUN_STEPS", 10**12)
    never_compiled = [make_group("adagrad", [{"eps": 1e-9}] * 4096)]
    assert not fused.choose("auto", loss, never_compiled, 4096, 100, None, None)
    assert not fused.choose("auto", loss, large, 4096, 100, None, np.array([[0, 1], [0, 1]]))


def test_auto_compiles_in_the_background_for_the_next_batch_of_a_shape(tmp_path):
    """A batch too small to pay for a compile runs on NumPy and starts one warm-up on a
    thread; once it is done, batches of that shape take the fused path."""
    import threading
    kernels.configure("auto", None, tmp_path)
    loss = expression_loss("(2 - x)^2 + 3*(y + x)^2")
    groups = [make_group("nadam", [{"lr": 0.01}] * 300)]
    before = set(threading.enumerate())
    try:
        assert not fused.choose("auto", loss, groups, 300, 100, None, None)
        assert not fused.choose("auto", loss, groups, 300, 100, None, None)  # one warm-up
        warming = [t for t in set(threading.enumerate()) - before
                   if t.name == "optim-kernel-warm-up"]
        assert len(warming) == 1
        warming[0].join(timeout=120)
        assert fused.choose("auto", loss, groups, 300, 100, None, None)
    finally:
        kernels.configure("numpy")


def test_threads_and_chunks_give_the_same_bits():
    """A batch past PARALLEL_MIN_RUNS runs its chunks on every thread: each run's arithmetic
    is its own, so the answer equals the serial kernel's and the vectorised loop's."""
    loss = BuiltinLoss("rosenbrock", 2)
    k = fused.PARALLEL_MIN_RUNS
    points = starts(k, 2)
    a, b = both(loss, [make_group("adam", [{"lr": 0.01}] * k)], points, rtol=0.0,
                max_steps=100, record=RecordSpec(enabled=False))
    part = run(loss, [make_group("adam", [{"lr": 0.01}] * 100)], points[:100], max_steps=100,
               path="fused")
    np.testing.assert_array_equal(part.final_params, b.final_params[:100])


def test_runs_ending_together_over_full_and_partial_chunks_keep_their_loss_rings():
    """Runs that all end at one step have their loss rings moved into the results chunk by
    chunk (full chunks, then the rest): each run's ring, as the vectorised loop keeps it."""
    loss = BuiltinLoss("rosenbrock", 2)
    k = 2 * fused.CHUNK_RUNS + 44
    a, b = both(loss, [make_group("adam", [{"lr": 0.01}] * k)], starts(k, 2), rtol=0.0,
                max_steps=137, stop=StopCriteria(grad_tol=0), record=RecordSpec(enabled=False))
    assert (b.steps == 137).all() and np.isfinite(b.recent_losses).all()


def test_the_plan_takes_the_fused_path_and_shards_agree():
    from optim_core.api import optimize
    loss = expression_loss("(1 - x)^2 + 5*(y - x^2)^2")
    points = starts(300, 2)
    kernels.configure("numba", None, kernels.cache_dir())  # the plan reads the mode
    try:
        whole = optimize(loss, [{"name": "adam", "lr": 0.01}], points, max_steps=100)
        split = optimize(loss, [{"name": "adam", "lr": 0.01}], points, max_steps=100,
                         shards=[np.arange(0, 120), np.arange(120, 300)])
    finally:
        kernels.configure("numpy", None, kernels.cache_dir())
    plain = optimize(loss, [{"name": "adam", "lr": 0.01}], points, max_steps=100)
    for a, b in ((whole, split), (whole, plain)):
        np.testing.assert_array_equal(a.batch.final_params, b.batch.final_params)


def test_generated_modules_are_cached_on_disk(tmp_path):
    from optim_core.kernels import codegen
    kernels.configure("numpy", None, tmp_path)  # other modules' apps may have configured
    loss = BuiltinLoss("sphere", 7)  # a shape no other test compiles in this process
    run(loss, [make_group("sgd", [{"lr": 0.1}] * 3)], starts(3, 7), max_steps=5,
        path="fused")
    files = list(kernels.cache_dir().glob("optim_fused_*.py"))
    assert files and all("import" in f.read_text() for f in files)
    assert list((kernels.cache_dir() / "__pycache__").glob("*.nbi"))  # numba's index
    assert codegen.is_compiled(files[0].read_text())


def test_a_fused_plan_is_one_shard_here_and_one_a_worker_in_a_pool():
    from dataclasses import replace

    from optim_core.plan import plan_optimize
    from optim_core.shards import EngineOptions, default_shards, parallel_shards
    plan = plan_optimize(BuiltinLoss("rosenbrock"), [{"name": "adam"}], starts(10_000, 2),
                         EngineOptions(100))
    plan.work = replace(plan.work, options=replace(plan.work.options, path="fused"))
    assert len(default_shards(plan)) == 1
    assert [s.size for s in parallel_shards(plan, 2)] == [5000, 5000]


# -- a block's coefficients in one call equal them step by step ------------------------------
def _random_setting(rule, rng):
    """Random values inside each hyperparameter's declared range, flags both ways."""
    out = {}
    for hp in rule.hyperparams:
        if hp.kind == "bool":
            out[hp.name] = bool(rng.integers(2))
        elif hp.kind == "float":
            low = hp.gt if hp.gt is not None else hp.ge if hp.ge is not None else 0.0
            high = hp.lt if hp.lt is not None else hp.le if hp.le is not None else 2.0
            out[hp.name] = float(rng.uniform(low, min(high, low + 2.0)))
    return out


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if OPTIMIZERS[n].elementwise.by_block])
@pytest.mark.parametrize("shared", [True, False])
def test_a_blocks_coefficient_tables_equal_the_step_by_step_ones(name, shared):
    """Every rule whose coefficients take a column of steps: the tables of one call over a
    block (powers step by step, remembered) are those of one call a step, to the bit, for
    settings every run shares and for settings that differ run by run (a sweep)."""
    rule = OPTIMIZERS[name]
    rng = np.random.default_rng(sum(map(ord, name)) + shared)
    for _ in range(4):
        one = _random_setting(rule, rng)
        settings = [one] * 6 if shared else [_random_setting(rule, rng) for _ in range(6)]
        group = make_group(name, settings)
        assert not group.scheduled
        for t0, t1 in ((0, 50), (50, 300), (9_950, 10_000)):
            slots, steps, lrs = fused._pattern(group, t0, t1)
            expected = fused._tables(slots, steps, 6)
            block_slots, block, lr = fused._block_tables(group, t0, t1, 6)
            assert block_slots == slots
            for a, b in zip(block, expected, strict=True):
                assert a.dtype == b.dtype and a.shape == b.shape
                np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(lr, fused._table(lrs, 6, float))


def test_a_rule_with_a_branch_on_the_step_keeps_the_step_by_step_tables():
    group = make_group("radam", [{"lr": 0.01}] * 3)
    slots, steps, _ = fused._pattern(group, 0, 20)  # ρₜ crosses 5 within the block
    block_slots, block, _ = fused._block_tables(group, 0, 20, 3)
    assert block_slots == slots
    for a, b in zip(block, fused._tables(slots, steps, 3), strict=True):
        np.testing.assert_array_equal(a, b)
