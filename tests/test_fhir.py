"""Leads and referrals as FHIR R4 (CONTRACT §4, §5; issue 13): every Bundle answered parses
with `fhir.resources` R4B and goes through its JSON without loss; a clinic's Patient has
`telecom` only once it has accepted; and a clinic answering through `PATCH .../fhir/Task`
leaves the lead exactly as `/accept` or `/decline` would."""

import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.task import Task

from leads.core.errors import Invalid
from leads.fhir.operations import REQUEST_STATUS_OF, TASK_STATUS_OF, answer_task
from leads.pipeline.models import Referral
from leads.pipeline.states import LeadStatus, ReferralStatus
from tests.helpers import act, detail, field_errors, problem, route, submit

FHIR_JSON = "application/fhir+json"
# CONTRACT §4: requested, received, accepted, rejected for declined, completed for booked,
# cancelled, failed for expired; `quoted` is ours to place (leads/fhir/operations.py).
TASK_STATUSES = {
    "requested": "requested", "received": "received", "accepted": "accepted",
    "quoted": "in-progress", "booked": "completed", "declined": "rejected",
    "expired": "failed", "cancelled": "cancelled",
}
REQUEST_STATUSES = {
    "received": "active", "routed": "active", "quoted": "active", "booked": "active",
    "needs_review": "active", "completed": "completed", "closed": "revoked",
    "duplicate": "revoked", "spam": "entered-in-error",
}
REASON = "Fully booked until the spring."
# What differs between two leads that went through the same steps: ids, references, times,
# the e-mail, and the match's score (the second lead's clinics carry the first one's load).
IDENTITY = {"id", "reference", "email", "status_url", "referral_id", "lead_id", "quote_id",
            "at", "created_at", "updated_at", "responded_at", "expires_at", "score", "reasons"}


@pytest.mark.parametrize("status", list(ReferralStatus))
def test_each_referral_status_has_its_task_status(status):
    task_status = TASK_STATUS_OF[status]
    assert task_status == TASK_STATUSES[status]
    assert Task(status=task_status, intent="order").status == task_status


@pytest.mark.parametrize("status", list(LeadStatus))
def test_each_lead_status_has_its_service_request_status(status):
    assert REQUEST_STATUS_OF[status] == REQUEST_STATUSES[status]


def test_the_tables_map_every_status_and_no_other():
    assert set(TASK_STATUS_OF) == set(ReferralStatus) == set(TASK_STATUSES)
    assert set(REQUEST_STATUS_OF) == set(LeadStatus) == set(REQUEST_STATUSES)


@pytest.mark.parametrize(("task", "field"), [
    ({"status": "completed"}, "status"), ({"id": "8", "status": "accepted"}, "id")])
def test_answer_task_refuses_what_a_clinic_may_not_answer(task, field):
    with pytest.raises(Invalid) as refused:
        answer_task(Referral(id=7, status=ReferralStatus.RECEIVED), task)
    assert set(refused.value.errors) == {field}


def parsed_bundle(response) -> tuple[Bundle, dict]:
    """The answered Bundle, checked to parse and to survive a round trip through its JSON."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    answered = response.get_data(as_text=True)
    bundle = Bundle.model_validate_json(answered)
    again = Bundle.model_validate_json(bundle.model_dump_json())
    assert again == bundle
    assert json.loads(again.model_dump_json()) == json.loads(answered)
    return bundle, json.loads(answered)


def resources(body: dict, resource_type: str) -> list[dict]:
    return [e["resource"] for e in body["entry"] if e["resource"]["resourceType"] == resource_type]


def entry_of(body: dict, reference: dict) -> dict:
    [resource] = [e["resource"] for e in body["entry"] if e["fullUrl"] == reference["reference"]]
    return resource


def clinic_bundle(client, headers, referral_id):
    return client.get(f"/api/v1/clinic/referrals/{referral_id}/fhir", headers=headers)


def patch_task(client, headers, referral_id, body, content_type=FHIR_JSON):
    return client.patch(f"/api/v1/clinic/referrals/{referral_id}/fhir/Task", headers=headers,
                        data=body if isinstance(body, str | bytes) else json.dumps(body),
                        content_type=content_type)


def test_staff_read_the_whole_lead_as_a_bundle(client, routed):
    bundle, body = parsed_bundle(client.get(f"/api/v1/leads/{routed['lead_id']}/fhir",
                                            headers=routed["coordinator"]))
    lead = detail(client, routed["coordinator"], routed["lead_id"])
    assert body["type"] == "collection" and bundle.timestamp is not None
    assert len({e["fullUrl"] for e in body["entry"]}) == len(body["entry"])
    assert all(e["fullUrl"].startswith("urn:uuid:") for e in body["entry"])

    [patient] = resources(body, "Patient")
    assert patient["name"] == [{"given": ["Ana"], "family": "Ruiz"}]
    assert patient["birthDate"] == "1961"
    assert patient["communication"][0]["language"]["coding"][0]["code"] == "es"
    assert {(t["system"], t["value"]) for t in patient["telecom"]} == {
        ("email", lead["patient"]["email"]), ("phone", lead["patient"]["phone"])}

    [request] = resources(body, "ServiceRequest")
    assert request["code"]["coding"][0]["code"] == "stem-cell-spine-arthritis"
    assert request["note"] == [{"text": lead["condition"]}]
    assert request["status"] == "active" and request["intent"] == "order"
    assert entry_of(body, request["subject"]) == patient
    extensions = {e["url"].rsplit("/", 1)[-1]: e for e in request["extension"]}
    assert extensions["lead-budget"]["valueMoney"] == {"value": 12000.0, "currency": "USD"}
    destinations = [e["valueCodeableConcept"]["coding"][0]["code"]
                    for e in request["extension"] if e["url"].endswith("lead-destination")]
    assert destinations == ["MX", "PA"]
    assert request["occurrencePeriod"] == {"start": lead["travel_window"]["earliest"],
                                           "end": lead["travel_window"]["latest"]}

    tasks = resources(body, "Task")
    assert {int(t["id"]) for t in tasks} == set(routed["referrals"].values())
    assert len(resources(body, "Organization")) == len(tasks) == 3
    for task in tasks:
        assert task["status"] == "requested" and task["intent"] == "order"
        assert entry_of(body, task["focus"]) == request
        assert entry_of(body, task["for"]) == patient
        owner = entry_of(body, task["owner"])
        assert routed["referrals"][int(owner["id"])] == int(task["id"])


def test_an_unknown_lead_answers_404(client, routed):
    problem(client.get("/api/v1/leads/999999/fhir", headers=routed["coordinator"]), 404)


def test_a_clinic_sees_its_own_task_and_the_patients_telecom_only_once_it_accepted(
        client, routed):
    clinic_id, referral_id = sorted(routed["referrals"].items())[0]
    headers = routed["keys"][clinic_id]
    _, before = parsed_bundle(clinic_bundle(client, headers, referral_id))
    [patient] = resources(before, "Patient")
    assert "telecom" not in patient
    assert patient["name"] == [{"given": ["Ana"]}]  # the family name comes with acceptance
    [task] = resources(before, "Task")
    [owner] = resources(before, "Organization")
    # Reading the Bundle opens the referral, as reading it as JSON does.
    assert (task["id"], task["status"], owner["id"]) == (str(referral_id), "received",
                                                         str(clinic_id))

    assert act(client, headers, referral_id, "accept").status_code == 200
    _, after = parsed_bundle(clinic_bundle(client, headers, referral_id))
    [patient] = resources(after, "Patient")
    assert {t["system"] for t in patient["telecom"]} == {"email", "phone"}
    assert patient["name"] == [{"given": ["Ana"], "family": "Ruiz"}]
    assert [t["status"] for t in resources(after, "Task")] == ["accepted"]


def test_another_clinics_referral_answers_404(client, routed):
    (_, mine), (other_clinic, _) = sorted(routed["referrals"].items())[:2]
    other = routed["keys"][other_clinic]
    problem(clinic_bundle(client, other, mine), 404)
    problem(patch_task(client, other, mine, {"status": "accepted"}), 404)


def without_identity(value):
    """The answer with what tells two leads apart (ids, references, times, e-mail) left out."""
    if isinstance(value, dict):
        return {k: without_identity(v) for k, v in value.items() if k not in IDENTITY}
    if isinstance(value, list):
        return [without_identity(v) for v in value]
    return value


def answered_state(client, routed, lead_id, clinic_id, events_before: int) -> dict:
    """What the lead shows of one clinic's answer: its referral (as staff and as the clinic
    see it), the lead's status and the events the answer added to the timeline."""
    lead = detail(client, routed["coordinator"], lead_id)
    [referral] = [r for r in lead["referrals"] if r["clinic"]["id"] == clinic_id]
    as_clinic = client.get(f"/api/v1/clinic/referrals/{referral['id']}",
                           headers=routed["keys"][clinic_id])
    assert as_clinic.status_code == 200
    return without_identity({
        "status": lead["status"], "referral": referral, "as_clinic": as_clinic.get_json(),
        "events": lead["timeline"][events_before:]})


@pytest.mark.parametrize(("action", "body", "task"), [
    ("accept", None, {"status": "accepted"}),
    ("decline", {"reason": REASON}, {"resourceType": "Task", "status": "rejected",
                                     "statusReason": {"text": REASON}}),
])
def test_an_answer_through_fhir_is_the_same_as_through_the_api(
        app, client, db_session, routed, action, body, task):
    lead_ids = (routed["lead_id"], route(app, db_session, submit(client)["reference"]))
    referrals = [{r["clinic"]["id"]: r["id"] for r in detail(client, routed["coordinator"],
                                                             lead_id)["referrals"]}
                 for lead_id in lead_ids]
    clinic_id = min(set(referrals[0]) & set(referrals[1]))
    via_api_id, via_fhir_id = (referred[clinic_id] for referred in referrals)
    headers = routed["keys"][clinic_id]
    for referral_id in (via_api_id, via_fhir_id):
        # Both referrals opened first, so that the answers alone are compared.
        assert client.get(f"/api/v1/clinic/referrals/{referral_id}",
                          headers=headers).status_code == 200
    events_before = [len(detail(client, routed["coordinator"], lead_id)["timeline"])
                     for lead_id in lead_ids]

    assert act(client, headers, via_api_id, action, body).status_code == 200
    answered = patch_task(client, headers, via_fhir_id, task)
    assert answered.status_code == 200 and answered.mimetype == FHIR_JSON
    as_task = Task.model_validate_json(answered.get_data())
    assert (as_task.id, as_task.status) == (str(via_fhir_id), task["status"])
    assert (as_task.statusReason.text if as_task.statusReason else None) == (body or {}).get(
        "reason")

    via_api, via_fhir = (answered_state(client, routed, lead_id, clinic_id, events)
                         for lead_id, events in zip(lead_ids, events_before, strict=True))
    assert via_fhir == via_api
    assert via_fhir["events"] and via_fhir["referral"]["status"] == (
        ReferralStatus.ACCEPTED if action == "accept" else ReferralStatus.DECLINED)


def test_the_whole_task_a_get_answered_may_be_sent_back(client, routed):
    clinic_id, referral_id = sorted(routed["referrals"].items())[0]
    headers = routed["keys"][clinic_id]
    _, body = parsed_bundle(clinic_bundle(client, headers, referral_id))
    [task] = resources(body, "Task")
    answered = patch_task(client, headers, referral_id, {**task, "status": "accepted"},
                          content_type="application/json")
    assert answered.status_code == 200, answered.get_data(as_text=True)
    assert json.loads(answered.get_data())["status"] == "accepted"
    # Answered twice: a state conflict, as `/accept` answers it.
    again = problem(patch_task(client, headers, referral_id, {"status": "rejected"}), 409)
    assert again["current"] == ReferralStatus.ACCEPTED
    assert problem(act(client, headers, referral_id, "decline"), 409)["current"] == again[
        "current"]


@pytest.mark.parametrize(("body", "field"), [
    ({"status": "completed"}, "status"),
    ({"status": "in-progress"}, "status"),
    ({"status": None}, "status"),
    ({"statusReason": {"text": REASON}}, "status"),
    ({"status": "accepted", "statusReason": {"text": REASON}}, "statusReason"),
    ({"status": "rejected", "statusReason": {"text": 7}}, "statusReason.text"),
    ({"status": "rejected", "statusReason": {"coding": []}}, "statusReason.coding"),
    ({"status": "rejected", "statusReason": {"text": "x" * 2001}}, "statusReason.text"),
    ({"resourceType": "Patient", "status": "accepted"}, "resourceType"),
    ({"id": "999999", "status": "accepted"}, "id"),
    (["accepted"], "body"),
    ("", "body"),
])
def test_a_bad_task_answers_422_naming_the_field(client, routed, body, field):
    clinic_id, referral_id = sorted(routed["referrals"].items())[0]
    errors = field_errors(patch_task(client, routed["keys"][clinic_id], referral_id, body))
    assert field in errors, errors
    lead = detail(client, routed["coordinator"], routed["lead_id"])
    assert {r["status"] for r in lead["referrals"]} == {ReferralStatus.REQUESTED}


def test_a_task_not_sent_as_json_answers_415_and_broken_json_400(client, routed):
    clinic_id, referral_id = sorted(routed["referrals"].items())[0]
    headers = routed["keys"][clinic_id]
    problem(patch_task(client, headers, referral_id, '{"status": "accepted"}',
                       content_type="text/plain"), 415)
    problem(patch_task(client, headers, referral_id, '{"status": "accepted"'), 400)
    problem(patch_task(client, headers, referral_id, b'{"status": "\xff"}'), 400)


def test_an_erased_lead_still_answers_a_bundle_without_the_person(client, routed):
    email = detail(client, routed["coordinator"], routed["lead_id"])["patient"]["email"]
    erased = client.post("/api/v1/people/erase", headers=routed["admin"],
                         json={"email": email, "reason": "The patient asked."})
    assert erased.status_code == 200, erased.get_json()
    _, body = parsed_bundle(client.get(f"/api/v1/leads/{routed['lead_id']}/fhir",
                                       headers=routed["admin"]))
    [patient] = resources(body, "Patient")
    [request] = resources(body, "ServiceRequest")
    assert not {"name", "telecom"} & set(patient) and "note" not in request
    assert email not in json.dumps(body)


def test_the_tasks_follow_their_referrals(client, routed):
    (quoting, quoted), (declining, declined) = sorted(routed["referrals"].items())[:2]
    assert act(client, routed["keys"][quoting], quoted, "accept").status_code == 200
    assert act(client, routed["keys"][quoting], quoted, "quote",
               {"amount": 9500, "currency": "USD"}).status_code == 200
    assert act(client, routed["keys"][declining], declined, "decline",
               {"reason": REASON}).status_code == 200
    _, body = parsed_bundle(client.get(f"/api/v1/leads/{routed['lead_id']}/fhir",
                                       headers=routed["coordinator"]))
    tasks = {int(t["id"]): t for t in resources(body, "Task")}
    assert (tasks[quoted]["status"], tasks[quoted]["businessStatus"]["text"]) == (
        "in-progress", "quoted")
    assert (tasks[declined]["status"], tasks[declined]["statusReason"]) == (
        "rejected", {"text": REASON})
    [request] = resources(body, "ServiceRequest")
    assert request["status"] == "active"  # the lead is `quoted`: still being worked
