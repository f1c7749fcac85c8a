"""The routing jobs (CONTRACT §6): a new lead matched to clinics, leads whose routing was lost
routed again, referrals with no answer in time expired."""

from datetime import timedelta

from celery import shared_task
from celery.utils.log import get_task_logger

from leads.core.database import db
from leads.core.jobs import RETRY_POLICY, Job
from leads.messaging.tasks import publish, relay_pending
from leads.routing import operations as routing

log = get_task_logger(__name__)
STRANDED_AFTER = timedelta(seconds=30)


@shared_task(name=Job.PROCESS_LEAD, acks_late=True, autoretry_for=(Exception,), **RETRY_POLICY)
def process_lead(lead_id: int) -> None:
    try:
        if routing.process_lead(lead_id):
            # Routing queued mail in the outbox: relay it here and now, rather than at the
            # next beat or through another task.
            relay_pending()
    finally:
        db.session.remove()


@shared_task(name=Job.ROUTE_STRANDED_LEADS, acks_late=True)
def route_stranded_leads() -> int:
    stranded = routing.stranded_leads(older_than=STRANDED_AFTER)
    for lead_id in stranded:
        publish(Job.PROCESS_LEAD, {"lead_id": lead_id})
    if stranded:
        log.warning("routing %d stranded leads again", len(stranded))
    return len(stranded)


@shared_task(name=Job.EXPIRE_REFERRALS, acks_late=True)
def expire_referrals() -> int:
    return routing.expire_overdue_referrals()
