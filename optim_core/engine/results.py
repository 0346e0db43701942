"""Per-run results, declared once: the fields both engine paths fill as runs stop, and the one
place a RunBatch is built from them.

The vectorised loop writes the stopped rows of every field at once (`_Loop._finish` gives a
value for each name here, or fails with KeyError); the float path gives each run's values as
a mapping with the same names. A new result is one line here plus its value in each path,
and a test fails if either path leaves a field out. What follows from these (steps_to_tol,
grad_evals, sign_flips, step_pairs) is derived in `run_batch`, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from optim_core.engine.recording import Trajectory
from optim_core.engine.status import at_tolerance
from optim_core.types import Array

if TYPE_CHECKING:
    from optim_core.engine.groups import RunGroup


@dataclass(slots=True)
class RunBatch:
    """Everything the engine measured, one row per run (rows ordered by group)."""

    starts: Array  # (K, d)
    group_index: Array  # (K,) which group each row belongs to
    groups: list[RunGroup]
    status: Array  # (K,) Status codes
    reason: Array  # (K,) Reason codes
    steps: Array  # (K,) updates applied
    final_params: Array  # (K, d)
    final_loss: Array  # (K,)
    final_grad_norm: Array  # (K,)
    initial_loss: Array  # (K,)
    best_loss: Array  # (K,)
    steps_to_tol: Array  # (K,) −1 where the run never met grad_tol / loss_tol
    path_length: Array  # (K,)
    sign_flips: Array  # (K,) summed fraction of coordinates whose step flipped sign
    step_pairs: Array  # (K,) number of consecutive step pairs compared
    recent_losses: Array  # (K, RATE_WINDOW) the last losses, ring-ordered by step
    grad_evals: Array  # (K,)
    hess_evals: Array  # (K,)
    counters: dict[str, Array]  # rule counters (newton_steps, …), (K,)
    trajectories: list[Trajectory] | None
    elapsed_s: float
    engine_steps: int
    stochastic: bool = False
    extras: dict[str, Array] = field(default_factory=dict)
    path: str = ""  # the engine that computed it: floats | vectorised | fused
    compile_s: float = 0.0  # fused kernels compiled (or loaded from the disk cache) for it


# What a RunBatch holds besides its per-run arrays (those come from the plan or the batch).
BATCH_WIDE = frozenset({"starts", "group_index", "groups", "counters", "trajectories",
                        "elapsed_s", "engine_steps", "stochastic", "extras", "path",
                        "compile_s"})
# RunBatch's per-run arrays: what a shard's result carries back to be merged.
PER_RUN_ARRAYS = tuple(f.name for f in fields(RunBatch) if f.name not in BATCH_WIDE)


@dataclass(frozen=True, slots=True)
class ResultField:
    """One per-run result: its dtype, its value before the run stops, and its width
    ('' one number a run, 'd' one per coordinate, 'window' the rate window's losses)."""

    name: str
    dtype: Any = float
    fill: float = np.nan
    width: str = ""


RESULT_FIELDS: tuple[ResultField, ...] = (
    ResultField("status", np.int8, 0),
    ResultField("reason", np.int8, 0),
    ResultField("steps", np.int64, 0),  # updates applied
    ResultField("final_params", width="d"),
    ResultField("final_loss"),
    ResultField("final_grad_norm"),
    ResultField("final_lr"),
    ResultField("initial_loss"),
    ResultField("best_loss"),
    ResultField("path_length", fill=0.0),
    ResultField("flips", fill=0.0),  # sign flips of a step's coordinates, summed
    ResultField("recent_losses", width="window"),  # the last losses, oldest first
    ResultField("hess_evals", fill=0.0),
    ResultField("final_step_size"),  # the α of the last step
    ResultField("final_evals", fill=0.0),  # function evaluations, as the trajectory counts them
)
NAMES = tuple(f.name for f in RESULT_FIELDS)


def empty_results(k: int, d: int, window: int) -> dict[str, Array]:
    """Every field for k runs, at its fill value."""
    shapes = {"": (k,), "d": (k, d), "window": (k, window)}
    return {f.name: np.full(shapes[f.width], f.fill, dtype=f.dtype) for f in RESULT_FIELDS}


WRITTEN = object()  # a field's value in write_rows that the caller wrote into results itself


def write_rows(results: dict[str, Array], rows: Array | slice,
               finished: Mapping[str, Any]) -> None:
    """Store the stopped rows' value of every field (KeyError: a field left out or unknown)."""
    if len(finished) != len(NAMES):
        raise KeyError(f"results need exactly {', '.join(NAMES)}; got {', '.join(finished)}")
    for name in NAMES:
        value = finished[name]
        if value is not WRITTEN:
            results[name][rows] = value


def results_from_runs(runs: Sequence[Mapping[str, Any]], d: int, window: int
                      ) -> dict[str, Array]:
    """The fields from one mapping per run (the float path), one array each: the one-number
    fields in one table per kind (an np.array call costs more than K = 1 holds data)."""
    if not runs:
        return empty_results(0, d, window)
    if len(runs[0]) != len(NAMES):
        raise KeyError(f"results need exactly {', '.join(NAMES)}; got {', '.join(runs[0])}")
    k = len(runs)
    results: dict[str, Array] = {}
    for kind, names, casts in _SCALARS:
        table = np.array([[run[n] for n in names] for run in runs], dtype=kind).T.copy()
        for row, name, cast in zip(table, names, casts, strict=True):
            results[name] = row if cast is None else row.astype(cast)
    for name in _WIDE:
        results[name] = np.array([run[name] for run in runs], dtype=float).reshape(k, -1)
    return results


def _scalar_tables() -> list[tuple[type, list[str], list[Any]]]:
    """The one-number fields by the kind of table that holds them (int64 or float64), each
    with the dtype it is cast to (None: already that)."""
    tables = []
    for kind in (np.int64, np.float64):
        fields = [f for f in RESULT_FIELDS if not f.width
                  and np.issubdtype(f.dtype, np.integer) == (kind is np.int64)]
        tables.append((kind, [f.name for f in fields],
                       [None if np.dtype(f.dtype) == kind else f.dtype for f in fields]))
    return tables


_SCALARS = _scalar_tables()
_WIDE = [f.name for f in RESULT_FIELDS if f.width]  # float, (k, d) or (k, window)


def run_batch(results: dict[str, Array], *, starts: Array, groups: list[RunGroup],
              counters: dict[str, Array], trajectories: list[Trajectory] | None,
              elapsed_s: float, engine_steps: int, stochastic: bool) -> RunBatch:
    """The RunBatch of both paths, with what follows from the fields derived here."""
    steps, d = results["steps"], starts.shape[1]
    return RunBatch(
        starts=starts, group_index=np.repeat(np.arange(len(groups)), [g.size for g in groups]),
        groups=groups, status=results["status"], reason=results["reason"], steps=steps,
        final_params=results["final_params"], final_loss=results["final_loss"],
        final_grad_norm=results["final_grad_norm"], initial_loss=results["initial_loss"],
        best_loss=results["best_loss"],
        steps_to_tol=np.where(at_tolerance(results["reason"]), steps, -1),
        path_length=results["path_length"], sign_flips=results["flips"] / max(d, 1),
        step_pairs=np.maximum(steps - 1, 0).astype(float),
        recent_losses=results["recent_losses"], grad_evals=steps + 1.0,
        hess_evals=results["hess_evals"], counters=counters, trajectories=trajectories,
        elapsed_s=elapsed_s, engine_steps=engine_steps, stochastic=stochastic,
    )
