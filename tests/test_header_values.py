"""A value that goes into a mail header never breaks it or adds one (CONTRACT §7): the API
refuses control characters in names, and a name that got one anyway (an admin's typo, written
past the API) still lets its mail out, with a clean one-line subject."""

from sqlalchemy import func, select, update

from leads.catalogue.models import Treatment
from leads.messaging.models import EmailMessage
from leads.pipeline.models import Lead
from tests.helpers import field_errors, inquiry_body, new_clinic_body, wait_until

BREAKS = ["Knee\r\nBcc: leak@evil.example", "Knee\nreplacement", "Knee\treplacement",
          "Knee\x1b[31m", "Knee\u2028replacement", "Knee replacement\r\n"]


def test_treatment_names_with_control_characters_answer_422(client, staff):
    admin = staff["admin"]
    for name in BREAKS:
        errors = field_errors(client.post("/api/v1/treatments", headers=admin, json={
            "slug": "knee-replacement", "name": name, "specialty": "orthopedics"}))
        assert set(errors) == {"name"}, name
        errors = field_errors(client.patch("/api/v1/treatments/stem-cell-spine-arthritis",
                                           headers=admin, json={"name": name}))
        assert set(errors) == {"name"}, name
    assert client.get("/api/v1/treatments").get_json()[0]["name"] == "Stem cells for the spine"


def test_clinic_names_cities_and_accreditations_with_control_characters_answer_422(
        client, staff):
    admin = staff["admin"]
    errors = field_errors(client.post("/api/v1/clinics", headers=admin, json=new_clinic_body(
        name="Clínica\r\nNueva", city="Panama\nCity")))
    assert set(errors) == {"name", "city"}
    clinic_id = client.post("/api/v1/clinics", headers=admin,
                            json=new_clinic_body()).get_json()["id"]
    errors = field_errors(client.patch(f"/api/v1/clinics/{clinic_id}", headers=admin,
                                       json={"name": "Nueva\r\n", "city": "Pana\x07ma"}))
    assert set(errors) == {"name", "city"}
    errors = field_errors(client.post(f"/api/v1/clinics/{clinic_id}/accreditations",
                                      headers=admin, json={"body": "JCI\r\nX-Evil: 1",
                                                           "reference": "JCI\t123"}))
    assert set(errors) == {"body", "reference"}
    assert client.get(f"/api/v1/clinics/{clinic_id}",
                      headers=admin).get_json()["name"] == "Clínica Nueva"


def test_patient_names_must_be_one_line_and_the_condition_keeps_its_line_breaks(
        client, catalogue):
    body = inquiry_body()
    body["patient"].update(first_name="Ana\r\nBcc: leak@evil.example", last_name="Ruiz\x0b")
    errors = field_errors(client.post("/api/v1/inquiries", json=body))
    assert set(errors) == {"patient.first_name", "patient.last_name"}

    condition = "Facet joint arthritis L4-L5.\r\nConfirmed by X-ray.\n\nPain for 3 years."
    assert client.post("/api/v1/inquiries",
                       json=inquiry_body(condition=condition)).status_code == 202


def test_a_treatment_renamed_with_a_line_break_still_gets_its_referrals_out(
        client, db_session, catalogue, smtp_sink, start_worker):
    # Past the API, which refuses it: straight through the ORM.
    db_session.execute(update(Treatment).values(name="Stem cells\r\nBcc: leak@evil.example"))
    db_session.commit()
    start_worker(SMTP_PORT=smtp_sink.port)
    reference = client.post("/api/v1/inquiries", json=inquiry_body()).get_json()["reference"]

    def all_sent() -> bool:
        db_session.rollback()
        statuses = db_session.scalars(select(EmailMessage.status)).all()
        return len(statuses) == 4 and set(statuses) == {"sent"}

    wait_until(all_sent, timeout=60, interval=0.5, message="the lead's four messages sent")
    assert db_session.scalar(select(func.count()).select_from(Lead)
                             .where(Lead.status == "routed")) == 1
    received = smtp_sink.received()
    notifications = [m for m in received if m["To"].endswith("@clinic.example")]
    assert len(received) == 4 and len(notifications) == 3
    for message in notifications:
        assert message.get_all("Subject") == [
            f"New patient referral {reference}: Stem cells Bcc: leak@evil.example"]
        assert "Bcc" not in message
    assert all(envelope == [m["To"]] for envelope, m in zip(smtp_sink.envelopes, received,
                                                            strict=True))
