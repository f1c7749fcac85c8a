"""The coordinators' story in a real browser on a live gunicorn with a worker (issue 12): a
lead the worker could not route waits in review; a coordinator signs in, filters the queue to
`needs_review`, opens the lead, adds a note, reroutes it leaving one clinic out, and sees the
timeline grow. axe-core finds nothing serious on the queue or the lead."""

import re

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import select

from tests.browser import assert_accessible, screenshot
from tests.helpers import add_clinic, inquiry_body, wait_until

pytestmark = pytest.mark.browser


def lead_of(site, headers, reference: str) -> dict | None:
    """The lead as the API answers it, once the worker has judged it."""
    found = requests.get(site.url + "/api/v1/leads", headers=headers,
                         params={"q": reference}, timeout=10).json()["items"]
    return found[0] if found else None


def test_a_coordinator_works_a_lead_in_review(page, live_site, db_session, staff):
    from leads.catalogue.models import Treatment

    coordinator = staff["coordinator"]
    # No clinic of the catalogue lies in Panama: the worker sends the lead to review.
    answer = requests.post(live_site.url + "/api/v1/inquiries", timeout=10,
                           json=inquiry_body(destinations=["PA"]))
    assert answer.status_code == 202, answer.text
    reference = answer.json()["reference"]
    in_review = wait_until(lambda: (lead := lead_of(live_site, coordinator, reference))
                           and lead["status"] == "needs_review" and lead, timeout=60,
                           message="the lead in review")
    # Now two clinics there could take it.
    treatment = db_session.scalar(select(Treatment))
    for name in ("panama-east", "panama-west"):
        add_clinic(db_session, treatment, name, country="PA")
    db_session.commit()

    page.goto(live_site.url + "/console")
    page.get_by_label("Your staff token").fill(
        coordinator["Authorization"].removeprefix("Bearer "))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(live_site.url + "/console/leads")

    page.get_by_label("Status", exact=True).select_option("needs_review")
    page.get_by_role("button", name="Show leads").click()
    expect(page).to_have_url(re.compile(r"status=needs_review"))
    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(reference)
    expect(page.locator(".status-counts [aria-current=page]")).to_contain_text("Needs review 1")
    assert_accessible(page)
    screenshot(page, "console-queue")

    page.get_by_role("link", name=reference).click()
    expect(page).to_have_url(f"{live_site.url}/console/leads/{in_review['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Lead {reference}")
    expect(page.locator(".lead-status")).to_have_text("Needs review")
    timeline = page.locator("ol.timeline > li")
    before = timeline.count()
    assert before >= 2  # received, and sent to review

    page.get_by_label("Note", exact=True).fill("Asked two clinics in Panama to look at it.")
    page.get_by_role("button", name="Add the note").click()
    expect(page.get_by_role("status")).to_contain_text("The note was added.")
    expect(timeline).to_have_count(before + 1)
    expect(timeline.last).to_contain_text("Note added")
    expect(timeline.last).to_contain_text("Asked two clinics in Panama to look at it.")

    page.get_by_label("panama-east").check()
    page.get_by_role("button", name="Reroute").click()
    expect(page.get_by_role("status")).to_contain_text("1 new referrals")
    expect(page.locator(".lead-status")).to_have_text("Routed")
    referrals = page.locator("table.referrals tbody")
    expect(referrals).to_contain_text("panama-west")
    expect(referrals).not_to_contain_text("panama-east")
    # referred, rerouted, routed again: the timeline grew by each
    expect(timeline).to_have_count(before + 4)
    expect(page.locator("ol.timeline > li", has_text="Rerouted")).to_have_count(1)
    assert_accessible(page)
    screenshot(page, "console-lead")

    lead = requests.get(f"{live_site.url}/api/v1/leads/{in_review['id']}", headers=coordinator,
                        timeout=10).json()
    assert lead["status"] == "routed"
    assert [r["clinic"]["name"] for r in lead["referrals"]] == ["panama-west"]
    assert [e["kind"] for e in lead["timeline"]][before - 1:] == [
        "status_changed", "note_added", "referred", "rerouted", "status_changed"]
