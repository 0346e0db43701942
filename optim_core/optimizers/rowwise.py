"""Row-wise helpers of the batched classical rules: each row of a (K, …) array is one run."""

from __future__ import annotations

import numpy as np

from optim_core.types import Array


def dot(a: Array, b: Array) -> Array:
    """(K,) the dot product of each row of a (K, d) with the same row of b."""
    return np.einsum("kd,kd->k", a, b)


def take_rows(a: Array, index: Array) -> Array:
    """a's rows at `index` (integers, not a mask): `take`, ~4–10× faster than a[index] on
    (K, d) and (K, d, d) arrays, whose fancy indexing copies them one row at a time (~20 µs
    against ~1.5 at K = 1,024, d = 2). The same numbers: a copy either way."""
    return a.take(index, axis=0)
