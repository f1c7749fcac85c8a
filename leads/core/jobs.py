"""The name of every background job, declared once: the tasks are registered under these
names, the outbox stages work by them and beat schedules them (workers/settings.py)."""

from enum import StrEnum


class Job(StrEnum):
    RELAY_OUTBOX = "relay_outbox"
    PROCESS_LEAD = "process_lead"
    SEND_EMAILS = "send_emails"
    RESEND_STUCK_MAIL = "resend_stuck_mail"
    SEND_REVIEW_DIGESTS = "send_review_digests"
    ROUTE_STRANDED_LEADS = "route_stranded_leads"
    EXPIRE_REFERRALS = "expire_referrals"
    FORGET_IDEMPOTENCY_KEYS = "forget_idempotency_keys"
    ERASE_EXPIRED_LEADS = "erase_expired_leads"
    SEND_DUE_WEBHOOKS = "send_due_webhooks"
    SEND_WEBHOOK = "send_webhook"


# How a job that met a passing failure is tried again: backoff with jitter, for a few minutes.
RETRY_POLICY = {"retry_backoff": 2, "retry_backoff_max": 30, "retry_jitter": True,
                "max_retries": 30}
