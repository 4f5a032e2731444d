"""Property-based tests of the job API against its own OpenAPI schema (schemathesis): no request it can
generate, valid or not, gets a 500, and the answers conform to the schema's status codes, content types and
response bodies."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from biqe_lab.api.app import create_app
from biqe_lab.api.settings import Settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The schema's operations, read from the app itself (no server, no network).
OPERATIONS = ["GET /healthz", "POST /v1/process-scan", "GET /v1/process-scan/{job_id}",
              "DELETE /v1/process-scan/{job_id}", "GET /v1/process-scan/{job_id}/result", "GET /v1/usage"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("schema-data"), max_upload_mb=1, max_pages=2))
    app.state.store.create_account("fuzz")
    _, app.state.api_key = app.state.store.create_key("fuzz", "schemathesis")
    return app


@pytest.fixture(scope="module")
def operations(app) -> dict:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return {result.ok().label: result.ok() for result in schema.get_all_operations()}


def test_the_schema_lists_every_route(operations):
    assert sorted(operations) == sorted(OPERATIONS)


def _fuzz(operation, examples: int, check_case) -> None:
    @given(case=operation.as_strategy())
    @hypothesis_settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
                         database=None)
    def run(case) -> None:
        check_case(case)

    run()


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_error_with_a_valid_key(label, operations, app):
    """With a real key the routes are reached: every generated request ends as the schema documents it."""
    _fuzz(operations[label], 30,
          lambda case: case.call_and_validate(headers={"X-API-Key": app.state.api_key}, checks=CHECKS))


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_error_without_a_key(label, operations):
    """Without a key every route but the health check answers 401, never 500."""
    def check(case) -> None:
        response = case.call_and_validate(checks=[not_a_server_error])
        if label != "GET /healthz":
            assert response.status_code == 401, (label, response.status_code, response.text)

    _fuzz(operations[label], 10, check)
