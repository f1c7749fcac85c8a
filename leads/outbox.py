"""The transactional outbox: work is written beside the change that needs it, then relayed
to the broker. Delivery is at least once; every task is idempotent, so once in effect."""

import logging
import os
import threading
from collections.abc import Callable

from celery import Celery
from flask import Flask, current_app
from sqlalchemy import select

from leads.extensions import db
from leads.models import OutboxMessage
from leads.models.types import utcnow
from workers.settings import celery_settings

log = logging.getLogger(__name__)
RELAY_TASK = "relay_outbox"


def enqueue(task: str, **payload) -> None:
    """Stage a task in the caller's transaction."""
    db.session.add(OutboxMessage(task=task, payload=payload))


def relay(publish: Callable[[str, dict], None], batch: int = 500) -> int:
    """Publish pending rows and mark them dispatched; returns how many.

    Rows are claimed with FOR UPDATE SKIP LOCKED (PostgreSQL), so several relays never
    publish the same row at once. A publish that fails leaves its row for the next run.
    """
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.dispatched_at.is_(None), OutboxMessage.available_at <= utcnow())
        .order_by(OutboxMessage.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    done = 0
    try:
        for row in rows:
            row.attempts += 1
            publish(row.task, row.payload)
            row.dispatched_at = utcnow()
            done += 1
    finally:
        db.session.commit()
    return done


def init_publisher(app: Flask) -> None:
    """A broker client for the API, used only to nudge the relay."""
    publisher = Celery("leads-api", set_as_current=False)
    publisher.conf.update(celery_settings(app.config))
    # A nudge must never hold a request: fail fast when Redis is away.
    publisher.conf.broker_transport_options = {
        **publisher.conf.broker_transport_options,
        "socket_connect_timeout": 0.5, "socket_timeout": 0.5,
    }
    publisher.conf.broker_connection_timeout = 1
    publisher.conf.broker_connection_retry = False
    publisher.conf.broker_connection_max_retries = 0
    app.extensions["outbox_publisher"] = publisher


class Nudger:
    """Sends relay nudges from one background thread per process. A request only sets a
    flag; nudges asked for while one is on its way (or stuck on a Redis that does not
    answer) fold into the next."""

    def __init__(self):
        self._wanted = threading.Event()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = None
        self._publisher: Celery | None = None

    def nudge(self, publisher: Celery) -> None:
        self._publisher = publisher
        if self._thread is None or self._pid != os.getpid():  # gunicorn forks after import
            with self._start:
                if self._thread is None or self._pid != os.getpid():
                    self._pid = os.getpid()
                    self._thread = threading.Thread(target=self._run, name="outbox-nudge",
                                                    daemon=True)
                    self._thread.start()
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                self._publisher.send_task(RELAY_TASK, retry=False)
            except Exception as error:  # the beat relay picks the work up anyway
                log.warning("outbox nudge failed (%s); the periodic relay will pick the work "
                            "up", type(error).__name__)


_nudger = Nudger()


def nudge_relay() -> None:
    """Best effort: ask a worker to relay now rather than at the next beat; never waits."""
    _nudger.nudge(current_app.extensions["outbox_publisher"])
