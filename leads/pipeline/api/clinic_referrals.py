"""What a partner clinic sees and does with its API key: its own referrals (CONTRACT §5)."""

from flask.views import MethodView

from leads.attachments.operations import clinic_attachment
from leads.core.database import db
from leads.core.paging import page
from leads.fhir.operations import answer_task, clinic_bundle, task_resource
from leads.fhir.schemas import TaskAnswerSchema
from leads.pipeline.clinic_schemas import (
    ClinicReferralPageSchema,
    ClinicReferralQuerySchema,
    ClinicReferralSchema,
    DeclineSchema,
    QuoteInSchema,
)
from leads.pipeline.models import Referral
from leads.pipeline.queries import clinic_referral, clinic_referrals
from leads.pipeline.workflow import (
    accept_referral,
    decline_referral,
    open_referral,
    quote_referral,
)
from leads.web.downloads import FILE_SCHEMA, file_response
from leads.web.fhir_answers import FHIR_JSON, fhir_response, resource_schema
from leads.web.guards import Audience, current_clinic
from leads.web.parsing import Blueprint
from leads.web.publisher import nudge_relay

blp = Blueprint("clinic_referrals", __name__, url_prefix="/api/v1/clinic/referrals",
                description="A partner clinic's own referrals, with its API key.")
clinic = blp.allow(Audience.CLINIC)


# The clinic portal's pages (leads/web/pages/clinic.py) do what these views do through the
# three helpers below: no rule of the clinic's referrals is written twice.

def own_referral(referral_id: int, *, for_update: bool = False) -> Referral:
    """The signed-in clinic's referral (by key or page session); another's answers 404."""
    return clinic_referral(current_clinic().id, referral_id, for_update=for_update)


def opened_referral(referral_id: int) -> Referral:
    """The clinic's referral, read: `requested` becomes `received`, committed."""
    referral = own_referral(referral_id, for_update=True)
    open_referral(referral)
    db.session.commit()
    return referral


def answer_referral(referral_id: int, act, *args) -> Referral:
    """`act(referral, *args)` (accept, decline, quote...) committed, the outbox nudged."""
    referral = own_referral(referral_id, for_update=True)
    act(referral, *args)
    db.session.commit()
    nudge_relay()
    return referral


@blp.route("")
class ClinicReferrals(MethodView):
    @clinic
    @blp.arguments(ClinicReferralQuerySchema, location="query")
    @blp.response(200, ClinicReferralPageSchema)
    def get(self, query):
        """This clinic's referrals, newest first."""
        rows = clinic_referrals(current_clinic().id, query.get("status"))
        return page(db.session, rows, Referral.id, query["limit"], query["cursor"])


@blp.route("/<int:referral_id>")
class ClinicReferralDetail(MethodView):
    @clinic
    @blp.response(200, ClinicReferralSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, referral_id):
        """One referral; opening it tells the marketplace the clinic has seen it."""
        return opened_referral(referral_id)


@blp.route("/<int:referral_id>/attachments/<int:attachment_id>")
class ClinicReferralAttachment(MethodView):
    @clinic
    @blp.response(200, FILE_SCHEMA, content_type="application/octet-stream",
                  description="The file, with its own content type.")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, referral_id, attachment_id):
        """One of the lead's files, once this clinic has accepted the referral; before, as
        for another clinic's referral, 404."""
        return file_response(clinic_attachment(own_referral(referral_id), attachment_id))


@blp.route("/<int:referral_id>/accept")
class AcceptReferral(MethodView):
    @clinic
    @blp.response(200, ClinicReferralSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, referral_id):
        """Take the patient on; their contact details are shown from now on."""
        return answer_referral(referral_id, accept_referral)


@blp.route("/<int:referral_id>/decline")
class DeclineReferral(MethodView):
    @clinic
    @blp.arguments(DeclineSchema, required=False)
    @blp.response(200, ClinicReferralSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body, referral_id):
        """Turn the referral down, with a reason the coordinators can read."""
        return answer_referral(referral_id, decline_referral, body.get("reason"))


@blp.route("/<int:referral_id>/quote")
class QuoteReferral(MethodView):
    @clinic
    @blp.arguments(QuoteInSchema)
    @blp.response(200, ClinicReferralSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body, referral_id):
        """Send the patient a quote for an accepted referral; a later quote revises it."""
        return answer_referral(referral_id, quote_referral, body)


@blp.route("/<int:referral_id>/fhir")
class ClinicReferralFhir(MethodView):
    @clinic
    @blp.response(200, resource_schema("Bundle"), content_type=FHIR_JSON,
                  description="A Bundle of type `collection` as the staff's, with this "
                              "clinic's own Task only; the Patient's `telecom` only once the "
                              "clinic has accepted.")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, referral_id):
        """The referral as an HL7 FHIR R4 Bundle; reading it opens the referral, as reading
        it as JSON does."""
        return fhir_response(clinic_bundle(opened_referral(referral_id)))


@blp.route("/<int:referral_id>/fhir/Task")
class ClinicReferralTask(MethodView):
    @clinic
    @blp.arguments(TaskAnswerSchema, description="`application/json` or "
                   "`application/fhir+json`: the Task's `status` (and `statusReason`), alone "
                   "or in the whole Task.")
    @blp.doc(requestBody={"content": {FHIR_JSON: {"schema": TaskAnswerSchema}}})
    @blp.response(200, resource_schema("Task"), content_type=FHIR_JSON,
                  description="The Task as it now stands.")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, body, referral_id):
        """Answer the referral as a FHIR Task: `accepted` is `/accept`, `rejected` (with a
        `statusReason.text`) is `/decline` with that reason."""
        return fhir_response(task_resource(answer_referral(referral_id, answer_task, body)))
