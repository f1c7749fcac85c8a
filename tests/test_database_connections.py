"""Pooled connections are used without a ping while they are busy, and a connection left
idle and dropped meanwhile (a database restart, a firewall's idle timeout) is replaced before
a request can fail on it (leads/core/database.py)."""

import pytest
from sqlalchemy import event

from leads.core import database
from tests.helpers import inquiry_body


@pytest.fixture
def pooled_connections(app):
    """The raw connections the pool took back, as they were returned."""
    returned = []
    with app.app_context():
        engine = database.db.engine

    def keep(dbapi_connection, _record):
        returned.append(dbapi_connection)

    event.listen(engine, "checkin", keep)
    yield returned
    event.remove(engine, "checkin", keep)
    engine.dispose()  # no connection this test closed is handed to the next


def test_a_dropped_idle_connection_is_replaced_before_the_request_uses_it(
        client, demo, pooled_connections, monkeypatch):
    assert client.get("/api/v1/treatments").status_code == 200
    assert pooled_connections
    for connection in pooled_connections:
        connection.close()  # as the server would, while the connection sat in the pool
    monkeypatch.setattr(database, "IDLE_BEFORE_PING", 0.0)

    answer = client.post("/api/v1/inquiries", json=inquiry_body())

    assert answer.status_code == 202, answer.get_json()


def test_a_connection_in_steady_use_is_not_pinged(app, client, demo, monkeypatch):
    pings = []
    with app.app_context():
        dialect = database.db.engine.dialect
    monkeypatch.setattr(dialect, "do_ping", lambda connection: pings.append(1) or True)
    for _ in range(3):
        assert client.get("/api/v1/treatments").status_code == 200
    assert pings == []

    monkeypatch.setattr(database, "IDLE_BEFORE_PING", 0.0)
    assert client.get("/api/v1/treatments").status_code == 200
    assert pings == [1]
