"""The outbox and mail jobs (CONTRACT §7): thin, idempotent wrappers around the operations."""

from datetime import timedelta

from celery import current_app as celery_app
from celery import shared_task
from celery.utils.log import get_task_logger
from flask import current_app
from sqlalchemy.exc import OperationalError

from leads.core.database import db
from leads.core.jobs import RETRY_POLICY, Job
from leads.messaging import mail, outbox, review_alerts

log = get_task_logger(__name__)
# Mail left `sending` this long was cut short (a worker died mid-send): it is due again.
STUCK_AFTER = timedelta(seconds=30)


def publish(job: str, payload: dict) -> None:
    celery_app.send_task(job, kwargs=payload)


def relay_pending() -> int:
    return outbox.relay(publish, merges={Job.SEND_EMAILS: mail.SEND_BATCH})


@shared_task(name=Job.RELAY_OUTBOX, acks_late=True)
def relay_outbox() -> int:
    relayed = relay_pending()
    if relayed:
        log.info("relayed %d outbox messages", relayed)
    return relayed


@shared_task(name=Job.SEND_EMAILS, acks_late=True, autoretry_for=(OperationalError,),
             **RETRY_POLICY)
def send_emails(message_ids: list[int]) -> int:
    """Sends what is due of these messages; a retry skips what was sent. What the relay does
    not take is recorded per message (failed, or pending with a backoff) and retried, when
    it may be, by `resend_stuck_mail`; only a database that is down retries the task."""
    smtp = mail.SmtpSettings.from_config(current_app.config)
    try:
        return mail.deliver(message_ids, smtp)
    finally:
        db.session.remove()


@shared_task(name=Job.RESEND_STUCK_MAIL, acks_late=True)
def resend_stuck_mail() -> int:
    """Sends again what is due: mail whose send was cut short, or waited out its backoff."""
    stuck = mail.stuck_messages(older_than=STUCK_AFTER)
    size = mail.SEND_BATCH.size
    for start in range(0, len(stuck), size):
        publish(Job.SEND_EMAILS, {mail.SEND_BATCH.key: stuck[start:start + size]})
    return len(stuck)


@shared_task(name=Job.SEND_REVIEW_DIGESTS, acks_late=True)
def send_review_digests() -> int:
    """Mails the review alerts gathered for each person whose spell is over, one digest
    each; a run that fails leaves them for the next (every few seconds)."""
    try:
        mailed = review_alerts.mail_due_digests()
        if mailed:
            relay_pending()  # out now, not at the next relay beat
    finally:
        db.session.remove()
    return mailed
