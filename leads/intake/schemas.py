"""The patient's inquiry form (CONTRACT §3) and what a patient is answered."""

from flask_smorest.fields import Upload
from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates,
    validates_schema,
)

from leads.catalogue.operations import is_active_treatment
from leads.core.clock import today
from leads.core.fields import (
    Amount,
    Country,
    Currency,
    Email,
    JsonBoolean,
    Language,
    Text,
    parse_phone,
)
from leads.intake.idempotency import MAX_KEY_LENGTH
from leads.pipeline.states import LeadStatus

CONTACT_PREFERENCES = ("email", "phone", "whatsapp")


def not_after_this_year(year: int) -> None:
    # Read per request: a bound fixed at import refuses the new year's births until a restart.
    this_year = today().year
    if year > this_year:
        raise ValidationError(f"Must not be after {this_year}.")


class PatientSchema(Schema):
    first_name = Text(required=True, max_length=100, single_line=True)
    last_name = Text(required=True, max_length=100, single_line=True)
    email = Email(required=True)
    phone = fields.String(allow_none=True, metadata={"maxLength": 40, "example": "+1 415 555 0100"})
    country = Country(required=True)
    language = Language(allow_none=True)
    birth_year = fields.Integer(
        allow_none=True, strict=True,
        validate=[validate.Range(min=1900), not_after_this_year],
        metadata={"description": "From 1900 to the current year (UTC), both included.",
                  "example": 1961},
    )

    @validates_schema(skip_on_field_errors=False)
    def check_phone(self, data, **kwargs):
        phone = data.get("phone")
        if phone:
            try:
                data["phone"] = parse_phone(phone, data.get("country"))
            except ValidationError as error:
                raise ValidationError(error.messages, field_name="phone") from None


class BudgetSchema(Schema):
    amount = Amount(required=True, places=2, minimum="0", maximum="10000000000")
    currency = Currency(required=True)


class TravelWindowSchema(Schema):
    earliest = fields.Date(allow_none=True)
    latest = fields.Date(allow_none=True)

    @validates_schema(skip_on_field_errors=False)
    def check_order(self, data, **kwargs):
        earliest, latest = data.get("earliest"), data.get("latest")
        if latest is not None and latest < today():
            raise ValidationError("The travel window has already ended.", field_name="latest")
        if earliest is not None and latest is not None and latest < earliest:
            raise ValidationError("Ends before it starts.", field_name="latest")


class ConsentSchema(Schema):
    data_processing = JsonBoolean(required=True)
    share_with_clinics = JsonBoolean(load_default=False)
    marketing = JsonBoolean(load_default=False)

    @validates("data_processing")
    def must_consent(self, value, data_key):
        if value is not True:
            raise ValidationError("Consent to data processing is required.")


class SourceSchema(Schema):
    utm_source = Text(allow_none=True, max_length=200)
    utm_medium = Text(allow_none=True, max_length=200)
    utm_campaign = Text(allow_none=True, max_length=200)
    utm_term = Text(allow_none=True, max_length=200)
    utm_content = Text(allow_none=True, max_length=200)
    landing_page = Text(allow_none=True, max_length=500)
    referrer = Text(allow_none=True, max_length=500)


class InquirySchema(Schema):
    patient = fields.Nested(PatientSchema, required=True)
    treatment = Text(required=True, max_length=100)
    condition = Text(required=True, min_length=20, max_length=5000)
    has_imaging = JsonBoolean(allow_none=True)
    destinations = fields.List(
        Country(), allow_none=True, validate=validate.Length(max=5, error="At most 5 destinations.")
    )
    budget = fields.Nested(BudgetSchema, allow_none=True)
    travel_window = fields.Nested(TravelWindowSchema, allow_none=True)
    contact_preference = fields.String(allow_none=True,
                                       validate=validate.OneOf(CONTACT_PREFERENCES))
    consent = fields.Nested(ConsentSchema, required=True)
    source = fields.Nested(SourceSchema, allow_none=True)
    website = fields.String(allow_none=True, metadata={"description": "Leave empty."})

    # Required objects whose absence is answered like an empty object's, naming the required
    # fields inside (`patient.email`, `consent.data_processing`) besides the object itself.
    REQUIRED_OBJECTS = ("patient", "consent")

    @pre_load
    def name_required_inner_fields(self, data, **kwargs):
        if isinstance(data, dict):
            data = {**{name: {} for name in self.REQUIRED_OBJECTS}, **data}
        return data

    def handle_error(self, error, data, **kwargs):
        if isinstance(data, dict) and isinstance(error.messages, dict):
            for name in self.REQUIRED_OBJECTS:
                inner = error.messages.get(name)
                if name not in data and isinstance(inner, dict):
                    inner.setdefault("_schema", []).insert(0, "Missing data for required field.")

    @validates("treatment")
    def known_treatment(self, value, data_key):
        if not is_active_treatment(value):
            raise ValidationError(f"Unknown or inactive treatment {value!r}.")

    @post_load
    def tidy(self, data, **kwargs):
        # One row per destination: repeats in the form mean the same country.
        data["destinations"] = list(dict.fromkeys(data.get("destinations") or []))
        return data


def contract_example() -> dict:
    """The inquiry of CONTRACT §3, for the document; its travel window is moved to next
    year, so that the example stays one the service accepts."""
    year = today().year + 1
    return {
        "patient": {"first_name": "Ana", "last_name": "Ruiz", "email": "ana@example.org",
                    "phone": "+1 415 555 0100", "country": "US", "language": "es",
                    "birth_year": 1961},
        "treatment": "stem-cell-spine-arthritis",
        "condition": "Facet joint arthritis L4-L5 confirmed by X-ray, pain for 3 years ...",
        "has_imaging": True,
        "destinations": ["MX", "PA"],
        "budget": {"amount": 12000, "currency": "USD"},
        "travel_window": {"earliest": f"{year}-02-01", "latest": f"{year}-04-30"},
        "contact_preference": "email",
        "consent": {"data_processing": True, "share_with_clinics": True, "marketing": False},
        "source": {"utm_source": "google", "utm_campaign": "spine",
                   "landing_page": "/stem-cell-spine"},
        "website": "",
    }


class IdempotencyHeaderSchema(Schema):
    key = Text(data_key="Idempotency-Key", min_length=1, max_length=MAX_KEY_LENGTH, metadata={
        "description": "A repeat with the same key and body within 24 h answers the first "
                       "answer again and creates nothing; the same key with another body "
                       "answers 422."})


class InquiryAcceptedSchema(Schema):
    reference = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": [LeadStatus.RECEIVED.value]})
    status_url = fields.String(required=True)


class PublicQuoteSchema(Schema):
    # A Float: Flask's JSON provider writes a Decimal as a string, not as the number documented.
    amount = fields.Float()
    currency = fields.String()
    includes = fields.List(fields.String())
    valid_until = fields.Date(allow_none=True)
    notes = fields.String(allow_none=True)
    created_at = fields.DateTime()


class PublicClinicSchema(Schema):
    name = fields.String()
    city = fields.String()
    country = fields.String()


class PublicReferralSchema(Schema):
    clinic = fields.Nested(PublicClinicSchema)
    status = fields.String()
    quotes = fields.List(fields.Nested(PublicQuoteSchema))


class PublicTreatmentRefSchema(Schema):
    slug = fields.String()
    name = fields.String()


class InquiryStatusSchema(Schema):
    reference = fields.String()
    status = fields.String()
    treatment = fields.Nested(PublicTreatmentRefSchema)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    referrals = fields.List(fields.Nested(PublicReferralSchema))


class InquiryTokenQuerySchema(Schema):
    token = fields.String(load_default="")


class AttachmentUploadSchema(Schema):
    file = Upload(required=True, metadata={"description": "PDF, JPEG, PNG or DICOM, up to 10 MB"})


class AttachmentSchema(Schema):
    id = fields.Integer()
    filename = fields.String()
    size = fields.Integer()
    content_type = fields.String()
