"""Liveness, readiness and metrics for the operator (CONTRACT §8)."""

import logging
import os
import time

import redis
from flask import Blueprint, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from leads.core.database import db
from leads.messaging.models import EmailMessage, OutboxMessage
from leads.pipeline.models import Lead
from leads.pipeline.states import MAIL_UNSENT, LeadStatus, MessageStatus
from leads.web.guards import Audience, allow
from leads.web.problems import problem

log = logging.getLogger(__name__)
blp = Blueprint("operations", __name__)

REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["method", "endpoint", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds", "Time to answer an HTTP request", ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def database_answers() -> str | None:
    try:
        db.session.execute(text("SELECT 1"))
        return None
    except Exception as error:  # any failure means "not ready"; say which
        db.session.rollback()
        return type(error).__name__


def redis_answers() -> str | None:
    client = redis.Redis.from_url(
        current_app.config["REDIS_URL"], socket_connect_timeout=1, socket_timeout=1
    )
    try:
        client.ping()
        return None
    except redis.RedisError as error:
        return type(error).__name__
    finally:
        client.close()


@blp.get("/healthz")
@allow(Audience.ANYONE)
def healthz():
    return {"status": "ok"}


@blp.get("/readyz")
@allow(Audience.ANYONE)
def readyz():
    failures = {
        name: error
        for name, error in (("database", database_answers()), ("redis", redis_answers()))
        if error
    }
    checks = {name: failures.get(name, "ok") for name in ("database", "redis")}
    if failures:
        return problem(503, "Service Unavailable", f"Not answering: {', '.join(failures)}.",
                       checks=checks)
    return {"status": "ready", "checks": checks}


def _count(model, condition):
    return select(func.count()).select_from(model).where(condition).scalar_subquery()


# What waits in the database, as gauges; each count is served by an index.
BACKLOG = {
    "leads_outbox_pending": ("Outbox rows not yet relayed to the broker",
                             _count(OutboxMessage, OutboxMessage.dispatched_at.is_(None))),
    "leads_mail_pending": ("E-mails not yet sent (pending or sending)",
                           _count(EmailMessage, EmailMessage.status.in_(MAIL_UNSENT))),
    "leads_mail_failed": ("E-mails the relay refused for good",
                          _count(EmailMessage, EmailMessage.status == MessageStatus.FAILED)),
    "leads_needs_review": ("Leads waiting for a coordinator",
                           _count(Lead, Lead.status == LeadStatus.NEEDS_REVIEW)),
}


class Backlog:
    """Read at scrape time, in one round trip, rather than kept by every process: the
    database is the one place that knows, whichever process changed it."""

    def collect(self):
        try:
            counts = db.session.execute(select(*(query for _, query in BACKLOG.values()))).one()
        except SQLAlchemyError as error:  # the request metrics are still worth answering
            db.session.rollback()
            log.warning("backlog gauges left out: %s", type(error).__name__)
            return
        for (name, (documentation, _)), value in zip(BACKLOG.items(), counts, strict=True):
            yield GaugeMetricFamily(name, documentation, value=value)


_BACKLOG_REGISTRY = CollectorRegistry(auto_describe=False)
_BACKLOG_REGISTRY.register(Backlog())


@blp.get("/metrics")
@allow(Audience.ANYONE)
def metrics():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every gunicorn worker's counters, from the files they all write (see gunicorn.conf.py).
        requests = CollectorRegistry()
        multiprocess.MultiProcessCollector(requests)
    else:
        requests = REGISTRY
    payload = generate_latest(requests) + generate_latest(_BACKLOG_REGISTRY)
    return Response(payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


def start_timer():
    g.request_started = time.perf_counter()


def observe(response):
    started = g.pop("request_started", None)
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    if started is not None:
        LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - started)
    REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
    return response
