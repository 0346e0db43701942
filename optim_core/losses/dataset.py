"""Sampled losses: the empirical risk over the rows of a dataset, full batch or minibatch.

Parameters form an augmented weight matrix W̃ with the intercept as its last row, flattened
row-major (the intercept is not regularised):
    linear, logistic   θ = [w_1, …, w_p, b]                       (d = p + 1)
    softmax            θ = [W[1,1..C], …, W[p,1..C], b_1..b_C]     (d = (p + 1)·C)
Losses (X̃ = [X, 1] when fit_intercept):
    linear    mean (x̃·θ − y)²                                     (mean squared error)
    logistic  mean softplus(z) − y·z,  z = x̃·θ,  y ∈ {0, 1}        (mean log-loss)
    softmax   mean logsumexp(z) − z_y,  z = x̃·W̃, y ∈ {0, …, C−1}    (multinomial log-loss)
each plus (l2/2)·‖w‖². Minibatches are drawn like a shuffling data loader: each run gets a
fresh permutation per epoch from its own stream (seed, stream id), batches in order, the
last batch of an epoch possibly smaller; all runs step together, so a step's batch is a
(K, B) index array gathered with np.take.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from optim_core.errors import DatasetError, LimitExceededError
from optim_core.losses.base import LossBase
from optim_core.types import Array, Grads, Hess, Params, Values


def _logsumexp(z: Array, axis: int) -> Array:
    top = np.max(z, axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.sum(np.exp(z - top), axis=axis))


def _sigmoid(z: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


CACHE_BLOCK_BYTES = 1 << 20  # gathered rows per block of runs: within a core's L2
_PREFETCH: ThreadPoolExecutor | None = None
_PREFETCH_LOCK = threading.Lock()


def _prefetcher() -> ThreadPoolExecutor:
    global _PREFETCH
    with _PREFETCH_LOCK:
        if _PREFETCH is None:
            _PREFETCH = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optim-shuffle")
        return _PREFETCH


class MinibatchSampler:
    """Per-run permutations, regenerated each epoch from the run's own stream.

    The next epoch's permutations are drawn on a helper thread while this epoch's steps run
    (NumPy's shuffle releases the GIL): a permutation of 100,000 rows costs ~1 ms per run,
    ~9% of a 32-run epoch when drawn in line. Each run's generator is still used in epoch
    order, so the minibatches are the same as drawn in line, given that `draw` sees the steps
    in order (as the engine calls it).
    """

    def __init__(self, n: int, batch_size: int, streams: Array, seed: int,
                 horizon: int | None = None) -> None:
        self.n, self.batch_size = n, batch_size
        self.per_epoch = -(-n // batch_size)
        self.horizon = horizon  # steps the run will take at most (no prefetch past it)
        self.generators = [np.random.default_rng([seed, int(s)]) for s in streams]
        self.perms = np.empty((len(streams), n), dtype=np.int64)
        self.epoch = -1
        self._next: tuple[Array, Future[Array]] | None = None  # (rows, their permutations)
        if horizon is None or horizon > 0:  # the first epoch, while the engine starts up
            every = np.arange(len(streams))
            self._next = (every, _prefetcher().submit(self._permutations, every))

    def _permutations(self, rows: Array) -> Array:
        return np.stack([self.generators[row].permutation(self.n) for row in rows])

    def draw(self, rows: Array, t: int) -> Array:
        """(Ka, B) sample indices for the active runs `rows` at step t."""
        epoch, position = divmod(t, self.per_epoch)
        if epoch != self.epoch:
            if self._next is not None and epoch == self.epoch + 1:
                fetched_rows, future = self._next
                self.perms[fetched_rows] = future.result()  # the active rows, or more
                missing = rows[~np.isin(rows, fetched_rows)]
                if missing.size:
                    self.perms[missing] = self._permutations(missing)
            else:
                self.perms[rows] = self._permutations(rows)
            self.epoch = epoch
            self._next = None
            if self.horizon is None or (epoch + 1) * self.per_epoch <= self.horizon:
                self._next = (rows.copy(), _prefetcher().submit(self._permutations,
                                                                rows.copy()))
        start = position * self.batch_size
        window = slice(start, min(start + self.batch_size, self.n))
        if rows.size == self.perms.shape[0]:  # every run active: a view, not a gather
            return self.perms[:, window]
        return self.perms[rows, window]


# Full-batch products go through the data in blocks of this many rows (a fixed number, so a
# run's sums never depend on the batch): each block is read from memory once and from cache
# for the other runs. 100,000 × 51 rows, 32 runs: the gradient product 91 → 21 ms (one gemm
# over all runs: 16 ms, but batch-dependent), the values 21 → 17 ms (gemm 11 ms).
ROW_BLOCK = 4096


def _per_run_rows(params: Array, X_T: Array) -> Array:
    """(K, n): each run's xᵢ·w for every row, per run (a row's value needs only its row)."""
    k, n = params.shape[0], X_T.shape[1]
    if n <= ROW_BLOCK:
        return np.matmul(params[:, None, :], X_T)[:, 0, :]
    out = np.empty((k, n))
    for start in range(0, n, ROW_BLOCK):  # a few blocks of data rows, not a loop over runs
        block = slice(start, start + ROW_BLOCK)
        out[:, block] = np.matmul(params[:, None, :], X_T[:, block])[:, 0, :]
    return out


def _per_run_gradient(residual: Array, X: Array) -> Array:
    """(K, p̃): each run's Σᵢ rᵢ·xᵢ, per run, summed block by block in a fixed order."""
    n = X.shape[0]
    if n <= ROW_BLOCK:
        return np.matmul(residual[:, None, :], X)[:, 0, :]
    total = np.matmul(residual[:, None, :ROW_BLOCK], X[:ROW_BLOCK])[:, 0, :]
    for start in range(ROW_BLOCK, n, ROW_BLOCK):
        block = slice(start, start + ROW_BLOCK)
        total += np.matmul(residual[:, None, block], X[block])[:, 0, :]
    return total


class DatasetLoss(LossBase):
    kind = "dataset"
    stochastic = False

    def __init__(self, model: str, X: Array, y: Array, *, l2: float = 0.0,
                 fit_intercept: bool = True, standardize: bool = False,
                 batch_size: int | None = None, n_classes: int | None = None) -> None:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        n, p = X.shape
        if standardize:
            std = X.std(axis=0)
            X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
        self.model, self.l2, self.fit_intercept = model, float(l2), fit_intercept
        self.standardize = standardize
        self.X = np.hstack([X, np.ones((n, 1))]) if fit_intercept else X
        self.n, self.p = n, p
        self.width = self.X.shape[1]  # p̃
        self.X_T = np.ascontiguousarray(self.X.T)  # (p̃, n): per-run products read it row-wise
        if model == "softmax":
            self.classes = int(n_classes if n_classes is not None else int(y.max()) + 1)
            self.labels = y.astype(np.int64)
            self.onehot = np.eye(self.classes)[self.labels]
        else:
            self.classes = 1
        self.y = y
        self.dim = self.width * self.classes
        self.names = _names(model, p, self.classes, fit_intercept)
        penalty = np.ones((self.width, self.classes))
        if fit_intercept:
            penalty[-1] = 0.0
        self.penalty = penalty.ravel()  # (d,) 1 where l2 applies
        self.batch_size = batch_size
        self.stochastic = batch_size is not None and batch_size < n
        self.default_start = np.zeros(self.dim)
        self.hess_cost = n * self.dim * self.dim
        self._gather_buffers: dict[tuple[int, ...], Array] = {}
        if model == "linear":
            self._least_squares()

    # -- shared pieces ---------------------------------------------------------------------
    def _risk(self, X: Array, y: Array, onehot: Array | None, params: Params,
              with_grad: bool = True) -> tuple[Values, Grads | None]:
        """Value and gradient over rows X: (B, p̃) shared or (K, B, p̃) per run (the
        gradient's second pass over X is skipped when only values are wanted)."""
        k = params.shape[0]
        shared = X.ndim == 2
        rows = X.shape[-2]
        if self.model == "softmax":
            W = params.reshape(k, self.width, self.classes)
            z = np.einsum("bi,kic->kbc", X, W) if shared else np.einsum("kbi,kic->kbc", X, W)
            lse = _logsumexp(z, axis=2)
            picked = np.sum(z * onehot, axis=2)
            values = np.add.reduce(lse - picked, axis=1) / rows  # np.mean costs ~10 µs more
            if not with_grad:
                return self._penalised(values, None, params)
            residual = np.exp(z - lse[:, :, None]) - onehot  # (K, B, C)
            grads = (np.einsum("bi,kbc->kic", X, residual) if shared
                     else np.einsum("kbi,kbc->kic", X, residual)) / rows
            grads = grads.reshape(k, self.dim)
        else:
            # (K, B), each run through its own BLAS product (a batched matmul), never one
            # matrix product over all runs: BLAS blocks a product's sums differently at
            # different K, and a run must compute the same numbers in any batch (shards).
            if shared:
                z = _per_run_rows(params, self.X_T if X is self.X else np.ascontiguousarray(X.T))
            else:
                z = np.matmul(X, params[:, :, None])[:, :, 0]
            yy = y[None, :] if shared else y
            if self.model == "linear":
                residual = z - yy
                values = np.add.reduce(residual * residual, axis=1) / rows
                residual = 2.0 * residual
            else:
                values = np.add.reduce(np.logaddexp(0.0, z) - yy * z, axis=1) / rows
                residual = _sigmoid(z) - yy
            if not with_grad:
                return self._penalised(values, None, params)
            grads = (_per_run_gradient(residual, X) if shared
                     else np.matmul(residual[:, None, :], X)[:, 0, :]) / rows
        return self._penalised(values, grads, params)

    def _penalised(self, values: Values, grads: Grads | None, params: Params
                   ) -> tuple[Values, Grads | None]:
        if self.l2:
            weights = params * self.penalty
            values = values + 0.5 * self.l2 * np.einsum("kd,kd->k", weights, params)
            if grads is not None:
                grads = grads + self.l2 * weights
        return values, grads

    def value_grad(self, params: Params) -> tuple[Values, Grads]:
        return self._risk(self.X, self.y, getattr(self, "onehot", None), params)  # type: ignore[return-value]

    def value(self, params: Params) -> Values:
        return self._risk(self.X, self.y, getattr(self, "onehot", None), params,
                          with_grad=False)[0]

    def minibatch_value_grad(self, params: Params, batch: Array) -> tuple[Values, Grads]:
        """Value and gradient of each run on its own minibatch, batch (K, B) of row indices.

        Runs go in blocks whose gathered rows fit in a core's L2 cache (CACHE_BLOCK_BYTES):
        both products then re-read the block from cache instead of memory (at K = 32,
        B = 256, p̃ = 51, blocks of 10 runs were ~18% faster than one 3.3 MB gather).
        """
        k, rows = batch.shape
        largest = max(1, CACHE_BLOCK_BYTES // (rows * self.width * 8))
        if k <= largest:
            return self._minibatch_block(params, batch)
        block = -(-k // -(-k // largest))  # equal blocks: 32 runs as 4 × 8, not 10+10+10+2
        values, grads = np.empty(k), np.empty((k, self.dim))
        for start in range(0, k, block):  # a few blocks of runs, not a loop over runs
            part = slice(start, start + block)
            values[part], grads[part] = self._minibatch_block(params[part], batch[part])
        return values, grads

    def _minibatch_block(self, params: Params, batch: Array) -> tuple[Values, Grads]:
        # (K, B, p̃), gathered into a reused buffer: a fresh multi-megabyte array every step
        # costs its page faults; np.take also gathers faster than fancy indexing.
        buffer = self._gather_buffers.get(batch.shape)
        if buffer is None:
            buffer = self._gather_buffers[batch.shape] = np.empty((*batch.shape, self.width))
        # mode="clip": indices come from permutations; with the default mode numpy buffers `out`
        X = np.take(self.X, batch, axis=0, out=buffer, mode="clip")
        y = np.take(self.y, batch, axis=0)
        onehot = np.take(self.onehot, batch, axis=0) if self.model == "softmax" else None
        return self._risk(X, y, onehot, params)

    def make_sampler(self, streams: Array, seed: int, horizon: int | None = None
                     ) -> MinibatchSampler:
        assert self.batch_size is not None
        return MinibatchSampler(self.n, self.batch_size, streams, seed, horizon)

    def hess(self, params: Params) -> Hess:
        k = params.shape[0]
        X = self.X
        if self.model == "linear":
            base = 2.0 * X.T @ X / self.n
            hess = np.broadcast_to(base, (k, self.dim, self.dim)).copy()
        elif self.model == "logistic":
            s = _sigmoid(X @ params.T)  # (n, K)
            hess = np.einsum("ni,nk,nj->kij", X, s * (1.0 - s), X) / self.n
        else:
            W = params.reshape(k, self.width, self.classes)
            z = np.einsum("ni,kic->knc", X, W)
            prob = np.exp(z - _logsumexp(z, axis=2)[:, :, None])
            weighted = np.einsum("ni,nj,knc->kijc", X, X, prob)  # Σ_n x_i x_j p_c
            diag = np.einsum("kijc,ce->kicje", weighted, np.eye(self.classes))
            outer = np.einsum("ni,nj,knc,kne->kicje", X, X, prob, prob)
            hess = ((diag - outer) / self.n).reshape(k, self.dim, self.dim)
        if self.l2:
            hess = hess + self.l2 * np.diag(self.penalty)[None]
        return hess

    def _least_squares(self) -> None:
        """The linear model's minimiser, when the normal equations are positive definite."""
        A = 2.0 * self.X.T @ self.X / self.n + self.l2 * np.diag(self.penalty)
        lam = np.linalg.eigvalsh(A)
        if lam[0] > 1e-10 * max(lam[-1], 1e-300):
            theta = np.linalg.solve(A, 2.0 * self.X.T @ self.y / self.n)
            self.minima = theta[None, :]
            self.f_min = float(self.value(self.minima)[0])

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "model": self.model, "dim": self.dim,
            "variables": list(self.names), "n_samples": self.n, "n_features": self.p,
            "n_classes": self.classes if self.model == "softmax" else None,
            "fit_intercept": self.fit_intercept, "l2": self.l2, "standardize": self.standardize,
            "batch_size": self.batch_size, "stochastic": self.stochastic,
            "layout": ("weights row-major as a (p + 1) × C matrix, intercepts last"
                       if self.model == "softmax" else "weights w_1..w_p, then the intercept b"),
            "minima": None if self.minima is None else self.minima.tolist(),
            "f_min": self.f_min,
        }


def _names(model: str, p: int, classes: int, fit_intercept: bool) -> tuple[str, ...]:
    rows = [f"w{j + 1}" for j in range(p)] + (["b"] if fit_intercept else [])
    if model != "softmax":
        return tuple(rows)
    return tuple(f"{r}_{c}" for r in rows for c in range(classes))


def synthetic(model: str, n_samples: int, n_features: int, noise: float, seed: int,
              n_classes: int = 3, condition: float = 1.0) -> tuple[Array, Array]:
    """Reproducible demo data: Gaussian features (scales 1..√condition), a random truth."""
    rng = np.random.default_rng(seed)
    scales = np.sqrt(condition) ** (np.arange(n_features) / max(n_features - 1, 1))
    X = rng.standard_normal((n_samples, n_features)) * scales
    if model == "softmax":
        W = rng.standard_normal((n_features, n_classes))
        scores = X @ W + noise * rng.standard_normal((n_samples, n_classes))
        return X, np.argmax(scores, axis=1).astype(float)
    w = rng.standard_normal(n_features)
    signal = X @ w + 0.5
    if model == "linear":
        return X, signal + noise * rng.standard_normal(n_samples)
    return X, (signal + noise * rng.standard_normal(n_samples) > 0).astype(float)


def dataset_loss(spec: dict[str, Any], *, max_values: int = 2_000_000, max_dim: int = 200
                 ) -> DatasetLoss:
    """Validate a dataset `loss` object (data inline or synthetic) and build the loss."""
    model = spec["model"]
    inline, generated = spec.get("X") is not None, spec.get("synthetic") is not None
    if inline == generated:
        raise DatasetError("Give either X and y, or synthetic, for a dataset loss",
                           loc=["synthetic" if generated else "X"])
    n_classes = None

    def width(features: int) -> int:
        return features + (1 if spec.get("fit_intercept", True) else 0)

    if generated:
        syn = spec["synthetic"]
        size = syn["n_samples"] * syn["n_features"]
        _limit(size, max_values)
        classes = syn.get("n_classes", 3) if model == "softmax" else 1
        _check_dim(width(syn["n_features"]) * classes, max_dim)
        _limit(syn["n_samples"] * classes, max_values)
        X, y = synthetic(model, syn["n_samples"], syn["n_features"], syn["noise"], syn["seed"],
                         syn.get("n_classes", 3), syn.get("condition", 1.0))
        n_classes = syn.get("n_classes", 3) if model == "softmax" else None
    else:
        rows = spec["X"]
        _check_dim(width(len(rows[0]) if rows and rows[0] else 0), max_dim)
        if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
            raise DatasetError("X must be a non-empty n×p table with the same number of "
                               "features in every row", loc=["X"])
        _limit(len(rows) * len(rows[0]), max_values)
        X = np.asarray(rows, dtype=float)
        if spec.get("y") is None:
            raise DatasetError("y is required with X", loc=["y"])
        y = np.asarray(spec["y"], dtype=float)
        if y.shape != (X.shape[0],):
            raise DatasetError(f"y has {y.size} values but X has {X.shape[0]} rows", loc=["y"])
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise DatasetError("X and y must be finite numbers", loc=["X"])
        _check_labels(model, y)
        if model == "softmax":  # the class count sets the parameter count: check it first
            _check_dim(width(X.shape[1]) * (int(y.max()) + 1), max_dim)
    batch = spec.get("batch_size")
    if batch is not None and batch > X.shape[0]:
        raise DatasetError(f"batch_size {batch} is larger than the {X.shape[0]} samples",
                           loc=["batch_size"])
    loss = DatasetLoss(model, X, y, l2=spec.get("l2", 0.0),
                       fit_intercept=spec.get("fit_intercept", True),
                       standardize=spec.get("standardize", False), batch_size=batch,
                       n_classes=n_classes)
    return loss


def _check_dim(dim: int, max_dim: int) -> None:
    if dim > max_dim:
        raise LimitExceededError(f"The model has {dim} parameters, over the limit of "
                                 f"{max_dim} (setting OPTIM_MAX_DIM)", limit="max_dim",
                                 value=dim, maximum=max_dim)


def _limit(size: int, max_values: int) -> None:
    if size > max_values:
        raise LimitExceededError(
            f"The data has {size:,} values (n × p), over the limit of {max_values:,} (setting "
            "OPTIM_MAX_DATASET_VALUES)", limit="max_dataset_values", value=size,
            maximum=max_values)


def _check_labels(model: str, y: Array) -> None:
    if model == "logistic" and not np.all((y == 0) | (y == 1)):
        raise DatasetError("Logistic labels must be 0 or 1", loc=["y"])
    if model == "softmax":
        if not np.all((y >= 0) & (y == np.round(y))):
            raise DatasetError("Softmax labels must be class indices 0, 1, …, C−1", loc=["y"])
        if int(y.max()) < 1:
            raise DatasetError("Softmax needs at least two classes in y", loc=["y"])
