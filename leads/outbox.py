"""The transactional outbox: work is written beside the change that needs it, then relayed
to the broker. Delivery is at least once; every task is idempotent, so once in effect."""

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Merge:
    """Rows of one task whose payload is a single list under `key` are published up to
    `size` at a time as one task, their lists joined: one task for a burst's e-mails rather
    than one each."""

    key: str
    size: int


def relay(publish: Callable[[str, dict], None], merges: Mapping[str, Merge] | None = None,
          batch: int = 500) -> int:
    """Publish pending rows and mark them dispatched; returns how many rows.

    Rows are claimed with FOR UPDATE SKIP LOCKED (PostgreSQL), so several relays never
    publish the same row at once. A publish that fails leaves its rows for the next run.
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
        for task, payload, group in _publications(rows, merges or {}):
            for row in group:
                row.attempts += 1
            publish(task, payload)
            for row in group:
                row.dispatched_at = utcnow()
            done += len(group)
    finally:
        db.session.commit()
    return done


def _publications(rows: list[OutboxMessage], merges: Mapping[str, Merge]):
    """(task, payload, rows) to publish, in the order of each one's first row."""
    publications, filling = [], {}
    for row in rows:
        merge = merges.get(row.task)
        if merge is None:
            publications.append((row.task, row.payload, [row]))
            continue
        current = filling.get(row.task)
        if current is None or len(current[1][merge.key]) >= merge.size:
            current = filling[row.task] = (row.task, {merge.key: []}, [])
            publications.append(current)
        current[1][merge.key].extend(row.payload[merge.key])
        current[2].append(row)
    return publications


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
    answer), or within FOLD seconds after it, fold into the next: the first inquiry of a
    quiet spell is relayed at once, a burst's are relayed a few at a time rather than each
    with a task of its own."""

    FOLD = 0.25

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
            time.sleep(self.FOLD)


_nudger = Nudger()


def nudge_relay() -> None:
    """Best effort: ask a worker to relay now rather than at the next beat; never waits."""
    _nudger.nudge(current_app.extensions["outbox_publisher"])
