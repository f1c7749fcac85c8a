"""What an `Idempotency-Key` keeps: the first answer to a request."""

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.types import UTCDateTime
from leads.privacy.personal import PersonalJSON


class IdempotencyRecord(db.Model):
    """The first answer to a request made with an `Idempotency-Key`, kept 24 hours."""

    __tablename__ = "idempotency_records"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Keyed (`keyed_fingerprint`): the body holds the patient's e-mail.
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict] = mapped_column(PersonalJSON)  # holds the status link's token
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
