"""Leads as coordinators and admins work them (CONTRACT §4)."""

import csv
import io
import re

from flask import Response, stream_with_context
from flask.views import MethodView
from sqlalchemy import select
from webargs.flaskparser import abort

from leads.api.paging import page
from leads.api.parsing import Blueprint
from leads.auth import current_staff, staff_required
from leads.extensions import db
from leads.lead_queries import UnknownFilterValue, filtered_leads
from leads.models import Lead
from leads.outbox import nudge_relay
from leads.schemas.leads import (
    LeadDetailSchema,
    LeadFilterSchema,
    LeadListQuerySchema,
    LeadPageSchema,
    LeadPatchSchema,
    NoteInSchema,
    NoteSchema,
    RerouteSchema,
    TransitionSchema,
)
from leads.workflow import (
    REROUTABLE,
    NoConsentToShare,
    NothingToRoute,
    NotReroutable,
    add_note,
    move_lead,
    reroute,
    update_lead,
)

blp = Blueprint("leads", __name__, url_prefix="/api/v1/leads",
                description="Leads as coordinators work them.")
staff = blp.guarded(staff_required())
EXPORT_BATCH = 500
NO_CONSENT = "The patient did not consent to sharing with clinics; it cannot be routed."
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
EXPORT_COLUMNS = (
    "id", "reference", "status", "priority", "tags", "assigned_to", "treatment", "first_name",
    "last_name", "email", "phone", "country", "language", "birth_year", "destinations",
    "budget_amount", "budget_currency", "travel_earliest", "travel_latest", "duplicate_of",
    "created_at", "updated_at",
)


def find_lead(lead_id: int, *, for_update: bool = False) -> Lead:
    query = select(Lead).where(Lead.id == lead_id)
    if for_update:
        # The worker may be routing the same lead; take turns.
        query = query.with_for_update(of=Lead)
    lead = db.session.scalar(query)
    if lead is None:
        abort(404, message=f"No lead with id {lead_id}.")
    return lead


def leads_matching(filters: dict):
    try:
        return filtered_leads(filters, current_staff())
    except UnknownFilterValue as error:
        abort(422, messages={error.field: [str(error)]})


@blp.route("")
class Leads(MethodView):
    @staff
    @blp.arguments(LeadListQuerySchema, location="query")
    @blp.response(200, LeadPageSchema)
    def get(self, query):
        """Leads, newest first, by the coordinators' filters."""
        limit, cursor = query.pop("limit"), query.pop("cursor")
        return page(db.session, leads_matching(query), Lead.id, limit, cursor)


def _csv_cell(value) -> str:
    text = ";".join(map(str, value)) if isinstance(value, list) else (
        "" if value is None else str(value))
    # A cell a spreadsheet would run as a formula is written as text; an E.164 number is not one.
    if text[:1] in FORMULA_STARTS and not E164.fullmatch(text):
        return "'" + text
    return text


def _csv_row(lead: Lead) -> list[str]:
    values = {
        **{name: getattr(lead, name) for name in EXPORT_COLUMNS if hasattr(Lead, name)},
        "assigned_to": lead.assigned_to_id, "treatment": lead.treatment.slug,
        "duplicate_of": lead.duplicate_of_id,
        "created_at": lead.created_at.isoformat(), "updated_at": lead.updated_at.isoformat(),
    }
    return [_csv_cell(values[name]) for name in EXPORT_COLUMNS]


@blp.route("/export.csv")
class LeadExport(MethodView):
    @staff
    @blp.arguments(LeadFilterSchema, location="query")
    @blp.response(200, {"type": "string"}, content_type="text/csv")
    def get(self, filters):
        """The leads of the same filters as CSV, newest first, streamed in batches."""
        query = leads_matching(filters).order_by(Lead.id.desc())

        def rows():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(EXPORT_COLUMNS)
            last_id = None
            while True:
                batch_query = query if last_id is None else query.where(Lead.id < last_id)
                batch = list(db.session.scalars(batch_query.limit(EXPORT_BATCH)))
                for lead in batch:
                    writer.writerow(_csv_row(lead))
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                if len(batch) < EXPORT_BATCH:
                    return
                last_id = batch[-1].id
                db.session.expunge_all()  # keep memory flat over a long export

        return Response(stream_with_context(rows()), mimetype="text/csv", headers={
            "Content-Disposition": 'attachment; filename="leads.csv"'})


@blp.route("/<int:lead_id>")
class LeadDetail(MethodView):
    @staff
    @blp.response(200, LeadDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, lead_id):
        """The lead with its referrals and its whole timeline, oldest event first."""
        return find_lead(lead_id)

    @staff
    @blp.arguments(LeadPatchSchema)
    @blp.response(200, LeadDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def patch(self, changes, lead_id):
        """Assign the lead, set its priority or its tags."""
        lead = find_lead(lead_id, for_update=True)
        update_lead(lead, current_staff(), changes)
        db.session.commit()
        return lead


@blp.route("/<int:lead_id>/transitions")
class LeadTransitions(MethodView):
    @staff
    @blp.arguments(TransitionSchema)
    @blp.response(200, LeadDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body, lead_id):
        """Move the lead along the pipeline; 409 names the targets allowed from here."""
        lead = find_lead(lead_id, for_update=True)
        try:
            move_lead(lead, body["to"], current_staff(), body.get("reason"))
        except NothingToRoute:
            db.session.rollback()
            abort(409, message="No eligible clinic is left to route this lead to.")
        except NoConsentToShare:
            db.session.rollback()
            abort(409, message=NO_CONSENT)
        db.session.commit()
        nudge_relay()
        return lead


@blp.route("/<int:lead_id>/notes")
class LeadNotes(MethodView):
    @staff
    @blp.arguments(NoteInSchema)
    @blp.response(201, NoteSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, body, lead_id):
        """Add a note to the lead; it shows on the timeline."""
        lead = find_lead(lead_id)
        note = add_note(lead, current_staff(), body["body"])
        db.session.commit()
        return note


@blp.route("/<int:lead_id>/reroute")
class LeadReroute(MethodView):
    @staff
    @blp.arguments(RerouteSchema)
    @blp.response(202, LeadDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body, lead_id):
        """Match again, skipping the excluded clinics and those already referred; the new
        clinics' notifications go out through the workers. A lead whose patient did not
        consent to sharing is never matched: the answer is 202 with nothing new."""
        lead = find_lead(lead_id, for_update=True)
        try:
            reroute(lead, set(body["exclude_clinic_ids"]), current_staff())
        except NotReroutable:
            abort(409, message=f"Only a routed lead or one in review can be rerouted; this one "
                               f"is {lead.status}.", extra={"current": lead.status,
                                                           "allowed_from": sorted(REROUTABLE)})
        db.session.commit()
        nudge_relay()
        return lead
