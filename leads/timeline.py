"""Changes to a lead, each written as a timeline event with who made it."""

from leads.extensions import db
from leads.models import Lead, TimelineEvent
from leads.models.types import utcnow
from leads.pipeline import LEAD_TRANSITIONS, transition

SYSTEM = "system"
PATIENT = "patient"


def record_event(lead: Lead, actor: str, kind: str, **data) -> TimelineEvent:
    event = TimelineEvent(lead=lead, actor=actor, kind=kind, data=data, at=utcnow())
    db.session.add(event)
    return event


def change_lead_status(lead: Lead, target: str, actor: str, reason: str | None = None) -> None:
    """Move the lead along the pipeline or raise `TransitionRefused`."""
    change = transition(LEAD_TRANSITIONS, lead.status, target)
    lead.status = change.after
    lead.updated_at = utcnow()
    data = {"from": change.before, "to": change.after}
    if reason:
        data["reason"] = reason
    record_event(lead, actor, "status_changed", **data)
