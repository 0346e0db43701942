"""The strict base model: unknown fields, non-finite numbers and values of the wrong JSON type
(`"lr": true`, `"lr": "0.1"`, `"max_steps": "3"`) are schema errors (422), so the server
accepts exactly what the published schema allows."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


# NumPy seeds are non-negative; 63 bits keep every seed a JSON-safe integer
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
