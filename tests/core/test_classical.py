"""The classical rules against their references: L-BFGS against torch.optim.LBFGS step by step,
the batched strong-Wolfe search against torch's for every row, Nelder–Mead against scipy
iterate for iterate, the trust region against scipy's trust-ncg; BFGS and CG step by step
against one-row textbook implementations (with torch's search) and against the theory
(first-step scaling, skipped pairs, finite termination on quadratics); the box."""

from __future__ import annotations

import numpy as np
import pytest

from optim_core import StopCriteria, make_group, run
from optim_core.engine.recording import RecordSpec
from optim_core.losses.catalog import BuiltinLoss
from optim_core.losses.expression import expression_loss
from optim_core.losses.quadratic import QuadraticLoss
from optim_core.optimizers.linesearch import strong_wolfe

ROSENBROCK = BuiltinLoss("rosenbrock")
COUPLED = expression_loss("3*x^2 + x*y + 0.5*y^2 - x + 2*y + 0.1*x^4")


def _run(loss, name, settings, starts, steps, grad_tol=1e-8, **options):
    starts = np.asarray(starts, dtype=float)
    return run(loss, [make_group(name, [settings] * len(starts))], starts, max_steps=steps,
               stop=StopCriteria(grad_tol=grad_tol),
               record=RecordSpec(fields=("params", "loss", "evals"), max_points=100_000),
               path="vectorised", **options)


# -- L-BFGS -----------------------------------------------------------------------------------
def _torch_lbfgs(torch, loss, start, steps, settings):
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    line_search = settings.get("line_search", "strong_wolfe")
    opt = torch.optim.LBFGS([p], lr=settings.get("lr", 1.0), max_iter=1, max_eval=26,
                            history_size=settings.get("history_size", 10),
                            tolerance_change=settings.get("tolerance_change", 1e-9),
                            tolerance_grad=settings.get("tolerance_grad", 1e-7),
                            line_search_fn=None if line_search == "none" else line_search)

    def closure():
        opt.zero_grad()
        values, grads = loss.value_grad(p.detach().numpy()[None, :])
        p.grad = torch.tensor(grads[0])
        return torch.tensor(values[0])

    points = [p.detach().numpy().copy()]
    for _ in range(steps):
        opt.step(closure)
        points.append(p.detach().numpy().copy())
    return np.array(points)


LBFGS_CASES = [
    ("rosenbrock", {}, [-1.2, 1.0]), ("rosenbrock", {"history_size": 3, "lr": 0.5}, [0.3, -0.8]),
    ("rosenbrock", {"line_search": "none", "lr": 0.1}, [-1.2, 1.0]),
    ("coupled", {}, [1.5, -2.0]), ("coupled", {"history_size": 2}, [-3.0, 4.0]),
    ("coupled", {"line_search": "none", "lr": 0.2}, [1.5, -2.0]),
    ("himmelblau", {}, [0.5, 0.5]), ("beale", {"history_size": 5}, [1.0, 1.0]),
]


@pytest.mark.parametrize(("loss_name", "settings", "start"), LBFGS_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in LBFGS_CASES])
def test_lbfgs_is_torch_lbfgs_one_iteration_a_step(loss_name, settings, start):
    """torch.optim.LBFGS(max_iter=1, max_eval=26) called once per step: every point to 1e-10
    (the step, the two-loop recursion, the search's trial points and its decisions)."""
    torch = pytest.importorskip("torch")
    loss = {"rosenbrock": ROSENBROCK, "coupled": COUPLED, "himmelblau": BuiltinLoss("himmelblau"),
            "beale": BuiltinLoss("beale")}[loss_name]
    batch = _run(loss, "lbfgs", settings, [start], 40, grad_tol=0.0)
    ours = batch.trajectories[0].params
    reference = _torch_lbfgs(torch, loss, start, int(batch.steps[0]), settings)
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)


def test_lbfgs_rows_with_their_own_history_sizes_in_one_batch_are_torchs():
    """One batch, rows of history 2, 10 and 4 (the memory sized for 10, the two-loop run over
    the largest count): each row is torch's own run, 30 steps (past ~35 on 4-D Rosenbrock the
    sums' rounding, einsum's order against torch's dot, grows to ~1e-9)."""
    torch = pytest.importorskip("torch")
    loss = BuiltinLoss("rosenbrock", 4)
    starts = [[-1.2, 1.0, 0.5, -0.3], [0.3, -0.8, 1.5, 1.1], [1.8, 1.9, -0.4, 0.2]]
    settings = [{"history_size": 2}, {}, {"history_size": 4, "lr": 0.7}]
    batch = run(loss, [make_group("lbfgs", settings)], np.array(starts), max_steps=30,
                stop=StopCriteria(grad_tol=0.0),
                record=RecordSpec(fields=("params",), max_points=100_000), path="vectorised")
    for row, (start, setting) in enumerate(zip(starts, settings, strict=True)):
        reference = _torch_lbfgs(torch, loss, start, int(batch.steps[row]), setting)
        assert batch.steps[row] > 20
        np.testing.assert_allclose(batch.trajectories[row].params, reference, rtol=1e-10,
                                   atol=1e-12)


def test_lbfgs_rows_of_a_mixed_batch_answer_as_each_row_alone():
    """History sizes 1–7, both searches, rows ending at different steps: each row's rings
    wrap at their own steps and the batch shrinks around them (the memory stays sized for 7
    while the rows left may all hold 3), yet every row ends bit for bit where it ends alone."""
    loss = BuiltinLoss("rosenbrock", 5)
    starts = np.random.default_rng(3).uniform(-2, 2, size=(29, 5))
    settings = [{"history_size": 1 + i % 7, "line_search": ("none", "strong_wolfe")[i % 2],
                 "lr": (0.5, 1.0)[i % 2]} for i in range(28)]
    settings.append({"history_size": 3, "line_search": "none", "lr": 0.05})  # runs on alone
    batch = run(loss, [make_group("lbfgs", settings)], starts, max_steps=300,
                stop=StopCriteria(grad_tol=1e-8), record=RecordSpec(enabled=False))
    assert len(set(batch.steps.tolist())) > 10
    assert batch.steps[28] == 300 and batch.steps[:28].max() < 250
    for row in range(29):
        alone = run(loss, [make_group("lbfgs", [settings[row]])], starts[row:row + 1],
                    max_steps=300, stop=StopCriteria(grad_tol=1e-8),
                    record=RecordSpec(enabled=False), path="vectorised")
        assert alone.steps[0] == batch.steps[row]
        np.testing.assert_array_equal(alone.final_params[0], batch.final_params[row])


@pytest.mark.parametrize(("dim", "side"), [(5, (0.0, 3.0)), (3, (-1.0, 0.5))])
def test_lbfgs_in_a_box_answers_each_row_as_alone(dim, side):
    """L-BFGS-B's dense algebra (cauchy.py) gives every row its own numbers in any batch:
    rows whose memories hold different counts of pairs, bounds binding. Padding a row with a
    longer row's zero pairs once changed its sums' lengths, hence its last bits (6 of these
    40 rows at d = 5 ended elsewhere than alone); so did einsum's alignment-dependent sums."""
    loss = BuiltinLoss("rosenbrock", dim)
    box = np.array([side] * dim)
    starts = np.clip(np.random.default_rng(2).uniform(-2, 2, size=(40, dim)), *side)
    settings = [{"history_size": (10, 3, 6)[i % 3]} for i in range(40)]
    batch = run(loss, [make_group("lbfgs", settings)], starts, max_steps=300,
                stop=StopCriteria(grad_tol=1e-8), record=RecordSpec(enabled=False), bounds=box)
    for row in range(40):
        alone = run(loss, [make_group("lbfgs", [settings[row]])], starts[row:row + 1],
                    max_steps=300, stop=StopCriteria(grad_tol=1e-8),
                    record=RecordSpec(enabled=False), bounds=box, path="vectorised")
        assert alone.steps[0] == batch.steps[row]
        np.testing.assert_array_equal(alone.final_params[0], batch.final_params[row])


def test_lbfgs_ends_where_torch_stops_moving():
    batch = _run(BuiltinLoss("himmelblau"), "lbfgs", {}, [[0.5, 0.5]], 200, grad_tol=0.0)
    assert batch.status[0] == 1 and batch.reason[0] == 14  # tolerance_change: converged
    # torch's tolerance_change (1e-9 on gᵀd) ends it with a gradient of a few 1e-4 here
    assert np.abs(BuiltinLoss("himmelblau").value_grad(batch.final_params)[1]).max() < 1e-3


def test_the_batched_strong_wolfe_search_is_torchs_for_every_row():
    torch = pytest.importorskip("torch")
    from torch.optim.lbfgs import _strong_wolfe

    rng = np.random.default_rng(0)
    for loss in (BuiltinLoss("rosenbrock", 5), BuiltinLoss("himmelblau"), COUPLED):
        x = rng.uniform(-2, 2, (120, loss.dim))
        f, g = loss.value_grad(x)
        d = -g * rng.uniform(0.01, 3, (120, 1)) + rng.normal(0, 0.3, x.shape) * np.abs(g)
        d[np.einsum("kd,kd->k", g, d) >= 0] *= -1
        gtd = np.einsum("kd,kd->k", g, d)
        t = rng.uniform(0.01, 2, 120)
        for max_ls in (25, 2, 0):
            found = strong_wolfe(loss.value_grad, x, t, d, f, g, gtd, max_ls=max_ls)
            for k in range(120):
                def objective(xk, step, dk, loss=loss):
                    values, grads = loss.value_grad(xk.add(dk, alpha=step).numpy()[None, :])
                    return float(values[0]), torch.tensor(grads[0])
                f_t, _, t_t, evals = _strong_wolfe(
                    objective, torch.tensor(x[k]), float(t[k]), torch.tensor(d[k]), float(f[k]),
                    torch.tensor(g[k]), torch.tensor(gtd[k]), max_ls=max_ls)
                assert evals == found.evals[k] and float(t_t) == pytest.approx(
                    found.step[k], rel=1e-12, abs=1e-15), (k, max_ls)
                assert f_t == pytest.approx(found.values[k], rel=1e-12, abs=1e-15)


# -- Nelder–Mead --------------------------------------------------------------------------------
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize(("loss", "dim"), [("rosenbrock", 2), ("rosenbrock", 4), ("beale", None),
                                           ("rastrigin", 3), ("sphere", 5)])
def test_nelder_mead_iterates_are_scipys(loss, dim, adaptive):
    from scipy.optimize import minimize

    function = BuiltinLoss(loss, dim)
    rng = np.random.default_rng(7)
    starts = rng.uniform(-2, 2, (4, function.dim))
    starts[0, 0] = 0.0  # scipy's 0.00025 for a zero coordinate
    batch = _run(function, "nelder_mead", {"adaptive": adaptive}, starts, 3000, grad_tol=0.0)
    for k, x0 in enumerate(starts):
        reference = minimize(lambda x: float(function.value(x[None, :])[0]), x0,
                             method="Nelder-Mead", options={"return_all": True,
                                                            "adaptive": adaptive,
                                                            "maxiter": 3000, "maxfev": 10**9})
        ours = batch.trajectories[k]
        points = np.array(reference.allvecs)
        n = min(len(points), len(ours.params))  # scipy counts maxiter from 1
        np.testing.assert_allclose(ours.params[:n], points[:n], rtol=1e-10, atol=1e-12)
        if reference.success:
            assert len(points) == len(ours.params) and int(ours.evals[-1]) == reference.nfev
            assert batch.status[k] == 1 and batch.reason[k] == 10  # simplex


# -- trust region ------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", [ROSENBROCK, BuiltinLoss("himmelblau"), COUPLED,
                                  BuiltinLoss("rosenbrock", 5)], ids=["rosen", "himmel",
                                                                      "coupled", "rosen5"])
def test_trust_region_cg_is_scipys_trust_ncg(loss):
    from scipy.optimize import minimize

    starts = np.random.default_rng(3).uniform(-2, 2, (5, loss.dim))
    batch = _run(loss, "trust_region", {}, starts, 500)
    for k, x0 in enumerate(starts):
        reference = minimize(lambda x: float(loss.value(x[None])[0]), x0, method="trust-ncg",
                             jac=lambda x: loss.value_grad(x[None])[1][0],
                             hess=lambda x: loss.hess(x[None])[0],
                             options={"return_all": True, "gtol": 1e-8})
        points = np.array(reference.allvecs)
        ours = batch.trajectories[k].params
        n = min(len(points), len(ours))
        np.testing.assert_allclose(ours[:n], points[:n], rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(batch.final_params[k], reference.x, atol=1e-6)


def test_trust_region_leaves_a_saddle_and_solves_the_hard_case():
    """At a saddle with g = 0 both subproblems step to the edge along negative curvature; on
    a bowl the exact subproblem ends where Newton does."""
    saddle = expression_loss("x^2 - y^2 + y^4/4")
    for subproblem in ("cg", "exact"):
        batch = _run(saddle, "trust_region", {"subproblem": subproblem}, [[0.0, 0.0]], 200)
        assert batch.status[0] == 1
        np.testing.assert_allclose(np.abs(batch.final_params[0]), [0.0, np.sqrt(2)], atol=1e-6)
    bowl = expression_loss("(x - 1)^2 + 10*(y + 2)^2")
    batch = _run(bowl, "trust_region", {"subproblem": "exact", "initial_radius": 100.0},
                 [[5.0, 5.0]], 10)
    assert batch.steps[0] == 1 and batch.status[0] == 1  # the Newton step is inside the region


# -- BFGS and CG ------------------------------------------------------------------------------
def _wolfe_reference(torch, loss, x, t, d, f, g, gtd, c1=1e-4, c2=0.9):
    """torch's own strong-Wolfe search on one row: (f, g, α) at the accepted point."""
    from torch.optim.lbfgs import _strong_wolfe

    def objective(x0, step, direction):
        values, grads = loss.value_grad((x0 + step * direction).numpy()[None])
        return float(values[0]), torch.tensor(grads[0])

    f_new, g_new, step, _ = _strong_wolfe(
        lambda *a: objective(*a), torch.tensor(x), float(t), torch.tensor(d), float(f),
        torch.tensor(g), torch.tensor(float(gtd), dtype=torch.float64), c1=c1, c2=c2,
        max_ls=25)
    return f_new, g_new.numpy(), float(step)


def _bfgs_reference(torch, loss, start, steps):
    """Textbook BFGS (Nocedal and Wright, algorithm 6.1 in its product form, H₀ scaled by
    6.20 before the first update) with torch's strong-Wolfe search, one row in plain NumPy."""
    x = np.array(start, dtype=float)
    n = x.size
    h = np.eye(n)
    values, grads = loss.value_grad(x[None])
    f, g = float(values[0]), grads[0]
    points = [x.copy()]
    for i in range(steps):
        d = -h @ g
        if g @ d >= 0:
            d, h = -g, np.eye(n)
        t = min(1.0, 1.0 / np.abs(g).sum()) if i == 0 else 1.0
        f_new, g_new, alpha = _wolfe_reference(torch, loss, x, t, d, f, g, g @ d)
        s, y = alpha * d, g_new - g
        if y @ s > 0:
            if i == 0:
                h = (y @ s) / (y @ y) * np.eye(n)
            rho = 1.0 / (y @ s)
            h = (np.eye(n) - rho * np.outer(s, y)) @ h @ (np.eye(n) - rho * np.outer(y, s)) \
                + rho * np.outer(s, s)
        x = x + alpha * d
        f, g = f_new, g_new
        points.append(x.copy())
    return np.array(points)


@pytest.mark.parametrize(("loss_name", "start"), [("rosenbrock", [-1.2, 1.0]),
                                                  ("coupled", [1.5, -2.0]),
                                                  ("rosenbrock4", [-1.0, 0.5, 1.5, -0.5])])
def test_bfgs_steps_are_the_textbook_update(loss_name, start):
    """Every iterate of a run against a one-row textbook BFGS (product-form update, torch's
    line search): the rank-two form the batch uses is the same map."""
    torch = pytest.importorskip("torch")
    loss = {"rosenbrock": ROSENBROCK, "coupled": COUPLED,
            "rosenbrock4": BuiltinLoss("rosenbrock", 4)}[loss_name]
    steps = 12
    batch = _run(loss, "bfgs", {}, [start], steps, grad_tol=0.0)
    ours = batch.trajectories[0].params
    reference = _bfgs_reference(torch, loss, start, int(batch.steps[0]))
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)


def _cg_reference(torch, loss, start, steps, beta_rule):
    """Nonlinear CG (Nocedal and Wright 5.4) in plain NumPy: β by the named formula, reset to
    steepest descent every n steps and where d is no descent direction; the first trial step
    min(1, 1/‖g‖₁), then α_prev·(g_prevᵀd_prev)/(gᵀd) (N–W 3.60); torch's line search."""
    x = np.array(start, dtype=float)
    n = x.size
    values, grads = loss.value_grad(x[None])
    f, g = float(values[0]), grads[0]
    d = -g
    since, prev_alpha, prev_slope = 0, None, None
    points = [x.copy()]
    for i in range(steps):
        if g @ d >= 0:
            d = -g
        gtd = g @ d
        guess = None if i == 0 else prev_alpha * prev_slope / gtd
        t = min(1.0, 1.0 / np.abs(g).sum()) if guess is None or guess <= 0 else guess
        f_new, g_new, alpha = _wolfe_reference(torch, loss, x, t, d, f, g, gtd, c2=0.1)
        y = g_new - g
        beta = {"polak_ribiere_plus": max(0.0, g_new @ y / (g @ g)),
                "fletcher_reeves": g_new @ g_new / (g @ g),
                "hestenes_stiefel": g_new @ y / (d @ y),
                "dai_yuan": g_new @ g_new / (d @ y)}[beta_rule]
        since += 1
        if since >= n:
            beta, since = 0.0, 0
        x = x + alpha * d
        prev_alpha, prev_slope = alpha, gtd
        d = -g_new + beta * d
        f, g = f_new, g_new
        points.append(x.copy())
    return np.array(points)


@pytest.mark.parametrize("beta", ["polak_ribiere_plus", "fletcher_reeves", "hestenes_stiefel",
                                  "dai_yuan"])
def test_cg_steps_are_the_textbook_method(beta):
    torch = pytest.importorskip("torch")
    loss = BuiltinLoss("rosenbrock", 3)
    start = [-1.0, 1.2, 0.4]
    batch = _run(loss, "cg", {"beta": beta}, [start], 15, grad_tol=0.0)
    ours = batch.trajectories[0].params
    reference = _cg_reference(torch, loss, start, int(batch.steps[0]), beta)
    # equal to ~1e-12 for eight steps; then β's quotients of near-equal numbers (HS, DY) let
    # a rounding difference grow to ~1e-8
    np.testing.assert_allclose(ours[:9], reference[:9], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours, reference, rtol=1e-7, atol=1e-10)


def test_bfgs_ends_at_a_minimum_from_every_start_as_scipy_does():
    """6-D Rosenbrock has two minima (f = 0 and f ≈ 3.974): every run ends at one of them,
    and at the global one at least as often as scipy's BFGS from the same starts."""
    from scipy.optimize import minimize

    loss = BuiltinLoss("rosenbrock", 6)
    starts = np.random.default_rng(5).uniform(-2, 2, (12, 6))
    batch = _run(loss, "bfgs", {}, starts, 2000, grad_tol=1e-6)
    assert (batch.status == 1).all()
    assert np.all((batch.final_loss < 1e-8) | (np.abs(batch.final_loss - 3.97394) < 1e-4))
    theirs = [minimize(lambda x: float(loss.value(x[None])[0]), x0, method="BFGS",
                       jac=lambda x: loss.value_grad(x[None])[1][0],
                       options={"gtol": 1e-6}).fun for x0 in starts]
    assert (batch.final_loss < 1e-8).sum() >= (np.array(theirs) < 1e-8).sum()


def test_bfgs_scales_its_first_model_and_skips_pairs_without_curvature():
    """On a quadratic the first update starts from (yᵀs/yᵀy)·I (Nocedal and Wright 6.20): two
    exact steps finish a 2-D quadratic. On a concave stretch sᵀy ≤ 0: skipped and counted."""
    quadratic = QuadraticLoss(np.array([[4.0, 1.0], [1.0, 3.0]]), np.array([1.0, 2.0]))
    batch = _run(quadratic, "bfgs", {"c2": 1e-9}, [[5.0, -3.0]], 20)
    assert batch.status[0] == 1 and batch.steps[0] <= 3
    wavy = expression_loss("sin(3*x) + 0.1*x^2 + y^2")
    batch = run(wavy, [make_group("bfgs", [{}] * 40)],
                np.column_stack([np.linspace(-3, 3, 40), np.ones(40)]), max_steps=200,
                stop=StopCriteria(grad_tol=1e-8))
    assert (batch.counters["skipped_updates"] >= 0).all()
    assert (batch.status == 1).mean() > 0.9


@pytest.mark.parametrize("beta", ["polak_ribiere_plus", "fletcher_reeves", "hestenes_stiefel",
                                  "dai_yuan"])
def test_cg_ends_within_d_steps_on_a_quadratic(beta):
    rng = np.random.default_rng(11)
    for d in (2, 5, 8):
        m = rng.normal(size=(d, d))
        quadratic = QuadraticLoss(m @ m.T + np.eye(d), rng.normal(size=d))
        batch = _run(quadratic, "cg", {"beta": beta, "c2": 1e-10}, rng.normal(size=(6, d)) * 3,
                     100, grad_tol=1e-6)
        assert (batch.status == 1).all() and (batch.steps <= d).all(), (d, batch.steps)


def test_every_classical_rule_solves_rosenbrock():
    for name, settings in (("lbfgs", {}), ("bfgs", {}), ("cg", {}), ("trust_region", {}),
                           ("trust_region", {"subproblem": "exact"}), ("nelder_mead",
                                                                      {"xatol": 1e-9,
                                                                       "fatol": 1e-14})):
        batch = _run(ROSENBROCK, name, settings, [[-1.2, 1.0]], 5000, grad_tol=1e-7)
        assert batch.status[0] == 1, name
        np.testing.assert_allclose(batch.final_params[0], [1.0, 1.0], atol=1e-4, err_msg=name)


# -- the box -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sgd", "adam", "newton", "lbfgs", "bfgs", "cg", "trust_region",
                                  "nelder_mead"])
def test_every_rule_keeps_its_runs_in_the_box(name):
    """The minimum (1, 1) of Rosenbrock lies outside [−2, 0.5] × [−1, 0.3]: every run stays
    in the box and ends at its constrained minimum, where the projected gradient vanishes."""
    from scipy.optimize import minimize

    box = np.array([[-2.0, 0.5], [-1.0, 0.3]])
    settings = {"sgd": {"lr": 1e-3}, "adam": {"lr": 0.02}}.get(name, {})
    starts = np.array([[-1.5, 0.2], [0.0, -0.5], [0.4, 0.25]])
    batch = _run(ROSENBROCK, name, settings, starts, 20000, grad_tol=1e-6, bounds=box)
    inside = (batch.final_params >= box[:, 0] - 1e-12) & (batch.final_params <= box[:, 1] + 1e-12)
    assert inside.all(), (name, batch.final_params)
    for trajectory in batch.trajectories:
        assert ((trajectory.params >= box[:, 0]) & (trajectory.params <= box[:, 1])).all()
    for k, x0 in enumerate(starts):
        if name == "nelder_mead":  # scipy's own clipped simplex, which can stall on the box
            reference = minimize(lambda x: float(ROSENBROCK.value(x[None])[0]), x0,
                                 method="Nelder-Mead", bounds=box)
            np.testing.assert_allclose(batch.final_params[k], reference.x, rtol=1e-10)
            continue
        reference = minimize(lambda x: float(ROSENBROCK.value(x[None])[0]), x0,
                             method="L-BFGS-B", bounds=box, options={"ftol": 1e-15,
                                                                      "gtol": 1e-10})
        np.testing.assert_allclose(batch.final_params[k], reference.x, atol=2e-3,
                                   err_msg=name)


def test_lbfgs_within_bounds_matches_l_bfgs_b_on_a_quadratic():
    from scipy.optimize import minimize

    rng = np.random.default_rng(4)
    m = rng.normal(size=(5, 5))
    quadratic = QuadraticLoss(m @ m.T + np.eye(5), rng.normal(size=5) * 5)
    box = np.array([[-0.5, 0.5]] * 5)
    batch = _run(quadratic, "lbfgs", {"tolerance_change": 0.0}, np.zeros((1, 5)), 500,
                 grad_tol=1e-9, bounds=box)
    reference = minimize(lambda x: float(quadratic.value(x[None])[0]), np.zeros(5),
                         jac=lambda x: quadratic.value_grad(x[None])[1][0], method="L-BFGS-B",
                         bounds=box, options={"ftol": 1e-15, "gtol": 1e-12})
    np.testing.assert_allclose(batch.final_params[0], reference.x, atol=1e-7)
    assert batch.status[0] == 1


@pytest.mark.parametrize("name", ["cg", "bfgs", "lbfgs"])
def test_a_box_the_path_never_touches_changes_nothing_and_a_tight_one_converges(name):
    """A row with no coordinate at a bound searches as without a box (strong Wolfe), so a
    box around the whole path changes nothing; in a box that binds, the projected-path
    search starts from at least the opening length (cg once crawled at α ~ 1e-6 for 300
    steps from (−1, 2, 0.5)) and every start ends at L-BFGS-B's constrained minimum."""
    from scipy.optimize import minimize

    loss = BuiltinLoss("rosenbrock", 3)
    starts = np.array([[-1.0, 2.0, 0.5], [0.2, -1.5, 1.9], [1.9, 1.9, -1.9]])
    free = _run(loss, name, {}, starts, 500, grad_tol=1e-8)
    loose = _run(loss, name, {}, starts, 500, grad_tol=1e-8, bounds=np.array([[-5.0, 5.0]] * 3))
    np.testing.assert_array_equal(loose.final_params, free.final_params)
    np.testing.assert_array_equal(loose.counters["func_evals"], free.counters["func_evals"])
    box = np.array([[-2.0, 0.5], [-2.0, 2.0], [-2.0, 2.0]])
    tight = _run(loss, name, {}, starts, 500, grad_tol=1e-8, bounds=box)
    assert (tight.status == 1).all() and (tight.steps < 200).all(), tight.steps
    reference = minimize(lambda x: float(loss.value(x[None])[0]), starts[0], method="L-BFGS-B",
                         bounds=box, options={"ftol": 1e-15, "gtol": 1e-10})
    np.testing.assert_allclose(tight.final_params, np.tile(reference.x, (3, 1)), atol=1e-6)


@pytest.mark.parametrize("name", ["cg", "bfgs"])
def test_cg_and_bfgs_reach_a_tight_grad_tol_at_the_minimum(name):
    """10-D Rosenbrock from 64 starts to grad_tol 1e-8: every run converges or stalls at the
    local minimum near x₁ = −1 (f ≈ 3.99, where a decrease is below f's round-off). The zoom
    once ended on torch's absolute bracket width, where CG's directions are as small as the
    gradient: 37 of 64 CG runs stalled, most at the global minimum with f ~ 1e-19."""
    loss = BuiltinLoss("rosenbrock", 10)
    starts = np.random.default_rng(1).uniform(-2, 2, (64, 10))
    batch = _run(loss, name, {}, starts, 2000, grad_tol=1e-8)
    stalled = batch.status != 1
    assert stalled.sum() <= 8, stalled.sum()
    np.testing.assert_allclose(batch.final_loss[stalled], 3.98662, atol=1e-4)
