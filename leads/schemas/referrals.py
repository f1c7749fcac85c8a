"""A referral as the clinic it was sent to sees it (CONTRACT §5)."""

from datetime import date

from marshmallow import Schema, ValidationError, fields, validate, validates

from leads.api.paging import PageQuerySchema, page_schema
from leads.pipeline import REFERRAL_STATUSES
from leads.schemas.fields import Currency, Text
from leads.schemas.leads import MoneySchema, QuoteSchema, WindowSchema

CONTACT_VISIBLE = frozenset({"accepted", "quoted", "booked"})


def patient_for_clinic(referral) -> dict:
    """What a clinic learns of the patient; contact details only once it has accepted."""
    lead = referral.lead
    patient = {"first_name": lead.first_name, "country": lead.country,
               "language": lead.language, "birth_year": lead.birth_year}
    if referral.status in CONTACT_VISIBLE:
        patient.update(last_name=lead.last_name, email=lead.email, phone=lead.phone,
                       contact_preference=lead.contact_preference)
    return patient


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
        lambda r: MoneySchema().dump({"amount": r.lead.budget_amount,
                                      "currency": r.lead.budget_currency})
        if r.lead.budget_amount is not None else None,
        metadata={"type": "object", "nullable": True})
    travel_window = fields.Function(
        lambda r: WindowSchema().dump({"earliest": r.lead.travel_earliest,
                                       "latest": r.lead.travel_latest})
        if r.lead.travel_earliest or r.lead.travel_latest else None,
        metadata={"type": "object", "nullable": True})
    patient = fields.Function(patient_for_clinic, metadata={"type": "object"})
    quotes = fields.List(fields.Nested(QuoteSchema))
    decline_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    responded_at = fields.DateTime(allow_none=True)


ClinicReferralPageSchema = page_schema(ClinicReferralSchema, "ClinicReferralPage")


class ClinicReferralQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(REFERRAL_STATUSES))


class DeclineSchema(Schema):
    reason = Text(allow_none=True, max_length=2000)


class QuoteInSchema(Schema):
    amount = fields.Decimal(required=True, places=2, allow_nan=False, as_string=False,
                            validate=validate.Range(min=0, min_inclusive=False, max=1e9),
                            metadata={"type": "number", "exclusiveMinimum": True,
                                      "minimum": 0, "maximum": 1e9})
    currency = Currency(required=True)
    includes = fields.List(Text(max_length=200), load_default=list,
                           validate=validate.Length(max=50))
    valid_until = fields.Date(allow_none=True)
    notes = Text(allow_none=True, max_length=5000)

    @validates("valid_until")
    def not_past(self, value, **kwargs):
        if value is not None and value < date.today():
            raise ValidationError("Must not be in the past.")
