"""The answers' shape, declared once: what optimize, compare, sweep, landscape and analyze
return, field by field.

Typed dictionaries, because an answer is built as plain dicts of columns converted at once
(see reports.py) and written by orjson straight from them: a class per run would cost more
than the run at 4,096 runs and would change the JSON (a dataclass always writes every field;
here `trajectory` is absent when nothing is recorded). The service declares these types as
its routes' response models (so they are its OpenAPI document) and checks every answer it
sends against them; the client's pydantic models are checked against that document.

Numbers are JSON numbers or null (null for NaN and ±inf); where a value is built as a NumPy
array or scalar (trajectories, landscape grids), orjson writes it as the declared list or
number, and the declared type is that JSON.
"""

from __future__ import annotations

from typing import Any, NotRequired

from typing_extensions import TypedDict  # pydantic takes only this one on Python 3.11

Number = float | None


class Final(TypedDict):
    params: list[Number]
    loss: Number
    grad_norm: Number


class Curvature(TypedDict):
    eigenvalues: list[Number]
    condition_number: Number
    kind: str | None


class Diagnostics(TypedDict):
    initial_loss: Number
    best_loss: Number
    loss_reduction: Number
    steps_to_tol: int | None
    oscillation: Number
    path_efficiency: Number
    path_length: Number
    convergence_rate: Number
    final_curvature: Curvature | None
    distance_to_minimum: Number


class Finding(TypedDict):
    code: str
    message: str
    data: dict[str, Any]


class Trajectory(TypedDict):
    """Recorded points: `step` always, each other field when it was asked for."""

    step: list[int]
    params: NotRequired[list[list[Number]]]
    loss: NotRequired[list[Number]]
    grad_norm: NotRequired[list[Number]]
    lr: NotRequired[list[Number]]
    step_size: NotRequired[list[Number]]  # the α of the step that led to each point
    evals: NotRequired[list[Number]]  # function evaluations up to each point


class Run(TypedDict):
    start: list[float]
    label: str
    optimizer: str
    status: str
    reason: str
    steps: int
    final: Final
    diagnostics: Diagnostics
    work: dict[str, int]
    trajectory: NotRequired[Trajectory]
    findings: list[Finding]
    at_bound: NotRequired[bool]  # with bounds: the run ended on the box's surface


class Meta(TypedDict):
    runs: int
    max_steps: int
    engine_steps: int
    steps_computed: int
    seed: int | None
    elapsed_ms: float
    optimizers: NotRequired[list[dict[str, Any]]]
    engine: NotRequired[str]  # floats | vectorised | fused (see docs/operations.md)
    compile_ms: NotRequired[float]  # fused: kernels compiled or loaded from disk for it


class OptimizeResponse(TypedDict):
    loss: dict[str, Any]
    runs: list[Run]
    meta: Meta
    # only when some run was stopped before it ended on its own: `cancelled` (a job's cancel)
    # or `time_limit` (the time budget), what the runs computed until then
    partial: NotRequired[bool]
    partial_reason: NotRequired[str]


class SummaryEntry(TypedDict):
    label: str
    optimizer: dict[str, Any]
    runs: int
    converged: int
    diverged: int
    median_steps_to_tol: Number
    median_evals_to_tol: Number  # function evaluations
    best_final_loss: Number
    median_final_loss: Number
    rank: int


class CompareResponse(OptimizeResponse):
    summary: list[SummaryEntry]
    findings: list[Finding]


class SweepRow(TypedDict):
    hyperparameters: dict[str, Any]
    success_rate: float
    divergence_rate: float
    median_final_loss: Number
    median_steps_to_tol: Number


class SweepBest(TypedDict):
    index: int | None
    hyperparameters: dict[str, Any] | None
    reason: str


class SweepResponse(TypedDict):
    loss: dict[str, Any]
    rows: list[SweepRow]
    best: SweepBest
    runs: NotRequired[list[Run]]
    meta: Meta
    partial: NotRequired[bool]  # as in OptimizeResponse
    partial_reason: NotRequired[str]


class LandscapeResponse(TypedDict):
    x: list[float]
    y: list[float]
    z: list[list[Number]]
    axes: list[int]
    variables: list[str]
    loss: dict[str, Any]


class PointAnalysis(TypedDict):
    point: list[float]
    value: Number
    gradient: list[Number]
    grad_norm: Number
    hessian: list[list[Number]]
    eigenvalues: list[Number] | None
    condition_number: Number
    kind: str | None
    theory: dict[str, Any] | None


class AnalyzeResponse(TypedDict):
    loss: dict[str, Any]
    points: list[PointAnalysis]


class TuneTrial(TypedDict):
    """One setting run from every start: `objective` is the median over the starts (null:
    infinite, e.g. never met the tolerance, or diverged)."""

    label: str
    hyperparameters: dict[str, Any]
    objective: Number
    status: str  # completed | pruned | diverged
    pruned_at: int | None
    success_rate: float


class TuneBest(TypedDict):
    label: str
    hyperparameters: dict[str, Any] | None
    objective: Number
    trial: int | None  # index into `trials`


class TuneResponse(TypedDict):
    loss: dict[str, Any]
    trials: list[TuneTrial]
    best: list[TuneBest]
    compare: CompareResponse | None
    findings: list[Finding]
    meta: dict[str, Any]
    partial: NotRequired[bool]
    partial_reason: NotRequired[str]


class BasinsResponse(TypedDict):
    loss: dict[str, Any]
    x: list[float]
    y: list[float]
    labels: list[list[int]]  # ny × nx: index into `minima`, −1 not converged, −2 diverged
    minima: list[list[float]]
    steps: list[list[int]]
    share: dict[str, float]  # label (as text) → fraction of the grid
    meta: dict[str, Any]
    partial: NotRequired[bool]
    partial_reason: NotRequired[str]


class EcdfCurve(TypedDict):
    """COCO's runtime ECDF: the share of (loss, start, target) triples reached within
    `evals[i]` evaluations."""

    label: str
    evals: list[int]
    fraction: list[float]


class ProfileCurve(TypedDict):
    """Dolan–Moré: the share of problems solved within `tau[i]` times the best optimizer's
    evaluations on that problem."""

    label: str
    tau: list[float]
    fraction: list[float]


class BenchmarkRow(TypedDict):
    loss: str
    label: str
    runs: int
    solved: list[float]  # per target: the share of starts that reached it
    median_evals: list[Number]  # per target: over the starts that reached it
    best_gap: Number  # the lowest f − f_min reached


class BenchmarkResponse(TypedDict):
    targets: list[float]
    losses: list[str]
    ecdf: list[EcdfCurve]
    profile: list[ProfileCurve]
    table: list[BenchmarkRow]
    meta: dict[str, Any]
    partial: NotRequired[bool]
    partial_reason: NotRequired[str]
