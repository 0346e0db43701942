"""OptimClient (sync) and AsyncOptimClient: every endpoint, typed results, problem errors,
timeouts, and retries on 429/503 that honour Retry-After.

    from optim_client import OptimClient
    with OptimClient("http://127.0.0.1:8000") as client:
        result = client.compare({"loss": {"kind": "builtin", "name": "rosenbrock"},
                                 "optimizers": [{"name": "adam", "lr": 0.02}]})
        print(result.summary[0].label)

A service that needs keys (OPTIM_AUTH=api_key) takes one as `api_key=`, or from the
environment variable OPTIM_API_KEY; it is sent as `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from optim_client.models import (
    RESULT_TYPES,
    AnalyzeResult,
    BasinsResult,
    BenchmarkResult,
    CompareResult,
    Job,
    JobEvent,
    JobList,
    KeyCreated,
    KeyInfo,
    KeyList,
    LandscapeResult,
    OptimizeResult,
    SweepResult,
    TuneResult,
)

M = TypeVar("M", bound=BaseModel)
RETRY_STATUSES = (429, 503)
MAX_RETRY_WAIT_S = 30.0


class ProblemError(Exception):
    """A 4xx/5xx answer; `problem` is the RFC 9457 document the service sent."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = problem.get("type")
        self.title = problem.get("title")
        self.detail = problem.get("detail", "")
        super().__init__(f"{status} {self.title}: {self.detail}")


def _body(request: Any) -> Any:
    return request.model_dump(exclude_none=True) if isinstance(request, BaseModel) else request


def png_figure(png: bytes) -> Any:
    """PNG bytes as a matplotlib Figure of the same size (the extra `plot`)."""
    try:
        import matplotlib.image
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("figures need matplotlib: pip install 'optim-client[plot]'") from exc
    import io

    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    height, width = pixels.shape[:2]
    figure = Figure(figsize=(width / 100, height / 100), dpi=100)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(pixels)
    axes.set_axis_off()
    return figure


def _with_bar(on_event: Callable[[JobEvent], None] | None, progress: bool
              ) -> Callable[[JobEvent], None] | None:
    """on_event, and a text progress bar on standard error when asked."""
    if not progress:
        return on_event

    def both(event: JobEvent) -> None:
        _draw_bar(event)
        if on_event is not None:
            on_event(event)

    return both


def _draw_bar(event: JobEvent, width: int = 30) -> None:
    import sys

    data = event.data if isinstance(event.data, dict) else {}
    fraction = float((data.get("progress") or {}).get("fraction") or 0.0)
    eta = (data.get("progress") or {}).get("eta_s")
    filled = int(round(fraction * width))
    status = data.get("status", event.event)
    tail = f" eta {eta:.0f} s" if isinstance(eta, int | float) else ""
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:6.1%} "
                     f"{status}{tail}   ")
    if event.event == "end":
        sys.stderr.write("\n")
    sys.stderr.flush()


def _raise_for_problem(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        problem = response.json()
    except ValueError:
        problem = {"title": response.reason_phrase, "detail": response.text[:500]}
    raise ProblemError(response.status_code, problem)


def _headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("OPTIM_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _retryable(response: httpx.Response) -> bool:
    """429 and 503 pass; a key's per-request size limit does not (retrying cannot help)."""
    if response.status_code not in RETRY_STATUSES:
        return False
    if response.status_code == 429 and b"max_run_steps" in response.content[:2000]:
        return False
    return True


def _retry_wait(response: httpx.Response, attempt: int) -> float:
    header = response.headers.get("retry-after", "")
    wait = float(header) if header.replace(".", "", 1).isdigit() else 0.5 * 2**attempt
    return min(wait, MAX_RETRY_WAIT_S)


class _EventParser:
    """Server-Sent Events, one line at a time; comments (keep-alives) are skipped."""

    def __init__(self) -> None:
        self.name, self.data = "message", []

    def feed(self, line: str) -> JobEvent | None:
        if not line:
            event = (JobEvent(event=self.name, data=json.loads("\n".join(self.data)))
                     if self.data else None)
            self.name, self.data = "message", []
            return event
        if line.startswith("event:"):
            self.name = line[6:].strip()
        elif line.startswith("data:"):
            self.data.append(line[5:].strip())
        return None


def _events(lines: Iterator[str]) -> Iterator[JobEvent]:
    parser = _EventParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event


FINISHED = ("succeeded", "failed", "cancelled")
RECONNECT_STATUSES = (409, 429, 502, 503, 504)  # a replica that is not ready, or still busy


class _Follow:
    """Following a job across reconnects: when it finished, and how long to wait before the
    next attempt (doubling from 0.5 s to 10 s; reset by every event received)."""

    def __init__(self, timeout: float | None) -> None:
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.finished = False
        self.wait = 0.5

    def seen(self, event: JobEvent) -> None:
        self.wait = 0.5
        if event.event == "end" and event.data.get("status") in FINISHED:
            self.finished = True

    def failed(self, exc: Exception) -> None:
        if isinstance(exc, ProblemError) and exc.status not in RECONNECT_STATUSES:
            raise exc  # 404: the job expired or was deleted; 4xx: nothing to wait for

    def next_wait(self) -> float:
        wait, self.wait = self.wait, min(self.wait * 2, 10.0)
        if self.deadline is not None and time.monotonic() + wait > self.deadline:
            raise TimeoutError("the job did not finish within the timeout")
        return wait


class _Endpoints:
    """The paths and result types shared by both clients."""

    base_url: str

    @staticmethod
    def _result(kind: str, payload: Any) -> Any:
        return RESULT_TYPES[kind].model_validate(payload)


class OptimClient(_Endpoints):
    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, timeout: float = 60.0,
                 retries: int = 3, transport: httpx.BaseTransport | None = None,
                 api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers=_headers(api_key))

    def __enter__(self) -> OptimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        for attempt in range(self.retries + 1):
            response = self._http.request(method, path, json=None if body is None
                                          else _body(body))
            if not _retryable(response) or attempt == self.retries:
                break
            time.sleep(_retry_wait(response, attempt))
        _raise_for_problem(response)
        return response

    def request_json(self, method: str, path: str, body: Any = None) -> Any:
        """Any endpoint's JSON answer as plain data (the typed methods validate the same);
        retries and ProblemError as for every call."""
        return self._request(method, path, body).json()

    # -- compute -----------------------------------------------------------------------------
    def optimize(self, request: Any) -> OptimizeResult:
        return OptimizeResult.model_validate(self._request("POST", "/v1/optimize", request).json())

    def compare(self, request: Any) -> CompareResult:
        return CompareResult.model_validate(self._request("POST", "/v1/compare", request).json())

    def sweep(self, request: Any) -> SweepResult:
        return SweepResult.model_validate(self._request("POST", "/v1/sweep", request).json())

    def tune(self, request: Any) -> TuneResult:
        return TuneResult.model_validate(self._request("POST", "/v1/tune", request).json())

    def basins(self, request: Any) -> BasinsResult:
        return BasinsResult.model_validate(self._request("POST", "/v1/basins", request).json())

    def benchmark(self, request: Any) -> BenchmarkResult:
        return BenchmarkResult.model_validate(
            self._request("POST", "/v1/benchmark", request).json())

    def landscape(self, request: Any) -> LandscapeResult:
        return LandscapeResult.model_validate(
            self._request("POST", "/v1/landscape", request).json())

    def analyze(self, request: Any) -> AnalyzeResult:
        return AnalyzeResult.model_validate(self._request("POST", "/v1/analyze", request).json())

    def plot(self, request: Any, *, format: str = "svg", **options: Any) -> bytes:
        body = {"request": _body(request), "format": format, **options}
        return self._request("POST", "/v1/plot", body).content

    def figure(self, request: Any, **options: Any) -> Any:
        """The service's picture of `request` as a matplotlib Figure (extra `plot`), e.g. to
        show in a notebook; options as for plot (kind, panels, size, …)."""
        return png_figure(self.plot(request, format="png", **options))

    # -- catalogs and health -----------------------------------------------------------------
    def optimizers(self) -> dict[str, Any]:
        return self._request("GET", "/v1/optimizers").json()

    def functions(self) -> dict[str, Any]:
        return self._request("GET", "/v1/functions").json()

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz").json()

    # -- jobs --------------------------------------------------------------------------------
    def submit_job(self, kind: str, request: Any) -> Job:
        return Job.model_validate(self._request("POST", "/v1/jobs", {
            "kind": kind, "request": _body(request)}).json())

    def job(self, job_id: str) -> Job:
        return Job.model_validate(self._request("GET", f"/v1/jobs/{job_id}").json())

    def job_result(self, job: Job | str) -> Any:
        job = job if isinstance(job, Job) else self.job(job)
        return self._result(job.kind, self._request("GET", f"/v1/jobs/{job.id}/result").json())

    def cancel_job(self, job_id: str) -> Job:
        """Stop a queued or running job; it stays, with its partial result."""
        return Job.model_validate(self._request("POST", f"/v1/jobs/{job_id}/cancel").json())

    def delete_job(self, job_id: str) -> None:
        """Cancel the job if it runs, and remove it and its result."""
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def jobs(self, *, limit: int = 50) -> Iterator[Job]:
        """Every job, newest first (pages fetched as the iteration goes)."""
        cursor = None
        while True:
            params = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            page = JobList.model_validate(self._request("GET", f"/v1/jobs{params}").json())
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def job_events(self, job_id: str) -> Iterator[JobEvent]:
        """Progress events as they come, ending with the `end` event."""
        with self._http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as response:
            _raise_for_problem(response)
            for event in _events(response.iter_lines()):
                yield event
                if event.event == "end":
                    return

    def follow_job(self, job_id: str, *, timeout: float | None = None,
                   on_event: Callable[[JobEvent], None] | None = None) -> Job:
        """Follow a job's events to its end and answer its final document. The job outlives
        the connection: when the server shuts down (its `end` event says `shutdown`),
        restarts, or is briefly unreachable, this reconnects with backoff and follows on,
        until the job ends or `timeout` seconds pass (TimeoutError)."""
        follow = _Follow(timeout)
        while True:
            try:
                for event in self.job_events(job_id):
                    if on_event is not None:
                        on_event(event)
                    follow.seen(event)
                if follow.finished:
                    return self.job(job_id)
            except (httpx.TransportError, ProblemError) as exc:
                follow.failed(exc)
            time.sleep(follow.next_wait())

    def run_job(self, kind: str, request: Any, *, timeout: float | None = None,
                on_event: Callable[[JobEvent], None] | None = None,
                progress: bool = False) -> Any:
        """Submit, follow the job to its end (across a server's restart, see follow_job),
        return the typed result; `progress` draws a bar on standard error as it goes."""
        job = self.submit_job(kind, request)
        self.follow_job(job.id, timeout=timeout, on_event=_with_bar(on_event, progress))
        return self.job_result(job.id)

    # -- keys (an admin key; OPTIM_AUTH=api_key) ---------------------------------------------
    def create_key(self, name: str, scopes: list[str], **limits: Any) -> KeyCreated:
        """A new key (its `key` is shown this once). `limits`: expires_in_s, rate,
        compute_seconds, max_active_jobs, max_run_steps."""
        return KeyCreated.model_validate(self._request("POST", "/v1/keys", {
            "name": name, "scopes": scopes, **limits}).json())

    def keys(self) -> list[KeyInfo]:
        return KeyList.model_validate(self._request("GET", "/v1/keys").json()).keys

    def revoke_key(self, key_id: str) -> KeyInfo:
        return KeyInfo.model_validate(self._request("DELETE", f"/v1/keys/{key_id}").json())


class AsyncOptimClient(_Endpoints):
    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, timeout: float = 60.0,
                 retries: int = 3, transport: httpx.AsyncBaseTransport | None = None,
                 api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                       transport=transport, headers=_headers(api_key))

    async def __aenter__(self) -> AsyncOptimClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        for attempt in range(self.retries + 1):
            response = await self._http.request(method, path, json=None if body is None
                                                else _body(body))
            if not _retryable(response) or attempt == self.retries:
                break
            await asyncio.sleep(_retry_wait(response, attempt))
        _raise_for_problem(response)
        return response

    async def request_json(self, method: str, path: str, body: Any = None) -> Any:
        """Any endpoint's JSON answer as plain data (see OptimClient.request_json)."""
        return (await self._request(method, path, body)).json()

    async def optimize(self, request: Any) -> OptimizeResult:
        return OptimizeResult.model_validate(
            (await self._request("POST", "/v1/optimize", request)).json())

    async def compare(self, request: Any) -> CompareResult:
        return CompareResult.model_validate(
            (await self._request("POST", "/v1/compare", request)).json())

    async def sweep(self, request: Any) -> SweepResult:
        return SweepResult.model_validate(
            (await self._request("POST", "/v1/sweep", request)).json())

    async def tune(self, request: Any) -> TuneResult:
        return TuneResult.model_validate((await self._request("POST", "/v1/tune", request)).json())

    async def basins(self, request: Any) -> BasinsResult:
        return BasinsResult.model_validate(
            (await self._request("POST", "/v1/basins", request)).json())

    async def benchmark(self, request: Any) -> BenchmarkResult:
        return BenchmarkResult.model_validate(
            (await self._request("POST", "/v1/benchmark", request)).json())

    async def landscape(self, request: Any) -> LandscapeResult:
        return LandscapeResult.model_validate(
            (await self._request("POST", "/v1/landscape", request)).json())

    async def analyze(self, request: Any) -> AnalyzeResult:
        return AnalyzeResult.model_validate(
            (await self._request("POST", "/v1/analyze", request)).json())

    async def plot(self, request: Any, *, format: str = "svg", **options: Any) -> bytes:
        body = {"request": _body(request), "format": format, **options}
        return (await self._request("POST", "/v1/plot", body)).content

    async def optimizers(self) -> dict[str, Any]:
        return (await self._request("GET", "/v1/optimizers")).json()

    async def functions(self) -> dict[str, Any]:
        return (await self._request("GET", "/v1/functions")).json()

    async def health(self) -> dict[str, Any]:
        return (await self._request("GET", "/healthz")).json()

    async def submit_job(self, kind: str, request: Any) -> Job:
        return Job.model_validate((await self._request("POST", "/v1/jobs", {
            "kind": kind, "request": _body(request)})).json())

    async def job(self, job_id: str) -> Job:
        return Job.model_validate((await self._request("GET", f"/v1/jobs/{job_id}")).json())

    async def job_result(self, job: Job | str) -> Any:
        job = job if isinstance(job, Job) else await self.job(job)
        response = await self._request("GET", f"/v1/jobs/{job.id}/result")
        return self._result(job.kind, response.json())

    async def cancel_job(self, job_id: str) -> Job:
        """Stop a queued or running job; it stays, with its partial result."""
        return Job.model_validate(
            (await self._request("POST", f"/v1/jobs/{job_id}/cancel")).json())

    async def delete_job(self, job_id: str) -> None:
        """Cancel the job if it runs, and remove it and its result."""
        await self._request("DELETE", f"/v1/jobs/{job_id}")

    async def jobs(self, *, limit: int = 50) -> AsyncIterator[Job]:
        """Every job, newest first (pages fetched as the iteration goes)."""
        cursor = None
        while True:
            params = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            response = await self._request("GET", f"/v1/jobs{params}")
            page = JobList.model_validate(response.json())
            for job in page.jobs:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def job_events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """Progress events as they come, ending with the `end` event."""
        async with self._http.stream("GET", f"/v1/jobs/{job_id}/events",
                                     timeout=None) as response:
            _raise_for_problem(response)
            parser = _EventParser()
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is not None:
                    yield event
                    if event.event == "end":
                        return

    async def follow_job(self, job_id: str, *, timeout: float | None = None,
                         on_event: Callable[[JobEvent], None] | None = None) -> Job:
        """As OptimClient.follow_job: follows the job across a server's restart."""
        follow = _Follow(timeout)
        while True:
            try:
                async for event in self.job_events(job_id):
                    if on_event is not None:
                        on_event(event)
                    follow.seen(event)
                if follow.finished:
                    return await self.job(job_id)
            except (httpx.TransportError, ProblemError) as exc:
                follow.failed(exc)
            await asyncio.sleep(follow.next_wait())

    async def run_job(self, kind: str, request: Any, *, timeout: float | None = None,
                      on_event: Callable[[JobEvent], None] | None = None,
                      progress: bool = False) -> Any:
        """As OptimClient.run_job: follows the job across a server's restart."""
        job = await self.submit_job(kind, request)
        await self.follow_job(job.id, timeout=timeout,
                              on_event=_with_bar(on_event, progress))
        return await self.job_result(job.id)
