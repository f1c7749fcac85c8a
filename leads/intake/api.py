"""The patient's front door: submit an inquiry, follow it with the status link."""

from flask import current_app
from flask.views import MethodView
from sqlalchemy.exc import IntegrityError

from leads.attachments.operations import add_patients_file
from leads.core.database import db
from leads.intake.idempotency import fingerprint, remember_answer, stored_answer
from leads.intake.operations import accept_inquiry, patients_lead, patients_view
from leads.intake.schemas import (
    AttachmentSchema,
    AttachmentUploadSchema,
    IdempotencyHeaderSchema,
    InquiryAcceptedSchema,
    InquirySchema,
    InquiryStatusSchema,
    InquiryTokenQuerySchema,
    contract_example,
)
from leads.pipeline.states import LeadStatus
from leads.pipeline.workflow import withdraw
from leads.web.extensions import limiter, refund_rate_limit
from leads.web.guards import Audience
from leads.web.parsing import Blueprint, json_body
from leads.web.publisher import nudge_relay

blp = Blueprint(
    "inquiries", __name__, url_prefix="/api/v1/inquiries",
    description="Patients submit an inquiry and follow it with the link they are sent.",
)


def _replay(key: str, request_hash: str):
    answer = stored_answer(key, request_hash)
    if answer is not None:
        db.session.commit()
        refund_rate_limit()
        return answer.body, answer.status_code
    return None


@blp.route("")
class Inquiries(MethodView):
    # Every attempt counts (CONTRACT §3), refused ones too, and is counted before the body is
    # read, so a client sending invalid inquiries is held back like any other: one Redis call
    # per attempt. A replay of an Idempotency-Key is the first inquiry answered again and is
    # given back (`_replay`). A browser's preflight (OPTIONS) is not an inquiry.
    decorators = [limiter.limit(lambda: current_app.config["INQUIRY_RATE_LIMIT"],
                                methods=["POST"])]

    @blp.allow(Audience.ANYONE)
    @blp.arguments(InquirySchema, example=contract_example())
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, InquiryAcceptedSchema)
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def post(self, form, headers):
        """Submit an inquiry. Accepted means kept: the lead is stored before 202 is answered."""
        key = headers.get("key")
        request_hash = fingerprint(json_body())
        if key and (replayed := _replay(key, request_hash)):
            return replayed

        # Without a key there is no answer to keep with the lead.
        accepted = accept_inquiry(form, commit_alone=not key)
        body = {
            "reference": accepted.reference,
            # A spam or duplicate lead is answered as any other: nothing to learn from it.
            "status": LeadStatus.RECEIVED,
            "status_url": accepted.status_url,
        }
        if key:
            remember_answer(key, request_hash, 202, body)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            # A twin request with the same key committed first: answer what it answered.
            if key and (replayed := _replay(key, request_hash)):
                return replayed
            raise
        nudge_relay()
        return body, 202


@blp.route("/<string:reference>")
class InquiryStatus(MethodView):
    @blp.allow(Audience.ANYONE)
    @blp.arguments(InquiryTokenQuerySchema, location="query")
    @blp.response(200, InquiryStatusSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, reference):
        """What the patient may see of their own inquiry."""
        return patients_view(patients_lead(reference, query["token"]))


@blp.route("/<string:reference>/withdraw")
class WithdrawInquiry(MethodView):
    @blp.allow(Audience.ANYONE)
    @blp.arguments(InquiryTokenQuerySchema, location="query")
    @blp.response(200, InquiryStatusSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, query, reference):
        """The patient withdraws: the inquiry is closed, its open referrals are cancelled and
        each of those clinics is told. A closed or completed inquiry answers 409."""
        lead = patients_lead(reference, query["token"], for_update=True)
        withdraw(lead)
        db.session.commit()
        nudge_relay()
        return patients_view(lead)


# Every attempt counts, whatever it is answered, and the status page's form counts
# against the same limit (leads/web/pages/status.py).
patient_upload_limit = limiter.shared_limit(
    lambda: current_app.config["ATTACHMENT_RATE_LIMIT"], scope="patient uploads")


@blp.route("/<string:reference>/attachments")
class InquiryAttachments(MethodView):
    decorators = [patient_upload_limit]

    @blp.allow(Audience.ANYONE)
    @blp.arguments(InquiryTokenQuerySchema, location="query")
    @blp.arguments(AttachmentUploadSchema, location="files")
    @blp.response(201, AttachmentSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    def post(self, query, files, reference):
        """Add a PDF, JPEG, PNG or DICOM file (the whole file judged by its content), up to
        10 MB, five per inquiry."""
        lead = patients_lead(reference, query["token"])
        upload = files["file"]
        attachment = add_patients_file(lead, upload.filename, upload.stream)
        db.session.commit()
        return attachment
