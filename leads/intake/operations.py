"""Accepting a patient's inquiry: the lead, its first events and the work it starts,
all in the caller's transaction, so that what was accepted is kept. And what the patient
sees of it afterwards, by the status link (the API and the status page alike)."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, bindparam, insert, select

from leads.accounts.credentials import matches
from leads.catalogue.models import Treatment
from leads.catalogue.operations import forget_active_treatments
from leads.core.clock import today, utcnow
from leads.core.database import db, insert_unless_taken
from leads.core.errors import Invalid, NotFound
from leads.core.jobs import Job
from leads.core.settings import settings
from leads.messaging.mail import queue_email, template_language
from leads.pipeline.models import Lead, LeadDestination, TimelineEvent
from leads.pipeline.states import (
    LEAD_TRANSITIONS,
    NOT_ORIGINALS,
    WITHDRAWABLE,
    EventKind,
    LeadStatus,
    transition,
)
from leads.pipeline.timeline import PATIENT, SYSTEM, status_change_data
from leads.privacy.personal import email_lookup_key
from leads.privacy.search import index_names

DUPLICATE_WINDOW = timedelta(days=30)
# Crockford's base32 without I, L, O, U: easy to read out over the phone.
REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_reference() -> str:
    """A candidate; the unique index on `leads.reference` decides (see `_insert_lead`)."""
    return "MT-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(7))


def status_url(lead: Lead) -> str | None:
    """The patient's link for every mail after the acknowledgement; None for a lead whose
    token is gone (erased) or was never kept (accepted before tokens were)."""
    if lead.status_token is None:
        return None
    return settings().status_url(lead.reference, lead.status_token)


def hash_status_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# The statements of the intake path are built once, their values bound at each call: no
# statement construction or cache-key computation per inquiry.
_TREATMENT_AND_ORIGINAL = select(
    Treatment.id, Treatment.name, Treatment.active,
    select(Lead.id)
    .where(
        Lead.email_key == bindparam("email_key"),
        Lead.treatment_id == Treatment.id,
        Lead.created_at >= bindparam("since"),
        Lead.status.not_in(NOT_ORIGINALS),
    )
    .order_by(Lead.created_at)
    .limit(1)
    .correlate(Treatment)
    .scalar_subquery()
    .label("original_id"),
).where(Treatment.slug == bindparam("slug"))
_DESTINATIONS_INSERT = insert(LeadDestination.__table__)
_EVENTS_INSERT = insert(TimelineEvent.__table__)


def _treatment_and_original(slug: str, email_key: str | None, now: datetime) -> Row | None:
    """The treatment (id, name, active) and, unless `email_key` is None, the id of the lead
    a new inquiry from that address repeats: same person, same treatment, within 30 days.
    One statement, read afresh for every inquiry."""
    return db.session.execute(
        _TREATMENT_AND_ORIGINAL,
        {"slug": slug, "email_key": email_key, "since": now - DUPLICATE_WINDOW},
    ).one_or_none()


def _insert_lead(values: dict) -> tuple[int, str]:
    """Insert the lead under a fresh reference, drawing another on the rare collision: no
    look-up before, the unique index answers in the same statement."""
    statement = insert_unless_taken(Lead.__table__, "reference")
    while True:
        reference = new_reference()
        lead_id = db.session.scalar(statement, {"reference": reference, **values})
        if lead_id is not None:
            return lead_id, reference


@dataclass(frozen=True)
class AcceptedInquiry:
    lead_id: int
    reference: str
    status_url: str


def accept_inquiry(form: dict) -> AcceptedInquiry:
    """Write a lead from a validated inquiry form, with its destinations, name index, first
    events, acknowledgement and routing job, in a few Core statements (this is the path a
    campaign's burst takes); rows go as executemany, whose statements SQLAlchemy compiles
    once (a multi-row VALUES is compiled anew for each). The caller commits."""
    now = utcnow()
    patient = form["patient"]
    budget = form.get("budget") or {}
    window = form.get("travel_window") or {}
    consent = form["consent"]
    email_key = email_lookup_key(patient["email"])
    spam = bool(form.get("website"))
    # A spam lead is never a duplicate: no e-mail key matches NULL.
    treatment = _treatment_and_original(form["treatment"], None if spam else email_key, now)
    if treatment is None or not treatment.active:
        forget_active_treatments()  # validation passed it on a remembered yes
        raise Invalid("treatment", f"Unknown or inactive treatment {form['treatment']!r}.")

    # The honeypot filled in means a bot: answered as usual, nothing more is done.
    status = (LeadStatus.SPAM if spam else
              LeadStatus.DUPLICATE if treatment.original_id is not None else LeadStatus.RECEIVED)
    token = secrets.token_urlsafe(24)
    lead_id, reference = _insert_lead({
        "status": status,
        "treatment_id": treatment.id,
        "first_name": patient["first_name"],
        "last_name": patient["last_name"],
        "email": patient["email"],
        "email_key": email_key,
        "phone": patient.get("phone") or None,
        "country": patient["country"],
        "language": patient.get("language"),
        "birth_year": patient.get("birth_year"),
        "condition": form["condition"],
        "has_imaging": form.get("has_imaging"),
        "budget_amount": budget.get("amount"),
        "budget_currency": budget.get("currency"),
        "travel_earliest": window.get("earliest"),
        "travel_latest": window.get("latest"),
        "contact_preference": form.get("contact_preference"),
        "consent_data_processing": consent["data_processing"],
        "consent_share_with_clinics": consent["share_with_clinics"],
        "consent_marketing": consent["marketing"],
        "source": {k: v for k, v in (form.get("source") or {}).items() if v is not None},
        "tags": [],
        "duplicate_of_id": None if spam else treatment.original_id,
        "status_token_hash": hash_status_token(token),
        # Kept, encrypted, for the links in later mail (a quote); the hash finds the lead.
        "status_token": token,
        "created_at": now,
        "updated_at": now,
    })
    if destinations := form.get("destinations"):
        db.session.execute(_DESTINATIONS_INSERT,
                           [{"lead_id": lead_id, "country": country, "position": position}
                            for position, country in enumerate(destinations)])
    index_names(lead_id, patient["first_name"], patient["last_name"])
    events = [{"lead_id": lead_id, "at": now, "actor": PATIENT, "kind": EventKind.RECEIVED,
               "data": {"reference": reference}}]
    if status != LeadStatus.RECEIVED:
        reason = "honeypot field filled in"
        if not spam:
            original_reference = db.session.scalar(
                select(Lead.reference).where(Lead.id == treatment.original_id))
            reason = f"repeats {original_reference}"
        change = transition(LEAD_TRANSITIONS, LeadStatus.RECEIVED, status)
        events.append({"lead_id": lead_id, "at": now, "actor": SYSTEM,
                       "kind": EventKind.STATUS_CHANGED,
                       "data": status_change_data(change, reason)})
        if not spam:
            events.append({"lead_id": treatment.original_id, "at": now, "actor": SYSTEM,
                           "kind": EventKind.DUPLICATE_RECEIVED,
                           "data": {"lead_id": lead_id, "reference": reference}})
    db.session.execute(_EVENTS_INSERT, events)

    link = settings().status_url(reference, token)
    if not spam:
        queue_email(
            "acknowledgement", f"acknowledgement:{lead_id}", patient["email"],
            template_language(patient.get("language")), lead_id=lead_id,
            jobs=[(Job.PROCESS_LEAD, {"lead_id": lead_id})],
            first_name=patient["first_name"], reference=reference,
            treatment_name=treatment.name, status_url=link,
        )
    return AcceptedInquiry(lead_id=lead_id, reference=reference, status_url=link)


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
