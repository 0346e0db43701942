"""The symbolic front end: parse + gradient + Hessian + compile, cold and from the cache.

Cold means both our loss cache and SymPy's own cache are empty for that expression; SymPy
itself is warmed once with an unrelated expression first, as the service warms its symbolic
worker at start-up (otherwise the first row also pays SymPy's one-time set-up)."""

from __future__ import annotations

import time

from sympy.core.cache import clear_cache

from bench.common import table
from optim_core.losses import expression as expr_module
from optim_core.losses.expression import expression_loss

EXPRESSIONS = {
    "rosenbrock": "(1 - x)^2 + 100*(y - x^2)^2",
    "himmelblau": "(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
    "beale": "(1.5 - x + x*y)^2 + (2.25 - x + x*y^2)^2 + (2.625 - x + x*y^3)^2",
    "trig": "sin(x)*cos(y) + exp(-(x^2 + y^2)/4) + softplus(x - y)",
    "10 variables": " + ".join(f"(x{i} - x{i + 1}^2)^2 + 0.1*sin(x{i})" for i in range(9)),
}


def main() -> str:
    rows = []
    expression_loss("x*y + 1")  # SymPy's one-time set-up, as the service's warm-up
    for name, text in EXPRESSIONS.items():
        expr_module._CACHE.entries.clear()
        clear_cache()
        began = time.perf_counter()
        expression_loss(text)
        cold = time.perf_counter() - began
        began = time.perf_counter()
        for _ in range(1000):
            expression_loss(text)
        cached = (time.perf_counter() - began) / 1000
        rows.append([name, f"{cold * 1000:.1f}", f"{cached * 1e6:.1f}"])
    return table("Symbolic front end (in process; the service adds one worker round trip on a "
                 "cache miss)", ["expression", "cold ms", "cached µs"], rows)


if __name__ == "__main__":
    print(main())
