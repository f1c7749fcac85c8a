"""Every 422 rule of CONTRACT §3: problem details naming the dotted field."""

from datetime import timedelta

import pytest

from leads.core.clock import today
from tests.helpers import inquiry_body

PROBLEM = "application/problem+json"


def post(client, body, **kw):
    return client.post("/api/v1/inquiries", json=body, **kw)


def assert_rejected(response, *fields):
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["status"] == 422 and problem["title"] and problem["type"]
    for field in fields:
        assert field in problem["errors"], (field, problem["errors"])
        assert all(isinstance(m, str) and m for m in problem["errors"][field])
    return problem["errors"]


def with_patient(**changes):
    body = inquiry_body()
    body["patient"].update(changes)
    return body


def without_patient_field(name):
    body = inquiry_body()
    del body["patient"][name]
    return body


def past(days):
    return (today() - timedelta(days=days)).isoformat()


def future(days):
    return (today() + timedelta(days=days)).isoformat()


CASES = {
    "unknown top-level field": (inquiry_body(favourite_colour="blue"), "favourite_colour"),
    "unknown nested field": (with_patient(shoe_size=42), "patient.shoe_size"),
    "unknown treatment": (inquiry_body(treatment="teleportation"), "treatment"),
    "bad e-mail": (with_patient(email="ana.example.org"), "patient.email"),
    "phone that is not a number": (with_patient(phone="call me"), "patient.phone"),
    "international phone that is not valid": (with_patient(phone="+1 555 0100"), "patient.phone"),
    "national phone not valid for the country": (
        with_patient(phone="0412 345", country="US"), "patient.phone"),
    "unknown country": (with_patient(country="XX"), "patient.country"),
    "unknown language": (with_patient(language="qq"), "patient.language"),
    "unknown currency": (inquiry_body(budget={"amount": 100, "currency": "XYZ"}),
                         "budget.currency"),
    "unknown destination": (inquiry_body(destinations=["MX", "PA", "ZZ"]), "destinations.2"),
    "condition too short": (inquiry_body(condition="sore back"), "condition"),
    "condition too long": (inquiry_body(condition="x" * 5001), "condition"),
    "more than 5 destinations": (
        inquiry_body(destinations=["MX", "PA", "CO", "CR", "TR", "DE"]), "destinations"),
    "negative budget": (inquiry_body(budget={"amount": -1, "currency": "USD"}), "budget.amount"),
    "travel window ends before it starts": (
        inquiry_body(travel_window={"earliest": future(60), "latest": future(30)}),
        "travel_window.latest"),
    "travel window ended in the past": (
        inquiry_body(travel_window={"earliest": past(60), "latest": past(1)}),
        "travel_window.latest"),
    "no consent to data processing": (
        inquiry_body(consent={"data_processing": False, "share_with_clinics": True}),
        "consent.data_processing"),
    "consent given as a word, not true": (
        inquiry_body(consent={"data_processing": "yes"}), "consent.data_processing"),
    "consent given as a number": (inquiry_body(consent={"data_processing": 1}),
                                  "consent.data_processing"),
    "consent given as the string true": (inquiry_body(consent={"data_processing": "true"}),
                                         "consent.data_processing"),
    "imaging as a word": (inquiry_body(has_imaging="no"), "has_imaging"),
    "missing first name": (without_patient_field("first_name"), "patient.first_name"),
    "missing last name": (without_patient_field("last_name"), "patient.last_name"),
    "missing e-mail": (without_patient_field("email"), "patient.email"),
    "missing country": (without_patient_field("country"), "patient.country"),
    "blank first name": (with_patient(first_name="   "), "patient.first_name"),
    "unknown contact preference": (inquiry_body(contact_preference="pigeon"), "contact_preference"),
}


@pytest.mark.parametrize("body,field", CASES.values(), ids=CASES.keys())
def test_each_rule_names_its_field(client, demo, body, field):
    assert_rejected(post(client, body), field)


@pytest.mark.parametrize("name, inside", [
    ("patient", ["patient.first_name", "patient.last_name", "patient.email", "patient.country"]),
    ("treatment", []),
    ("condition", []),
    ("consent", ["consent.data_processing"]),
])
def test_missing_required_top_level_field(client, demo, name, inside):
    body = inquiry_body()
    del body[name]
    # An absent object is named, and so is every field inside it that is required.
    assert_rejected(post(client, body), name, *inside)


def test_inactive_treatment_is_refused(client, demo, db_session):
    from leads.catalogue.models import Treatment

    treatment = db_session.query(Treatment).filter_by(slug="stem-cell-spine-arthritis").one()
    treatment.active = False
    db_session.commit()
    assert_rejected(post(client, inquiry_body()), "treatment")


def test_a_treatment_deactivated_elsewhere_is_refused_though_remembered(client, demo,
                                                                        db_session):
    """Validation remembers an active treatment for a few seconds per process; another
    process (here: a direct change, not through this process's API) deactivating it
    meanwhile still gets the next inquiry refused, by intake's own read."""
    from leads.catalogue.models import Treatment

    assert post(client, inquiry_body()).status_code == 202  # remembered as active now
    treatment = db_session.query(Treatment).filter_by(slug="stem-cell-spine-arthritis").one()
    treatment.active = False
    db_session.commit()
    assert_rejected(post(client, inquiry_body()), "treatment")
    treatment.active = True
    db_session.commit()
    assert post(client, inquiry_body()).status_code == 202


def test_five_faults_are_all_named_at_once(client, demo):
    body = inquiry_body(condition="short", destinations=["MX", "??"],
                        budget={"amount": -5, "currency": "USD"})
    body["patient"]["email"] = "not-an-address"
    body["patient"]["country"] = "QQ"
    errors = assert_rejected(post(client, body), "condition", "destinations.1", "budget.amount",
                             "patient.email", "patient.country")
    assert len(errors) == 5


def test_phone_without_plus_is_read_for_the_patient_country(client, demo, db_session):
    body = with_patient(phone="(415) 555-0100", country="US")
    response = post(client, body)
    assert response.status_code == 202
    from leads.pipeline.models import Lead

    lead = db_session.query(Lead).filter_by(reference=response.get_json()["reference"]).one()
    assert lead.phone == "+14155550100"


def test_a_body_that_is_not_an_object_is_refused(client, demo):
    response = client.post("/api/v1/inquiries", data="[1, 2]", content_type="application/json")
    assert response.status_code == 422
    assert response.mimetype == PROBLEM


def test_optional_fields_may_be_null_or_absent(client, demo):
    body = inquiry_body(budget=None, travel_window=None, destinations=None, source=None,
                        has_imaging=None, contact_preference=None, website=None)
    body["patient"].update(phone=None, language=None, birth_year=None)
    assert post(client, body).status_code == 202


def test_nul_characters_are_refused_by_name_on_every_database(client, demo):
    body = with_patient(first_name="An\x00a")
    body["destinations"] = ["MX", "P\x00"]
    assert_rejected(post(client, body), "patient.first_name", "destinations.1")
    listing = client.get("/api/v1/leads?q=a%00b", headers={"Authorization": f"Bearer {demo}"})
    assert_rejected(listing, "q")
