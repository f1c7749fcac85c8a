"""Finding leads by the coordinators' filters (CONTRACT §4), and the funnel figures."""

import re
from datetime import UTC, date, datetime, time, timedelta
from statistics import median

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import lazyload

from leads.extensions import db
from leads.models import Clinic, Lead, LeadDestination, Referral, Treatment, User
from leads.models.personal import email_lookup_key


class UnknownFilterValue(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _start(moment: date | datetime) -> datetime:
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment, time.min, tzinfo=UTC)


def _end(moment: date | datetime) -> datetime:
    """The first instant after the filter's end; a date means the whole day."""
    if isinstance(moment, datetime):
        return moment + timedelta(microseconds=1)
    return datetime.combine(moment + timedelta(days=1), time.min, tzinfo=UTC)


def created_between(query: Select, filters: dict) -> Select:
    if filters.get("created_from") is not None:
        query = query.where(Lead.created_at >= _start(filters["created_from"]))
    if filters.get("created_to") is not None:
        query = query.where(Lead.created_at < _end(filters["created_to"]))
    return query


def filtered_leads(filters: dict, user: User) -> Select:
    # Lists and the export show no referrals: do not load them with every page.
    query = created_between(select(Lead).options(lazyload(Lead.referrals)), filters)
    if filters.get("status"):
        query = query.where(Lead.status == filters["status"])
    if filters.get("treatment"):
        query = query.join(Treatment, Treatment.id == Lead.treatment_id).where(
            Treatment.slug == filters["treatment"])
    if filters.get("country"):
        query = query.where(Lead.country == filters["country"])
    if filters.get("destination"):
        query = query.where(Lead.id.in_(select(LeadDestination.lead_id).where(
            LeadDestination.country == filters["destination"])))
    assignee = filters.get("assigned_to")
    if assignee == "me":
        query = query.where(Lead.assigned_to_id == user.id)
    elif assignee == "none":
        query = query.where(Lead.assigned_to_id.is_(None))
    elif assignee is not None:
        # ASCII digits only ("²" is a digit to str.isdigit), and no id beyond 32 bits.
        if not (assignee.isascii() and assignee.isdigit()) or not 0 < int(assignee) < 2**31:
            raise UnknownFilterValue("assigned_to", "Use `me`, `none` or a user id.")
        query = query.where(Lead.assigned_to_id == int(assignee))
    if filters.get("q"):
        text = filters["q"].strip()
        # `%` and `_` in the search are letters, not wildcards.
        escaped = re.sub(r"([\\%_])", r"\\\1", text.lower())
        name = f"%{escaped}%"
        query = query.where(or_(
            Lead.reference == text.upper(),
            Lead.email_key == email_lookup_key(text),
            func.lower(Lead.first_name).like(name, escape="\\"),
            func.lower(Lead.last_name).like(name, escape="\\"),
            func.lower(Lead.first_name + " " + Lead.last_name).like(name, escape="\\"),
        ))
    return query


def funnel(filters: dict) -> dict:
    leads = created_between(select(Lead.id), filters).subquery()
    by_status = dict(db.session.execute(
        select(Lead.status, func.count()).where(Lead.id.in_(select(leads.c.id)))
        .group_by(Lead.status)).all())
    by_treatment = dict(db.session.execute(
        select(Treatment.slug, func.count()).join(Lead, Lead.treatment_id == Treatment.id)
        .where(Lead.id.in_(select(leads.c.id))).group_by(Treatment.slug)).all())
    rows = db.session.execute(
        select(Clinic.id, Clinic.name, Referral.status, Referral.created_at,
               Referral.responded_at)
        .join(Referral, Referral.clinic_id == Clinic.id)
        .where(Referral.lead_id.in_(select(leads.c.id)))
        .order_by(Clinic.id)).all()
    clinics: dict[int, dict] = {}
    for clinic_id, name, status, created, responded in rows:
        entry = clinics.setdefault(clinic_id, {"clinic_id": clinic_id, "name": name,
                                               "referrals": 0, "accepted": 0, "hours": []})
        entry["referrals"] += 1
        if status in ("accepted", "quoted", "booked"):
            entry["accepted"] += 1
        if responded is not None:
            entry["hours"].append((responded - created).total_seconds() / 3600)
    return {
        "by_status": by_status,
        "by_treatment": by_treatment,
        "clinics": [
            {"clinic_id": e["clinic_id"], "name": e["name"], "referrals": e["referrals"],
             "accepted": e["accepted"],
             "acceptance_rate": round(e["accepted"] / e["referrals"], 4),
             "median_hours_to_first_answer": round(median(e["hours"]), 2) if e["hours"] else None}
            for e in clinics.values()
        ],
    }
