"""Keys across replicas, with real servers: two replicas of the service on one PostgreSQL,
keys made through one and used on the other. Ownership, revocation, active jobs, request rate
and compute seconds hold for a key across both."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import start_server
from tests.service.test_auth import QUICK, SLOW

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

SYNC_S = 0.5  # OPTIM_QUOTA_SYNC_S of both replicas


@pytest.fixture(scope="module")
def replicas(postgres_server, tmp_path_factory) -> Iterator[tuple[str, str, str]]:
    """(first replica's URL, second's, the bootstrap admin key)."""
    admin = secrets.token_urlsafe(32)
    key_file = tmp_path_factory.mktemp("secrets") / "admin-key"
    key_file.write_text(admin + "\n")
    env = {"OPTIM_AUTH": "api_key", "OPTIM_JOBS_DB_URL": postgres_server.database(),
           "OPTIM_BOOTSTRAP_ADMIN_KEY_FILE": str(key_file), "OPTIM_QUOTA_SYNC_S": str(SYNC_S)}
    started = [start_server(env), start_server(env)]
    try:
        yield started[0][1], started[1][1], admin
    finally:
        for proc, _ in started:
            proc.terminate()
            proc.wait(10)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _new_key(url: str, admin: str, scopes: list[str], **limits) -> str:
    return _new_key_and_id(url, admin, scopes, **limits)[1]


def _new_key_and_id(url: str, admin: str, scopes: list[str], **limits) -> tuple[str, str]:
    r = httpx.post(f"{url}/v1/keys", json={"name": "replica-test", "scopes": scopes, **limits},
                   headers=_bearer(admin), timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["key"]


def _problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    return body


def test_one_keys_job_is_unknown_to_another_key_on_either_replica(replicas):
    first, second, admin = replicas
    alice = _new_key(first, admin, ["jobs"])
    bob = _new_key(second, admin, ["jobs"])
    r = httpx.post(f"{first}/v1/jobs", json={"kind": "optimize", "request": SLOW},
                   headers=_bearer(alice), timeout=10)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    try:
        for url in (first, second):
            for method, path in (("GET", ""), ("GET", "/events"), ("GET", "/result"),
                                 ("POST", "/cancel"), ("DELETE", "")):
                answer = httpx.request(method, f"{url}/v1/jobs/{job}{path}",
                                       headers=_bearer(bob), timeout=10)
                _problem(answer, 404, "not-found")
            listed = httpx.get(f"{url}/v1/jobs", headers=_bearer(bob), timeout=10).json()
            assert job not in [j["id"] for j in listed["jobs"]]
            mine = httpx.get(f"{url}/v1/jobs", headers=_bearer(alice), timeout=10).json()
            assert job in [j["id"] for j in mine["jobs"]]
            seen = httpx.get(f"{url}/v1/jobs/{job}", headers=_bearer(admin), timeout=10)
            assert seen.status_code == 200 and seen.json()["id"] == job
        # the owner cancels it through the other replica
        cancelled = httpx.post(f"{second}/v1/jobs/{job}/cancel", headers=_bearer(alice),
                               timeout=10)
        assert cancelled.status_code in (200, 202), cancelled.text
    finally:
        httpx.post(f"{first}/v1/jobs/{job}/cancel", headers=_bearer(admin), timeout=10)


def test_a_key_revoked_on_one_replica_fails_on_the_other_within_five_seconds(replicas):
    first, second, admin = replicas
    key_id, key = _new_key_and_id(first, admin, ["compute"])
    assert httpx.post(f"{second}/v1/optimize", json=QUICK, headers=_bearer(key),
                      timeout=10).status_code == 200  # now in the second replica's cache
    revoked = httpx.delete(f"{first}/v1/keys/{key_id}", headers=_bearer(admin), timeout=10)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    revoked_at = time.monotonic()
    while True:
        r = httpx.post(f"{second}/v1/optimize", json=QUICK, headers=_bearer(key), timeout=10)
        if r.status_code == 401:
            break
        assert r.status_code == 200, r.text
        assert time.monotonic() - revoked_at < 5.0, "the revocation took longer than 5 s"
        time.sleep(0.1)
    assert time.monotonic() - revoked_at < 5.0
    _problem(r, 401, "unauthorized")


def test_active_jobs_of_a_key_are_counted_across_replicas(replicas):
    first, second, admin = replicas
    key = _new_key(first, admin, ["jobs"], max_active_jobs=1)
    r = httpx.post(f"{first}/v1/jobs", json={"kind": "optimize", "request": SLOW},
                   headers=_bearer(key), timeout=10)
    assert r.status_code == 202, r.text
    try:
        refused = httpx.post(f"{second}/v1/jobs", json={"kind": "optimize", "request": SLOW},
                             headers=_bearer(key), timeout=10)
        body = _problem(refused, 429, "quota-exceeded")
        assert body["limit"] == "max_active_jobs" and body["maximum"] == 1
        assert int(refused.headers["retry-after"]) >= 1
        other = _new_key(second, admin, ["jobs"], max_active_jobs=1)  # its own count
        r2 = httpx.post(f"{second}/v1/jobs", json={"kind": "optimize", "request": QUICK},
                        headers=_bearer(other), timeout=10)
        assert r2.status_code == 202, r2.text
    finally:
        httpx.post(f"{first}/v1/jobs/{r.json()['id']}/cancel", headers=_bearer(admin),
                   timeout=10)


def test_a_keys_request_rate_is_shared_by_the_replicas(replicas):
    first, second, admin = replicas
    key = _new_key(first, admin, ["compute"], rate=0.2)  # one request per five seconds
    assert httpx.post(f"{first}/v1/optimize", json=QUICK, headers=_bearer(key),
                      timeout=10).status_code == 200
    time.sleep(3 * SYNC_S)  # both replicas have synchronised since
    refused = httpx.post(f"{second}/v1/optimize", json=QUICK, headers=_bearer(key), timeout=10)
    body = _problem(refused, 429, "quota-exceeded")
    assert body["limit"] == "rate" and body["maximum"] == 0.2
    assert int(refused.headers["retry-after"]) >= 1
    # another key is not slowed by it, on either replica
    other = _new_key(second, admin, ["compute"])
    for url in (first, second):
        assert httpx.post(f"{url}/v1/optimize", json=QUICK, headers=_bearer(other),
                          timeout=10).status_code == 200


def test_a_keys_compute_seconds_are_summed_over_the_replicas(replicas):
    first, second, admin = replicas
    key = _new_key(first, admin, ["compute"], compute_seconds=0.001)
    assert httpx.post(f"{first}/v1/optimize", json=QUICK, headers=_bearer(key),
                      timeout=10).status_code == 200  # spends more than a millisecond
    time.sleep(3 * SYNC_S)
    refused = httpx.post(f"{second}/v1/optimize", json=QUICK, headers=_bearer(key), timeout=10)
    body = _problem(refused, 429, "quota-exceeded")
    assert body["limit"] == "compute_seconds"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
