"""schemathesis over the public endpoints' OpenAPI: no 5xx, nothing that breaks the document."""

import itertools

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def public_operations(app):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    schema = schema.include(path_regex=r"^/api/v1/(treatments|inquiries)")
    return [result.ok() for result in schema.get_all_operations()]


def test_public_endpoints_conform(app, demo):
    operations = public_operations(app)
    assert {op.label for op in operations} >= {
        "POST /api/v1/inquiries", "GET /api/v1/inquiries/{reference}", "GET /api/v1/treatments"}
    for operation, mode in itertools.product(operations, GenerationMode):
        has_input = bool(operation.body or operation.path_parameters or operation.query)
        if mode is GenerationMode.NEGATIVE and not has_input:
            continue  # nothing to break in a request with no input

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case):
            statuses.append(case.call_and_validate(checks=CHECKS).status_code)

        statuses = []
        conforms()
        assert len(statuses) >= (10 if has_input else 1), (operation.label, mode, statuses)


def test_the_document_lists_the_public_endpoints(client):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert {"/api/v1/inquiries", "/api/v1/inquiries/{reference}", "/api/v1/treatments"} <= set(
        document["paths"])
    assert client.get("/api/docs").status_code == 200
