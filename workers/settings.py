"""The one place Celery is configured, for the workers and for the API's publisher alike."""

from datetime import timedelta

OUTBOX_RELAY_EVERY = timedelta(seconds=2)


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
        "worker_prefetch_multiplier": 1,
        "task_time_limit": 120,
        "task_soft_time_limit": 90,
        # Redis redelivers an unacknowledged task after this long; it must outlast the time
        # limit. What a dead worker held is picked up sooner by route_stranded_leads and
        # resend_stuck_mail.
        "broker_transport_options": {"visibility_timeout": 300},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "relay-outbox": {"task": "relay_outbox", "schedule": OUTBOX_RELAY_EVERY},
            "expire-referrals": {"task": "expire_referrals", "schedule": timedelta(minutes=5)},
            "resend-stuck-mail": {"task": "resend_stuck_mail", "schedule": timedelta(seconds=30)},
            "route-stranded-leads": {
                "task": "route_stranded_leads", "schedule": timedelta(seconds=15)},
            "forget-idempotency-keys": {
                "task": "forget_idempotency_keys", "schedule": timedelta(hours=1)},
        },
    }
