"""Work that leaves the database: the outbox of tasks, and e-mails recorded before they are sent."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.types import JSONType, UTCDateTime
from leads.pipeline.states import MessageStatus
from leads.privacy.personal import PersonalText


class OutboxMessage(db.Model):
    """A task to publish, written in the same transaction as the change that needs it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "dispatched_at", "available_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class EmailMessage(db.Model):
    """An e-mail, recorded under its unique key before it is sent, so it is sent once."""

    __tablename__ = "email_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    recipient: Mapped[str] = mapped_column(PersonalText)
    subject: Mapped[str] = mapped_column(String(300))
    # Rendered when queued: the acknowledgement's status link (with its token) exists only at
    # intake.
    body_text: Mapped[str] = mapped_column(PersonalText)
    body_html: Mapped[str] = mapped_column(PersonalText)
    status: Mapped[str] = mapped_column(String(20), default=MessageStatus.PENDING, index=True)
    # No sender takes the message before this: while a worker sends, its lease (an expired
    # one may be taken over); after a temporary failure, the end of the message's backoff.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(PersonalText)  # a relay echoes addresses
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReviewAlert(db.Model):
    """A lead's entry into `needs_review`, owed to one coordinator or admin: pending until
    a mail names it (the one alert of a quiet spell, or the digest that gathers it)."""

    __tablename__ = "review_alerts"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id", name="uq_review_alerts_event_user"),
        Index("ix_review_alerts_user_message", "user_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    # The `status_changed` event of this stay in review: a later stay alerts again.
    event_id: Mapped[int] = mapped_column(ForeignKey("timeline_events.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("email_messages.id"))


class ReviewAlertSpell(db.Model):
    """One person's spell of review alerts: it began with a mail, and alerts that come before
    `gathering_until` wait to be mailed together when it is over. `gathering_until` is moved
    on by an UPDATE that matches only a spell that is over, so of two processes one alone
    wins the right to mail what is pending."""

    __tablename__ = "review_alert_spells"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    gathering_until: Mapped[datetime] = mapped_column(UTCDateTime)
