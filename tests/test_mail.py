"""Sending recorded mail in-process into a real SMTP server: once each, over one kept
connection, and a relay that refuses leaves the rest pending for a retry."""

import pytest
from sqlalchemy import select

from leads import mail, routing
from leads.models import EmailMessage, Lead
from tests.conftest import inquiry_body


@pytest.fixture
def queued_mail(app, client, db_session, catalogue):
    """Two routed leads' mail: acknowledgements and clinic notifications, all pending."""
    for _ in range(2):
        assert client.post("/api/v1/inquiries", json=inquiry_body()).status_code == 202
    with app.app_context():
        for lead_id in db_session.scalars(select(Lead.id)):
            routing.process_lead(lead_id)
    ids = db_session.scalars(select(EmailMessage.id).order_by(EmailMessage.id)).all()
    assert len(ids) == 2 * 4
    yield ids
    mail.relay.close()


def relay_at(sink) -> mail.SmtpSettings:
    return mail.SmtpSettings("127.0.0.1", sink.port, "", "", False, "care@example.org")


def states(db_session) -> list[tuple[str, int]]:
    db_session.expire_all()
    return db_session.execute(select(EmailMessage.status, EmailMessage.attempts)
                              .order_by(EmailMessage.id)).all()


def test_a_burst_goes_over_one_connection_and_nothing_is_sent_twice(
        app, db_session, queued_mail, smtp_sink):
    with app.app_context():
        assert mail.deliver(queued_mail, relay_at(smtp_sink)) == len(queued_mail)
        assert mail.deliver(queued_mail, relay_at(smtp_sink)) == 0

    received = smtp_sink.received()
    assert len(received) == len(queued_mail)
    assert len({m["Message-ID"] for m in received}) == len(queued_mail)
    assert all(m["From"] == "care@example.org" for m in received)
    assert len(set(smtp_sink.peers)) == 1, "one connection for the whole burst"
    assert states(db_session) == [("sent", 1)] * len(queued_mail)


def test_a_refusing_relay_leaves_the_rest_pending_and_a_retry_sends_them(
        app, db_session, queued_mail, smtp_sink):
    smtp_sink.stop()
    with app.app_context(), pytest.raises(ConnectionRefusedError):
        mail.deliver(queued_mail, relay_at(smtp_sink))
    assert states(db_session) == [("pending", 1)] + [("pending", 0)] * (len(queued_mail) - 1)
    failed = db_session.get(EmailMessage, queued_mail[0])
    assert failed.last_error.startswith("ConnectionRefusedError")
    assert smtp_sink.received() == []

    smtp_sink.start()
    with app.app_context():
        assert mail.deliver(queued_mail, relay_at(smtp_sink)) == len(queued_mail)
    assert len(smtp_sink.received()) == len(queued_mail)
    assert [status for status, _ in states(db_session)] == ["sent"] * len(queued_mail)
