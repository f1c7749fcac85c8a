"""The patient's front door: submit an inquiry, follow it with the status link."""

from flask import current_app, g, request
from flask.views import MethodView
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from webargs.flaskparser import abort

from leads.api.parsing import Blueprint
from leads.attachments import MAX_PER_LEAD, MAX_SIZE, TooManyFiles, add_attachment, sniff
from leads.credentials import matches
from leads.extensions import db, limiter
from leads.idempotency import MAX_KEY_LENGTH, KeyReused, fingerprint, remember_answer, stored_answer
from leads.intake import accept_inquiry, status_url
from leads.models import Lead
from leads.outbox import nudge_relay
from leads.schemas.inquiry import (
    AttachmentSchema,
    AttachmentUploadSchema,
    InquiryAcceptedSchema,
    InquirySchema,
    InquiryStatusSchema,
    InquiryTokenQuerySchema,
)

blp = Blueprint(
    "inquiries", __name__, url_prefix="/api/v1/inquiries",
    description="Patients submit an inquiry and follow it with the link they are sent.",
)


def _counts_against_limit(response) -> bool:
    # Only inquiries that create a lead use up the allowance; replays and refusals do not.
    return response.status_code == 202 and not g.get("idempotent_replay", False)


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        abort(422, messages={"Idempotency-Key": [f"Must be 1 to {MAX_KEY_LENGTH} characters."]})
    return key


def _replay(key: str, request_hash: str):
    try:
        answer = stored_answer(key, request_hash)
    except KeyReused:
        abort(422, messages={"Idempotency-Key": ["Already used with a different body."]})
    if answer is not None:
        g.idempotent_replay = True
        db.session.commit()
        return answer.body, answer.status_code
    return None


@blp.route("")
class Inquiries(MethodView):
    decorators = [limiter.limit(
        lambda: current_app.config["INQUIRY_RATE_LIMIT"], deduct_when=_counts_against_limit,
    )]

    @blp.arguments(InquirySchema)
    @blp.response(202, InquiryAcceptedSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def post(self, form):
        """Submit an inquiry. Accepted means kept: the lead is stored before 202 is answered."""
        key = _idempotency_key()
        request_hash = fingerprint(request.get_json())
        if key and (replayed := _replay(key, request_hash)):
            return replayed

        accepted = accept_inquiry(form)
        reference = accepted.lead.reference
        body = {
            "reference": reference,
            "status": "received",
            "status_url": status_url(reference, accepted.status_token),
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


def patients_lead(reference: str, token: str) -> Lead:
    """The lead the status link names; a wrong or missing token looks like no lead at all."""
    lead = db.session.scalar(select(Lead).where(Lead.reference == reference.upper()))
    if lead is None or not token or not matches(token, lead.status_token_hash):
        abort(404, message="No inquiry with that reference and token.")
    return lead


@blp.route("/<string:reference>")
class InquiryStatus(MethodView):
    @blp.arguments(InquiryTokenQuerySchema, location="query")
    @blp.response(200, InquiryStatusSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, reference):
        """What the patient may see of their own inquiry."""
        lead = patients_lead(reference, query["token"])
        return {
            "reference": lead.reference,
            # The honeypot must not tell a bot it was caught.
            "status": "received" if lead.status == "spam" else lead.status,
            "treatment": lead.treatment,
            "created_at": lead.created_at,
            "updated_at": lead.updated_at,
            "referrals": [
                {"clinic": referral.clinic, "status": referral.status, "quotes": referral.quotes}
                for referral in lead.referrals
            ],
        }


@blp.route("/<string:reference>/attachments")
class InquiryAttachments(MethodView):
    @blp.arguments(InquiryTokenQuerySchema, location="query")
    @blp.arguments(AttachmentUploadSchema, location="files")
    @blp.response(201, AttachmentSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    def post(self, query, files, reference):
        """Add a PDF, JPEG, PNG or DICOM file (judged by its content), up to 10 MB, five per
        inquiry."""
        lead = patients_lead(reference, query["token"])
        upload = files["file"]
        content = upload.read(MAX_SIZE + 1)
        if len(content) > MAX_SIZE:
            abort(413, message="A file may be at most 10 MB.")
        content_type = sniff(content)
        if content_type is None:
            abort(422, messages={"file": ["Send a PDF, JPEG, PNG or DICOM file."]})
        filename = (upload.filename or "attachment").rsplit("/", 1)[-1][:200]
        try:
            attachment = add_attachment(lead, filename, content, content_type)
        except TooManyFiles:
            abort(422, messages={"file": [f"An inquiry holds at most {MAX_PER_LEAD} files."]})
        db.session.commit()
        return attachment
