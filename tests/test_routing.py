"""Routing a stored lead: referrals, needs_review and the messages each one queues."""

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from leads.catalogue.models import Clinic, CurrencyRate, Treatment
from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.jobs import Job
from leads.messaging import mail, outbox
from leads.messaging.models import EmailMessage, OutboxMessage
from leads.pipeline.models import Lead, Referral
from leads.routing import operations as routing
from leads.webhooks.models import WebhookEndpoint
from tests.helpers import ROOT, app_at_revision, inquiry_body
from tests.helpers import routed_lead as route
from tests.helpers import submit_reference as submit


def mail_of(db_session, lead, kind):
    return db_session.scalars(select(EmailMessage).where(
        EmailMessage.lead_id == lead.id, EmailMessage.kind == kind)).all()


def test_lead_is_referred_to_the_best_eligible_clinics(app, client, db_session, catalogue):
    lead = route(app, db_session, submit(client))
    assert lead.status == "routed"
    assert len(lead.referrals) == 3
    assert {r.clinic_id for r in lead.referrals} <= catalogue["eligible"]
    for referral in lead.referrals:
        assert referral.status == "requested"
        assert referral.expires_at > utcnow() + timedelta(hours=47)
        assert {r["factor"] for r in referral.reasons} == {
            "language", "budget", "accreditation", "responsiveness", "load"}
    kinds = [e.kind for e in lead.timeline]
    assert kinds.count("referred") == 3 and kinds[-1] == "status_changed"


def test_each_referred_clinic_gets_one_notification_without_contact_details(
        app, client, db_session, catalogue):
    lead = route(app, db_session, submit(client))
    notes = mail_of(db_session, lead, "referral_notification")
    clinics = {db_session.get(Clinic, r.clinic_id).email for r in lead.referrals}
    assert sorted(n.recipient for n in notes) == sorted(clinics)
    for note in notes:
        assert lead.reference in note.subject + note.body_text
        for private in (lead.email, lead.phone, lead.first_name, lead.last_name, lead.condition):
            assert private not in note.body_text and private not in note.body_html


def test_routing_twice_changes_nothing(app, client, db_session, catalogue):
    reference = submit(client)
    lead = route(app, db_session, reference)
    before = (len(lead.referrals), len(lead.timeline), db_session.query(EmailMessage).count())
    lead = route(app, db_session, reference)
    assert (len(lead.referrals), len(lead.timeline),
            db_session.query(EmailMessage).count()) == before


def assert_sent_to_review(db_session, lead):
    assert lead.status == "needs_review"
    assert lead.referrals == []
    alerts = mail_of(db_session, lead, "needs_review_alert")
    assert sorted(a.recipient for a in alerts) == ["admin@care.example", "coord@care.example"]
    assert all(lead.reference in a.subject for a in alerts)


def test_no_consent_to_share_goes_to_review(app, client, db_session, catalogue):
    reference = submit(client, consent={"data_processing": True, "share_with_clinics": False})
    assert_sent_to_review(db_session, route(app, db_session, reference))


def test_no_eligible_clinic_goes_to_review(app, client, db_session, catalogue):
    assert_sent_to_review(db_session, route(app, db_session, submit(client, destinations=["PA"])))


def test_duplicate_is_acknowledged_but_not_routed(app, client, db_session, catalogue):
    body = inquiry_body()
    client.post("/api/v1/inquiries", json=body)
    reference = client.post("/api/v1/inquiries", json=body).get_json()["reference"]
    lead = route(app, db_session, reference)
    assert lead.status == "duplicate" and lead.referrals == []
    assert len(mail_of(db_session, lead, "acknowledgement")) == 1


def test_acknowledgement_speaks_the_patient_language(client, db_session, catalogue):
    for language, greeting in (("es", "Hola"), ("de", "Guten Tag"), ("fr", "Hello"),
                               (None, "Hello")):
        body = inquiry_body()
        body["patient"]["language"] = language
        reference = client.post("/api/v1/inquiries", json=body).get_json()["reference"]
        lead = db_session.scalar(select(Lead).where(Lead.reference == reference))
        (ack,) = mail_of(db_session, lead, "acknowledgement")
        assert ack.body_text.startswith(greeting)
        assert reference in ack.subject and f"/status/{reference}?token=" in ack.body_html


def test_unanswered_referrals_expire_and_the_lead_goes_to_review(
        app, client, db_session, catalogue):
    lead = route(app, db_session, submit(client))
    for referral in lead.referrals:
        referral.expires_at = utcnow() - timedelta(minutes=1)
    db_session.commit()
    with app.app_context():
        assert routing.expire_overdue_referrals() == 3
    db_session.expire_all()
    lead = db_session.get(Lead, lead.id)
    assert {r.status for r in lead.referrals} == {"expired"}
    assert lead.status == "needs_review"
    assert len(mail_of(db_session, lead, "needs_review_alert")) == 2


def test_clinics_at_their_cap_are_skipped(app, client, db_session, catalogue):
    first = route(app, db_session, submit(client))
    for clinic_id in {r.clinic_id for r in first.referrals}:
        db_session.get(Clinic, clinic_id).monthly_referral_cap = 1
    db_session.commit()
    second = route(app, db_session, submit(client))
    assert [r.clinic_id for r in second.referrals] == sorted(
        catalogue["eligible"] - {r.clinic_id for r in first.referrals})
    assert db_session.query(Referral).count() == 4


def test_relay_publishes_a_bursts_mail_in_batches_and_every_row_once(
        app, client, db_session, catalogue):
    for _ in range(8):
        route(app, db_session, submit(client))
    published = []

    def publish(task, payload):
        published.append((task, payload))

    with app.app_context():
        relayed = outbox.relay(publish, merges={Job.SEND_EMAILS: mail.SEND_BATCH})
        assert outbox.relay(publish, merges={Job.SEND_EMAILS: mail.SEND_BATCH}) == 0

    messages = db_session.scalars(select(EmailMessage.id).order_by(EmailMessage.id)).all()
    assert len(messages) == 8 * 4  # an acknowledgement and three notifications per lead
    batches = [payload["message_ids"] for task, payload in published if task == Job.SEND_EMAILS]
    assert [len(batch) for batch in batches] == [20, 12]
    assert sorted(sum(batches, [])) == messages
    leads = [payload for task, payload in published if task == "process_lead"]
    assert len(leads) == 8
    rows = db_session.scalars(select(OutboxMessage)).all()
    assert relayed == len(rows) == 8 + 32
    assert all(row.dispatched_at is not None and row.attempts == 1 for row in rows)


def test_candidates_bring_their_address_webhooks_and_the_rates_matching_needs(
        app, db_session, catalogue):
    """The one query routing asks of the catalogue: each clinic's address, whether it has a
    webhook endpoint to tell (not a disabled or deleted one), and the USD rates of the
    prices' currency and the budget's, and of no other."""
    fit = sorted(catalogue["eligible"])
    now = utcnow()
    db_session.add_all([
        CurrencyRate(currency="EUR", usd_per_unit=Decimal("1.1")),
        CurrencyRate(currency="GBP", usd_per_unit=Decimal("1.3")),
        WebhookEndpoint(clinic_id=fit[0], url="https://fit0.example/hooks",
                        events=["referral.created"], secret="s0"),
        WebhookEndpoint(clinic_id=fit[1], url="https://fit1.example/hooks",
                        events=["referral.created"], secret="s1", disabled_at=now),
        WebhookEndpoint(clinic_id=fit[2], url="https://fit2.example/hooks",
                        events=["referral.created"], secret="s2", deleted_at=now),
    ])
    db_session.commit()
    treatment = db_session.scalar(select(Treatment).where(
        Treatment.slug == "stem-cell-spine-arthritis"))
    lead = Lead(treatment_id=treatment.id, budget_amount=Decimal(9000), budget_currency="EUR")
    lead.destinations = ["MX"]
    with app.app_context():
        candidates, usd_per_unit = routing.load_candidates(lead, set(), now)
    found = {candidate.clinic_id: candidate for candidate in candidates}
    assert set(fit) <= set(found)
    for clinic_id in fit:
        assert found[clinic_id].email == db_session.get(Clinic, clinic_id).email
    assert [clinic_id for clinic_id in fit if found[clinic_id].webhooks] == [fit[0]]
    assert usd_per_unit == {"USD": Decimal(1), "EUR": Decimal("1.1")}

    lead.budget_currency = None
    with app.app_context():
        assert routing.load_candidates(lead, set(), now)[1] == {"USD": Decimal(1)}


def answered(db_session, treatment, clinic_id, hours_by_age):
    """One past lead per answer, referred to the clinic `age` hours ago (oldest first) and
    answered `hours` later; an answer of None leaves it unanswered."""
    now = utcnow()
    for n, (age, hours) in enumerate(hours_by_age):
        lead = Lead(reference=f"MT-H{clinic_id:03d}{n:03d}", treatment_id=treatment.id,
                    country="US", consent_data_processing=True)
        sent = now - timedelta(hours=age)
        db_session.add(Referral(lead=lead, clinic_id=clinic_id, score=0.5, created_at=sent,
                                responded_at=None if hours is None
                                else sent + timedelta(hours=hours)))
    db_session.commit()


def test_a_clinics_responsiveness_is_the_median_of_its_fifty_latest_answers(
        app, db_session, catalogue):
    """Hours from referral to answer: a clinic that answered slowly long ago and quickly of
    late is judged on its latest fifty answers; one with a few, on all of them (an even
    number: the mean of the middle two); one that never answered, on none."""
    treatment = db_session.scalar(select(Treatment).where(
        Treatment.slug == "stem-cell-spine-arthritis"))
    busy, few, silent = sorted(catalogue["eligible"])[:3]
    latest = [1 + n / 10 for n in range(routing.ANSWER_HISTORY)]  # 1.0 to 5.9 hours
    # Ten slow answers a month ago; then the fifty latest, five hours apart.
    answered(db_session, treatment, busy,
             [(1000 + n, 300) for n in range(10)]
             + [(500 - n * 5 + hours, hours) for n, hours in enumerate(latest)])
    answered(db_session, treatment, few, [(90, 5), (60, 7), (40, 8), (30, 10), (10, None)])
    answered(db_session, treatment, silent, [(40, None), (20, None)])
    with app.app_context():
        routing.refresh_responsiveness([busy, few, silent])
        db.session.commit()
    lead = Lead(treatment_id=treatment.id)
    lead.destinations = ["MX"]
    with app.app_context():
        candidates, _ = routing.load_candidates(lead, set(), utcnow())
    median = {candidate.clinic_id: candidate.median_hours_to_answer for candidate in candidates}
    assert median[busy] == pytest.approx((3.4 + 3.5) / 2, abs=1e-6)
    assert median[few] == pytest.approx(7.5, abs=1e-6)
    assert median[silent] is None


def test_the_migration_counts_the_answers_given_before_it(tmp_path_factory):
    """Revision 0008 works out the responsiveness of clinics that answered before it, as the
    app does: clinic 1 answered three times (the middle one counts), clinic 2 never, clinic
    3 twice slowly long ago and then fifty times (the mean of the middle two of those)."""
    from flask_migrate import upgrade
    from sqlalchemy import MetaData, Table

    now = utcnow()
    # (clinic, hours sent before the others, hours to answer)
    answers = [(1, 0, 2), (1, 0, 9), (1, 0, 4), (2, 0, None), (3, 400, 300), (3, 399, 300),
               *((3, 50 - n, 1 + n / 10) for n in range(50))]
    sent = now - timedelta(hours=10)
    with app_at_revision(tmp_path_factory, "0007_lead_list_indexes") as old, old.app_context():
        with db.engine.begin() as connection:
            table = {name: Table(name, MetaData(), autoload_with=connection)
                     for name in ("treatments", "clinics", "leads", "referrals")}
            connection.execute(table["treatments"].insert().values(
                id=1, slug="knee", name="Knee", specialty="orthopaedics", active=True,
                created_at=now))
            connection.execute(table["clinics"].insert(), [
                {"id": clinic_id, "name": f"Clinic {clinic_id}", "city": "Tijuana",
                 "country": "MX", "email": f"c{clinic_id}@clinic.example", "languages": [],
                 "active": True, "monthly_referral_cap": 50, "created_at": now,
                 "updated_at": now} for clinic_id in (1, 2, 3)])
            connection.execute(table["leads"].insert(), [
                {"id": n, "reference": f"MT-M{n:05d}", "status": "routed",
                 "priority": "normal", "tags": [], "treatment_id": 1, "country": "US",
                 "consent_data_processing": True, "consent_share_with_clinics": True,
                 "consent_marketing": False, "source": {}, "created_at": sent,
                 "updated_at": now} for n in range(1, len(answers) + 1)])
            connection.execute(table["referrals"].insert(), [
                {"lead_id": n, "clinic_id": clinic_id, "status": "accepted", "score": 0.5,
                 "reasons": [], "created_at": sent - timedelta(hours=before),
                 "updated_at": now, "responded_at": None if hours is None
                 else sent - timedelta(hours=before - hours)}
                for n, (clinic_id, before, hours) in enumerate(answers, start=1)])
        upgrade(directory=str(ROOT / "migrations"))
        assert db.session.get(Clinic, 1).median_hours_to_answer == pytest.approx(4, abs=1e-6)
        assert db.session.get(Clinic, 2).median_hours_to_answer is None
        assert db.session.get(Clinic, 3).median_hours_to_answer == pytest.approx(
            (3.4 + 3.5) / 2, abs=1e-6)
