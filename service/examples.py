"""A working example body for every operation that takes one: the OpenAPI document carries them
(Swagger UI's Try-it-out starts from them), and a test sends each to the server."""

from __future__ import annotations

from typing import Any

RAVINE = {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"}
ROSENBROCK = {"kind": "builtin", "name": "rosenbrock"}

OPTIMIZE = {"loss": ROSENBROCK, "optimizer": {"name": "newton"}, "start": [-1.2, 1.0],
            "record": {"fields": ["loss"]}}
COMPARE = {"loss": RAVINE, "start": [-8, 1], "max_steps": 500,
           "optimizers": [{"name": "sgd", "lr": 0.0196},
                          {"name": "momentum", "lr": 0.0196,
                           "momentum_schedule": {"start": 0.5, "end": 0.9, "steps": 50}},
                          {"name": "adam", "lr": 0.1}],
           "record": {"max_points": 50}}
SWEEP = {"loss": {"kind": "builtin", "name": "ravine", "params": {"condition": 100}},
         "optimizer": {"name": "momentum"}, "grid": {"lr": [0.005, 0.02], "momentum": [0.0, 0.9]},
         "start": {"random": {"n": 8, "low": -5, "high": 5, "seed": 1}}}
LANDSCAPE = {"loss": {"kind": "builtin", "name": "himmelblau"}, "bounds": [[-5, 5], [-5, 5]],
             "resolution": [50, 50]}
ANALYZE = {"loss": {"kind": "expression", "expression": "x^2 - y^2 + y^4/4"},
           "points": [[0, 0], [0, 1.5], [0, 1.4142135623730951]]}
PLOT = {"request": COMPARE, "format": "svg"}
JOB = {"kind": "compare", "request": COMPARE}


def _examples(summary: str, value: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"example": {"summary": summary, "value": value}}


EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "optimize": _examples("Newton's method on Rosenbrock from (−1.2, 1)", OPTIMIZE),
    "compare": _examples("SGD, momentum (0.5 → 0.9) and Adam in a ravine", COMPARE),
    "sweep": _examples("Momentum over a grid of lr × momentum, 8 random starts", SWEEP),
    "landscape": _examples("Himmelblau's function on a 50 × 50 grid", LANDSCAPE),
    "analyze": _examples("A saddle, a convex non-critical point and a minimum", ANALYZE),
    "plot": _examples("The ravine comparison drawn as SVG", PLOT),
    "submit_job": _examples("The ravine comparison as a job", JOB),
    "tune": _examples("Tune SGD's and Adam's lr in a ravine before comparing them", {
        "loss": {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"},
        "start": [[-8, 1], [3, -2]], "max_steps": 500, "trials": 16, "sampler": "sobol",
        "objective": "steps_to_tol",
        "optimizers": [{"name": "sgd", "search": {"lr": {"low": 0.001, "high": 0.05,
                                                         "log": True}}},
                       {"name": "adam", "search": {"lr": {"low": 0.001, "high": 1.0,
                                                          "log": True}}}]}),
    "basins": _examples("Himmelblau's four basins under gradient descent", {
        "loss": {"kind": "builtin", "name": "himmelblau"}, "optimizer": {"name": "sgd",
                                                                         "lr": 0.01},
        "bounds": [[-5, 5], [-5, 5]], "resolution": [30, 30], "max_steps": 500}),
    "benchmark": _examples("SGD, momentum and Adam over the smooth 2-D suite", {
        "suite": "smooth-2d", "starts_per_loss": 4, "max_steps": 500,
        "targets": [1e-1, 1e-3, 1e-6],
        "optimizers": [{"name": "sgd", "lr": 0.001}, {"name": "momentum", "lr": 0.001},
                       {"name": "adam", "lr": 0.05}]}),
    "create_key": _examples("A notebook's key: compute and jobs, 30 days, 50 requests/s, two "
                            "compute minutes per minute, four active jobs",
                            {"name": "notebook", "scopes": ["compute", "jobs"],
                             "expires_in_s": 2_592_000, "rate": 50, "compute_seconds": 120,
                             "max_active_jobs": 4}),
}
