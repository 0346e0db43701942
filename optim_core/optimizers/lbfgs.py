"""L-BFGS, as torch.optim.LBFGS(max_iter=1, max_eval=max_ls + 1) called once per step.

    memory update (from the second step): y = g − g_prev, s = t_prev·d_prev; if yᵀs > 1e-10
        keep (s, y), the oldest dropped past history_size, and H₀ = yᵀs/yᵀy
    direction: d = −H·g by the two-loop recursion over the kept pairs (d = −g at the start)
    step length: t = min(1, 1/‖g‖₁)·lr at the first step, lr after; with `strong_wolfe` the
        accepted α of torch's strong-Wolfe search from t (c1 1e-4, c2 0.9, its zoom)
    p ← p + t·d

torch's own tests end a step without moving, and here the run: max|g| ≤ tolerance_grad
(converged, reason `tolerance_grad`) and gᵀd > −tolerance_change (the decrease the direction
promises is spent: converged, reason `tolerance_change`; set it to 0 to go on to grad_tol).
With a box it is L-BFGS-B: from the second step the direction is x̄ − x, x̄ the model's
minimiser over the coordinates its generalized Cauchy point leaves free, cut back into the
box (cauchy.py), the pairs measured on every coordinate as L-BFGS-B does; the first step is
torch's short steepest descent with held coordinates frozen. A row whose direction the box
does not change keeps the two-loop's and searches as without a box (so a box the path never
touches changes nothing); a row with a coordinate held, or whose Wolfe point lies outside
the box, searches along the projected path (Armijo), as cg and bfgs do
(linesearch.search_moving).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from optim_core.engine.status import Reason
from optim_core.optimizers import cauchy
from optim_core.optimizers.base import HyperParam, StepContext, StepRule
from optim_core.optimizers.linesearch import search_moving
from optim_core.optimizers.rowwise import dot, take_rows
from optim_core.types import Array

LINE_SEARCHES = ("strong_wolfe", "none")
CURVATURE_MIN = 1e-10  # torch: a pair is kept only where yᵀs exceeds it
MAX_LS = 25  # evaluations of one line search (torch's _strong_wolfe default)
C1, C2, WOLFE_WIDTH = 1e-4, 0.9, 1e-9  # torch's _strong_wolfe defaults, as LBFGS calls it


class LbfgsState(NamedTuple):
    """The memory is slot-major, (m, K, d): a slot of every row is one contiguous (K, d)
    block for the two-loop's passes. Each row's pairs form a ring of history_size slots:
    the oldest at slot `start`, the next after it, so dropping the oldest pair moves `start`
    instead of the pairs."""

    SLOT_MAJOR = ("s", "y", "rho")  # fields whose rows lie on axis 1 (the engine's compaction)
    s: Array  # (m, K, d) steps; a row's slots past its count hold zeros
    y: Array  # (m, K, d) gradient changes
    rho: Array  # (m, K) 1/yᵀs
    count: Array  # (K,) pairs kept
    start: Array  # (K,) the slot of the oldest pair (0 until the ring is full)
    h_diag: Array  # (K,) scale of the initial inverse Hessian
    prev_grad: Array  # (K, d) the gradient of the previous step
    d: Array  # (K, d) the previous direction
    t: Array  # (K,) the previous step length
    n_iter: Array  # (K,) steps taken (torch's state["n_iter"])
    done: Array  # (K,) Reason code of torch's own ends (0: none)
    next_params: Array  # (K, d) x + t·d, the accepted point
    step_size: Array  # (K, 1) the accepted α
    func_evals: Array  # (K, 1)
    grad_evals: Array  # (K, 1)
    hess_evals: Array  # (K, 1)
    skipped_updates: Array  # (K, 1) pairs not kept (yᵀs ≤ 1e-10)
    line_search_failures: Array  # (K, 1) searches that ended without a strong-Wolfe point


def init(params: Array) -> LbfgsState:
    """The memory is allocated at the first step, for the group's largest history_size."""
    k, d = params.shape
    zeros = np.zeros((k, 1))
    return LbfgsState(np.zeros((0, k, d)), np.zeros((0, k, d)),
                      np.zeros((0, k)), np.zeros(k, dtype=np.int64),
                      np.zeros(k, dtype=np.int64), np.ones(k),
                      np.zeros((k, d)), np.zeros((k, d)), np.zeros(k),
                      np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int8), params.copy(),
                      zeros + np.nan,
                      zeros + 1.0, zeros + 1.0, zeros.copy(), zeros.copy(), zeros.copy())


def _column(value: object, k: int) -> Array:
    return np.broadcast_to(np.asarray(value, dtype=float).reshape(-1), (k,)).copy() \
        if np.ndim(value) else np.full(k, float(value))  # type: ignore[arg-type]


def _free(params: Array, grads: Array, bounds: tuple[Array, Array] | None) -> Array | None:
    """(K, d) coordinates free to move: not at a bound with the gradient pushing out."""
    if bounds is None:
        return None
    lo, hi = bounds
    return ~(((params <= lo) & (grads > 0)) | ((params >= hi) & (grads < 0)))


def update(grads, state: LbfgsState, params, hp, t, ctx: StepContext):  # noqa: ANN001, ANN201
    k, d = params.shape
    history = _column(hp.history_size, k).astype(np.int64)
    m = int(history.max()) if k else 0
    if state.s.shape[0] < m:  # the first step: the memory for the largest history_size
        state = state._replace(s=np.zeros((m, k, d)), y=np.zeros((m, k, d)),
                               rho=np.zeros((m, k)))
    g = grads
    lr = _column(hp.lr, k)
    tol_change = _column(hp.tolerance_change, k)
    tol_grad = _column(hp.tolerance_grad, k)
    wolfe = np.broadcast_to(np.asarray(hp.line_search).reshape(-1), (k,)) == 0
    s, y, rho = state.s, state.y, state.rho  # updated in place (base.py)
    count, start = state.count.copy(), state.start.copy()
    h_diag = state.h_diag.copy()
    skipped = state.skipped_updates.copy()
    # torch: max|g| ≤ tolerance_grad ends the step before anything changes (in a box, the
    # projected gradient's)
    projected = g if ctx.bounds is None else params - np.clip(params - g, *ctx.bounds)
    optimal = np.abs(projected).max(axis=1) <= tol_grad
    first = state.n_iter == 0
    # the memory update, from the second step on
    later = ~first & ~optimal
    if later.any():
        y_new = g - state.prev_grad
        s_new = state.d * state.t[:, None]
        if ctx.bounds is not None:  # a step the engine cut back into the box (lr > 1)
            s_new = np.where(params == state.next_params, s_new,
                             params - (state.next_params - s_new))
        ys = dot(y_new, s_new)
        keep = later & (ys > CURVATURE_MIN)
        skipped[later & ~keep, 0] += 1
        rows = np.flatnonzero(keep)
        full = count[rows] == history[rows]  # the new pair takes the oldest one's slot
        slot = start[rows] + count[rows] * ~full  # start is 0 until the ring is full
        y_kept = take_rows(y_new, rows)
        s[slot, rows], y[slot, rows] = take_rows(s_new, rows), y_kept
        with np.errstate(divide="ignore"):
            rho[slot, rows] = 1.0 / ys[rows]
            h_diag[rows] = ys[rows] / dot(y_kept, y_kept)
        count[rows] += ~full
        start[rows] = np.where(full, (start[rows] + 1) % history[rows], start[rows])
    h_diag[first] = 1.0
    count[first] = 0
    pairs = _oldest_first(s, y, rho, count, start, history)
    direction = _two_loop(g, *pairs, h_diag)
    direction[first] = -g[first]
    free = None
    if ctx.bounds is not None:
        direction, free = _within_box(params, g, ctx.bounds, direction, pairs, count, h_diag,
                                      first)
    with np.errstate(divide="ignore"):  # d = −g at the first step (held coordinates 0)
        first_t = np.minimum(1.0, 1.0 / np.abs(direction).sum(axis=1)) * lr
    step_t = np.where(first, first_t, lr)
    gtd = dot(g, direction)
    no_descent = ~optimal & (gtd > -tol_change)
    moving = ~optimal & ~no_descent
    searching = moving & wolfe
    accepted, _, _, (func_evals, grad_evals, failures) = search_moving(
        ctx, searching, params, step_t, step_t, direction, g, grads, gtd, free,
        c1=np.full(k, C1), c2=np.full(k, C2), max_ls=MAX_LS, tolerance_change=WOLFE_WIDTH,
        counters=(state.func_evals, state.grad_evals, state.line_search_failures),
        need_grads=False)
    plain = moving & ~wolfe
    accepted[plain] = step_t[plain]
    func_evals[plain, 0] += 1  # the next step's evaluation is this method's
    grad_evals[plain, 0] += 1
    step = accepted[:, None] * direction
    next_params = np.where(moving[:, None], params + accepted[:, None] * direction, params)
    done = np.where(optimal, Reason.TOLERANCE_GRAD,
                    np.where(no_descent, Reason.TOLERANCE_CHANGE, 0)).astype(np.int8)
    # torch leaves its state as it was after an optimal step, and keeps the new direction
    # and length (not applied) after a non-descent one
    advanced = ~optimal
    new = LbfgsState(
        s=s, y=y, rho=rho, count=count, start=start, h_diag=h_diag,
        prev_grad=np.where(advanced[:, None], g, state.prev_grad),
        d=np.where(advanced[:, None], direction, state.d),
        t=np.where(advanced, np.where(moving, accepted, step_t), state.t),
        n_iter=state.n_iter + advanced, done=done, next_params=next_params,
        step_size=np.where(moving, accepted, 0.0)[:, None], func_evals=func_evals,
        grad_evals=grad_evals, hess_evals=state.hess_evals,
        skipped_updates=skipped, line_search_failures=failures)
    return np.where(moving[:, None], step, 0.0), new


def _within_box(x: Array, g: Array, box: tuple[Array, Array], direction: Array,
                pairs: tuple[Array, Array, Array], count: Array, h_diag: Array, first: Array
                ) -> tuple[Array, Array]:
    """L-BFGS-B's direction x̄ − x (cauchy.py: the generalized Cauchy point, then the
    model's minimiser over the coordinates it leaves free, cut back into the box) and the
    coordinates free to move. Where the Cauchy point meets no bound and x̄ needs no cut, x̄ is
    the unconstrained model's minimiser x − H·g: the two-loop's direction is kept there, bit
    for bit, so a box the path never touches changes nothing. The first step, with no pair
    yet (B = I, whose Cauchy point x − g may lie far out where g is large), is torch's
    steepest descent with the coordinates held at a bound frozen, as L-BFGS-B's first
    search starts short (1/‖d‖) along its projected gradient.

    Rows go through the dense algebra grouped by their count of pairs, each group with its
    own pairs only: padding a row's memory with the zero pairs of a longer one changes the
    sizes of its sums and factorizations, and with them its last bits (a row must answer
    alone as in any batch)."""
    free = _free(x, g, box)
    assert free is not None
    direction = np.where(free, direction, 0.0)
    later = np.flatnonzero(~first & ~_clear_of_box(x, g, box, direction))
    lo, hi = box
    for kept in np.unique(count[later]):
        rows = later[count[later] == kept]
        xr, gr = take_rows(x, rows), take_rows(g, rows)
        model = cauchy.compact(pairs[0][:kept, rows], pairs[1][:kept, rows],
                               1.0 / h_diag[rows])
        point, c = cauchy.cauchy_point(xr, gr, lo, hi, model)
        target, untouched = cauchy.subspace_point(xr, gr, lo, hi, model, point, c)
        touched = rows[~untouched]
        direction[touched] = target[~untouched] - x[touched]
        free[touched] = (target[~untouched] > lo) & (target[~untouched] < hi)
        free[rows[untouched]] = True
    return direction, free


def _clear_of_box(x: Array, g: Array, box: tuple[Array, Array], direction: Array) -> Array:
    """Rows whose Cauchy point and model minimiser are certainly inside the box, without
    forming B: the Cauchy step t* = gᵀg/gᵀBg is at most gᵀHg/gᵀg (Cauchy–Schwarz in B's
    inner product), so where x − t·g for that t and x − H·g lie strictly inside, the box
    plays no part (the steepest-descent path meets no bound before t*, every coordinate is
    free, the subspace step is the model's minimiser and needs no cut)."""
    lo, hi = box
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = -dot(g, direction) / dot(g, g)
    along = x - reach[:, None] * g
    model = x + direction
    return (np.isfinite(reach) & ((along > lo) & (along < hi) & (model > lo)
                                  & (model < hi)).all(axis=1))


def _oldest_first(s: Array, y: Array, rho: Array, count: Array, start: Array,
                  history: Array) -> tuple[Array, Array, Array]:
    """The memory's first count.max() pairs of every row, oldest first: views of the slots
    when every row's ring starts at the same slot (always, unless some rows skipped a pair),
    else one gather. A row's logical slots past its count map to its unused (zero) slots."""
    k, top = count.size, int(count.max()) if count.size else 0
    first = int(start[0]) if k else 0
    if not k or ((start == first).all() and (first == 0 or (history == history[0]).all())):
        order = (first + np.arange(top)) % int(history[0]) if first else slice(0, top)
        return s[order], y[order], rho[order]
    logical = np.arange(top)[:, None]
    slot = np.where(logical < count, (start + logical) % history, logical)
    flat = (slot * k + np.arange(k)).ravel()  # (slot, row) in the (m·K, …) memory
    d = s.shape[2]
    return (take_rows(s.reshape(-1, d), flat).reshape(top, k, d),
            take_rows(y.reshape(-1, d), flat).reshape(top, k, d),
            rho.reshape(-1).take(flat).reshape(top, k))


def _two_loop(g: Array, s: Array, y: Array, rho: Array, h_diag: Array) -> Array:
    """−H·g by the two-loop recursion over the pairs s, y (top, K, d) and rho (top, K), oldest
    first, in torch's order of operations. A row's pairs past its count are zeros (rho 0 too),
    so their terms are exact zeros: the loops run over every row's slots with no mask."""
    k, top = g.shape[0], s.shape[0]
    q = -g
    alphas = np.empty((top, k))
    for i in range(top - 1, -1, -1):
        a = np.einsum("kd,kd->k", s[i], q)
        a *= rho[i]
        alphas[i] = a
        q -= a[:, None] * y[i]
    r = q * h_diag[:, None]
    for i in range(top):
        b = np.einsum("kd,kd->k", y[i], r)
        b *= rho[i]
        r += (alphas[i] - b)[:, None] * s[i]
    return r


def finished(state: LbfgsState) -> tuple[Array, Array]:
    return state.done > 0, state.done


HYPERPARAMS = (
    HyperParam("lr", 1.0, gt=0, schedulable=True, doc="step length (the first step: "
               "min(1, 1/‖g‖₁)·lr, as torch)"),
    HyperParam("history_size", 10, ge=1, le=100, kind="int", doc="(s, y) pairs kept"),
    HyperParam("line_search", "strong_wolfe", kind="choice", choices=LINE_SEARCHES,
               doc="strong_wolfe: torch's search with zoom (up to 25 evaluations); none: "
                   "the step t·d as it is"),
    HyperParam("tolerance_change", 1e-9, ge=0, doc="a step ends where gᵀd > −this"),
    HyperParam("tolerance_grad", 1e-7, ge=0, doc="the run converges where max|g| ≤ this "
               "(torch's test, beside the request's grad_tol)"),
)


LBFGS = StepRule(
    "lbfgs", init, update, HYPERPARAMS,
    "L-BFGS as torch.optim.LBFGS one iteration a step: two-loop recursion over the last "
    "history_size pairs, torch's strong-Wolfe search; L-BFGS-B within bounds (its Cauchy "
    "point and subspace step).",
    uses_loss=True, finished=finished, counts_evals=True,
    counters=("func_evals", "grad_evals", "hess_evals", "skipped_updates",
              "line_search_failures"),
)
