"""Our optim_db: one record per rule with kwarg sets, error cases and the torch reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OptimizerCase:
    name: str
    # Each entry is one batch: a list of per-row settings (different hyperparameters per row).
    batches: list[tuple[str, list[dict[str, Any]]]]
    errors: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    torch_class: str | None = None


CASES: dict[str, OptimizerCase] = {
    c.name: c for c in (
        OptimizerCase(
            "sgd",
            [("plain lr and weight decay", [{"lr": 1e-3}, {"lr": 2e-3, "weight_decay": 0.1}]),
             ("lr schedules", [{"lr": {"name": "exponential", "lr": 1e-3, "gamma": 0.99}},
                               {"lr": {"name": "step", "lr": 2e-3, "step_size": 5}}])],
            [({"lr": -1}, "Invalid lr"), ({"weight_decay": -0.1}, "Invalid weight_decay"),
             ({"lr": {"name": "cosine", "lr": 0.1}}, "needs 'steps'")],
            "SGD",
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
            "SGD",
        ),
        OptimizerCase(
            "nesterov",
            [("per-row momentum", [{"lr": 1e-3, "momentum": 0.9},
                                   {"lr": 2e-3, "momentum": 0.7, "weight_decay": 0.05}]),
             ("momentum schedule", [{"lr": 1e-3, "momentum_schedule": {"start": 0.5, "end": 0.9,
                                                                       "steps": 7}}])],
            [({"momentum": -0.1}, "Invalid momentum")],
            "SGD",
        ),
        OptimizerCase(
            "rmsprop",
            [("options per row", [{"lr": 1e-3}, {"lr": 1e-3, "centered": True},
                                  {"lr": 5e-4, "momentum": 0.9, "rho": 0.99},
                                  {"lr": 1e-3, "centered": True, "momentum": 0.5,
                                   "weight_decay": 0.1, "eps": 1e-6}])],
            [({"rho": 1.0}, "Invalid rho"), ({"eps": 0}, "Invalid eps")],
            "RMSprop",
        ),
        OptimizerCase(
            "adagrad",
            [("per-row lr", [{"lr": 0.1}, {"lr": 0.05, "weight_decay": 0.1, "eps": 1e-6}])],
            [({"lr": 0}, "Invalid lr")],
            "Adagrad",
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
            "Adam",
        ),
        OptimizerCase(
            "adamw",
            [("per-row decay", [{"lr": 1e-2}, {"lr": 5e-3, "weight_decay": 0.5, "amsgrad": True},
                                {"lr": 2e-2, "weight_decay": 0.0, "beta1": 0.8}])],
            [({"weight_decay": -1}, "Invalid weight_decay")],
            "AdamW",
        ),
        OptimizerCase(
            "newton",
            [("fallbacks", [{}, {"fallback": "damped"}, {"fallback": "saddle_free"},
                            {"line_search": True, "lr": 0.5}])],
            [({"fallback": "magic"}, "Invalid fallback"), ({"damping": 0}, "Invalid damping")],
            None,
        ),
    )
}
