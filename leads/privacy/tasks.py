"""The retention job (CONTRACT §4 People)."""

from celery import shared_task
from celery.utils.log import get_task_logger
from sqlalchemy.exc import OperationalError

from leads.core.clock import utcnow
from leads.core.database import db
from leads.core.jobs import RETRY_POLICY, Job
from leads.core.settings import settings
from leads.pipeline.timeline import SYSTEM
from leads.privacy import people

log = get_task_logger(__name__)


# A deadlock or a dropped connection is tried again soon rather than at the next hourly run.
@shared_task(name=Job.ERASE_EXPIRED_LEADS, acks_late=True, autoretry_for=(OperationalError,),
             **RETRY_POLICY)
def erase_expired_leads() -> int:
    """Leads closed, spam or completed for longer than RETENTION_DAYS are erased, with the
    system as actor."""
    try:
        erased = people.erase_expired(utcnow(), settings().retention_days, SYSTEM)
    finally:
        db.session.remove()
    if erased:
        log.info("erased %d leads past their retention", erased)
    return erased
