"""Webhook endpoints and their delivery attempts as the API reads and shows them."""

from marshmallow import Schema, ValidationError, fields, validate

from leads.core.paging import page_schema
from leads.webhooks.events import WEBHOOK_EVENTS

URL_LENGTH = 2000


def known_events(events: list[str]) -> None:
    """Unknown events are named under `events` itself, with the events there are."""
    unknown = [event for event in events if event not in WEBHOOK_EVENTS]
    if unknown:
        raise ValidationError(f"Unknown events: {', '.join(map(repr, unknown))}; known: "
                              f"{', '.join(WEBHOOK_EVENTS)}.")


class WebhookInSchema(Schema):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False,
                     validate=validate.Length(max=URL_LENGTH),
                     metadata={"description": "https, on a public address (CONTRACT §5)."})
    events = fields.List(fields.String(validate=validate.Length(max=100),
                                       metadata={"enum": list(WEBHOOK_EVENTS)}), required=True,
                         validate=[validate.Length(min=1, max=len(WEBHOOK_EVENTS) * 4),
                                   known_events])


class WebhookSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())
    active = fields.Boolean()
    disabled_at = fields.DateTime(allow_none=True)
    disabled_reason = fields.String(allow_none=True)
    previous_secret_expires_at = fields.DateTime(
        attribute="previous_secret_until", allow_none=True,
        metadata={"description": "Until then the secret before the last rotation signs too."})
    created_at = fields.DateTime()


class WebhookSecretSchema(WebhookSchema):
    """The endpoint with its signing secret: answered when it is made, and never again."""

    secret = fields.String(metadata={"description": "Shown this once; kept encrypted."})


class AttemptSchema(Schema):
    id = fields.Integer()
    event = fields.Function(lambda attempt: attempt.message.event, metadata={"type": "string"})
    webhook_id = fields.Function(lambda attempt: attempt.message.webhook_id,
                                 metadata={"type": "string"})
    referral_id = fields.Function(lambda attempt: attempt.message.referral_id,
                                  metadata={"type": "integer"})
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    succeeded = fields.Boolean()
    at = fields.DateTime()


class AdminWebhookSchema(WebhookSchema):
    clinic_id = fields.Integer()
    recent_failures = fields.List(fields.Nested(AttemptSchema))


WebhookPageSchema = page_schema(WebhookSchema, "WebhookPage")
AttemptPageSchema = page_schema(AttemptSchema, "WebhookAttemptPage")
AdminWebhookPageSchema = page_schema(AdminWebhookSchema, "AdminWebhookPage")
