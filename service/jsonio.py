"""orjson both ways: strict parsing (NaN/Infinity literals and deep nesting are refused) and
fast answers that write NumPy arrays directly, non-finite numbers as null."""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

import anyio
import numpy as np
import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.responses import Response

from service.conformance import check_answer
from service.tables import (
    CSV_MEDIA_TYPE,
    PARQUET_MEDIA_TYPE,
    answer_csv,
    answer_parquet,
    wants_csv,
    wants_parquet,
)

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    """orjson writes only C-contiguous arrays; trajectories are often strided views."""
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(content: Any) -> bytes:
    try:
        return orjson.dumps(content, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        # orjson writes integers only within 64 bits; a count computed from absurd input
        # (a limit's 413 for 1e20 grid points) may be larger: such integers become floats
        return orjson.dumps(_wide_ints_as_floats(content), default=_default, option=_OPTIONS)


_INT64 = (-(2**63), 2**64 - 1)


def _wide_ints_as_floats(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and \
            not _INT64[0] <= value <= _INT64[1]:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf  # written as null
    if isinstance(value, dict):
        return {k: _wide_ints_as_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wide_ints_as_floats(v) for v in value]
    return value


class JSONResponse(Response):
    """application/json via orjson (FastAPI's ORJSONResponse is deprecated)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


class Rendered(NamedTuple):
    """A computed answer and its JSON, written where it was computed (see `rendering`)."""

    answer: Any
    body: bytes


def rendering(compute: Callable[..., Any]) -> Callable[..., Rendered]:
    """`compute`, answering its answer together with the answer's JSON: run on a compute
    worker, the JSON is written there and not on the event loop, where a 40 MB answer's ~75 ms
    would hold up every other request (the health checks too)."""

    def computed(*args: Any, **kwargs: Any) -> Rendered:
        answer = compute(*args, **kwargs)
        return Rendered(answer, dumps(answer))

    return computed


def _release(answer: Any) -> None:
    """Nothing: the answer is dropped after the body has been sent (see answer_response)."""


def answer_response(rendered: Rendered) -> Response:
    """The JSON answer. The answer's objects are kept until its body has been sent: freeing
    a 4,096-run answer's dicts takes ~4 ms, which the client need not wait for."""
    return Response(rendered.body, media_type="application/json",
                    background=BackgroundTask(_release, rendered.answer))


class StrictJSONRequest(Request):
    """Parses bodies with orjson: its JSONDecodeError subclasses json's, so FastAPI answers
    malformed JSON, NaN literals and nesting deeper than 1024 levels with a 422."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


def is_json_media_type(content_type: str | None) -> bool:
    """application/json or any application/*+json, parameters (charset) ignored."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


# routes whose answers a client may take as CSV (Accept: text/csv; service/tables.py)
CSV_PATHS = frozenset({"/v1/optimize", "/v1/compare", "/v1/sweep", "/v1/tune",
                       "/v1/jobs/{job_id}/result"})


class StrictJSONRoute(APIRoute):
    """Bodies must say they are JSON: without a JSON `content-type` FastAPI would read the
    bytes as something else and answer a confusing "valid dictionary" error. Answers are
    checked against the route's response model when the settings ask (service/conformance)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None
        model, path = self.response_model, self.path
        tabular = path in CSV_PATHS

        async def strict_handler(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if takes_body and not is_json_media_type(content_type):
                got = f"'{content_type}'" if content_type else "no content-type header"
                raise HTTPException(415, f"The body must be JSON: send the header "
                                         f"'content-type: application/json' (got {got})")
            if tabular and wants_parquet(request.headers.get("accept")) and \
                    importlib.util.find_spec("pyarrow") is None:  # before any work
                raise HTTPException(406, "Parquet needs the optional pyarrow, which this "
                                         "server lacks (install optim-service[parquet]); ask "
                                         "for text/csv")
            response = await handler(StrictJSONRequest(request.scope, request.receive))
            if request.app.state.settings.validate_answers:
                check_answer(model, response, path)
            if tabular and response.status_code == 200 and \
                    response.media_type == "application/json":
                response.headers["Vary"] = "Accept"
                accept = request.headers.get("accept")
                if wants_parquet(accept):
                    data = await anyio.to_thread.run_sync(answer_parquet, bytes(response.body))
                    response = Response(data, media_type=PARQUET_MEDIA_TYPE,
                                        headers={"Vary": "Accept"})
                elif wants_csv(accept):
                    text = await anyio.to_thread.run_sync(answer_csv, bytes(response.body))
                    response = Response(text, media_type=CSV_MEDIA_TYPE,
                                        headers={"Vary": "Accept"})
            return response

        return strict_handler


def iso_time(timestamp: float | None) -> str | None:
    """A Unix time as UTC ISO 8601 with milliseconds (what every answer's times look like)."""
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + \
        f".{int((timestamp % 1) * 1000):03d}Z"
