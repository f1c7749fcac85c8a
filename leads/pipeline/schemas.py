"""Leads as coordinators see and change them (CONTRACT §4)."""

from collections.abc import Mapping

from marshmallow import Schema, ValidationError, fields, validate, validates

from leads.accounts.models import User
from leads.core.database import db
from leads.core.fields import Country, Instant, RowId, Text
from leads.core.paging import PageQuerySchema, page_schema
from leads.intake.schemas import AttachmentSchema, PublicClinicSchema, PublicQuoteSchema
from leads.pipeline.states import LEAD_STATUSES, PRIORITIES

# The patient's names, e-mail and condition are null once the lead is erased
# (leads/privacy/people.py).


class PatientOutSchema(Schema):
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    country = fields.String()
    language = fields.String(allow_none=True)
    birth_year = fields.Integer(allow_none=True)


class MoneySchema(Schema):
    amount = fields.Float()
    currency = fields.String()


class WindowSchema(Schema):
    earliest = fields.Date(allow_none=True)
    latest = fields.Date(allow_none=True)


class ConsentOutSchema(Schema):
    data_processing = fields.Boolean()
    share_with_clinics = fields.Boolean()
    marketing = fields.Boolean()


# One instance each, shared by every lead a page dumps: building a schema copies its fields,
# which cost more than the dump itself (a page of 50 leads built 150 of them).
PATIENT_OUT = PatientOutSchema()
MONEY = MoneySchema()
WINDOW = WindowSchema()
CONSENT_OUT = ConsentOutSchema()


class LeadSchema(Schema):
    id = fields.Integer()
    reference = fields.String()
    status = fields.String()
    priority = fields.String()
    tags = fields.List(fields.String())
    assigned_to = fields.Integer(attribute="assigned_to_id", allow_none=True)
    treatment = fields.Function(lambda lead: lead.treatment.slug, metadata={"type": "string"})
    patient = fields.Function(lambda lead: PATIENT_OUT.dump(lead),
                              metadata={"type": "object"})
    condition = fields.String(allow_none=True)
    has_imaging = fields.Boolean(allow_none=True)
    destinations = fields.List(fields.String())
    budget = fields.Function(
        lambda lead: MONEY.dump({"amount": lead.budget_amount,
                                 "currency": lead.budget_currency})
        if lead.budget_amount is not None else None, allow_none=True,
        metadata={"type": "object", "nullable": True})
    travel_window = fields.Function(
        lambda lead: WINDOW.dump({"earliest": lead.travel_earliest,
                                  "latest": lead.travel_latest})
        if lead.travel_earliest or lead.travel_latest else None, allow_none=True,
        metadata={"type": "object", "nullable": True})
    contact_preference = fields.String(allow_none=True)
    consent = fields.Function(lambda lead: CONSENT_OUT.dump({
        "data_processing": lead.consent_data_processing,
        "share_with_clinics": lead.consent_share_with_clinics,
        "marketing": lead.consent_marketing}), metadata={"type": "object"})
    source = fields.Dict()
    duplicate_of = fields.Integer(attribute="duplicate_of_id", allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


def listed_lead(lead: Mapping) -> dict:
    """A lead of the list (`leads.pipeline.queries.listed_leads`) as `LeadSchema` dumps it,
    built directly: the schema's field-by-field dump was a third of a page's time. The
    schema stays what the detail dumps and what the docs show; tests/test_leads_api.py holds
    the two to the same answer."""
    amount, earliest, latest = lead["budget_amount"], lead["travel_earliest"], lead["travel_latest"]
    return {
        "id": lead["id"], "reference": lead["reference"], "status": lead["status"],
        "priority": lead["priority"], "tags": lead["tags"], "assigned_to": lead["assigned_to_id"],
        "treatment": lead["treatment"],
        "patient": {name: lead[name] for name in PATIENT_OUT.fields},
        "condition": lead["condition"], "has_imaging": lead["has_imaging"],
        "destinations": lead["destinations"],
        "budget": None if amount is None else {"amount": float(amount),
                                               "currency": lead["budget_currency"]},
        "travel_window": {"earliest": earliest and earliest.isoformat(),
                          "latest": latest and latest.isoformat()}
        if earliest or latest else None,
        "contact_preference": lead["contact_preference"],
        "consent": {"data_processing": lead["consent_data_processing"],
                    "share_with_clinics": lead["consent_share_with_clinics"],
                    "marketing": lead["consent_marketing"]},
        "source": lead["source"], "duplicate_of": lead["duplicate_of_id"],
        "created_at": lead["created_at"].isoformat(), "updated_at": lead["updated_at"].isoformat(),
    }


class ReasonSchema(Schema):
    factor = fields.String()
    value = fields.Float()
    weight = fields.Float()
    note = fields.String()


class ClinicRefSchema(PublicClinicSchema):
    id = fields.Integer()


class QuoteSchema(PublicQuoteSchema):
    id = fields.Integer()


class ReferralSchema(Schema):
    id = fields.Integer()
    clinic = fields.Nested(ClinicRefSchema)
    status = fields.String()
    score = fields.Float()
    reasons = fields.List(fields.Nested(ReasonSchema))
    quotes = fields.List(fields.Nested(QuoteSchema))
    created_at = fields.DateTime()
    responded_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)


class EventSchema(Schema):
    at = fields.DateTime()
    actor = fields.String()
    kind = fields.String()
    data = fields.Dict()


class ListedAttachmentSchema(AttachmentSchema):
    created_at = fields.DateTime()


class LeadDetailSchema(LeadSchema):
    referrals = fields.List(fields.Nested(ReferralSchema))
    timeline = fields.List(fields.Nested(EventSchema))
    attachments = fields.List(fields.Nested(ListedAttachmentSchema))


LeadPageSchema = page_schema(LeadSchema, "LeadPage")


class LeadFilterSchema(Schema):
    status = fields.String(validate=validate.OneOf(LEAD_STATUSES))
    treatment = fields.String()
    country = Country()
    destination = Country()
    assigned_to = fields.String(metadata={"description": "`me`, `none` or a user id"})
    q = fields.String(validate=validate.Length(min=1, max=200))
    created_from = Instant()
    created_to = Instant()

    @validates("assigned_to")
    def assignee_is_me_none_or_an_id(self, assignee, data_key):
        # ASCII digits only ("²" is a digit to str.isdigit), and no id beyond 32 bits.
        if assignee in ("me", "none") or (
                assignee.isascii() and assignee.isdigit() and 0 < int(assignee) < 2**31):
            return
        raise ValidationError("Use `me`, `none` or a user id.")


class LeadListQuerySchema(PageQuerySchema, LeadFilterSchema):
    pass


class FunnelQuerySchema(Schema):
    created_from = Instant()
    created_to = Instant()


class LeadPatchSchema(Schema):
    assigned_to = RowId(allow_none=True)
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    tags = fields.List(Text(max_length=50), validate=validate.Length(max=20))

    @validates("assigned_to")
    def assignee_is_active_staff(self, user_id, data_key):
        user = None if user_id is None else db.session.get(User, user_id)
        if user_id is not None and (user is None or not user.active):
            raise ValidationError(f"No active staff user with id {user_id}.")


class TransitionSchema(Schema):
    to = fields.String(required=True, validate=validate.OneOf(LEAD_STATUSES))
    reason = Text(allow_none=True, max_length=1000)


class NoteInSchema(Schema):
    body = Text(required=True, max_length=10000)


class NoteSchema(Schema):
    id = fields.Integer()
    body = fields.String()
    author = fields.Integer(attribute="author_id")
    created_at = fields.DateTime()


class RerouteSchema(Schema):
    exclude_clinic_ids = fields.List(RowId(), load_default=list,
                                     validate=validate.Length(max=1000))


class UserSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    role = fields.String()


class ClinicFunnelSchema(Schema):
    clinic_id = fields.Integer()
    name = fields.String()
    referrals = fields.Integer()
    accepted = fields.Integer()
    acceptance_rate = fields.Float()
    median_hours_to_first_answer = fields.Float(allow_none=True)


class FunnelSchema(Schema):
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_treatment = fields.Dict(keys=fields.String(), values=fields.Integer())
    clinics = fields.List(fields.Nested(ClinicFunnelSchema))
