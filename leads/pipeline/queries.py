"""Finding leads by the coordinators' filters (CONTRACT §4), a clinic's referrals (§5), and
the funnel figures."""

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from statistics import median

from sqlalchemy import JSON, ColumnElement, Select, String, func, select, type_coerce, union
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import lazyload, selectinload

from leads.accounts.models import User
from leads.catalogue.models import Clinic, Treatment
from leads.core.database import db
from leads.core.errors import NotFound
from leads.core.paging import encode_cursor, keyset, page, paged
from leads.pipeline.models import Lead, LeadDestination, Referral
from leads.pipeline.states import REFERRAL_ACCEPTED
from leads.privacy.personal import email_lookup_key
from leads.privacy.search import leads_named


class LeadNotFound(NotFound):
    def __init__(self, lead_id: int):
        super().__init__(f"No lead with id {lead_id}.")


def find_lead(lead_id: int, *, for_update: bool = False) -> Lead:
    query = select(Lead).where(Lead.id == lead_id)
    if for_update:
        # The worker may be routing the same lead; take turns.
        query = query.with_for_update(of=Lead)
    lead = db.session.scalar(query)
    if lead is None:
        raise LeadNotFound(lead_id)
    return lead


class UnknownReferral(NotFound):
    def __init__(self, referral_id: int):
        super().__init__(f"No referral {referral_id} for this clinic.")


def clinic_referral(clinic_id: int, referral_id: int, *, for_update: bool = False) -> Referral:
    """The clinic's own referral; another clinic's is answered as an unknown one. With
    `for_update`, locked (its lead first) for an answer that changes it."""
    mine = (Referral.id == referral_id, Referral.clinic_id == clinic_id)
    query = select(Referral).where(*mine)
    if for_update:
        # The lead first, as the coordinators' endpoints and the worker take it: two clinics
        # declining at once must each see the other's answer, or neither sends the lead to
        # review when every referral is declined.
        lead_id = db.session.scalar(select(Referral.lead_id).where(*mine))
        if lead_id is not None:
            db.session.scalar(select(Lead.id).where(Lead.id == lead_id).with_for_update())
        query = query.with_for_update(of=Referral)
    referral = db.session.scalar(query)
    if referral is None:
        raise UnknownReferral(referral_id)
    return referral


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
    # Lists show no referrals: do not load them with every page.
    return narrowed(select(Lead).options(lazyload(Lead.referrals)), filters, user)


# A listed or exported lead needs neither its status token (a decryption per row), nor its
# blind index, nor when it was erased.
UNLISTED = ("status_token", "status_token_hash", "email_key", "erased_at")
LISTED_COLUMNS = tuple(column for column in Lead.__table__.columns
                       if column.name not in UNLISTED)


def _destinations() -> ColumnElement:
    """A lead's destinations in order, as one value of its row: no query of their own."""
    countries = (select(LeadDestination.country).where(LeadDestination.lead_id == Lead.id)
                 .order_by(LeadDestination.position))
    if db.engine.dialect.name == "postgresql":
        return func.array(countries.scalar_subquery(), type_=ARRAY(String))
    # SQLite has no arrays; it keeps the subquery's order for the aggregate over it. A
    # subquery in FROM is not correlated unless told.
    ordered = countries.correlate(Lead).subquery()
    return type_coerce(select(func.json_group_array(ordered.c.country)).scalar_subquery(),
                       JSON)


def _listed(filters: dict, user: User) -> Select:
    """The filtered leads' rows as plain values: the lead's columns (decrypted by their
    types), its treatment's slug as `treatment` and its `destinations`."""
    return narrowed(select(*LISTED_COLUMNS, Treatment.slug.label("treatment"),
                           _destinations().label("destinations"))
                    .join(Treatment, Treatment.id == Lead.treatment_id), filters, user)


def listed_leads(filters: dict, user: User, limit: int, cursor: str | None) -> dict:
    """A page of the filtered leads, newest first, each as plain values (`_listed`):
    building ORM objects was most of a page's time."""
    return _page_of_values(_listed(filters, user), limit, cursor)


def newest_leads_first(query: Select, limit: int, cursor: str | None) -> dict:
    """A page of the leads (ORM objects) `query` selects, in the lists' order."""
    return page(db.session, query, Lead.id, limit, cursor, Lead.created_at)


def _page_of_values(query: Select, limit: int, cursor: str | None) -> dict:
    rows = _lead_values(keyset(query, Lead.id, limit, cursor, Lead.created_at))
    return paged(rows, limit, lambda row: encode_cursor(row["id"], row["created_at"]))


def leads_for_export(filters: dict, user: User, batch: int) -> Iterator[list[dict]]:
    """The filtered leads, newest first, in batches of plain values (`_listed`). The
    filters are read at once, so that a bad one is refused before the first byte is sent."""
    return _export_batches(_listed(filters, user), batch)


def _export_batches(query: Select, batch: int) -> Iterator[list[dict]]:
    cursor = None
    while True:
        found = _page_of_values(query, batch, cursor)
        yield found["items"]
        cursor = found["next_cursor"]
        if cursor is None:
            return


def _lead_values(query: Select) -> list[dict]:
    return [dict(row._mapping) for row in db.session.execute(query)]


def narrowed(query: Select, filters: dict, user: User) -> Select:
    """`query`, a select over leads, narrowed by the coordinators' filters."""
    query = created_between(query, filters)
    if filters.get("status"):
        query = query.where(Lead.status == filters["status"])
    if filters.get("treatment"):
        # By id, not by a join: the lists join the treatment already for its slug.
        query = query.where(Lead.treatment_id == select(Treatment.id).where(
            Treatment.slug == filters["treatment"]).scalar_subquery())
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
    elif assignee is not None:  # a user id (LeadFilterSchema checked it)
        query = query.where(Lead.assigned_to_id == int(assignee))
    if filters.get("q"):
        text = filters["q"].strip()
        # The names are encrypted: they are found by the keyed digests of their words. Each
        # way of matching uses its own index; an OR of them would scan every lead.
        named = leads_named(text)
        query = query.where(Lead.id.in_(union(
            select(Lead.id).where(Lead.reference == text.upper()),
            select(Lead.id).where(Lead.email_key == email_lookup_key(text)),
            *([] if named is None else [named]),
        )))
    return query


def status_counts(filters: dict, user: User) -> dict[str, int]:
    """How many leads of each status the filters find, the status filter aside: what each
    status would show."""
    matching = filtered_leads({**filters, "status": None}, user).with_only_columns(Lead.id)
    return dict(db.session.execute(
        select(Lead.status, func.count()).where(Lead.id.in_(matching))
        .group_by(Lead.status)).all())


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
        if status in REFERRAL_ACCEPTED:
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


def clinic_referrals(clinic_id: int, status: str | None = None) -> Select:
    """A clinic's own referrals, with `status` only if given."""
    # Each item shows its lead: load a page's leads in one query, not one per referral.
    query = (select(Referral).where(Referral.clinic_id == clinic_id)
             .options(selectinload(Referral.lead).selectinload(Lead.attachments)))
    if status:
        query = query.where(Referral.status == status)
    return query
