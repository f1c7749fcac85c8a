"""Reading the catalogue of treatments and clinics."""

from sqlalchemy import select

from leads.extensions import db
from leads.models import Treatment


def find_active_treatment(slug: str) -> Treatment | None:
    return db.session.scalar(select(Treatment).where(Treatment.slug == slug, Treatment.active))


def list_treatments(include_inactive: bool) -> list[Treatment]:
    query = select(Treatment).order_by(Treatment.specialty, Treatment.name)
    if not include_inactive:
        query = query.where(Treatment.active)
    return list(db.session.scalars(query))
