"""schemathesis against the exported OpenAPI document, every operation, every check, positive
and negative data, and a stateful phase along the document's links (a job submitted, then
read, followed, cancelled and deleted): no server error, no answer outside the declared
schema, schema-valid data accepted and schema-invalid data refused, a deleted job gone.
Bounded: a few examples per operation, small limits.

Schema-valid is not always usable: a string the schema allows may not parse as a formula (400),
a point may not fit the loss, work may exceed a limit (413), a job may not be finished (409),
a tiny time budget may meet a busy slot (503). Those are the documented answers to valid
JSON, so positive data may get them; a 422 (the schema said yes, the server says no) may not.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.config._auth import AuthConfig  # noqa: E402
from schemathesis.config._checks import PositiveDataAcceptanceConfig  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from service.main import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

APP = create_app(Settings(
    jobs_db_path=":memory:", max_steps=200, max_runs=64, max_work=200_000,
    max_landscape_points=2500, max_recorded_values=100_000, request_timeout_s=2.0,
    job_max_active=4, max_queue=64, job_max_steps=200, job_max_runs=64, job_max_work=200_000,
    job_max_recorded_values=100_000, job_timeout_s=2.0, max_plot_frames=4))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
    expected_statuses=["2XX", 400, 404, 409, 413, 429, 503])


# /v1/plot draws with matplotlib (a second or more an example): fewer examples there. A job's
# body is every endpoint's body under a `kind`: the coverage phase's boundary cases of those
# bodies run on the endpoints themselves, so job submission is fuzzed without that phase
# (with it: ~30,000 calls, a minute and a half of the suite).
@schema.exclude(path="/v1/plot").exclude(path="/v1/jobs", method="POST").parametrize()
@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_passes_every_check(case):
    case.call_and_validate()  # all of schemathesis's checks


@schema.include(path="/v1/plot").parametrize()
@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_plot_passes_every_check(case):
    case.call_and_validate()


job_schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
job_schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
job_schema.config.checks.positive_data_acceptance = schema.config.checks.positive_data_acceptance
job_schema.config.phases.coverage.enabled = False


@job_schema.include(path="/v1/jobs", method="POST").parametrize()
@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_job_submission_passes_every_check(case):
    case.call_and_validate()


TestJobsStatefully = schema.as_state_machine().TestCase
TestJobsStatefully.settings = settings(max_examples=8, stateful_step_count=6, deadline=None,
                                       derandomize=True, suppress_health_check=list(HealthCheck))


# -- the same with keys on: a valid admin key on every call (the checks also try none and a
# wrong one: every protected operation must refuse those with 401) --------------------------
ADMIN_KEY = "optim_fuzz_" + "k" * 40  # fixed: the same in every import of this module
KEY_FILE = Path(tempfile.mkdtemp(prefix="optim-fuzz-")) / "admin-key"
KEY_FILE.write_text(ADMIN_KEY)  # stored at every start-up of the app (each has its own store)
AUTH_APP = create_app(Settings(
    auth="api_key", bootstrap_admin_key_file=KEY_FILE, jobs_db_path=":memory:",
    max_steps=200, max_runs=64, max_work=200_000,
    max_landscape_points=2500, max_recorded_values=100_000, request_timeout_s=2.0,
    job_max_active=4, max_queue=64, job_max_steps=200, job_max_runs=64, job_max_work=200_000,
    job_max_recorded_values=100_000, job_timeout_s=2.0, max_plot_frames=4))
auth_schema = schemathesis.openapi.from_asgi("/openapi.json", AUTH_APP)
auth_schema.config.auth = AuthConfig(openapi={"bearer": {"bearer": ADMIN_KEY},
                                              "apiKey": {"api_key": ADMIN_KEY}})
auth_schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
# the coverage phase (every boundary of every field) already runs above with keys off; here
# the point is the keys, so only the examples and fuzzing phases run
auth_schema.config.phases.coverage.enabled = False
auth_schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
    expected_statuses=["2XX", 400, 404, 409, 413, 429, 503])


@auth_schema.exclude(path="/v1/plot").parametrize()
@settings(max_examples=2, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_passes_every_check_with_keys_on(case):
    case.call_and_validate()



def test_a_finished_jobs_event_stream_matches_its_declared_events(module_server):
    """The stream of a job that ran (its `progress` events and the `end`), each event checked
    against the document's event schema, the JSON data against `Job` / `JobEnd`: schemathesis
    reads a 3.1 `text/event-stream` schema as one event's."""
    import httpx

    body = {"kind": "optimize", "request": {
        "loss": {"kind": "expression", "expression": "x^2 + 3*y^2"}, "start": [1.0, 1.0],
        "optimizer": {"name": "sgd", "lr": 0.1}, "max_steps": 50}}
    job = httpx.post(f"{module_server}/v1/jobs", json=body, timeout=30)
    assert job.status_code == 202, job.text
    live = schemathesis.openapi.from_url(f"{module_server}/openapi.json")
    case = live["/v1/jobs/{job_id}/events"]["GET"].Case(
        path_parameters={"job_id": job.json()["id"]})
    response = case.call(timeout=30)
    assert response.status_code == 200
    events = [line for line in response.text.splitlines() if line.startswith("event:")]
    assert events[-1] == "event: end" and "event: progress" in events
    case.validate_response(response)
