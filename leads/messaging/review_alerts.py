"""Review alerts (CONTRACT §7): a lead entering `needs_review` is owed to every active
coordinator and admin. The first alert in a person's quiet spell is mailed at once and opens
a spell of REVIEW_ALERT_DIGEST_MINUTES; what comes within it waits, and is mailed as one
digest when the spell is over (which opens the next). So a person gets at most one alert mail
per spell, however many leads a campaign's burst sends to review.

Exactly once, across any number of processes: each alert is a row (`ReviewAlert`), pending
until the one mail that names it; the right to mail a person's pending alerts is won by the
UPDATE (or INSERT) that moves their spell on, which matches only a spell that is over, so two
processes never both win it; the mail, and the mark on the alerts it names, are written in
the winner's transaction, under a key made of the first alert's id.
"""

from datetime import datetime

from sqlalchemy import exists, select, update

from leads.accounts.models import User
from leads.core.clock import utcnow
from leads.core.database import db, dialect_insert
from leads.core.settings import settings
from leads.messaging.mail import queue_email
from leads.messaging.models import ReviewAlert, ReviewAlertSpell
from leads.pipeline.models import Lead, TimelineEvent


def lead_url(lead_id: int) -> str:
    """The lead in the coordinators' console (after sign-in it comes back there)."""
    return f"{settings().public_base_url}/console/leads/{lead_id}"


def raise_review_alerts(lead: Lead, entered: TimelineEvent) -> None:
    """In the caller's transaction: an alert of this stay in review (`entered`, its flushed
    event) for every active coordinator and admin, mailed at once to those in a quiet spell."""
    now = utcnow()
    staff = db.session.execute(select(User.id, User.email).where(User.active)
                               .order_by(User.id)).all()  # spells are locked in this order
    db.session.add_all(ReviewAlert(user_id=user.id, lead_id=lead.id, event_id=entered.id,
                                   created_at=now) for user in staff)
    db.session.flush()
    for user in staff:
        if _open_spell(user.id, now):
            _mail_pending(user.id, user.email)


def mail_due_digests() -> int:
    """Mail each person whose spell is over the alerts it gathered, one digest each,
    committing person by person; answers how many were mailed. Safe to run in several
    processes at once."""
    now = utcnow()
    due = db.session.execute(
        select(User.id, User.email)
        .join(ReviewAlertSpell, ReviewAlertSpell.user_id == User.id)
        .where(User.active, ReviewAlertSpell.gathering_until <= now,
               exists().where(ReviewAlert.user_id == User.id, ReviewAlert.message_id.is_(None)))
        .order_by(User.id)
    ).all()
    db.session.commit()  # no snapshot is held from one person to the next
    mailed = 0
    for user in due:
        if _open_spell(user.id, now):
            mailed += _mail_pending(user.id, user.email)
        db.session.commit()
    return mailed


def _open_spell(user_id: int, now: datetime) -> bool:
    """Open a new spell for this person if theirs is over (or they never had one); True when
    this call did, which gives it, and it alone, the right to mail their pending alerts.
    A concurrent caller waits on the row (or its key) and then finds the spell open."""
    until = now + settings().review_alert_digest_window
    moved = db.session.execute(
        update(ReviewAlertSpell)
        .where(ReviewAlertSpell.user_id == user_id, ReviewAlertSpell.gathering_until <= now)
        .values(gathering_until=until)
    ).rowcount
    if moved:
        return True
    insert = dialect_insert(ReviewAlertSpell)
    return db.session.scalar(
        insert.values(user_id=user_id, gathering_until=until)
        .on_conflict_do_nothing(index_elements=[ReviewAlertSpell.user_id])
        .returning(ReviewAlertSpell.user_id)) is not None


def _mail_pending(user_id: int, email: str) -> int:
    """One mail naming every lead of this person's pending alerts, each once (a lead may have
    gone to review twice meanwhile: its latest stay tells why): the alert itself for one
    lead, a digest for more; every pending alert is marked with it. Answers 1, or 0 when
    nothing was pending."""
    alerts = db.session.execute(
        select(ReviewAlert.id, Lead, TimelineEvent)
        .join(Lead, Lead.id == ReviewAlert.lead_id)
        .join(TimelineEvent, TimelineEvent.id == ReviewAlert.event_id)
        .where(ReviewAlert.user_id == user_id, ReviewAlert.message_id.is_(None))
        .order_by(ReviewAlert.id)
    ).all()
    if not alerts:
        return 0
    latest = {}  # by lead, in the order the leads first went to review
    for _, lead, entered in alerts:
        latest[lead.id] = (lead, entered)
    if len(latest) == 1:
        [(lead, entered)] = latest.values()
        message_id = queue_email(
            "needs_review_alert", f"needs_review_alert:{lead.id}:{entered.id}:{user_id}",
            email, "en", lead_id=lead.id, reference=lead.reference,
            treatment_name=lead.treatment.name, reason=_reason(entered),
            lead_url=lead_url(lead.id),
        )
    else:
        message_id = queue_email(
            "review_digest", f"review_digest:{user_id}:{alerts[0].id}", email, "en",
            lead_id=None,
            leads=[{"reference": lead.reference, "treatment_name": lead.treatment.name,
                    "reason": _reason(entered), "url": lead_url(lead.id)}
                   for lead, entered in latest.values()],
        )
    db.session.execute(update(ReviewAlert)
                       .where(ReviewAlert.id.in_([alert_id for alert_id, _, _ in alerts]))
                       .values(message_id=message_id))
    return 1


def _reason(entered: TimelineEvent) -> str:
    # An erased lead's events have lost their reasons.
    return (entered.data or {}).get("reason") or "No reason given."
