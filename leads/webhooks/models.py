"""A clinic's webhook endpoints, the messages staged for each, and every attempt to send one."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.types import JSONType, UTCDateTime
from leads.pipeline.states import DeliveryStatus
from leads.privacy.personal import PersonalText


class WebhookEndpoint(db.Model):
    """Where a clinic wants to hear of some events. The signing secret is encrypted at rest
    like personal data; after a rotation the one before it still signs until
    `previous_secret_until`."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list] = mapped_column(JSONType, default=list)
    secret: Mapped[str] = mapped_column(PersonalText)
    previous_secret: Mapped[str | None] = mapped_column(PersonalText)
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the endpoint answered 410 Gone: nothing is sent to it any more.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    # Deleted by the clinic: kept (with its attempts) for the admins, hidden from the clinic.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def active(self) -> bool:
        return self.disabled_at is None and self.deleted_at is None


class WebhookMessage(db.Model):
    """One event for one endpoint, staged in the transaction of the change it reports. Its
    `webhook_id` is the Standard Webhooks message id: the same on every retry."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        Index("ix_webhook_messages_due", "status", "next_attempt_at"),
        Index("ix_webhook_messages_chain", "endpoint_id", "referral_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    webhook_id: Mapped[str] = mapped_column(String(40), unique=True)
    # The body's document, free of the patient's personal data (see operations.payload).
    payload: Mapped[dict] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Counts the sweep's claims; a send task carries the number of its claim, so a task
    # that arrives after its lease ran out (and the message was claimed again) does nothing.
    claims: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    endpoint: Mapped[WebhookEndpoint] = relationship(lazy="joined", innerjoin=True)


class WebhookAttempt(db.Model):
    """One try at sending a message: the status code answered, or why there was none."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_endpoint", "endpoint_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    message_id: Mapped[int] = mapped_column(ForeignKey("webhook_messages.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    succeeded: Mapped[bool] = mapped_column(default=False)

    message: Mapped[WebhookMessage] = relationship(lazy="joined", innerjoin=True)
