"""The one place Celery is configured, for the workers and for the API's publisher alike."""

from datetime import timedelta

from leads.core.jobs import Job

# The modules that declare tasks, one per domain that has background work.
TASK_MODULES = ["leads.messaging.tasks", "leads.routing.tasks", "leads.intake.tasks",
                "leads.privacy.tasks", "leads.webhooks.tasks"]
BEAT_SCHEDULE = {
    Job.RELAY_OUTBOX: timedelta(seconds=2),
    Job.EXPIRE_REFERRALS: timedelta(minutes=5),
    Job.RESEND_STUCK_MAIL: timedelta(seconds=30),
    # A digest is due when its person's spell is over (REVIEW_ALERT_DIGEST_MINUTES); it goes
    # out within this much of then.
    Job.SEND_REVIEW_DIGESTS: timedelta(seconds=5),
    Job.ROUTE_STRANDED_LEADS: timedelta(seconds=15),
    Job.FORGET_IDEMPOTENCY_KEYS: timedelta(hours=1),
    Job.ERASE_EXPIRED_LEADS: timedelta(hours=1),
    # Often, so the first retry of a webhook comes well within a minute.
    Job.SEND_DUE_WEBHOOKS: timedelta(seconds=2),
}


def celery_settings(flask_config) -> dict:
    redis_url = flask_config["REDIS_URL"]
    return {
        "broker_url": redis_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        # A task is acknowledged after it ran, and given back if its worker dies mid-way;
        # every task is idempotent, so running one twice is safe and losing one is not.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Tasks take milliseconds: each pool process has the next few at hand rather than
        # asking the broker after each one (a dead worker's few come back by the sweeps).
        "worker_prefetch_multiplier": 4,
        "task_time_limit": 120,
        "task_soft_time_limit": 90,
        # Redis redelivers an unacknowledged task after this long; it must outlast the time
        # limit. What a dead worker held is picked up sooner by route_stranded_leads and
        # resend_stuck_mail.
        "broker_transport_options": {"visibility_timeout": 300},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            job.replace("_", "-"): {"task": job, "schedule": every}
            for job, every in BEAT_SCHEDULE.items()
        },
    }
