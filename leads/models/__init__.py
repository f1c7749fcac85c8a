"""All tables; importing this module registers them with the metadata."""

from leads.models.accounts import ROLES, ClinicApiKey, StaffToken, User
from leads.models.catalogue import Accreditation, Clinic, ClinicTreatment, CurrencyRate, Treatment
from leads.models.lead import (
    Attachment,
    Lead,
    LeadDestination,
    Note,
    Quote,
    Referral,
    TimelineEvent,
)
from leads.models.messaging import EmailMessage, IdempotencyRecord, OutboxMessage

__all__ = [
    "ROLES", "Accreditation", "Attachment", "Clinic", "ClinicApiKey", "ClinicTreatment",
    "CurrencyRate", "EmailMessage", "IdempotencyRecord", "Lead", "LeadDestination", "Note",
    "OutboxMessage", "Quote", "Referral", "StaffToken", "TimelineEvent", "Treatment", "User",
]
