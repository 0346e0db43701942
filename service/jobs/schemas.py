"""The body of POST /v1/jobs: {kind, request}, the request being the endpoint's own body."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from service.schemas.base import Strict
from service.schemas.requests import CompareRequest, OptimizeRequest, SweepRequest


class OptimizeJob(Strict):
    kind: Literal["optimize"]
    request: OptimizeRequest


class CompareJob(Strict):
    kind: Literal["compare"]
    request: CompareRequest


class SweepJob(Strict):
    kind: Literal["sweep"]
    request: SweepRequest


JobRequest = Annotated[OptimizeJob | CompareJob | SweepJob, Field(discriminator="kind")]
JOB_KINDS = ("optimize", "compare", "sweep")
JOB_REQUESTS = {"optimize": OptimizeRequest, "compare": CompareRequest, "sweep": SweepRequest}
