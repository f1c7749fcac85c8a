"""Intake's housekeeping: Idempotency-Key answers are kept for a day, then forgotten."""

from celery import shared_task

from leads.core.database import db
from leads.core.jobs import Job
from leads.intake import idempotency


@shared_task(name=Job.FORGET_IDEMPOTENCY_KEYS, acks_late=True)
def forget_idempotency_keys() -> int:
    forgotten = idempotency.forget_expired()
    db.session.commit()
    return forgotten
