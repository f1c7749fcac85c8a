"""Every table, gathered: importing this module registers them all with the metadata (the app
factory and the migrations do). Domain code imports its models from their own package."""

from leads.accounts.models import ClinicApiKey, StaffToken, User
from leads.attachments.models import Attachment
from leads.catalogue.models import Accreditation, Clinic, ClinicTreatment, CurrencyRate, Treatment
from leads.intake.models import IdempotencyRecord
from leads.messaging.models import EmailMessage, OutboxMessage, ReviewAlert, ReviewAlertSpell
from leads.pipeline.models import Lead, LeadDestination, Note, Quote, Referral, TimelineEvent
from leads.privacy.models import LeadSearchTerm
from leads.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

__all__ = [
    "Accreditation", "Attachment", "Clinic", "ClinicApiKey", "ClinicTreatment",
    "CurrencyRate", "EmailMessage", "IdempotencyRecord", "Lead", "LeadDestination",
    "LeadSearchTerm", "Note", "OutboxMessage", "Quote", "Referral", "ReviewAlert",
    "ReviewAlertSpell", "StaffToken", "TimelineEvent", "Treatment", "User", "WebhookAttempt",
    "WebhookEndpoint", "WebhookMessage",
]
