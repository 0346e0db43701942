"""Dependencies: settings and the compute gate, overridable in tests."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.compute import ComputeGate
from service.settings import Settings, get_settings

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_gate(request: Request) -> ComputeGate:
    return request.app.state.gate


GateDep = Annotated[ComputeGate, Depends(get_gate)]
