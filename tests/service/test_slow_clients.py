"""Slow clients: thousands of connections trickling their headers do not starve /healthz or
a real request, and the server closes each one at the header deadline."""

from __future__ import annotations

import resource
import socket
import time

import httpx
import pytest

from tests.conftest import start_server


def _connections_we_can_open() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return min(2000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)


def test_a_trickle_of_slow_headers_does_not_starve_the_service(tmp_path):
    count = _connections_we_can_open()
    if count < 500:
        pytest.skip("the file limit here allows too few connections for this test")
    proc, url = start_server({"OPTIM_JOBS_DB_PATH": str(tmp_path / "j.sqlite3"),
                              "OPTIM_HEADER_TIMEOUT_S": "3"})
    port = int(url.rsplit(":", 1)[1])
    slow: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            slow.append(s)
        began = time.monotonic()
        answered = 0
        with httpx.Client(timeout=5) as client:
            while time.monotonic() - began < 6:
                for s in slow[::50]:  # keep trickling one header byte now and then
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
                assert client.get(f"{url}/healthz").status_code == 200
                r = client.post(f"{url}/v1/optimize", json={
                    "loss": {"kind": "builtin", "name": "booth"}, "max_steps": 10})
                assert r.status_code == 200
                answered += 1
                time.sleep(0.2)
        assert answered >= 10
        closed = 0
        for s in slow:  # past the 3 s deadline the server has closed them
            s.settimeout(2)
            try:
                closed += s.recv(1) == b""
            except OSError:
                closed += 1
        assert closed == len(slow)
    finally:
        for s in slow:
            s.close()
        proc.terminate()
        proc.wait(10)


def test_a_trickle_of_slow_bodies_is_closed_at_the_body_deadline(tmp_path):
    """The header deadline does not cover bodies: a request whose headers came at once but
    whose body trickles is closed at OPTIM_BODY_TIMEOUT_S, and meanwhile the service answers."""
    count = min(_connections_we_can_open(), 800)
    if count < 300:
        pytest.skip("the file limit here allows too few connections for this test")
    proc, url = start_server({"OPTIM_JOBS_DB_PATH": str(tmp_path / "j.sqlite3"),
                              "OPTIM_BODY_TIMEOUT_S": "3"})
    port = int(url.rsplit(":", 1)[1])
    slow: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /v1/optimize HTTP/1.1\r\nHost: x\r\ncontent-type: "
                      b"application/json\r\ncontent-length: 1000\r\n\r\n{")  # never finished
            slow.append(s)
        began = time.monotonic()
        with httpx.Client(timeout=5) as client:
            while time.monotonic() - began < 5:
                for s in slow[::50]:  # a body byte now and then
                    try:
                        s.send(b" ")
                    except OSError:
                        pass
                took = time.monotonic()
                assert client.get(f"{url}/healthz").status_code == 200
                assert time.monotonic() - took < 2
                time.sleep(0.2)
        closed = 0
        for s in slow:  # past the 3 s deadline the server has closed them
            s.settimeout(2)
            try:
                closed += s.recv(1) == b""
            except OSError:
                closed += 1
        assert closed == len(slow)
    finally:
        for s in slow:
            s.close()
        proc.terminate()
        proc.wait(10)


def test_head_answers_every_get_route_without_a_body(live_server):
    for path in ("/healthz", "/readyz", "/v1/optimizers", "/v1/functions", "/openapi.json",
                 "/docs", "/", "/v1/jobs", "/metrics"):
        head = httpx.head(f"{live_server}{path}", timeout=10)
        get = httpx.get(f"{live_server}{path}", timeout=10)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]
    missing = httpx.head(f"{live_server}/v1/jobs/{'0' * 32}", timeout=10)
    assert missing.status_code == 404 and missing.content == b""
