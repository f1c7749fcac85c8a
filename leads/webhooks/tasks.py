"""The webhook jobs (CONTRACT §5): a sweep that claims what is due, and one send per message."""

from celery import current_app as celery_app
from celery import shared_task
from celery.utils.log import get_task_logger

from leads.core.database import db
from leads.core.jobs import Job
from leads.webhooks import delivery

log = get_task_logger(__name__)


@shared_task(name=Job.SEND_DUE_WEBHOOKS, acks_late=True)
def send_due_webhooks() -> int:
    try:
        claimed = delivery.claim_due()
    finally:
        db.session.remove()
    for message_id, claim in claimed:
        celery_app.send_task(Job.SEND_WEBHOOK, kwargs={"message_id": message_id, "claim": claim})
    return len(claimed)


@shared_task(name=Job.SEND_WEBHOOK, acks_late=True)
def send_webhook(message_id: int, claim: int) -> bool:
    """Idempotent by its claim: a repeat of a finished one does nothing, and a task lost with
    its worker is claimed again by the sweep once its lease is over."""
    try:
        return delivery.deliver(message_id, claim)
    finally:
        db.session.remove()
