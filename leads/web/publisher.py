"""The API's line to the workers: a nudge that asks them to relay the outbox now, rather
than at the next beat. The work itself is never sent from here; it waits in the outbox."""

import logging
import os
import threading
import time

from celery import Celery
from flask import Flask, current_app

from leads.core.jobs import Job

log = logging.getLogger(__name__)


def init_publisher(app: Flask) -> None:
    """A broker client for the API, used only to nudge the relay."""
    publisher = Celery("leads-api", set_as_current=False)
    publisher.conf.update(
        broker_url=app.config["REDIS_URL"], task_serializer="json",
        # A nudge must never hold a request: fail fast when Redis is away.
        broker_transport_options={"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        broker_connection_timeout=1, broker_connection_retry=False,
        broker_connection_max_retries=0,
    )
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
                self._publisher.send_task(Job.RELAY_OUTBOX, retry=False)
            except Exception as error:  # the beat relay picks the work up anyway
                log.warning("outbox nudge failed (%s); the periodic relay will pick the work "
                            "up", type(error).__name__)
            time.sleep(self.FOLD)


_nudger = Nudger()


def nudge_relay() -> None:
    """Best effort: ask a worker to relay now rather than at the next beat; never waits."""
    _nudger.nudge(current_app.extensions["outbox_publisher"])
