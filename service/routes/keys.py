"""/v1/keys: make, list and revoke API keys (an `admin` key; OPTIM_AUTH=api_key).

The same operations as `optim keys` on the store. With OPTIM_AUTH=none the endpoints answer
409: keys made by anyone while nothing is checked would be trusted once checks are on.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from service.auth.guard import Authenticator, require
from service.auth.keys import KeyLimits
from service.jsonio import JSONResponse, StrictJSONRoute
from service.problems import AUTH_RESPONSES, PROBLEM_MEDIA_TYPE, PROBLEM_RESPONSES, Problem
from service.schemas.keys import KeyCreate, KeyCreated, KeyInfo, KeyList

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=StrictJSONRoute,
                   dependencies=[require("admin")])


def _problem(text: str) -> dict[str, Any]:
    return {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": text}


OFF = {409: _problem("Keys are not used: the service runs with OPTIM_AUTH=none")}


def _auth(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    if not auth.enabled or auth.keys is None:
        raise HTTPException(409, "Keys are not used here: the service runs with OPTIM_AUTH=none "
                                 "(every endpoint open); set OPTIM_AUTH=api_key to use them")
    return auth


@router.post("", status_code=201, response_model=KeyCreated,
             responses={**PROBLEM_RESPONSES, **AUTH_RESPONSES, **OFF})
async def create_key(body: KeyCreate, request: Request) -> JSONResponse:
    """Make a key; the answer holds the key itself, shown this once."""
    auth = _auth(request)
    assert auth.keys is not None
    limits = KeyLimits(body.rate, body.compute_seconds, body.max_active_jobs,
                       body.max_run_steps)
    record, key = await request.app.state.jobs.call(
        lambda: auth.keys.create(body.name, body.scopes, expires_in_s=body.expires_in_s,
                                 limits=limits))
    return JSONResponse(record.document() | {"key": key}, status_code=201,
                        headers={"Location": f"/v1/keys/{record.id}"})


@router.get("", response_model=KeyList, responses={**AUTH_RESPONSES, **OFF})
async def list_keys(request: Request) -> JSONResponse:
    """Every key, oldest first (revoked and expired ones included; never the keys)."""
    auth = _auth(request)
    assert auth.keys is not None
    records = await request.app.state.jobs.call(auth.keys.listing)
    return JSONResponse({"keys": [r.document() for r in records]})


@router.delete("/{key_id}", response_model=KeyInfo,
               responses={404: _problem("No key with this id"), **AUTH_RESPONSES, **OFF})
async def revoke_key(key_id: str, request: Request) -> JSONResponse:
    """Revoke a key: it stops working on every replica within OPTIM_AUTH_CACHE_S."""
    auth = _auth(request)
    assert auth.keys is not None
    record = await request.app.state.jobs.call(auth.keys.revoke, key_id[:64])
    if record is None:
        raise HTTPException(404, f"No key with id {key_id[:64]!r}")
    auth.forget()
    return JSONResponse(record.document())
