"""An inquiry through the real worker process into a real SMTP server."""

from collections import Counter

from sqlalchemy import select

from leads.catalogue.models import Clinic
from leads.messaging.models import EmailMessage
from leads.pipeline.models import Lead
from tests.helpers import inquiry_body, wait_until


def lead_by_reference(db_session, reference) -> Lead:
    db_session.expire_all()
    return db_session.scalar(select(Lead).where(Lead.reference == reference))


def all_sent(db_session) -> bool:
    db_session.expire_all()
    return all(m.status == "sent" for m in db_session.scalars(select(EmailMessage)))


def test_inquiry_is_routed_and_everyone_told_exactly_once(
        client, db_session, catalogue, smtp_sink, start_worker):
    start_worker(SMTP_PORT=smtp_sink.port)
    body = inquiry_body()
    body["patient"]["language"] = "de"
    reference = client.post("/api/v1/inquiries", json=body).get_json()["reference"]

    lead = wait_until(
        lambda: (lead := lead_by_reference(db_session, reference)).status != "received" and lead,
        timeout=10, message="routing within 10 s")
    assert lead.status == "routed"
    assert 1 <= len(lead.referrals) <= 3
    assert {r.clinic_id for r in lead.referrals} <= catalogue["eligible"]

    expected = 1 + len(lead.referrals)
    wait_until(lambda: len(smtp_sink.received()) >= expected, timeout=20, message="all mail")
    wait_until(lambda: all_sent(db_session), timeout=10, message="every message marked sent")
    mail = smtp_sink.received()
    recipients = Counter(m["To"] for m in mail)
    assert recipients[body["patient"]["email"]] == 1
    ack = next(m for m in mail if m["To"] == body["patient"]["email"])
    assert "Anfrage" in ack["Subject"] and reference in ack["Subject"]
    for referral in lead.referrals:
        clinic = db_session.get(Clinic, referral.clinic_id)
        assert recipients[clinic.email] == 1
    assert len(mail) == expected
    assert len({m["Message-ID"] for m in mail}) == expected
