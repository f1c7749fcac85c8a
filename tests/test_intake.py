"""POST /api/v1/inquiries: accepted means kept, and the edges of the front door."""

import json
import logging

from sqlalchemy import func, select

from leads.messaging.models import EmailMessage, OutboxMessage
from leads.pipeline.models import Lead, TimelineEvent
from tests.helpers import inquiry_body, inquiry_path, status_token

PROBLEM = "application/problem+json"


def post(client, body, **kw):
    return client.post("/api/v1/inquiries", json=body, **kw)


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def test_accepted_inquiry_is_kept_with_its_event_and_outbox_row(client, demo, db_session):
    response = post(client, inquiry_body())
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["status"] == "received"
    assert answer["reference"].startswith("MT-")
    # STATUS_PAGE_URL's default: the status page on this service.
    assert answer["status_url"] == (f"http://testserver/status/{answer['reference']}"
                                    f"?token={status_token(answer)}")

    lead = db_session.scalar(select(Lead).where(Lead.reference == answer["reference"]))
    assert lead.status == "received"
    assert lead.destinations == ["MX", "PA"]
    assert lead.phone == "+14155550100"
    assert [e.kind for e in lead.timeline] == ["received"]
    outbox = db_session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    acknowledgement = db_session.scalars(select(EmailMessage)).one()
    assert [(o.task, o.payload) for o in outbox] == [
        ("process_lead", {"lead_id": lead.id}),
        ("send_emails", {"message_ids": [acknowledgement.id]}),
    ]
    assert acknowledgement.kind == "acknowledgement"
    assert acknowledgement.status == "pending"
    assert answer["status_url"] in acknowledgement.body_text


def test_status_link_shows_the_patient_their_lead(client, demo):
    answer = post(client, inquiry_body()).get_json()
    view = client.get(inquiry_path(answer))
    assert view.status_code == 200
    data = view.get_json()
    assert data["reference"] == answer["reference"]
    assert data["status"] == "received"
    assert data["treatment"]["slug"] == "stem-cell-spine-arthritis"
    assert data["referrals"] == []
    assert "email" not in json.dumps(data)


def test_wrong_or_missing_token_answers_404(client, demo):
    reference = post(client, inquiry_body()).get_json()["reference"]
    for url in (f"/api/v1/inquiries/{reference}", f"/api/v1/inquiries/{reference}?token=nope",
                "/api/v1/inquiries/MT-0000000?token=nope"):
        response = client.get(url)
        assert response.status_code == 404
        assert response.mimetype == PROBLEM


def test_honeypot_answers_the_same_but_marks_spam_without_work(client, demo, db_session):
    response = post(client, inquiry_body(website="http://buy-pills.example"))
    assert response.status_code == 202
    answer = response.get_json()
    assert set(answer) == {"reference", "status", "status_url"}
    assert answer["status"] == "received"
    lead = db_session.scalar(select(Lead).where(Lead.reference == answer["reference"]))
    assert lead.status == "spam"
    assert count(db_session, OutboxMessage) == 0
    assert count(db_session, EmailMessage) == 0
    # The patient-facing view does not tell a bot it was caught.
    assert client.get(inquiry_path(answer)).get_json()["status"] == "received"


def test_a_bot_repeating_a_patients_inquiry_is_spam_and_nobodys_duplicate(client, demo,
                                                                          db_session):
    body = inquiry_body()
    first = post(client, body).get_json()["reference"]
    repeat = post(client, {**body, "website": "http://buy-pills.example"}).get_json()
    lead = db_session.scalar(select(Lead).where(Lead.reference == repeat["reference"]))
    assert (lead.status, lead.duplicate_of_id) == ("spam", None)
    original = db_session.scalar(select(Lead).where(Lead.reference == first))
    assert "duplicate_received" not in {event.kind for event in original.timeline}


def test_second_inquiry_within_30_days_is_a_duplicate_shown_on_the_first(client, demo, db_session):
    first_body = inquiry_body()
    first = post(client, first_body).get_json()["reference"]
    shouted = first_body["patient"]["email"].upper()
    again = inquiry_body(patient={**first_body["patient"], "email": shouted})
    response = post(client, again)
    assert response.status_code == 202
    second = response.get_json()["reference"]
    original = db_session.scalar(select(Lead).where(Lead.reference == first))
    duplicate = db_session.scalar(select(Lead).where(Lead.reference == second))
    assert duplicate.status == "duplicate"
    assert duplicate.duplicate_of_id == original.id
    assert original.status == "received"
    events = {e.kind: e.data for e in original.timeline}
    assert events["duplicate_received"] == {"lead_id": duplicate.id, "reference": second}
    assert count(db_session, Lead) == 2


def test_a_plain_inquiry_on_postgresql_is_one_statement_committed_as_it_ends(client, demo,
                                                                             db_session):
    """Without an Idempotency-Key, a new lead that is neither a honeypot's nor a repeat is
    written and committed by one statement in autocommit: no BEGIN and no COMMIT to wait
    for (bench/RESULTS.md, "Intake and mail, 2026-12-07"). A repeat is refused by that statement and
    written again in a transaction, with why it is one; SQLite keeps one transaction."""
    from sqlalchemy import event

    engine = db_session.get_bind()
    body = inquiry_body()
    post(client, body)  # the active treatments are cached from here on
    executed = []

    def record(connection, cursor, statement, parameters, context, executemany):
        executed.append(connection.get_execution_options().get("isolation_level"))

    event.listen(engine, "before_cursor_execute", record)
    try:
        plain = post(client, inquiry_body(patient={**body["patient"], "email": "b@example.org"}))
        plain_statements, executed[:] = list(executed), []
        repeat = post(client, body)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert (plain.status_code, repeat.status_code) == (202, 202)
    assert count(db_session, Lead, Lead.status == "duplicate") == 1
    assert count(db_session, Lead) == 3
    if engine.dialect.name == "postgresql":
        assert plain_statements == ["AUTOCOMMIT"]
        assert executed[0] == "AUTOCOMMIT" and len(executed) > 1
        assert "AUTOCOMMIT" not in executed[1:]
    else:
        assert len(plain_statements) > 1 and "AUTOCOMMIT" not in plain_statements + executed


def test_same_person_other_treatment_is_not_a_duplicate(client, demo, db_session):
    body = inquiry_body()
    post(client, body)
    other = inquiry_body(treatment="dental-implants", patient=body["patient"])
    reference = post(client, other).get_json()["reference"]
    assert db_session.scalar(select(Lead.status).where(Lead.reference == reference)) == "received"


def test_a_reference_drawn_twice_is_drawn_again(client, demo, db_session, monkeypatch):
    from leads.intake import operations

    first = post(client, inquiry_body()).get_json()["reference"]
    draws = iter([first, first, "MT-ZZZZZZZ"])
    monkeypatch.setattr(operations, "new_reference", lambda: next(draws))
    second = post(client, inquiry_body())
    assert second.status_code == 202
    assert second.get_json()["reference"] == "MT-ZZZZZZZ"
    assert count(db_session, Lead) == 2


def test_malformed_json_answers_400(client, demo):
    response = client.post("/api/v1/inquiries", data='{"patient": ',
                           content_type="application/json")
    assert response.status_code == 400
    assert response.mimetype == PROBLEM
    assert response.get_json()["status"] == 400


def test_wrong_content_type_answers_415(client, demo):
    response = client.post("/api/v1/inquiries", data=json.dumps(inquiry_body()),
                           content_type="text/plain")
    assert response.status_code == 415
    assert response.mimetype == PROBLEM


def test_body_over_64_kib_answers_413(client, demo, db_session):
    body = inquiry_body(condition="a" * (65 * 1024))
    response = post(client, body)
    assert response.status_code == 413
    assert response.mimetype == PROBLEM
    assert count(db_session, Lead) == 0


def test_eleventh_inquiry_in_a_minute_answers_429_with_retry_after(client, demo):
    for _ in range(10):
        assert post(client, inquiry_body()).status_code == 202
    response = post(client, inquiry_body())
    assert response.status_code == 429
    assert response.mimetype == PROBLEM
    assert int(response.headers["Retry-After"]) > 0


def test_refused_inquiries_use_up_the_allowance_too(client, demo, db_session):
    refused = [
        (lambda: post(client, inquiry_body(condition="too short")), 422),
        (lambda: client.post("/api/v1/inquiries", data="{", content_type="application/json"),
         400),
        (lambda: client.post("/api/v1/inquiries", data="[" * 1000 + "]" * 1000,
                             content_type="application/json"), 400),
        (lambda: post(client, inquiry_body(condition="a" * 70_000)), 413),
        (lambda: client.post("/api/v1/inquiries", data="patient=Ana",
                             content_type="application/x-www-form-urlencoded"), 415),
    ]
    for attempt in range(10):
        send, status = refused[attempt % len(refused)]
        assert send().status_code == status, attempt
    assert refused[0][0]().status_code == 429  # the eleventh, refused or not
    response = post(client, inquiry_body())
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert count(db_session, Lead) == 0


def test_idempotency_key_replays_the_first_answer(client, demo, db_session):
    body = inquiry_body()
    first = post(client, body, headers={"Idempotency-Key": "abc-123"})
    again = post(client, body, headers={"Idempotency-Key": "abc-123"})
    assert first.status_code == again.status_code == 202
    assert first.get_json() == again.get_json()
    assert count(db_session, Lead) == 1
    assert count(db_session, OutboxMessage) == 2
    assert count(db_session, EmailMessage) == 1


def test_replays_do_not_use_up_the_allowance(client, demo, db_session):
    body = inquiry_body()
    for _ in range(15):
        assert post(client, body, headers={"Idempotency-Key": "again"}).status_code == 202
    for _ in range(9):  # the first inquiry was counted, once
        assert post(client, inquiry_body()).status_code == 202
    assert post(client, inquiry_body()).status_code == 429
    assert count(db_session, Lead) == 10


def test_idempotency_key_with_another_body_answers_422(client, demo, db_session):
    post(client, inquiry_body(), headers={"Idempotency-Key": "k-1"})
    response = post(client, inquiry_body(), headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]
    assert count(db_session, Lead) == 1


def test_intake_log_at_debug_holds_no_patient_data(client, demo, caplog):
    body = inquiry_body()
    body["patient"]["phone"] = "+34 612 345 678"
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, "sqlalchemy.engine"):
        assert post(client, body).status_code == 202
        assert post(client, body, headers={"Idempotency-Key": "log-1"}).status_code == 202
    log = caplog.text
    assert "INSERT INTO leads" in log  # the capture really saw the intake's SQL
    for secret in (body["patient"]["email"], "612 345 678", "+34612345678", body["condition"],
                   "Facet joint"):
        assert secret not in log


def test_treatments_lists_only_active_ones_to_patients(client, demo, db_session):
    from leads.catalogue.models import Treatment

    db_session.add(Treatment(slug="retired-therapy", name="Retired", specialty="other",
                             active=False))
    db_session.commit()
    listed = client.get("/api/v1/treatments").get_json()
    slugs = {t["slug"] for t in listed}
    assert "stem-cell-spine-arthritis" in slugs and "retired-therapy" not in slugs
    assert all(set(t) == {"slug", "name", "specialty"} for t in listed)
    staff = client.get("/api/v1/treatments", headers={"Authorization": f"Bearer {demo}"}).get_json()
    assert {"slug": "retired-therapy", "name": "Retired", "specialty": "other",
            "active": False} in staff


def test_every_event_is_timestamped_in_utc(client, demo, db_session):
    post(client, inquiry_body())
    event = db_session.scalars(select(TimelineEvent)).one()
    assert event.at.utcoffset().total_seconds() == 0


def test_intakes_one_statement_stays_one_psycopg_keeps_parsed(app):
    """psycopg keeps a query's parsed placeholders only for queries of at most
    MAX_CACHED_STATEMENT_LENGTH bytes and MAX_CACHED_STATEMENT_PARAMS parameters; intake's
    statement, run for every inquiry, parsed afresh each time took about 7 % of the profiled
    request (bench/RESULTS.md, "Intake, 2026-12-06")."""
    from psycopg import _queries
    from sqlalchemy.dialects import postgresql

    from leads.intake.operations import _inquiry_insert

    compiled = _inquiry_insert().compile(dialect=postgresql.psycopg.dialect())
    assert len(str(compiled).encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH
    assert len(compiled.params) <= _queries.MAX_CACHED_STATEMENT_PARAMS
