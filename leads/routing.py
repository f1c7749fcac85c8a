"""Routing a lead: load what the matching engine needs, refer the lead to the clinics it
chooses, and tell everyone who must know. Called by the worker and by the reroute endpoint."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from flask import current_app
from sqlalchemy import func, select

from leads import matching
from leads.extensions import db
from leads.mail import queue_email
from leads.models import (
    Clinic, ClinicTreatment, CurrencyRate, Lead, Referral, TimelineEvent, User,
)
from leads.models.types import utcnow
from leads.pipeline import REFERRAL_OPEN
from leads.timeline import SYSTEM, change_lead_status, change_referral_status, record_event

ANSWER_HISTORY = 50  # how many recent answers make a clinic's responsiveness


def month_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=timezone.utc)


def usd_rates() -> dict[str, Decimal]:
    return dict(db.session.execute(select(CurrencyRate.currency, CurrencyRate.usd_per_unit)).all())


def _referral_counts(clinic_ids: list[int], since: datetime) -> dict[int, int]:
    return dict(db.session.execute(
        select(Referral.clinic_id, func.count())
        .where(Referral.clinic_id.in_(clinic_ids), Referral.created_at >= since)
        .group_by(Referral.clinic_id)
    ).all())


def _answer_hours(clinic_ids: list[int]) -> dict[int, list[float]]:
    rows = db.session.execute(
        select(Referral.clinic_id, Referral.created_at, Referral.responded_at)
        .where(Referral.clinic_id.in_(clinic_ids), Referral.responded_at.is_not(None))
        .order_by(Referral.responded_at.desc())
    ).all()
    hours: dict[int, list[float]] = {}
    for clinic_id, created, responded in rows:
        answers = hours.setdefault(clinic_id, [])
        if len(answers) < ANSWER_HISTORY:
            answers.append((responded - created).total_seconds() / 3600)
    return hours


def load_candidates(lead: Lead, skip_clinic_ids: set[int], now: datetime) -> list[matching.Candidate]:
    """Clinics that offer the lead's treatment, as the matching engine sees them."""
    query = (
        select(Clinic, ClinicTreatment)
        .join(ClinicTreatment, ClinicTreatment.clinic_id == Clinic.id)
        .where(ClinicTreatment.treatment_id == lead.treatment_id, Clinic.active)
        .order_by(Clinic.id)
    )
    if lead.destinations:
        query = query.where(Clinic.country.in_(lead.destinations))
    if skip_clinic_ids:
        query = query.where(Clinic.id.not_in(skip_clinic_ids))
    rows = db.session.execute(query).all()
    ids = [clinic.id for clinic, _ in rows]
    counts = _referral_counts(ids, month_start(now)) if ids else {}
    hours = _answer_hours(ids) if ids else {}
    return [
        matching.Candidate(
            clinic_id=clinic.id, name=clinic.name, country=clinic.country, active=clinic.active,
            languages=tuple(clinic.languages or ()), monthly_cap=clinic.monthly_referral_cap,
            referrals_this_month=counts.get(clinic.id, 0),
            offer=matching.Offer(offer.price_min, offer.price_max, offer.currency),
            accreditations=tuple(
                matching.Accreditation(a.body, a.verified, a.valid_from, a.valid_until)
                for a in clinic.accreditations),
            hours_to_first_answer=tuple(hours.get(clinic.id, ())),
        )
        for clinic, offer in rows
    ]


def lead_profile(lead: Lead) -> matching.LeadProfile:
    return matching.LeadProfile(
        destinations=tuple(lead.destinations), language=lead.language,
        budget_amount=lead.budget_amount, budget_currency=lead.budget_currency,
    )


def refer(lead: Lead, skip_clinic_ids: set[int], actor: str) -> list[Referral]:
    """Create referrals to the best eligible clinics and notify each; [] when none fit."""
    now = utcnow()
    config = current_app.config
    matches = matching.best_matches(
        load_candidates(lead, skip_clinic_ids, now), lead_profile(lead), now.date(),
        usd_rates(), config["MAX_CLINICS_PER_LEAD"],
    )
    expires = now + timedelta(hours=config["REFERRAL_RESPONSE_HOURS"])
    referrals = []
    for match in matches:
        referral = Referral(lead=lead, clinic_id=match.clinic_id, status="requested",
                            score=match.score, reasons=[r.as_dict() for r in match.reasons],
                            created_at=now, updated_at=now, expires_at=expires)
        db.session.add(referral)
        referrals.append(referral)
    db.session.flush()
    for referral in referrals:
        clinic = db.session.get(Clinic, referral.clinic_id)
        record_event(lead, actor, "referred", referral_id=referral.id, clinic_id=clinic.id,
                     clinic=clinic.name, score=referral.score)
        queue_email(
            "referral_notification", f"referral_notification:{referral.id}", clinic.email,
            "en", lead_id=lead.id,
            clinic_name=clinic.name, reference=lead.reference,
            treatment_name=lead.treatment.name, patient_country=lead.country,
            response_hours=config["REFERRAL_RESPONSE_HOURS"],
            referral_url=f"{config['PUBLIC_BASE_URL']}/api/v1/clinic/referrals/{referral.id}",
        )
    return referrals


def send_to_review(lead: Lead, reason: str, actor: str = SYSTEM) -> None:
    """Move the lead to `needs_review` and alert every active coordinator and admin once."""
    change_lead_status(lead, "needs_review", actor, reason=reason)
    db.session.flush()
    entered = db.session.scalar(
        select(TimelineEvent.id).where(TimelineEvent.lead_id == lead.id)
        .order_by(TimelineEvent.id.desc()).limit(1))
    base = current_app.config["PUBLIC_BASE_URL"]
    staff = db.session.scalars(select(User).where(User.active).order_by(User.id))
    for user in staff:
        queue_email(
            "needs_review_alert", f"needs_review_alert:{lead.id}:{entered}:{user.id}",
            user.email, "en", lead_id=lead.id, reference=lead.reference,
            treatment_name=lead.treatment.name, reason=reason,
            lead_url=f"{base}/api/v1/leads/{lead.id}",
        )


def route_lead(lead: Lead) -> None:
    """First routing of a received lead: to clinics, or to a coordinator."""
    if lead.status != "received":
        return
    if not lead.consent_share_with_clinics:
        send_to_review(lead, "The patient did not consent to sharing with clinics.")
        return
    if refer(lead, set(), SYSTEM):
        change_lead_status(lead, "routed", SYSTEM)
    else:
        send_to_review(lead, "No eligible clinic fits this lead.")


def process_lead(lead_id: int) -> None:
    """The worker's whole job for a newly accepted lead; safe to run any number of times."""
    lead = db.session.scalar(select(Lead).where(Lead.id == lead_id).with_for_update(of=Lead))
    if lead is None:
        return
    route_lead(lead)
    db.session.commit()


def expire_overdue_referrals() -> int:
    """Referrals with no answer in time expire; a routed lead left with no open referral
    goes to a coordinator."""
    now = utcnow()
    overdue = db.session.scalars(
        select(Referral)
        .where(Referral.status.in_(("requested", "received")), Referral.expires_at < now)
        .order_by(Referral.id)
        .with_for_update(skip_locked=True, of=Referral)
    ).all()
    for referral in overdue:
        change_referral_status(referral, "expired", SYSTEM)
    for lead in {referral.lead for referral in overdue}:
        if lead.status == "routed" and not any(r.status in REFERRAL_OPEN for r in lead.referrals):
            send_to_review(lead, "Every referral was declined or expired.")
    db.session.commit()
    return len(overdue)
