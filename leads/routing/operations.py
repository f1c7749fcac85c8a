"""Routing a lead: load what the matching engine needs, refer the lead to the clinics it
chooses, and tell everyone who must know. Called by the worker and by the reroute endpoint."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import ScalarSelect, func, null, or_, select, update
from sqlalchemy.orm import joinedload

from leads.catalogue.models import Accreditation, Clinic, ClinicTreatment, CurrencyRate
from leads.core.clock import utcnow
from leads.core.database import db, hours_between
from leads.core.settings import settings
from leads.messaging.mail import queue_email
from leads.messaging.review_alerts import raise_review_alerts
from leads.pipeline.models import Lead, Referral
from leads.pipeline.states import (
    REFERRAL_OPEN,
    UNANSWERED,
    EventKind,
    LeadStatus,
    ReferralStatus,
)
from leads.pipeline.timeline import SYSTEM, change_lead_status, change_referral_status, record_event
from leads.routing import matching
from leads.webhooks.events import WebhookEvent
from leads.webhooks.operations import announce, has_live_endpoint

ANSWER_HISTORY = 50  # how many recent answers make a clinic's responsiveness


def month_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def _median_hours_to_answer() -> ScalarSelect:
    """Correlated to the clinic: the median of the hours from referral to answer over its
    ANSWER_HISTORY latest answers, NULL before its first. Worked out by the database, which
    reads those answers backwards from the index on (clinic_id, responded_at, created_at)
    and no older one, so a clinic's years of answers cost nothing."""
    latest = (select(hours_between(Referral.created_at, Referral.responded_at).label("hours"))
              .where(Referral.clinic_id == Clinic.id, Referral.responded_at.is_not(None))
              .order_by(Referral.responded_at.desc())
              .limit(ANSWER_HISTORY)
              .correlate(Clinic)
              .subquery("latest"))
    ranked = select(latest.c.hours,
                    func.row_number().over(order_by=latest.c.hours).label("place"),
                    func.count().over().label("answers")).subquery("ranked")
    # The middle answer, or the mean of the middle two.
    middle = or_(ranked.c.place == (ranked.c.answers + 1) // 2,
                 ranked.c.place == (ranked.c.answers + 2) // 2)
    return select(func.avg(ranked.c.hours)).where(middle).scalar_subquery()


def refresh_responsiveness(clinic_ids: list[int]) -> None:
    """Work out these clinics' `median_hours_to_answer` again from their latest answers."""
    # A figure of its answers, not an edit of the clinic: `updated_at` stays as it was.
    db.session.execute(update(Clinic).where(Clinic.id.in_(clinic_ids))
                       .values(median_hours_to_answer=_median_hours_to_answer(),
                               updated_at=Clinic.updated_at))


def record_answer(referral: Referral) -> None:
    """The clinic answered this referral: its responsiveness counts the answer. The clinic's
    row is locked first, so that of two answers committed at once the later one's figure is
    worked out from a snapshot that holds the other (READ COMMITTED takes a snapshot per
    statement). FOR NO KEY UPDATE, as the UPDATE itself takes: an answer's own writes that
    refer to the clinic hold a key-share lock on its row, which FOR UPDATE would wait for,
    and two answers would each wait for the other."""
    db.session.execute(select(Clinic.id).where(Clinic.id == referral.clinic_id)
                       .with_for_update(key_share=True))
    refresh_responsiveness([referral.clinic_id])


def load_candidates(lead: Lead, skip_clinic_ids: set[int],
                    now: datetime) -> tuple[list[matching.Candidate], dict[str, Decimal]]:
    """Clinics that offer the lead's treatment, as the matching engine sees them, and the
    USD rates of their prices' currencies and of the lead's budget. Plain columns, not ORM
    objects: building a clinic's object graph cost most of a match."""
    # In the same statement, each a round trip of its own before: each candidate's referrals
    # this month (by the index on (clinic_id, created_at)), the rates, whether the clinic
    # has a webhook to tell and its address to mail.
    this_month = (select(func.count()).where(Referral.clinic_id == Clinic.id,
                                             Referral.created_at >= month_start(now))
                  .correlate(Clinic).scalar_subquery())
    has_webhooks = has_live_endpoint(Clinic.id).correlate(Clinic)
    budget_rate = (select(CurrencyRate.usd_per_unit)
                   .where(CurrencyRate.currency == lead.budget_currency).scalar_subquery()
                   if lead.budget_currency else null())
    query = (
        select(Clinic.id, Clinic.name, Clinic.email, Clinic.country, Clinic.active,
               Clinic.languages, Clinic.monthly_referral_cap, ClinicTreatment.price_min,
               ClinicTreatment.price_max, ClinicTreatment.currency,
               this_month.label("referrals_this_month"),
               CurrencyRate.usd_per_unit.label("price_rate"), budget_rate.label("budget_rate"),
               has_webhooks.label("webhooks"), Clinic.median_hours_to_answer)
        .join(ClinicTreatment, ClinicTreatment.clinic_id == Clinic.id)
        .outerjoin(CurrencyRate, CurrencyRate.currency == ClinicTreatment.currency)
        .where(ClinicTreatment.treatment_id == lead.treatment_id, Clinic.active)
        .order_by(Clinic.id)
    )
    if lead.destinations:
        query = query.where(Clinic.country.in_(lead.destinations))
    if skip_clinic_ids:
        query = query.where(Clinic.id.not_in(skip_clinic_ids))
    rows = db.session.execute(query).all()
    if not rows:
        return [], {}
    rates = {row.currency: row.price_rate for row in rows if row.price_rate is not None}
    if rows[0].budget_rate is not None:
        rates[lead.budget_currency] = rows[0].budget_rate
    accreditations = _accreditations([row.id for row in rows])
    return [
        matching.Candidate(
            clinic_id=row.id, name=row.name, country=row.country, active=row.active,
            languages=tuple(row.languages or ()), monthly_cap=row.monthly_referral_cap,
            referrals_this_month=row.referrals_this_month,
            offer=matching.Offer(row.price_min, row.price_max, row.currency),
            accreditations=tuple(accreditations.get(row.id, ())),
            median_hours_to_answer=row.median_hours_to_answer,
            email=row.email, webhooks=bool(row.webhooks),
        )
        for row in rows
    ], rates


def _accreditations(clinic_ids: list[int]) -> dict[int, list[matching.Accreditation]]:
    rows = db.session.execute(
        select(Accreditation.clinic_id, Accreditation.body, Accreditation.verified,
               Accreditation.valid_from, Accreditation.valid_until)
        .where(Accreditation.clinic_id.in_(clinic_ids))
        .order_by(Accreditation.id)
    ).all()
    found: dict[int, list[matching.Accreditation]] = {}
    for clinic_id, *fields in rows:
        found.setdefault(clinic_id, []).append(matching.Accreditation(*fields))
    return found


def lead_profile(lead: Lead) -> matching.LeadProfile:
    return matching.LeadProfile(
        destinations=tuple(lead.destinations), language=lead.language,
        budget_amount=lead.budget_amount, budget_currency=lead.budget_currency,
    )


def eligible_clinics(lead: Lead, skip_clinic_ids: set[int]) -> list[matching.Candidate]:
    """The clinics matching may refer the lead to now (CONTRACT §6's hard filters), the
    skipped ones aside, by id."""
    now = utcnow()
    profile = lead_profile(lead)
    candidates, _ = load_candidates(lead, skip_clinic_ids, now)
    return [candidate for candidate in candidates
            if not matching.exclusions(candidate, profile, now.date())]


def refer(lead: Lead, skip_clinic_ids: set[int], actor: str,
          still_open: int = 0) -> list[Referral]:
    """Create referrals to the best eligible clinics and notify each; [] when none fit.
    With `still_open` referrals the lead keeps, only as many clinics are added as bring it
    to MAX_CLINICS_PER_LEAD."""
    now = utcnow()
    config = settings()
    room = config.max_clinics_per_lead - still_open
    if room <= 0:
        return []
    candidates, usd_per_unit = load_candidates(lead, skip_clinic_ids, now)
    matches = matching.best_matches(candidates, lead_profile(lead), now.date(), usd_per_unit,
                                    room)
    if not matches:
        return []
    expires = now + timedelta(hours=config.referral_response_hours)
    referrals = []
    for match in matches:
        referral = Referral(lead=lead, clinic_id=match.clinic_id, status=ReferralStatus.REQUESTED,
                            score=match.score, reasons=[r.as_dict() for r in match.reasons],
                            created_at=now, updated_at=now, expires_at=expires)
        db.session.add(referral)
        referrals.append(referral)
    db.session.flush()
    clinics = {candidate.clinic_id: candidate for candidate in candidates}
    # Written together when the lead is committed: the events, the webhook messages and the
    # mail's outbox rows. Each query below would otherwise first flush what the one before
    # it staged, an INSERT a table each time.
    with db.session.no_autoflush:
        for referral in referrals:
            clinic = clinics[referral.clinic_id]
            record_event(lead, actor, EventKind.REFERRED, referral_id=referral.id,
                         clinic_id=clinic.clinic_id, clinic=clinic.name, score=referral.score)
        announce([referral for referral in referrals if clinics[referral.clinic_id].webhooks],
                 WebhookEvent.REFERRAL_CREATED)
        for referral in referrals:
            clinic = clinics[referral.clinic_id]
            queue_email(
                "referral_notification", f"referral_notification:{referral.id}", clinic.email,
                "en", lead_id=lead.id,
                clinic_name=clinic.name, reference=lead.reference,
                treatment_name=lead.treatment.name, patient_country=lead.country,
                response_hours=config.referral_response_hours,
                referral_url=f"{config.public_base_url}/clinic/referrals/{referral.id}",
            )
    return referrals


def send_to_review(lead: Lead, reason: str, actor: str = SYSTEM) -> None:
    """Move the lead to `needs_review` and alert every active coordinator and admin once
    (at once, or in their next digest: leads/messaging/review_alerts.py)."""
    entered = change_lead_status(lead, LeadStatus.NEEDS_REVIEW, actor, reason=reason)
    db.session.flush()  # the event's id tells this stay in review from a later one
    raise_review_alerts(lead, entered)


def route_lead(lead: Lead) -> None:
    """First routing of a received lead: to clinics, or to a coordinator."""
    if lead.status != LeadStatus.RECEIVED:
        return
    if not lead.consent_share_with_clinics:
        send_to_review(lead, "The patient did not consent to sharing with clinics.")
        return
    # A reopened lead keeps its old referrals; the same clinic is not asked twice.
    if refer(lead, {r.clinic_id for r in lead.referrals}, SYSTEM):
        change_lead_status(lead, LeadStatus.ROUTED, SYSTEM)
    else:
        send_to_review(lead, "No eligible clinic fits this lead.")


def stranded_leads(older_than: timedelta) -> list[int]:
    """Leads still waiting to be routed a while after they arrived: their routing task was
    lost with a worker that died holding it (the broker would give it back only after its
    visibility timeout). Routing them again is safe; `process_lead` does nothing twice."""
    return list(db.session.scalars(
        select(Lead.id)
        .where(Lead.status == LeadStatus.RECEIVED, Lead.updated_at < utcnow() - older_than)
        .order_by(Lead.id)
        .limit(1000)
    ))


def process_lead(lead_id: int) -> None:
    """The worker's whole job for a newly accepted lead; safe to run any number of times:
    a lead no longer waiting (routed by an earlier copy of the task, or a duplicate) is left
    as it is."""
    # The destinations and any earlier referrals in the same statement (selected apart, they
    # were two more round trips); only the lead's row is locked. No unlocked look first:
    # copies are rare now that the stranded sweep waits out a backlog, and the look was a
    # transaction of its own (BEGIN, SELECT, ROLLBACK) for every lead.
    lead = db.session.scalars(
        select(Lead).where(Lead.id == lead_id)
        .options(joinedload(Lead.destination_rows), joinedload(Lead.referrals))
        .with_for_update(of=Lead)
    ).unique().one_or_none()
    if lead is None:
        db.session.rollback()
        return
    route_lead(lead)
    db.session.commit()


def is_overdue(referral: Referral, now: datetime) -> bool:
    return (referral.status in UNANSWERED and referral.expires_at is not None
            and referral.expires_at < now)


def review_if_nothing_open(lead: Lead) -> None:
    """A routed lead whose every referral was declined or expired goes to a coordinator."""
    still_open = any(r.status in REFERRAL_OPEN for r in lead.referrals)
    if lead.status == LeadStatus.ROUTED and not still_open:
        send_to_review(lead, "Every referral was declined or expired.")


def expire_overdue_referrals() -> int:
    """Referrals with no answer in time expire. The leads are locked first, as every other
    writer locks them, so the sweep and a clinic's answer take turns rather than deadlock."""
    now = utcnow()
    leads = db.session.scalars(
        select(Lead)
        .where(Lead.id.in_(select(Referral.lead_id).where(
            Referral.status.in_(UNANSWERED), Referral.expires_at < now)))
        .order_by(Lead.id)
        .with_for_update(skip_locked=True, of=Lead)
        .execution_options(populate_existing=True)
    ).all()
    expired = 0
    for lead in leads:
        for referral in lead.referrals:
            if is_overdue(referral, now):
                change_referral_status(referral, ReferralStatus.EXPIRED, SYSTEM)
                expired += 1
        review_if_nothing_open(lead)
    db.session.commit()
    return expired
