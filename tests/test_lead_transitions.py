"""Staff move a lead along the pipeline (CONTRACT §4, §6): a refused transition names the
allowed targets, closing cancels the open referrals, and every change and note is a timeline
event."""



from tests.helpers import (
    detail,
    events,
    field_errors,
    is_utc_instant,
    lead_id_of,
    problem,
    route,
    submit,
    transition,
)


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
