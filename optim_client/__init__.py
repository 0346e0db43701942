"""A typed Python client for the optimizer service.

It imports only httpx and pydantic (tested with every other package blocked), so other tools
can use it, or copy this folder, without the server's dependencies. The `optim` command,
whose in-process mode needs the engine, lives with the service (service/cli.py).
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
