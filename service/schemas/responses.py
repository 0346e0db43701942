"""Response models: declared so the OpenAPI document describes the answers (the answers
themselves are written by orjson straight from NumPy). They are defined once, in
optim_client.models, so the Python client returns exactly the models the service declares."""

from optim_client.models import (
    AnalyzeResponse,
    CompareResponse,
    Curvature,
    Diagnostics,
    Final,
    Finding,
    Job,
    JobLinks,
    LandscapeResponse,
    OptimizeResponse,
    PointAnalysis,
    Progress,
    Run,
    SummaryEntry,
    SweepBest,
    SweepResponse,
    SweepRow,
    Trajectory,
)

__all__ = ["AnalyzeResponse", "CompareResponse", "Curvature", "Diagnostics", "Final", "Finding",
           "Job", "JobLinks", "LandscapeResponse", "OptimizeResponse", "PointAnalysis",
           "Progress", "Run", "SummaryEntry", "SweepBest", "SweepResponse", "SweepRow",
           "Trajectory"]
