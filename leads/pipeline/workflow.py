"""What coordinators and clinics do to leads and referrals, with every side effect the
pipeline implies (CONTRACT §4–§6). The API calls these; each stages changes in the caller's
transaction and raises `TransitionRefused` for a change the tables do not allow."""

from leads.accounts.models import User
from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.errors import Conflict
from leads.core.jobs import Job
from leads.intake.operations import status_url
from leads.messaging.mail import queue_email, template_language
from leads.messaging.outbox import enqueue
from leads.pipeline.models import Lead, Note, Quote, Referral
from leads.pipeline.states import (
    CANCELS_REFERRALS,
    LEAD_TRANSITIONS,
    REFERRAL_OPEN,
    REROUTABLE,
    EventKind,
    LeadStatus,
    ReferralStatus,
    transition,
    withdrawal,
)
from leads.pipeline.timeline import (
    PATIENT,
    apply_lead_change,
    change_lead_status,
    change_referral_status,
    record_event,
)
from leads.routing.operations import (
    eligible_clinics,
    is_overdue,
    record_answer,
    refer,
    review_if_nothing_open,
    send_to_review,
)


class NotReroutable(Conflict):
    """Only a routed lead or one in review is matched again."""

    def __init__(self, current: str):
        super().__init__(f"Only a routed lead or one in review can be rerouted; this one is "
                         f"{current}.", current=current, allowed_from=sorted(REROUTABLE))


class ReferralExpired(Conflict):
    """The clinic answered after its time to answer had run out."""

    def __init__(self, expired_at):
        super().__init__(f"The time to answer this referral ran out at "
                         f"{expired_at.isoformat()}.", current=ReferralStatus.EXPIRED)


class NothingToRoute(Conflict):
    """Matching found no further eligible clinic."""

    def __init__(self):
        super().__init__("No eligible clinic is left to route this lead to.")


class NoConsentToShare(Conflict):
    """The patient did not consent to sharing with clinics; no clinic may see the lead."""

    def __init__(self):
        super().__init__("The patient did not consent to sharing with clinics; it cannot be "
                         "routed.")


def actor_of(user: User) -> str:
    return f"user:{user.id}"


def update_lead(lead: Lead, user: User, changes: dict) -> None:
    actor = actor_of(user)
    if "assigned_to" in changes and changes["assigned_to"] != lead.assigned_to_id:
        lead.assigned_to_id = changes["assigned_to"]
        record_event(lead, actor, EventKind.ASSIGNED, assigned_to=lead.assigned_to_id)
    if "priority" in changes and changes["priority"] != lead.priority:
        record_event(lead, actor, EventKind.PRIORITY_CHANGED, **{"from": lead.priority,
                                                         "to": changes["priority"]})
        lead.priority = changes["priority"]
    if "tags" in changes and changes["tags"] != lead.tags:
        lead.tags = changes["tags"]
        record_event(lead, actor, EventKind.TAGS_CHANGED, tags=lead.tags)
    lead.updated_at = utcnow()


def add_note(lead: Lead, user: User, body: str) -> Note:
    note = Note(lead_id=lead.id, author_id=user.id, body=body, created_at=utcnow())
    db.session.add(note)
    db.session.flush()
    record_event(lead, actor_of(user), EventKind.NOTE_ADDED, note_id=note.id, body=body)
    return note


def _route_again(lead: Lead, exclude_clinic_ids: set[int], actor: str) -> list[Referral]:
    if not lead.consent_share_with_clinics:
        raise NoConsentToShare()
    already = {r.clinic_id for r in lead.referrals}
    # Referrals still open count against the lead's clinics, save those to excluded clinics.
    still_open = sum(r.status in REFERRAL_OPEN and r.clinic_id not in exclude_clinic_ids
                     for r in lead.referrals)
    referrals = refer(lead, already | exclude_clinic_ids, actor, still_open)
    record_event(lead, actor, EventKind.REROUTED, excluded=sorted(exclude_clinic_ids),
                 referred=[r.clinic_id for r in referrals])
    return referrals


def reroute(lead: Lead, exclude_clinic_ids: set[int], user: User) -> list[Referral]:
    """Match again, skipping the excluded clinics and those already referred; a lead in
    review that finds clinics is routed again."""
    if lead.status not in REROUTABLE:
        raise NotReroutable(lead.status)
    actor = actor_of(user)
    if not lead.consent_share_with_clinics:
        # Matching may not run at all: no clinic may see this lead. It stays where it is.
        record_event(lead, actor, EventKind.REROUTED, excluded=sorted(exclude_clinic_ids),
                     referred=[], reason="The patient did not consent to sharing with clinics.")
        return []
    referrals = _route_again(lead, exclude_clinic_ids, actor)
    if referrals and lead.status == LeadStatus.NEEDS_REVIEW:
        change_lead_status(lead, LeadStatus.ROUTED, actor)
    return referrals


def reroute_exclusion_choices(lead: Lead) -> list[tuple[int, str]]:
    """(id, name) of the clinics whose exclusion changes what a reroute does: those with an
    open referral (excluded, they stop counting against the lead's clinics) and those it
    could be referred to now."""
    referred = [(r.clinic_id, r.clinic.name) for r in lead.referrals if r.status in REFERRAL_OPEN]
    already = {r.clinic_id for r in lead.referrals}
    return referred + [(c.clinic_id, c.name) for c in eligible_clinics(lead, already)]


WITHDRAWN = "The patient withdrew the inquiry."


def _cancel_open_referrals(lead: Lead, actor: str) -> list[Referral]:
    cancelled = [referral for referral in lead.referrals if referral.status in REFERRAL_OPEN]
    for referral in cancelled:
        change_referral_status(referral, ReferralStatus.CANCELLED, actor)
    return cancelled


def withdraw(lead: Lead) -> None:
    """The patient's own way out (CONTRACT §3, §6): from any state but a final or closed
    one the lead is closed, its open referrals are cancelled and each of those clinics is
    told once, by the reference alone. Raises `NotWithdrawable` otherwise."""
    apply_lead_change(lead, withdrawal(lead.status), PATIENT, WITHDRAWN)
    for referral in _cancel_open_referrals(lead, PATIENT):
        queue_email(
            "referral_cancelled", f"referral_cancelled:{referral.id}", referral.clinic.email,
            "en", lead_id=lead.id, clinic_name=referral.clinic.name, reference=lead.reference,
            treatment_name=lead.treatment.name,
        )


def move_lead(lead: Lead, target: str, user: User, reason: str | None) -> None:
    """A coordinator's transition, with what it implies for referrals and the workers."""
    actor = actor_of(user)
    transition(LEAD_TRANSITIONS, lead.status, target)  # refuses early, naming the targets
    if target == LeadStatus.ROUTED:
        referred = _route_again(lead, set(), actor)
        if not any(r.status in REFERRAL_OPEN for r in referred + list(lead.referrals)):
            raise NothingToRoute()
        change_lead_status(lead, LeadStatus.ROUTED, actor, reason)
        return
    if target == LeadStatus.NEEDS_REVIEW:
        send_to_review(lead, reason or "Sent to review by a coordinator.", actor)
        return
    before = lead.status
    change_lead_status(lead, target, actor, reason)
    if target in CANCELS_REFERRALS:
        _cancel_open_referrals(lead, actor)
    elif target == LeadStatus.BOOKED:
        quoted = [r for r in lead.referrals if r.status == ReferralStatus.QUOTED]
        if quoted:
            # The patient books with the clinic whose quote came last.
            change_referral_status(quoted[-1], ReferralStatus.BOOKED, actor)
    elif target == LeadStatus.RECEIVED:
        if before == LeadStatus.DUPLICATE:
            lead.duplicate_of_id = None
        # Reopened or split off: the worker routes it afresh.
        enqueue(Job.PROCESS_LEAD, lead_id=lead.id)


def clinic_actor(referral: Referral) -> str:
    return f"clinic:{referral.clinic_id}"


def open_referral(referral: Referral) -> None:
    """The clinic read the referral: `requested` becomes `received` (FHIR Task)."""
    if referral.status == ReferralStatus.REQUESTED:
        change_referral_status(referral, ReferralStatus.RECEIVED, clinic_actor(referral))


def _answer(referral: Referral, target: str, **data) -> None:
    if is_overdue(referral, utcnow()):
        raise ReferralExpired(referral.expires_at)
    open_referral(referral)
    change_referral_status(referral, target, clinic_actor(referral), **data)
    if referral.responded_at is None:
        referral.responded_at = utcnow()
        record_answer(referral)


def accept_referral(referral: Referral) -> None:
    _answer(referral, ReferralStatus.ACCEPTED)


def decline_referral(referral: Referral, reason: str | None) -> None:
    _answer(referral, ReferralStatus.DECLINED, reason=reason)
    referral.decline_reason = reason
    review_if_nothing_open(referral.lead)


def quote_referral(referral: Referral, quote: dict) -> Quote:
    change_referral_status(referral, ReferralStatus.QUOTED, clinic_actor(referral))
    row = Quote(referral_id=referral.id, created_at=utcnow(), **quote)
    db.session.add(row)
    db.session.flush()
    record_event(referral.lead, clinic_actor(referral), EventKind.QUOTED, referral_id=referral.id,
                 quote_id=row.id, amount=str(row.amount), currency=row.currency)
    if referral.lead.status == LeadStatus.ROUTED:
        change_lead_status(referral.lead, LeadStatus.QUOTED, clinic_actor(referral))
    _tell_patient_of(row, referral)
    return row


def _tell_patient_of(quote: Quote, referral: Referral) -> None:
    """One e-mail per quote, in the patient's language, with the link to the status page;
    none once the patient's address was erased."""
    lead = referral.lead
    if lead.email is None:
        return
    queue_email(
        "quote", f"quote:{quote.id}", lead.email, template_language(lead.language),
        lead_id=lead.id, first_name=lead.first_name, reference=lead.reference,
        treatment_name=lead.treatment.name, clinic_name=referral.clinic.name,
        clinic_city=referral.clinic.city, amount=f"{quote.amount:.2f}",
        currency=quote.currency, includes=quote.includes, valid_until=quote.valid_until,
        status_url=status_url(lead),
    )
