"""The events a clinic's endpoint may subscribe to (CONTRACT §5), and the referral changes
that raise them."""

from enum import StrEnum

from leads.pipeline.states import ReferralStatus


class WebhookEvent(StrEnum):
    REFERRAL_CREATED = "referral.created"
    REFERRAL_CANCELLED = "referral.cancelled"
    REFERRAL_EXPIRED = "referral.expired"
    # The patient booked with this clinic: its referral became `booked` with the lead.
    LEAD_BOOKED = "lead.booked"


WEBHOOK_EVENTS = tuple(WebhookEvent)
# A referral entering one of these statuses raises the event; creating one raises
# REFERRAL_CREATED (leads/routing/operations.py).
EVENT_ON_REFERRAL_STATUS = {
    ReferralStatus.CANCELLED: WebhookEvent.REFERRAL_CANCELLED,
    ReferralStatus.EXPIRED: WebhookEvent.REFERRAL_EXPIRED,
    ReferralStatus.BOOKED: WebhookEvent.LEAD_BOOKED,
}
