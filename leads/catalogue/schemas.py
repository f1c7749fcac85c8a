"""Treatments, clinics and accreditations as the API reads and shows them."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

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
from leads.core.paging import PageQuerySchema, page_schema

SLUG = validate.Regexp(r"^[a-z0-9]+(-[a-z0-9]+)*$",
                       error="Use lower-case letters, digits and single hyphens.")
PRICE = {"places": 2, "minimum": "0", "maximum": "1000000000"}


class TreatmentSchema(Schema):
    slug = fields.String(required=True)
    name = fields.String(required=True)
    specialty = fields.String(required=True)
    active = fields.Boolean()


class TreatmentInSchema(Schema):
    slug = fields.String(required=True, validate=[validate.Length(min=2, max=100), SLUG])
    name = Text(required=True, max_length=200, single_line=True)
    specialty = fields.String(required=True, validate=[validate.Length(min=2, max=100), SLUG])
    active = JsonBoolean(load_default=True)


class TreatmentPatchSchema(Schema):
    name = Text(max_length=200, single_line=True)
    specialty = fields.String(validate=[validate.Length(min=2, max=100), SLUG])
    active = JsonBoolean()


class OfferSchema(Schema):
    slug = fields.String(required=True, validate=validate.Length(min=1, max=100))
    price_min = Amount(required=True, **PRICE)
    price_max = Amount(required=True, **PRICE)
    currency = Currency(required=True)

    @validates_schema(skip_on_field_errors=False)
    def check_range(self, data, **kwargs):
        low, high = data.get("price_min"), data.get("price_max")
        if low is not None and high is not None and high < low:
            raise ValidationError("Must not be below price_min.", field_name="price_max")


def _distinct_slugs(offers: list[dict]) -> None:
    seen = set()
    errors = {}
    for position, offer in enumerate(offers):
        slug = offer.get("slug")  # absent when the offer had errors of its own
        if slug is not None and slug in seen:
            errors[position] = {"slug": ["Listed twice."]}
        seen.add(slug)
    if errors:
        raise ValidationError(errors, field_name="treatments")


class ClinicPatchSchema(Schema):
    # A clinic keeps a name and a city: a patch may change them, never blank them.
    name = Text(min_length=1, max_length=200, single_line=True)
    city = Text(min_length=1, max_length=100, single_line=True)
    country = Country()
    email = Email()
    phone = fields.String(allow_none=True, validate=validate.Length(max=40))
    website = fields.Url(allow_none=True, schemes={"http", "https"},
                         validate=validate.Length(max=500))
    languages = fields.List(Language(), validate=validate.Length(max=20))
    active = JsonBoolean()
    monthly_referral_cap = fields.Integer(strict=True, validate=validate.Range(min=0, max=100000))
    treatments = fields.List(fields.Nested(OfferSchema), validate=validate.Length(max=200))

    @validates_schema(skip_on_field_errors=False)
    def check_offers_and_phone(self, data, **kwargs):
        if data.get("treatments"):
            _distinct_slugs(data["treatments"])
        phone = data.get("phone")
        # Without a country in the body, a local number is read for the clinic's country
        # by the view, which knows it.
        if phone and (phone.strip().startswith("+") or data.get("country")):
            try:
                data["phone"] = parse_phone(phone, data.get("country"))
            except ValidationError as error:
                raise ValidationError(error.messages, field_name="phone") from None


class ClinicInSchema(ClinicPatchSchema):
    name = Text(required=True, max_length=200, single_line=True)
    city = Text(required=True, max_length=100, single_line=True)
    country = Country(required=True)
    email = Email(required=True)
    languages = fields.List(Language(), load_default=list, validate=validate.Length(max=20))
    active = JsonBoolean(load_default=True)
    monthly_referral_cap = fields.Integer(strict=True, load_default=50,
                                          validate=validate.Range(min=0, max=100000))
    treatments = fields.List(fields.Nested(OfferSchema), required=True,
                             validate=validate.Length(min=1, max=200))


class OfferOutSchema(Schema):
    slug = fields.Function(lambda offer: offer.treatment.slug, metadata={"type": "string"})
    price_min = fields.Float()
    price_max = fields.Float()
    currency = fields.String()


class AccreditationInSchema(Schema):
    body = Text(required=True, max_length=100, single_line=True, metadata={"example": "JCI"})
    reference = Text(allow_none=True, max_length=200, single_line=True)
    valid_from = fields.Date(allow_none=True)
    valid_until = fields.Date(allow_none=True)

    @validates_schema(skip_on_field_errors=False)
    def check_dates(self, data, **kwargs):
        start, end = data.get("valid_from"), data.get("valid_until")
        if start is not None and end is not None and end < start:
            raise ValidationError("Ends before it starts.", field_name="valid_until")


class AccreditationPatchSchema(Schema):
    verified = JsonBoolean(required=True)


class AccreditationSchema(Schema):
    id = fields.Integer()
    body = fields.String()
    reference = fields.String(allow_none=True)
    valid_from = fields.Date(allow_none=True)
    valid_until = fields.Date(allow_none=True)
    verified = fields.Boolean()
    verified_by = fields.Integer(attribute="verified_by_id", allow_none=True)
    verified_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class ClinicSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    city = fields.String()
    country = fields.String()
    email = fields.String()
    phone = fields.String(allow_none=True)
    website = fields.String(allow_none=True)
    languages = fields.List(fields.String())
    active = fields.Boolean()
    monthly_referral_cap = fields.Integer()
    treatments = fields.List(fields.Nested(OfferOutSchema), attribute="offers")
    accreditations = fields.List(fields.Nested(AccreditationSchema))
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


ClinicPageSchema = page_schema(ClinicSchema, "ClinicPage")


class ClinicListQuerySchema(PageQuerySchema):
    country = Country()
    treatment = fields.String()
    active = fields.Boolean()


class ApiKeySchema(Schema):
    id = fields.Integer()
    prefix = fields.String()
    key = fields.String(metadata={"description": "Shown this once; only its hash is kept."})
    created_at = fields.DateTime()


class RateSchema(Schema):
    currency = fields.String()
    usd_per_unit = fields.Float(metadata={"description": "US dollars one unit buys"})
    note = fields.String(allow_none=True)
    updated_at = fields.DateTime()


class RateInSchema(Schema):
    usd_per_unit = Amount(required=True, places=8, minimum="0.00000001", maximum="1000000")
    note = Text(allow_none=True, max_length=500)
