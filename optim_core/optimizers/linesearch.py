"""Line searches over the rows still searching: strong Wolfe (with zoom) and Armijo backtracking.

    strong Wolfe at step α along d:   f(x + αd) ≤ f(x) + c1·α·gᵀd       (sufficient decrease)
                                      |g(x + αd)ᵀd| ≤ −c2·gᵀd             (curvature)

`strong_wolfe` is torch.optim.LBFGS's `_strong_wolfe` (itself minFunc's lswolfe), written for a
batch: every row runs torch's bracketing phase and its zoom with cubic interpolation, with its
constants and its tests in its order, and each round evaluates the loss and gradient once, at
one trial point per row still searching. A row that brackets, satisfies the conditions or runs
out of evaluations leaves the rounds; the others go on. Step for step it answers what torch
answers for each row alone (tested against torch).

`armijo` backtracks α = 1, ½, ¼, … until f(P(x + αd)) ≤ f(x) + c1·gᵀ(P(x + αd) − x), P the
projection onto the box when there is one (the projected-path Armijo rule of bound-constrained
methods); without a box it is the plain Armijo test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from optim_core.optimizers.rowwise import dot, take_rows
from optim_core.types import Array

ValueGrad = Callable[[Array], tuple[Array, Array]]  # params (k, d) → values (k,), grads (k, d)
# phases of a row in strong_wolfe
_BRACKET, _ZOOM, _DONE = 0, 1, 2


class WolfeResult(NamedTuple):
    step: Array  # (K,) the accepted α
    values: Array  # (K,) f at x + α·d
    grads: Array  # (K, d) g at x + α·d
    evals: Array  # (K,) evaluations spent
    satisfied: Array  # (K,) whether the strong Wolfe conditions hold at α


def cubic_interpolate(x1: Array, f1: Array, g1: Array, x2: Array, f2: Array, g2: Array,
                      lo: Array | None = None, hi: Array | None = None) -> Array:
    """The minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clipped to [lo, hi]
    (default: between x1 and x2); the middle of [lo, hi] where the cubic has none. Torch's
    `_cubic_interpolate`, elementwise."""
    if lo is None or hi is None:
        lo, hi = np.minimum(x1, x2), np.maximum(x1, x2)
    with np.errstate(all="ignore"):
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        d2_square = d1**2 - g1 * g2
        d2 = np.sqrt(np.where(d2_square >= 0, d2_square, 0.0))
        forward = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        backward = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        min_pos = np.where(x1 <= x2, forward, backward)
        clipped = np.minimum(np.maximum(min_pos, lo), hi)
    return np.where(d2_square >= 0, clipped, (lo + hi) / 2.0)


def strong_wolfe(value_grad: ValueGrad, x: Array, t: Array, d: Array, f: Array, g: Array,
                 gtd: Array, *, c1: float | Array = 1e-4, c2: float | Array = 0.9,
                 tolerance_change: float = 1e-9, max_ls: int = 25) -> WolfeResult:
    """Torch's strong-Wolfe search from x (K, d) along d with first trial t (K,), given f, g,
    gtd = gᵀd at x. Answers the accepted α with f and g there (nothing more to evaluate).

    Most steps of a quasi-Newton run take the first trial: the rounds below run only on the
    rows that do not (each row's arithmetic is its own, so the answers are those of the
    rounds over every row)."""
    k = x.shape[0]
    c1 = np.broadcast_to(np.asarray(c1, dtype=float), (k,))
    c2 = np.broadcast_to(np.asarray(c2, dtype=float), (k,))
    t = np.array(t, dtype=float)
    f_new, g_new = value_grad(x + t[:, None] * d)
    f_new, g_new = np.array(f_new, dtype=float), np.array(g_new, dtype=float)
    gtd_new = dot(g_new, d)
    first = (f_new, g_new, gtd_new)
    if max_ls < 1:
        return _rounds(value_grad, x, t, d, f, g, gtd, first, c1, c2, tolerance_change, max_ls)
    with np.errstate(invalid="ignore"):
        taken = (f_new <= f + c1 * t * gtd) & (np.abs(gtd_new) <= -c2 * gtd)
    evals = np.ones(k, dtype=np.int64)
    if taken.all():
        return WolfeResult(t, f_new, g_new, evals, taken)
    r = np.flatnonzero(~taken)
    rest = _rounds(value_grad, take_rows(x, r), t[r], take_rows(d, r), f[r], take_rows(g, r),
                   gtd[r], (f_new[r], take_rows(g_new, r), gtd_new[r]), c1[r], c2[r],
                   tolerance_change, max_ls)
    t[r], f_new[r], g_new[r], evals[r], taken[r] = rest
    return WolfeResult(t, f_new, g_new, evals, taken)


def _rounds(value_grad: ValueGrad, x: Array, t: Array, d: Array, f: Array, g: Array,
            gtd: Array, first: tuple[Array, Array, Array], c1: Array, c2: Array,
            tolerance_change: float, max_ls: int) -> WolfeResult:
    """Torch's bracketing and zoom for rows whose first trial t gave `first` (f, g, gᵀd).
    It works in t and `first` in place: strong_wolfe hands it arrays of its own."""
    k = x.shape[0]
    d_norm = np.abs(d).max(axis=1)
    f_new, g_new, gtd_new = first
    evals = np.ones(k, dtype=np.int64)
    t_prev, f_prev, g_prev, gtd_prev = np.zeros(k), f.copy(), g.copy(), gtd.copy()
    ls_iter = np.zeros(k, dtype=np.int64)
    phase = np.full(k, _BRACKET)
    done = np.zeros(k, dtype=bool)
    # the bracket: two ends (t, f, g, gtd) and which end is low
    b_t, b_f = np.zeros((k, 2)), np.zeros((k, 2))
    b_g, b_gtd = np.zeros((k, 2, x.shape[1])), np.zeros((k, 2))
    low = np.zeros(k, dtype=np.int64)
    insufficient = np.zeros(k, dtype=bool)
    rows = np.arange(k)

    def set_bracket(mask: Array, ends: tuple[tuple[Array, Array, Array, Array], ...]) -> None:
        index = np.flatnonzero(mask)
        for side, (bt, bf, bg, bgtd) in enumerate(ends):
            b_t[index, side], b_f[index, side] = bt[index], bf[index]
            b_g[index, side], b_gtd[index, side] = take_rows(bg, index), bgtd[index]

    with np.errstate(all="ignore"):
        while True:
            # -- the bracketing phase: test the point just evaluated ----------------------
            bracketing = phase == _BRACKET
            out_of_evals = bracketing & (ls_iter >= max_ls)
            if out_of_evals.any():  # torch: bracket = [0, t] (its gtd is never read)
                set_bracket(out_of_evals, ((np.zeros(k), f, g, gtd),
                                           (t, f_new, g_new, gtd_new)))
                phase[out_of_evals] = _ZOOM
            testing = bracketing & ~out_of_evals
            armijo_fails = testing & ((f_new > f + c1 * t * gtd)
                                      | ((ls_iter > 1) & (f_new >= f_prev)))
            wolfe = testing & ~armijo_fails & (np.abs(gtd_new) <= -c2 * gtd)
            turned = testing & ~armijo_fails & ~wolfe & (gtd_new >= 0)
            bracket_now = armijo_fails | turned
            if bracket_now.any():
                set_bracket(bracket_now, ((t_prev, f_prev, g_prev, gtd_prev),
                                          (t, f_new, g_new, gtd_new)))
                phase[bracket_now] = _ZOOM
            if wolfe.any():  # torch: bracket = [t], done
                b_t[wolfe, 0], b_f[wolfe, 0] = t[wolfe], f_new[wolfe]
                b_g[wolfe, 0], b_gtd[wolfe, 0] = g_new[wolfe], gtd_new[wolfe]
                b_t[wolfe, 1], b_f[wolfe, 1] = t[wolfe], f_new[wolfe]
                done[wolfe] = True
                phase[wolfe] = _ZOOM
            extrapolate = testing & ~bracket_now & ~wolfe
            entered = out_of_evals | bracket_now | wolfe  # rows that just left bracketing
            low[entered] = np.where(b_f[entered, 0] <= b_f[entered, 1], 0, 1)
            insufficient[entered] = False
            next_t = np.full(k, np.nan)
            if extrapolate.any():
                e = extrapolate
                lo_step = t[e] + 0.01 * (t[e] - t_prev[e])
                hi_step = t[e] * 10
                next_t[e] = cubic_interpolate(t_prev[e], f_prev[e], gtd_prev[e], t[e], f_new[e],
                                              gtd_new[e], lo_step, hi_step)
                t_prev[e], f_prev[e], gtd_prev[e] = t[e], f_new[e], gtd_new[e]
                g_prev[e] = g_new[e]
            # -- the zoom phase: rows whose bracket needs a new trial point -------------------
            zooming = (phase == _ZOOM) & ~done & (ls_iter < max_ls)
            if zooming.any():
                narrow = zooming & (np.abs(b_t[:, 1] - b_t[:, 0]) * d_norm < tolerance_change)
                zooming &= ~narrow
            if zooming.any():
                z = zooming
                trial = cubic_interpolate(b_t[z, 0], b_f[z, 0], b_gtd[z, 0], b_t[z, 1],
                                          b_f[z, 1], b_gtd[z, 1])
                top, bottom = b_t[z].max(axis=1), b_t[z].min(axis=1)
                eps = 0.1 * (top - bottom)
                close = np.minimum(top - trial, trial - bottom) < eps
                ins = insufficient[z]
                move = close & (ins | (trial >= top) | (trial <= bottom))
                trial = np.where(move & (np.abs(trial - top) < np.abs(trial - bottom)),
                                 top - eps, np.where(move, bottom + eps, trial))
                insufficient[z] = close & ~move
                next_t[z] = trial
            evaluate = extrapolate | zooming
            phase[~evaluate & (phase != _BRACKET)] = _DONE
            if not evaluate.any():
                break
            # -- one evaluation for every row still searching ---------------------------------
            e = np.flatnonzero(evaluate)
            t[e] = next_t[e]
            d_e = take_rows(d, e)
            values, grads = value_grad(take_rows(x, e) + t[e, None] * d_e)
            f_new[e], g_new[e] = values, grads
            gtd_new[e] = dot(take_rows(g_new, e), d_e)
            evals[e] += 1
            ls_iter[e] += 1
            # zoom rows: update their bracket with the new point
            zr = np.flatnonzero(zooming)
            if zr.size:
                lo_side = low[zr]
                hi_side = 1 - lo_side
                above = (f_new[zr] > f[zr] + c1[zr] * t[zr] * gtd[zr]) | \
                    (f_new[zr] >= b_f[zr, lo_side])
                a = zr[above]
                if a.size:  # the new point becomes the high end
                    hs = hi_side[above]
                    b_t[a, hs], b_f[a, hs], b_g[a, hs], b_gtd[a, hs] = \
                        t[a], f_new[a], g_new[a], gtd_new[a]
                    low[a] = np.where(b_f[a, 0] <= b_f[a, 1], 0, 1)
                b = zr[~above]
                if b.size:
                    ls_, hs_ = lo_side[~above], hi_side[~above]
                    wolfe_b = np.abs(gtd_new[b]) <= -c2[b] * gtd[b]
                    done[b[wolfe_b]] = True
                    flip = ~wolfe_b & (gtd_new[b] * (b_t[b, hs_] - b_t[b, ls_]) >= 0)
                    fb, fl, fh = b[flip], ls_[flip], hs_[flip]
                    if fb.size:  # the old low becomes the high end
                        b_t[fb, fh], b_f[fb, fh] = b_t[fb, fl], b_f[fb, fl]
                        b_g[fb, fh], b_gtd[fb, fh] = b_g[fb, fl], b_gtd[fb, fl]
                    b_t[b, ls_], b_f[b, ls_], b_g[b, ls_], b_gtd[b, ls_] = \
                        t[b], f_new[b], g_new[b], gtd_new[b]
    pick = 2 * rows + low  # each row's low end, in the bracket's (2K, …) rows
    step = b_t.reshape(-1)[pick]
    values = b_f.reshape(-1)[pick]
    grads = take_rows(b_g.reshape(2 * k, -1), pick)
    satisfied = done | (np.abs(dot(grads, d)) <= -c2 * gtd) & (values <= f + c1 * step * gtd)
    return WolfeResult(step, values, grads, evals, satisfied)


def armijo(value_fn: Callable[[Array], Array], x: Array, d: Array, f: Array, g: Array, *,
           c1: float = 1e-4, max_halvings: int = 30,
           project: Callable[[Array], Array] | None = None) -> tuple[Array, Array, Array]:
    """Backtracking from α = 1 along d, each round evaluating the rows not yet accepted:
    answers α (K,), the accepted points' values (K,) and the evaluations spent (K,). With a
    projection, the trial point is P(x + αd) and the decrease is measured along the projected
    step (gᵀ(P(x + αd) − x)); a row that never satisfies the test gets α = 2^−max_halvings."""
    k = x.shape[0]
    alpha = np.ones(k)
    accepted = np.zeros(k, dtype=bool)
    values = np.full(k, np.nan)
    evals = np.zeros(k, dtype=np.int64)
    pending = np.arange(k)
    for _ in range(max_halvings + 1):
        trial = x[pending] + alpha[pending, None] * d[pending]
        if project is not None:
            trial = project(trial)
        with np.errstate(all="ignore"):
            new = value_fn(trial)
            slope = dot(g[pending], trial - x[pending])
            ok = new <= f[pending] + c1 * slope
        evals[pending] += 1
        values[pending[ok]] = new[ok]
        accepted[pending[ok]] = True
        pending = pending[~ok]
        if pending.size == 0:
            break
        alpha[pending] *= 0.5
    return alpha, values, evals


def search_moving(ctx: Any, moving: Array, x: Array, trial: Array, opening: Array, d: Array,
                  g: Array, raw_grads: Array, gtd: Array, free: Array | None, *, c1: Array,
                  c2: Array, max_ls: int, counters: tuple[Array, Array, Array],
                  tolerance_change: float = 0.0, need_grads: bool = True
                  ) -> tuple[Array, Array, Array, tuple[Array, Array, Array]]:
    """The step length of cg, bfgs and lbfgs for the rows that move (of K rows along d). Without a
    box, and for a row with no coordinate held at a bound, torch's strong-Wolfe search from
    `trial`, so a box around the whole path changes nothing; a row at a bound, or whose Wolfe
    point lies outside the box, searches along the projected path (Armijo, gradient
    `raw_grads`) from at least `opening`: Armijo backtracks but never lengthens, and from a
    short guess every later step stays as short. For cg and bfgs the zoom ends at a Wolfe
    point or after max_ls evaluations, not on torch's bracket width (tolerance_change 0;
    torch's is absolute in x: where a direction is as small as the gradient, as CG's near a
    minimum, it gave up with no lower point: 10-D Rosenbrock from 64 starts, 27 CG runs
    reached grad_tol 1e-8 with it, 57 without); lbfgs keeps torch's 1e-9.

    Answers α (0 where a row stays), the gradient at the accepted point (the old one where a
    row stays), whether a search found no lower point, and the (K, 1) counters (func_evals,
    grad_evals, line_search_failures) with this step's added. A rule that reads no gradient
    at the accepted point (`need_grads` false: lbfgs, whose next step's evaluation reads it)
    gets none from the projected search, and its count has that gradient, not a second value."""
    k = x.shape[0]
    alpha, new_grads, stuck = np.zeros(k), raw_grads.copy(), np.zeros(k, dtype=bool)
    func_evals, grad_evals, failures = (c.copy() for c in counters)
    held = np.zeros(k, dtype=bool) if free is None else ~free.all(axis=1)
    projected = moving & held
    w = np.flatnonzero(moving & ~held)
    if w.size:
        x_w, d_w = take_rows(x, w), take_rows(d, w)
        found = strong_wolfe(ctx.value_grad_fn, x_w, trial[w], d_w, ctx.values[w],
                             take_rows(g, w), gtd[w], c1=c1[w], c2=c2[w],
                             tolerance_change=tolerance_change, max_ls=max_ls)
        func_evals[w, 0] += found.evals
        grad_evals[w, 0] += found.evals
        inside = np.ones(w.size, dtype=bool)
        if ctx.bounds is not None:
            point = x_w + found.step[:, None] * d_w
            inside = ((point >= ctx.bounds[0]) & (point <= ctx.bounds[1])).all(axis=1)
        kept = w[inside]
        alpha[kept], new_grads[kept] = found.step[inside], found.grads[inside]
        stuck[kept] = ~(found.values[inside] < ctx.values[kept])
        failures[kept[~found.satisfied[inside]], 0] += 1
        projected[w[~inside]] = True
    p = np.flatnonzero(projected)
    if p.size:
        length = np.maximum(trial[p], opening[p])
        x_p, d_p = take_rows(x, p), take_rows(d, p)
        scale, _, evals = armijo(ctx.value_fn, x_p, length[:, None] * d_p, ctx.values[p],
                                 take_rows(raw_grads, p), c1=1e-4,
                                 project=lambda z: np.clip(z, *ctx.bounds))
        alpha[p] = scale * length
        if need_grads:
            _, new_grads[p] = ctx.value_grad_fn(np.clip(x_p + alpha[p, None] * d_p,
                                                        *ctx.bounds))
        func_evals[p, 0] += evals + need_grads
        grad_evals[p, 0] += 1
    return alpha, new_grads, stuck, (func_evals, grad_evals, failures)
