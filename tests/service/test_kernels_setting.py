"""OPTIM_KERNELS over HTTP: the fused engine answers like the NumPy one and says so in meta;
`numba` without numba stops start-up naming the extra."""

from __future__ import annotations

import httpx
import pytest

from optim_core import kernels
from service.main import create_app
from service.settings import Settings

pytest.importorskip("numba")

BODY = {"loss": {"kind": "expression", "expression": "(3 - x)^2 + 4*(y - x^2)^2"},  # its own
        "optimizer": {"name": "adam", "lr": 0.01},
        "start": {"random": {"n": 300, "low": -2, "high": 2, "seed": 7}}, "max_steps": 200,
        "record": {"max_points": 5}}


async def _answer(mode: str, tmp_path) -> dict:
    # a compile counts against the time budget: 10 s is not enough on a loaded host
    app = create_app(Settings(kernels=mode, kernel_cache_dir=tmp_path / "kernels",
                              request_timeout_s=600,
                              jobs_db_path=str(tmp_path / f"{mode}.sqlite3")))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.post("/v1/optimize", json=BODY, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


async def test_numba_answers_as_numpy_does_and_says_which_engine(tmp_path):
    try:
        fused = await _answer("numba", tmp_path)
        plain = await _answer("numpy", tmp_path)
    finally:
        kernels.configure("numpy")
    assert fused["meta"]["engine"] == "fused" and fused["meta"]["compile_ms"] >= 0
    assert plain["meta"]["engine"] == "vectorised" and "compile_ms" not in plain["meta"]
    assert {run["status"] for run in fused["runs"]} == {"max_steps"}
    assert [run["status"] for run in fused["runs"]] == [run["status"] for run in plain["runs"]]
    assert [run["final"] for run in fused["runs"]] == [run["final"] for run in plain["runs"]]
    assert [run["trajectory"] for run in fused["runs"]] == [
        run["trajectory"] for run in plain["runs"]]
    assert list((tmp_path / "kernels").glob("optim_fused_*.py"))  # cached for a restart


def test_numba_without_numba_stops_start_up_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "numba_available", lambda: False)
    with pytest.raises(kernels.FusedUnavailable, match=r"optim-service\[fast\]"):
        create_app(Settings(kernels="numba", jobs_db_path=str(tmp_path / "j.sqlite3")))
    kernels.configure("numpy")


async def test_a_fused_batch_takes_its_own_cpu_and_the_idle_compute_slots(tmp_path):
    """Threads follow the compute gate: the configured number while the other slots are idle,
    fewer while requests or jobs hold them, never less than one."""
    app = create_app(Settings(kernels="numba", kernel_threads=3, max_concurrency=4,
                              kernel_cache_dir=tmp_path / "kernels",
                              jobs_db_path=str(tmp_path / "j.sqlite3")))
    gate = app.state.gate
    try:
        assert gate.idle_slots() == 4 and kernels.threads() == 3
        held = [object() for _ in range(3)]
        for holder in held:
            gate.limiter.acquire_on_behalf_of_nowait(holder)
        assert gate.idle_slots() == 1 and kernels.threads() == 2
        gate.limiter.acquire_on_behalf_of_nowait(object())
        assert gate.idle_slots() == 0 and kernels.threads() == 1
        kernels.configure("numpy", None)  # a host without a gate: the configured number
        assert kernels.threads() is None
    finally:
        kernels.configure("numpy")
