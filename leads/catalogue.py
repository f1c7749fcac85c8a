"""The catalogue of treatments and clinics: reading it, and the admins' changes to it."""

from flask import g
from marshmallow import ValidationError
from sqlalchemy import Select, select

from leads.extensions import db
from leads.models import Accreditation, Clinic, ClinicTreatment, Treatment, User
from leads.models.types import utcnow


class TreatmentExists(Exception):
    """A treatment with that slug is in the catalogue already."""


def find_active_treatment(slug: str) -> Treatment | None:
    """Remembered for the rest of the app context: an inquiry's validation and its intake
    ask for the same treatment."""
    found = g.setdefault("active_treatments", {})
    if slug not in found:
        found[slug] = db.session.scalar(
            select(Treatment).where(Treatment.slug == slug, Treatment.active))
    return found[slug]


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
    db.session.flush()
    return treatment


def update_treatment(treatment: Treatment, changes: dict) -> None:
    for name, value in changes.items():
        setattr(treatment, name, value)


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


def set_verified(accreditation: Accreditation, verified: bool, admin: User) -> None:
    if verified == accreditation.verified:
        return
    accreditation.verified = verified
    accreditation.verified_by_id = admin.id if verified else None
    accreditation.verified_at = utcnow() if verified else None
