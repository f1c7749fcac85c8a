"""The routing jobs (CONTRACT §6): a new lead matched to clinics, leads whose routing was lost
routed again, referrals with no answer in time expired."""

from datetime import timedelta

from celery import current_app as celery_app
from celery import shared_task
from celery.utils.log import get_task_logger

from leads.core.database import db
from leads.core.jobs import RETRY_POLICY, Job
from leads.messaging.tasks import publish
from leads.routing import operations as routing

log = get_task_logger(__name__)
STRANDED_AFTER = timedelta(seconds=30)
# More tasks than this waiting in the broker is a backlog the workers are still working
# through (beat alone adds a few every couple of seconds).
BACKLOG = 10


@shared_task(name=Job.PROCESS_LEAD, acks_late=True, autoretry_for=(Exception,), **RETRY_POLICY)
def process_lead(lead_id: int) -> None:
    # The clinics' notifications this stages go out with the next relay beat (every 2 s),
    # gathered with other leads' into one send_emails task: relayed here, each lead's was
    # a relay and a task of its own, a third of a burst's work.
    try:
        routing.process_lead(lead_id)
    finally:
        db.session.remove()


def waiting_tasks() -> int:
    """Tasks waiting in the broker's queue, not counting those a worker holds."""
    with celery_app.connection_for_read() as connection:
        # Not `passive`: Redis drops an empty list's key, and a passive declaration of a
        # queue with no key is refused; declaring one creates nothing there.
        return connection.default_channel.queue_declare(
            queue=celery_app.conf.task_default_queue).message_count


@shared_task(name=Job.ROUTE_STRANDED_LEADS, acks_late=True)
def route_stranded_leads() -> int:
    # A lead still waiting behind a campaign's burst is queued, not stranded: its task is
    # there, and a copy would only lengthen the queue (thousands of them, in a burst of
    # 5,000). Once the queue is drained, a lead still `received` had its task lost.
    if waiting_tasks() > BACKLOG:
        return 0
    stranded = routing.stranded_leads(older_than=STRANDED_AFTER)
    for lead_id in stranded:
        publish(Job.PROCESS_LEAD, {"lead_id": lead_id})
    if stranded:
        log.warning("routing %d stranded leads again", len(stranded))
    return len(stranded)


@shared_task(name=Job.EXPIRE_REFERRALS, acks_late=True)
def expire_referrals() -> int:
    return routing.expire_overdue_referrals()
