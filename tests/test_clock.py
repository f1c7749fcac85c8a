"""One clock for the whole service: moved (with time-machine, which moves the test's clock
and the in-process service's together), every date the service judges moves with it."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from leads.core.clock import today, utcnow
from leads.pipeline.models import Lead
from tests.helpers import inquiry_body, routed_lead


def post(client, body, **kw):
    return client.post("/api/v1/inquiries", json=body, **kw)


def errors_of(response) -> dict:
    assert response.status_code == 422, response.get_data(as_text=True)
    return response.get_json()["errors"]


@pytest.fixture
def two_years_ahead(time_machine):
    """Listed before the catalogue fixtures, so they too are laid out in the moved time."""
    moved = utcnow() + timedelta(days=2 * 365)
    time_machine.move_to(moved)
    return moved


def test_the_suites_inquiry_is_accepted_two_years_from_now(two_years_ahead, client, demo,
                                                             db_session):
    assert today() >= two_years_ahead.date()
    body = inquiry_body()
    body["patient"]["birth_year"] = today().year  # a bound fixed at import would refuse it
    response = post(client, body)
    assert response.status_code == 202, response.get_json()
    lead = db_session.scalar(select(Lead).where(
        Lead.reference == response.get_json()["reference"]))
    assert lead.created_at.date() >= two_years_ahead.date()
    assert lead.birth_year == today().year
    assert lead.travel_latest.isoformat() == body["travel_window"]["latest"]


def test_birth_year_bound_moves_at_new_year_without_a_restart(client, demo, time_machine):
    next_year = today().year + 1
    time_machine.move_to(datetime(next_year - 1, 12, 31, 23, 59, tzinfo=UTC))
    body = inquiry_body()
    body["patient"]["birth_year"] = next_year
    assert "patient.birth_year" in errors_of(post(client, body))

    time_machine.move_to(datetime(next_year, 1, 1, 0, 1, tzinfo=UTC))
    body = inquiry_body()
    body["patient"]["birth_year"] = next_year
    assert post(client, body).status_code == 202
    body["patient"]["birth_year"] = next_year + 1
    assert "patient.birth_year" in errors_of(post(client, body))


def test_a_travel_window_ends_by_the_clock(client, demo, time_machine):
    time_machine.move_to(utcnow())
    body = inquiry_body()
    body["travel_window"] = {"earliest": None, "latest": today().isoformat()}
    assert post(client, body).status_code == 202
    time_machine.shift(timedelta(days=1))
    body = inquiry_body(travel_window=body["travel_window"])
    assert "travel_window.latest" in errors_of(post(client, body))


def test_idempotency_keys_are_kept_24_hours_by_the_clock(client, demo, time_machine):
    time_machine.move_to(utcnow())
    body = inquiry_body()
    first = post(client, body, headers={"Idempotency-Key": "clock-1"}).get_json()
    time_machine.shift(timedelta(hours=23))
    assert post(client, body, headers={"Idempotency-Key": "clock-1"}).get_json() == first
    time_machine.shift(timedelta(hours=2))
    later = post(client, body, headers={"Idempotency-Key": "clock-1"})
    assert later.status_code == 202
    assert later.get_json()["reference"] != first["reference"]


def test_accreditations_lapse_by_the_clock(app, client, db_session, catalogue, time_machine):
    # The catalogue's fitting clinics hold accreditations valid for a year from today.
    time_machine.move_to(utcnow() + timedelta(days=366))
    response = post(client, inquiry_body())
    assert response.status_code == 202, response.get_json()
    lead = routed_lead(app, db_session, response.get_json()["reference"])
    assert lead.status == "needs_review" and lead.referrals == []
