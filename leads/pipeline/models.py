"""A patient's inquiry as it moves through the pipeline, and what happens to it."""

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.types import JSONType, UTCDateTime
from leads.pipeline.states import LeadStatus, Priority, ReferralStatus
from leads.privacy.personal import PersonalJSON, PersonalText

if TYPE_CHECKING:  # the relationship is resolved by name when the mappers are configured
    from leads.attachments.models import Attachment


class Lead(db.Model):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_email_key_treatment_created", "email_key", "treatment_id", "created_at"),
        # The lists are newest first by (created_at, id) and filter by these columns: each
        # filter, and a created range, reads its page from one index (bench/RESULTS.md,
        # "The lead list, 2026-12-07").
        Index("ix_leads_created_id", "created_at", "id"),
        Index("ix_leads_status_created_id", "status", "created_at", "id"),
        # A coordinator's queue of one status and treatment, often narrowed further.
        Index("ix_leads_status_treatment_created_id", "status", "treatment_id", "created_at",
              "id"),
        Index("ix_leads_country_created_id", "country", "created_at", "id"),
        Index("ix_leads_assigned_created_id", "assigned_to_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=LeadStatus.RECEIVED)
    priority: Mapped[str] = mapped_column(String(10), default=Priority.NORMAL)
    tags: Mapped[list] = mapped_column(JSONType, default=list)
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Not with the time and id as the other filters are: intake's look-up of a repeat
    # (e-mail, treatment, since) would then tie between that index and its own while the
    # planner's statistics lag a growing table, and scan the treatment's month of leads.
    treatment_id: Mapped[int] = mapped_column(ForeignKey("treatments.id"), index=True)

    # The personal fields are None once the lead is erased (`erased_at`, leads/privacy/people.py).
    first_name: Mapped[str | None] = mapped_column(PersonalText)
    last_name: Mapped[str | None] = mapped_column(PersonalText)
    email: Mapped[str | None] = mapped_column(PersonalText)
    phone: Mapped[str | None] = mapped_column(PersonalText)
    condition: Mapped[str | None] = mapped_column(PersonalText)
    # The keyed blind index of the e-mail (`email_lookup_key`); None once the lead is erased.
    email_key: Mapped[str | None] = mapped_column(String(64))
    country: Mapped[str] = mapped_column(String(2))
    language: Mapped[str | None] = mapped_column(String(2))
    birth_year: Mapped[int | None] = mapped_column(Integer)

    has_imaging: Mapped[bool | None] = mapped_column(Boolean)
    budget_amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    budget_currency: Mapped[str | None] = mapped_column(String(3))
    travel_earliest: Mapped[date | None] = mapped_column(Date)
    travel_latest: Mapped[date | None] = mapped_column(Date)
    contact_preference: Mapped[str | None] = mapped_column(String(20))
    consent_data_processing: Mapped[bool] = mapped_column(Boolean)
    consent_share_with_clinics: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[dict] = mapped_column(JSONType, default=dict)

    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    status_token_hash: Mapped[str | None] = mapped_column(String(64))
    # The token itself, encrypted: later mail (a quote) carries the patient's link too.
    status_token: Mapped[str | None] = mapped_column(PersonalText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    treatment = relationship("Treatment", lazy="joined")
    assigned_to = relationship("User")
    duplicate_of: Mapped["Lead | None"] = relationship(remote_side=[id])
    destination_rows: Mapped[list["LeadDestination"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="LeadDestination.position"
    )
    referrals: Mapped[list["Referral"]] = relationship(
        back_populates="lead", order_by="Referral.id", lazy="selectin"
    )
    timeline: Mapped[list["TimelineEvent"]] = relationship(
        back_populates="lead", order_by="TimelineEvent.id", lazy="select"
    )
    attachments: Mapped[list["Attachment"]] = relationship(
        order_by="Attachment.id", lazy="select"
    )

    @property
    def destinations(self) -> list[str]:
        return [row.country for row in self.destination_rows]

    @destinations.setter
    def destinations(self, countries: list[str]) -> None:
        self.destination_rows = [
            LeadDestination(country=c, position=i) for i, c in enumerate(countries)
        ]


class LeadDestination(db.Model):
    """One destination country a patient would travel to; a row each so it can be filtered."""

    __tablename__ = "lead_destinations"

    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), primary_key=True)
    country: Mapped[str] = mapped_column(String(2), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Referral(db.Model):
    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("lead_id", "clinic_id", name="uq_referrals_lead_clinic"),
        Index("ix_referrals_clinic_created", "clinic_id", "created_at"),
        # A clinic's latest answers, for its responsiveness (leads/routing/operations.py),
        # read from the index alone.
        Index("ix_referrals_clinic_responded", "clinic_id", "responded_at", "created_at"),
        Index("ix_referrals_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    status: Mapped[str] = mapped_column(String(20), default=ReferralStatus.REQUESTED)
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decline_reason: Mapped[str | None] = mapped_column(PersonalText)

    lead: Mapped[Lead] = relationship(back_populates="referrals")
    clinic = relationship("Clinic", lazy="joined")
    quotes: Mapped[list["Quote"]] = relationship(order_by="Quote.id", lazy="selectin")


class Quote(db.Model):
    __tablename__ = "quotes"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    includes: Mapped[list] = mapped_column(JSONType, default=list)
    valid_until: Mapped[date | None] = mapped_column(Date)
    notes: Mapped[str | None] = mapped_column(PersonalText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Note(db.Model):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(PersonalText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TimelineEvent(db.Model):
    """Every change to a lead: who (`actor`), what (`kind`, `data`), when (`at`)."""

    __tablename__ = "timeline_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    lead: Mapped[Lead] = relationship(back_populates="timeline")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    # Notes, reasons and names land here: the whole document is encrypted.
    data: Mapped[dict] = mapped_column(PersonalJSON, default=dict)
