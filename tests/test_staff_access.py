"""Who may call the staff API (CONTRACT §4): only a staff token of an active user opens it, a
clinic key does not; coordinators read what only admins may change; `/me` names the token's
owner."""


import pytest

from tests.helpers import (
    auth,
    new_clinic_body,
    problem,
)

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
