"""Where the trials of a search space lie: random, scrambled Sobol, or a grid.

A space maps hyperparameter names to a range {low, high, log} or a list of choices. Every
sampler draws points in the unit cube [0, 1)^k (one coordinate per range) and maps them;
choices take a coordinate of their own (an index into the list). The same seed gives the same
points.

Sobol: Joe and Kuo's direction numbers (new-joe-kuo-6.21201, the table scipy.stats.qmc uses)
for up to MAX_SOBOL_DIMS coordinates, scrambled by a random digital shift (XOR of a seeded
random 32-bit word per coordinate), which keeps the sequence's balance (every dyadic box of a
power-of-two prefix holds its share of points) and makes the points differ per seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optim_core.types import Array

BITS = 32
# (s, a, m_1..m_s) of dimensions 2… (dimension 1 is the van der Corput sequence)
JOE_KUO = [(1, 0, (1,)), (2, 1, (1, 3)), (3, 1, (1, 3, 1)), (3, 2, (1, 1, 1)),
           (4, 1, (1, 1, 3, 3)), (4, 4, (1, 3, 5, 13)), (5, 2, (1, 1, 5, 5, 17)),
           (5, 4, (1, 1, 5, 5, 5)), (5, 7, (1, 1, 7, 11, 19))]
MAX_SOBOL_DIMS = len(JOE_KUO) + 1


@dataclass(frozen=True, slots=True)
class Range:
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def value(self, u: float) -> float | int:
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        v = min(max(v, self.low), self.high)
        return int(round(v)) if self.integer else float(v)

    def grid(self, n: int) -> list[float | int]:
        us = [0.5] if n == 1 else [i / (n - 1) for i in range(n)]
        values = [self.value(u) for u in us]
        return list(dict.fromkeys(values)) if self.integer else values


@dataclass(frozen=True, slots=True)
class Choices:
    values: tuple[Any, ...]

    def value(self, u: float) -> Any:
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]


Dimension = Range | Choices


def _direction_numbers(dims: int) -> Array:
    """(dims, BITS) integer direction numbers v_j = m_j · 2^(BITS − j)."""
    v = np.zeros((dims, BITS), dtype=np.uint64)
    v[0] = [1 << (BITS - 1 - j) for j in range(BITS)]
    for d in range(1, dims):
        s, a, m = JOE_KUO[d - 1]
        mm = list(m)
        for j in range(s, BITS):
            new = mm[j - s] ^ (mm[j - s] << s)
            for k in range(1, s):
                if (a >> (s - 1 - k)) & 1:
                    new ^= mm[j - k] << k
            mm.append(new)
        v[d] = [mm[j] << (BITS - 1 - j) for j in range(BITS)]
    return v


def sobol(n: int, dims: int, seed: int | None) -> Array:
    """The first n points of the (digitally shifted) Sobol sequence in [0, 1)^dims, in
    Gray-code order as scipy's (the first point is the origin before the shift)."""
    if dims > MAX_SOBOL_DIMS:
        raise ValueError(f"sobol takes at most {MAX_SOBOL_DIMS} dimensions")
    v = _direction_numbers(dims)
    shift = (np.zeros(dims, dtype=np.uint64) if seed is None else
             np.random.default_rng(seed).integers(0, 1 << BITS, dims, dtype=np.uint64))
    out = np.empty((n, dims))
    x = np.zeros(dims, dtype=np.uint64)
    for i in range(n):
        out[i] = (x ^ shift).astype(float) / float(1 << BITS)
        c = (~i & (i + 1)).bit_length() - 1  # the lowest zero bit of i
        x ^= v[:, c]
    return out


def sample(space: Mapping[str, Dimension], n: int, sampler: str, seed: int
           ) -> list[dict[str, Any]]:
    """n points of the space (the grid: as many as fit, see grid_counts)."""
    names = list(space)
    if not names:
        return [{}] * n
    if sampler == "grid":
        return _grid(space, n)
    if sampler == "sobol":
        unit = sobol(n, len(names), seed)
    else:
        unit = np.random.default_rng(seed).random((n, len(names)))
    return [{name: space[name].value(float(u)) for name, u in zip(names, row, strict=True)}
            for row in unit]


def grid_counts(space: Mapping[str, Dimension], n: int) -> dict[str, int]:
    """Values per dimension of a grid of at most n points: every choice, and an equal count
    ⌊(n / choices)^(1/ranges)⌋ (at least 1) on each range."""
    choices = math.prod(len(d.values) for d in space.values() if isinstance(d, Choices))
    ranges = [k for k, d in space.items() if isinstance(d, Range)]
    per = max(1, int(math.floor((max(n, 1) / max(choices, 1)) ** (1 / len(ranges)) + 1e-9))
              ) if ranges else 1
    return {k: (len(d.values) if isinstance(d, Choices) else per) for k, d in space.items()}


def _grid(space: Mapping[str, Dimension], n: int) -> list[dict[str, Any]]:
    counts = grid_counts(space, n)
    axes: list[Sequence[Any]] = [
        d.values if isinstance(d, Choices) else d.grid(counts[k]) for k, d in space.items()]
    import itertools

    names = list(space)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes)][:n]
