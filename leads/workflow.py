"""What coordinators and clinics do to leads and referrals, with every side effect the
pipeline implies (CONTRACT §4–§6). The API calls these; each stages changes in the caller's
transaction and raises `TransitionRefused` for a change the tables do not allow."""

from leads.extensions import db
from leads.intake import PROCESS_LEAD_TASK
from leads.models import Lead, Note, Quote, Referral, User
from leads.models.types import utcnow
from leads.outbox import enqueue
from leads.pipeline import LEAD_TRANSITIONS, REFERRAL_OPEN, transition
from leads.routing import is_overdue, refer, review_if_nothing_open, send_to_review
from leads.timeline import change_lead_status, change_referral_status, record_event

REROUTABLE = frozenset({"routed", "needs_review"})


class NotReroutable(Exception):
    """Only a routed lead or one in review is matched again."""


class ReferralExpired(Exception):
    """The clinic answered after its time to answer had run out."""


class NothingToRoute(Exception):
    """Matching found no further eligible clinic."""


class NoConsentToShare(Exception):
    """The patient did not consent to sharing with clinics; no clinic may see the lead."""


def actor_of(user: User) -> str:
    return f"user:{user.id}"


def update_lead(lead: Lead, user: User, changes: dict) -> None:
    actor = actor_of(user)
    if "assigned_to" in changes and changes["assigned_to"] != lead.assigned_to_id:
        lead.assigned_to_id = changes["assigned_to"]
        record_event(lead, actor, "assigned", assigned_to=lead.assigned_to_id)
    if "priority" in changes and changes["priority"] != lead.priority:
        record_event(lead, actor, "priority_changed", **{"from": lead.priority,
                                                         "to": changes["priority"]})
        lead.priority = changes["priority"]
    if "tags" in changes and changes["tags"] != lead.tags:
        lead.tags = changes["tags"]
        record_event(lead, actor, "tags_changed", tags=lead.tags)
    lead.updated_at = utcnow()


def add_note(lead: Lead, user: User, body: str) -> Note:
    note = Note(lead_id=lead.id, author_id=user.id, body=body, created_at=utcnow())
    db.session.add(note)
    db.session.flush()
    record_event(lead, actor_of(user), "note_added", note_id=note.id, body=body)
    return note


def _route_again(lead: Lead, exclude_clinic_ids: set[int], actor: str) -> list[Referral]:
    if not lead.consent_share_with_clinics:
        raise NoConsentToShare()
    already = {r.clinic_id for r in lead.referrals}
    # Referrals still open count against the lead's clinics, save those to excluded clinics.
    still_open = sum(r.status in REFERRAL_OPEN and r.clinic_id not in exclude_clinic_ids
                     for r in lead.referrals)
    referrals = refer(lead, already | exclude_clinic_ids, actor, still_open)
    record_event(lead, actor, "rerouted", excluded=sorted(exclude_clinic_ids),
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
        record_event(lead, actor, "rerouted", excluded=sorted(exclude_clinic_ids), referred=[],
                     reason="The patient did not consent to sharing with clinics.")
        return []
    referrals = _route_again(lead, exclude_clinic_ids, actor)
    if referrals and lead.status == "needs_review":
        change_lead_status(lead, "routed", actor)
    return referrals


def _cancel_open_referrals(lead: Lead, actor: str) -> None:
    for referral in lead.referrals:
        if referral.status in REFERRAL_OPEN:
            change_referral_status(referral, "cancelled", actor)


def move_lead(lead: Lead, target: str, user: User, reason: str | None) -> None:
    """A coordinator's transition, with what it implies for referrals and the workers."""
    actor = actor_of(user)
    transition(LEAD_TRANSITIONS, lead.status, target)  # refuses early, naming the targets
    if target == "routed":
        referred = _route_again(lead, set(), actor)
        if not any(r.status in REFERRAL_OPEN for r in referred + list(lead.referrals)):
            raise NothingToRoute()
        change_lead_status(lead, "routed", actor, reason)
        return
    if target == "needs_review":
        send_to_review(lead, reason or "Sent to review by a coordinator.", actor)
        return
    before = lead.status
    change_lead_status(lead, target, actor, reason)
    if target in ("closed", "spam"):
        _cancel_open_referrals(lead, actor)
    elif target == "booked":
        quoted = [r for r in lead.referrals if r.status == "quoted"]
        if quoted:
            # The patient books with the clinic whose quote came last.
            change_referral_status(quoted[-1], "booked", actor)
    elif target == "received":
        if before == "duplicate":
            lead.duplicate_of_id = None
        # Reopened or split off: the worker routes it afresh.
        enqueue(PROCESS_LEAD_TASK, lead_id=lead.id)


def clinic_actor(referral: Referral) -> str:
    return f"clinic:{referral.clinic_id}"


def open_referral(referral: Referral) -> None:
    """The clinic read the referral: `requested` becomes `received` (FHIR Task)."""
    if referral.status == "requested":
        change_referral_status(referral, "received", clinic_actor(referral))


def _answer(referral: Referral, target: str, **data) -> None:
    if is_overdue(referral, utcnow()):
        raise ReferralExpired(referral.expires_at)
    open_referral(referral)
    change_referral_status(referral, target, clinic_actor(referral), **data)
    if referral.responded_at is None:
        referral.responded_at = utcnow()


def accept_referral(referral: Referral) -> None:
    _answer(referral, "accepted")


def decline_referral(referral: Referral, reason: str | None) -> None:
    _answer(referral, "declined", reason=reason)
    referral.decline_reason = reason
    review_if_nothing_open(referral.lead)


def quote_referral(referral: Referral, quote: dict) -> Quote:
    change_referral_status(referral, "quoted", clinic_actor(referral))
    row = Quote(referral_id=referral.id, created_at=utcnow(), **quote)
    db.session.add(row)
    db.session.flush()
    record_event(referral.lead, clinic_actor(referral), "quoted", referral_id=referral.id,
                 quote_id=row.id, amount=str(row.amount), currency=row.currency)
    if referral.lead.status == "routed":
        change_lead_status(referral.lead, "quoted", clinic_actor(referral))
    return row
