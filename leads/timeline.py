"""Changes to a lead, each written as a timeline event with who made it."""

from leads.extensions import db
from leads.models import Lead, Referral, TimelineEvent
from leads.models.types import utcnow
from leads.pipeline import LEAD_TRANSITIONS, REFERRAL_TRANSITIONS, transition

SYSTEM = "system"
PATIENT = "patient"


def record_event(lead: Lead, actor: str, kind: str, **data) -> TimelineEvent:
    event = TimelineEvent(lead=lead, actor=actor, kind=kind, data=data, at=utcnow())
    db.session.add(event)
    return event


def change_lead_status(lead: Lead, target: str, actor: str,
                       reason: str | None = None) -> TimelineEvent:
    """Move the lead along the pipeline or raise `TransitionRefused`; returns the event."""
    change = transition(LEAD_TRANSITIONS, lead.status, target)
    lead.status = change.after
    lead.updated_at = utcnow()
    data = {"from": change.before, "to": change.after}
    if reason:
        data["reason"] = reason
    return record_event(lead, actor, "status_changed", **data)


def change_referral_status(referral: Referral, target: str, actor: str, **data) -> None:
    """Move a referral along its own table; the change lands on its lead's timeline."""
    change = transition(REFERRAL_TRANSITIONS, referral.status, target)
    referral.status = change.after
    referral.updated_at = utcnow()
    record_event(referral.lead, actor, "referral_status_changed", referral_id=referral.id,
                 clinic_id=referral.clinic_id, **{"from": change.before, "to": change.after},
                 **data)
