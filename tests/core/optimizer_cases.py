"""Our optim_db: one record per rule with kwarg sets, error cases, its reference (a torch.optim
class stepped by the generic test, or another named reference with a parity test of its own:
torch's LBFGS with a closure, scipy.optimize.minimize's methods) and settings that converge
on a quadratic. Every registered rule must have one (tested); adding a rule is its file, its
registry line and its record here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Settings = dict[str, Any]


@dataclass(frozen=True)
class OptimizerCase:
    name: str
    # Each entry is one batch: a list of per-row settings (different hyperparameters per row).
    batches: list[tuple[str, list[dict[str, Any]]]]
    errors: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    torch_class: str | None = None
    # torch.optim keyword arguments from our full settings at one step (schedules evaluated)
    torch_kwargs: Callable[[Settings], Settings] | None = None
    # settings that reach ‖g‖ ≤ 1e-6 on 0.5·(x² + 4y²) from (3, −2) within 5,000 steps
    converges: Settings = field(default_factory=dict)
    # torch keywords whose default the API contract sets otherwise (API.md's table)
    contract_defaults: tuple[str, ...] = ()
    # the kernel on floats against it on arrays, step by step (the same operations;
    # NumPy's array pow may round βᵗ differently from libm in the last bit)
    float_rtol: float = 1e-13
    # the reference of a rule the generic torch test cannot step (tests/core/test_classical.py
    # holds its parity test)
    reference: str | None = None


def _adam_kwargs(s: Settings) -> Settings:
    return {"lr": s["lr"], "betas": (s["beta1"], s["beta2"]), "eps": s["eps"],
            "weight_decay": s["weight_decay"]}


def _sgd_kwargs(nesterov: bool) -> Callable[[Settings], Settings]:
    def kwargs(s: Settings) -> Settings:
        return {"lr": s["lr"], "momentum": s["momentum"], "weight_decay": s["weight_decay"],
                "nesterov": nesterov}
    return kwargs


CASES: dict[str, OptimizerCase] = {
    c.name: c for c in (
        OptimizerCase(
            "sgd",
            [("plain lr and weight decay", [{"lr": 1e-3}, {"lr": 2e-3, "weight_decay": 0.1}]),
             ("lr schedules", [{"lr": {"name": "exponential", "lr": 1e-3, "gamma": 0.99}},
                               {"lr": {"name": "step", "lr": 2e-3, "step_size": 5}}])],
            [({"lr": -1}, "Invalid lr"), ({"weight_decay": -0.1}, "Invalid weight_decay"),
             ({"lr": {"name": "cosine", "lr": 0.1}}, "needs 'steps'")],
            "SGD", lambda s: {"lr": s["lr"], "weight_decay": s["weight_decay"]},
            {"lr": 0.2}, ("lr",),
        ),
        OptimizerCase(
            "momentum",
            [("per-row momentum", [{"lr": 1e-3, "momentum": 0.9},
                                   {"lr": 5e-4, "momentum": 0.5, "weight_decay": 0.01}]),
             ("momentum schedule", [{"lr": 1e-3, "momentum_schedule": {"start": 0.5, "end": 0.9,
                                                                       "steps": 10}},
                                    {"lr": {"name": "cosine", "lr": 1e-3, "steps": 20},
                                     "momentum": 0.8}])],
            [({"momentum": 1.0}, "Invalid momentum"),
             ({"momentum": {"name": "cosine", "lr": 0.5, "steps": 3}}, "not allowed")],
            "SGD", _sgd_kwargs(False), {"lr": 0.1}, ("lr", "momentum"),
        ),
        OptimizerCase(
            "nesterov",
            [("per-row momentum", [{"lr": 1e-3, "momentum": 0.9},
                                   {"lr": 2e-3, "momentum": 0.7, "weight_decay": 0.05}]),
             ("momentum schedule", [{"lr": 1e-3, "momentum_schedule": {"start": 0.5, "end": 0.9,
                                                                       "steps": 7}}])],
            [({"momentum": -0.1}, "Invalid momentum")],
            "SGD", _sgd_kwargs(True), {"lr": 0.1}, ("lr", "momentum", "nesterov"),
        ),
        OptimizerCase(
            "rmsprop",
            [("options per row", [{"lr": 1e-3}, {"lr": 1e-3, "centered": True},
                                  {"lr": 5e-4, "momentum": 0.9, "rho": 0.99},
                                  {"lr": 1e-3, "centered": True, "momentum": 0.5,
                                   "weight_decay": 0.1, "eps": 1e-6}])],
            [({"rho": 1.0}, "Invalid rho"), ({"eps": 0}, "Invalid eps")],
            "RMSprop",
            lambda s: {"lr": s["lr"], "alpha": s["rho"], "eps": s["eps"],
                       "momentum": s["momentum"], "centered": s["centered"],
                       "weight_decay": s["weight_decay"]},
            # at a constant lr RMSProp hovers in a ball of radius ~lr: a decaying lr
            {"lr": {"name": "exponential", "lr": 0.05, "gamma": 0.995}}, ("alpha",),
        ),
        OptimizerCase(
            "adagrad",
            [("per-row lr", [{"lr": 0.1}, {"lr": 0.05, "weight_decay": 0.1, "eps": 1e-6}])],
            [({"lr": 0}, "Invalid lr")],
            "Adagrad",
            lambda s: {"lr": s["lr"], "eps": s["eps"], "weight_decay": s["weight_decay"]},
            {"lr": 0.5},
        ),
        OptimizerCase(
            "adam",
            [("per-row betas and amsgrad", [{"lr": 1e-2}, {"lr": 5e-3, "beta1": 0.5,
                                                           "beta2": 0.99, "amsgrad": True},
                                            {"lr": 1e-2, "weight_decay": 0.1, "eps": 1e-6}]),
             ("beta1 schedule", [{"lr": 1e-2, "beta1": {"name": "linear", "start": 0.5,
                                                        "end": 0.9, "steps": 10}}])],
            [({"beta1": 1.0}, "Invalid beta1"), ({"beta2": -0.5}, "Invalid beta2"),
             ({"amsgrad": "yes"}, "Invalid amsgrad")],
            "Adam", lambda s: _adam_kwargs(s) | {"amsgrad": s["amsgrad"]}, {"lr": 0.05},
        ),
        OptimizerCase(
            "adamw",
            [("per-row decay", [{"lr": 1e-2}, {"lr": 5e-3, "weight_decay": 0.5, "amsgrad": True},
                                {"lr": 2e-2, "weight_decay": 0.0, "beta1": 0.8}])],
            [({"weight_decay": -1}, "Invalid weight_decay")],
            "AdamW", lambda s: _adam_kwargs(s) | {"amsgrad": s["amsgrad"]},
            {"lr": 0.05, "weight_decay": 0.0},
        ),
        OptimizerCase(
            "nadam",
            [("defaults, decay both ways, momentum decay",
              [{}, {"lr": 0.01, "weight_decay": 0.1},
               {"lr": 0.005, "weight_decay": 0.05, "decoupled_weight_decay": True},
               {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "momentum_decay": 0.01,
                "eps": 1e-6}]),
             ("lr schedule", [{"lr": {"name": "cosine", "lr": 0.01, "steps": 30}}])],
            [({"momentum_decay": -1}, "Invalid momentum_decay"), ({"beta2": 1}, "Invalid beta2")],
            "NAdam",
            lambda s: _adam_kwargs(s) | {"momentum_decay": s["momentum_decay"],
                                         "decoupled_weight_decay": s["decoupled_weight_decay"]},
            {"lr": 0.05},
        ),
        OptimizerCase(
            "radam",
            # its first steps are plain momentum steps of size lr·m̂: on Rosenbrock
            # (‖g‖ ≈ 230 at the start) lrs past ~1e-3 throw the run out to infinity
            [("decay both ways",
              [{"lr": 1e-4}, {"lr": 2e-4, "weight_decay": 0.1},
               {"lr": 1e-4, "weight_decay": 0.05, "decoupled_weight_decay": True}]),
             # β2 = 0.6: ρ∞ = 4 never gets past 5 (momentum steps only); β2 = 0.9 switches
             # to adaptive steps at the 6th step
             ("both sides of the switch", [{"lr": 1e-4, "beta2": 0.6},
                                           {"lr": 1e-4, "beta2": 0.9, "beta1": 0.5}])],
            [({"decoupled_weight_decay": 1}, "Invalid decoupled_weight_decay")],
            "RAdam",
            lambda s: _adam_kwargs(s) | {"decoupled_weight_decay": s["decoupled_weight_decay"]},
            {"lr": 0.05},
            # ρₜ = ρ∞ − 2t·β2ᵗ/(1−β2ᵗ) cancels early on: pow's last bit becomes ~1e-12
            float_rtol=1e-10,
        ),
        OptimizerCase(
            "adamax",
            [("defaults, decay, betas", [{}, {"lr": 0.01, "weight_decay": 0.1},
                                         {"lr": 0.005, "beta1": 0.5, "beta2": 0.9,
                                          "eps": 1e-4}])],
            [({"beta1": -0.1}, "Invalid beta1")],
            "Adamax", _adam_kwargs, {"lr": 0.05},
        ),
        OptimizerCase(
            "adadelta",
            [("defaults, rho, decay", [{}, {"lr": 0.5, "rho": 0.95, "eps": 1e-4},
                                       {"weight_decay": 0.1}])],
            [({"rho": 1.0}, "Invalid rho"), ({"eps": 0}, "Invalid eps")],
            "Adadelta",
            lambda s: {"lr": s["lr"], "rho": s["rho"], "eps": s["eps"],
                       "weight_decay": s["weight_decay"]},
            {"lr": 1.0, "eps": 1e-4},
        ),
        OptimizerCase(
            "newton",
            [("fallbacks", [{}, {"fallback": "damped"}, {"fallback": "saddle_free"},
                            {"line_search": True, "lr": 0.5}])],
            [({"fallback": "magic"}, "Invalid fallback"), ({"damping": 0}, "Invalid damping")],
            None, None, {"lr": 1.0}, reference="hand-computed steps; scipy Newton-CG (bench)",
        ),
        OptimizerCase(
            "lbfgs",
            [("history, line search, lr", [{}, {"history_size": 3, "lr": 0.5},
                                           {"line_search": "none", "lr": 0.1},
                                           {"tolerance_change": 0.0}])],
            [({"history_size": 0}, "Invalid history_size"),
             ({"history_size": 2.5}, "whole number"),
             ({"line_search": "exact"}, "Invalid line_search")],
            None, None, {}, reference="torch.optim.LBFGS(max_iter=1, max_eval=26) with a closure",
        ),
        OptimizerCase(
            "bfgs",
            [("search constants", [{}, {"c1": 1e-3, "c2": 0.5}, {"lr": 0.5}])],
            [({"c2": 1.0}, "Invalid c2"), ({"c1": 0}, "Invalid c1")],
            None, None, {}, reference="scipy.optimize.minimize(method='BFGS') (same minima)",
        ),
        OptimizerCase(
            "cg",
            [("every beta", [{}, {"beta": "fletcher_reeves"}, {"beta": "hestenes_stiefel"},
                             {"beta": "dai_yuan", "c2": 0.01}])],
            [({"beta": "polak"}, "Invalid beta")],
            None, None, {}, reference="finite termination on quadratics; scipy CG (bench)",
        ),
        OptimizerCase(
            "trust_region",
            [("subproblems and radii", [{}, {"subproblem": "exact"},
                                        {"initial_radius": 0.1, "max_radius": 10.0},
                                        {"eta": 0.2, "subproblem": "exact"}])],
            [({"subproblem": "dogleg"}, "Invalid subproblem"), ({"eta": 0.3}, "Invalid eta")],
            None, None, {}, reference="scipy.optimize.minimize(method='trust-ncg')",
        ),
        OptimizerCase(
            "nelder_mead",
            [("adaptive and tolerances", [{}, {"adaptive": True},
                                          {"xatol": 1e-8, "fatol": 1e-8}])],
            [({"xatol": -1}, "Invalid xatol")],
            None, None, {"xatol": 1e-9, "fatol": 1e-12},
            reference="scipy.optimize.minimize(method='Nelder-Mead'), iterate for iterate",
        ),
    )
}
