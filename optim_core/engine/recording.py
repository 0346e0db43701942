"""Trajectory buffers whose memory is bounded by what is recorded, not by the step count.

Steps t ≡ 0 (mod stride) are written into preallocated (C, K, …) buffers. When a buffer
fills, two rows of every three are dropped and the stride triples, so at most
C = 3·max_points rows are ever held. Each run's final point is kept separately, and at
assembly the run's points are thinned evenly to max_points with the first and the last step
kept.

Why threes and not halves: a zig-zag (a coordinate flipping sign every step, as SGD does
near its stability limit) is a period-2 signal. Keeping every other row, or any even
stride, samples it at one phase only and draws a smooth curve. The stride here stays odd
(1, 3, 9, …; a planned stride is made odd), so consecutive rows alternate between even and
odd steps, and the final thinning picks indices of alternating parity (`thin_indices`):
every pair of consecutive points in the answer is an odd number of steps apart, and the
zig-zag stays visible. A user's own `record.every` is kept as given.

A run's points depend only on its own steps, never on how long other runs in the batch went
on (a batch split into shards records the same points): the stride at step t is a function
of t alone, and a run that stopped is assembled (`retire`) before the next decimation, with
the points it had when it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from optim_core.types import Array

FIELDS = ("params", "loss", "grad_norm", "lr", "step_size", "evals")
# the fields recorded unless asked otherwise, and those the small-batch path records (a batch
# asking for more takes the vectorised one)
FLOAT_PATH_FIELDS = DEFAULT_FIELDS = FIELDS[:4]


@dataclass(frozen=True, slots=True)
class RecordSpec:
    every: int = 1
    max_points: int = 1000
    fields: tuple[str, ...] = DEFAULT_FIELDS
    enabled: bool = True


@dataclass(slots=True)
class Trajectory:
    step: Array  # (T,) int
    params: Array | None = None  # (T, d)
    loss: Array | None = None  # (T,)
    grad_norm: Array | None = None  # (T,)
    lr: Array | None = None  # (T,)
    step_size: Array | None = None  # (T,) the α of the step that led to each point
    evals: Array | None = None  # (T,) function evaluations made up to each point

    def as_dict(self) -> dict[str, Array]:
        out: dict[str, Array] = {"step": self.step}
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(slots=True)
class Recorder:
    """Shared buffers for K runs of dimension d."""

    n_runs: int
    dim: int
    spec: RecordSpec
    max_steps: int
    planned: bool = False  # stride fixed up front (each recorded step costs extra work)
    stride: int = 0
    count: int = 0
    steps: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    buffers: dict[str, Array] = field(default_factory=dict)
    # runs that stopped since the last decimation, with the engine's (K,) final arrays
    stopped: list[Array] = field(default_factory=list)
    final_steps: Array | None = None
    finals: dict[str, Array] | None = None
    retired: dict[int, Trajectory] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stride = max(1, self.spec.every)
        if self.planned:  # about max_points writes in all, instead of record-then-thin
            per_point = -(-self.max_steps // max(self.spec.max_points - 1, 1))
            if per_point > self.stride:
                self.stride = per_point | 1  # odd: see the module docstring
        capacity = buffer_capacity(self.spec, self.max_steps, self.stride)
        self.steps = np.zeros(capacity, dtype=np.int64)
        if not self.spec.enabled:
            return
        for name in self.spec.fields:
            shape = (capacity, self.n_runs, self.dim) if name == "params" else (
                capacity, self.n_runs)
            # empty, not nan-filled: assembly reads a run's points only up to its final step,
            # all of which were written, and a fill would touch every page up front
            self.buffers[name] = np.empty(shape)

    def due(self, t: int) -> bool:
        return self.spec.enabled and t % self.stride == 0

    def write(self, t: int, rows: Array | slice, values: dict[str, Array]) -> None:
        """Record step t for the active `rows`, a slice while all are active (`due(t)` only)."""
        if self.count == len(self.steps):
            self._decimate()
            if t % self.stride:
                return
        i = self.count
        self.steps[i] = t
        for name, buffer in self.buffers.items():
            buffer[i, rows] = values[name]
        self.count += 1

    def retire(self, rows: Array, final_steps: Array, finals: dict[str, Array]) -> None:
        """`rows` stopped: their final step and values are in the (K,) arrays given, which
        the engine keeps unchanged for stopped rows. Assembled at the next decimation."""
        if self.spec.enabled and rows.size:
            self.stopped.append(rows)
            self.final_steps, self.finals = final_steps, finals

    def _decimate(self) -> None:
        if self.stopped:  # assemble them with the points they had when they stopped
            rows = np.concatenate(self.stopped)
            assert self.final_steps is not None and self.finals is not None
            self.retired.update(self._assemble(rows, self.final_steps, self.finals, copy=True))
            self.stopped.clear()
        keep = -(-self.count // DECIMATION)
        self.steps[:keep] = self.steps[: self.count : DECIMATION]
        for buffer in self.buffers.values():
            buffer[:keep] = buffer[: self.count : DECIMATION]
        self.count = keep
        self.stride *= DECIMATION

    def assemble(self, final_steps: Array, finals: dict[str, Array]) -> list[Trajectory]:
        """One Trajectory per run, ending at its final step, thinned to max_points."""
        out: list[Trajectory | None] = [None] * self.n_runs
        rest = np.ones(self.n_runs, dtype=bool)
        for row, trajectory in self.retired.items():
            out[row] = trajectory
            rest[row] = False
        for row, trajectory in self._assemble(np.flatnonzero(rest), final_steps, finals).items():
            out[row] = trajectory
        return out  # type: ignore[return-value]

    def _assemble(self, rows: Array, final_steps: Array, finals: dict[str, Array],
                  copy: bool = False) -> dict[int, Trajectory]:
        """The trajectories of `rows` from the buffers as they are now (copies when the
        buffers will change again)."""
        out: dict[int, Trajectory] = {}
        recorded = self.steps[: self.count]
        steps_of = final_steps[rows]
        upto = np.searchsorted(recorded, steps_of, side="right")  # points before, per row
        last = recorded[np.maximum(upto - 1, 0)] if self.count else steps_of
        append_final = (upto == 0) | (last != steps_of)
        whole = upto + append_final <= self.spec.max_points
        if whole.any():
            self._assemble_whole(rows[whole], steps_of[whole], finals, upto[whole],
                                 append_final[whole], copy, out)
        for final_step in np.unique(steps_of[~whole]):
            self._assemble_thinned(rows[~whole & (steps_of == final_step)], int(final_step),
                                   finals, recorded, out)
        return out

    def _assemble_whole(self, rows: Array, final_steps: Array, finals: dict[str, Array],
                        upto: Array, append_final: Array, copy: bool,
                        out: dict[int, Trajectory]) -> None:
        """Runs that keep every point: views into the buffers, no copy (unless `copy`). A
        run's final point, when its last step was not recorded, goes into the buffer slot
        after its last recorded point: that slot belongs to steps the run never took."""
        capacity = len(self.steps)
        recorded = self.steps[: self.count]
        room = (upto < capacity) & (not copy)
        into_buffer = append_final & room
        for name, buffer in self.buffers.items():
            buffer[upto[into_buffer], rows[into_buffer]] = finals[name][rows[into_buffer]]
        per_run = {name: np.moveaxis(buffer, 1, 0) for name, buffer in self.buffers.items()}
        step_arrays: dict[int, Array] = {}  # runs that stopped at the same step share one
        for row, end, final, append, has_room in zip(
                rows.tolist(), upto.tolist(), final_steps.tolist(), append_final.tolist(),
                room.tolist(), strict=True):
            steps = step_arrays.get(final)
            if steps is None:
                steps = (np.append(recorded[:end], final) if append
                         else recorded[:end].copy() if copy else recorded[:end])
                step_arrays[final] = steps
            n = end + append
            if has_room or not append:
                columns = {name: view[row, :n].copy() if copy else view[row, :n]
                           for name, view in per_run.items()}
            else:  # no slot left after its points: copy them and the final point
                columns = {name: np.concatenate([view[row, :end], finals[name][row][None]])
                           for name, view in per_run.items()}
            out[row] = Trajectory(step=steps, **columns)

    def _assemble_thinned(self, rows: Array, final_step: int, finals: dict[str, Array],
                          recorded: Array, out: dict[int, Trajectory]) -> None:
        """Runs that stopped at `final_step` with more than max_points: thinned evenly."""
        upto = int(np.searchsorted(recorded, final_step, side="right"))
        append_final = upto == 0 or recorded[upto - 1] != final_step
        n = upto + int(append_final)
        chosen = thin_indices(n, self.spec.max_points)
        from_buffer = chosen[chosen < upto]
        steps = recorded[from_buffer]
        if append_final:
            steps = np.append(steps, final_step)
        columns: dict[str, Array] = {}
        for name, buffer in self.buffers.items():
            part = np.moveaxis(buffer[from_buffer][:, rows], 1, 0)  # (R, T', …)
            if append_final:
                part = np.concatenate([part, finals[name][rows][:, None]], axis=1)
            columns[name] = part
        # one row view per run and field by iterating each (R, T', …) array, then one
        # positional Trajectory per run: ~2.5 µs a run less than indexing each field by run
        per_field = [list(columns[name]) if name in columns else [None] * rows.size
                     for name in FIELDS]
        for row, *values in zip(rows.tolist(), *per_field, strict=True):
            out[row] = Trajectory(steps, *values)


DECIMATION = 3  # odd, so the stride stays odd (see the module docstring)


def buffer_capacity(spec: RecordSpec, max_steps: int, stride: int) -> int:
    """Rows a buffer holds: every point up to DECIMATION·max_points, so after a decimation
    at least max_points remain."""
    expected = max_steps // stride + 1
    return max(2, min(expected, DECIMATION * spec.max_points))


def thin_indices(n: int, max_points: int) -> Array:
    """At most `max_points` of the indices 0 … n − 1, evenly spread, first and last kept,
    consecutive ones of alternating parity (odd gaps) except possibly at the last."""
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    targets = np.linspace(0, n - 1, max_points)[:-1]
    parity = np.arange(max_points - 1) % 2
    nearest = parity + 2 * np.floor((targets - parity) / 2 + 0.5)  # nearest of that parity
    chosen = np.clip(nearest, 0, n - 2).astype(np.int64)
    return np.unique(np.append(chosen, n - 1))


@dataclass(slots=True)
class PointLog:
    """One run's recorded points as Python lists (the small-batch path), with the Recorder's
    decimation rule, so a run keeps the same points on either path."""

    spec: RecordSpec
    dim: int
    max_steps: int
    stride: int = 0
    capacity: int = 0
    steps: list[int] = field(default_factory=list)
    rows: list[tuple[list[float], float, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stride = max(1, self.spec.every)
        self.capacity = buffer_capacity(self.spec, self.max_steps, self.stride)

    def write(self, t: int, params: list[float], loss: float, grad_norm: float,
              lr: float) -> None:
        """Record step t (call only when t % stride == 0)."""
        if len(self.steps) == self.capacity:
            self.steps[:] = self.steps[::DECIMATION]  # in place: the float loop holds them
            self.rows[:] = self.rows[::DECIMATION]
            self.stride *= DECIMATION
            if t % self.stride:
                return
        self.steps.append(t)
        self.rows.append((params, loss, grad_norm, lr))

    def trajectory(self, final_step: int, finals: tuple[list[float], float, float, float]
                   ) -> Trajectory:
        """The run's Trajectory, assembled (thinned, final point appended) as the Recorder does."""
        append_final = not self.steps or self.steps[-1] != final_step
        if len(self.steps) + append_final <= self.spec.max_points:  # nothing to thin
            rows = [*self.rows, finals] if append_final else self.rows
            points, *scalars = zip(*rows, strict=True)  # one tuple per field
            columns = {name: np.array(scalars[j - 1], dtype=float)
                       for j, name in enumerate(FLOAT_PATH_FIELDS)
                       if j and name in self.spec.fields}
            if "params" in self.spec.fields:  # flat, then shaped: half of np.array's time
                columns["params"] = np.fromiter(chain.from_iterable(points), float,
                                                count=len(rows) * self.dim
                                                ).reshape(len(rows), self.dim)
            steps = [*self.steps, final_step] if append_final else self.steps
            return Trajectory(step=np.array(steps, dtype=np.int64), **columns)
        recorder = Recorder(1, self.dim, self.spec, self.max_steps)
        count = len(self.steps)
        recorder.count, recorder.stride = count, self.stride
        recorder.steps[:count] = self.steps
        final_columns: dict[str, Array] = {}
        for j, name in enumerate(FLOAT_PATH_FIELDS):
            if name not in recorder.buffers:
                continue
            if count:
                recorder.buffers[name][:count, 0] = [row[j] for row in self.rows]
            final_columns[name] = np.array([finals[j]], dtype=float)
        return recorder.assemble(np.array([final_step]), final_columns)[0]
