"""Review alerts gathered into digests (CONTRACT §7): the first alert of a quiet spell is
mailed at once, those within REVIEW_ALERT_DIGEST_MINUTES of it go together in one digest per
person when the spell is over. First the rules, with the clock moved; then a burst of 200
leads through two real worker processes (each with its beat) into a real SMTP server."""

import contextlib
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from leads.core.clock import utcnow
from leads.messaging import review_alerts
from leads.messaging.models import EmailMessage, ReviewAlert
from leads.routing import operations as routing
from tests.helpers import lead_id_of, mail_text, route, submit, wait_until

STAFF = ("admin@care.example", "coord@care.example")  # the catalogue's active staff
INACTIVE = "gone@care.example"
REFERENCE = re.compile(r"MT-[0-9A-Z]{7}")
NO_SHARING = {"data_processing": True, "share_with_clinics": False, "marketing": False}
WINDOW = timedelta(minutes=10)  # REVIEW_ALERT_DIGEST_MINUTES's default, the app's here
# The workers' window in the burst test (fractions of a minute are allowed): far longer than
# two workers take to route the burst on a busy machine, short enough for the digest to come
# soon.
BURST_WINDOW = timedelta(seconds=45)


def to_review(app, client, db_session) -> str:
    """A lead the worker sends to review (no consent to share); answers its reference."""
    reference = submit(client, consent=NO_SHARING)["reference"]
    route(app, db_session, reference)
    return reference


def alert_mail(db_session) -> dict[str, list[EmailMessage]]:
    """Every review mail, by recipient, oldest first."""
    db_session.expire_all()
    found = {}
    for message in db_session.scalars(
            select(EmailMessage).where(EmailMessage.kind.in_(("needs_review_alert",
                                                              "review_digest")))
            .order_by(EmailMessage.id)):
        found.setdefault(message.recipient, []).append(message)
    return found


def named(message) -> set[str]:
    return set(REFERENCE.findall(message.body_text))


def mail_due_digests(app) -> int:
    with app.app_context():
        return review_alerts.mail_due_digests()


def test_the_first_alert_goes_at_once_and_the_rest_of_its_spell_in_one_digest(
        app, client, db_session, catalogue, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    first = to_review(app, client, db_session)
    mail = alert_mail(db_session)
    assert set(mail) == set(STAFF), "every active coordinator and admin, no one else"
    for messages in mail.values():
        [alert] = messages
        assert (alert.kind, named(alert)) == ("needs_review_alert", {first})
        assert alert.subject == f"Lead {first} needs review"
        assert f"http://testserver/console/leads/{alert.lead_id}" in alert.body_text

    time_machine.shift(WINDOW / 2)
    gathered = {to_review(app, client, db_session) for _ in range(3)}
    time_machine.shift(WINDOW / 2 - timedelta(seconds=1))
    assert mail_due_digests(app) == 0, "the spell is not over"
    assert all(len(messages) == 1 for messages in alert_mail(db_session).values())

    time_machine.shift(timedelta(seconds=2))
    assert mail_due_digests(app) == len(STAFF)
    assert mail_due_digests(app) == 0, "nothing is mailed twice"
    for messages in alert_mail(db_session).values():
        [_, digest] = messages
        assert digest.kind == "review_digest" and digest.lead_id is None
        assert named(digest) == gathered and digest.subject == "3 leads need review"

    # The digest opened a spell of its own: an alert within it waits for the next mail,
    # which, naming one lead, is an alert like the first.
    time_machine.shift(WINDOW / 2)
    late = to_review(app, client, db_session)
    assert all(len(messages) == 2 for messages in alert_mail(db_session).values())
    time_machine.shift(WINDOW)
    assert mail_due_digests(app) == len(STAFF)
    for messages in alert_mail(db_session).values():
        assert (messages[-1].kind, named(messages[-1])) == ("needs_review_alert", {late})

    # A quiet spell later, an alert goes at once again.
    time_machine.shift(2 * WINDOW)
    again = to_review(app, client, db_session)
    for messages in alert_mail(db_session).values():
        assert len(messages) == 4 and named(messages[-1]) == {again}
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(ReviewAlert).where(
        ReviewAlert.message_id.is_(None))) == 0


def test_a_window_of_zero_mails_every_alert_at_once(
        app, client, db_session, catalogue, monkeypatch):
    monkeypatch.setitem(app.config, "REVIEW_ALERT_DIGEST_MINUTES", 0)
    references = {to_review(app, client, db_session) for _ in range(3)}
    for messages in alert_mail(db_session).values():
        assert [m.kind for m in messages] == ["needs_review_alert"] * 3
        assert set().union(*map(named, messages)) == references


def test_a_lead_back_in_review_alerts_again_and_a_digest_names_it_once(
        app, client, db_session, staff, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    reference = to_review(app, client, db_session)
    lead_id = db_session.scalar(select(ReviewAlert.lead_id))
    other = to_review(app, client, db_session)
    for target in ("closed", "received"):  # closed, reopened: routed again, to review again
        response = client.post(f"/api/v1/leads/{lead_id}/transitions", json={"to": target},
                               headers=staff["coordinator"])
        assert response.status_code == 200
    route(app, db_session, reference)
    time_machine.shift(WINDOW)
    assert mail_due_digests(app) == len(STAFF)
    for messages in alert_mail(db_session).values():
        alert, digest = messages
        assert named(alert) == {reference}
        assert digest.subject == "2 leads need review"
        assert named(digest) == {reference, other}
        assert digest.body_text.count(reference) == 1


def all_at_once(monkeypatch, *calls) -> None:
    """Run each call in a thread of its own, every claim of a spell made by all of them at
    the same moment (as far as the database lets them: SQLite takes them in turn)."""
    barrier = threading.Barrier(len(calls))
    open_spell = review_alerts._open_spell

    def open_spell_together(*args):
        with contextlib.suppress(threading.BrokenBarrierError):  # one waits in the database
            barrier.wait(timeout=2)
        return open_spell(*args)

    monkeypatch.setattr(review_alerts, "_open_spell", open_spell_together)
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    monkeypatch.setattr(review_alerts, "_open_spell", open_spell)


def test_alerts_and_digests_raced_by_two_processes_mail_each_person_once(
        app, client, db_session, catalogue, monkeypatch, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    references = [submit(client, consent=NO_SHARING)["reference"] for _ in range(2)]

    def route_in_a_thread(reference):
        lead_id = lead_id_of(db_session, reference)

        def call():
            with app.app_context():
                routing.process_lead(lead_id)
        return call

    all_at_once(monkeypatch, *map(route_in_a_thread, references))
    mail = alert_mail(db_session)
    assert set(mail) == set(STAFF)
    assert all(len(messages) == 1 for messages in mail.values()), "one spell, one alert"

    time_machine.shift(WINDOW)
    runs = []
    all_at_once(monkeypatch, *[lambda: runs.append(mail_due_digests(app))] * 2)
    assert sum(runs) == len(STAFF)
    for messages in alert_mail(db_session).values():
        assert len(messages) == 2
        assert set().union(*map(named, messages)) == set(references)


@pytest.fixture
def burst(app, client, db_session, catalogue):
    """200 leads on their way to review, their routing waiting in the outbox."""
    return {submit(client, consent=NO_SHARING)["reference"] for _ in range(200)}


def test_a_burst_of_200_sends_each_person_two_mails_naming_them_all(
        db_session, burst, smtp_sink, start_worker):
    for _ in range(2):
        start_worker(SMTP_PORT=smtp_sink.port,
                     REVIEW_ALERT_DIGEST_MINUTES=BURST_WINDOW.total_seconds() / 60)

    def references_told(address: str) -> set[str]:
        return set().union(*(REFERENCE.findall(mail_text(m))
                             for m in smtp_sink.sent_to(address)))

    wait_until(lambda: all(references_told(a) >= burst for a in STAFF), timeout=120,
               interval=1, message="every reference told to every coordinator and admin")
    # No alert is left pending, so no later mail can come.
    db_session.expire_all()
    first, last = db_session.execute(select(func.min(ReviewAlert.created_at),
                                            func.max(ReviewAlert.created_at))).one()
    assert last - first < BURST_WINDOW, f"the burst took {last - first}, not within the window"
    assert db_session.scalar(select(func.count()).select_from(ReviewAlert).where(
        ReviewAlert.message_id.is_(None))) == 0
    for address in STAFF:
        alert, digest = smtp_sink.sent_to(address)
        [first] = REFERENCE.findall(mail_text(alert))
        assert alert["Subject"] == f"Lead {first} needs review"
        assert digest["Subject"].endswith(" leads need review")
        # Every other lead of the burst in the digest. (On SQLite the first may be in it
        # too: there a lead can be routed twice, by two workers at once, and so go to
        # review twice; PostgreSQL's row lock makes the second routing see it done.)
        assert burst - {first} <= set(REFERENCE.findall(mail_text(digest))) <= burst
    assert smtp_sink.sent_to(INACTIVE) == []
