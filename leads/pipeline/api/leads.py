"""Leads as coordinators and admins work them (CONTRACT §4)."""

import csv
import io
import re

from flask import Response, jsonify, stream_with_context
from flask.views import MethodView
from webargs.flaskparser import abort

from leads.attachments.operations import lead_attachment
from leads.core.database import db
from leads.fhir.operations import staff_bundle
from leads.pipeline.queries import find_lead, leads_for_export, listed_leads
from leads.pipeline.schemas import (
    LeadDetailSchema,
    LeadFilterSchema,
    LeadListQuerySchema,
    LeadPageSchema,
    LeadPatchSchema,
    NoteInSchema,
    NoteSchema,
    RerouteSchema,
    TransitionSchema,
    listed_lead,
)
from leads.pipeline.workflow import (
    add_note,
    move_lead,
    reroute,
    update_lead,
)
from leads.web.downloads import FILE_SCHEMA, file_response
from leads.web.fhir_answers import FHIR_JSON, fhir_response, resource_schema
from leads.web.guards import Audience, current_staff
from leads.web.parsing import Blueprint
from leads.web.publisher import nudge_relay
from leads.web.transactions import reads_only

blp = Blueprint("leads", __name__, url_prefix="/api/v1/leads",
                description="Leads as coordinators work them.")
staff = blp.allow(Audience.STAFF)
EXPORT_BATCH = 500
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
EXPORT_COLUMNS = (
    "id", "reference", "status", "priority", "tags", "assigned_to", "treatment", "first_name",
    "last_name", "email", "phone", "country", "language", "birth_year", "destinations",
    "budget_amount", "budget_currency", "travel_earliest", "travel_latest", "duplicate_of",
    "created_at", "updated_at",
)


@blp.route("")
class Leads(MethodView):
    @reads_only
    @staff
    @blp.arguments(LeadListQuerySchema, location="query")
    @blp.response(200, LeadPageSchema)
    def get(self, query):
        """Leads, newest first, by the coordinators' filters."""
        limit, cursor = query.pop("limit"), query.pop("cursor")
        found = listed_leads(query, current_staff(), limit, cursor)
        # Answered as it is, not dumped by LeadPageSchema (see `listed_lead`).
        return jsonify({"items": [listed_lead(lead) for lead in found["items"]],
                        "next_cursor": found["next_cursor"]})


def _csv_cell(value) -> str:
    text = ";".join(map(str, value)) if isinstance(value, list) else (
        "" if value is None else str(value))
    # A cell a spreadsheet would run as a formula is written as text; an E.164 number is not one.
    if text[:1] in FORMULA_STARTS and not E164.fullmatch(text):
        return "'" + text
    return text


def _csv_row(lead: dict) -> list[str]:
    derived = {
        "assigned_to": lead["assigned_to_id"], "duplicate_of": lead["duplicate_of_id"],
        "created_at": lead["created_at"].isoformat(), "updated_at": lead["updated_at"].isoformat(),
    }
    return [_csv_cell(derived[name] if name in derived else lead[name])
            for name in EXPORT_COLUMNS]


@blp.route("/export.csv")
class LeadExport(MethodView):
    @staff
    @blp.arguments(LeadFilterSchema, location="query")
    @blp.response(200, {"type": "string"}, content_type="text/csv")
    def get(self, filters):
        """The leads of the same filters as CSV, newest first, streamed in batches."""
        batches = leads_for_export(filters, current_staff(), EXPORT_BATCH)

        def rows():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(EXPORT_COLUMNS)
            for batch in batches:
                writer.writerows(_csv_row(lead) for lead in batch)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()

        return Response(stream_with_context(rows()), mimetype="text/csv", headers={
            "Content-Disposition": 'attachment; filename="leads.csv"'})


@blp.route("/<int:lead_id>")
class LeadDetail(MethodView):
    @reads_only
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


@blp.route("/<int:lead_id>/fhir")
class LeadFhir(MethodView):
    @staff
    @blp.response(200, resource_schema("Bundle"), content_type=FHIR_JSON,
                  description="A Bundle of type `collection`: the Patient, a ServiceRequest "
                              "for the treatment, and per referral a Task owned by an "
                              "Organization for its clinic.")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, lead_id):
        """The lead as an HL7 FHIR R4 Bundle."""
        return fhir_response(staff_bundle(find_lead(lead_id)))


@blp.route("/<int:lead_id>/attachments/<int:attachment_id>")
class LeadAttachment(MethodView):
    @staff
    @blp.response(200, FILE_SCHEMA, content_type="application/octet-stream",
                  description="The file, with its own content type.")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, lead_id, attachment_id):
        """One of the lead's files, as an attachment."""
        attachment = lead_attachment(lead_id, attachment_id)
        if attachment is None:
            abort(404, message=f"Lead {lead_id} has no attachment {attachment_id}.")
        return file_response(attachment)


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
        move_lead(lead, body["to"], current_staff(), body.get("reason"))
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
    @blp.arguments(RerouteSchema, required=False)
    @blp.response(202, LeadDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body, lead_id):
        """Match again, skipping the excluded clinics and those already referred; the new
        clinics' notifications go out through the workers. A lead whose patient did not
        consent to sharing is never matched: the answer is 202 with nothing new."""
        lead = find_lead(lead_id, for_update=True)
        reroute(lead, set(body["exclude_clinic_ids"]), current_staff())
        db.session.commit()
        nudge_relay()
        return lead
