"""The partner clinics' API (CONTRACT §5) through HTTP, with keys issued by an admin: a clinic
sees only its own referrals, opens them, accepts, declines and quotes, and the lead follows
(CONTRACT §6)."""

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from leads.catalogue.models import Clinic
from leads.core.clock import today, utcnow
from leads.core.database import db
from leads.messaging.models import EmailMessage
from leads.pipeline.models import Referral
from tests.helpers import (
    act,
    auth,
    clinics_of,
    detail,
    field_errors,
    problem,
    route,
    status_token,
    submit,
    transition,
)

QUOTE = {"amount": 9500, "currency": "USD", "includes": ["treatment", "3 nights hotel"],
         "valid_until": (today() + timedelta(days=30)).isoformat(), "notes": "Airport pickup."}


def lead_referral(client, routed, referral_id) -> dict:
    lead = detail(client, routed["coordinator"], routed["lead_id"])
    return next(r for r in lead["referrals"] if r["id"] == referral_id)


def test_clinic_endpoints_need_a_valid_clinic_key(client, routed):
    [(_, referral_id), *_] = clinics_of(routed)
    for headers in ({}, auth("nonsense"), auth("clk_" + "x" * 43), routed["admin"],
                    routed["coordinator"]):
        problem(client.get("/api/v1/clinic/referrals", headers=headers), 401)
        problem(client.get(f"/api/v1/clinic/referrals/{referral_id}", headers=headers), 401)
        problem(act(client, headers, referral_id, "accept"), 401)
    assert lead_referral(client, routed, referral_id)["status"] == "requested"


def test_a_clinic_lists_only_its_own_referrals(app, client, db_session, routed):
    second = route(app, db_session, submit(client)["reference"])
    for clinic_id, headers in routed["keys"].items():
        response = client.get("/api/v1/clinic/referrals", headers=headers)
        assert response.status_code == 200
        body = response.get_json()
        assert set(body) == {"items", "next_cursor"}
        own = set(db_session.scalars(select(Referral.id).where(Referral.clinic_id == clinic_id)))
        assert {r["id"] for r in body["items"]} == own
        ids = [r["id"] for r in body["items"]]
        assert ids == sorted(ids, reverse=True)
    unreferred = client.get("/api/v1/clinic/referrals",
                            headers=routed["keys"][routed["unreferred"]]).get_json()
    assert [r["reference"] for r in unreferred["items"]] in ([], [
        detail(client, routed["coordinator"], second)["reference"]])


def test_a_longer_list_costs_no_more_queries(app, client, db_session, routed):
    clinic_id, headers = min(routed["keys"].items())
    statements = []

    def count_statement(*args):
        statements.append(args[2])

    def list_queries() -> tuple[int, int]:
        statements.clear()
        with app.app_context():
            event.listen(db.engine, "before_cursor_execute", count_statement)
            try:
                items = client.get("/api/v1/clinic/referrals", headers=headers).get_json()["items"]
            finally:
                event.remove(db.engine, "before_cursor_execute", count_statement)
        return len(items), len(statements)

    list_queries()  # the key's first use in a minute is recorded, once (leads/auth.py)
    before = list_queries()
    for _ in range(3):
        route(app, db_session, submit(client)["reference"])
    after = list_queries()
    assert after[0] > before[0], "the clinic got no further referral: nothing was compared"
    assert after[1] == before[1], (before, after)


def test_the_list_filters_by_status_and_pages(client, routed):
    [(headers, referral_id), *_] = clinics_of(routed)
    listed = client.get("/api/v1/clinic/referrals", headers=headers,
                        query_string={"status": "requested"}).get_json()["items"]
    assert [r["id"] for r in listed] == [referral_id]
    assert act(client, headers, referral_id, "accept").status_code == 200
    for status, expected in [("requested", []), ("accepted", [referral_id]), ("declined", [])]:
        items = client.get("/api/v1/clinic/referrals", headers=headers,
                           query_string={"status": status}).get_json()["items"]
        assert [r["id"] for r in items] == expected, status
    assert "status" in field_errors(client.get("/api/v1/clinic/referrals", headers=headers,
                                               query_string={"status": "bogus"}))
    for limit in (0, 201):
        assert "limit" in field_errors(client.get("/api/v1/clinic/referrals", headers=headers,
                                                  query_string={"limit": limit}))


def test_another_clinics_referral_answers_404(client, routed):
    (mine, _), (_, theirs), *_ = clinics_of(routed)
    stranger = routed["keys"][routed["unreferred"]]
    for headers in (mine, stranger):
        problem(client.get(f"/api/v1/clinic/referrals/{theirs}", headers=headers), 404)
        problem(act(client, headers, theirs, "accept"), 404)
        problem(act(client, headers, theirs, "decline", {"reason": "no"}), 404)
        problem(act(client, headers, theirs, "quote", QUOTE), 404)
    problem(client.get("/api/v1/clinic/referrals/999999", headers=mine), 404)
    assert lead_referral(client, routed, theirs)["status"] == "requested"


def test_opening_a_referral_moves_it_from_requested_to_received(client, routed):
    [(headers, referral_id), *_] = clinics_of(routed)
    response = client.get(f"/api/v1/clinic/referrals/{referral_id}", headers=headers)
    assert response.status_code == 200
    referral = response.get_json()
    assert referral["status"] == "received" and referral["id"] == referral_id
    assert referral["reference"] == routed["reference"]
    assert referral["treatment"] == "stem-cell-spine-arthritis"
    assert referral["condition"].startswith("Facet joint arthritis")
    assert client.get(f"/api/v1/clinic/referrals/{referral_id}",
                      headers=headers).get_json()["status"] == "received"
    assert lead_referral(client, routed, referral_id)["status"] == "received"
    lead = detail(client, routed["coordinator"], routed["lead_id"])
    [opened] = [e for e in lead["timeline"] if e["kind"] == "referral_status_changed"]
    clinic_id = next(c for c, r in routed["referrals"].items() if r == referral_id)
    assert opened["actor"] == f"clinic:{clinic_id}"
    assert (opened["data"]["from"], opened["data"]["to"]) == ("requested", "received")


def test_contact_details_are_shown_only_after_accepting(client, db_session, routed):
    (headers, referral_id), (other_headers, other_id), _ = clinics_of(routed)
    lead = detail(client, routed["coordinator"], routed["lead_id"])
    email, phone = lead["patient"]["email"], lead["patient"]["phone"]

    def seen(h, rid) -> tuple[dict, str]:
        response = client.get(f"/api/v1/clinic/referrals/{rid}", headers=h)
        listed = client.get("/api/v1/clinic/referrals", headers=h)
        return response.get_json(), response.get_data(as_text=True) + listed.get_data(
            as_text=True)

    referral, text = seen(headers, referral_id)
    assert email not in text and phone not in text
    assert referral["patient"].get("email") is None and referral["patient"].get("phone") is None
    assert referral["patient"]["country"] == "US"

    accepted = act(client, headers, referral_id, "accept")
    assert accepted.status_code == 200 and accepted.get_json()["patient"]["email"] == email
    referral, text = seen(headers, referral_id)
    assert referral["patient"]["email"] == email and referral["patient"]["phone"] == phone
    assert phone == "+14155550100"

    # Another clinic that declined (or did nothing) still sees no contact details.
    assert act(client, other_headers, other_id, "decline", {"reason": "Full."}).status_code == 200
    referral, text = seen(other_headers, other_id)
    assert email not in text and phone not in text


def test_each_answer_counts_toward_the_clinics_responsiveness_as_it_is_given(
        client, db_session, routed):
    """How fast a clinic answers, which routing weighs for the next leads: its median hours
    to answer count an acceptance or a decline as it is given; a clinic yet to answer has
    none."""
    (accepting, accepted), (declining, declined), (_, unanswered) = clinics_of(routed)
    clinic_of = {referral_id: clinic_id for clinic_id, referral_id in routed["referrals"].items()}

    def median_hours(referral_id):
        db_session.expire_all()
        return db_session.get(Clinic, clinic_of[referral_id]).median_hours_to_answer

    assert [median_hours(r) for r in (accepted, declined, unanswered)] == [None, None, None]
    edited = db_session.get(Clinic, clinic_of[accepted]).updated_at
    assert act(client, accepting, accepted, "accept").status_code == 200
    assert 0 <= median_hours(accepted) < 0.1
    assert median_hours(declined) is None
    assert act(client, declining, declined, "decline", {"reason": "Full."}).status_code == 200
    assert 0 <= median_hours(declined) < 0.1
    assert median_hours(unanswered) is None
    # A figure of its answers, not an edit of the clinic.
    assert db_session.get(Clinic, clinic_of[accepted]).updated_at == edited


def test_accept_then_quote_moves_the_lead_to_quoted_and_the_patient_sees_it(client, routed):
    [(headers, referral_id), *_] = clinics_of(routed)
    problem(act(client, headers, referral_id, "quote", QUOTE), 409)  # not accepted yet
    response = act(client, headers, referral_id, "accept")
    assert response.status_code == 200
    referral = response.get_json()
    assert referral["status"] == "accepted" and referral["responded_at"]
    problem(act(client, headers, referral_id, "accept"), 409)
    problem(act(client, headers, referral_id, "decline", {"reason": "Changed our mind"}), 409)
    assert lead_referral(client, routed, referral_id)["responded_at"]

    response = act(client, headers, referral_id, "quote", QUOTE)
    assert response.status_code == 200
    referral = response.get_json()
    assert referral["status"] == "quoted"
    [quote] = referral["quotes"]
    assert (quote["amount"], quote["currency"]) == (9500, "USD")
    assert quote["includes"] == QUOTE["includes"] and quote["valid_until"] == QUOTE["valid_until"]
    lead = detail(client, routed["coordinator"], routed["lead_id"])
    assert lead["status"] == "quoted"
    assert lead["timeline"][-1]["kind"] == "status_changed"
    assert lead["timeline"][-1]["data"]["to"] == "quoted"

    token = status_token(routed["accepted"])
    page = client.get(f"/api/v1/inquiries/{routed['reference']}", query_string={"token": token})
    assert page.status_code == 200
    page = page.get_json()
    assert page["status"] == "quoted"
    quoted = [r for r in page["referrals"] if r["quotes"]]
    assert len(quoted) == 1 and len(page["referrals"]) == 3
    assert set(quoted[0]["clinic"]) >= {"name", "city", "country"}
    assert quoted[0]["clinic"]["city"] == "Tijuana"
    assert quoted[0]["quotes"][0]["amount"] == 9500
    assert quoted[0]["quotes"][0]["currency"] == "USD"

    # A revised quote; the lead stays quoted and the patient sees both.
    again = act(client, headers, referral_id, "quote", {**QUOTE, "amount": 9000})
    assert again.status_code == 200 and len(again.get_json()["quotes"]) == 2
    assert detail(client, routed["coordinator"], routed["lead_id"])["status"] == "quoted"

    # The patient books: the lead and the quoted referral are booked; contact stays visible.
    assert transition(client, routed["coordinator"], routed["lead_id"], "booked").status_code == 200
    booked = client.get(f"/api/v1/clinic/referrals/{referral_id}", headers=headers).get_json()
    assert booked["status"] == "booked" and booked["patient"]["email"]
    problem(act(client, headers, referral_id, "quote", QUOTE), 409)


def test_decline_answers_200_and_then_409(client, routed):
    [(headers, referral_id), *_] = clinics_of(routed)
    response = act(client, headers, referral_id, "decline", {"reason": "No capacity in March."})
    assert response.status_code == 200
    assert response.get_json()["status"] == "declined"
    assert response.get_json()["responded_at"]
    for action, body in [("decline", {"reason": "again"}), ("accept", None), ("quote", QUOTE)]:
        problem(act(client, headers, referral_id, action, body), 409)
    assert lead_referral(client, routed, referral_id)["status"] == "declined"
    assert detail(client, routed["coordinator"], routed["lead_id"])["status"] == "routed"
    # A reason is optional.
    (_, _), (second, second_id), _ = clinics_of(routed)
    assert act(client, second, second_id, "decline", {}).status_code == 200


def test_every_referral_declined_sends_the_lead_to_review(client, db_session, routed):
    for headers, referral_id in clinics_of(routed):
        assert act(client, headers, referral_id, "decline",
                   {"reason": "Not a candidate."}).status_code == 200
    lead = detail(client, routed["coordinator"], routed["lead_id"])
    assert lead["status"] == "needs_review"
    assert [r["status"] for r in lead["referrals"]] == ["declined"] * 3
    [review] = [e for e in lead["timeline"] if e["kind"] == "status_changed"
                and e["data"]["to"] == "needs_review"]
    assert review["data"]["from"] == "routed"
    alerts = db_session.scalars(select(EmailMessage.recipient).where(
        EmailMessage.lead_id == routed["lead_id"], EmailMessage.kind == "needs_review_alert"))
    assert sorted(alerts) == ["admin@care.example", "coord@care.example"]
    # From review the coordinators reroute to the clinic not asked yet.
    response = client.post(f"/api/v1/leads/{routed['lead_id']}/reroute",
                           headers=routed["coordinator"], json={})
    assert response.status_code == 202
    lead = detail(client, routed["coordinator"], routed["lead_id"])
    assert lead["status"] == "routed"
    assert {r["clinic"]["id"] for r in lead["referrals"] if r["status"] == "requested"} == {
        routed["unreferred"]}
    notices = db_session.scalars(select(EmailMessage.recipient).where(
        EmailMessage.lead_id == routed["lead_id"], EmailMessage.kind == "referral_notification"))
    email = client.get(f"/api/v1/clinics/{routed['unreferred']}",
                       headers=routed["admin"]).get_json()["email"]
    assert list(notices).count(email) == 1


def test_a_closed_lead_cancels_referrals_and_clinics_get_409(client, routed):
    (headers, referral_id), (other, other_id), _ = clinics_of(routed)
    assert act(client, headers, referral_id, "accept").status_code == 200
    assert transition(client, routed["coordinator"], routed["lead_id"], "closed").status_code == 200
    lead = detail(client, routed["coordinator"], routed["lead_id"])
    assert [r["status"] for r in lead["referrals"]] == ["cancelled"] * 3
    problem(act(client, headers, referral_id, "quote", QUOTE), 409)
    problem(act(client, other, other_id, "accept"), 409)
    problem(act(client, other, other_id, "decline", {"reason": "late"}), 409)
    # Reading a cancelled referral changes nothing and shows no contact details.
    response = client.get(f"/api/v1/clinic/referrals/{referral_id}", headers=headers)
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"
    assert response.get_json()["patient"].get("email") is None


def test_quote_and_decline_bodies_are_validated(client, routed):
    [(headers, referral_id), *_] = clinics_of(routed)
    assert act(client, headers, referral_id, "accept").status_code == 200
    errors = field_errors(act(client, headers, referral_id, "quote", {}))
    assert {"amount", "currency"} <= set(errors)
    for bad, field in [({"amount": 0}, "amount"), ({"amount": -5}, "amount"),
                       ({"amount": "lots"}, "amount"), ({"currency": "DOLLAR"}, "currency"),
                       ({"valid_until": (today() - timedelta(days=1)).isoformat()}, "valid_until"),
                       ({"includes": "everything"}, "includes"), ({"price": 1}, "price")]:
        errors = field_errors(act(client, headers, referral_id, "quote", {**QUOTE, **bad}))
        assert field in errors, (bad, errors)
    assert "reason" in field_errors(act(client, headers, referral_id, "decline", {"reason": 5}))
    problem(client.post(f"/api/v1/clinic/referrals/{referral_id}/quote", headers=headers,
                        data="amount=5", content_type="application/x-www-form-urlencoded"), 415)
    assert lead_referral(client, routed, referral_id)["status"] == "accepted"
    assert detail(client, routed["coordinator"], routed["lead_id"])["status"] == "routed"


def test_the_last_two_declines_at_once_still_send_the_lead_to_review(
        app, client, db_session, routed, monkeypatch):
    """Two clinics decline the last open referrals at the same moment: whichever commits
    second must see the other's decline. Each decline waits (briefly) for the other after
    changing its own referral, so without a lock on the lead both would see the other's
    referral still open."""
    import contextlib
    import threading

    from leads.pipeline import workflow

    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("needs concurrent writers (PostgreSQL)")
    (first, first_id), (second, second_id), (third, third_id) = clinics_of(routed)
    assert act(client, first, first_id, "decline", {"reason": "Full."}).status_code == 200
    barrier = threading.Barrier(2)
    answer = workflow._answer

    def answer_then_wait(referral, target, **data):
        answer(referral, target, **data)
        with contextlib.suppress(threading.BrokenBarrierError):  # the fix makes it wait
            barrier.wait(timeout=2)

    monkeypatch.setattr(workflow, "_answer", answer_then_wait)
    statuses = []

    def decline(headers, referral_id):
        response = app.test_client().post(f"/api/v1/clinic/referrals/{referral_id}/decline",
                                          headers=headers, json={"reason": "No."})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=decline, args=pair)
               for pair in ((second, second_id), (third, third_id))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200, 200]
    lead = detail(client, routed["coordinator"], routed["lead_id"])
    assert [r["status"] for r in lead["referrals"]] == ["declined"] * 3
    assert lead["status"] == "needs_review"


def test_two_answers_from_one_clinic_at_once_both_count_toward_its_responsiveness(
        app, client, db_session, routed, monkeypatch):
    """A clinic answers two leads' referrals at the same moment, one sent ten hours ago and
    one two hours ago: its median hours to answer must count both (six), whichever commits
    second. Each answer waits for the other after writing its referral, so without a lock
    on the clinic the second would work the figure out from a snapshot without the first."""
    import contextlib
    import threading

    from leads.pipeline import workflow

    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("needs concurrent writers (PostgreSQL)")
    second_lead = route(app, db_session, submit(client)["reference"])
    second = dict(db_session.execute(select(Referral.clinic_id, Referral.id)
                                     .where(Referral.lead_id == second_lead)).all())
    clinic_id = min(set(routed["referrals"]) & set(second))
    referral_ids = (routed["referrals"][clinic_id], second[clinic_id])
    for referral_id, hours in zip(referral_ids, (10, 2), strict=True):
        db_session.get(Referral, referral_id).created_at = utcnow() - timedelta(hours=hours)
    db_session.commit()
    barrier = threading.Barrier(2)
    record_answer = workflow.record_answer

    def written_then_wait(referral):
        db.session.flush()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=2)
        record_answer(referral)

    monkeypatch.setattr(workflow, "record_answer", written_then_wait)
    statuses = []

    def accept(referral_id):
        response = app.test_client().post(f"/api/v1/clinic/referrals/{referral_id}/accept",
                                          headers=routed["keys"][clinic_id])
        statuses.append(response.status_code)

    threads = [threading.Thread(target=accept, args=(referral_id,))
               for referral_id in referral_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200, 200]
    db_session.expire_all()
    median = db_session.get(Clinic, clinic_id).median_hours_to_answer
    assert median == pytest.approx(6, abs=0.01)


def test_an_answer_after_the_deadline_is_refused_and_the_sweep_expires_it(
        app, client, db_session, routed):
    (headers, late), (_, on_time), _ = clinics_of(routed)
    referral = db_session.get(Referral, late)
    referral.expires_at = referral.created_at - timedelta(minutes=1)
    db_session.commit()
    refused = problem(act(client, headers, late, "accept"), 409)
    assert "ran out" in refused["detail"]
    assert act(client, routed["keys"][next(c for c, r in routed["referrals"].items()
                                           if r == on_time)], on_time, "accept").status_code == 200
    from leads.routing.operations import expire_overdue_referrals

    with app.app_context():
        assert expire_overdue_referrals() == 1
    statuses = {r["id"]: r["status"] for r in detail(client, routed["coordinator"],
                                                      routed["lead_id"])["referrals"]}
    assert statuses[late] == "expired" and statuses[on_time] == "accepted"
    assert detail(client, routed["coordinator"], routed["lead_id"])["status"] == "routed"
