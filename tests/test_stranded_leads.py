"""The stranded-lead sweep, run as beat runs it, against the real broker: a lead whose
routing task was lost is published again, once the queue is drained; a lead still queued
behind a burst is left where it is, not copied."""

import base64
import json
from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from leads.core.clock import utcnow
from leads.core.jobs import Job
from leads.pipeline.models import Lead
from tests.helpers import lead_id_of, submit


@pytest.fixture
def worker_app(test_env):
    """The workers' Celery app (its tasks run in-process here) and the broker's queue."""
    from workers.celery import app

    app.loader.import_default_modules()
    return app, redis.Redis.from_url(test_env["REDIS_URL"])


def queued_routing(broker) -> list[int]:
    """The leads of the routing tasks waiting in the default queue (intake's nudges to the
    outbox relay wait there too)."""
    leads = []
    for raw in broker.lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == Job.PROCESS_LEAD:
            _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            leads.append(kwargs["lead_id"])
    return leads


def waiting_since(db_session, lead_id: int, ago: timedelta) -> None:
    db_session.execute(update(Lead).where(Lead.id == lead_id).values(updated_at=utcnow() - ago))
    db_session.commit()


def test_a_lead_whose_task_was_lost_is_routed_again(client, db_session, catalogue, worker_app):
    app, broker = worker_app
    lost = lead_id_of(db_session, submit(client)["reference"])
    new = lead_id_of(db_session, submit(client)["reference"])
    waiting_since(db_session, lost, timedelta(minutes=2))

    assert app.tasks[Job.ROUTE_STRANDED_LEADS]() == 1
    assert queued_routing(broker) == [lost]
    # The lead that came in a moment ago still has its own task coming: no copy of it.
    assert new not in queued_routing(broker)


def test_leads_queued_behind_a_burst_are_not_copied(client, db_session, catalogue,
                                                    worker_app):
    app, broker = worker_app
    lead_id = lead_id_of(db_session, submit(client)["reference"])
    waiting_since(db_session, lead_id, timedelta(minutes=2))
    burst = [10_000 + n for n in range(11)]
    broker.delete("celery")
    for other in burst:
        app.send_task(Job.PROCESS_LEAD, kwargs={"lead_id": other})

    assert app.tasks[Job.ROUTE_STRANDED_LEADS]() == 0
    assert sorted(queued_routing(broker)) == burst

    # The burst worked through (a few of beat's own tasks may wait): the lead is routed again.
    broker.ltrim("celery", 0, 4)
    assert app.tasks[Job.ROUTE_STRANDED_LEADS]() == 1
    assert lead_id in queued_routing(broker)
