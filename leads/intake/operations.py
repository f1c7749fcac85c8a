"""Accepting a patient's inquiry: the lead, its first events and the work it starts,
all in the caller's transaction, so that what was accepted is kept. And what the patient
sees of it afterwards, by the status link (the API and the status page alike)."""

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Boolean, Insert, Row, Select, bindparam, case, insert, literal, null, select

from leads.accounts.credentials import matches
from leads.catalogue.models import Treatment
from leads.catalogue.operations import active_treatment_name
from leads.core.clock import today, utcnow
from leads.core.database import DIALECT_INSERTS, db, dialect_name
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


# The columns of a lead that intake fills from the form and the clock.
_LEAD_VALUES = ("first_name", "last_name", "email", "email_key", "phone", "country", "language",
                "birth_year", "condition", "has_imaging", "budget_amount", "budget_currency",
                "travel_earliest", "travel_latest", "contact_preference",
                "consent_data_processing", "consent_share_with_clinics", "consent_marketing",
                "source", "tags", "status_token_hash", "status_token", "created_at",
                "updated_at", "reference")


def _lead_from_form() -> Select:
    """The row intake inserts, as a SELECT from the treatment: the treatment's id where it is
    active (no row at all where it is not), the lead a new inquiry repeats (same person, same
    treatment, within 30 days; none where `email_key` is NULL) and the status that follows
    from both. One statement does the treatment's check, the duplicate look-up and the
    insert; the values are bound at each call, the statement built once."""
    leads = Lead.__table__
    original = (
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
    )
    honeypot = bindparam("honeypot", type_=Boolean)
    status = case((honeypot, literal(LeadStatus.SPAM)),
                  (original.is_(None), literal(LeadStatus.RECEIVED)),
                  else_=literal(LeadStatus.DUPLICATE))
    return select(
        *(bindparam(name, type_=leads.c[name].type) for name in _LEAD_VALUES),
        Treatment.id, case((honeypot, null()), else_=original), status,
    ).where(Treatment.slug == bindparam("slug"), Treatment.active)


@functools.cache
def _lead_insert(dialect: str) -> Insert:
    leads = Lead.__table__
    return (DIALECT_INSERTS[dialect](leads)
            .from_select([*_LEAD_VALUES, "treatment_id", "duplicate_of_id", "status"],
                         _lead_from_form())
            .on_conflict_do_nothing(index_elements=[leads.c.reference])
            .returning(leads.c.id, leads.c.status, leads.c.duplicate_of_id))


_DESTINATIONS_INSERT = insert(LeadDestination.__table__)
_EVENTS_INSERT = insert(TimelineEvent.__table__)


def _insert_lead(values: dict) -> Row:
    """Insert the lead under a fresh reference: (id, status, duplicate_of_id, reference). No
    row back is a taken reference (drawn again) or a treatment no longer active (refused)."""
    statement = _lead_insert(dialect_name())
    while True:
        reference = new_reference()
        inserted = db.session.execute(statement, {**values, "reference": reference}).one_or_none()
        if inserted is not None:
            return inserted, reference
        if active_treatment_name(values["slug"], fresh=True) is None:
            raise Invalid("treatment", f"Unknown or inactive treatment {values['slug']!r}.")


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
    spam = bool(form.get("website"))
    treatment_name = active_treatment_name(form["treatment"])
    if treatment_name is None:
        raise Invalid("treatment", f"Unknown or inactive treatment {form['treatment']!r}.")
    token = secrets.token_urlsafe(24)
    inserted, reference = _insert_lead({
        "slug": form["treatment"],
        "honeypot": spam,  # a spam lead is never anyone's duplicate
        "email_key": email_lookup_key(patient["email"]),
        "since": now - DUPLICATE_WINDOW,
        "first_name": patient["first_name"],
        "last_name": patient["last_name"],
        "email": patient["email"],
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
        "status_token_hash": hash_status_token(token),
        # Kept, encrypted, for the links in later mail (a quote); the hash finds the lead.
        "status_token": token,
        "created_at": now,
        "updated_at": now,
    })
    lead_id, status, original_id = inserted
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
                select(Lead.reference).where(Lead.id == original_id))
            reason = f"repeats {original_reference}"
        change = transition(LEAD_TRANSITIONS, LeadStatus.RECEIVED, status)
        events.append({"lead_id": lead_id, "at": now, "actor": SYSTEM,
                       "kind": EventKind.STATUS_CHANGED,
                       "data": status_change_data(change, reason)})
        if not spam:
            events.append({"lead_id": original_id, "at": now, "actor": SYSTEM,
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
            treatment_name=treatment_name, status_url=link,
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
