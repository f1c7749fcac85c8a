"""Liveness, readiness and metrics for the operator (CONTRACT §8)."""

import os
import time

import redis
from flask import Blueprint, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import text

from leads.errors import problem
from leads.extensions import db

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
def healthz():
    return {"status": "ok"}


@blp.get("/readyz")
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


@blp.get("/metrics")
def metrics():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        payload = generate_latest(registry)
    else:
        payload = generate_latest()
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
