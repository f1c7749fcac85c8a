"""Rerouting a lead by hand (CONTRACT §4): excluded and already referred clinics are skipped,
only routed and needs_review leads reroute, and a lead without consent reaches no clinic."""



from tests.helpers import (
    detail,
    events,
    field_errors,
    lead_id_of,
    problem,
    referred_clinics,
    route,
    submit,
    transition,
)


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
