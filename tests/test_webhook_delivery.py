"""Webhook deliveries (CONTRACT §5, issue 13): each event staged in the transaction of the
referral change it reports, sent as Standard Webhooks says to a real receiver on 127.0.0.1
(WEBHOOK_ALLOW_PRIVATE on for it) that verifies every delivery with the package's
`Webhook.verify`; retried with backoff until a 2xx, in order per referral, under one
`webhook-id`; a 410 disables the endpoint; a slow endpoint is cut off. The sends here run
in-process (the sweep's and the task's own functions); the story at the end runs through
the real worker."""

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from leads.core.clock import utcnow
from leads.pipeline.models import Referral
from leads.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from tests.helpers import (
    WebhookReceiver,
    act,
    auth,
    lead_id_of,
    register_webhook,
    route,
    send_due_webhooks,
    submit,
    transition,
    wait_until,
)


@pytest.fixture
def hooked(app, client, staff, private_allowed, receiver):
    """An endpoint for every event at each eligible clinic, posting to /c/<clinic id>, whose
    secret the receiver verifies with; answers {clinic id: (key headers, endpoint)}."""
    clinics = {}
    for clinic_id in sorted(staff["catalogue"]["eligible"]):
        key = auth(client.post(f"/api/v1/clinics/{clinic_id}/api-keys",
                               headers=staff["admin"]).get_json()["key"])
        endpoint = register_webhook(client, key, receiver.url(f"/c/{clinic_id}")).get_json()
        receiver.expect(f"/c/{clinic_id}", endpoint["secret"])
        clinics[clinic_id] = (key, endpoint)
    return clinics


def make_due_now(db_session) -> None:
    """Skip the backoff of every pending message."""
    db_session.execute(WebhookMessage.__table__.update().values(next_attempt_at=utcnow()))
    db_session.commit()


def referrals_of(db_session, lead_id) -> dict[int, int]:
    db_session.expire_all()
    return dict(db_session.execute(select(Referral.clinic_id, Referral.id)
                                   .where(Referral.lead_id == lead_id)).all())


def test_a_new_referral_is_told_to_its_clinic_signed_and_without_contact_details(
        app, client, db_session, hooked, receiver):
    accepted = submit(client)
    lead_id = route(app, db_session, accepted["reference"])
    referred = referrals_of(db_session, lead_id)
    assert send_due_webhooks(app) == 3

    for clinic_id in hooked:
        got = receiver.received(f"/c/{clinic_id}")
        if clinic_id not in referred:
            assert got == []
            continue
        [delivery] = got
        assert delivery["verified_with"], "the signature did not verify"
        payload = delivery["payload"]
        assert payload["type"] == "referral.created"
        assert payload["data"] == {"referral_id": referred[clinic_id],
                                   "reference": accepted["reference"], "status": "requested",
                                   "treatment": "stem-cell-spine-arthritis"}
        assert abs(int(delivery["headers"]["webhook-timestamp"]) - time.time()) < 60
        assert delivery["headers"]["webhook-id"].startswith("msg_")
        assert delivery["headers"]["content-type"] == "application/json"
        body = delivery["body"].decode()
        for personal in ("Ana", "Ruiz", "@example.org", "415", "Facet"):
            assert personal not in body
    # Delivered once, and recorded so.
    db_session.expire_all()
    assert {m.status for m in db_session.scalars(select(WebhookMessage))} == {"delivered"}
    assert send_due_webhooks(app) == 0


def test_events_are_staged_with_the_change_and_not_without_it(app, client, db_session, hooked):
    """The deliveries are in the change's transaction: a change rolled back leaves none."""
    from leads.accounts.models import User
    from leads.core.database import db
    from leads.pipeline.models import Lead
    from leads.pipeline.workflow import move_lead

    lead_id = route(app, db_session, submit(client)["reference"])
    assert db_session.scalar(select(func.count()).select_from(WebhookMessage)) == 3
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        move_lead(lead, "closed", db.session.scalar(select(User).where(User.role == "admin")),
                  None)
        db.session.flush()
        staged = db.session.scalar(select(func.count()).select_from(WebhookMessage)
                                   .where(WebhookMessage.event == "referral.cancelled"))
        db.session.rollback()
    assert staged == 3
    assert db_session.scalar(select(func.count()).select_from(WebhookMessage)
                             .where(WebhookMessage.event == "referral.cancelled")) == 0


def test_each_endpoint_hears_only_the_events_it_subscribed_to(app, client, db_session, staff,
                                                              private_allowed, receiver):
    lead_id = route(app, db_session, submit(client)["reference"])
    clinic_id = sorted(referrals_of(db_session, lead_id))[0]
    key = auth(client.post(f"/api/v1/clinics/{clinic_id}/api-keys",
                           headers=staff["admin"]).get_json()["key"])
    endpoint = register_webhook(client, key, receiver.url("/only-expired"),
                                ["referral.expired"]).get_json()
    receiver.expect("/only-expired", endpoint["secret"])
    assert transition(client, staff["admin"], lead_id, "closed").status_code == 200
    assert send_due_webhooks(app) == 0 and receiver.received() == []


def test_an_expired_referral_is_told(app, client, db_session, hooked, receiver):
    from leads.routing.operations import expire_overdue_referrals

    lead_id = route(app, db_session, submit(client)["reference"])
    send_due_webhooks(app)
    db_session.execute(Referral.__table__.update().where(Referral.lead_id == lead_id)
                       .values(expires_at=utcnow() - timedelta(minutes=1)))
    db_session.commit()
    with app.app_context():
        assert expire_overdue_referrals() == 3
    assert send_due_webhooks(app) == 3
    expired = [r["payload"] for r in receiver.accepted() if r["payload"]["type"]
               == "referral.expired"]
    assert sorted(p["data"]["referral_id"] for p in expired) == sorted(
        referrals_of(db_session, lead_id).values())
    assert {p["data"]["status"] for p in expired} == {"expired"}


def test_a_booking_is_told_to_the_clinic_booked_with_and_no_other(
        app, client, db_session, staff, hooked, receiver):
    lead_id = route(app, db_session, submit(client)["reference"])
    referred = referrals_of(db_session, lead_id)
    booked_clinic = sorted(referred)[0]
    key, _ = hooked[booked_clinic]
    assert act(client, key, referred[booked_clinic], "accept").status_code == 200
    assert act(client, key, referred[booked_clinic], "quote",
               {"amount": 9000, "currency": "USD"}).status_code == 200
    assert transition(client, staff["admin"], lead_id, "booked").status_code == 200
    assert send_due_webhooks(app) == 3  # the created events first: the booking waits
    assert send_due_webhooks(app) == 1
    booked = [r for r in receiver.accepted() if r["payload"]["type"] == "lead.booked"]
    assert [r["path"] for r in booked] == [f"/c/{booked_clinic}"]
    assert booked[0]["payload"]["data"]["referral_id"] == referred[booked_clinic]


def test_a_referrals_events_reach_an_endpoint_in_order_each_under_one_id(
        app, client, db_session, staff, hooked, receiver):
    """While a referral's earlier event is not delivered, a later one waits behind it; the
    retries of a message keep its webhook-id."""
    lead_id = route(app, db_session, submit(client)["reference"])
    receiver.answer(503)
    assert send_due_webhooks(app) == 3
    assert transition(client, staff["admin"], lead_id, "closed").status_code == 200
    make_due_now(db_session)
    # Only the created events are due: each cancellation waits behind its referral's.
    assert send_due_webhooks(app) == 3
    assert {r["payload"]["type"] for r in receiver.received()} == {"referral.created"}
    receiver.answer(200)
    make_due_now(db_session)
    assert send_due_webhooks(app) == 3
    assert send_due_webhooks(app) == 3

    by_referral: dict[int, list[str]] = {}
    for request in receiver.accepted():
        assert request["verified_with"]
        by_referral.setdefault(request["payload"]["data"]["referral_id"], []).append(
            request["payload"]["type"])
    assert list(by_referral.values()) == [["referral.created", "referral.cancelled"]] * 3
    ids = [r["headers"]["webhook-id"] for r in receiver.accepted()]
    assert len(ids) == len(set(ids)) == 6
    # Every 503'd try was of a message later accepted under the same id.
    assert {r["headers"]["webhook-id"] for r in receiver.received()} == set(ids)


def test_a_410_disables_the_endpoint_and_nothing_more_is_sent(
        app, client, db_session, staff, hooked, receiver):
    """The message it answered fails, those waiting for it are cancelled, and none is staged
    for it any more."""
    lead_id = route(app, db_session, submit(client)["reference"])
    assert transition(client, staff["admin"], lead_id, "closed").status_code == 200
    receiver.answer(410)
    assert send_due_webhooks(app) == 3
    make_due_now(db_session)
    assert send_due_webhooks(app) == 0
    assert [r["payload"]["type"] for r in receiver.received()] == ["referral.created"] * 3
    db_session.expire_all()
    endpoints = db_session.scalars(select(WebhookEndpoint)
                                   .where(WebhookEndpoint.disabled_at.is_not(None))).all()
    assert len(endpoints) == 3 and all("410" in e.disabled_reason for e in endpoints)
    assert {m.status for m in db_session.scalars(select(WebhookMessage))} == {
        "failed", "cancelled"}
    key, endpoint = hooked[endpoints[0].clinic_id]
    listed = client.get("/api/v1/clinic/webhooks", headers=key).get_json()["items"]
    assert [e["active"] for e in listed] == [False]
    # A later referral of that clinic stages nothing for it.
    route(app, db_session, submit(client)["reference"])
    assert db_session.scalar(select(func.count()).select_from(WebhookMessage)
                             .where(WebhookMessage.endpoint_id == endpoint["id"],
                                    WebhookMessage.status == "pending")) == 0


def test_a_slow_endpoint_is_cut_off_and_tried_again(app, client, db_session, hooked, receiver,
                                                    setting):
    setting("WEBHOOK_TIMEOUT_SECONDS", 0.5)
    route(app, db_session, submit(client)["reference"])
    receiver.answer(200, delay=3)
    started = time.monotonic()
    assert send_due_webhooks(app) == 3
    assert time.monotonic() - started < 3 * 1.5  # each cut off after about half a second
    db_session.expire_all()
    attempts = db_session.scalars(select(WebhookAttempt)).all()
    assert len(attempts) == 3
    assert all(a.status_code is None and "timed out" in a.error for a in attempts)
    assert {m.status for m in db_session.scalars(select(WebhookMessage))} == {"pending"}


def test_a_message_is_given_up_when_its_retry_window_is_over(
        app, client, db_session, staff, hooked, receiver, setting):
    lead_id = route(app, db_session, submit(client)["reference"])
    receiver.answer(500)
    assert transition(client, staff["admin"], lead_id, "closed").status_code == 200
    setting("WEBHOOK_RETRY_HOURS", 0)
    assert send_due_webhooks(app) == 3
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(WebhookMessage)
                             .where(WebhookMessage.status == "failed")) == 3
    # The cancellations behind them go now.
    receiver.answer(200)
    assert send_due_webhooks(app) == 3
    assert {r["payload"]["type"] for r in receiver.accepted()} == {"referral.cancelled"}


def test_the_backoff_doubles_with_jitter_and_the_first_retry_is_within_a_minute(app):
    from leads.webhooks.delivery import backoff

    with app.app_context():
        firsts = [backoff(1) for _ in range(200)]
        assert all(timedelta(seconds=15) <= wait <= timedelta(seconds=30) for wait in firsts)
        assert len(set(firsts)) > 100  # jittered
        assert all(timedelta(seconds=30) <= backoff(2) <= timedelta(seconds=60)
                   for _ in range(50))
        assert all(timedelta(minutes=30) <= backoff(40) <= timedelta(hours=1)
                   for _ in range(50))
        assert app.config["WEBHOOK_RETRY_HOURS"] >= 24


def unfinished(db_session) -> int:
    db_session.rollback()  # a fresh look, holding nothing against the worker
    return db_session.scalar(select(func.count()).select_from(WebhookMessage)
                             .where(WebhookMessage.status.in_(["pending", "sending"])))


def failed_attempts(db_session, *, answered: bool) -> int:
    db_session.rollback()
    answer = (WebhookAttempt.status_code.is_not(None) if answered
              else WebhookAttempt.status_code.is_(None))
    return db_session.scalar(select(func.count()).select_from(WebhookAttempt)
                             .where(WebhookAttempt.succeeded.is_(False), answer))


def test_a_receiver_down_for_a_while_gets_every_event_afterwards_once_in_order(
        app, client, db_session, staff, hooked, receiver, start_worker):
    """The story through the real worker (its beat sweeps every 2 s). The issue's receiver is
    down for 2 minutes; here the backoff is scaled down by configuration
    (WEBHOOK_RETRY_BASE_SECONDS=0.5, at most 1 s between tries) so that a few seconds of
    answering 503, then a few of not listening at all, stand for them. Afterwards it has
    every event once (one webhook-id each, the same on every retry), verified, and each
    referral's in the order they happened."""
    start_worker(WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_RETRY_BASE_SECONDS="0.5",
                 WEBHOOK_RETRY_MAX_SECONDS="1")
    first = submit(client)
    wait_until(lambda: len(receiver.accepted()) >= 3, timeout=60, message="referral.created")
    assert all(r["verified_with"] and r["payload"]["type"] == "referral.created"
               and r["payload"]["data"]["reference"] == first["reference"]
               for r in receiver.accepted())

    receiver.answer(503)
    second = submit(client)
    wait_until(lambda: failed_attempts(db_session, answered=True) >= 3, timeout=60,
               message="the second lead's referrals tried and refused")
    for accepted in (first, second):
        lead_id = lead_id_of(db_session, accepted["reference"])
        assert transition(client, staff["admin"], lead_id, "closed").status_code == 200
    receiver.stop()  # not listening at all now
    wait_until(lambda: failed_attempts(db_session, answered=False) >= 3, timeout=30,
               message="tries that found nobody listening")
    receiver.answer(200)
    receiver.start()
    wait_until(lambda: unfinished(db_session) == 0, timeout=90, message="every event delivered")

    accepted = receiver.accepted()
    assert all(r["verified_with"] for r in accepted)
    ids = [r["headers"]["webhook-id"] for r in accepted]
    assert len(ids) == len(set(ids)) == 12  # 6 referrals: created and cancelled each
    assert {r["headers"]["webhook-id"] for r in receiver.received()} == set(ids)
    by_referral: dict[tuple[str, int], list[str]] = {}
    for request in accepted:
        data = request["payload"]["data"]
        by_referral.setdefault((request["path"], data["referral_id"]), []).append(
            request["payload"]["type"])
    assert sorted(by_referral.values()) == [["referral.created", "referral.cancelled"]] * 6
    references = {r["payload"]["data"]["reference"] for r in accepted}
    assert references == {first["reference"], second["reference"]}


def test_through_the_worker_410_disables_a_redirect_is_not_followed_a_slow_one_is_cut_off(
        app, client, db_session, staff, private_allowed, start_worker):
    """Every eligible clinic has three endpoints: one gone (410), one that redirects to
    another server, one that answers after 3 s (the worker gives up after 1 s)."""
    servers = {name: WebhookReceiver() for name in ("gone", "moved", "elsewhere", "slow")}
    for server in servers.values():
        server.start()
    try:
        servers["gone"].answer(410)
        servers["moved"].answer(302, location=servers["elsewhere"].url("/internal"))
        servers["slow"].answer(200, delay=3)
        endpoints = {}
        for clinic_id in staff["catalogue"]["eligible"]:
            key = auth(client.post(f"/api/v1/clinics/{clinic_id}/api-keys",
                                   headers=staff["admin"]).get_json()["key"])
            for name in ("gone", "moved", "slow"):
                created = register_webhook(client, key, servers[name].url(f"/{clinic_id}"),
                                           ["referral.created"]).get_json()
                endpoints[created["id"]] = name
        start_worker(WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_TIMEOUT_SECONDS="1",
                     WEBHOOK_RETRY_BASE_SECONDS="0.5", WEBHOOK_RETRY_MAX_SECONDS="1")
        submit(client)

        def tries(name: str) -> list:
            db_session.rollback()
            ids = [i for i, kind in endpoints.items() if kind == name]
            return db_session.scalars(select(WebhookAttempt)
                                      .where(WebhookAttempt.endpoint_id.in_(ids))).all()

        wait_until(lambda: len(tries("moved")) >= 6 and len(tries("slow")) >= 6, timeout=60,
                   message="each referral's redirecting and slow endpoints tried twice")
        gone = tries("gone")
        assert len(gone) == 3 and {a.status_code for a in gone} == {410}
        db_session.rollback()
        disabled = {e.id for e in db_session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.disabled_at.is_not(None)))}
        assert {endpoints[i] for i in disabled} == {"gone"} and len(disabled) == 3
        assert {a.status_code for a in tries("moved")} == {302}
        assert all(a.status_code is None and "timed out" in a.error for a in tries("slow"))
        assert not any(a.succeeded for a in tries("moved") + tries("slow"))
    finally:
        for server in servers.values():
            server.stop()
    assert len(servers["gone"].received()) == 3
    assert servers["elsewhere"].received() == []
