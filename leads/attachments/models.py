"""A file a patient added to their inquiry, stored encrypted."""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.types import UTCDateTime
from leads.privacy.personal import PersonalBytes, PersonalText


class Attachment(db.Model):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    filename: Mapped[str] = mapped_column(PersonalText)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))  # keyed: see `keyed_fingerprint`
    # Up to 10 MB: loaded only when the file itself is asked for, never with a listing.
    content: Mapped[bytes] = mapped_column(PersonalBytes, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
