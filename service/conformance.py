"""Answers checked against their route's declared response model (setting
OPTIM_VALIDATE_ANSWERS): the model, not the code that builds the dicts, owns the answer.

The routes write answers with orjson straight from NumPy, so FastAPI never validates them.
With the setting on, the bytes about to be sent are parsed by pydantic against the route's
`response_model` in strict mode with undeclared fields refused, and a mismatch is a 500 (logged)
that names the fields. It costs about six times writing the answer (a 5 MB answer of 4,096 runs:
~100 ms against ~16), so production leaves it off and the test suite turns it on for every
app and server it starts: every answer of every test is checked.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

SHOWN_ERRORS = 5


class AnswerShapeError(Exception):
    """An answer that does not match its declared model: a defect of the service."""

    def __init__(self, path: str, error: ValidationError) -> None:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or '(answer)'}: {e['msg']}"
            for e in error.errors()[:SHOWN_ERRORS])
        more = error.error_count() - SHOWN_ERRORS
        self.detail = (f"The answer of {path} does not match its declared model: {problems}"
                       + (f" (and {more} more)" if more > 0 else ""))
        super().__init__(self.detail)


@cache
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def check_answer(model: Any, response: Response, path: str) -> None:
    """Raise AnswerShapeError unless a successful JSON answer matches `model` exactly."""
    if model is None or not 200 <= response.status_code < 300 or \
            response.media_type != "application/json":
        return
    try:
        _adapter(model).validate_json(bytes(response.body), strict=True, extra="forbid")
    except ValidationError as error:  # logged and answered by the 500 handler
        raise AnswerShapeError(path, error) from None
