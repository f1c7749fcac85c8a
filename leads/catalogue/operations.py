"""The catalogue of treatments and clinics: reading it, and the admins' changes to it."""

import time
from decimal import Decimal

from marshmallow import ValidationError
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from leads.accounts.models import User
from leads.catalogue.models import (
    Accreditation,
    Clinic,
    ClinicTreatment,
    CurrencyRate,
    Treatment,
)
from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.errors import Conflict, NotFound


class TreatmentExists(Conflict):
    """A treatment with that slug is in the catalogue already."""

    def __init__(self, slug: str):
        super().__init__(f"A treatment with slug {slug!r} exists already.")


# Every inquiry's validation asks whether its treatment is offered, and its acknowledgement
# names it. A yes is remembered per process for a few seconds, with the name (forgotten at
# once when this process changes a treatment); a no is asked again each time, so a new
# treatment is known at once. Intake's INSERT selects from the active treatment itself
# (leads/intake/operations.py), so one deactivated meanwhile by another process is still
# refused; a rename made elsewhere reaches the acknowledgements within the few seconds.
ACTIVE_TREATMENT_TTL = 5.0
_active: dict[str, tuple[float, str]] = {}


def active_treatment_name(slug: str, fresh: bool = False) -> str | None:
    """The name of the active treatment `slug`, None when there is none; `fresh` asks the
    database whatever is remembered."""
    now = time.monotonic()
    until, name = _active.get(slug, (0.0, ""))
    if until > now and not fresh:
        return name
    name = db.session.scalar(
        select(Treatment.name).where(Treatment.slug == slug, Treatment.active))
    if name is None:
        _active.pop(slug, None)
        return None
    _active[slug] = (now + ACTIVE_TREATMENT_TTL, name)
    return name


def is_active_treatment(slug: str) -> bool:
    return active_treatment_name(slug) is not None


def forget_active_treatments() -> None:
    _active.clear()


def find_treatment(slug: str) -> Treatment | None:
    return db.session.scalar(select(Treatment).where(Treatment.slug == slug))


def list_treatments(include_inactive: bool) -> list[Treatment]:
    query = select(Treatment).order_by(Treatment.specialty, Treatment.name)
    if not include_inactive:
        query = query.where(Treatment.active)
    return list(db.session.scalars(query))


def create_treatment(fields: dict) -> Treatment:
    if find_treatment(fields["slug"]) is not None:
        raise TreatmentExists(fields["slug"])
    treatment = Treatment(**fields)
    db.session.add(treatment)
    try:
        db.session.flush()
    except IntegrityError:  # a twin request stored the same slug first
        raise TreatmentExists(fields["slug"]) from None
    return treatment


def update_treatment(treatment: Treatment, changes: dict) -> None:
    for name, value in changes.items():
        setattr(treatment, name, value)
    forget_active_treatments()


def clinics_query(filters: dict) -> Select:
    query = select(Clinic)
    if filters.get("country"):
        query = query.where(Clinic.country == filters["country"])
    if filters.get("active") is not None:
        query = query.where(Clinic.active == filters["active"])
    if filters.get("treatment"):
        query = query.where(Clinic.id.in_(
            select(ClinicTreatment.clinic_id).join(Treatment)
            .where(Treatment.slug == filters["treatment"])))
    return query


def _set_offers(clinic: Clinic, offers: list[dict]) -> None:
    """Make the clinic offer exactly these treatments; rows kept are updated in place."""
    treatments = {t.slug: t for t in db.session.scalars(
        select(Treatment).where(Treatment.slug.in_([o["slug"] for o in offers])))}
    unknown = {i: {"slug": [f"Unknown treatment {o['slug']!r}."]}
               for i, o in enumerate(offers) if o["slug"] not in treatments}
    if unknown:
        raise ValidationError(unknown, field_name="treatments")
    current = {offer.treatment_id: offer for offer in clinic.offers}
    wanted = {}
    for offer in offers:
        treatment = treatments[offer["slug"]]
        row = current.get(treatment.id) or ClinicTreatment(treatment=treatment)
        row.price_min, row.price_max = offer["price_min"], offer["price_max"]
        row.currency = offer["currency"]
        wanted[treatment.id] = row
    clinic.offers = list(wanted.values())


def update_clinic(clinic: Clinic, changes: dict) -> None:
    offers = changes.pop("treatments", None)
    for name, value in changes.items():
        setattr(clinic, name, value)
    if offers is not None:
        _set_offers(clinic, offers)
    clinic.updated_at = utcnow()


def create_clinic(fields: dict) -> Clinic:
    clinic = Clinic()
    db.session.add(clinic)
    update_clinic(clinic, fields)
    db.session.flush()
    return clinic


def add_accreditation(clinic: Clinic, fields: dict) -> Accreditation:
    """Accreditations start unverified: an admin checks the certificate and verifies it."""
    accreditation = Accreditation(clinic=clinic, verified=False, created_at=utcnow(), **fields)
    db.session.add(accreditation)
    db.session.flush()
    return accreditation


def clinic_accreditation(clinic_id: int, accreditation_id: int) -> Accreditation:
    """The clinic's accreditation; one of another clinic's is answered as unknown."""
    accreditation = db.session.scalar(select(Accreditation).where(
        Accreditation.id == accreditation_id, Accreditation.clinic_id == clinic_id))
    if accreditation is None:
        raise NotFound(f"Clinic {clinic_id} has no accreditation {accreditation_id}.")
    return accreditation


def set_verified(accreditation: Accreditation, verified: bool, admin: User) -> None:
    if verified == accreditation.verified:
        return
    accreditation.verified = verified
    accreditation.verified_by_id = admin.id if verified else None
    accreditation.verified_at = utcnow() if verified else None


def list_rates() -> list[CurrencyRate]:
    return list(db.session.scalars(select(CurrencyRate).order_by(CurrencyRate.currency)))


def set_rate(currency: str, usd_per_unit: Decimal, note: str | None) -> tuple[CurrencyRate, bool]:
    """Create or replace a currency's rate; True when it is new."""
    rate = db.session.get(CurrencyRate, currency)
    created = rate is None
    if created:
        rate = CurrencyRate(currency=currency)
        db.session.add(rate)
    rate.usd_per_unit = usd_per_unit
    rate.note = note
    rate.updated_at = utcnow()
    return rate, created
