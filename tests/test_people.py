"""A person's rights over their data (CONTRACT §4 *People*, §1 `people`): export everything
held about an e-mail address, erase it through the API, the CLI or the retention job, and
afterwards find the person nowhere while the funnel's figures stay as they were."""

import io
import json
from datetime import timedelta

import pytest
from celery import Celery
from sqlalchemy import select, update

from leads.core.clock import today, utcnow
from leads.messaging.models import EmailMessage
from leads.pipeline.models import Lead, Referral, TimelineEvent
from tests import samples
from tests.helpers import (
    REDIS_URL,
    auth,
    cli,
    field_errors,
    inquiry_body,
    problem,
    route,
    status_token,
    submit,
    transition,
    wait_until,
)

EMAIL = "Zephyrine.Quixotova@example.org"
PATIENT = {"first_name": "Zephyrine", "last_name": "Quixotova", "email": EMAIL,
           "phone": "+1 415 555 0199", "country": "US", "language": "en", "birth_year": 1958}
CONDITION = "Xylophonic spondylosis of the lumbar spine, confirmed by MRI in the spring."
NOTE = "Called Zephyrine: prefers mornings, daughter Octavia translates."
DECLINE = "Declined: Quixotova's cardiology history is outside our remit."
QUOTE_NOTE = "Includes a driver for Ms Quixotova from the airport."
REOPEN = "Reopened: Zephyrine phoned about her second inquiry."
DICOM_NAME = "Quixotova^Zephyrine"
# What must be found nowhere once the person is erased.
DISTINCTIVE = ["Zephyrine", "Quixotova", "zephyrine.quixotova", "5550199", "Xylophonic",
               "Octavia", "cardiology", "driver for", "second inquiry"]
OTHER_EMAIL = "bartholomew.other@example.org"


def somebody_else() -> dict:
    return {**inquiry_body()["patient"], "first_name": "Bartholomew", "last_name": "Other",
            "email": OTHER_EMAIL}


@pytest.fixture
def person(app, client, db_session, staff):
    """Two leads of one person (the second a duplicate of the first, then split off again),
    with a note, a quote with notes, a decline with a reason, a transition reason and a DICOM
    file; and a lead of somebody else."""
    first = submit(client, patient=PATIENT, condition=CONDITION)
    lead_id = route(app, db_session, first["reference"])
    second = submit(client, patient=PATIENT, condition=CONDITION)
    second_id = db_session.scalar(select(Lead.id).where(Lead.reference == second["reference"]))
    other = submit(client, patient=somebody_else())
    admin, coordinator = staff["admin"], staff["coordinator"]

    assert client.post(f"/api/v1/leads/{lead_id}/notes", headers=coordinator,
                       json={"body": NOTE}).status_code == 201
    assert transition(client, coordinator, second_id, "received", REOPEN).status_code == 200
    upload = client.post(f"/api/v1/inquiries/{first['reference']}/attachments",
                         query_string={"token": status_token(first)},
                         content_type="multipart/form-data",
                         data={"file": (io.BytesIO(samples.dicom(DICOM_NAME)),
                                        "Quixotova-mri.dcm")})
    assert upload.status_code == 201, upload.get_json()

    referrals = db_session.scalars(select(Referral).where(Referral.lead_id == lead_id)
                                   .order_by(Referral.id)).all()
    keys = {r.id: auth(client.post(f"/api/v1/clinics/{r.clinic_id}/api-keys",
                                   headers=admin).get_json()["key"]) for r in referrals}
    accepting, declining = referrals[0].id, referrals[1].id
    act = "/api/v1/clinic/referrals/{}/{}".format
    assert client.post(act(accepting, "accept"), headers=keys[accepting]).status_code == 200
    assert client.post(act(accepting, "quote"), headers=keys[accepting], json={
        "amount": 9500, "currency": "USD", "includes": ["treatment"],
        "valid_until": (today() + timedelta(days=30)).isoformat(),
        "notes": QUOTE_NOTE}).status_code == 200
    assert client.post(act(declining, "decline"), headers=keys[declining],
                       json={"reason": DECLINE}).status_code == 200
    return {"leads": {first["reference"]: lead_id, second["reference"]: second_id},
            "tokens": {first["reference"]: status_token(first),
                       second["reference"]: status_token(second)},
            "other": other["reference"], "keys": keys, "attachment": upload.get_json()["id"],
            "accepting": accepting, **staff}


def export(client, headers, email=EMAIL):
    return client.post("/api/v1/people/export", headers=headers, json={"email": email})


def erase(client, headers, email=EMAIL, reason="The patient asked us to delete her data."):
    return client.post("/api/v1/people/erase", headers=headers,
                       json={"email": email, "reason": reason})


def everything_shown(client, person) -> str:
    """Every answer that could show the person, as one text."""
    coordinator = person["coordinator"]
    texts = [client.get("/api/v1/leads", headers=coordinator),
             client.get("/api/v1/leads/export.csv", headers=coordinator),
             client.get("/api/v1/stats/funnel", headers=coordinator)]
    for q in ("Zephyrine", "quixotova", EMAIL, "Zephyrine Quixotova"):
        texts.append(client.get("/api/v1/leads", headers=coordinator, query_string={"q": q}))
    for reference, lead_id in person["leads"].items():
        texts.append(client.get(f"/api/v1/leads/{lead_id}", headers=coordinator))
        texts.append(client.get(f"/api/v1/inquiries/{reference}",
                                query_string={"token": person["tokens"][reference]}))
        texts.append(client.get(f"/api/v1/leads/{lead_id}/attachments/{person['attachment']}",
                                headers=coordinator))
    for referral_id, key in person["keys"].items():
        texts.append(client.get("/api/v1/clinic/referrals", headers=key))
        texts.append(client.get(f"/api/v1/clinic/referrals/{referral_id}", headers=key))
        texts.append(client.get(f"/api/v1/clinic/referrals/{referral_id}/attachments/"
                                f"{person['attachment']}", headers=key))
    for response in texts:
        assert response.status_code in (200, 404), (response.status_code, response.get_json())
    return "\n".join(r.get_data().decode("utf-8", "replace") for r in texts)


def found(text: str) -> list[str]:
    lowered = text.lower()
    return [s for s in DISTINCTIVE if s.lower() in lowered]


def test_export_lists_every_lead_of_that_address_and_nothing_of_anyone_elses(client, person):
    response = export(client, person["admin"], email=EMAIL.upper())
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"email", "leads"}
    assert {lead["reference"] for lead in body["leads"]} == set(person["leads"])
    text = json.dumps(body)
    assert "Bartholomew" not in text and OTHER_EMAIL not in text
    assert person["other"] not in text
    first = next(lead for lead in body["leads"] if lead["id"] == min(person["leads"].values()))
    assert first["patient"]["first_name"] == "Zephyrine" and first["condition"] == CONDITION
    assert {"referrals", "timeline", "attachments", "messages", "quotes"} <= set(first)
    assert [a["filename"] for a in first["attachments"]] == ["Quixotova-mri.dcm"]
    assert any(e["data"].get("body") == NOTE for e in first["timeline"])
    assert [q["notes"] for q in first["quotes"]] == [QUOTE_NOTE]
    assert first["quotes"][0]["referral_id"] == person["accepting"]
    kinds = {m["kind"] for m in first["messages"]}
    assert {"acknowledgement", "referral_notification"} <= kinds
    assert all(set(m) == {"kind", "sent_at", "subject"} for m in first["messages"])


def test_export_of_an_unknown_address_is_empty_and_bad_input_is_named(client, person):
    assert export(client, person["admin"], "nobody@example.org").get_json() == {
        "email": "nobody@example.org", "leads": []}
    assert "email" in field_errors(export(client, person["admin"], "not an address"))
    assert "email" in field_errors(client.post("/api/v1/people/export",
                                               headers=person["admin"], json={}))
    problem(export(client, person["coordinator"]), 403)
    problem(erase(client, person["coordinator"]), 403)
    problem(export(client, {}), 401)


def test_after_erasure_no_endpoint_shows_the_person_and_the_funnel_is_unchanged(
        client, db_session, person):
    admin = person["admin"]
    before = everything_shown(client, person)
    assert set(found(before)) == set(DISTINCTIVE)
    funnel_before = client.get("/api/v1/stats/funnel", headers=admin).get_json()

    response = erase(client, admin, email=EMAIL.lower())
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"leads": 2, "attachments": 1}

    after = everything_shown(client, person)
    assert found(after) == [], found(after)
    assert client.get("/api/v1/stats/funnel", headers=admin).get_json() == funnel_before
    assert export(client, admin).get_json() == {"email": EMAIL, "leads": []}
    for reference, token in person["tokens"].items():
        problem(client.get(f"/api/v1/inquiries/{reference}", query_string={"token": token}), 404)

    # What the funnel counts stays on the lead, and one event says who erased it and why.
    lead_id = min(person["leads"].values())
    lead = client.get(f"/api/v1/leads/{lead_id}", headers=admin).get_json()
    assert lead["status"] == "quoted" and lead["treatment"] == "stem-cell-spine-arthritis"
    assert lead["patient"]["country"] == "US" and lead["patient"]["first_name"] is None
    assert lead["condition"] is None and lead["attachments"] == []
    assert [r["status"] for r in lead["referrals"]][:2] == ["quoted", "declined"]
    [erased] = [e for e in lead["timeline"] if e["kind"] == "erased"]
    assert erased["actor"] == f"user:{person['admin_id']}"
    assert erased["data"] == {"reason": "The patient asked us to delete her data."}
    assert lead["timeline"][-1] == erased

    # The e-mail records keep no body and no address.
    db_session.expire_all()
    messages = db_session.scalars(select(EmailMessage).where(
        EmailMessage.lead_id.in_(person["leads"].values()))).all()
    assert messages and all(m.recipient == "" and m.body_text == "" and m.body_html == ""
                            for m in messages)
    assert all(m.status in ("sent", "cancelled") for m in messages)

    # Somebody else's lead is untouched; a new inquiry from the address is no duplicate.
    other = client.get("/api/v1/leads", headers=admin, query_string={"q": OTHER_EMAIL})
    assert [lead["reference"] for lead in other.get_json()["items"]] == [person["other"]]
    again = submit(client, patient=PATIENT, condition=CONDITION)
    again_lead = db_session.scalar(select(Lead).where(Lead.reference == again["reference"]))
    assert again_lead.status == "received" and again_lead.duplicate_of_id is None
    assert erase(client, admin).get_json() == {"leads": 1, "attachments": 0}


def test_people_export_and_erase_from_the_cli(app, client, db_session, person):
    exported = cli(app, "people", "export", "--email", EMAIL)
    assert exported.exit_code == 0, exported.output
    body = json.loads(exported.output)
    assert {lead["reference"] for lead in body["leads"]} == set(person["leads"])
    assert "Bartholomew" not in exported.output

    refused = cli(app, "people", "erase", "--email", EMAIL, "--by", "coord@care.example")
    assert refused.exit_code == 1 and "not an active admin" in refused.output
    erased = cli(app, "people", "erase", "--email", EMAIL, "--by", "admin@care.example")
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output) == {"leads": 2, "attachments": 1}

    assert found(everything_shown(client, person)) == []
    assert json.loads(cli(app, "people", "export", "--email", EMAIL).output)["leads"] == []
    events = db_session.scalars(select(TimelineEvent).where(TimelineEvent.kind == "erased")).all()
    assert len(events) == 2
    assert {(e.actor, e.data["reason"]) for e in events} == {
        (f"user:{person['admin_id']}", "At the person's request.")}


def closed_long_ago(client, db_session, staff, app, first_name: str, days: int = 731) -> int:
    """A lead closed by a coordinator, moved back in time by writing when it entered its
    status `days` ago (RETENTION_DAYS is 730); answers its id."""
    accepted = submit(client, patient={**somebody_else(), "first_name": first_name,
                                       "email": f"{first_name.lower()}@example.org"})
    lead_id = route(app, db_session, accepted["reference"])
    assert transition(client, staff["coordinator"], lead_id, "closed",
                      f"{first_name} found another clinic").status_code == 200
    entered_status_long_ago(db_session, lead_id, days)
    return lead_id


def entered_status_long_ago(db_session, lead_id: int, days: int) -> None:
    db_session.execute(update(TimelineEvent).where(
        TimelineEvent.lead_id == lead_id, TimelineEvent.kind == "status_changed")
        .values(at=utcnow() - timedelta(days=days)))
    db_session.commit()


def test_the_retention_job_erases_old_final_leads_and_leaves_recent_ones(
        app, client, db_session, staff, start_worker, smtp_sink):
    from workers.settings import celery_settings

    schedule = celery_settings(app.config)["beat_schedule"]
    assert any(entry["task"] == "erase_expired_leads" for entry in schedule.values())

    old = closed_long_ago(client, db_session, staff, app, "Oldcastle")
    recent = closed_long_ago(client, db_session, staff, app, "Newcombe", days=729)
    old_routed = route(app, db_session, submit(client)["reference"])
    entered_status_long_ago(db_session, old_routed, 731)

    start_worker(SMTP_PORT=smtp_sink.port)
    Celery(broker=REDIS_URL).send_task("erase_expired_leads")

    def erased(lead_id):
        db_session.expire_all()
        return db_session.get(Lead, lead_id).erased_at is not None

    wait_until(lambda: erased(old), timeout=30, message="the old closed lead erased")
    lead = client.get(f"/api/v1/leads/{old}", headers=staff["admin"]).get_json()
    assert lead["status"] == "closed" and lead["patient"]["first_name"] is None
    assert "Oldcastle" not in json.dumps(lead)
    assert [(e["actor"], e["kind"]) for e in lead["timeline"]][-1] == ("system", "erased")
    assert "730" in lead["timeline"][-1]["data"]["reason"]
    assert not erased(recent) and not erased(old_routed)
    assert db_session.get(Lead, recent).first_name == "Newcombe"


def test_a_lead_held_by_another_writer_when_the_job_runs_is_erased_once_it_is_let_go(
        app, client, db_session, staff):
    """The job waits for a lead another transaction holds (a worker routing it, a clinic
    answering) rather than pass it over until the next hourly run."""
    import threading

    from sqlalchemy import text

    from leads.core.database import db
    from leads.pipeline.timeline import SYSTEM
    from leads.privacy import people

    lead_id = closed_long_ago(client, db_session, staff, app, "Oldcastle")
    erased = []

    def run_the_job():
        with app.app_context():
            erased.append(people.erase_expired(utcnow(), 730, SYSTEM))
            db.session.remove()

    with db_session.get_bind().connect() as other_writer:
        if other_writer.dialect.name == "postgresql":
            other_writer.execute(text("SELECT id FROM leads WHERE id = :id FOR UPDATE"),
                                 {"id": lead_id})
        else:
            other_writer.execute(text("UPDATE leads SET updated_at = updated_at WHERE id = :id"),
                                 {"id": lead_id})
        job = threading.Thread(target=run_the_job)
        job.start()
        job.join(timeout=1)
        assert job.is_alive(), "the job ran past a lead another writer held"
        other_writer.commit()
    job.join(timeout=30)
    assert erased == [1]
    db_session.expire_all()
    assert db_session.get(Lead, lead_id).erased_at is not None
