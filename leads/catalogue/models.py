"""What the marketplace offers: treatments, clinics, their prices and accreditations."""

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, Float, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.types import JSONType, UTCDateTime


class Treatment(db.Model):
    __tablename__ = "treatments"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    specialty: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Clinic(db.Model):
    __tablename__ = "clinics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2), index=True)
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    website: Mapped[str | None] = mapped_column(String(500))
    languages: Mapped[list] = mapped_column(JSONType, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    monthly_referral_cap: Mapped[int] = mapped_column(Integer, default=50)
    # The median hours it took to answer its latest referrals, None before its first answer:
    # kept up to date as it answers (leads/routing/operations.py), so that routing reads
    # one figure per candidate rather than its answers.
    median_hours_to_answer: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    offers: Mapped[list["ClinicTreatment"]] = relationship(
        back_populates="clinic", cascade="all, delete-orphan", lazy="selectin"
    )
    accreditations: Mapped[list["Accreditation"]] = relationship(
        back_populates="clinic", cascade="all, delete-orphan", lazy="selectin",
        order_by="Accreditation.id",
    )


class ClinicTreatment(db.Model):
    """A treatment a clinic offers, with its price range."""

    __tablename__ = "clinic_treatments"

    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), primary_key=True)
    treatment_id: Mapped[int] = mapped_column(
        ForeignKey("treatments.id"), primary_key=True, index=True
    )
    price_min: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    price_max: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))

    clinic: Mapped[Clinic] = relationship(back_populates="offers")
    treatment: Mapped[Treatment] = relationship(lazy="joined")


class Accreditation(db.Model):
    __tablename__ = "accreditations"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    body: Mapped[str] = mapped_column(String(100))
    reference: Mapped[str | None] = mapped_column(String(200))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    clinic: Mapped[Clinic] = relationship(back_populates="accreditations")

    def is_valid_on(self, day: date) -> bool:
        return (
            self.verified
            and (self.valid_from is None or self.valid_from <= day)
            and (self.valid_until is None or day <= self.valid_until)
        )


class CurrencyRate(db.Model):
    """How many US dollars one unit of a currency buys; budgets and prices meet in USD."""

    __tablename__ = "currency_rates"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    usd_per_unit: Mapped[Decimal] = mapped_column(Numeric(18, 8))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
