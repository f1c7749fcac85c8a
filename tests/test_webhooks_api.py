"""A clinic's webhook endpoints through the API (CONTRACT §5): registered with a secret shown
once and kept encrypted, listed, rotated with an overlap, deleted; their attempts listed and
paged; another clinic's answered as unknown; and each clinic's endpoints with their recent
failures for admins (issue 13). Receivers here are local (WEBHOOK_ALLOW_PRIVATE is on for
them); what is refused without it is in test_webhook_addresses.py."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from leads.core.clock import utcnow
from tests.helpers import (
    field_errors,
    problem,
    register_webhook,
    send_due_webhooks,
    transition,
)

ALL_EVENTS = ["referral.created", "referral.cancelled", "referral.expired", "lead.booked"]


def two_clinics(routed):
    (a, _), (b, _) = sorted(routed["referrals"].items())[:2]
    return routed["keys"][a], routed["keys"][b]


def test_an_endpoint_is_registered_with_a_secret_shown_once(client, routed, private_allowed,
                                                            db_session):
    key_a, _ = two_clinics(routed)
    response = register_webhook(client, key_a, "http://127.0.0.1:9/hooks")
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert created["url"] == "http://127.0.0.1:9/hooks" and created["events"] == ALL_EVENTS
    assert created["active"] is True and created["disabled_at"] is None

    listed = client.get("/api/v1/clinic/webhooks", headers=key_a).get_json()
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    assert listed["next_cursor"] is None
    assert "secret" not in listed["items"][0]
    # Kept encrypted: the column as stored does not hold the secret, nor its key material.
    stored = db_session.execute(text("SELECT secret FROM webhook_endpoints")).scalar_one()
    assert stored.startswith("pd1:")
    assert created["secret"] not in stored and created["secret"][6:] not in stored


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "https://93.184.215.14/hooks", "events": ["referral.paid"]}, "events"),
    ({"url": "https://93.184.215.14/hooks", "events": []}, "events"),
    ({"url": "https://93.184.215.14/hooks"}, "events"),
    ({"events": ["referral.created"]}, "url"),
    ({"url": "not a url", "events": ["referral.created"]}, "url"),
    ({"url": "ftp://93.184.215.14/hooks", "events": ["referral.created"]}, "url"),
    ({"url": "https://93.184.215.14/hooks", "events": ["referral.created"], "extra": 1}, "extra"),
])
def test_a_bad_registration_is_refused_naming_the_field(client, routed, body, field):
    key_a, _ = two_clinics(routed)
    errors = field_errors(client.post("/api/v1/clinic/webhooks", headers=key_a, json=body))
    assert field in errors, errors


def test_an_unknown_event_is_named_with_the_events_there_are(client, routed):
    key_a, _ = two_clinics(routed)
    errors = field_errors(register_webhook(client, key_a, "https://93.184.215.14/hooks",
                                           ["referral.created", "lead.paid"]))
    [message] = errors["events"]
    assert "'lead.paid'" in message and all(event in message for event in ALL_EVENTS)


def test_a_clinic_keeps_at_most_ten_endpoints(client, routed, private_allowed):
    key_a, key_b = two_clinics(routed)
    made = [register_webhook(client, key_a, f"http://127.0.0.1:9/{n}") for n in range(10)]
    assert {response.status_code for response in made} == {201}
    assert "at most 10" in problem(register_webhook(client, key_a, "http://127.0.0.1:9/x"),
                                   409)["detail"]
    assert register_webhook(client, key_b, "http://127.0.0.1:9/b").status_code == 201
    endpoint = made[0].get_json()["id"]
    assert client.delete(f"/api/v1/clinic/webhooks/{endpoint}", headers=key_a).status_code == 204
    assert register_webhook(client, key_a, "http://127.0.0.1:9/x").status_code == 201


def test_another_clinics_endpoint_is_unknown_to_a_clinic(client, routed, private_allowed):
    key_a, key_b = two_clinics(routed)
    endpoint = register_webhook(client, key_a, "http://127.0.0.1:9/hooks").get_json()["id"]
    base = f"/api/v1/clinic/webhooks/{endpoint}"
    problem(client.get(base + "/deliveries", headers=key_b), 404)
    problem(client.post(base + "/rotate-secret", headers=key_b), 404)
    problem(client.delete(base, headers=key_b), 404)
    assert client.get("/api/v1/clinic/webhooks", headers=key_b).get_json()["items"] == []
    # Clinic A's endpoint is untouched by all that.
    assert client.get(base + "/deliveries", headers=key_a).status_code == 200


def test_a_deleted_endpoint_is_gone_and_hears_nothing_more(app, client, routed, private_allowed,
                                                           receiver):
    key_a, _ = two_clinics(routed)
    endpoint = register_webhook(client, key_a, receiver.url("/a")).get_json()["id"]
    assert client.delete(f"/api/v1/clinic/webhooks/{endpoint}", headers=key_a).status_code == 204
    assert client.get("/api/v1/clinic/webhooks", headers=key_a).get_json()["items"] == []
    problem(client.delete(f"/api/v1/clinic/webhooks/{endpoint}", headers=key_a), 404)
    problem(client.get(f"/api/v1/clinic/webhooks/{endpoint}/deliveries", headers=key_a), 404)
    assert transition(client, routed["admin"], routed["lead_id"], "closed").status_code == 200
    assert send_due_webhooks(app) == 0
    assert receiver.received() == []


def test_a_rotated_secret_and_the_one_before_both_sign_for_a_day(app, client, routed,
                                                                 private_allowed, receiver):
    """After a rotation each delivery carries two signatures, space-separated; a receiver
    that knows either secret verifies it."""
    key_a, _ = two_clinics(routed)
    created = register_webhook(client, key_a, receiver.url("/a")).get_json()
    rotated = client.post(f"/api/v1/clinic/webhooks/{created['id']}/rotate-secret",
                          headers=key_a)
    assert rotated.status_code == 200, rotated.get_json()
    new = rotated.get_json()
    assert new["secret"].startswith("whsec_") and new["secret"] != created["secret"]
    overlap_ends = new["previous_secret_expires_at"]
    assert abs(datetime.fromisoformat(overlap_ends) - (utcnow() + timedelta(hours=24))) \
        < timedelta(minutes=1)

    receiver.expect("/a", created["secret"], new["secret"])
    assert transition(client, routed["admin"], routed["lead_id"], "closed").status_code == 200
    assert send_due_webhooks(app) == 1
    [delivery] = receiver.received("/a")
    assert len(delivery["headers"]["webhook-signature"].split(" ")) == 2
    assert delivery["verified_with"] == [created["secret"], new["secret"]]
    assert delivery["payload"]["type"] == "referral.cancelled"


def test_once_the_overlap_is_over_only_the_new_secret_signs(app, client, routed, private_allowed,
                                                            receiver, db_session):
    from leads.webhooks.models import WebhookEndpoint

    key_a, _ = two_clinics(routed)
    created = register_webhook(client, key_a, receiver.url("/a")).get_json()
    new = client.post(f"/api/v1/clinic/webhooks/{created['id']}/rotate-secret",
                      headers=key_a).get_json()
    endpoint = db_session.get(WebhookEndpoint, created["id"])
    endpoint.previous_secret_until = utcnow() - timedelta(seconds=1)
    db_session.commit()

    receiver.expect("/a", created["secret"], new["secret"])
    assert transition(client, routed["admin"], routed["lead_id"], "closed").status_code == 200
    send_due_webhooks(app)
    [delivery] = receiver.received("/a")
    assert delivery["verified_with"] == [new["secret"]]
    assert " " not in delivery["headers"]["webhook-signature"]


def test_every_attempt_is_listed_newest_first_and_paged(app, client, routed, private_allowed,
                                                        receiver, db_session):
    from leads.webhooks.models import WebhookMessage

    key_a, _ = two_clinics(routed)
    created = register_webhook(client, key_a, receiver.url("/a")).get_json()
    receiver.expect("/a", created["secret"])
    receiver.answer(503)
    assert transition(client, routed["admin"], routed["lead_id"], "closed").status_code == 200
    for _ in range(3):
        assert send_due_webhooks(app) == 1
        db_session.execute(WebhookMessage.__table__.update().values(next_attempt_at=utcnow()))
        db_session.commit()
    receiver.answer(200)
    send_due_webhooks(app)

    url = f"/api/v1/clinic/webhooks/{created['id']}/deliveries"
    first = client.get(url, headers=key_a, query_string={"limit": 3}).get_json()
    assert [a["status_code"] for a in first["items"]] == [200, 503, 503]
    assert first["items"][0]["succeeded"] is True and first["items"][1]["succeeded"] is False
    assert {a["event"] for a in first["items"]} == {"referral.cancelled"}
    # One message: the same webhook-id on every attempt.
    assert len({a["webhook_id"] for a in first["items"]}) == 1
    assert all(a["at"] and a["error"] is None for a in first["items"])
    rest = client.get(url, headers=key_a,
                      query_string={"limit": 3, "cursor": first["next_cursor"]}).get_json()
    assert [a["status_code"] for a in rest["items"]] == [503] and rest["next_cursor"] is None
    assert len({r["headers"]["webhook-id"] for r in receiver.received()}) == 1
    field_errors(client.get(url, headers=key_a, query_string={"limit": 0}))


def test_admins_see_each_clinics_endpoints_with_their_recent_failures(
        app, client, routed, private_allowed, receiver):
    key_a, _ = two_clinics(routed)
    clinic_a = min(routed["referrals"])
    healthy = register_webhook(client, key_a, receiver.url("/fine"), ["lead.booked"]).get_json()
    failing = register_webhook(client, key_a, receiver.url("/a")).get_json()
    receiver.answer(410)
    assert transition(client, routed["admin"], routed["lead_id"], "closed").status_code == 200
    send_due_webhooks(app)

    response = client.get(f"/api/v1/clinics/{clinic_a}/webhooks", headers=routed["admin"])
    assert response.status_code == 200, response.get_json()
    items = {item["id"]: item for item in response.get_json()["items"]}
    assert set(items) == {healthy["id"], failing["id"]}
    assert items[healthy["id"]]["recent_failures"] == [] and items[healthy["id"]]["active"]
    gone = items[failing["id"]]
    assert gone["active"] is False and "410" in gone["disabled_reason"]
    [failure] = gone["recent_failures"]
    assert failure["status_code"] == 410 and failure["event"] == "referral.cancelled"
    assert all("secret" not in item for item in items.values())

    problem(client.get(f"/api/v1/clinics/{clinic_a}/webhooks", headers=routed["coordinator"]),
            403)
    problem(client.get("/api/v1/clinics/999999/webhooks", headers=routed["admin"]), 404)
