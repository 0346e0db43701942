"""API keys, scopes, ownership, per-key limits, security headers and CORS (one process; the
replicas on one PostgreSQL are in test_auth_replicas.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import subprocess
import sys
import time

import httpx
import pytest

from service.auth import KeyLimits, start_auth
from service.errors import StartupError
from service.main import create_app
from service.settings import Settings
from tests.conftest import ROOT

QUICK = {"loss": {"kind": "builtin", "name": "rosenbrock"}, "start": [-1.2, 1.0],
         "optimizer": {"name": "adam", "lr": 0.05}, "max_steps": 20}
SLOW = {"loss": {"kind": "expression", "expression": "0.5*(x^2 + 100*y^2)"},
        "start": {"random": {"n": 64, "seed": 3}}, "max_steps": 400_000,
        "optimizer": {"name": "sgd", "lr": 1e-9}, "record": {"max_points": 10},
        "stop": {"grad_tol": 0}}


def _app(tmp_path, **overrides):
    settings = Settings(auth="api_key", jobs_db_path=str(tmp_path / "jobs.sqlite3"),
                        max_concurrency=2, max_queue=4, **overrides)
    return create_app(settings)


def _client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://test")


def _key(app, scopes, **limits):
    """A key made on the app's store: (id, key)."""
    record, key = app.state.auth.keys.create("test", scopes, limits=KeyLimits(**limits))
    return record.id, key


def _bearer(key):
    return {"Authorization": f"Bearer {key}"}


def _problem(response, status, slug):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"/problems/{slug}" and body["status"] == status and body["detail"]
    return body


# -- off by default --------------------------------------------------------------------------
async def test_auth_is_off_by_default_and_nothing_changes(client):
    assert (await client.post("/v1/optimize", json=QUICK)).status_code == 200
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/v1/jobs")).status_code == 200
    r = await client.post("/v1/keys", json={"name": "x", "scopes": ["admin"]})
    _problem(r, 409, "http-error")
    assert "OPTIM_AUTH" in r.json()["detail"]
    assert "optim_key_requests" not in (await client.get("/metrics")).text


# -- who may call ----------------------------------------------------------------------------
async def test_a_missing_or_unknown_key_is_401_with_a_bearer_challenge(tmp_path):
    app = _app(tmp_path)
    async with _client(app) as c:
        for headers in ({}, _bearer("optim_nope"), {"X-API-Key": "optim_nope"},
                        {"Authorization": "Basic Zm9vOmJhcg=="}, _bearer("x" * 5000)):
            r = await c.post("/v1/optimize", json=QUICK, headers=headers)
            _problem(r, 401, "unauthorized")
            assert r.headers["www-authenticate"].startswith("Bearer")
        # an invalid body without a key is still a 401: nothing is looked at before the key
        _problem(await c.post("/v1/optimize", json={"loss": 3}), 401, "unauthorized")


async def test_either_header_carries_the_key(tmp_path):
    app = _app(tmp_path)
    _, key = _key(app, ["compute"])
    async with _client(app) as c:
        assert (await c.post("/v1/optimize", json=QUICK, headers=_bearer(key))).status_code == 200
        assert (await c.post("/v1/optimize", json=QUICK,
                             headers={"X-API-Key": key})).status_code == 200
        assert (await c.post("/v1/optimize", json=QUICK,
                             headers={"authorization": f"bearer  {key} "})).status_code == 200


async def test_catalogs_health_docs_and_the_playground_stay_open(tmp_path):
    app = _app(tmp_path)
    async with _client(app) as c:
        for path in ("/v1/optimizers", "/v1/functions", "/healthz", "/readyz",
                     "/openapi.json", "/docs", "/redoc", "/"):
            assert (await c.get(path)).status_code == 200, path


@pytest.mark.parametrize(("scopes", "method", "path", "body", "needed"), [
    (["jobs"], "POST", "/v1/optimize", QUICK, "compute"),
    (["jobs"], "POST", "/v1/landscape", {"loss": {"kind": "builtin", "name": "himmelblau"},
                                         "bounds": [[-5, 5], [-5, 5]]}, "compute"),
    (["compute"], "POST", "/v1/jobs", {"kind": "optimize", "request": QUICK}, "jobs"),
    (["compute"], "GET", "/v1/jobs", None, "jobs"),
    (["compute", "jobs"], "GET", "/metrics", None, "metrics"),
    (["compute", "jobs", "metrics"], "GET", "/v1/keys", None, "admin"),
])
async def test_a_key_without_the_scope_is_403_naming_it(tmp_path, scopes, method, path, body,
                                                       needed):
    app = _app(tmp_path)
    _, key = _key(app, scopes)
    async with _client(app) as c:
        r = await c.request(method, path, json=body, headers=_bearer(key))
        assert _problem(r, 403, "forbidden")["scope"] == needed
        assert needed in r.json()["detail"]


async def test_an_admin_key_holds_every_scope(tmp_path):
    app = _app(tmp_path)
    _, key = _key(app, ["admin"])
    async with _client(app) as c:
        for method, path, body in (("POST", "/v1/optimize", QUICK), ("GET", "/metrics", None),
                                   ("GET", "/v1/jobs", None), ("GET", "/v1/keys", None)):
            assert (await c.request(method, path, json=body, headers=_bearer(key))
                    ).status_code == 200, path


# -- keys over HTTP --------------------------------------------------------------------------
async def test_keys_are_made_listed_and_revoked_by_an_admin(tmp_path):
    app = _app(tmp_path)
    _, admin = _key(app, ["admin"])
    async with _client(app) as c:
        r = await c.post("/v1/keys", headers=_bearer(admin), json={
            "name": "notebook", "scopes": ["compute"], "rate": 20, "max_run_steps": 10_000})
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["key"].startswith("optim_") and len(made["key"]) >= 6 + 43
        assert r.headers["location"] == f"/v1/keys/{made['id']}"
        assert made["limits"] == {"rate": 20.0, "compute_seconds": None,
                                  "max_active_jobs": None, "max_run_steps": 10_000}
        listed = (await c.get("/v1/keys", headers=_bearer(admin))).json()["keys"]
        assert made["id"] in [k["id"] for k in listed]
        assert all("key" not in k for k in listed)
        assert made["key"] not in (await c.get("/v1/keys", headers=_bearer(admin))).text
        assert (await c.post("/v1/optimize", json=QUICK,
                             headers=_bearer(made["key"]))).status_code == 200
        r = await c.delete(f"/v1/keys/{made['id']}", headers=_bearer(admin))
        assert r.status_code == 200 and r.json()["revoked_at"]
        r = await c.post("/v1/optimize", json=QUICK, headers=_bearer(made["key"]))
        assert "revoked" in _problem(r, 401, "unauthorized")["detail"]
        _problem(await c.delete("/v1/keys/key_0000", headers=_bearer(admin)), 404, "not-found")
        r = await c.post("/v1/keys", headers=_bearer(admin), json={"name": "x", "scopes": []})
        assert r.status_code == 422
        r = await c.post("/v1/keys", headers=_bearer(admin),
                         json={"name": "x", "scopes": ["root"]})
        assert r.status_code == 422


async def test_only_the_hash_of_a_key_is_stored(tmp_path):
    app = _app(tmp_path)
    _, key = _key(app, ["compute"])
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("jobs.sqlite3*"))  # with its WAL
    assert key.encode() not in raw
    assert hashlib.sha256(key.encode()).hexdigest().encode() in raw


async def test_an_expired_key_is_refused(tmp_path):
    app = _app(tmp_path, auth_cache_s=0.1)
    record, key = app.state.auth.keys.create("short", ["compute"], expires_in_s=0.5)
    async with _client(app) as c:
        assert (await c.post("/v1/optimize", json=QUICK, headers=_bearer(key))).status_code == 200
        await asyncio.sleep(0.7)
        r = await c.post("/v1/optimize", json=QUICK, headers=_bearer(key))
        assert "expired" in _problem(r, 401, "unauthorized")["detail"]


async def test_a_revocation_from_elsewhere_takes_effect_within_the_cache_time(tmp_path):
    """Revoked on the store (as another replica or `optim keys revoke` does): refused here
    within OPTIM_AUTH_CACHE_S."""
    app = _app(tmp_path, auth_cache_s=0.5)
    key_id, key = _key(app, ["compute"])
    async with _client(app) as c:
        assert (await c.post("/v1/optimize", json=QUICK, headers=_bearer(key))).status_code == 200
        app.state.auth.keys.revoke(key_id)
        began = time.monotonic()
        while (await c.post("/v1/optimize", json=QUICK, headers=_bearer(key))).status_code == 200:
            await asyncio.sleep(0.05)
        assert time.monotonic() - began <= 0.5 + 1.0  # the cache time, and a loaded machine


# -- ownership -------------------------------------------------------------------------------
async def test_a_job_belongs_to_its_key_and_another_key_gets_404(tmp_path):
    app = _app(tmp_path)
    _, alice = _key(app, ["jobs"])
    _, bob = _key(app, ["jobs"])
    _, admin = _key(app, ["admin"])
    async with _client(app) as c:
        job = (await c.post("/v1/jobs", json={"kind": "optimize", "request": QUICK},
                            headers=_bearer(alice))).json()
        base = f"/v1/jobs/{job['id']}"
        for method, path in (("GET", base), ("GET", f"{base}/result"),
                             ("GET", f"{base}/events"), ("POST", f"{base}/cancel"),
                             ("DELETE", base)):
            r = await c.request(method, path, headers=_bearer(bob))
            _problem(r, 404, "not-found")
            assert job["id"] not in r.json()["detail"] or "No job" in r.json()["detail"]
        unknown = await c.get("/v1/jobs/" + "0" * 32, headers=_bearer(bob))
        assert unknown.json()["detail"].replace("0" * 32, job["id"]) == \
            (await c.get(base, headers=_bearer(bob))).json()["detail"]  # indistinguishable
        assert (await c.get("/v1/jobs", headers=_bearer(bob))).json()["jobs"] == []
        mine = (await c.get("/v1/jobs", headers=_bearer(alice))).json()["jobs"]
        assert [j["id"] for j in mine] == [job["id"]]
        assert (await c.get(base, headers=_bearer(alice))).status_code == 200
        assert (await c.get(base, headers=_bearer(admin))).status_code == 200
        everyone = (await c.get("/v1/jobs", headers=_bearer(admin))).json()["jobs"]
        assert job["id"] in [j["id"] for j in everyone]
        assert (await c.delete(base, headers=_bearer(alice))).status_code == 204


# -- limits ----------------------------------------------------------------------------------
async def test_a_key_over_its_rate_gets_429_and_another_key_does_not_wait(tmp_path):
    app = _app(tmp_path)
    _, hammer = _key(app, ["compute"], rate=3)
    _, calm = _key(app, ["compute"])
    async with _client(app) as c:
        statuses = [(await c.get("/v1/optimizers")).status_code]  # open: not counted
        for _ in range(8):
            statuses.append((await c.post("/v1/optimize", json=QUICK,
                                          headers=_bearer(hammer))).status_code)
        assert statuses.count(200) in (4, 5) and statuses.count(429) >= 4  # 3 + refill
        r = await c.post("/v1/optimize", json=QUICK, headers=_bearer(hammer))
        body = _problem(r, 429, "quota-exceeded")
        assert body["limit"] == "rate" and body["maximum"] == 3
        assert int(r.headers["retry-after"]) >= 1
        began = time.perf_counter()
        assert (await c.post("/v1/optimize", json=QUICK, headers=_bearer(calm))).status_code == 200
        assert time.perf_counter() - began < 1.0
        await asyncio.sleep(1.1)  # the bucket refills
        assert (await c.post("/v1/optimize", json=QUICK,
                             headers=_bearer(hammer))).status_code == 200


async def test_runs_times_steps_over_a_keys_limit_is_429_naming_it(tmp_path):
    app = _app(tmp_path)
    _, key = _key(app, ["compute", "jobs"], max_run_steps=1000)
    async with _client(app) as c:
        big = QUICK | {"start": {"random": {"n": 10, "seed": 1}}, "max_steps": 200}
        for path, body in (("/v1/optimize", big), ("/v1/jobs", {"kind": "optimize",
                                                                 "request": big}),
                           ("/v1/sweep", {**QUICK, "grid": {"lr": [0.1, 0.01, 0.001]},
                                          "max_steps": 400}),
                           ("/v1/plot", {"request": big})):
            body = _problem(await c.post(path, json=body, headers=_bearer(key)), 429,
                            "quota-exceeded")
            assert body["limit"] == "max_run_steps" and body["maximum"] == 1000
        assert (await c.post("/v1/optimize", json=QUICK, headers=_bearer(key))).status_code == 200


async def test_active_jobs_over_a_keys_limit_is_429(tmp_path):
    app = _app(tmp_path)
    _, key = _key(app, ["jobs"], max_active_jobs=1)
    _, other = _key(app, ["jobs"])
    async with _client(app) as c:
        first = await c.post("/v1/jobs", json={"kind": "optimize", "request": SLOW},
                             headers=_bearer(key))
        assert first.status_code == 202
        r = await c.post("/v1/jobs", json={"kind": "optimize", "request": QUICK},
                         headers=_bearer(key))
        body = _problem(r, 429, "quota-exceeded")
        assert body["limit"] == "max_active_jobs" and "retry-after" in r.headers
        assert (await c.post("/v1/jobs", json={"kind": "optimize", "request": QUICK},
                             headers=_bearer(other))).status_code == 202
        await c.delete(f"/v1/jobs/{first.json()['id']}", headers=_bearer(key))


async def test_compute_seconds_per_minute_are_counted_and_enforced(tmp_path):
    app = _app(tmp_path)
    _, key = _key(app, ["compute"], compute_seconds=0.01)
    work = QUICK | {"start": {"random": {"n": 200, "seed": 1}}, "max_steps": 2000,
                    "optimizer": {"name": "newton"}, "stop": {"grad_tol": 0}}
    async with _client(app) as c:
        assert (await c.post("/v1/optimize", json=work, headers=_bearer(key))).status_code == 200
        r = await c.post("/v1/optimize", json=QUICK, headers=_bearer(key))
        body = _problem(r, 429, "quota-exceeded")
        assert body["limit"] == "compute_seconds" and 1 <= int(r.headers["retry-after"]) <= 60


def test_usage_is_shared_through_the_store(tmp_path):
    """Two replicas' books on one store: what one counted reaches the other at the sync."""
    app = _app(tmp_path)
    record, _ = app.state.auth.keys.create("shared", ["compute"],
                                           limits=KeyLimits(rate=5, compute_seconds=1.0))
    from service.auth.quotas import QuotaBook

    here, there = app.state.auth.quotas, QuotaBook(app.state.auth.keys, "other-replica", 1.0)
    now = time.time()
    for _ in range(5):
        there.take_request(record, now)
    there.charge(record.id, 1.5, now)
    there.sync(now)
    here.take_request(record, now)  # makes the bucket here
    here.sync(now)
    with pytest.raises(Exception) as refused:
        here.take_request(record, now + 0.01)
    assert refused.value.limit == "rate"
    with pytest.raises(Exception) as spent:
        here.check_compute(record, now + 1)
    assert spent.value.limit == "compute_seconds"
    here.check_compute(record, now + 61)  # a minute later it is free again


# -- around it -------------------------------------------------------------------------------
async def test_security_headers_on_every_answer_and_a_csp_with_the_pages_own_scripts(client):
    for path in ("/v1/optimizers", "/healthz", "/nothing-here"):
        r = await client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "content-security-policy" not in r.headers
    for path in ("/", "/docs", "/redoc"):
        r = await client.get(path)
        policy = r.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        script_src = re.search(r"script-src ([^;]*)", policy).group(1)
        assert "'unsafe-inline'" not in script_src and "http" not in script_src
        for script in re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", r.text, re.S):
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in script_src, path
        for src in re.findall(r'<script[^>]*\bsrc="([^"]+)"', r.text):
            assert src.startswith("/"), (path, src)  # every script is the service's own


async def test_cors_only_for_the_origins_configured(tmp_path):
    preflight = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    closed = create_app(Settings(jobs_db_path=str(tmp_path / "a.sqlite3")))
    async with _client(closed) as c:
        r = await c.get("/v1/optimizers", headers={"Origin": "https://dash.example"})
        assert "access-control-allow-origin" not in r.headers
    opened = create_app(Settings(jobs_db_path=str(tmp_path / "b.sqlite3"),
                                 cors_origins=["https://dash.example"]))
    async with _client(opened) as c:
        r = await c.options("/v1/optimize", headers=preflight)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://dash.example"
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        r = await c.get("/v1/optimizers", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


async def test_openapi_declares_both_ways_to_send_a_key(client, tmp_path):
    optional = (await client.get("/openapi.json")).json()
    assert optional["paths"]["/v1/optimize"]["post"]["security"] == [{}, {"bearer": []},
                                                                    {"apiKey": []}]
    async with _client(_app(tmp_path)) as c:
        document = (await c.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer",
                                 "description": schemes["bearer"]["description"]}
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
    optimize = document["paths"]["/v1/optimize"]["post"]
    assert optimize["security"] == [{"bearer": []}, {"apiKey": []}]
    assert {"401", "403", "429"} <= set(optimize["responses"])
    assert "security" not in document["paths"]["/v1/optimizers"]["get"]
    assert "security" not in document["paths"]["/healthz"]["get"]


async def test_metrics_count_requests_by_key_id_never_the_key(tmp_path):
    app = _app(tmp_path, metrics_key_labels=2)
    ids_and_keys = [_key(app, ["compute", "metrics"]) for _ in range(3)]
    async with _client(app) as c:
        for _, key in ids_and_keys:
            await c.post("/v1/optimize", json=QUICK, headers=_bearer(key))
        await c.post("/v1/optimize", json=QUICK)  # no key: 401
        text = (await c.get("/metrics", headers=_bearer(ids_and_keys[0][1]))).text
    first, second, _ = (key_id for key_id, _ in ids_and_keys)
    assert f'optim_key_requests_total{{key_id="{first}",status="200"}} 1.0' in text
    assert f'optim_key_requests_total{{key_id="{second}",status="200"}} 1.0' in text
    assert 'key_id="other",status="200"' in text  # a third id: bounded labels
    assert 'key_id="anonymous",status="401"' in text
    assert all(key not in text for _, key in ids_and_keys)


def test_the_bootstrap_admin_key_comes_from_a_file(tmp_path):
    secret = tmp_path / "admin_key"
    secret.write_text("b" * 40 + "\n")
    app = _app(tmp_path, bootstrap_admin_key_file=secret)
    start_auth(app.state.auth, app.state.settings)
    start_auth(app.state.auth, app.state.settings)  # a restart: found, not made twice
    app.state.auth.quotas.stop()
    records = app.state.auth.keys.listing()
    assert [r.name for r in records] == ["bootstrap-admin"] and records[0].scopes == {"admin"}
    assert app.state.auth.keys.find("b" * 40).id == records[0].id
    secret.write_text("short")
    other = tmp_path / "other"
    other.mkdir()
    weak = _app(other, bootstrap_admin_key_file=secret)
    with pytest.raises(StartupError, match="at least 32"):
        start_auth(weak.state.auth, weak.state.settings)


def test_optim_keys_manages_keys_on_the_store(tmp_path):
    env = {"OPTIM_JOBS_DB_PATH": str(tmp_path / "keys.sqlite3"), "PATH": "/usr/bin:/bin"}

    def optim(*args):
        return subprocess.run([sys.executable, "-m", "service.cli", "keys", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)

    made = optim("create", "--name", "ci", "--scopes", "compute,jobs", "--expires", "30d",
                 "--rate", "50/s", "--max-active-jobs", "4", "--compute-seconds", "120/min",
                 "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["key"].startswith("optim_") and key["scopes"] == ["compute", "jobs"]
    assert key["limits"] == {"rate": 50.0, "compute_seconds": 120.0, "max_active_jobs": 4,
                             "max_run_steps": None}
    listed = json.loads(optim("list", "--json").stdout)
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]
    revoked = optim("revoke", key["id"], "--json")
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"]
    bad = optim("create", "--name", "x", "--scopes", "root")
    assert bad.returncode == 2 and "root" in bad.stderr
    assert optim("revoke", "key_nope").returncode == 1
