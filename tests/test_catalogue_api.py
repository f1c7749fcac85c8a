"""The catalogue admins keep (CONTRACT §4) through HTTP: listing, creating and changing clinics,
verifying accreditations, issuing and revoking clinic API keys, adding and deactivating
treatments."""

from datetime import timedelta

from leads.core.clock import today
from tests.helpers import (
    auth,
    detail,
    events,
    field_errors,
    inquiry_body,
    is_utc_instant,
    new_clinic_body,
    problem,
    referred_clinics,
    route,
    submit,
)


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
    blanked = client.patch(f"/api/v1/clinics/{clinic_id}", headers=admin,
                           json={"name": " ", "city": ""})
    assert set(field_errors(blanked)) == {"name", "city"}
    assert client.get(f"/api/v1/clinics/{clinic_id}", headers=admin).get_json() == clinic
    problem(client.patch("/api/v1/clinics/999999", headers=admin, json={"name": "x"}), 404)
    problem(client.get("/api/v1/clinics/999999", headers=admin), 404)


def days_from_today(days: int) -> str:
    return (today() + timedelta(days=days)).isoformat()


def test_accreditations_start_unverified_and_keep_who_verified_them(client, staff):
    admin = staff["admin"]
    clinic_id = client.post("/api/v1/clinics", headers=admin,
                            json=new_clinic_body()).get_json()["id"]
    response = client.post(f"/api/v1/clinics/{clinic_id}/accreditations", headers=admin, json={
        "body": "JCI", "reference": "JCI-123", "valid_from": days_from_today(-700),
        "valid_until": days_from_today(365), "verified": True})
    # Unknown fields are refused; an accreditation cannot verify itself.
    assert "verified" in field_errors(response)
    # Every fault at once: the date order is judged beside the other fields' faults.
    assert set(field_errors(client.post(
        f"/api/v1/clinics/{clinic_id}/accreditations", headers=admin,
        json={"body": "", "valid_from": days_from_today(400), "valid_until": days_from_today(-700),
              "x": 1}))
    ) == {"body", "valid_until", "x"}
    response = client.post(f"/api/v1/clinics/{clinic_id}/accreditations", headers=admin, json={
        "body": "JCI", "reference": "JCI-123", "valid_from": days_from_today(-700),
        "valid_until": days_from_today(365)})
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
        json={"body": "GMP", "valid_from": days_from_today(-300),
              "valid_until": days_from_today(-700)}))
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
