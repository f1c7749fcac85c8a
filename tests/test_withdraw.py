"""A patient withdraws their inquiry (CONTRACT §3, §6) through HTTP: from every state but
`completed`, `closed` and `spam` the lead is closed by the patient, its open referrals are
cancelled and each of those clinics is mailed once; from those three, 409; a wrong token,
404. Then through the real worker and an SMTP server, and with CORS for a marketplace."""

from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from leads.core.clock import today
from leads.messaging.models import EmailMessage
from leads.pipeline.models import Referral
from leads.pipeline.states import LeadStatus
from tests.helpers import (
    act,
    auth,
    detail,
    events,
    inquiry_body,
    inquiry_path,
    lead_id_of,
    mail_text,
    problem,
    route,
    submit,
    transition,
    wait_until,
)

# Spelled here, not read from the code under test.
WITHDRAWABLE = {"received", "routed", "quoted", "booked", "needs_review", "duplicate"}
FINAL = {"completed", "closed", "spam"}
OPEN_REFERRALS = {"requested", "received", "accepted", "quoted"}
QUOTE = {"amount": 9400.5, "currency": "EUR", "includes": ["surgery", "4 nights hotel"],
         "valid_until": (today() + timedelta(days=20)).isoformat()}
SHOP = "https://shop.example"


class Story:
    """Leads brought to a status the way the world brings them there: the patient's form,
    the worker's routing, a clinic's answers and a coordinator's transitions."""

    def __init__(self, app, client, db_session, staff):
        self.app, self.client, self.db, self.staff = app, client, db_session, staff
        self.keys = {}

    def clinic_key(self, clinic_id: int) -> dict:
        if clinic_id not in self.keys:
            response = self.client.post(f"/api/v1/clinics/{clinic_id}/api-keys",
                                        headers=self.staff["admin"])
            self.keys[clinic_id] = auth(response.get_json()["key"])
        return self.keys[clinic_id]

    def lead_id(self, accepted) -> int:
        return lead_id_of(self.db, accepted["reference"])

    def move(self, accepted, to: str) -> None:
        response = transition(self.client, self.staff["coordinator"], self.lead_id(accepted), to)
        assert response.status_code == 200, response.get_json()

    def received(self):
        return submit(self.client)

    def routed(self):
        accepted = submit(self.client)
        route(self.app, self.db, accepted["reference"])
        return accepted

    def quoted(self):
        accepted = self.routed()
        referral = self.db.scalars(select(Referral).where(
            Referral.lead_id == self.lead_id(accepted)).order_by(Referral.id)).first()
        key = self.clinic_key(referral.clinic_id)
        assert act(self.client, key, referral.id, "accept").status_code == 200
        assert act(self.client, key, referral.id, "quote", QUOTE).status_code == 200
        return accepted

    def booked(self):
        accepted = self.quoted()
        self.move(accepted, "booked")
        return accepted

    def completed(self):
        accepted = self.booked()
        self.move(accepted, "completed")
        return accepted

    def closed(self):
        accepted = self.routed()
        self.move(accepted, "closed")
        return accepted

    def needs_review(self):
        accepted = submit(self.client, consent={"data_processing": True,
                                                "share_with_clinics": False, "marketing": False})
        route(self.app, self.db, accepted["reference"])
        return accepted

    def duplicate(self):
        patient = inquiry_body()["patient"]
        route(self.app, self.db, submit(self.client, patient=patient)["reference"])
        return submit(self.client, patient=patient)

    def spam(self):
        return submit(self.client, website="http://pills.example")

    def lead_in(self, status: str) -> dict:
        accepted = getattr(self, status)()
        self.db.expire_all()
        assert self.lead(accepted)["status"] == status
        return accepted

    def lead(self, accepted) -> dict:
        return detail(self.client, self.staff["coordinator"], self.lead_id(accepted))


@pytest.fixture
def story(app, client, db_session, staff):
    return Story(app, client, db_session, staff)


def cancellation_mail(db_session) -> list[EmailMessage]:
    db_session.expire_all()
    return list(db_session.scalars(select(EmailMessage).where(
        EmailMessage.kind == "referral_cancelled").order_by(EmailMessage.id)))


def clinic_emails(db_session, referral_ids) -> list[str]:
    return sorted(r.clinic.email for r in db_session.scalars(
        select(Referral).where(Referral.id.in_(referral_ids))))


def test_every_status_is_either_withdrawable_or_final():
    assert set(LeadStatus) == WITHDRAWABLE | FINAL and not WITHDRAWABLE & FINAL
    assert all(callable(getattr(Story, status, None)) for status in LeadStatus)


@pytest.mark.parametrize("status", sorted(WITHDRAWABLE))
def test_a_patient_withdraws_from(status, client, db_session, story):
    accepted = story.lead_in(status)
    before = story.lead(accepted)
    open_ids = {r["id"] for r in before["referrals"] if r["status"] in OPEN_REFERRALS}

    response = client.post(inquiry_path(accepted, "withdraw"))

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == client.get(inquiry_path(accepted)).get_json()
    assert response.get_json()["status"] == "closed"
    after = story.lead(accepted)
    assert after["status"] == "closed"
    for referral in after["referrals"]:
        was = next(r["status"] for r in before["referrals"] if r["id"] == referral["id"])
        assert referral["status"] == ("cancelled" if referral["id"] in open_ids else was)
    withdrawn = events(after, "status_changed")[-1]
    assert withdrawn["actor"] == "patient"
    assert withdrawn["data"] == {"from": status, "to": "closed",
                                 "reason": "The patient withdrew the inquiry."}
    cancelled = [e for e in events(after, "referral_status_changed") if e["data"]["to"] ==
                 "cancelled"]
    assert {e["data"]["referral_id"] for e in cancelled} == open_ids
    assert {e["actor"] for e in cancelled} <= {"patient"}

    mail = cancellation_mail(db_session)
    assert sorted(m.recipient for m in mail) == clinic_emails(db_session, open_ids)
    patient = before["patient"]
    for message in mail:
        assert accepted["reference"] in message.subject
        assert accepted["reference"] in message.body_text
        for private in (patient["email"], patient["first_name"], patient["last_name"],
                        patient["phone"]):
            assert private not in message.body_text and private not in message.body_html
    if status in ("routed", "quoted"):
        assert mail, "a lead with clinics tells them"

    again = problem(client.post(inquiry_path(accepted, "withdraw")), 409)
    assert "withdrawn" in again["detail"]
    assert len(cancellation_mail(db_session)) == len(mail)


@pytest.mark.parametrize("status", sorted(FINAL))
def test_no_withdrawal_from(status, client, db_session, story):
    accepted = story.lead_in(status)
    before = story.lead(accepted)

    body = problem(client.post(inquiry_path(accepted, "withdraw")), 409)

    assert "spam" not in body["detail"]  # a bot is not told what its inquiry was judged
    after = story.lead(accepted)
    assert after["status"] == status
    assert after["referrals"] == before["referrals"]
    assert after["timeline"] == before["timeline"]
    assert cancellation_mail(db_session) == []


def test_a_wrong_or_missing_token_withdraws_nothing(client, db_session, story):
    accepted = story.lead_in("routed")
    reference = accepted["reference"]
    for query in ({}, {"token": ""}, {"token": "not-the-token"}):
        problem(client.post(f"/api/v1/inquiries/{reference}/withdraw", query_string=query), 404)
    problem(client.post(inquiry_path({**accepted, "reference": "MT-0000000"}, "withdraw")), 404)
    assert story.lead(accepted)["status"] == "routed"
    assert cancellation_mail(db_session) == []


def test_withdrawing_from_a_marketplace_site_answers_cors(gunicorn_server, client, story):
    accepted = story.lead_in("routed")
    base = gunicorn_server(workers=1, CORS_ORIGINS=SHOP)
    url = base + inquiry_path(accepted, "withdraw")

    preflight = requests.options(url, timeout=10, headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == SHOP
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    elsewhere = requests.options(url, timeout=10, headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in elsewhere.headers

    withdrawn = requests.post(url, timeout=10, headers={"Origin": SHOP})
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "closed"
    assert withdrawn.headers["Access-Control-Allow-Origin"] == SHOP
    refused = requests.post(url, timeout=10, headers={"Origin": SHOP})
    assert refused.status_code == 409
    assert refused.headers["Access-Control-Allow-Origin"] == SHOP


def test_each_cancelled_clinic_is_mailed_once_through_the_worker(
        client, db_session, catalogue, smtp_sink, start_worker):
    start_worker(SMTP_PORT=smtp_sink.port)
    body = inquiry_body()
    accepted = client.post("/api/v1/inquiries", json=body).get_json()
    lead_id = lead_id_of(db_session, accepted["reference"])

    def referrals():
        db_session.expire_all()
        return db_session.scalars(select(Referral).where(Referral.lead_id == lead_id)).all()

    wait_until(referrals, timeout=30, message="routing")
    clinics = sorted(r.clinic.email for r in referrals())
    wait_until(lambda: len(smtp_sink.received()) == 1 + len(clinics), timeout=40,
               message="the acknowledgement and the notifications")

    assert client.post(inquiry_path(accepted, "withdraw")).status_code == 200

    def told():
        return [m for m in smtp_sink.received() if "cancelled" in m["Subject"]]

    wait_until(lambda: len(told()) >= len(clinics), timeout=40, message="cancellation mail")
    # Every one recorded as sent: none is left to go out a second time.
    wait_until(lambda: all(m.status == "sent" for m in cancellation_mail(db_session)),
               timeout=10, message="every cancellation marked sent")
    assert sorted(m["To"] for m in told()) == clinics
    for message in told():
        text = mail_text(message)
        assert accepted["reference"] in message["Subject"] and accepted["reference"] in text
        assert body["patient"]["email"] not in message.as_string()
        assert body["patient"]["last_name"] not in message.as_string()
    assert {r.status for r in referrals()} == {"cancelled"}
    assert len(smtp_sink.received()) == 1 + 2 * len(clinics)
