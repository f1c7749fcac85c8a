"""Celery tasks: thin, idempotent wrappers around the domain functions in `leads`."""

import smtplib
from datetime import timedelta

from celery.utils.log import get_task_logger
from flask import current_app
from sqlalchemy.exc import OperationalError

from leads import idempotency, mail, outbox, routing
from leads.extensions import db
from workers.celery import app

log = get_task_logger(__name__)
STRANDED_AFTER = timedelta(seconds=30)
RETRY = {"retry_backoff": 2, "retry_backoff_max": 30, "retry_jitter": True, "max_retries": 30}


def publish(task: str, payload: dict) -> None:
    app.send_task(task, kwargs=payload)


def relay_pending() -> int:
    return outbox.relay(publish, merges={mail.SEND_TASK: mail.SEND_BATCH})


@app.task(name=outbox.RELAY_TASK)
def relay_outbox() -> int:
    relayed = relay_pending()
    if relayed:
        log.info("relayed %d outbox messages", relayed)
    return relayed


@app.task(name="process_lead", autoretry_for=(Exception,), **RETRY)
def process_lead(lead_id: int) -> None:
    try:
        routing.process_lead(lead_id)
        # Routing queued mail in the outbox: relay it here and now, rather than at the next
        # beat or through another task.
        relay_pending()
    finally:
        db.session.remove()


@app.task(name=mail.SEND_TASK, autoretry_for=(smtplib.SMTPException, OSError, OperationalError),
          **RETRY)
def send_emails(message_ids: list[int]) -> int:
    """Sends what is still unsent of these messages; a retry skips what was sent."""
    smtp = mail.SmtpSettings.from_config(current_app.config)
    try:
        return mail.deliver(message_ids, smtp)
    finally:
        db.session.remove()


@app.task(name="resend_stuck_mail")
def resend_stuck_mail() -> int:
    stuck = mail.stuck_messages(older_than=timedelta(seconds=30))
    size = mail.SEND_BATCH.size
    for start in range(0, len(stuck), size):
        publish(mail.SEND_TASK, {mail.SEND_BATCH.key: stuck[start:start + size]})
    return len(stuck)


@app.task(name="route_stranded_leads")
def route_stranded_leads() -> int:
    stranded = routing.stranded_leads(older_than=STRANDED_AFTER)
    for lead_id in stranded:
        publish("process_lead", {"lead_id": lead_id})
    if stranded:
        log.warning("routing %d stranded leads again", len(stranded))
    return len(stranded)


@app.task(name="expire_referrals")
def expire_referrals() -> int:
    return routing.expire_overdue_referrals()


@app.task(name="forget_idempotency_keys")
def forget_idempotency_keys() -> int:
    forgotten = idempotency.forget_expired()
    db.session.commit()
    return forgotten
