"""A typed Python client for the optimizer service, and the `optim` command.

The client imports only httpx and pydantic, so other tools can use it (or copy this folder)
without the server's dependencies; the command line adds the in-process engine when the
whole project is installed.
"""

from optim_client.client import AsyncOptimClient, OptimClient, ProblemError
from optim_client.models import (
    AnalyzeResult,
    CompareResult,
    Job,
    JobEvent,
    LandscapeResult,
    OptimizeResult,
    Run,
    SweepResult,
)

__all__ = ["AnalyzeResult", "AsyncOptimClient", "CompareResult", "Job", "JobEvent",
           "LandscapeResult", "OptimClient", "OptimizeResult", "ProblemError", "Run",
           "SweepResult"]
