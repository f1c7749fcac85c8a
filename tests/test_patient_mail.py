"""The patient's links and the mail that follows the acknowledgement (CONTRACT §1
STATUS_PAGE_URL, §7): `status_url` and every link mailed to a patient follow STATUS_PAGE_URL;
each quote mails the patient once, in their language, with the clinic, the amount and the
link, through the real worker into a real SMTP server."""

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from leads.core.clock import today
from leads.messaging.models import EmailMessage
from leads.pipeline.models import Referral
from tests.helpers import (
    act,
    auth,
    inquiry_body,
    lead_id_of,
    mail_text,
    route,
    status_token,
    submit,
    wait_until,
)

QUOTE = {"amount": 9400.5, "currency": "EUR", "includes": ["cirugía", "4 noches de hotel"],
         "valid_until": (today() + timedelta(days=20)).isoformat()}
MARKETPLACE = "https://market.example/inquiry/{reference}?t={token}"


def first_referral(db_session, reference: str) -> Referral:
    db_session.expire_all()
    return db_session.scalars(select(Referral).where(
        Referral.lead_id == lead_id_of(db_session, reference)).order_by(Referral.id)).first()


def quote_as_clinic(client, admin, referral: Referral, quote=QUOTE) -> None:
    key = auth(client.post(f"/api/v1/clinics/{referral.clinic_id}/api-keys",
                           headers=admin).get_json()["key"])
    assert act(client, key, referral.id, "accept").status_code == 200
    response = act(client, key, referral.id, "quote", quote)
    assert response.status_code == 200, response.get_json()


def mail_of_kind(db_session, kind: str) -> list[EmailMessage]:
    db_session.expire_all()
    return list(db_session.scalars(select(EmailMessage).where(EmailMessage.kind == kind)
                                   .order_by(EmailMessage.id)))


def test_status_url_and_every_patient_link_follow_status_page_url(
        app, client, db_session, staff, monkeypatch):
    default = submit(client)
    assert default["status_url"] == (
        f"http://testserver/status/{default['reference']}?token={status_token(default)}")

    monkeypatch.setitem(app.config, "STATUS_PAGE_URL", MARKETPLACE)
    accepted = submit(client)
    token = parse_qs(urlparse(accepted["status_url"]).query)["t"][0]
    link = f"https://market.example/inquiry/{accepted['reference']}?t={token}"
    assert accepted["status_url"] == link
    route(app, db_session, accepted["reference"])
    quote_as_clinic(client, staff["admin"], first_referral(db_session, accepted["reference"]))
    lead_id = lead_id_of(db_session, accepted["reference"])
    patients = [m for m in mail_of_kind(db_session, "acknowledgement")
                + mail_of_kind(db_session, "quote") if m.lead_id == lead_id]
    assert [m.kind for m in patients] == ["acknowledgement", "quote"]
    for message in patients:
        assert link in message.body_text and link in message.body_html


@pytest.mark.parametrize("setting, wrong", [
    ("https://m.example/{reference}", "{token}"),
    ("https://m.example/{reference}?token={token}&{campaign}", "campaign"),
    ("https://m.example/{reference?token={token}", "STATUS_PAGE_URL"),
])
def test_a_status_page_url_without_its_parts_stops_the_start(monkeypatch, setting, wrong):
    from config import Config

    monkeypatch.setenv("STATUS_PAGE_URL", setting)
    with pytest.raises(RuntimeError, match="STATUS_PAGE_URL") as refused:
        Config()
    assert wrong in str(refused.value)


@pytest.mark.parametrize("language, words", [
    ("es", ("presupuesto", "Incluye: cirugía, 4 noches de hotel")),
    ("de", ("Angebot", "Enthalten: cirugía")),
    ("en", ("quote", "It includes: cirugía")),
    ("fr", ("quote", "It includes: cirugía")),
])
def test_each_quote_mails_the_patient_once_in_their_language(
        app, client, db_session, staff, language, words):
    body = inquiry_body()
    body["patient"]["language"] = language
    accepted = submit(client, patient=body["patient"])
    route(app, db_session, accepted["reference"])
    referral = first_referral(db_session, accepted["reference"])
    quote_as_clinic(client, staff["admin"], referral)

    [message] = mail_of_kind(db_session, "quote")
    subject_word, included = words
    assert message.recipient == body["patient"]["email"]
    assert subject_word in message.subject and accepted["reference"] in message.subject
    assert referral.clinic.name in message.subject
    assert "9400.50 EUR" in message.body_text and "9400.50 EUR" in message.body_html
    assert included in message.body_text
    assert accepted["status_url"] in message.body_text

    # A revised quote is a quote of its own: one more mail, not a repeat of the first.
    key = auth(client.post(f"/api/v1/clinics/{referral.clinic_id}/api-keys",
                           headers=staff["admin"]).get_json()["key"])
    assert act(client, key, referral.id, "quote", {**QUOTE, "amount": 8000}).status_code == 200
    revised = mail_of_kind(db_session, "quote")
    assert len(revised) == 2 and "8000.00 EUR" in revised[1].body_text


def test_a_quote_reaches_a_spanish_patient_once_through_the_worker(
        client, db_session, staff, smtp_sink, start_worker):
    start_worker(SMTP_PORT=smtp_sink.port)
    body = inquiry_body()
    body["patient"]["language"] = "es"
    accepted = client.post("/api/v1/inquiries", json=body).get_json()
    patient = body["patient"]["email"]
    referral = wait_until(lambda: first_referral(db_session, accepted["reference"]),
                          timeout=30, message="routing")
    wait_until(lambda: smtp_sink.sent_to(patient), timeout=40, message="the acknowledgement")

    quote_as_clinic(client, staff["admin"], referral)

    wait_until(lambda: len(smtp_sink.sent_to(patient)) == 2, timeout=40, message="quote mail")
    wait_until(lambda: [m.status for m in mail_of_kind(db_session, "quote")] == ["sent"],
               timeout=10, message="the quote mail marked sent")
    acknowledgement, quote = smtp_sink.sent_to(patient)
    assert "Hemos recibido" in acknowledgement["Subject"]
    assert "presupuesto" in quote["Subject"] and accepted["reference"] in quote["Subject"]
    text = mail_text(quote)
    assert text.startswith(f"Hola {body['patient']['first_name']}:")
    assert referral.clinic.name in text and "9400.50 EUR" in text
    assert accepted["status_url"] in text
    assert len(smtp_sink.sent_to(patient)) == 2
