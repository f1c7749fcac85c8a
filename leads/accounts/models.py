"""Who may call the staff and clinic APIs: users, their tokens, clinic API keys."""

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.types import UTCDateTime

ROLES = ("coordinator", "admin")


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When one of the user's tokens was last used, to the minute (leads/web/guards.py).
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CredentialMixin:
    """A secret shown once; only its prefix (for lookup) and hash are kept."""

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffToken(CredentialMixin, db.Model):
    __tablename__ = "staff_tokens"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    user: Mapped[User] = relationship(lazy="joined")


class ClinicApiKey(CredentialMixin, db.Model):
    __tablename__ = "clinic_api_keys"

    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    clinic = relationship("Clinic", lazy="joined")
