"""Jobs: submit, list, watch (JSON or Server-Sent Events), fetch the result, cancel, delete.

Job ids are checked before any store call (32 hex digits: anything else is no job, 404), and
every store call is bounded in time: a store that does not answer is a 503, never a hang.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, HTTPException, Query, Request
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from service.auth.guard import caller, require
from service.errors import StoreUnavailableError
from service.jobs.manager import JobManager, job_document
from service.jobs.schemas import JobEnd, JobRequest
from service.jobs.store import valid_job_id
from service.jsonio import JSONResponse, StrictJSONRoute, dumps
from service.problems import (
    AUTH_RESPONSES,
    PROBLEM_MEDIA_TYPE,
    PROBLEM_RESPONSES,
    Problem,
    problem_response,
)
from service.schemas.responses import (
    BenchmarkResponse,
    CompareResponse,
    Job,
    JobList,
    OptimizeResponse,
    SweepResponse,
    TuneResponse,
)
from service.tables import CSV_RESPONSE
from service.translate import run_steps

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=StrictJSONRoute,
                   dependencies=[require("jobs")], responses=AUTH_RESPONSES)


def _problem(text: str) -> dict[str, Any]:
    return {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": text}


UNAVAILABLE = {503: _problem("The job store did not answer in time (`store-unavailable`, "
                             "with Retry-After); nothing was changed")}
NOT_FOUND = {404: _problem("No job with this id (it may have expired or been deleted)"),
             422: PROBLEM_RESPONSES[422], **UNAVAILABLE}
EVENT_POLL_S = 0.2
KEEPALIVE_S = 15
STORE_OUTAGE_S = 30.0  # an event stream whose store is out this long ends (reconnect later)
FINISHED = ("succeeded", "failed", "cancelled")


def _manager(request: Request) -> JobManager:
    return request.app.state.jobs


def _owner_filter(request: Request) -> str | None:
    """Whose jobs the caller sees: its own key's; every job for an admin key or with auth off."""
    key = caller(request)
    return None if key is None or "admin" in key.scopes else key.id


async def _job(request: Request, job_id: str) -> dict[str, Any]:
    """The job, if the caller may see it: another key's job is answered 404, like a job that
    does not exist (its id is not confirmed)."""
    job = (await _manager(request).call(_manager(request).store.get, job_id)
           if valid_job_id(job_id) else None)
    owner = _owner_filter(request)
    if job is None or (owner is not None and job.get("key_id") != owner):
        raise HTTPException(404, f"No job with id {job_id[:64]!r} (it may have expired or "
                                 "been deleted)")
    return job


# OpenAPI links: what a client (and a stateful tester) may do next with the job it got
JOB_LINKS = {name: {"operationId": name, "parameters": {"job_id": "$response.body#/id"}}
             for name in ("get_job", "get_job_result", "job_events", "cancel_job",
                          "delete_job")}


@router.post("", status_code=202, response_model=Job,
             responses={202: {"model": Job, "description": "Queued; `Location` names the job",
                              "headers": {"Location": {"schema": {"type": "string"},
                                                       "description": "/v1/jobs/{id}"}},
                              "links": JOB_LINKS},
                        **PROBLEM_RESPONSES, **UNAVAILABLE})
async def submit_job(body: JobRequest, request: Request) -> JSONResponse:
    """Queue an optimize, compare or sweep request; answers at once with the job's id."""
    key = caller(request)
    if key is not None:
        request.app.state.auth.check_run_steps(request, run_steps(body.request))
        request.app.state.auth.quotas.check_compute(key)
    document = await _manager(request).submit(body.kind, body.request, key)
    return JSONResponse(document, status_code=202,
                        headers={"Location": document["links"]["self"]})


def _cursor(job: dict[str, Any]) -> str:
    raw = f"{job['created_at']!r}|{job['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[float, str] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        value = float(created)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (value, job_id) if valid_job_id(job_id) else None


@router.get("", response_model=JobList, responses={
    400: _problem("The cursor is not one this service gave"), **NOT_FOUND})
async def list_jobs(request: Request,
                    limit: Annotated[int, Query(ge=1, le=200, description="jobs per page")] = 50,
                    cursor: Annotated[str | None, Query(
                        max_length=200, description="`next_cursor` of the previous page")] = None,
                    ) -> Response:
    """The caller's jobs (an admin key's: every job), newest first, a page at a time."""
    before = None
    if cursor is not None:
        before = _parse_cursor(cursor)
        if before is None:
            return problem_response(400, "invalid-cursor", "Invalid cursor",
                                    "The cursor is not one this service gave: pass the "
                                    "`next_cursor` of the previous page, or none")
    manager = _manager(request)
    jobs = await manager.call(manager.store.listing, limit + 1, before, _owner_filter(request))
    page = jobs[:limit]
    return JSONResponse({"jobs": [job_document(job) for job in page],
                         "next_cursor": _cursor(page[-1]) if len(jobs) > limit else None})


@router.get("/{job_id}", response_model=Job, responses=NOT_FOUND)
async def get_job(job_id: str, request: Request) -> JSONResponse:
    """The job's status, progress, times and, when it failed, its problem document."""
    return JSONResponse(job_document(await _job(request, job_id)))


@router.get("/{job_id}/result",
            response_model=(OptimizeResponse | CompareResponse | SweepResponse | TuneResponse
                            | BenchmarkResponse),
            responses={**NOT_FOUND, **CSV_RESPONSE, 409: _problem(
                "Not finished yet (`job-not-finished`), failed (`job-failed`, with the job's "
                "`error`) or cancelled before computing anything (`job-cancelled`)")})
async def get_job_result(job_id: str, request: Request) -> Response:
    """The body the synchronous endpoint would have answered (`partial: true` when the job
    was cancelled or ran out of time); 409 while not finished."""
    job = await _job(request, job_id)
    if job["status"] not in FINISHED:
        return problem_response(409, "job-not-finished", "Job has not finished",
                                f"Job {job_id} is {job['status']}; poll it or follow its events")
    if job["status"] == "failed":
        return problem_response(409, "job-failed", "Job failed",
                                f"Job {job_id} failed: {job['error']['detail']}",
                                error=job["error"])
    manager = _manager(request)
    result = await manager.call(manager.store.result, job_id)
    if result is None:
        return problem_response(409, "job-cancelled", "Job was cancelled",
                                f"Job {job_id} was cancelled before it computed anything")
    return Response(result, media_type="application/json")


def _event_schema(name: str, data: str) -> dict[str, Any]:
    """One server-sent event as a parsed stream gives it: its name and its JSON data as text."""
    return {"type": "object", "required": ["event", "data"], "properties": {
        "event": {"const": name},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": f"#/components/schemas/{data}"}}}}


# schemas no route answers with, which the event stream refers to (added to the document's
# components by service.main)
EVENT_SCHEMAS: dict[str, Any] = {"JobEnd": JobEnd}

# OpenAPI 3.1 has no item schema for streams (3.2's `itemSchema`); the convention of 3.1 tools
# (schemathesis among them) is that a `text/event-stream` schema describes each event.
EVENTS = {
    "description": "Server-Sent Events, each described by the schema: `progress` events whose "
                   "data is the job document (`Job`), then one `end` event (`JobEnd`)",
    "content": {"text/event-stream": {"schema": {"oneOf": [
        _event_schema("progress", "Job"), _event_schema("end", "JobEnd")]}}}}


def _end(job_id: str, status: str, **extra: str) -> ServerSentEvent:
    return ServerSentEvent(dumps({"id": job_id, "status": status, **extra}).decode(),
                           event="end")


@router.get("/{job_id}/events", response_class=EventSourceResponse,
            responses={200: EVENTS, **NOT_FOUND})
async def job_events(job_id: str, request: Request) -> EventSourceResponse:
    """Server-Sent Events: the current state at once, `progress` events, one final `end`."""
    first = await _job(request, job_id)
    manager = _manager(request)
    shutdown = anyio.Event()  # set by sse-starlette when the server begins to shut down

    async def events() -> AsyncIterator[ServerSentEvent]:
        last: bytes | None = None
        job: dict[str, Any] | None = first
        failing_since: float | None = None
        while True:
            if shutdown.is_set():  # the job goes on (here after a restart, or elsewhere)
                yield _end(job_id, job["status"] if job else "expired", reason="shutdown",
                           detail="The service is shutting down; the job is kept and runs "
                                  "on: reconnect to follow it")
                return
            if job is None:
                yield _end(job_id, "expired", reason="deleted")
                return
            payload = dumps(job_document(job))
            if payload != last:
                yield ServerSentEvent(payload.decode(), event="progress")
                last = payload
            if job["status"] in FINISHED:
                yield _end(job_id, job["status"])
                return
            if await request.is_disconnected():
                return
            with anyio.move_on_after(EVENT_POLL_S):
                await shutdown.wait()
            try:
                job = await manager.watch(job_id)
                failing_since = None
            except StoreUnavailableError:  # keep the stream; give up after a long outage
                now = anyio.current_time()
                failing_since = failing_since or now
                if now - failing_since > STORE_OUTAGE_S:
                    yield _end(job_id, job["status"], reason="store-unavailable",
                               detail="The job store is unreachable; reconnect later")
                    return

    return EventSourceResponse(events(), ping=KEEPALIVE_S, shutdown_event=shutdown,
                               shutdown_grace_period=2 * EVENT_POLL_S + 0.5)


CANCEL_RESPONSES = {
    200: {"model": Job, "description": "The job, cancelled (or already finished)"},
    202: {"model": Job, "description": "Running: the cancel is requested and takes effect "
                                       "at the engine's next step"},
    **NOT_FOUND}


@router.post("/{job_id}/cancel", response_model=Job, responses=CANCEL_RESPONSES)
async def cancel_job(job_id: str, request: Request) -> JSONResponse:
    """Cancel a queued or running job; it stays, `cancelled`, with the runs it computed as
    its result (`partial: true`)."""
    await _job(request, job_id)
    manager = _manager(request)
    await manager.call(manager.cancel, job_id)
    document = job_document(await _job(request, job_id))
    return JSONResponse(document, status_code=202 if document["status"] == "running" else 200)


@router.delete("/{job_id}", status_code=204, response_class=Response, responses={
    204: {"description": "Deleted: the job and its result are gone (404 from now on)"},
    **NOT_FOUND})
async def delete_job(job_id: str, request: Request) -> Response:
    """Cancel the job if it runs, and remove it and its result."""
    await _job(request, job_id)
    manager = _manager(request)
    if not await manager.call(manager.delete, job_id):
        raise HTTPException(404, f"No job with id {job_id} (it may have expired or been "
                                 "deleted)")
    return Response(status_code=204)
