"""The CSV export of leads (CONTRACT §4): the list's filters, a row per lead, and no spreadsheet
formula let through."""

import csv
import io

from tests.helpers import (
    field_errors,
    inquiry_body,
    submit,
)


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
    # Refused before the first byte of the file, not in the middle of it.
    assert "assigned_to" in field_errors(client.get(
        "/api/v1/leads/export.csv", headers=coordinator, query_string={"assigned_to": "abc"}))


def test_export_batches_join_up_newest_first_with_treatment_and_destinations(
        app, staff, varied_leads):
    from leads.core.database import db
    from leads.pipeline.queries import leads_for_export

    with app.app_context():
        batches = list(leads_for_export({}, None, batch=4))
        db.session.remove()
    assert [len(batch) for batch in batches] == [4, 2]
    leads = {lead["reference"]: lead for batch in batches for lead in batch}
    assert list(leads) == list(reversed(varied_leads.values()))
    assert leads[varied_leads["panama"]]["destinations"] == ["PA"]
    assert leads[varied_leads["dental"]]["destinations"] == []
    assert leads[varied_leads["dental"]]["treatment"] == "dental-implants"
    assert leads[varied_leads["german"]]["last_name"] == "Baumgartner"  # decrypted


def test_export_keeps_spreadsheet_formulas_out(client, staff):
    evil = {**inquiry_body()["patient"], "first_name": "=HYPERLINK(\"http://x\")"}
    submit(client, patient=evil)
    [row] = exported(client, staff["coordinator"])
    assert not row["first_name"].startswith("=")
    assert row["phone"] == "+14155550100"
