"""The client's view of the answers as pydantic models, mirroring the service's OpenAPI
document (openapi/openapi.json, whose answer types the service takes from optim_core.answers).

They import only pydantic, so the client stays free of the server's dependencies. A test
holds them to the document: every answer schema has a model of the same name declaring the
same fields, none required that the service may leave out, each accepting at least what the
service sends. Unknown fields are kept (extra="allow") and fields newer servers always send
may default here, so a newer server never breaks an older client.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from optim_client.tables import RowsTables, RunsTables, TrialsTables


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Final(_Model):
    params: list[float | None]
    loss: float | None
    grad_norm: float | None


class Curvature(_Model):
    eigenvalues: list[float | None]
    condition_number: float | None
    kind: str | None


class Diagnostics(_Model):
    initial_loss: float | None = None
    best_loss: float | None
    loss_reduction: float | None
    steps_to_tol: int | None
    oscillation: float | None
    path_efficiency: float | None
    convergence_rate: float | None
    path_length: float | None = None
    final_curvature: Curvature | None
    distance_to_minimum: float | None


class Finding(_Model):
    code: str
    message: str
    data: dict[str, Any]


class Trajectory(_Model):
    step: list[int]
    params: list[list[float | None]] | None = None
    loss: list[float | None] | None = None
    grad_norm: list[float | None] | None = None
    lr: list[float | None] | None = None
    step_size: list[float | None] | None = None
    evals: list[float | None] | None = None


class Run(_Model):
    start: list[float]
    label: str
    optimizer: str
    status: str
    reason: str
    steps: int
    final: Final
    diagnostics: Diagnostics
    work: dict[str, int]
    findings: list[Finding]
    trajectory: Trajectory | None = None
    at_bound: bool | None = None  # with bounds: whether the run ended on the box's surface


class Meta(_Model):
    runs: int
    max_steps: int
    engine_steps: int
    steps_computed: int
    seed: int | None
    elapsed_ms: float
    optimizers: list[dict[str, Any]] | None = None
    engine: str | None = None  # floats | vectorised | fused
    compile_ms: float | None = None  # fused kernels compiled or loaded for this answer


class OptimizeResponse(RunsTables, _Model):
    loss: dict[str, Any]
    runs: list[Run]
    meta: Meta
    partial: bool | None = None  # True when a cancel or the time budget stopped runs early
    partial_reason: str | None = None  # cancelled | time_limit


class SummaryEntry(_Model):
    label: str
    optimizer: dict[str, Any]
    runs: int
    converged: int
    diverged: int
    median_steps_to_tol: float | None
    median_evals_to_tol: float | None = None
    best_final_loss: float | None
    median_final_loss: float | None
    rank: int


class CompareResponse(OptimizeResponse):
    summary: list[SummaryEntry]
    findings: list[Finding]


class SweepRow(_Model):
    hyperparameters: dict[str, Any]
    success_rate: float
    divergence_rate: float
    median_final_loss: float | None
    median_steps_to_tol: float | None


class SweepBest(_Model):
    index: int | None
    hyperparameters: dict[str, Any] | None
    reason: str


class SweepResponse(RowsTables, _Model):
    loss: dict[str, Any]
    rows: list[SweepRow]
    best: SweepBest
    runs: list[Run] | None = None
    meta: Meta
    partial: bool | None = None
    partial_reason: str | None = None


class TuneTrial(_Model):
    label: str
    hyperparameters: dict[str, Any]
    objective: float | None
    status: str
    pruned_at: int | None
    success_rate: float


class TuneBest(_Model):
    label: str
    hyperparameters: dict[str, Any] | None
    objective: float | None
    trial: int | None


class TuneResponse(TrialsTables, _Model):
    loss: dict[str, Any]
    trials: list[TuneTrial]
    best: list[TuneBest]
    compare: CompareResponse | None
    findings: list[Finding]
    meta: dict[str, Any]
    partial: bool | None = None
    partial_reason: str | None = None


class BasinsResponse(_Model):
    loss: dict[str, Any]
    x: list[float]
    y: list[float]
    labels: list[list[int]]
    minima: list[list[float]]
    steps: list[list[int]]
    share: dict[str, float]
    meta: dict[str, Any]
    partial: bool | None = None
    partial_reason: str | None = None


class EcdfCurve(_Model):
    label: str
    evals: list[int]
    fraction: list[float]


class ProfileCurve(_Model):
    label: str
    tau: list[float]
    fraction: list[float]


class BenchmarkRow(_Model):
    loss: str
    label: str
    runs: int
    solved: list[float]
    median_evals: list[float | None]
    best_gap: float | None


class BenchmarkResponse(_Model):
    targets: list[float]
    losses: list[str]
    ecdf: list[EcdfCurve]
    profile: list[ProfileCurve]
    table: list[BenchmarkRow]
    meta: dict[str, Any]
    partial: bool | None = None
    partial_reason: str | None = None


class LandscapeResponse(_Model):
    x: list[float]
    y: list[float]
    z: list[list[float | None]]
    axes: list[int]
    variables: list[str]
    loss: dict[str, Any]


class PointAnalysis(_Model):
    point: list[float]
    value: float | None
    gradient: list[float | None]
    grad_norm: float | None
    hessian: list[list[float | None]]
    eigenvalues: list[float | None] | None
    condition_number: float | None
    kind: str | None
    theory: dict[str, Any] | None


class AnalyzeResponse(_Model):
    loss: dict[str, Any]
    points: list[PointAnalysis]


class Progress(_Model):
    steps_done: int | None = None
    steps_total: int | None = None
    runs_active: int | None = None
    fraction: float | None = None
    eta_s: float | None = None


class JobLinks(_Model):
    self: str
    result: str
    events: str
    cancel: str | None = None


class Job(_Model):
    id: str
    kind: str  # optimize | compare | sweep
    status: str  # queued | running | succeeded | failed | cancelled
    progress: Progress
    attempts: int = 0
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: dict[str, Any] | None = None
    reason: str | None = None
    cancel_requested: bool | None = None
    links: JobLinks

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


class JobList(_Model):
    jobs: list[Job]
    next_cursor: str | None = None


class JobEnd(_Model):
    id: str
    status: str
    reason: str | None = None  # shutdown | store-unavailable | deleted
    detail: str | None = None


class JobEvent(_Model):
    event: str  # progress | end
    data: dict[str, Any]


class KeyLimits(_Model):
    rate: float | None = None
    compute_seconds: float | None = None
    max_active_jobs: int | None = None
    max_run_steps: int | None = None


class KeyInfo(_Model):
    id: str
    name: str
    scopes: list[str]
    created_at: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    limits: KeyLimits


class KeyCreated(KeyInfo):
    key: str  # shown this once


class KeyList(_Model):
    keys: list[KeyInfo]


# The client's names for the answers (the service declares the *Response names).
OptimizeResult = OptimizeResponse
CompareResult = CompareResponse
SweepResult = SweepResponse
LandscapeResult = LandscapeResponse
AnalyzeResult = AnalyzeResponse
TuneResult = TuneResponse
BasinsResult = BasinsResponse
BenchmarkResult = BenchmarkResponse

RESULT_TYPES: dict[str, type[_Model]] = {
    "optimize": OptimizeResult, "compare": CompareResult, "sweep": SweepResult,
    "tune": TuneResult, "benchmark": BenchmarkResult,
}
