"""The strict base model: unknown fields, non-finite numbers and values of the wrong JSON type
(`"lr": true`, `"lr": "0.1"`, `"max_steps": "3"`) are schema errors (422), so the server
accepts exactly what the published schema allows."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


def _integral_float_as_int(value: object) -> object:
    """JSON Schema's `integer` includes 3.0, and some clients write integers that way; strict
    pydantic would refuse it. Only floats with no fractional part become ints: booleans,
    strings and 3.5 are still refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# every integer field of the request models: strict, but 3.0 counts as 3 (as the schema says)
Int = Annotated[int, BeforeValidator(_integral_float_as_int)]

# NumPy seeds are non-negative; 2^53 − 1 is the largest integer every JSON parser (JavaScript
# included) reads exactly, so the published maximum means the same to every client
Seed = Annotated[Int, Field(ge=0, le=2**53 - 1)]


_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def standard_bounds(schema: object) -> object:
    """Bounds as JSON Schema spells them. Pydantic writes a bound on `Int` inside a union or a
    nested Annotated under its own name (`ge`) instead of `minimum`; every tool that reads the
    document (schemathesis, generated clients) would ignore it. Rewritten in place."""
    if isinstance(schema, dict):
        if schema.get("type") in ("integer", "number"):
            for ours, standard in _BOUNDS.items():
                if ours in schema:
                    schema[standard] = schema.pop(ours)
        for value in schema.values():
            standard_bounds(value)
    elif isinstance(schema, list):
        for value in schema:
            standard_bounds(value)
    return schema
