"""L-BFGS-B's step within a box, for a batch of rows (Byrd, Lu, Nocedal and Zhu 1995: the
compact form of section 3, the generalized Cauchy point of section 4, the direct primal
subspace minimisation of section 5.1).

    B = θI − W·M·Wᵀ,  W = [Y  θS] (d × 2m),  M = [[−D, Lᵀ], [L, θSᵀS]]⁻¹
        D = diag(sᵢᵀyᵢ), L the strictly lower part of SᵀY (L_ij = sᵢᵀyⱼ, i > j)
    the model  m(x + p) = gᵀp + ½pᵀBp
    Cauchy point: the first local minimiser of m along the projected steepest-descent path
        P(x − t·g), taken breakpoint after breakpoint (each coordinate's t where it meets
        its bound), the coordinates met held there
    subspace step: the minimiser of m over the coordinates free at the Cauchy point, the
        others held, cut back along the way into the box: x̄; the search direction is x̄ − x

A row's memory past its count holds zero pairs: their slots are given an identity block in
the middle matrix, which leaves them out of B (their columns of W are zero).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optim_core.types import Array

EPS = np.finfo(float).eps


class Compact(NamedTuple):
    w: Array  # (K, 2m, d): the rows of Wᵀ, [Y; θS]
    m: Array  # (K, 2m, 2m)
    theta: Array  # (K,)


def compact(s: Array, y: Array, theta: Array) -> Compact:
    """B's compact form from the pairs s, y (m, K, d), oldest first (zero past a count)."""
    st, yt = s.transpose(1, 0, 2), y.transpose(1, 0, 2)  # (K, m, d)
    k, m, _ = st.shape
    sy = st @ yt.transpose(0, 2, 1)  # sy[i, j] = sᵢᵀyⱼ
    ss = st @ st.transpose(0, 2, 1)
    diag = np.einsum("kii->ki", sy)
    unused = diag == 0  # a kept pair has sᵀy > 1e-10
    lower = np.tril(sy, -1)
    # the middle matrix [[A, Lᵀ], [L, C]] (A = −D) inverted by its blocks: A is diagonal,
    # its Schur complement C − L·A⁻¹·Lᵀ = θSᵀS + L·D⁻¹·Lᵀ an m × m inverse (a 2m × 2m
    # inverse of every row costs ~7× more)
    a_inv = 1.0 / np.where(unused, -1.0, -diag)
    index = np.arange(m)
    schur = theta[:, None, None] * ss + (lower * -a_inv[:, None, :]) @ lower.transpose(0, 2, 1)
    schur[:, index, index] += unused
    schur_inv = _solve(schur, None)
    p = schur_inv @ (lower * a_inv[:, None, :])  # S⁻¹·L·A⁻¹
    corner = (a_inv[:, :, None] * lower.transpose(0, 2, 1)) @ p
    corner[:, index, index] += a_inv
    middle_inv = np.empty((k, 2 * m, 2 * m))
    middle_inv[:, :m, :m], middle_inv[:, m:, m:] = corner, schur_inv
    middle_inv[:, :m, m:], middle_inv[:, m:, :m] = -p.transpose(0, 2, 1), -p
    w = np.concatenate([yt, theta[:, None, None] * st], axis=1)
    return Compact(w, middle_inv, theta)


def _solve(matrix: Array, rhs: Array | None) -> Array:
    """matrix⁻¹·rhs (the inverse itself where rhs is None). Both matrices are nonsingular in
    exact arithmetic wherever every pair has sᵀy > 0 (Byrd, Nocedal and Schnabel 1994); a row
    whose matrix is singular in floating point (degenerate pairs) gets a ridge of 1e-12 of
    its largest entry rather than stopping the batch, and only that row (each row answers as
    it would alone)."""
    def one(a: Array, b: Array | None) -> Array:
        return np.linalg.inv(a) if b is None else np.linalg.solve(a, b)
    try:
        return one(matrix, rhs)
    except np.linalg.LinAlgError:
        rows = []
        for i, a in enumerate(matrix):
            b = None if rhs is None else rhs[i]
            try:
                rows.append(one(a, b))
            except np.linalg.LinAlgError:
                ridge = 1e-12 * np.abs(a).max() + np.finfo(float).tiny
                rows.append(one(a + ridge * np.eye(a.shape[0]), b))
        return np.stack(rows)


# The contractions below multiply and sum along an axis rather than call np.einsum: einsum's
# vectorised loops for a contiguous reduction sum in an order that depends on where a row
# lies in memory (its alignment), so a row answered differently alone and in a batch (a
# split of the runs must not change any run's numbers); a product summed by np.sum does not.
def _times(matrix: Array, vector: Array) -> Array:
    """(K, a): each row's matrix (a, b) times its vector (b)."""
    return (matrix * vector[:, None, :]).sum(axis=-1)


def _rowdot(a: Array, b: Array) -> Array:
    """(K,): each row's dot product."""
    return (a * b).sum(axis=-1)


def _transposed_times(matrix: Array, vector: Array) -> Array:
    """(K, b): each row's matrix (a, b) transposed times its vector (a)."""
    return (matrix * vector[:, :, None]).sum(axis=1)


def cauchy_point(x: Array, g: Array, lo: Array, hi: Array, model: Compact
                 ) -> tuple[Array, Array]:
    """The generalized Cauchy point of each row and c = Wᵀ(x_cp − x) (algorithm CP)."""
    k, d = x.shape
    w, mid, theta = model
    with np.errstate(divide="ignore", invalid="ignore"):
        breaks = np.where(g < 0, (x - hi) / g, np.where(g > 0, (x - lo) / g, np.inf))
    breaks = np.where(np.isnan(breaks), np.inf, breaks)
    direction = np.where(breaks > 0, -g, 0.0)  # a coordinate at its bound, pushed out: held
    point = x.copy()
    p = _times(w, direction)
    c = np.zeros_like(p)
    f1 = -_rowdot(direction, direction)
    f2 = -theta * f1 - _rowdot(p, _times(mid, p))
    f2_floor = EPS * f2
    with np.errstate(divide="ignore", invalid="ignore"):
        step_min = np.where(f2 > 0, -f1 / f2, 0.0)
    t_old = np.zeros(k)
    going = f1 < 0
    order = np.argsort(breaks, axis=1)
    rows = np.arange(k)
    for j in range(d):
        b = order[:, j]
        tb = breaks[rows, b]
        going &= np.isfinite(tb)  # no breakpoint left: the minimiser lies before infinity
        passing = going & (tb > 0) & (step_min >= tb - t_old)
        going &= ~((tb > 0) & ~passing)  # the minimiser lies before this breakpoint
        if not passing.any():
            if not going.any():
                break
            continue
        r = np.flatnonzero(passing)
        br = b[r]
        dt = tb[r] - t_old[r]
        gb = g[r, br]
        xb = np.where(direction[r, br] > 0, hi[br], lo[br])
        zb = xb - x[r, br]
        point[r, br] = xb
        c[r] += dt[:, None] * p[r]
        wb = w[r, :, br]
        mr = mid[r]
        f1[r] += dt * f2[r] + gb * gb + theta[r] * gb * zb - gb * _rowdot(wb, _times(mr, c[r]))
        f2[r] -= (theta[r] * gb * gb + 2 * gb * _rowdot(wb, _times(mr, p[r]))
                  + gb * gb * _rowdot(wb, _times(mr, wb)))
        f2[r] = np.maximum(f2[r], f2_floor[r])
        p[r] += gb[:, None] * wb
        direction[r, br] = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            step_min[r] = np.where(f2[r] > 0, -f1[r] / f2[r], 0.0)
        t_old[r] = tb[r]
    step_min = np.maximum(step_min, 0.0)
    point = np.where(direction != 0, x + (t_old + step_min)[:, None] * direction, point)
    return point, c + step_min[:, None] * p


def subspace_point(x: Array, g: Array, lo: Array, hi: Array, model: Compact, point: Array,
                   c: Array) -> tuple[Array, Array]:
    """x̄: the model's minimiser over the coordinates free at the Cauchy point (the direct
    primal method), cut back along its way into the box; and the rows where the box played
    no part (every coordinate free at the Cauchy point, no cut): there x̄ is the minimiser
    of the model itself."""
    k, d = x.shape
    w, mid, theta = model
    free = (point > lo) & (point < hi)
    reduced = np.where(free, g + theta[:, None] * (point - x)
                       - _transposed_times(w, _times(mid, c)), 0.0)
    if d <= w.shape[1]:  # the reduced Hessian ZᵀBZ is the smaller system: solve it
        hessian = theta[:, None, None] * np.eye(d) - w.transpose(0, 2, 1) @ (mid @ w)
        both = free[:, :, None] & free[:, None, :]
        hessian = np.where(both, hessian, np.eye(d))  # a held coordinate: du 0
        du = _solve(hessian, -reduced[:, :, None])[:, :, 0]
    else:  # the direct primal method's 2m × 2m system (Sherman–Morrison–Woodbury)
        v = _times(mid, _times(w, reduced))
        wz = w * free[:, None, :]
        n = np.eye(w.shape[1]) - (mid @ (wz @ wz.transpose(0, 2, 1))) / theta[:, None, None]
        v = _solve(n, v[:, :, None])[:, :, 0]
        du = (-reduced / theta[:, None]
              - _transposed_times(wz, v) / (theta * theta)[:, None])
    du = np.where(free, du, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(du > 0, (hi - point) / du, np.where(du < 0, (lo - point) / du, np.inf))
    room = np.where(np.isnan(room), np.inf, room).min(axis=1)
    alpha = np.clip(room, 0.0, 1.0)
    return point + alpha[:, None] * du, free.all(axis=1) & (room >= 1.0)
