"""A referral as the clinic it was sent to sees it (CONTRACT §5)."""

from marshmallow import Schema, ValidationError, fields, missing, validate, validates

from leads.attachments.operations import clinic_may_see_files
from leads.core.clock import today
from leads.core.fields import Amount, Currency, Text
from leads.core.paging import PageQuerySchema, page_schema
from leads.pipeline.schemas import MONEY, WINDOW, ListedAttachmentSchema, QuoteSchema
from leads.pipeline.states import REFERRAL_ACCEPTED, REFERRAL_STATUSES


def patient_for_clinic(referral) -> dict:
    """What a clinic learns of the patient; contact details only once it has accepted."""
    lead = referral.lead
    patient = {"first_name": lead.first_name, "country": lead.country,
               "language": lead.language, "birth_year": lead.birth_year}
    if referral.status in REFERRAL_ACCEPTED:
        patient.update(last_name=lead.last_name, email=lead.email, phone=lead.phone,
                       contact_preference=lead.contact_preference)
    return patient


def files_for_clinic(referral):
    """The lead's files, listed only once this clinic has taken the patient on."""
    if not clinic_may_see_files(referral):
        return missing
    return ListedAttachmentSchema(many=True).dump(referral.lead.attachments)


class ClinicReferralSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    reference = fields.Function(lambda r: r.lead.reference, metadata={"type": "string"})
    treatment = fields.Function(lambda r: r.lead.treatment.slug, metadata={"type": "string"})
    condition = fields.Function(lambda r: r.lead.condition, metadata={"type": "string"})
    has_imaging = fields.Function(lambda r: r.lead.has_imaging,
                                  metadata={"type": "boolean", "nullable": True})
    destinations = fields.Function(lambda r: r.lead.destinations,
                                   metadata={"type": "array", "items": {"type": "string"}})
    budget = fields.Function(
        lambda r: MONEY.dump({"amount": r.lead.budget_amount,
                              "currency": r.lead.budget_currency})
        if r.lead.budget_amount is not None else None,
        metadata={"type": "object", "nullable": True})
    travel_window = fields.Function(
        lambda r: WINDOW.dump({"earliest": r.lead.travel_earliest,
                               "latest": r.lead.travel_latest})
        if r.lead.travel_earliest or r.lead.travel_latest else None,
        metadata={"type": "object", "nullable": True})
    patient = fields.Function(patient_for_clinic, metadata={"type": "object"})
    attachments = fields.Function(files_for_clinic, metadata={
        "type": "array", "items": {"type": "object"},
        "description": "The lead's files; only once this clinic has accepted."})
    quotes = fields.List(fields.Nested(QuoteSchema))
    decline_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    responded_at = fields.DateTime(allow_none=True)


ClinicReferralPageSchema = page_schema(ClinicReferralSchema, "ClinicReferralPage")


class ClinicReferralQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(REFERRAL_STATUSES))


DECLINE_REASON_LENGTH = 2000


class DeclineSchema(Schema):
    reason = Text(allow_none=True, max_length=DECLINE_REASON_LENGTH)


class QuoteInSchema(Schema):
    amount = Amount(required=True, places=2, minimum="0.01", maximum="1000000000")
    currency = Currency(required=True)
    includes = fields.List(Text(max_length=200), load_default=list,
                           validate=validate.Length(max=50))
    valid_until = fields.Date(allow_none=True)
    notes = Text(allow_none=True, max_length=5000)

    @validates("valid_until")
    def not_past(self, value, **kwargs):
        if value is not None and value < today():
            raise ValidationError("Must not be in the past.")
