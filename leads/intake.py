"""Accepting a patient's inquiry: the lead, its first events and the work it starts,
all in the caller's transaction, so that what was accepted is kept."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from leads.catalogue import find_active_treatment
from leads.extensions import db
from leads.mail import queue_email, template_language
from leads.models import Lead
from leads.models.personal import email_lookup_key
from leads.models.types import utcnow
from leads.outbox import enqueue
from leads.timeline import PATIENT, SYSTEM, change_lead_status, record_event

DUPLICATE_WINDOW = timedelta(days=30)
# Crockford's base32 without I, L, O, U: easy to read out over the phone.
REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PROCESS_LEAD_TASK = "process_lead"


@dataclass
class Accepted:
    lead: Lead
    status_token: str


def new_reference() -> str:
    while True:
        reference = "MT-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(7))
        if db.session.scalar(select(Lead.id).where(Lead.reference == reference)) is None:
            return reference


def status_url(reference: str, token: str) -> str:
    base = current_app.config["PUBLIC_BASE_URL"]
    return f"{base}/api/v1/inquiries/{reference}?token={token}"


def hash_status_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def find_original(email_key: str, treatment_id: int, now) -> Lead | None:
    """The lead a new inquiry repeats: same person, same treatment, within 30 days."""
    return db.session.scalar(
        select(Lead)
        .where(
            Lead.email_key == email_key,
            Lead.treatment_id == treatment_id,
            Lead.created_at >= now - DUPLICATE_WINDOW,
            Lead.status.not_in(("spam", "duplicate")),
        )
        .order_by(Lead.created_at)
        .limit(1)
    )


def accept_inquiry(form: dict) -> Accepted:
    """Stage a lead from a validated inquiry form; the caller commits."""
    now = utcnow()
    patient = form["patient"]
    budget = form.get("budget") or {}
    window = form.get("travel_window") or {}
    consent = form["consent"]
    treatment = find_active_treatment(form["treatment"])
    token = secrets.token_urlsafe(24)
    lead = Lead(
        reference=new_reference(),
        status="received",
        treatment=treatment,
        first_name=patient["first_name"],
        last_name=patient["last_name"],
        email=patient["email"],
        email_key=email_lookup_key(patient["email"]),
        phone=patient.get("phone") or None,
        country=patient["country"],
        language=patient.get("language"),
        birth_year=patient.get("birth_year"),
        condition=form["condition"],
        has_imaging=form.get("has_imaging"),
        budget_amount=budget.get("amount"),
        budget_currency=budget.get("currency"),
        travel_earliest=window.get("earliest"),
        travel_latest=window.get("latest"),
        contact_preference=form.get("contact_preference"),
        consent_data_processing=consent["data_processing"],
        consent_share_with_clinics=consent["share_with_clinics"],
        consent_marketing=consent["marketing"],
        source={k: v for k, v in (form.get("source") or {}).items() if v is not None},
        tags=[],
        status_token_hash=hash_status_token(token),
        created_at=now,
        updated_at=now,
    )
    lead.destinations = form.get("destinations") or []
    spam = bool(form.get("website"))
    original = None if spam else find_original(lead.email_key, treatment.id, now)
    db.session.add(lead)
    db.session.flush()  # the lead's id names it in the events and the outbox
    record_event(lead, PATIENT, "received", reference=lead.reference)

    if spam:
        # The honeypot was filled in: a bot. Answer as usual, do nothing more.
        change_lead_status(lead, "spam", SYSTEM, reason="honeypot field filled in")
        return Accepted(lead, token)
    if original is not None:
        lead.duplicate_of = original
        change_lead_status(lead, "duplicate", SYSTEM, reason=f"repeats {original.reference}")
        record_event(original, SYSTEM, "duplicate_received",
                     lead_id=lead.id, reference=lead.reference)
    enqueue(PROCESS_LEAD_TASK, lead_id=lead.id)
    queue_email(
        "acknowledgement", f"acknowledgement:{lead.id}", lead.email,
        template_language(lead.language), lead_id=lead.id, first_name=lead.first_name,
        reference=lead.reference, treatment_name=treatment.name,
        status_url=status_url(lead.reference, token),
    )
    return Accepted(lead, token)
