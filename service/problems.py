"""RFC 9457 problem documents: the one table from core exceptions to HTTP statuses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from optim_core.errors import (
    DatasetError,
    DimensionError,
    ExpressionError,
    ExpressionLimitError,
    ExpressionSyntaxError,
    HyperparameterError,
    LimitExceededError,
    LossError,
    NonFiniteConstantError,
    OptimCoreError,
    TimeBudgetError,
    UnknownNameError,
)
from service.conformance import AnswerShapeError
from service.errors import (
    AuthenticationError,
    ExecutorUnavailableError,
    JobLimitError,
    KeyQuotaError,
    OverloadedError,
    ScopeError,
    ShardFailedError,
    StoreUnavailableError,
    SymbolicTimeoutError,
)
from service.jsonio import dumps

logger = logging.getLogger("service")
PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
    position: int | None = None


PROBLEM_TYPES: dict[type[Exception], tuple[int, str, str]] = {
    ExpressionSyntaxError: (400, "invalid-expression", "Expression cannot be parsed"),
    UnknownNameError: (400, "unknown-name", "Unknown name in expression"),
    ExpressionLimitError: (400, "expression-too-large", "Expression is too large"),
    NonFiniteConstantError: (400, "non-finite-constant", "Expression has a non-finite constant"),
    ExpressionError: (400, "invalid-expression", "Expression cannot be used"),
    DatasetError: (400, "invalid-dataset", "Dataset cannot be used"),
    LossError: (400, "invalid-loss", "Loss cannot be used"),
    DimensionError: (400, "dimension-mismatch", "Dimensions do not match the loss"),
    # the schema checks each value's type and range (422); what it cannot express (a
    # schedule's warm-up longer than the schedule, a label given twice, a grid key the
    # optimizer lacks) is a 400: a schema-valid body never gets 422
    HyperparameterError: (400, "invalid-hyperparameter", "Invalid hyperparameter"),
    LimitExceededError: (413, "over-limit", "Request is over the limits"),
    TimeBudgetError: (504, "time-budget", "The request ran past its time budget"),
    OptimCoreError: (400, "invalid-request", "Request cannot be used"),
    OverloadedError: (429, "overloaded", "Too many requests in flight"),
    SymbolicTimeoutError: (504, "symbolic-timeout", "The symbolic stage took too long"),
    ShardFailedError: (500, "shard-failed", "A shard of the job failed"),
    AnswerShapeError: (500, "answer-shape", "The answer does not match its declared model"),
    ExecutorUnavailableError: (503, "executor-unavailable", "The job executor is unreachable"),
    StoreUnavailableError: (503, "store-unavailable", "The job store is unavailable"),
    JobLimitError: (429, "too-many-jobs", "Too many jobs are active"),
    AuthenticationError: (401, "unauthorized", "A valid API key is required"),
    ScopeError: (403, "forbidden", "The key lacks a scope"),
    KeyQuotaError: (429, "quota-exceeded", "Over a limit of this key"),
}


def problem_type(slug: str) -> str:
    return f"/problems/{slug}"


def problem_response(status: int, slug: str, title: str, detail: str,
                     headers: dict[str, str] | None = None, **extensions: Any) -> Response:
    body = {"type": problem_type(slug), "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extensions.items() if v is not None})
    return Response(dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE,
                    headers=headers)


def problem_for(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, body and headers that answer a known exception."""
    for cls in type(exc).__mro__:
        if cls in PROBLEM_TYPES:
            status, slug, title = PROBLEM_TYPES[cls]
            break
    else:
        detail = "An unexpected error occurred; it has been logged."
        return 500, {"type": problem_type("internal"), "title": "Internal server error",
                     "status": 500, "detail": detail}, {}
    body: dict[str, Any] = {"type": problem_type(slug), "title": title, "status": status,
                            "detail": getattr(exc, "detail", str(exc))}
    headers: dict[str, str] = {}
    if isinstance(exc, OptimCoreError):
        if exc.position is not None:
            body["position"] = exc.position
        if exc.loc is not None:
            body["errors"] = [{"loc": ["body", *exc.loc], "msg": exc.detail}]
    if isinstance(exc, LimitExceededError):
        body |= {"limit": exc.limit, "value": exc.value, "maximum": exc.maximum}
    if isinstance(exc, ShardFailedError):
        body |= {"shard": exc.shard, "runs": [exc.first_run, exc.last_run]}
    if isinstance(exc, StoreUnavailableError | JobLimitError):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, JobLimitError):
        body |= {"limit": "job_max_active", "maximum": exc.limit}
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="optim"'
    if isinstance(exc, ScopeError):
        body["scope"] = exc.scope
    if isinstance(exc, KeyQuotaError):
        headers["Retry-After"] = str(exc.retry_after)
        body |= {"limit": exc.limit, "maximum": exc.maximum}
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(exc.retry_after)
        body["detail"] = ("Every compute slot and queue place is taken; retry after "
                          f"{exc.retry_after} s")
        if exc.waited_s is not None:
            status = body["status"] = 503
            body |= {"type": problem_type("busy"), "title": "No compute slot in time",
                     "detail": f"No compute slot became free within the request's time budget "
                               f"({exc.waited_s:g} s); retry after {exc.retry_after} s, or "
                               "submit long work with POST /v1/jobs"}
    return status, body, headers


def _clean_loc(loc: tuple[Any, ...], body: Any) -> list[Any]:
    """The path as the client wrote it: union branch labels and discriminator tags that
    pydantic inserts (`sgd`, `constrained-float`, `tagged-union[…]`) are dropped by walking
    the actual body; a last key that is absent (a missing field) is kept."""
    if not loc or loc[0] != "body":
        return list(loc)
    path: list[Any] = ["body"]
    node = body
    for i, part in enumerate(loc[1:], start=1):
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str) \
                and "[" not in part and "-" not in part:
            path.append(part)
    return path


def _validation_errors(raw: Sequence[Any], body: Any) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    for e in raw:
        loc = _clean_loc(tuple(e.get("loc", ())), body)
        key = tuple(map(str, loc))
        if key in seen:
            continue  # another branch of the same union failing at the same place
        seen.add(key)
        errors.append({"loc": loc, "msg": e.get("msg", ""), "type": e.get("type")})
    return errors


def validation_problem(raw: Sequence[Any], body: Any) -> dict[str, Any]:
    """The 422 problem document of pydantic's errors on a request body (their `loc` starting
    with "body"): the service's handler and the `optim` command's in-process mode use it."""
    errors = _validation_errors(raw, body)
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        reason = (raw[0].get("ctx") or {}).get("error", "")
        return {"type": problem_type("invalid-json"), "title": "Body is not valid JSON",
                "status": 422, "detail": f"The body is not valid JSON ({reason}); note that "
                "NaN and Infinity are not JSON numbers", "errors": errors}
    where = ".".join(str(p) for p in first["loc"])
    detail = f"{where}: {first['msg']}" if where else first["msg"]
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return {"type": problem_type("validation-error"),
            "title": "Request does not match the schema", "status": 422, "detail": detail,
            "errors": errors}


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's,
    so GET and DELETE of /v1/jobs/{id} would show as GET alone)."""
    from service.observability import matching_routes  # it imports this module's table

    methods: set[str] = set()
    for _, route in matching_routes(request.app, request.scope):
        methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problem = validation_problem(exc.errors(), exc.body)
        return Response(dumps(problem), status_code=422, media_type=PROBLEM_MEDIA_TYPE)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed", 409: "Conflict",
                  415: "Unsupported media type"}
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No resource at {request.url.path}; see /docs for the API"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            detail = (f"{request.method} is not allowed on {request.url.path}; allowed: "
                      f"{', '.join(allowed)}")
            headers = {"Allow": ", ".join(allowed)}
        return problem_response(exc.status_code, {404: "not-found", 405: "method-not-allowed",
                                                  415: "unsupported-media-type"}
                                .get(exc.status_code, "http-error"),
                                titles.get(exc.status_code, "HTTP error"), detail,
                                headers=headers)

    async def _known(request: Request, exc: Exception) -> Response:
        status, body, headers = problem_for(exc)
        return Response(dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE,
                        headers=headers)

    for cls in (OptimCoreError, OverloadedError, SymbolicTimeoutError, StoreUnavailableError,
                JobLimitError, ExecutorUnavailableError, AuthenticationError, ScopeError,
                KeyQuotaError):
        app.add_exception_handler(cls, _known)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # this handler runs outside the middleware that set the request id: set it again
        from service.observability import request_id

        rid = request.scope.get("state", {}).get("request_id", "-")
        request_id.set(rid)
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        status, body, _ = problem_for(exc)
        return Response(dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE,
                        headers={"X-Request-ID": rid} if rid != "-" else None)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": text}
    for code, text in ((400, "The loss or the points cannot be used"),
                       (413, "The body or the work is over the limits"),
                       (415, "The body is not sent as JSON (content-type)"),
                       (422, "The request does not match the schema"),
                       (429, "Too many requests in flight"),
                       (503, "No compute slot became free within the time budget"),
                       (504, "The symbolic stage or a computation without a partial answer "
                             "(landscape, analyze) ran past its time budget"))
}


# what an endpoint that needs a key may answer besides its own (OPTIM_AUTH=api_key)
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": text}
    for code, text in ((401, "No valid API key (`unauthorized`, with WWW-Authenticate: "
                             "Bearer); only when the service runs with OPTIM_AUTH=api_key"),
                       (403, "The key lacks the scope this endpoint needs (`forbidden`)"),
                       (429, "Too many requests in flight, or over one of the key's own "
                             "limits (`quota-exceeded`, with Retry-After)"))
}
