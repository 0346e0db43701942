"""Jobs: submit, watch (JSON or Server-Sent Events), fetch the result, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, HTTPException, Request
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from service.jobs.manager import JobManager, job_document
from service.jobs.schemas import JobRequest
from service.jsonio import JSONResponse, StrictJSONRoute, dumps
from service.problems import PROBLEM_MEDIA_TYPE, PROBLEM_RESPONSES, Problem, problem_response
from service.schemas.responses import CompareResponse, Job, OptimizeResponse, SweepResponse

T = TypeVar("T")
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=StrictJSONRoute)


def _problem(text: str) -> dict[str, Any]:
    return {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": text}


NOT_FOUND = {404: _problem("No job with this id (it may have expired)"),
             422: PROBLEM_RESPONSES[422]}
JOB = {"model": Job, "description": "The job"}
EVENT_POLL_S = 0.2
KEEPALIVE_S = 15
FINISHED = ("succeeded", "failed", "cancelled")


def _manager(request: Request) -> JobManager:
    return request.app.state.jobs


async def _store(call: Callable[..., T], *args: Any) -> T:
    """A store call off the event loop: on PostgreSQL each is a network round trip."""
    return await anyio.to_thread.run_sync(call, *args)


async def _job(request: Request, job_id: str) -> dict[str, Any]:
    job = await _store(_manager(request).store.get, job_id)
    if job is None:
        raise HTTPException(404, f"No job with id {job_id} (it may have expired)")
    return job


@router.post("", status_code=202, response_model=Job,
             responses={202: {"model": Job, "description": "Queued; `Location` names the job",
                              "headers": {"Location": {"schema": {"type": "string"},
                                                       "description": "/v1/jobs/{id}"}}},
                        **PROBLEM_RESPONSES})
async def submit_job(body: JobRequest, request: Request) -> JSONResponse:
    """Queue an optimize, compare or sweep request; answers at once with the job's id."""
    manager = _manager(request)
    job_id = await manager.submit(body.kind, body.request)
    document = job_document(await _store(manager.store.get, job_id))
    return JSONResponse(document, status_code=202,
                        headers={"Location": document["links"]["self"]})


@router.get("/{job_id}", response_model=Job, responses=NOT_FOUND)
async def get_job(job_id: str, request: Request) -> JSONResponse:
    """The job's status, progress, times and, when it failed, its problem document."""
    return JSONResponse(job_document(await _job(request, job_id)))


@router.get("/{job_id}/result",
            response_model=OptimizeResponse | CompareResponse | SweepResponse,
            responses={**NOT_FOUND, 409: _problem(
                "Not finished yet (`job-not-finished`), failed (`job-failed`, with the job's "
                "`error`) or cancelled before computing anything (`job-cancelled`)")})
async def get_job_result(job_id: str, request: Request) -> Response:
    """The body the synchronous endpoint would have answered; 409 while not finished."""
    job = await _job(request, job_id)
    if job["status"] not in FINISHED:
        return problem_response(409, "job-not-finished", "Job has not finished",
                                f"Job {job_id} is {job['status']}; poll it or follow its events")
    if job["status"] == "failed":
        return problem_response(409, "job-failed", "Job failed",
                                f"Job {job_id} failed: {job['error']['detail']}",
                                error=job["error"])
    result = await _store(_manager(request).store.result, job_id)
    if result is None:
        return problem_response(409, "job-cancelled", "Job was cancelled",
                                f"Job {job_id} was cancelled before it computed anything")
    return Response(result, media_type="application/json")


@router.get("/{job_id}/events", response_class=EventSourceResponse, responses={
    200: {"description": "Server-Sent Events: `progress` events whose data is the job "
                         "document, then one `end` event {id, status[, reason]}",
          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    **NOT_FOUND})
async def job_events(job_id: str, request: Request) -> EventSourceResponse:
    """Server-Sent Events: the current state at once, `progress` events, one final `end`."""
    await _job(request, job_id)
    store = _manager(request).store
    shutdown = anyio.Event()  # set by sse-starlette when the server begins to shut down

    async def events() -> AsyncIterator[ServerSentEvent]:
        last: bytes | None = None
        while True:
            if shutdown.is_set():  # the job goes on (here after a restart, or elsewhere)
                job = await _store(store.get, job_id)
                yield ServerSentEvent(dumps({
                    "id": job_id, "status": job["status"] if job else "expired",
                    "reason": "shutdown", "detail": "The service is shutting down; the job "
                    "is kept and runs on: reconnect to follow it"}).decode(), event="end")
                return
            job = await _store(store.get, job_id)
            if job is None:
                yield ServerSentEvent(dumps({"id": job_id, "status": "expired"}).decode(),
                                      event="end")
                return
            document = job_document(job)
            payload = dumps(document)
            if payload != last:
                yield ServerSentEvent(payload.decode(), event="progress")
                last = payload
            if job["status"] in FINISHED:
                yield ServerSentEvent(dumps({"id": job_id, "status": job["status"]}).decode(),
                                      event="end")
                return
            if await request.is_disconnected():
                return
            with anyio.move_on_after(EVENT_POLL_S):
                await shutdown.wait()

    return EventSourceResponse(events(), ping=KEEPALIVE_S, shutdown_event=shutdown,
                               shutdown_grace_period=2 * EVENT_POLL_S + 0.5)


@router.delete("/{job_id}", response_model=Job, responses={
    200: {"model": Job, "description": "The job, cancelled (or already finished)"},
    202: {"model": Job, "description": "Running: the cancel is requested and takes effect "
                                       "at the engine's next step"},
    **NOT_FOUND})
async def cancel_job(job_id: str, request: Request) -> JSONResponse:
    """Cancel a queued or running job; a running one stops between steps and keeps its runs."""
    await _job(request, job_id)
    await _store(_manager(request).cancel, job_id)
    document = job_document(await _job(request, job_id))
    return JSONResponse(document, status_code=202 if document["status"] == "running" else 200)
