"""Request ids, structured (JSON) logs and Prometheus metrics.

Every answer carries `X-Request-ID` (the client's, when it sent a sane one), every log line
is one JSON object with the request id, and GET /metrics exposes the counters below in the
Prometheus text format. Each app has its own registry, so tests can build many apps.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from starlette.routing import Match

from optim_core.losses.expression import expression_cache_info
from service.middleware import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
access_log = logging.getLogger("service.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        for key in ("method", "path", "status", "duration_ms", "key_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str) -> dict[str, Any]:
    """A logging config (also handed to uvicorn) that writes JSON lines to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {
            "service": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class _CacheCollector:
    def collect(self) -> Any:
        info = expression_cache_info()
        hits = CounterMetricFamily("optim_symbolic_cache_hits", "compiled-expression cache hits")
        hits.add_metric([], info.hits)
        misses = CounterMetricFamily("optim_symbolic_cache_misses",
                                     "expressions parsed and differentiated")
        misses.add_metric([], info.misses)
        return [hits, misses]


class _GateCollector:
    """Compute slots in use (requests and jobs), requests waiting, jobs running."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        for name, doc, value in (
                ("optim_compute_busy", "compute slots in use (requests and jobs)",
                 self.gate.busy),
                ("optim_compute_waiting", "requests waiting for a compute slot",
                 self.gate.waiting),
                ("optim_jobs_running", "jobs computing in this process", self.gate.jobs_running)):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge


class Metrics:
    def __init__(self, gate: Any = None, key_labels: int | None = None) -> None:
        """`key_labels`: with API keys on, requests are also counted by key id, for at most
        this many distinct ids (later ones as `other`: bounded label cardinality)."""
        self.registry = CollectorRegistry()
        self.key_labels = key_labels
        self._keys_seen: set[str] = set()
        self.key_requests = Counter(
            "optim_key_requests", "HTTP requests by API key id and status (401/403/429 "
            "included; `anonymous`: no valid key)", ["key_id", "status"],
            registry=self.registry) if key_labels is not None else None
        self.requests = Counter("optim_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("optim_request_duration_seconds", "request latency by route",
                                 ["route"], registry=self.registry,
                                 buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10,
                                          30))
        self.rejections = Counter("optim_rejections", "4xx/5xx answers by problem type",
                                  ["reason"], registry=self.registry)
        self.runs = Counter("optim_runs", "runs computed", registry=self.registry)
        self.steps = Counter("optim_steps", "optimizer steps computed (summed over runs)",
                             registry=self.registry)
        self.registry.register(_CacheCollector())
        if gate is not None:
            self.registry.register(_GateCollector(gate))

    def count_key(self, key_id: str | None, status: int) -> None:
        if self.key_requests is None or self.key_labels is None:
            return
        label = key_id or "anonymous"
        if key_id is not None and label not in self._keys_seen:
            if len(self._keys_seen) >= self.key_labels:
                label = "other"
            else:
                self._keys_seen.add(label)
        self.key_requests.labels(label, str(status)).inc()

    def record_work(self, answer: dict[str, Any] | None) -> None:
        if answer and "meta" in answer:
            self.runs.inc(answer["meta"].get("runs", 0))
            self.steps.inc(answer["meta"].get("steps_computed", 0))


def _route_of(scope: Scope) -> str:
    """The route template; routes FastAPI adds itself (/docs, /redoc, /openapi.json) do not
    put themselves in the scope, so they are matched here."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return path
    for match, candidate in matching_routes(scope.get("app"), scope):
        if match == Match.FULL:
            return getattr(candidate, "path", "unmatched")
    return "unmatched"


def matching_routes(app: Any, scope: Scope) -> Iterator[tuple[Match, Any]]:
    """Every route of `app` whose pattern matches the scope at least partly, with how; the
    routers FastAPI wraps for `include_router` are walked into."""

    def walk(routes: Any) -> Iterator[Any]:
        for route in routes:
            inner = getattr(route, "original_router", None)
            yield from walk(inner.routes) if inner is not None else (route,)

    for route in walk(getattr(app, "routes", ())):
        match = route.matches(scope)[0]
        if match != Match.NONE:
            yield match, route


_ID_PREFIX = os.urandom(8).hex()  # this process, chosen at random
_ID_COUNTER = itertools.count(1)


def _next_id() -> str:
    """A unique request id: this process's random prefix and a counter (uuid4 reads the OS
    random source on every call, a few percent of a small request)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


class ObservabilityMiddleware:
    """Request id, one JSON access line per request, request/latency/rejection metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SANE_ID.match(given) else _next_id()
        token = request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid  # for the outermost error handler
        began = time.perf_counter()
        status = 500
        problem = bytearray()

        async def tracked_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            elif message["type"] == "http.response.body" and status >= 400 \
                    and len(problem) < 4096:
                problem.extend(message.get("body", b"")[:4096])
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            elapsed = time.perf_counter() - began
            route = _route_of(scope)
            self.metrics.requests.labels(scope.get("method", ""), route, str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            if status >= 400:
                self.metrics.rejections.labels(_problem_slug(bytes(problem), status)).inc()
            key_id = scope.get("state", {}).get("key_id")
            self.metrics.count_key(key_id, status)
            extra = {"method": scope.get("method"), "path": scope.get("path"),
                     "status": status, "duration_ms": round(elapsed * 1000, 3)}
            if key_id is not None:
                extra["key_id"] = key_id
            access_log.info("%s %s %s", scope.get("method"), scope.get("path"), status,
                            extra=extra)
            request_id.reset(token)


def _problem_slug(body: bytes, status: int) -> str:
    match = re.search(rb'"type":"/problems/([a-z-]+)"', body)
    return match.group(1).decode() if match else f"http-{status}"
