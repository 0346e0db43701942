"""The real server over a socket, and the exported OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

from service.openapi import PATH, document


def test_real_server_answers_over_a_socket(live_server):
    r = httpx.post(f"{live_server}/v1/optimize", json={
        "loss": {"kind": "builtin", "name": "booth"}, "optimizer": {"name": "newton"}})
    assert r.status_code == 200
    assert r.json()["runs"][0]["final"]["params"] == pytest.approx([1.0, 3.0], abs=1e-12)
    r = httpx.post(f"{live_server}/v1/optimize", content=b"x" * 3_000_000,
                   headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert httpx.get(f"{live_server}/readyz").json()["status"] == "ready"


def test_openapi_document_is_in_sync():
    assert PATH.read_text(encoding="utf-8") == document(), (
        "openapi/openapi.json is stale: run `python -m service.openapi`")
