"""The loss on a grid over two chosen coordinates (the others fixed), for contour plots.

One vectorised evaluation of nx·ny points; z is (ny, nx) so z[j][i] is the loss at
(x[i], y[j]), the layout matplotlib's contour and most JS plotting libraries expect.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from optim_core.errors import DimensionError, TimeBudgetError
from optim_core.losses.base import Loss
from optim_core.types import Array


def resolve_axes(loss: Loss, axes: Sequence[int | str] | None) -> tuple[int, int]:
    """Axes by index or variable name; default the first two coordinates."""
    if loss.dim < 2:
        raise DimensionError("A landscape needs a loss of at least 2 dimensions", loc=["loss"])
    if axes is None:
        return 0, 1
    if len(axes) != 2:
        raise DimensionError("axes must name exactly two coordinates", loc=["axes"])
    resolved = []
    for axis in axes:
        if isinstance(axis, str):
            if axis not in loss.names:
                raise DimensionError(f"Unknown axis '{axis}'; the variables are "
                                     f"{', '.join(loss.names)}", loc=["axes"])
            resolved.append(loss.names.index(axis))
        else:
            if not 0 <= int(axis) < loss.dim:
                raise DimensionError(f"Axis {axis} is out of range for a {loss.dim}-D loss",
                                     loc=["axes"])
            resolved.append(int(axis))
    if resolved[0] == resolved[1]:
        raise DimensionError("The two axes must differ", loc=["axes"])
    return resolved[0], resolved[1]


def default_bounds(loss: Loss, axes: tuple[int, int]) -> Array:
    """The loss's suggested domain on the two axes, else a box around its default start."""
    if loss.domain is not None:
        return np.asarray(loss.domain, dtype=float)[list(axes)]
    centre = np.zeros(loss.dim) if loss.default_start is None else loss.default_start
    return np.array([[centre[a] - 2.0, centre[a] + 2.0] for a in axes])


CHUNK_VALUES = 1 << 22  # a chunk of grid points touches about this many numbers


def landscape(
    loss: Loss,
    bounds: Array | None = None,
    resolution: tuple[int, int] = (100, 100),
    axes: Sequence[int | str] | None = None,
    fixed: Sequence[float] | None = None,
    deadline: float | None = None,
) -> tuple[Array, Array, Array]:
    """Return x (nx,), y (ny,), z (ny, nx). The grid is evaluated a chunk at a time (a
    dataset loss touches every row per point: one product for 250,000 points would need
    gigabytes); past `deadline` (time.monotonic()) it raises TimeBudgetError."""
    ax = resolve_axes(loss, axes)
    box = default_bounds(loss, ax) if bounds is None else np.asarray(bounds, dtype=float)
    if box.shape != (2, 2) or not np.all(np.isfinite(box)) or np.any(box[:, 1] <= box[:, 0]):
        raise DimensionError("bounds must be [[lo, hi], [lo, hi]] with lo < hi, finite",
                             loc=["bounds"])
    base = _fixed_point(loss, fixed)
    nx, ny = resolution
    x = np.linspace(box[0, 0], box[0, 1], nx)
    y = np.linspace(box[1, 0], box[1, 1], ny)
    points = np.tile(base, (nx * ny, 1))
    grid_x, grid_y = np.meshgrid(x, y)  # (ny, nx)
    points[:, ax[0]] = grid_x.ravel()
    points[:, ax[1]] = grid_y.ravel()
    z = np.empty(nx * ny)
    per_point = loss.dim * max(1, getattr(loss, "n", 1))
    chunk = max(1, CHUNK_VALUES // per_point)
    for begin in range(0, nx * ny, chunk):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeBudgetError(
                f"The landscape took longer than its time budget ({begin:,} of {nx * ny:,} "
                "points done); ask for a coarser resolution")
        with np.errstate(all="ignore"):
            z[begin:begin + chunk] = loss.value(points[begin:begin + chunk])
    return x, y, z.reshape(ny, nx)


def _fixed_point(loss: Loss, fixed: Sequence[float] | None) -> Array:
    if fixed is None:
        if loss.default_start is not None:
            return np.asarray(loss.default_start, dtype=float)
        return np.zeros(loss.dim)
    point = np.asarray(fixed, dtype=float)
    if point.shape != (loss.dim,) or not np.all(np.isfinite(point)):
        raise DimensionError(f"fixed must give all {loss.dim} coordinates (the two plotted "
                             "ones are ignored)", loc=["fixed"])
    return point
