"""The real server over a socket, and the exported OpenAPI document."""

from __future__ import annotations

import os

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


def test_sigterm_shuts_the_symbolic_pool_down_cleanly(tmp_path):
    """No 'leaked semaphore' warning: the worker pool is closed and dropped at shutdown."""
    import signal

    import httpx

    from tests.conftest import start_server

    proc, url = start_server({"OPTIM_JOBS_DB_PATH": str(tmp_path / "j.sqlite3")})
    try:
        r = httpx.post(f"{url}/v1/analyze", json={"loss": {"kind": "expression",
                                                          "expression": "x^3 + 2*y^2"},
                                                 "points": [[1, 1]]}, timeout=30)
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    # this server's own log: a glob on the port also read the logs of earlier servers that
    # had the same port (log files are kept), one killed -9 with a semaphore warning among them
    with open(proc.log_path, encoding="utf-8", errors="replace") as log:
        text = log.read()
    assert "Application shutdown complete" in text
    assert "leaked semaphore" not in text and "Traceback" not in text


def test_settings_defaults_do_not_depend_on_the_working_directory(monkeypatch):
    from pathlib import Path

    from service.settings import Settings, usable_cpus

    monkeypatch.delenv("OPTIM_JOBS_DB_PATH", raising=False)
    path = Path(Settings().jobs_db_path)
    assert path.is_absolute() and path.parent.name == "optim-service"
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
