"""Response models: declared so the OpenAPI document describes the answers (the answers
themselves are written by orjson straight from NumPy)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Final(BaseModel):
    params: list[float | None]
    loss: float | None
    grad_norm: float | None


class Curvature(BaseModel):
    eigenvalues: list[float | None]
    condition_number: float | None
    kind: str | None


class Diagnostics(BaseModel):
    initial_loss: float | None = None
    best_loss: float | None
    loss_reduction: float | None
    steps_to_tol: int | None
    oscillation: float | None
    path_efficiency: float | None
    path_length: float | None = None
    convergence_rate: float | None
    final_curvature: Curvature | None
    distance_to_minimum: float | None


class Finding(BaseModel):
    code: str
    message: str
    data: dict[str, Any]


class Trajectory(BaseModel):
    step: list[int]
    params: list[list[float | None]] | None = None
    loss: list[float | None] | None = None
    grad_norm: list[float | None] | None = None
    lr: list[float | None] | None = None


class Run(BaseModel):
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


class OptimizeResponse(BaseModel):
    loss: dict[str, Any]
    runs: list[Run]
    meta: dict[str, Any]


class SummaryEntry(BaseModel):
    label: str
    optimizer: dict[str, Any]
    runs: int
    converged: int
    diverged: int
    median_steps_to_tol: float | None
    best_final_loss: float | None
    median_final_loss: float | None
    rank: int


class CompareResponse(OptimizeResponse):
    summary: list[SummaryEntry]
    findings: list[Finding]


class SweepRow(BaseModel):
    hyperparameters: dict[str, Any]
    success_rate: float
    divergence_rate: float
    median_final_loss: float | None
    median_steps_to_tol: float | None


class SweepBest(BaseModel):
    index: int | None
    hyperparameters: dict[str, Any] | None
    reason: str


class SweepResponse(BaseModel):
    loss: dict[str, Any]
    rows: list[SweepRow]
    best: SweepBest
    runs: list[Run] | None = None
    meta: dict[str, Any]


class LandscapeResponse(BaseModel):
    x: list[float]
    y: list[float]
    z: list[list[float | None]]
    axes: list[int]
    variables: list[str]
    loss: dict[str, Any]


class PointAnalysis(BaseModel):
    point: list[float]
    value: float | None
    gradient: list[float | None]
    grad_norm: float | None
    hessian: list[list[float | None]]
    eigenvalues: list[float | None] | None
    condition_number: float | None
    kind: str | None
    theory: dict[str, Any] | None


class AnalyzeResponse(BaseModel):
    loss: dict[str, Any]
    points: list[PointAnalysis]
