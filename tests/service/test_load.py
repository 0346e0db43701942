"""The load script's short version: 64 clients for 10 s against a real server; no 5xx, and
the server still answers afterwards. Figures are printed, never asserted."""

from __future__ import annotations

import asyncio

import httpx

from bench.load import report, run_load, server_errors


def test_short_load_has_no_server_errors(live_server):
    tally = asyncio.run(run_load(live_server, clients=64, seconds=10))
    print(report(tally, 10, None))
    assert sum(len(v) for v in tally.latencies.values()) > 0
    assert server_errors(tally) == 0
    assert not tally.errors
    assert httpx.get(f"{live_server}/healthz", timeout=5).status_code == 200
    r = httpx.post(f"{live_server}/v1/optimize", json={
        "loss": {"kind": "builtin", "name": "booth"}, "optimizer": {"name": "newton"}})
    assert r.status_code == 200
