"""schemathesis over the OpenAPI document, as each kind of caller: no 5xx, answers as
documented, nothing the document calls invalid accepted. Each role gets the run `st run`
makes (examples, coverage: boundaries and missing or malformed parts, fuzzing, stateful
sequences), bounded and seeded, against a catalogue with routed leads and referrals.

schemathesis's engine is driven directly: its pytest integration (`from_fixture`) does not
work with pytest 9's node ids."""

import pytest
import schemathesis
from schemathesis.engine import Status, events

from tests.helpers import inquiry_body

CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance",
          "negative_data_rejection"]
CONFIG = """
seed = 20261
suppress-health-check = ["all"]
cache.enabled = false
generation.max-examples = 10
generation.database = "none"
[checks.negative_data_rejection]
# A body over 64 KiB answers 413 (CONTRACT §3), whatever else is wrong with it.
expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "415", "422", "429"]
"""
PUBLIC = r"^/api/v1/(treatments|inquiries)"
STAFF = r"^/api/v1/(leads|clinics|me|stats|treatments|currency-rates|users|people)"
CLINIC = r"^/api/v1/clinic/"


@pytest.fixture
def world(app, client, demo):
    """The demo catalogue, a coordinator, routed leads (one in review) and a clinic's key."""
    from leads.accounts.models import User
    from leads.accounts.operations import issue_clinic_key, issue_staff_token
    from leads.catalogue.models import Clinic
    from leads.core.database import db
    from leads.pipeline.models import Lead, Referral
    from leads.routing.operations import process_lead

    for consent in (True, True, False):
        body = inquiry_body(consent={"data_processing": True, "share_with_clinics": consent})
        assert client.post("/api/v1/inquiries", json=body).status_code == 202
    with app.app_context():
        for lead_id in db.session.scalars(db.select(Lead.id)).all():
            process_lead(lead_id)
        coordinator = User(email="coord@care.example", role="coordinator")
        db.session.add(coordinator)
        coordinator_token = issue_staff_token(coordinator)
        clinic_id = db.session.scalar(db.select(Referral.clinic_id).order_by(Referral.id))
        _, clinic_key = issue_clinic_key(db.session.get(Clinic, clinic_id))
        db.session.commit()
    return {"anonymous": None, "admin": demo, "coordinator": coordinator_token,
            "clinic": clinic_key}


def run(app, paths: str, token: str | None) -> dict[str, list[int]]:
    """Runs schemathesis over the operations under `paths`; fails with every failure it
    found; returns the statuses answered, by operation."""
    schema = schemathesis.openapi.from_wsgi(
        "/api/openapi.json", app, config=schemathesis.Config.from_str(CONFIG),
    ).include(path_regex=paths)
    schema.config.checks.update(included_check_names=CHECKS)
    if token:
        schema.config.update(headers={"Authorization": f"Bearer {token}"})
    statuses: dict[str, list[int]] = {}
    found = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.NonFatalError | events.FatalError):
            found.append(f"{getattr(event, 'label', '')}: {event.info.format()}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        for interaction in event.recorder.interactions.values():
            if interaction.response is not None:
                statuses.setdefault(event.recorder.label, []).append(
                    interaction.response.status_code)
        for checks in event.recorder.checks.values():
            found += [f"{check.failure_info.failure.operation}: "
                      f"{check.failure_info.failure.title}\n{check.failure_info.failure.message}"
                      for check in checks if check.status == Status.FAILURE]
    assert not found, "\n\n".join(dict.fromkeys(found))
    return statuses


def answered(statuses: dict[str, list[int]], label: str, *codes: int) -> bool:
    return any(code in statuses.get(label, []) for code in codes)


def test_public_endpoints_conform_for_anyone(app, world, monkeypatch):
    # The limit would turn most of the fuzzing of POST /api/v1/inquiries into 429s.
    monkeypatch.setitem(app.config, "INQUIRY_RATE_LIMIT", "100000 per minute")
    statuses = run(app, PUBLIC, None)
    assert answered(statuses, "POST /api/v1/inquiries", 202)
    assert answered(statuses, "POST /api/v1/inquiries", 422)
    assert answered(statuses, "GET /api/v1/treatments", 200)


def test_staff_endpoints_conform_for_a_coordinator(app, world):
    statuses = run(app, STAFF, world["coordinator"])
    assert answered(statuses, "GET /api/v1/leads/{lead_id}", 200)
    assert answered(statuses, "POST /api/v1/clinics", 403)


def test_staff_endpoints_conform_for_an_admin(app, world):
    statuses = run(app, STAFF, world["admin"])
    assert answered(statuses, "PATCH /api/v1/leads/{lead_id}", 200)
    assert answered(statuses, "PATCH /api/v1/clinics/{clinic_id}", 200, 422)
    assert answered(statuses, "POST /api/v1/leads/{lead_id}/transitions", 200, 409)


def test_clinic_endpoints_conform_for_a_clinic(app, world):
    statuses = run(app, CLINIC, world["clinic"])
    assert answered(statuses, "GET /api/v1/clinic/referrals", 200)
    assert answered(statuses, "GET /api/v1/clinic/referrals/{referral_id}", 200)


def test_the_document_lists_the_public_endpoints(client):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert {"/api/v1/inquiries", "/api/v1/inquiries/{reference}", "/api/v1/treatments"} <= set(
        document["paths"])
    assert client.get("/api/docs").status_code == 200
