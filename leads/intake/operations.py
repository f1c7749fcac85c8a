"""Accepting a patient's inquiry: the lead, its first events and the work it starts,
all in the caller's transaction, so that what was accepted is kept. And what the patient
sees of it afterwards, by the status link (the API and the status page alike)."""

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select

from leads.accounts.credentials import matches
from leads.catalogue.operations import find_active_treatment
from leads.core.clock import today, utcnow
from leads.core.database import db
from leads.core.errors import NotFound
from leads.core.jobs import Job
from leads.core.settings import settings
from leads.messaging.mail import queue_email, template_language
from leads.messaging.outbox import enqueue
from leads.pipeline.models import Lead
from leads.pipeline.states import NOT_ORIGINALS, WITHDRAWABLE, EventKind, LeadStatus
from leads.pipeline.timeline import PATIENT, SYSTEM, change_lead_status, record_event
from leads.privacy.personal import email_lookup_key
from leads.privacy.search import index_names

DUPLICATE_WINDOW = timedelta(days=30)
# Crockford's base32 without I, L, O, U: easy to read out over the phone.
REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_reference() -> str:
    while True:
        reference = "MT-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(7))
        if db.session.scalar(select(Lead.id).where(Lead.reference == reference)) is None:
            return reference


def status_url(lead: Lead) -> str | None:
    """The patient's link for every mail after the acknowledgement; None for a lead whose
    token is gone (erased) or was never kept (accepted before tokens were)."""
    if lead.status_token is None:
        return None
    return settings().status_url(lead.reference, lead.status_token)


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
            Lead.status.not_in(NOT_ORIGINALS),
        )
        .order_by(Lead.created_at)
        .limit(1)
    )


def accept_inquiry(form: dict) -> Lead:
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
        status=LeadStatus.RECEIVED,
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
        # Kept, encrypted, for the links in later mail (a quote); the hash finds the lead.
        status_token=token,
        created_at=now,
        updated_at=now,
    )
    lead.destinations = form.get("destinations") or []
    spam = bool(form.get("website"))
    original = None if spam else find_original(lead.email_key, treatment.id, now)
    db.session.add(lead)
    db.session.flush()  # the lead's id names it in the events, the outbox and the index
    index_names(lead)
    record_event(lead, PATIENT, EventKind.RECEIVED, reference=lead.reference)

    if spam:
        # The honeypot was filled in: a bot. Answer as usual, do nothing more.
        change_lead_status(lead, LeadStatus.SPAM, SYSTEM, reason="honeypot field filled in")
        return lead
    if original is not None:
        lead.duplicate_of = original
        change_lead_status(lead, LeadStatus.DUPLICATE, SYSTEM,
                           reason=f"repeats {original.reference}")
        record_event(original, SYSTEM, EventKind.DUPLICATE_RECEIVED,
                     lead_id=lead.id, reference=lead.reference)
    enqueue(Job.PROCESS_LEAD, lead_id=lead.id)
    queue_email(
        "acknowledgement", f"acknowledgement:{lead.id}", lead.email,
        template_language(lead.language), lead_id=lead.id, first_name=lead.first_name,
        reference=lead.reference, treatment_name=treatment.name,
        status_url=status_url(lead),
    )
    return lead


class UnknownInquiry(NotFound):
    def __init__(self):
        super().__init__("No inquiry with that reference and token.")


def patients_lead(reference: str, token: str, *, for_update: bool = False) -> Lead:
    """The lead the status link names; a wrong or missing token looks like no lead at all,
    and so does any token for an erased lead (it has none)."""
    query = select(Lead).where(Lead.reference == reference.upper())
    if for_update:
        # The worker may be routing it, a clinic answering: take turns, as they do.
        query = query.with_for_update(of=Lead)
    lead = db.session.scalar(query)
    if (lead is None or not token or lead.status_token_hash is None
            or not matches(token, lead.status_token_hash)):
        raise UnknownInquiry()
    return lead


def patients_view(lead: Lead) -> dict:
    """What the patient may see of their own lead: its status, treatment, the clinics it was
    referred to with their verified accreditations valid today, and their quotes."""
    day = today()
    # The honeypot must not tell a bot it was caught.
    shown = LeadStatus.RECEIVED if lead.status == LeadStatus.SPAM else lead.status
    return {
        "reference": lead.reference,
        "status": shown,
        # Judged on the status shown: a spam lead offers it too, and is refused as closed.
        "withdrawable": shown in WITHDRAWABLE,
        "treatment": lead.treatment,
        "created_at": lead.created_at,
        "updated_at": lead.updated_at,
        "referrals": [
            {"clinic": referral.clinic, "status": referral.status, "quotes": referral.quotes,
             "accreditations": [accreditation for accreditation in referral.clinic.accreditations
                                if accreditation.is_valid_on(day)]}
            for referral in lead.referrals
        ],
        # The files the patient added (none are kept for a spam lead).
        "attachments": lead.attachments,
    }
