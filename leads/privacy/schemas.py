"""A person's data, asked for or erased by e-mail address (CONTRACT §4 *People*)."""

from marshmallow import Schema, fields

from leads.core.fields import Email, Text
from leads.pipeline.schemas import LeadDetailSchema, QuoteSchema
from leads.privacy.people import DEFAULT_REASON, messages_of, quotes_of


class PersonQuerySchema(Schema):
    email = Email(required=True)


class ErasureSchema(PersonQuerySchema):
    reason = Text(load_default=None, allow_none=True, max_length=1000,
                  metadata={"description": f"Why; by default {DEFAULT_REASON!r}"})


class ErasedSchema(Schema):
    leads = fields.Integer()
    attachments = fields.Integer()


class MessageSchema(Schema):
    kind = fields.String()
    sent_at = fields.DateTime(allow_none=True)
    subject = fields.String()


class HeldQuoteSchema(QuoteSchema):
    referral_id = fields.Integer()


class HeldLeadSchema(LeadDetailSchema):
    messages = fields.Function(lambda lead: MessageSchema(many=True).dump(messages_of(lead)),
                               metadata={"type": "array", "items": {"type": "object"}})
    quotes = fields.Function(lambda lead: HeldQuoteSchema(many=True).dump(quotes_of(lead)),
                             metadata={"type": "array", "items": {"type": "object"}})


class PersonExportSchema(Schema):
    email = fields.String()
    leads = fields.List(fields.Nested(HeldLeadSchema))
