"""Work that leaves the database: the outbox of tasks, sent e-mails, idempotency records."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from leads.extensions import db
from leads.models.personal import PersonalText
from leads.models.types import JSONType, UTCDateTime, utcnow


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
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    # Rendered when queued: the acknowledgement's status link exists only at intake.
    body_text: Mapped[str] = mapped_column(PersonalText)
    body_html: Mapped[str] = mapped_column(PersonalText)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    # While a worker sends, the message is leased to it; an expired lease may be taken over.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyRecord(db.Model):
    """The first answer to a request made with an `Idempotency-Key`, kept 24 hours."""

    __tablename__ = "idempotency_records"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
