"""The coordinators' lead queue (CONTRACT §4) through HTTP: the list with its filters, search
and paging by cursor, one lead with its referrals and timeline, and changes to its assignee,
priority and tags."""

import base64
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import update

from leads.core.clock import today, utcnow
from leads.core.paging import encode_cursor
from leads.pipeline.models import Lead
from tests.helpers import (
    detail,
    events,
    field_errors,
    is_utc_instant,
    lead_id_of,
    listed,
    problem,
    references,
    route,
    submit,
)

LEAD_KEYS = {"id", "reference", "status", "priority", "tags", "assigned_to", "treatment",
             "patient", "condition", "destinations", "budget", "travel_window", "consent",
             "source", "duplicate_of", "created_at", "updated_at"}


def test_lead_in_the_list_has_the_contract_shape(client, staff):
    window = {"earliest": (today() + timedelta(days=30)).isoformat(),
              "latest": (today() + timedelta(days=90)).isoformat()}
    accepted = submit(client, travel_window=window)
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
    assert lead["travel_window"] == window
    assert lead["consent"] == {"data_processing": True, "share_with_clinics": True,
                               "marketing": False}
    assert lead["source"]["utm_source"] == "google"
    assert is_utc_instant(lead["created_at"]) and is_utc_instant(lead["updated_at"])
    assert "referrals" not in lead and "timeline" not in lead


def test_a_listed_lead_is_the_lead_of_its_detail(client, db_session, staff):
    # The list builds its leads without LeadSchema (leads/pipeline/schemas.py `listed_lead`);
    # each must be what the detail shows, but for what only the detail has.
    coordinator = staff["coordinator"]
    full = lead_id_of(db_session, submit(client)["reference"])
    client.patch(f"/api/v1/leads/{full}", headers=coordinator, json={
        "assigned_to": staff["coordinator_id"], "tags": ["vip"], "priority": "high"})
    bare = lead_id_of(db_session, submit(client, budget=None, travel_window=None,
                                         has_imaging=None, source={})["reference"])
    half = lead_id_of(db_session, submit(client, travel_window={
        "earliest": None, "latest": (today() + timedelta(days=40)).isoformat()})["reference"])
    db_session.execute(update(Lead).where(Lead.id == bare).values(
        first_name=None, last_name=None, email=None, phone=None, condition=None,
        duplicate_of_id=full, budget_amount=Decimal("9999.99"), budget_currency="EUR"))
    db_session.commit()
    only_detail = ("referrals", "timeline", "attachments")
    items = listed(client, coordinator)
    assert [item["id"] for item in items] == [half, bare, full]
    for item in items:
        shown = detail(client, coordinator, item["id"])
        assert item == {key: value for key, value in shown.items() if key not in only_detail}
    assert items[1]["budget"] == {"amount": 9999.99, "currency": "EUR"}
    assert items[0]["travel_window"]["earliest"] is None


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
            created_at=utcnow() - timedelta(days=ago)))
    db_session.commit()
    coordinator = staff["coordinator"]
    since = (today() - timedelta(days=5)).isoformat()
    until = (today() - timedelta(days=3)).isoformat()
    assert references(listed(client, coordinator, created_from=since, created_to=until)) == [
        varied_leads["dental"], varied_leads["routed"]]
    assert set(references(listed(client, coordinator, created_to=until))) == {
        varied_leads["plain"], varied_leads["routed"], varied_leads["dental"]}
    recent = set(references(listed(client, coordinator, created_from=today().isoformat())))
    assert recent == {varied_leads["panama"], varied_leads["assigned"]}
    moment = (utcnow() - timedelta(days=2)).isoformat()
    assert varied_leads["dental"] not in references(
        listed(client, coordinator, created_from=moment))
    assert varied_leads["german"] in references(listed(client, coordinator, created_from=moment))


def test_bad_filters_answer_422_naming_the_field(client, staff):
    coordinator = staff["coordinator"]
    for name, value in [("status", "bogus"), ("country", "XX"), ("destination", "Mexico"),
                        ("assigned_to", "somebody"), ("assigned_to", "\u00b2"),
                        ("assigned_to", "9" * 20), ("created_from", "yesterday"),
                        ("created_to", f"{today().year}-13-01")]:
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


def test_pages_follow_creation_time_whatever_the_ids_and_lose_no_tie(client, db_session,
                                                                      staff):
    """Newest first is by when a lead was created, then by id: leads whose ids are out of
    step with their times (an import, a clock put right) and leads of the same instant page
    without a gap or a repeat, in the list and in the export."""
    import csv
    import io

    made = [submit(client)["reference"] for _ in range(6)]
    minutes_ago = dict(zip(made, (0, 10, 20, 20, 30, 40), strict=True))
    start = utcnow() - timedelta(hours=1)
    for reference, minutes in minutes_ago.items():
        db_session.execute(update(Lead).where(Lead.reference == reference).values(
            created_at=start - timedelta(minutes=minutes)))
    db_session.commit()
    # The first made is the newest; of the two made at the same instant, the later id first.
    expected = [made[0], made[1], made[3], made[2], made[4], made[5]]
    coordinator = staff["coordinator"]
    for limit in (1, 2, 4):
        seen, cursor = [], None
        while True:
            query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            body = client.get("/api/v1/leads", headers=coordinator,
                              query_string=query).get_json()
            seen += references(body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, limit
    export = client.get("/api/v1/leads/export.csv", headers=coordinator).get_data(as_text=True)
    assert [row["reference"] for row in csv.DictReader(io.StringIO(export))] == expected


def test_reads_run_in_autocommit_on_postgresql_and_a_get_that_writes_keeps_a_transaction(
        client, db_session, routed):
    """The lead list and a lead declare that they only read: on PostgreSQL their
    statements run in autocommit, no BEGIN and no ROLLBACK around them. A clinic's GET of a
    referral writes (`requested` becomes `received`) and keeps its transaction, as every
    request does on SQLite."""
    from sqlalchemy import event

    engine = db_session.get_bind()
    executed = []

    def record(connection, cursor, statement, parameters, context, executemany):
        executed.append(connection.get_execution_options().get("isolation_level"))

    def levels(path, headers):
        executed.clear()
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.get_data(as_text=True))
        return set(executed)

    coordinator = routed["coordinator"]
    clinic_id, referral_id = next(iter(routed["referrals"].items()))
    # The first use of a token writes its "last used" mark and commits it; the statements
    # after that commit run in a transaction, as once a minute per token they would.
    client.get("/api/v1/leads", headers=coordinator)
    event.listen(engine, "before_cursor_execute", record)
    try:
        reads = {path: levels(path, coordinator) for path in (
            "/api/v1/leads", f"/api/v1/leads/{routed['lead_id']}")}
        opened = levels(f"/api/v1/clinic/referrals/{referral_id}", routed["keys"][clinic_id])
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert [r["status"] for r in detail(client, coordinator, routed["lead_id"])["referrals"]
            if r["clinic"]["id"] == clinic_id] == ["received"]
    autocommit = {"AUTOCOMMIT"} if engine.dialect.name == "postgresql" else {None}
    assert reads == dict.fromkeys(reads, autocommit)
    assert opened == {None}


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
    # The lead list's cursors name a time and an id; another list's, or a broken one, is not
    # one of them.
    clinics = client.get("/api/v1/clinics", headers=staff["admin"],
                         query_string={"limit": 1}).get_json()["next_cursor"]
    def raw(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    # The last one names a time past the year 9999.
    for cursor in (clinics, encode_cursor(5), raw("at:abc:5"), raw("at:1:99999999999"),
                   raw("at:999999999999999999999:5"), raw("at:1:0:5"),
                   raw("at:999999999999999999:5")):
        errors = field_errors(client.get("/api/v1/leads", headers=staff["coordinator"],
                                         query_string={"cursor": cursor}))
        assert "cursor" in errors, cursor


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
