"""Response models: the answers' types from the core (`optim_core.answers`) and the job
document from the job routes, declared on the routes so the OpenAPI document describes them
and, with OPTIM_VALIDATE_ANSWERS, every answer is checked against them (see
service/conformance.py). The answers themselves are written by orjson straight from NumPy."""

from optim_core.answers import (
    AnalyzeResponse,
    BasinsResponse,
    BenchmarkResponse,
    BenchmarkRow,
    CompareResponse,
    Curvature,
    Diagnostics,
    EcdfCurve,
    Final,
    Finding,
    LandscapeResponse,
    Meta,
    OptimizeResponse,
    PointAnalysis,
    ProfileCurve,
    Run,
    SummaryEntry,
    SweepBest,
    SweepResponse,
    SweepRow,
    Trajectory,
    TuneBest,
    TuneResponse,
    TuneTrial,
)
from service.jobs.schemas import Job, JobEnd, JobLinks, JobList, Progress

__all__ = ["AnalyzeResponse", "BasinsResponse", "BenchmarkResponse", "BenchmarkRow",
           "EcdfCurve", "ProfileCurve", "CompareResponse", "Curvature", "Diagnostics",
           "Final", "Finding", "Job", "JobEnd", "JobLinks", "JobList", "LandscapeResponse",
           "Meta", "OptimizeResponse", "PointAnalysis", "Progress", "Run", "SummaryEntry",
           "SweepBest", "SweepResponse", "SweepRow", "Trajectory", "TuneBest", "TuneResponse",
           "TuneTrial"]
