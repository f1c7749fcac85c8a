"""A person's rights over their data (CONTRACT §4 *People*): what is held about an e-mail
address, and erasing it. Erasure keeps what the funnel counts (status, treatment, country,
dates, referrals and their outcomes) and removes whatever tells who the patient was."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from leads.attachments.models import Attachment
from leads.core.clock import utcnow
from leads.core.database import db
from leads.messaging.models import EmailMessage
from leads.pipeline.models import Lead, Note, Quote, TimelineEvent
from leads.pipeline.states import MAIL_UNSENT, RETAINED_UNTIL_ERASED, EventKind, MessageStatus
from leads.pipeline.timeline import record_event
from leads.privacy.personal import email_lookup_key
from leads.privacy.search import forget_search_index

# Keys of timeline event data that hold free text about the patient: note bodies, decline
# and transition reasons.
TEXT_IN_EVENTS = frozenset({"body", "reason"})
RETENTION_BATCH = 100
DEFAULT_REASON = "At the person's request."


@dataclass(frozen=True)
class Erased:
    leads: int
    attachments: int


def leads_of(email: str, *, for_update: bool = False) -> list[Lead]:
    """Every lead of that address, oldest first: the one way a person's leads are found."""
    query = select(Lead).where(Lead.email_key == email_lookup_key(email)).order_by(Lead.id)
    if for_update:
        query = query.with_for_update(of=Lead)
    return list(db.session.scalars(query))


def messages_of(lead: Lead) -> list[EmailMessage]:
    return list(db.session.scalars(
        select(EmailMessage).where(EmailMessage.lead_id == lead.id).order_by(EmailMessage.id)))


def quotes_of(lead: Lead) -> list[Quote]:
    return [quote for referral in lead.referrals for quote in referral.quotes]


def _forget_messages(lead: Lead) -> None:
    """The lead's e-mails lose their bodies, addresses and errors (which may quote the
    address); one not yet sent never will be."""
    db.session.execute(update(EmailMessage).where(
        EmailMessage.lead_id == lead.id, EmailMessage.status.in_(MAIL_UNSENT))
        .values(status=MessageStatus.CANCELLED, locked_until=None))
    db.session.execute(update(EmailMessage).where(EmailMessage.lead_id == lead.id)
                       .values(recipient="", body_text="", body_html="", last_error=None))


def erase_lead(lead: Lead, actor: str, reason: str) -> int:
    """Stage the erasure of one lead in the caller's transaction; returns how many
    attachments went with it."""
    lead.first_name = lead.last_name = lead.email = lead.phone = lead.condition = None
    lead.birth_year = None
    lead.status_token_hash = lead.status_token = None  # the status link answers 404
    lead.erased_at = utcnow()
    db.session.execute(delete(Note).where(Note.lead_id == lead.id))
    for referral in lead.referrals:
        referral.decline_reason = None
        for quote in referral.quotes:
            quote.notes = None
    for event in db.session.scalars(select(TimelineEvent).where(TimelineEvent.lead_id == lead.id)):
        if TEXT_IN_EVENTS & set(event.data or {}):
            event.data = {k: v for k, v in event.data.items() if k not in TEXT_IN_EVENTS}
    attachments = db.session.execute(
        delete(Attachment).where(Attachment.lead_id == lead.id)).rowcount
    _forget_messages(lead)
    # No longer found by name or address, nor the original of a later duplicate.
    forget_search_index(lead)
    record_event(lead, actor, EventKind.ERASED, reason=reason)
    return attachments


def erase_person(email: str, actor: str, reason: str | None) -> Erased:
    """Stage the erasure of every lead of that address; the caller commits."""
    leads = leads_of(email, for_update=True)
    attachments = sum(erase_lead(lead, actor, reason or DEFAULT_REASON) for lead in leads)
    return Erased(leads=len(leads), attachments=attachments)


def entered_status_at():
    """Per lead, when it entered the status it is in: its last `status_changed` event (every
    change of status writes one)."""
    return (select(TimelineEvent.lead_id, func.max(TimelineEvent.at).label("at"))
            .where(TimelineEvent.kind == EventKind.STATUS_CHANGED)
            .group_by(TimelineEvent.lead_id).subquery())


def erase_expired(now: datetime, retention_days: int, actor: str) -> int:
    """Erase, batch by batch, leads closed, spam or completed for longer than
    `retention_days`; commits each batch and returns how many were erased."""
    cutoff = now - timedelta(days=retention_days)
    entered = entered_status_at()
    reason = f"Retention: {retention_days} days in a final state."
    erased = 0
    # Rows held by another writer are waited for, not skipped: a skipped lead (a worker was
    # routing it, a clinic answering) would outlive its retention until the next run. Every
    # writer holds one lead, and batches lock in id order, so the wait cannot deadlock; a
    # second copy of the job finds the rows erased once the first commits.
    while True:
        batch = list(db.session.scalars(
            select(Lead).join(entered, entered.c.lead_id == Lead.id)
            .where(Lead.status.in_(RETAINED_UNTIL_ERASED), Lead.erased_at.is_(None),
                   entered.c.at < cutoff)
            .order_by(Lead.id).limit(RETENTION_BATCH)
            .with_for_update(of=Lead)))
        for lead in batch:
            erase_lead(lead, actor, reason)
        db.session.commit()
        erased += len(batch)
        if len(batch) < RETENTION_BATCH:
            return erased
