"""Changes to a lead, each written as a timeline event with who made it."""

from leads.core.clock import utcnow
from leads.core.database import db
from leads.pipeline.models import Lead, Referral, TimelineEvent
from leads.pipeline.states import (
    LEAD_TRANSITIONS,
    REFERRAL_TRANSITIONS,
    Change,
    EventKind,
    transition,
)
from leads.webhooks.events import EVENT_ON_REFERRAL_STATUS
from leads.webhooks.operations import announce

SYSTEM = "system"
PATIENT = "patient"


def record_event(lead: Lead, actor: str, kind: str, **data) -> TimelineEvent:
    event = TimelineEvent(lead=lead, actor=actor, kind=kind, data=data, at=utcnow())
    db.session.add(event)
    return event


def change_lead_status(lead: Lead, target: str, actor: str,
                       reason: str | None = None) -> TimelineEvent:
    """Move the lead along the pipeline or raise `TransitionRefused`; returns the event."""
    return apply_lead_change(lead, transition(LEAD_TRANSITIONS, lead.status, target), actor,
                             reason)


def apply_lead_change(lead: Lead, change: Change, actor: str,
                      reason: str | None = None) -> TimelineEvent:
    """Write a change already judged allowed (by the table, or as a withdrawal)."""
    lead.status = change.after
    lead.updated_at = utcnow()
    return record_event(lead, actor, EventKind.STATUS_CHANGED, **status_change_data(change, reason))


def status_change_data(change: Change, reason: str | None = None) -> dict:
    """What a status event holds."""
    data = {"from": change.before, "to": change.after}
    if reason:
        data["reason"] = reason
    return data


def change_referral_status(referral: Referral, target: str, actor: str, **data) -> None:
    """Move a referral along its own table; the change lands on its lead's timeline, and
    its clinic's webhooks hear of the changes they subscribe to, in the same transaction."""
    change = transition(REFERRAL_TRANSITIONS, referral.status, target)
    referral.status = change.after
    referral.updated_at = utcnow()
    record_event(referral.lead, actor, EventKind.REFERRAL_STATUS_CHANGED, referral_id=referral.id,
                 clinic_id=referral.clinic_id, **{"from": change.before, "to": change.after},
                 **data)
    event = EVENT_ON_REFERRAL_STATUS.get(change.after)
    if event is not None:
        announce([referral], event)
