"""The funnel (CONTRACT §4): leads by status and treatment, and each clinic's answers, over a
window of creation dates."""

from datetime import timedelta

from sqlalchemy import select

from leads.core.clock import today
from leads.pipeline.models import Referral
from tests.helpers import (
    auth,
    field_errors,
    route,
    submit,
)


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

    tomorrow = (today() + timedelta(days=1)).isoformat()
    empty = client.get("/api/v1/stats/funnel", headers=coordinator,
                       query_string={"created_from": tomorrow}).get_json()
    assert empty == {"by_status": {}, "by_treatment": {}, "clinics": []}
    of_today = client.get("/api/v1/stats/funnel", headers=coordinator, query_string={
        "created_from": today().isoformat(), "created_to": today().isoformat()}).get_json()
    assert sum(of_today["by_status"].values()) == 3
    assert spam["status"] == "received"  # the honeypot answer looks the same
    assert "created_from" in field_errors(client.get(
        "/api/v1/stats/funnel", headers=coordinator, query_string={"created_from": "soon"}))
