"""schemathesis over the OpenAPI document: no 5xx, nothing that breaks the document, for the
public endpoints and for the staff and clinic endpoints called with valid credentials."""

import itertools

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def operations(app, path_regex: str):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    schema = schema.include(path_regex=path_regex)
    return [result.ok() for result in schema.get_all_operations()]


def statuses_of(operation, mode, max_examples: int, headers: dict | None) -> list[int]:
    statuses = []

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def conforms(case):
        statuses.append(case.call_and_validate(checks=CHECKS, headers=headers).status_code)

    conforms()
    return statuses


def fuzz(operations, max_examples: int, headers: dict | None = None) -> None:
    for operation, mode in itertools.product(operations, GenerationMode):
        has_input = bool(operation.body or operation.path_parameters or operation.query)
        if mode is GenerationMode.NEGATIVE and not has_input:
            continue  # nothing to break in a request with no input
        statuses = statuses_of(operation, mode, max_examples, headers)
        minimum = min(10, max_examples) if has_input else 1
        assert len(statuses) >= minimum, (operation.label, mode, statuses)


def test_public_endpoints_conform(app, demo):
    public = operations(app, r"^/api/v1/(treatments|inquiries)")
    assert {op.label for op in public} >= {
        "POST /api/v1/inquiries", "GET /api/v1/inquiries/{reference}", "GET /api/v1/treatments"}
    fuzz([op for op in public if op.method.upper() == "GET" or "inquiries" in op.path], 40)


def test_staff_endpoints_conform_for_an_admin(app, demo):
    staff = operations(app, r"^/api/v1/(leads|clinics|me|stats|treatments|currency-rates)")
    assert len(staff) >= 20
    fuzz(staff, 30, headers={"Authorization": f"Bearer {demo}"})


def test_clinic_endpoints_conform_for_a_clinic(app, catalogue):
    from leads.auth import issue_clinic_key
    from leads.extensions import db
    from leads.models import Clinic

    with app.app_context():
        _, key = issue_clinic_key(db.session.get(Clinic, min(catalogue["eligible"])))
        db.session.commit()
    fuzz(operations(app, r"^/api/v1/clinic/"), 30, headers={"Authorization": f"Bearer {key}"})


def test_the_document_lists_the_public_endpoints(client):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert {"/api/v1/inquiries", "/api/v1/inquiries/{reference}", "/api/v1/treatments"} <= set(
        document["paths"])
    assert client.get("/api/docs").status_code == 200
