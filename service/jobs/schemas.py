"""The body of POST /v1/jobs ({kind, request}, the request being the endpoint's own body) and
the job document the job routes answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict  # pydantic takes only this one on Python 3.11

from service.schemas.base import Strict
from service.schemas.requests import CompareRequest, OptimizeRequest, SweepRequest
from service.schemas.studies import BenchmarkRequest, TuneRequest


class OptimizeJob(Strict):
    kind: Literal["optimize"]
    request: OptimizeRequest


class CompareJob(Strict):
    kind: Literal["compare"]
    request: CompareRequest


class SweepJob(Strict):
    kind: Literal["sweep"]
    request: SweepRequest


class TuneJob(Strict):
    kind: Literal["tune"]
    request: TuneRequest


class BenchmarkJob(Strict):
    kind: Literal["benchmark"]
    request: BenchmarkRequest


JobRequest = Annotated[OptimizeJob | CompareJob | SweepJob | TuneJob | BenchmarkJob,
                       Field(discriminator="kind")]
JOB_KINDS = ("optimize", "compare", "sweep", "tune", "benchmark")
JOB_REQUESTS = {"optimize": OptimizeRequest, "compare": CompareRequest, "sweep": SweepRequest,
                "tune": TuneRequest, "benchmark": BenchmarkRequest}


class Progress(TypedDict):
    steps_done: int
    steps_total: int | None
    runs_active: int | None
    fraction: float
    eta_s: float | None


class JobLinks(TypedDict):
    self: str
    result: str
    events: str
    cancel: str


class Job(TypedDict):
    """A job's public document (`job_document` builds it)."""

    id: str
    kind: str  # optimize | compare | sweep | tune | benchmark
    status: str  # queued | running | succeeded | failed | cancelled
    progress: Progress
    attempts: int
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    error: dict[str, Any] | None
    reason: NotRequired[str]
    cancel_requested: NotRequired[bool]
    links: JobLinks


class JobList(TypedDict):
    """A page of jobs, newest first; `next_cursor` fetches the next page (null: the last)."""

    jobs: list[Job]
    next_cursor: str | None


class JobEnd(TypedDict):
    """The data of a job's `end` event."""

    id: str
    status: str  # succeeded | failed | cancelled | queued / running (shutdown) | expired
    reason: NotRequired[str]  # shutdown | store-unavailable | deleted
    detail: NotRequired[str]
