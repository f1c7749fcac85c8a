"""Accepting a patient's inquiry: the lead, its first events and the work it starts,
all in the caller's transaction, so that what was accepted is kept. And what the patient
sees of it afterwards, by the status link (the API and the status page alike)."""

import functools
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Insert,
    Row,
    Select,
    String,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY

from leads.accounts.credentials import matches
from leads.catalogue.models import Treatment
from leads.catalogue.operations import active_treatment_name
from leads.core.clock import today, utcnow
from leads.core.database import DIALECT_INSERTS, db, dialect_name, execute_committed
from leads.core.errors import Invalid, NotFound
from leads.core.jobs import Job
from leads.core.settings import settings
from leads.core.types import UTCDateTime
from leads.messaging.mail import message_row, stage_message, template_language
from leads.messaging.models import EmailMessage, OutboxMessage
from leads.pipeline.models import Lead, LeadDestination, TimelineEvent
from leads.pipeline.states import (
    LEAD_TRANSITIONS,
    NOT_ORIGINALS,
    WITHDRAWABLE,
    EventKind,
    LeadStatus,
    MessageStatus,
    Priority,
    transition,
)
from leads.pipeline.timeline import PATIENT, SYSTEM, status_change_data
from leads.privacy.models import LeadSearchTerm
from leads.privacy.personal import email_lookup_key, name_index_digests
from leads.privacy.search import index_names

DUPLICATE_WINDOW = timedelta(days=30)
# Crockford's base32 without I, L, O, U: easy to read out over the phone.
REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_reference() -> str:
    """A candidate; the unique index on `leads.reference` decides (see `_write`)."""
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
                "source", "tags", "priority", "status_token_hash", "status_token", "created_at",
                "updated_at", "reference")


def _constant(value: str | int) -> ColumnElement:
    """One of our own constants written into the SQL, typed by PostgreSQL from the column
    it lands in (a bound string would reach `jsonb_build_object` as of unknown type)."""
    return literal_column(f"'{value}'" if isinstance(value, str) else str(value))


def _lead_from_form() -> Select:
    """The row intake inserts, as a SELECT from the treatment: the treatment's id where it is
    active (no row at all where it is not), the lead a new inquiry repeats (same person, same
    treatment, within 30 days; none where `email_key` is NULL) and the status that follows
    from both. One statement does the treatment's check, the duplicate look-up and the
    insert; the values are bound at each call, the statement built once."""
    leads = Lead.__table__
    earliest = (
        select(Lead.id)
        .where(
            Lead.email_key == bindparam("email_key"),
            Lead.treatment_id == Treatment.id,
            Lead.created_at >= bindparam("since"),
            Lead.status.not_in([_constant(status) for status in sorted(NOT_ORIGINALS)]),
        )
        .order_by(Lead.created_at)
        .limit(_constant(1))
        .correlate(Treatment)
        .scalar_subquery()
    )
    honeypot = bindparam("honeypot", type_=Boolean)
    # The original looked up once, in a derived table, for its id and for the status.
    found = (select(Treatment.id.label("treatment_id"),
                    case((honeypot, null()), else_=earliest).label("original_id"))
             .where(Treatment.slug == bindparam("slug"), Treatment.active)
             .subquery("found"))
    status = case((honeypot, _constant(LeadStatus.SPAM)),
                  (found.c.original_id.is_(None), _constant(LeadStatus.RECEIVED)),
                  else_=_constant(LeadStatus.DUPLICATE))
    # A repeat is written only where `repeat_kept`: a statement committed on its own leaves
    # it to a transaction that also records why (`_record_triage`). Without a WHERE, SQLite
    # would read the ON CONFLICT that follows as a join's ON.
    return (select(*(bindparam(name, type_=leads.c[name].type) for name in _LEAD_VALUES),
                   found.c.treatment_id, found.c.original_id, status)
            .where(or_(found.c.original_id.is_(None), bindparam("repeat_kept", type_=Boolean))))


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
_ACKNOWLEDGEMENT = "acknowledgement"
# The acknowledgement's rendered columns (`message_row`), bound as parameters; the lead's id
# and the key made of it come from the lead's row.
_MESSAGE_VALUES = ("kind", "recipient", "subject", "body_text", "body_html")
_NO_MESSAGE = {f"message_{name}": None for name in _MESSAGE_VALUES}


@functools.cache
def _inquiry_insert() -> Select:
    """PostgreSQL: the lead and every row that follows from it in one statement, each
    data-modifying CTE taking the new lead's id from the first: its destinations in their
    order, its name index, its `received` event and, unless the honeypot caught it, its
    acknowledgement and the jobs that route it and send that. No lead (a taken reference, an
    inactive treatment), no rows at all."""
    lead = _lead_insert("postgresql").cte("lead")
    now = bindparam("created_at", type_=UTCDateTime)
    acknowledged = ~bindparam("honeypot", type_=Boolean)

    countries = (func.unnest(bindparam("destinations", type_=ARRAY(String)))
                 .table_valued("country", with_ordinality="place").render_derived())
    destinations = insert(LeadDestination.__table__).from_select(
        ["lead_id", "country", "position"],
        select(lead.c.id, countries.c.country, countries.c.place - _constant(1))
        .select_from(lead).join(countries, true()))
    digests = (func.unnest(bindparam("digests", type_=ARRAY(String)))
               .table_valued("digest").render_derived())
    names = insert(LeadSearchTerm.__table__).from_select(
        ["lead_id", "digest"], select(lead.c.id, digests.c.digest).select_from(lead)
        .join(digests, true()))
    events = TimelineEvent.__table__
    first_event = insert(events).from_select(
        ["lead_id", "at", "actor", "kind", "data"],
        select(lead.c.id, now, _constant(PATIENT), _constant(EventKind.RECEIVED),
               bindparam("first_event", type_=events.c.data.type)))
    messages = EmailMessage.__table__
    message = insert(messages).from_select(
        ["lead_id", "dedupe_key", "status", "attempts", "created_at", *_MESSAGE_VALUES],
        select(lead.c.id, _constant(f"{_ACKNOWLEDGEMENT}:").concat(cast(lead.c.id, String)),
               _constant(MessageStatus.PENDING), _constant(0), now,
               *(bindparam(f"message_{name}", type_=messages.c[name].type)
                 for name in _MESSAGE_VALUES))
        .where(acknowledged),
    ).returning(messages.c.id).cte("message")
    jobs = insert(OutboxMessage.__table__).from_select(
        ["task", "payload", "created_at", "available_at", "attempts"],
        union_all(
            select(_constant(Job.PROCESS_LEAD),
                   func.jsonb_build_object(_constant("lead_id"), lead.c.id),
                   now, now, _constant(0)).where(acknowledged),
            select(_constant(Job.SEND_EMAILS),
                   func.jsonb_build_object(_constant("message_ids"),
                                           func.jsonb_build_array(message.c.id)),
                   now, now, _constant(0)),
        ))
    return (select(lead.c.id, lead.c.status, lead.c.duplicate_of_id)
            .add_cte(destinations.cte("destinations"), names.cte("names"),
                     first_event.cte("first_event"), message, jobs.cte("jobs")))


@dataclass(frozen=True)
class _Inquiry:
    """What intake writes for one inquiry, but the reference it draws."""

    lead: dict
    destinations: list[str]
    # Renders the acknowledgement for a reference; None for a lead the honeypot caught.
    acknowledgement: Callable[[str], dict] | None


def _write(inquiry: _Inquiry, commit_alone: bool) -> tuple[Row, str]:
    """Insert the lead under a fresh reference, with what follows from it where the database
    can take it in the same statement: (id, status, duplicate_of_id) and the reference. No
    row back is a taken reference (drawn again) or a treatment no longer active (refused).

    With `commit_alone`, on PostgreSQL, a new lead that is neither a honeypot's nor a repeat
    is the whole change: its one statement commits it as it ends, with no BEGIN or COMMIT
    to wait for. Anything else (and no row back) goes on in the caller's transaction."""
    folded = dialect_name() == "postgresql"
    statement = _inquiry_insert() if folded else _lead_insert(dialect_name())
    names = inquiry.lead["first_name"], inquiry.lead["last_name"]
    digests = sorted(name_index_digests(*names)) if folded else None
    alone = folded and commit_alone and not inquiry.lead["honeypot"]
    while True:
        reference = new_reference()
        values = {**inquiry.lead, "reference": reference, "repeat_kept": not alone}
        if folded:
            values |= {"destinations": inquiry.destinations, "digests": digests,
                       "first_event": {"reference": reference}, **_acknowledgement_values(
                           inquiry, reference)}
        if alone:
            inserted = execute_committed(statement, values)
            if inserted is not None:
                return inserted, reference
            alone = False  # a repeat, most likely: written and triaged in one transaction
            continue
        inserted = db.session.execute(statement, values).one_or_none()
        if inserted is not None:
            if not folded:
                _write_follow_ups(inserted.id, reference, inquiry)
            return inserted, reference
        if active_treatment_name(inquiry.lead["slug"], fresh=True) is None:
            raise Invalid("treatment", f"Unknown or inactive treatment {inquiry.lead['slug']!r}.")


def _acknowledgement_values(inquiry: _Inquiry, reference: str) -> dict:
    if inquiry.acknowledgement is None:
        return _NO_MESSAGE
    return {f"message_{name}": value
            for name, value in inquiry.acknowledgement(reference).items()}


def _write_follow_ups(lead_id: int, reference: str, inquiry: _Inquiry) -> None:
    """What `_inquiry_insert` writes with the lead, a statement each (SQLite): rows go as
    executemany, whose statements SQLAlchemy compiles once."""
    if inquiry.destinations:
        db.session.execute(_DESTINATIONS_INSERT,
                           [{"lead_id": lead_id, "country": country, "position": position}
                            for position, country in enumerate(inquiry.destinations)])
    index_names(lead_id, inquiry.lead["first_name"], inquiry.lead["last_name"])
    db.session.execute(_EVENTS_INSERT, {
        "lead_id": lead_id, "at": inquiry.lead["created_at"], "actor": PATIENT,
        "kind": EventKind.RECEIVED, "data": {"reference": reference}})
    if inquiry.acknowledgement is not None:
        stage_message(f"{_ACKNOWLEDGEMENT}:{lead_id}", lead_id,
                      inquiry.acknowledgement(reference),
                      jobs=[(Job.PROCESS_LEAD, {"lead_id": lead_id})])


@dataclass(frozen=True)
class AcceptedInquiry:
    lead_id: int
    reference: str
    status_url: str


def accept_inquiry(form: dict, *, commit_alone: bool = False) -> AcceptedInquiry:
    """Write a lead from a validated inquiry form, with its destinations, name index, first
    events, acknowledgement and routing job: in one statement on PostgreSQL (this is the path
    a campaign's burst takes), in a few on SQLite. The caller commits; `commit_alone` says
    it writes nothing else with the lead, which may then be committed by that one statement
    (`_write`)."""
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
    language = template_language(patient.get("language"))

    def acknowledgement(reference: str) -> dict:
        return message_row(_ACKNOWLEDGEMENT, patient["email"], language,
                           first_name=patient["first_name"], reference=reference,
                           treatment_name=treatment_name,
                           status_url=settings().status_url(reference, token))

    inserted, reference = _write(_Inquiry(
        lead={
            "slug": form["treatment"],
            "honeypot": spam,  # a spam lead is never anyone's duplicate, nor acknowledged
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
            "priority": Priority.NORMAL,
            "status_token_hash": hash_status_token(token),
            # Kept, encrypted, for the links in later mail (a quote); the hash finds the lead.
            "status_token": token,
            "created_at": now,
            "updated_at": now,
        },
        destinations=form.get("destinations") or [],
        acknowledgement=None if spam else acknowledgement,
    ), commit_alone)
    if inserted.status != LeadStatus.RECEIVED:
        _record_triage(inserted, reference, now)
    return AcceptedInquiry(lead_id=inserted.id, reference=reference,
                           status_url=settings().status_url(reference, token))


def _record_triage(inserted: Row, reference: str, now) -> None:
    """Why a new lead is spam or a duplicate, on its timeline, and on the original's that
    it came again."""
    lead_id, status, original_id = inserted
    reason = "honeypot field filled in"
    if status == LeadStatus.DUPLICATE:
        original_reference = db.session.scalar(
            select(Lead.reference).where(Lead.id == original_id))
        reason = f"repeats {original_reference}"
    change = transition(LEAD_TRANSITIONS, LeadStatus.RECEIVED, status)
    events = [{"lead_id": lead_id, "at": now, "actor": SYSTEM, "kind": EventKind.STATUS_CHANGED,
               "data": status_change_data(change, reason)}]
    if status == LeadStatus.DUPLICATE:
        events.append({"lead_id": original_id, "at": now, "actor": SYSTEM,
                       "kind": EventKind.DUPLICATE_RECEIVED,
                       "data": {"lead_id": lead_id, "reference": reference}})
    db.session.execute(_EVENTS_INSERT, events)


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
