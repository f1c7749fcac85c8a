"""Intake against a real multi-worker gunicorn server."""

import json
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import func, select

from leads.intake.models import IdempotencyRecord
from leads.messaging.models import OutboxMessage
from leads.pipeline.models import Lead
from tests.helpers import free_port, inquiry_body


def test_twenty_concurrent_repeats_of_one_key_create_one_lead(gunicorn_server, demo, db_session):
    # Each repeat is counted as it arrives and given back once known as a replay, so twenty
    # at once would meet the limit of ten first: this test is about exactly once.
    base = gunicorn_server(workers=4, INQUIRY_RATE_LIMIT="100 per minute")
    body = inquiry_body()

    def send(_):
        return requests.post(base + "/api/v1/inquiries", json=body, timeout=30,
                             headers={"Idempotency-Key": "campaign-retry-1"})

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(send, range(20)))

    assert [r.status_code for r in responses] == [202] * 20
    assert len({r.json()["reference"] for r in responses}) == 1
    assert len({r.json()["status_url"] for r in responses}) == 1
    assert db_session.scalar(select(func.count()).select_from(Lead)) == 1
    assert db_session.scalar(select(func.count()).select_from(OutboxMessage)) == 2
    assert db_session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1


def test_redis_unreachable_still_accepts_and_keeps_the_inquiry(gunicorn_server, demo, db_session):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    base = gunicorn_server(workers=2, REDIS_URL=dead_redis)

    # A patient's browser would give up long before a broker connection timed out; the
    # answer must not wait on Redis at all.
    for _ in range(3):
        response = requests.post(base + "/api/v1/inquiries", json=inquiry_body(), timeout=3)
        assert response.status_code == 202
    reference = response.json()["reference"]
    lead = db_session.scalar(select(Lead).where(Lead.reference == reference))
    assert lead is not None and lead.status == "received"
    outbox = db_session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [o.task for o in outbox] == ["process_lead", "send_emails"] * 3
    assert outbox[-2].payload == {"lead_id": lead.id}
    assert all(o.dispatched_at is None for o in outbox)

    ready = requests.get(base + "/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.headers["Content-Type"].startswith("application/problem+json")
    assert "redis" in ready.json()["detail"]
    assert ready.json()["checks"] == {"database": "ok", "redis": ready.json()["checks"]["redis"]}
    assert ready.json()["checks"]["redis"] != "ok"


def test_readyz_and_healthz_answer_when_all_is_up(gunicorn_server):
    base = gunicorn_server(workers=1)
    assert requests.get(base + "/healthz", timeout=5).status_code == 200
    ready = requests.get(base + "/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    metrics = requests.get(base + "/metrics", timeout=5)
    assert metrics.status_code == 200
    assert "http_requests_total" in metrics.text
    content_type = metrics.headers["Content-Type"]
    assert content_type.startswith("text/plain; version=") and content_type.count("charset") == 1


def test_a_chunked_body_is_held_to_the_same_64_kib(gunicorn_server, demo, db_session):
    base = gunicorn_server(workers=1)

    def chunked(body: bytes):
        # A generator body makes requests send it chunked, with no Content-Length.
        return requests.post(base + "/api/v1/inquiries", data=(body[i:i + 8192] for i in
                             range(0, len(body), 8192)),
                             headers={"Content-Type": "application/json"}, timeout=10)

    def padded_to(size: int) -> bytes:
        body = inquiry_body(condition="")
        body["condition"] = "a" * (size - len(json.dumps(body).encode()))
        return json.dumps(body).encode()

    too_large = chunked(padded_to(80 * 1024))
    assert too_large.status_code == 413
    assert too_large.headers["Content-Type"].startswith("application/problem+json")
    at_the_limit = padded_to(64 * 1024)
    assert len(at_the_limit) == 64 * 1024
    assert chunked(at_the_limit).status_code == 422  # read whole: only its condition is too long
    assert chunked(json.dumps(inquiry_body()).encode()).status_code == 202
    assert db_session.scalar(select(func.count()).select_from(Lead)) == 1
