"""Sending recorded mail in-process into a real SMTP server: once each, over one kept
connection; a relay that is down is asked once and the rest wait for the resend; a message
the relay refuses holds up no other; SMTPUTF8 when the relay offers it, IDNA when not."""

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from leads.messaging import mail
from leads.messaging.models import EmailMessage
from leads.pipeline.models import Lead, TimelineEvent
from leads.routing import operations as routing
from tests.helpers import SmtpSink, inquiry_body, message_to, wait_until


def route_inquiries(app, client, db_session, *emails: str) -> list[int]:
    """An inquiry from each address, routed; answers the ids of all mail they queued
    (an acknowledgement and three clinic notifications each), all pending."""
    for email in emails:
        body = inquiry_body()
        body["patient"]["email"] = email
        assert client.post("/api/v1/inquiries", json=body).status_code == 202
    with app.app_context():
        for lead_id in db_session.scalars(select(Lead.id)):
            routing.process_lead(lead_id)
    ids = db_session.scalars(select(EmailMessage.id).order_by(EmailMessage.id)).all()
    assert len(ids) == 4 * len(emails)
    return ids


def unique_address(local: str = "ana", domain: str = "example.org") -> str:
    return f"{local}.{uuid.uuid4().hex[:8]}@{domain}"


@pytest.fixture(autouse=True)
def _fresh_relay_connection():
    yield
    mail.relay.close()


@pytest.fixture
def queued_mail(app, client, db_session, catalogue):
    """Two routed leads' mail: acknowledgements and clinic notifications, all pending."""
    return route_inquiries(app, client, db_session, unique_address(), unique_address())


@pytest.fixture
def utf8_sink():
    sink = SmtpSink(smtputf8=True)
    sink.start()
    yield sink
    sink.stop()


def relay_at(sink) -> mail.SmtpSettings:
    return mail.SmtpSettings("127.0.0.1", sink.port, "", "", False, "care@example.org")


def states(db_session) -> list[tuple[str, int]]:
    db_session.expire_all()
    return db_session.execute(select(EmailMessage.status, EmailMessage.attempts)
                              .order_by(EmailMessage.id)).all()


def resend_when_due(app, sink, message_ids: list[int]) -> int:
    """What the periodic resend does, once these messages' backoff is over."""
    with app.app_context():
        due = wait_until(
            lambda: (due := mail.stuck_messages(older_than=timedelta(0))) and
            set(message_ids) <= set(due) and due,
            timeout=30, message="deferred messages due again")
        return mail.deliver(due, relay_at(sink))


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


def test_on_postgresql_a_send_is_one_statement_committed_as_it_ends(
        app, db_session, queued_mail, smtp_sink):
    """The mark of the message sent just before and the lease of the next are one statement
    in autocommit on PostgreSQL, a round trip per message where a transaction took four
    (bench/RESULTS.md, "Intake and mail, 2026-12-07"); SQLite runs them in a transaction."""
    engine = db_session.get_bind()
    levels = []

    def record(connection, *_):
        levels.append(connection.get_execution_options().get("isolation_level"))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with app.app_context():
            assert mail.deliver(queued_mail, relay_at(smtp_sink)) == len(queued_mail)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert states(db_session) == [("sent", 1)] * len(queued_mail)
    if engine.dialect.name == "postgresql":
        # Each lease, then the last message's mark on its own.
        assert levels == ["AUTOCOMMIT"] * len(queued_mail) + [None]
    else:
        assert levels == [None] * 2 * len(queued_mail)


def test_a_message_listed_twice_is_sent_once_even_after_its_lease_ran_out(
        app, db_session, queued_mail, smtp_sink, monkeypatch):
    """The relay's merged lists can name a message twice. A send slower than the lease
    (here a lease of no time at all) must not let the second mention lease it again."""
    monkeypatch.setattr(mail, "SEND_LEASE", timedelta(0))
    twice = [queued_mail[0], queued_mail[0], *queued_mail[1:]]
    with app.app_context():
        assert mail.deliver(twice, relay_at(smtp_sink)) == len(queued_mail)
    assert len(smtp_sink.received()) == len(queued_mail)
    assert states(db_session) == [("sent", 1)] * len(queued_mail)


def test_a_relay_that_is_down_is_asked_once_and_the_resend_sends_everything(
        app, db_session, queued_mail, smtp_sink):
    smtp_sink.stop()
    with app.app_context():
        assert mail.deliver(queued_mail, relay_at(smtp_sink)) == 0
    # The first message found the relay down and waits out its backoff; the rest were not
    # tried against a relay known to be down.
    assert states(db_session) == [("pending", 1)] + [("pending", 0)] * (len(queued_mail) - 1)
    first = db_session.get(EmailMessage, queued_mail[0])
    assert first.last_error.startswith("ConnectionRefusedError")
    with app.app_context():
        assert queued_mail[0] not in mail.stuck_messages(older_than=timedelta(0))
    assert smtp_sink.received() == []

    smtp_sink.start()
    with app.app_context():
        assert mail.deliver(mail.stuck_messages(older_than=timedelta(0)),
                            relay_at(smtp_sink)) == len(queued_mail) - 1
    assert resend_when_due(app, smtp_sink, queued_mail[:1]) == 1
    assert len(smtp_sink.received()) == len(queued_mail)
    assert len({m["Message-ID"] for m in smtp_sink.received()}) == len(queued_mail)
    assert [status for status, _ in states(db_session)] == ["sent"] * len(queued_mail)


def test_a_refused_message_holds_up_no_other_and_a_deferred_one_goes_later(
        app, client, db_session, catalogue, smtp_sink):
    gone, busy, closing, unicode, fine = (
        unique_address("gone"), unique_address("busy"), unique_address("closing"),
        unique_address("jörg"), unique_address())
    ids = route_inquiries(app, client, db_session, gone, busy, closing, unicode, fine)
    smtp_sink.refuse(gone, f"550 5.1.1 <{gone}>: Recipient address rejected: User unknown")
    smtp_sink.refuse(busy, f"450 4.2.1 <{busy}>: Mailbox busy, try again later")
    # 421: the relay closes the connection; the next message must open a new one.
    smtp_sink.refuse(closing, "421 4.3.2 Service shutting down")
    troubled = [message_to(db_session, a).id for a in (gone, busy, closing, unicode)]
    batch = troubled + [i for i in ids if i not in troubled]  # the troubled ones first

    with app.app_context():
        assert mail.deliver(batch, relay_at(smtp_sink)) == len(ids) - 4
    received = smtp_sink.received()
    assert len(received) == len({m["Message-ID"] for m in received}) == len(ids) - 4
    assert {m["To"] for m in received}.isdisjoint({gone, busy, closing, unicode})

    for address, code in ((gone, 550), (unicode, None)):
        message = message_to(db_session, address)
        assert (message.status, message.attempts) == ("failed", 1)
        event = db_session.scalar(select(TimelineEvent).where(
            TimelineEvent.lead_id == message.lead_id, TimelineEvent.kind == "message_failed"))
        assert event.data["message_id"] == message.id
        assert event.data["message_kind"] == "acknowledgement"
        assert event.data["code"] == code
        assert address.split("@")[0] not in json.dumps(event.data, ensure_ascii=False)
        assert address.split("@")[0] not in message.last_error
    assert "SMTPUTF8" in message_to(db_session, unicode).last_error
    for address, code in ((busy, "450"), (closing, "421")):
        message = message_to(db_session, address)
        assert (message.status, message.attempts) == ("pending", 1)
        assert message.last_error.startswith(code)

    # A failed message is never tried again; a deferred one once its backoff is over.
    smtp_sink.refuse(busy, None)
    smtp_sink.refuse(closing, None)
    with app.app_context():
        assert mail.deliver(batch, relay_at(smtp_sink)) == 0
    assert resend_when_due(app, smtp_sink, troubled[1:3]) == 2
    received = smtp_sink.received()
    assert len(received) == len({m["Message-ID"] for m in received}) == len(ids) - 2
    assert {m["To"] for m in received} >= {busy, closing}
    assert [status for status, _ in states(db_session)].count("failed") == 2
    with app.app_context():
        assert mail.stuck_messages(older_than=timedelta(0)) == []


def test_a_relay_with_smtputf8_takes_a_non_ascii_address(
        app, client, db_session, catalogue, utf8_sink):
    address = unique_address("jörg", "exämple.de")
    ids = route_inquiries(app, client, db_session, address)
    with app.app_context():
        assert mail.deliver(ids, relay_at(utf8_sink)) == len(ids)
    assert [address] in utf8_sink.envelopes
    assert message_to(db_session, address).status == "sent"


def test_without_smtputf8_an_international_domain_goes_out_as_idna(
        app, client, db_session, catalogue, smtp_sink):
    address = unique_address("jorg", "exämple.de")
    ids = route_inquiries(app, client, db_session, address)
    with app.app_context():
        assert mail.deliver(ids, relay_at(smtp_sink)) == len(ids)
    ascii_form = address.replace("exämple.de", "xn--exmple-cua.de")
    assert [ascii_form] in smtp_sink.envelopes
    assert ascii_form in {m["To"] for m in smtp_sink.received()}
    assert message_to(db_session, address).status == "sent"
