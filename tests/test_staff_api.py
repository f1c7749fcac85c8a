"""The coordinators' and admins' API (CONTRACT §4) through HTTP: credentials and roles, leads
with their filters, paging, changes, transitions, notes, reroute, export and the funnel, and
the catalogue admins keep (clinics, accreditations, API keys, treatments)."""

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select, update

from leads import routing
from leads.api.paging import encode_cursor
from leads.models import Lead, Referral
from tests.conftest import TODAY, inquiry_body

PROBLEM = "application/problem+json"
LEAD_KEYS = {"id", "reference", "status", "priority", "tags", "assigned_to", "treatment",
             "patient", "condition", "destinations", "budget", "travel_window", "consent",
             "source", "duplicate_of", "created_at", "updated_at"}
_addresses = itertools.count(1)


# --- helpers shared with the clinic API tests -------------------------------------------------

def problem(response, status: int) -> dict:
    """Asserts an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == PROBLEM, response.mimetype
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


def field_errors(response) -> dict:
    body = problem(response, 422)
    assert isinstance(body["errors"], dict) and body["errors"]
    return body["errors"]


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def is_utc_instant(text: str) -> bool:
    moment = datetime.fromisoformat(text)
    return moment.utcoffset() == timedelta(0)


def submit(client, **changes) -> dict:
    """Posts an inquiry from an address of its own (the intake allows 10 a minute per
    address); answers the 202 body."""
    n = next(_addresses)
    address = f"10.9.{n // 250 % 250}.{n % 250 + 1}"
    response = client.post("/api/v1/inquiries", json=inquiry_body(**changes),
                           environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def status_token(accepted: dict) -> str:
    return parse_qs(urlparse(accepted["status_url"]).query)["token"][0]


def lead_id_of(db_session, reference: str) -> int:
    return db_session.scalar(select(Lead.id).where(Lead.reference == reference))


def route(app, db_session, reference: str) -> int:
    """What the worker does with a new lead; answers the lead's id."""
    lead_id = lead_id_of(db_session, reference)
    with app.app_context():
        routing.process_lead(lead_id)
    db_session.expire_all()
    return lead_id


@pytest.fixture
def staff(app, catalogue):
    """Tokens for the catalogue's admin and coordinator (and the inactive user)."""
    from leads.auth import issue_staff_token
    from leads.extensions import db
    from leads.models import User

    with app.app_context():
        users = {u.email.split("@")[0]: u for u in db.session.scalars(select(User))}
        tokens = {name: issue_staff_token(user) for name, user in users.items()}
        ids = {name: user.id for name, user in users.items()}
        db.session.commit()
    return {
        "admin": auth(tokens["admin"]), "coordinator": auth(tokens["coord"]),
        "inactive": auth(tokens["gone"]),
        "admin_id": ids["admin"], "coordinator_id": ids["coord"],
        "catalogue": catalogue,
    }


def new_clinic_body(**changes) -> dict:
    body = {"name": "Clínica Nueva", "city": "Panama City", "country": "PA",
            "email": "intake@nueva.example", "phone": "+507 264 0000",
            "website": "https://nueva.example", "languages": ["es", "en"],
            "treatments": [{"slug": "stem-cell-spine-arthritis", "price_min": 9000,
                            "price_max": 12000, "currency": "USD"}]}
    body.update(changes)
    return body


# --- credentials and roles -----------------------------------------------------------------

STAFF_READS = ["/api/v1/me", "/api/v1/leads", "/api/v1/leads/1", "/api/v1/leads/export.csv",
               "/api/v1/stats/funnel", "/api/v1/clinics", "/api/v1/clinics/1"]


@pytest.mark.parametrize("path", STAFF_READS)
def test_staff_endpoints_answer_401_without_or_with_a_bad_token(client, staff, path):
    for headers in ({}, auth("nonsense"), auth("stf_" + "x" * 43), {"Authorization": "Basic eDp5"},
                    staff["inactive"]):
        response = client.get(path, headers=headers)
        problem(response, 401)
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_writes_answer_401_without_a_token(client, staff):
    clinic_id = min(staff["catalogue"]["eligible"])
    for method, path in [("post", "/api/v1/clinics"), ("patch", f"/api/v1/clinics/{clinic_id}"),
                         ("post", "/api/v1/treatments"), ("post", "/api/v1/leads/1/notes"),
                         ("delete", f"/api/v1/clinics/{clinic_id}/api-keys/1")]:
        problem(getattr(client, method)(path, json={}), 401)


def test_a_clinic_key_is_not_a_staff_token(client, staff):
    clinic_id = min(staff["catalogue"]["eligible"])
    key = client.post(f"/api/v1/clinics/{clinic_id}/api-keys", headers=staff["admin"])
    problem(client.get("/api/v1/leads", headers=auth(key.get_json()["key"])), 401)


def test_a_coordinator_reads_but_may_not_change_the_catalogue(client, staff):
    coordinator, admin = staff["coordinator"], staff["admin"]
    clinic_id = min(staff["catalogue"]["eligible"])
    accreditation = client.post(f"/api/v1/clinics/{clinic_id}/accreditations", headers=admin,
                                json={"body": "ISO 9001"}).get_json()
    key = client.post(f"/api/v1/clinics/{clinic_id}/api-keys", headers=admin).get_json()
    writes = [
        ("post", "/api/v1/clinics", new_clinic_body()),
        ("patch", f"/api/v1/clinics/{clinic_id}", {"name": "Renamed"}),
        ("post", f"/api/v1/clinics/{clinic_id}/accreditations", {"body": "JCI"}),
        ("patch", f"/api/v1/clinics/{clinic_id}/accreditations/{accreditation['id']}",
         {"verified": True}),
        ("post", f"/api/v1/clinics/{clinic_id}/api-keys", None),
        ("delete", f"/api/v1/clinics/{clinic_id}/api-keys/{key['id']}", None),
        ("post", "/api/v1/treatments", {"slug": "hair-transplant", "name": "Hair transplant",
                                        "specialty": "cosmetic"}),
        ("patch", "/api/v1/treatments/stem-cell-spine-arthritis", {"active": False}),
    ]
    for method, path, body in writes:
        response = getattr(client, method)(path, headers=coordinator, json=body)
        problem(response, 403)
    # Nothing changed, and the key still works.
    clinic = client.get(f"/api/v1/clinics/{clinic_id}", headers=coordinator)
    assert clinic.status_code == 200 and clinic.get_json()["name"] == "fit0"
    assert [a["verified"] for a in clinic.get_json()["accreditations"]] == [True, False]
    assert client.get("/api/v1/clinic/referrals", headers=auth(key["key"])).status_code == 200
    assert client.get("/api/v1/clinics", headers=coordinator).status_code == 200
    assert client.get("/api/v1/leads", headers=coordinator).status_code == 200
    treatments = client.get("/api/v1/treatments", headers=coordinator).get_json()
    assert [t["slug"] for t in treatments] == ["stem-cell-spine-arthritis"]


def test_me_answers_who_the_token_belongs_to(client, staff):
    me = client.get("/api/v1/me", headers=staff["coordinator"])
    assert me.status_code == 200
    assert me.get_json() == {"id": staff["coordinator_id"], "email": "coord@care.example",
                             "role": "coordinator"}
    assert client.get("/api/v1/me", headers=staff["admin"]).get_json() == {
        "id": staff["admin_id"], "email": "admin@care.example", "role": "admin"}


# --- the lead list ---------------------------------------------------------------------------

def listed(client, headers, **query) -> list[dict]:
    response = client.get("/api/v1/leads", headers=headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"items", "next_cursor"}
    return body["items"]


def references(items) -> list[str]:
    return [item["reference"] for item in items]


def test_lead_in_the_list_has_the_contract_shape(client, staff):
    accepted = submit(client)
    [lead] = listed(client, staff["coordinator"])
    assert set(lead) >= LEAD_KEYS
    assert lead["reference"] == accepted["reference"]
    assert lead["status"] == "received" and lead["priority"] == "normal"
    assert lead["tags"] == [] and lead["assigned_to"] is None and lead["duplicate_of"] is None
    assert lead["treatment"] == "stem-cell-spine-arthritis"
    assert lead["patient"]["first_name"] == "Ana" and lead["patient"]["last_name"] == "Ruiz"
    assert lead["patient"]["phone"] == "+14155550100"  # E.164
    assert lead["patient"]["country"] == "US" and lead["patient"]["language"] == "es"
    assert lead["destinations"] == ["MX", "PA"]
    assert lead["budget"] == {"amount": 12000, "currency": "USD"}
    assert lead["travel_window"] == {"earliest": "2027-02-01", "latest": "2027-04-30"}
    assert lead["consent"] == {"data_processing": True, "share_with_clinics": True,
                               "marketing": False}
    assert lead["source"]["utm_source"] == "google"
    assert is_utc_instant(lead["created_at"]) and is_utc_instant(lead["updated_at"])
    assert "referrals" not in lead and "timeline" not in lead


@pytest.fixture
def varied_leads(app, client, db_session, staff):
    """Six leads that differ in one filtered property each; answers their references."""
    created = client.post("/api/v1/treatments", headers=staff["admin"], json={
        "slug": "dental-implants", "name": "Dental implants", "specialty": "dentistry"})
    assert created.status_code == 201
    refs = {
        "plain": submit(client)["reference"],
        "routed": submit(client, destinations=["MX"])["reference"],
        "dental": submit(client, treatment="dental-implants", destinations=[])["reference"],
        "german": submit(client, patient={**inquiry_body()["patient"], "country": "DE",
                                          "phone": None, "first_name": "Jürgen",
                                          "last_name": "Baumgartner",
                                          "email": "J.Baum@Example.org"})["reference"],
        "panama": submit(client, destinations=["PA"])["reference"],
        "assigned": submit(client)["reference"],
    }
    route(app, db_session, refs["routed"])
    assigned = lead_id_of(db_session, refs["assigned"])
    response = client.patch(f"/api/v1/leads/{assigned}", headers=staff["admin"],
                            json={"assigned_to": staff["coordinator_id"]})
    assert response.status_code == 200
    return refs


def test_list_is_newest_first(client, staff, varied_leads):
    items = listed(client, staff["coordinator"])
    assert references(items) == list(reversed(varied_leads.values()))
    stamps = [datetime.fromisoformat(i["created_at"]) for i in items]
    assert stamps == sorted(stamps, reverse=True)


def test_list_filters_by_status_treatment_country_and_destination(client, staff, varied_leads):
    coordinator = staff["coordinator"]
    assert references(listed(client, coordinator, status="routed")) == [varied_leads["routed"]]
    assert len(listed(client, coordinator, status="received")) == 5
    assert listed(client, coordinator, status="quoted") == []
    assert references(listed(client, coordinator, treatment="dental-implants")) == [
        varied_leads["dental"]]
    assert len(listed(client, coordinator, treatment="stem-cell-spine-arthritis")) == 5
    assert references(listed(client, coordinator, country="DE")) == [varied_leads["german"]]
    assert references(listed(client, coordinator, country="de")) == [varied_leads["german"]]
    # Every lead but the dental one (no destinations) and the Mexican one goes to Panama.
    to_panama = set(references(listed(client, coordinator, destination="PA")))
    assert to_panama == set(varied_leads.values()) - {varied_leads["dental"],
                                                      varied_leads["routed"]}
    to_mexico = set(references(listed(client, coordinator, destination="MX")))
    assert varied_leads["panama"] not in to_mexico and varied_leads["routed"] in to_mexico
    both = listed(client, coordinator, destination="MX", status="routed", country="US")
    assert references(both) == [varied_leads["routed"]]


def test_list_filters_by_assignee(client, staff, varied_leads):
    assigned = [varied_leads["assigned"]]
    assert references(listed(client, staff["coordinator"], assigned_to="me")) == assigned
    assert listed(client, staff["admin"], assigned_to="me") == []
    assert references(listed(client, staff["admin"],
                             assigned_to=str(staff["coordinator_id"]))) == assigned
    unassigned = references(listed(client, staff["admin"], assigned_to="none"))
    assert len(unassigned) == 5 and varied_leads["assigned"] not in unassigned


def test_list_searches_reference_name_and_email(client, staff, varied_leads):
    coordinator, german = staff["coordinator"], [varied_leads["german"]]
    assert references(listed(client, coordinator, q=varied_leads["panama"])) == [
        varied_leads["panama"]]
    assert references(listed(client, coordinator, q=varied_leads["panama"].lower())) == [
        varied_leads["panama"]]
    assert references(listed(client, coordinator, q="Baumgartner")) == german
    assert references(listed(client, coordinator, q="baumgart")) == german
    assert references(listed(client, coordinator, q="Jürgen Baumgartner")) == german
    assert references(listed(client, coordinator, q="j.baum@example.org")) == german
    assert references(listed(client, coordinator, q="J.Baum@EXAMPLE.org")) == german
    assert len(listed(client, coordinator, q="Ruiz")) == 5
    assert listed(client, coordinator, q="nobody@example.org") == []
    for wildcard in ("%", "_", "R_iz", "\\"):  # letters to search for, not patterns
        assert listed(client, coordinator, q=wildcard) == [], wildcard


def test_list_filters_by_creation_time(client, db_session, staff, varied_leads):
    days = {"plain": 10, "routed": 5, "dental": 3, "german": 1}
    for name, ago in days.items():
        db_session.execute(update(Lead).where(Lead.reference == varied_leads[name]).values(
            created_at=datetime.now(UTC) - timedelta(days=ago)))
    db_session.commit()
    coordinator = staff["coordinator"]
    since = (TODAY - timedelta(days=5)).isoformat()
    until = (TODAY - timedelta(days=3)).isoformat()
    assert references(listed(client, coordinator, created_from=since, created_to=until)) == [
        varied_leads["dental"], varied_leads["routed"]]
    assert set(references(listed(client, coordinator, created_to=until))) == {
        varied_leads["plain"], varied_leads["routed"], varied_leads["dental"]}
    recent = set(references(listed(client, coordinator, created_from=TODAY.isoformat())))
    assert recent == {varied_leads["panama"], varied_leads["assigned"]}
    moment = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    assert varied_leads["dental"] not in references(
        listed(client, coordinator, created_from=moment))
    assert varied_leads["german"] in references(listed(client, coordinator, created_from=moment))


def test_bad_filters_answer_422_naming_the_field(client, staff):
    coordinator = staff["coordinator"]
    for name, value in [("status", "bogus"), ("country", "XX"), ("destination", "Mexico"),
                        ("assigned_to", "somebody"), ("assigned_to", "\u00b2"),
                        ("assigned_to", "9" * 20), ("created_from", "yesterday"),
                        ("created_to", "2027-13-01")]:
        errors = field_errors(client.get("/api/v1/leads", headers=coordinator,
                                         query_string={name: value}))
        assert name in errors, (name, errors)


def test_list_pages_by_cursor(client, staff):
    made = [submit(client)["reference"] for _ in range(5)]
    coordinator, seen, cursor = staff["coordinator"], [], None
    sizes = []
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/leads", headers=coordinator, query_string=query).get_json()
        sizes.append(len(body["items"]))
        seen += references(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert seen == list(reversed(made))
    assert len(listed(client, coordinator)) == 5  # the default limit is 50
    assert len(listed(client, coordinator, limit=200)) == 5
    exact = client.get("/api/v1/leads", headers=coordinator, query_string={"limit": 5})
    assert exact.get_json()["next_cursor"] is None


def test_limit_outside_1_to_200_answers_422(client, staff):
    for limit in ("0", "201", "-1", "many"):
        errors = field_errors(client.get("/api/v1/leads", headers=staff["coordinator"],
                                         query_string={"limit": limit}))
        assert "limit" in errors
    for limit in (0, 201):
        assert "limit" in field_errors(client.get("/api/v1/clinics", headers=staff["admin"],
                                                  query_string={"limit": limit}))


def test_a_cursor_the_api_did_not_give_out_answers_422(client, staff):
    for cursor in ("not-a-cursor!", encode_cursor(2**31), "aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk",
                   "aWQ6LTU"):  # the last two: `id:99999999999999999999`, `id:-5`
        for path in ("/api/v1/leads", "/api/v1/clinics"):
            errors = field_errors(client.get(path, headers=staff["coordinator"],
                                             query_string={"cursor": cursor}))
            assert "cursor" in errors


# --- one lead --------------------------------------------------------------------------------

def detail(client, headers, lead_id) -> dict:
    response = client.get(f"/api/v1/leads/{lead_id}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_lead_detail_has_referrals_with_reasons_and_a_timeline_oldest_first(
        app, client, db_session, staff):
    lead_id = route(app, db_session, submit(client)["reference"])
    lead = detail(client, staff["coordinator"], lead_id)
    assert set(lead) >= LEAD_KEYS | {"referrals", "timeline"}
    assert lead["status"] == "routed"
    assert len(lead["referrals"]) == 3
    eligible = staff["catalogue"]["eligible"]
    for referral in lead["referrals"]:
        assert set(referral) >= {"id", "clinic", "status", "score", "reasons", "created_at",
                                 "responded_at"}
        assert set(referral["clinic"]) >= {"id", "name", "city", "country"}
        assert referral["clinic"]["id"] in eligible
        assert referral["clinic"]["city"] == "Tijuana" and referral["clinic"]["country"] == "MX"
        assert referral["status"] == "requested" and referral["responded_at"] is None
        assert isinstance(referral["score"], (int, float))
        assert is_utc_instant(referral["created_at"])
        assert {r["factor"] for r in referral["reasons"]} == {
            "language", "budget", "accreditation", "responsiveness", "load"}
        for reason in referral["reasons"]:
            assert set(reason) >= {"factor", "value", "weight", "note"}
            assert isinstance(reason["value"], (int, float))
            assert isinstance(reason["weight"], (int, float))
            assert isinstance(reason["note"], str)
    timeline = lead["timeline"]
    assert timeline[0]["kind"] == "received" and timeline[0]["actor"] == "patient"
    assert [e["kind"] for e in timeline].count("referred") == 3
    assert timeline[-1]["kind"] == "status_changed"
    assert timeline[-1]["data"]["to"] == "routed"
    stamps = [datetime.fromisoformat(e["at"]) for e in timeline]
    assert stamps == sorted(stamps) and all(s.utcoffset() == timedelta(0) for s in stamps)
    for event in timeline:
        assert set(event) >= {"at", "actor", "kind", "data"}


def test_unknown_lead_answers_404(client, staff):
    for lead_id in ("999999", "0", "99999999999"):
        problem(client.get(f"/api/v1/leads/{lead_id}", headers=staff["coordinator"]), 404)
    problem(client.patch("/api/v1/leads/999999", headers=staff["coordinator"],
                         json={"priority": "high"}), 404)
    problem(client.post("/api/v1/leads/999999/notes", headers=staff["coordinator"],
                        json={"body": "hello"}), 404)
    problem(client.post("/api/v1/leads/999999/transitions", headers=staff["coordinator"],
                        json={"to": "spam"}), 404)
    problem(client.post("/api/v1/leads/999999/reroute", headers=staff["coordinator"],
                        json={}), 404)


def events(lead: dict, kind: str) -> list[dict]:
    return [e for e in lead["timeline"] if e["kind"] == kind]


def test_patch_assigns_prioritises_and_tags_with_timeline_events(client, db_session, staff):
    lead_id = lead_id_of(db_session, submit(client)["reference"])
    coordinator, me = staff["coordinator"], f"user:{staff['coordinator_id']}"
    response = client.patch(f"/api/v1/leads/{lead_id}", headers=coordinator, json={
        "assigned_to": staff["coordinator_id"], "priority": "urgent",
        "tags": ["vip", "spanish-speaking"]})
    assert response.status_code == 200
    lead = response.get_json()
    assert lead["assigned_to"] == staff["coordinator_id"]
    assert lead["priority"] == "urgent" and lead["tags"] == ["vip", "spanish-speaking"]
    lead = detail(client, coordinator, lead_id)
    assert (lead["assigned_to"], lead["priority"]) == (staff["coordinator_id"], "urgent")
    changes = [e for e in lead["timeline"]
               if e["kind"] in ("assigned", "priority_changed", "tags_changed")]
    assert len(changes) == 3 and all(e["actor"] == me for e in changes)

    # Each field alone; unassigning with null; the others are left as they are.
    lead = client.patch(f"/api/v1/leads/{lead_id}", headers=staff["admin"],
                        json={"assigned_to": None}).get_json()
    assert lead["assigned_to"] is None and lead["priority"] == "urgent"
    assert events(detail(client, coordinator, lead_id), "assigned")[-1]["actor"] == (
        f"user:{staff['admin_id']}")
    lead = client.patch(f"/api/v1/leads/{lead_id}", headers=coordinator,
                        json={"priority": "low"}).get_json()
    assert lead["priority"] == "low" and lead["tags"] == ["vip", "spanish-speaking"]


def test_patch_refuses_bad_values_with_422(client, db_session, staff):
    lead_id = lead_id_of(db_session, submit(client)["reference"])
    coordinator = staff["coordinator"]
    patch = f"/api/v1/leads/{lead_id}"
    assert "priority" in field_errors(client.patch(patch, headers=coordinator,
                                                   json={"priority": "asap"}))
    assert "assigned_to" in field_errors(client.patch(patch, headers=coordinator,
                                                      json={"assigned_to": 999999}))
    assert "tags" in field_errors(client.patch(patch, headers=coordinator,
                                               json={"tags": "vip"}))
    assert "status" in field_errors(client.patch(patch, headers=coordinator,
                                                 json={"status": "closed"}))
    errors = field_errors(client.patch(patch, headers=coordinator,
                                       json={"priority": "asap", "tags": [1]}))
    assert "priority" in errors and any(k.startswith("tags") for k in errors)
    # A check that needs the database is named beside the others, not after them.
    errors = field_errors(client.patch(patch, headers=coordinator,
                                       json={"priority": "asap", "assigned_to": 999999}))
    assert set(errors) == {"priority", "assigned_to"}
    problem(client.patch(patch, headers=coordinator, data="{", content_type="application/json"),
            400)
    lead = detail(client, coordinator, lead_id)
    assert lead["priority"] == "normal" and lead["tags"] == [] and lead["status"] == "received"


# --- transitions, notes, reroute ----------------------------------------------------------

def transition(client, headers, lead_id, to, reason=None):
    body = {"to": to} if reason is None else {"to": to, "reason": reason}
    return client.post(f"/api/v1/leads/{lead_id}/transitions", headers=headers, json=body)


def test_a_refused_transition_answers_409_naming_the_allowed_targets(client, db_session, staff):
    lead_id = lead_id_of(db_session, submit(client)["reference"])
    body = problem(transition(client, staff["coordinator"], lead_id, "booked"), 409)
    for target in ("routed", "needs_review", "spam", "duplicate"):
        assert target in body["detail"]
    assert detail(client, staff["coordinator"], lead_id)["status"] == "received"
    assert "to" in field_errors(transition(client, staff["coordinator"], lead_id, "bogus"))
    assert "to" in field_errors(client.post(f"/api/v1/leads/{lead_id}/transitions",
                                            headers=staff["coordinator"], json={}))


def test_closing_a_routed_lead_cancels_its_open_referrals(app, client, db_session, staff):
    lead_id = route(app, db_session, submit(client)["reference"])
    coordinator, me = staff["coordinator"], f"user:{staff['coordinator_id']}"
    response = transition(client, coordinator, lead_id, "closed", "Patient chose elsewhere.")
    assert response.status_code == 200
    assert response.get_json()["status"] == "closed"
    lead = detail(client, coordinator, lead_id)
    assert lead["status"] == "closed"
    assert [r["status"] for r in lead["referrals"]] == ["cancelled"] * 3
    [closed] = [e for e in events(lead, "status_changed") if e["data"].get("to") == "closed"]
    assert closed["actor"] == me
    assert closed["data"]["from"] == "routed" and closed["data"]["reason"] == (
        "Patient chose elsewhere.")
    cancels = [e for e in events(lead, "referral_status_changed")
               if e["data"].get("to") == "cancelled"]
    assert len(cancels) == 3 and all(e["actor"] == me for e in cancels)

    # closed -> received (reopen); from received, closing is not allowed.
    assert transition(client, coordinator, lead_id, "received").status_code == 200
    body = problem(transition(client, coordinator, lead_id, "closed"), 409)
    assert "routed" in body["detail"]
    lead = detail(client, coordinator, lead_id)
    assert lead["status"] == "received"
    assert events(lead, "status_changed")[-1]["actor"] == me


def test_every_transition_the_pipeline_allows_is_a_timeline_event(client, db_session, staff):
    lead_id = lead_id_of(db_session, submit(client)["reference"])
    admin, me = staff["admin"], f"user:{staff['admin_id']}"
    walk = ["spam", "received", "needs_review", "closed", "received", "duplicate", "received"]
    for target in walk:
        response = transition(client, admin, lead_id, target)
        assert response.status_code == 200, (target, response.get_json())
        assert response.get_json()["status"] == target
    changes = events(detail(client, admin, lead_id), "status_changed")
    assert [(e["data"]["from"], e["data"]["to"]) for e in changes] == list(
        zip(["received"] + walk[:-1], walk, strict=True))
    assert {e["actor"] for e in changes} == {me}


def test_notes_answer_201_and_show_on_the_timeline(client, db_session, staff):
    lead_id = lead_id_of(db_session, submit(client)["reference"])
    response = client.post(f"/api/v1/leads/{lead_id}/notes", headers=staff["coordinator"],
                           json={"body": "Called the patient; prefers mornings."})
    assert response.status_code == 201
    note = response.get_json()
    assert note["body"] == "Called the patient; prefers mornings." and note["id"]
    [event] = events(detail(client, staff["admin"], lead_id), "note_added")
    assert event["actor"] == f"user:{staff['coordinator_id']}"
    assert event["data"]["body"] == "Called the patient; prefers mornings."
    assert is_utc_instant(event["at"])
    for bad in ({}, {"body": ""}, {"body": "   "}, {"body": 5}, {"body": "x" * 10001}):
        assert "body" in field_errors(client.post(f"/api/v1/leads/{lead_id}/notes",
                                                  headers=staff["coordinator"], json=bad))
    assert len(events(detail(client, staff["admin"], lead_id), "note_added")) == 1


def referred_clinics(lead: dict) -> set[int]:
    return {r["clinic"]["id"] for r in lead["referrals"]}


def test_reroute_skips_excluded_and_already_referred_clinics(app, client, db_session, staff):
    lead_id = route(app, db_session, submit(client)["reference"])
    coordinator, eligible = staff["coordinator"], staff["catalogue"]["eligible"]
    first = referred_clinics(detail(client, coordinator, lead_id))
    [left] = eligible - first
    reroute = f"/api/v1/leads/{lead_id}/reroute"

    response = client.post(reroute, headers=coordinator, json={"exclude_clinic_ids": [left]})
    assert response.status_code == 202
    assert referred_clinics(response.get_json()) == first  # nothing else fits

    # Three open referrals already: MAX_CLINICS_PER_LEAD (3) clinics have the lead.
    response = client.post(reroute, headers=coordinator, json={"exclude_clinic_ids": []})
    assert response.status_code == 202
    assert len(response.get_json()["referrals"]) == 3

    # Excluding one of them makes room for one more, in place of it.
    dropped = min(first)
    response = client.post(reroute, headers=coordinator, json={"exclude_clinic_ids": [dropped]})
    assert response.status_code == 202
    lead = detail(client, coordinator, lead_id)
    assert referred_clinics(lead) == eligible and len(lead["referrals"]) == 4
    assert lead["status"] == "routed"
    [new] = [r for r in lead["referrals"] if r["clinic"]["id"] == left]
    assert new["status"] == "requested" and new["reasons"]
    rerouted = events(lead, "rerouted")
    assert len(rerouted) == 3 and {e["actor"] for e in rerouted} == {
        f"user:{staff['coordinator_id']}"}
    [referred] = [e for e in events(lead, "referred") if e["data"]["clinic_id"] == left]
    assert referred["actor"] == f"user:{staff['coordinator_id']}"

    # Nothing left: still 202, nothing new.
    assert client.post(reroute, headers=coordinator, json={}).status_code == 202
    assert len(detail(client, coordinator, lead_id)["referrals"]) == 4
    assert "exclude_clinic_ids.0" in field_errors(
        client.post(reroute, headers=coordinator, json={"exclude_clinic_ids": ["x"]}))


def test_reroute_is_refused_with_409_outside_routed_and_needs_review(
        app, client, db_session, staff):
    coordinator = staff["coordinator"]
    received = lead_id_of(db_session, submit(client)["reference"])
    problem(client.post(f"/api/v1/leads/{received}/reroute", headers=coordinator, json={}), 409)
    closed = route(app, db_session, submit(client)["reference"])
    assert transition(client, coordinator, closed, "closed").status_code == 200
    problem(client.post(f"/api/v1/leads/{closed}/reroute", headers=coordinator, json={}), 409)
    assert all(r["status"] == "cancelled"
               for r in detail(client, coordinator, closed)["referrals"])
    spam = lead_id_of(db_session, submit(client, website="http://spam.example")["reference"])
    problem(client.post(f"/api/v1/leads/{spam}/reroute", headers=coordinator, json={}), 409)


def test_reroute_never_sends_a_lead_without_consent_to_clinics(app, client, db_session, staff):
    reference = submit(client, consent={"data_processing": True,
                                        "share_with_clinics": False})["reference"]
    lead_id = route(app, db_session, reference)
    coordinator = staff["coordinator"]
    assert detail(client, coordinator, lead_id)["status"] == "needs_review"
    # Rerouting is allowed from review, but matching does not run: no clinic may see it.
    response = client.post(f"/api/v1/leads/{lead_id}/reroute", headers=coordinator, json={})
    assert response.status_code == 202
    assert response.get_json()["referrals"] == []
    problem(transition(client, coordinator, lead_id, "routed"), 409)
    lead = detail(client, coordinator, lead_id)
    assert lead["status"] == "needs_review" and lead["referrals"] == []
    [rerouted] = events(lead, "rerouted")
    assert rerouted["data"]["referred"] == [] and "consent" in rerouted["data"]["reason"]


# --- export ---------------------------------------------------------------------------------

def exported(client, headers, **query) -> list[dict]:
    response = client.get("/api/v1/leads/export.csv", headers=headers, query_string=query)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header, body = rows[0], rows[1:]
    assert {"id", "reference", "status", "treatment", "email"} <= set(header)
    return [dict(zip(header, row, strict=True)) for row in body]


def test_export_has_a_header_and_a_row_per_lead_with_the_same_filters(
        client, staff, varied_leads):
    coordinator = staff["coordinator"]
    rows = exported(client, coordinator)
    assert [r["reference"] for r in rows] == list(reversed(varied_leads.values()))
    german = [r for r in rows if r["reference"] == varied_leads["german"]][0]
    assert german["email"].lower() == "j.baum@example.org" and german["country"] == "DE"
    assert german["treatment"] == "stem-cell-spine-arthritis"
    assert [r["reference"] for r in exported(client, coordinator, status="routed")] == [
        varied_leads["routed"]]
    assert [r["reference"] for r in exported(client, coordinator, treatment="dental-implants",
                                             q="Ruiz")] == [varied_leads["dental"]]
    assert [r["reference"] for r in exported(client, coordinator, assigned_to="me")] == [
        varied_leads["assigned"]]
    assert exported(client, coordinator, status="booked") == []
    assert "status" in field_errors(client.get("/api/v1/leads/export.csv", headers=coordinator,
                                               query_string={"status": "bogus"}))


def test_export_keeps_spreadsheet_formulas_out(client, staff):
    evil = {**inquiry_body()["patient"], "first_name": "=HYPERLINK(\"http://x\")"}
    submit(client, patient=evil)
    [row] = exported(client, staff["coordinator"])
    assert not row["first_name"].startswith("=")
    assert row["phone"] == "+14155550100"


# --- the funnel ------------------------------------------------------------------------------

def test_funnel_counts_leads_and_clinic_answers(app, client, db_session, staff):
    routed = route(app, db_session, submit(client)["reference"])
    submit(client)
    spam = submit(client, website="bot")
    coordinator = staff["coordinator"]
    referral = db_session.scalars(select(Referral).where(Referral.lead_id == routed)
                                  .order_by(Referral.id)).first()
    key = client.post(f"/api/v1/clinics/{referral.clinic_id}/api-keys",
                      headers=staff["admin"]).get_json()["key"]
    assert client.post(f"/api/v1/clinic/referrals/{referral.id}/accept",
                       headers=auth(key)).status_code == 200

    response = client.get("/api/v1/stats/funnel", headers=coordinator)
    assert response.status_code == 200
    funnel = response.get_json()
    assert set(funnel) == {"by_status", "by_treatment", "clinics"}
    assert funnel["by_status"] == {"routed": 1, "received": 1, "spam": 1}
    assert funnel["by_treatment"] == {"stem-cell-spine-arthritis": 3}
    clinics = {c["clinic_id"]: c for c in funnel["clinics"]}
    assert len(clinics) == 3 and set(clinics) <= staff["catalogue"]["eligible"]
    for entry in clinics.values():
        assert set(entry) == {"clinic_id", "name", "referrals", "accepted", "acceptance_rate",
                              "median_hours_to_first_answer"}
        assert entry["referrals"] == 1
    accepting = clinics[referral.clinic_id]
    assert accepting["accepted"] == 1 and accepting["acceptance_rate"] == 1
    assert 0 <= accepting["median_hours_to_first_answer"] < 1
    others = [c for c in clinics.values() if c["clinic_id"] != referral.clinic_id]
    assert all(c["accepted"] == 0 and c["acceptance_rate"] == 0 for c in others)
    assert all(c["median_hours_to_first_answer"] is None for c in others)

    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    empty = client.get("/api/v1/stats/funnel", headers=coordinator,
                       query_string={"created_from": tomorrow}).get_json()
    assert empty == {"by_status": {}, "by_treatment": {}, "clinics": []}
    today = client.get("/api/v1/stats/funnel", headers=coordinator, query_string={
        "created_from": TODAY.isoformat(), "created_to": TODAY.isoformat()}).get_json()
    assert sum(today["by_status"].values()) == 3
    assert spam["status"] == "received"  # the honeypot answer looks the same
    assert "created_from" in field_errors(client.get(
        "/api/v1/stats/funnel", headers=coordinator, query_string={"created_from": "soon"}))


# --- clinics ---------------------------------------------------------------------------------

def test_clinics_are_listed_by_cursor_and_filter(client, staff):
    admin = staff["admin"]
    body = client.get("/api/v1/clinics", headers=staff["coordinator"]).get_json()
    assert set(body) == {"items", "next_cursor"} and body["next_cursor"] is None
    assert len(body["items"]) == 10
    ids = [c["id"] for c in body["items"]]
    assert ids == sorted(ids, reverse=True)
    first = client.get("/api/v1/clinics", headers=admin, query_string={"limit": 6}).get_json()
    rest = client.get("/api/v1/clinics", headers=admin,
                      query_string={"limit": 6, "cursor": first["next_cursor"]}).get_json()
    assert [c["id"] for c in first["items"] + rest["items"]] == ids
    assert rest["next_cursor"] is None
    turkish = client.get("/api/v1/clinics", headers=admin, query_string={"country": "TR"})
    assert [c["name"] for c in turkish.get_json()["items"]] == ["turkey"]


def test_admin_creates_a_clinic_with_201_and_the_resource(client, staff):
    response = client.post("/api/v1/clinics", headers=staff["admin"], json=new_clinic_body())
    assert response.status_code == 201
    clinic = response.get_json()
    assert set(clinic) >= {"id", "name", "city", "country", "email", "phone", "website",
                           "languages", "active", "monthly_referral_cap", "treatments",
                           "accreditations"}
    assert clinic["name"] == "Clínica Nueva" and clinic["country"] == "PA"
    assert clinic["phone"] == "+5072640000"  # E.164
    assert clinic["languages"] == ["es", "en"] and clinic["active"] is True
    assert isinstance(clinic["monthly_referral_cap"], int)
    assert clinic["treatments"] == [{"slug": "stem-cell-spine-arthritis", "price_min": 9000,
                                     "price_max": 12000, "currency": "USD"}]
    assert clinic["accreditations"] == []
    fetched = client.get(f"/api/v1/clinics/{clinic['id']}", headers=staff["coordinator"])
    assert fetched.status_code == 200 and fetched.get_json() == clinic


def test_clinic_post_names_every_missing_required_field(client, staff):
    errors = field_errors(client.post("/api/v1/clinics", headers=staff["admin"], json={}))
    assert {"name", "city", "country", "email", "treatments"} <= set(errors)
    errors = field_errors(client.post("/api/v1/clinics", headers=staff["admin"],
                                      json=new_clinic_body(treatments=[])))
    assert set(errors) == {"treatments"}
    errors = field_errors(client.post("/api/v1/clinics", headers=staff["admin"], json=(
        new_clinic_body(country="Panama", email="not-an-email", languages=["spanish"],
                        website="ftp://x", unknown_field=1))))
    assert {"country", "email", "languages.0", "website", "unknown_field"} <= set(errors)
    assert client.get("/api/v1/clinics", headers=staff["admin"],
                      query_string={"country": "PA"}).get_json()["items"] == []


def test_an_unknown_treatment_slug_is_named_by_its_position(client, staff):
    body = new_clinic_body(treatments=[
        {"slug": "stem-cell-spine-arthritis", "price_min": 1, "price_max": 2, "currency": "USD"},
        {"slug": "no-such-treatment", "price_min": 1, "price_max": 2, "currency": "USD"}])
    errors = field_errors(client.post("/api/v1/clinics", headers=staff["admin"], json=body))
    assert set(errors) == {"treatments.1.slug"}
    body["treatments"] = [{"slug": "no-such-treatment", "price_min": 1, "price_max": 2,
                           "currency": "USD"}]
    errors = field_errors(client.post("/api/v1/clinics", headers=staff["admin"], json=body))
    assert set(errors) == {"treatments.0.slug"}
    body["treatments"] = [{"slug": "stem-cell-spine-arthritis", "price_min": 5,
                           "price_max": 2, "currency": "EURO"}]
    errors = field_errors(client.post("/api/v1/clinics", headers=staff["admin"], json=body))
    assert {"treatments.0.currency", "treatments.0.price_max"} <= set(errors)
    assert client.get("/api/v1/clinics", headers=staff["admin"],
                      query_string={"country": "PA"}).get_json()["items"] == []


def test_admin_changes_a_clinic(client, staff):
    admin = staff["admin"]
    clinic_id = client.post("/api/v1/clinics", headers=admin,
                            json=new_clinic_body()).get_json()["id"]
    response = client.patch(f"/api/v1/clinics/{clinic_id}", headers=admin, json={
        "name": "Clínica Renombrada", "monthly_referral_cap": 5, "active": False,
        "phone": "264 1111"})
    assert response.status_code == 200
    clinic = response.get_json()
    assert (clinic["name"], clinic["monthly_referral_cap"], clinic["active"]) == (
        "Clínica Renombrada", 5, False)
    assert clinic["phone"] == "+5072641111"  # a local number is read for the clinic's country
    assert clinic["city"] == "Panama City" and len(clinic["treatments"]) == 1
    assert client.get(f"/api/v1/clinics/{clinic_id}", headers=admin).get_json() == clinic
    assert "monthly_referral_cap" in field_errors(client.patch(
        f"/api/v1/clinics/{clinic_id}", headers=admin, json={"monthly_referral_cap": -1}))
    problem(client.patch("/api/v1/clinics/999999", headers=admin, json={"name": "x"}), 404)
    problem(client.get("/api/v1/clinics/999999", headers=admin), 404)


def test_accreditations_start_unverified_and_keep_who_verified_them(client, staff):
    admin = staff["admin"]
    clinic_id = client.post("/api/v1/clinics", headers=admin,
                            json=new_clinic_body()).get_json()["id"]
    response = client.post(f"/api/v1/clinics/{clinic_id}/accreditations", headers=admin, json={
        "body": "JCI", "reference": "JCI-123", "valid_from": "2025-01-01",
        "valid_until": (TODAY + timedelta(days=365)).isoformat(), "verified": True})
    # Unknown fields are refused; an accreditation cannot verify itself.
    assert "verified" in field_errors(response)
    # Every fault at once: the date order is judged beside the other fields' faults.
    assert set(field_errors(client.post(
        f"/api/v1/clinics/{clinic_id}/accreditations", headers=admin,
        json={"body": "", "valid_from": "2028-01-01", "valid_until": "2025-01-01", "x": 1}))
    ) == {"body", "valid_until", "x"}
    response = client.post(f"/api/v1/clinics/{clinic_id}/accreditations", headers=admin, json={
        "body": "JCI", "reference": "JCI-123", "valid_from": "2025-01-01",
        "valid_until": (TODAY + timedelta(days=365)).isoformat()})
    assert response.status_code == 201
    accreditation = response.get_json()
    assert accreditation["body"] == "JCI" and accreditation["reference"] == "JCI-123"
    assert accreditation["verified"] is False
    assert accreditation.get("verified_by") is None and accreditation.get("verified_at") is None

    path = f"/api/v1/clinics/{clinic_id}/accreditations/{accreditation['id']}"
    response = client.patch(path, headers=admin, json={"verified": True})
    assert response.status_code == 200
    verified = response.get_json()
    assert verified["verified"] is True and verified["verified_by"] == staff["admin_id"]
    assert is_utc_instant(verified["verified_at"])
    again = client.patch(path, headers=admin, json={"verified": True}).get_json()
    assert again["verified_at"] == verified["verified_at"]
    [shown] = client.get(f"/api/v1/clinics/{clinic_id}", headers=admin).get_json()[
        "accreditations"]
    assert shown == again

    assert "verified" in field_errors(client.patch(path, headers=admin, json={}))
    assert "valid_until" in field_errors(client.post(
        f"/api/v1/clinics/{clinic_id}/accreditations", headers=admin,
        json={"body": "GMP", "valid_from": "2026-01-01", "valid_until": "2025-01-01"}))
    assert "body" in field_errors(client.post(
        f"/api/v1/clinics/{clinic_id}/accreditations", headers=admin, json={}))
    other = min(staff["catalogue"]["eligible"])
    problem(client.patch(f"/api/v1/clinics/{other}/accreditations/{accreditation['id']}",
                         headers=admin, json={"verified": True}), 404)
    problem(client.post("/api/v1/clinics/999999/accreditations", headers=admin,
                        json={"body": "JCI"}), 404)


def test_verifying_an_accreditation_makes_the_clinic_eligible_for_routing(
        app, client, db_session, staff):
    admin, coordinator = staff["admin"], staff["coordinator"]
    lead_id = route(app, db_session, submit(client, destinations=["PA"])["reference"])
    assert detail(client, coordinator, lead_id)["status"] == "needs_review"
    clinic_id = client.post("/api/v1/clinics", headers=admin,
                            json=new_clinic_body()).get_json()["id"]
    accreditation = client.post(f"/api/v1/clinics/{clinic_id}/accreditations", headers=admin,
                                json={"body": "JCI"}).get_json()
    reroute = f"/api/v1/leads/{lead_id}/reroute"

    assert client.post(reroute, headers=coordinator, json={}).status_code == 202
    lead = detail(client, coordinator, lead_id)
    assert lead["status"] == "needs_review" and lead["referrals"] == []

    client.patch(f"/api/v1/clinics/{clinic_id}/accreditations/{accreditation['id']}",
                 headers=admin, json={"verified": True})
    response = client.post(reroute, headers=coordinator, json={})
    assert response.status_code == 202
    lead = detail(client, coordinator, lead_id)
    assert lead["status"] == "routed"
    assert referred_clinics(lead) == {clinic_id}
    assert events(lead, "status_changed")[-1]["actor"] == f"user:{staff['coordinator_id']}"


def test_an_api_key_is_shown_once_works_and_stops_when_revoked(client, staff):
    admin = staff["admin"]
    clinic_id = min(staff["catalogue"]["eligible"])
    response = client.post(f"/api/v1/clinics/{clinic_id}/api-keys", headers=admin)
    assert response.status_code == 201
    key = response.get_json()
    assert key["id"] and key["key"]
    secret = key["key"]
    clinic_text = client.get(f"/api/v1/clinics/{clinic_id}", headers=admin).get_data(
        as_text=True)
    assert secret not in clinic_text
    assert client.get("/api/v1/clinic/referrals", headers=auth(secret)).get_json() == {
        "items": [], "next_cursor": None}
    second = client.post(f"/api/v1/clinics/{clinic_id}/api-keys", headers=admin).get_json()
    assert second["key"] != secret

    revoke = f"/api/v1/clinics/{clinic_id}/api-keys/{key['id']}"
    assert client.delete(revoke, headers=admin).status_code in (200, 204)
    problem(client.get("/api/v1/clinic/referrals", headers=auth(secret)), 401)
    assert client.get("/api/v1/clinic/referrals",
                      headers=auth(second["key"])).status_code == 200
    other = max(staff["catalogue"]["eligible"])
    problem(client.delete(f"/api/v1/clinics/{other}/api-keys/{second['id']}", headers=admin),
            404)
    problem(client.delete(f"/api/v1/clinics/{clinic_id}/api-keys/999999", headers=admin), 404)
    problem(client.post("/api/v1/clinics/999999/api-keys", headers=admin), 404)


# --- treatments ------------------------------------------------------------------------------

def test_admin_adds_and_deactivates_treatments(client, staff):
    admin = staff["admin"]
    response = client.post("/api/v1/treatments", headers=admin, json={
        "slug": "knee-replacement", "name": "Knee replacement", "specialty": "orthopedics"})
    assert response.status_code == 201
    assert response.get_json() == {"slug": "knee-replacement", "name": "Knee replacement",
                                   "specialty": "orthopedics", "active": True}
    public = client.get("/api/v1/treatments")
    assert public.status_code == 200
    assert {"slug": "knee-replacement", "name": "Knee replacement",
            "specialty": "orthopedics"} in public.get_json()
    assert all(set(t) == {"slug", "name", "specialty"} for t in public.get_json())

    response = client.patch("/api/v1/treatments/knee-replacement", headers=admin,
                            json={"active": False, "name": "Total knee replacement"})
    assert response.status_code == 200
    assert response.get_json()["active"] is False
    assert response.get_json()["name"] == "Total knee replacement"
    assert "knee-replacement" not in [t["slug"] for t in client.get("/api/v1/treatments")
                                      .get_json()]
    as_staff = {t["slug"]: t for t in client.get("/api/v1/treatments",
                                                 headers=staff["coordinator"]).get_json()}
    assert as_staff["knee-replacement"]["active"] is False
    assert as_staff["stem-cell-spine-arthritis"]["active"] is True
    errors = field_errors(client.post("/api/v1/inquiries",
                                      json=inquiry_body(treatment="knee-replacement")))
    assert "treatment" in errors


def test_treatment_writes_refuse_duplicates_and_bad_values(client, staff):
    admin = staff["admin"]
    body = problem(client.post("/api/v1/treatments", headers=admin, json={
        "slug": "stem-cell-spine-arthritis", "name": "Again", "specialty": "regenerative"}), 409)
    assert "stem-cell-spine-arthritis" in body["detail"]
    errors = field_errors(client.post("/api/v1/treatments", headers=admin, json={
        "slug": "Not A Slug", "specialty": "x y"}))
    assert {"slug", "name", "specialty"} <= set(errors)
    problem(client.patch("/api/v1/treatments/no-such-thing", headers=admin,
                         json={"active": False}), 404)
    assert "active" in field_errors(client.patch(
        "/api/v1/treatments/stem-cell-spine-arthritis", headers=admin, json={"active": "nah"}))
    assert "slug" in field_errors(client.patch(
        "/api/v1/treatments/stem-cell-spine-arthritis", headers=admin, json={"slug": "new"}))
