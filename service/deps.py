"""Dependencies: the app's settings and its compute gate.

Both are read from `app.state` by async functions: FastAPI runs a sync dependency on a
worker thread, and builds an overriding callable's signature on every request (together
~0.5 ms of a small request). Tests give an app its settings through `create_app(settings)`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.compute import ComputeGate
from service.settings import Settings


async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_gate(request: Request) -> ComputeGate:
    return request.app.state.gate


SettingsDep = Annotated[Settings, Depends(app_settings)]
GateDep = Annotated[ComputeGate, Depends(get_gate)]
