"""schemathesis against the exported OpenAPI document: no server errors, no answer that
violates the declared schema. Bounded: a few examples per operation, small limits."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from service.main import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

APP = create_app(Settings(
    jobs_db_path=":memory:", max_steps=200, max_runs=64, max_work=200_000,
    max_landscape_points=2500, max_recorded_values=100_000, request_timeout_s=2.0,
    job_max_active=4, max_queue=64))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_answers_match_the_schema(case):
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
