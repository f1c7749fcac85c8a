"""The console's funnel and admin pages in a real browser (Debian's Chromium under
Playwright) on a live gunicorn: an admin signs in, reads the funnel's chart and table,
verifies an accreditation, adds a staff user and deactivates one; axe-core finds nothing
serious on any of those pages."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser import assert_accessible, screenshot
from tests.helpers import route, submit

pytestmark = pytest.mark.browser


def secret_of(headers: dict) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def signed_in_admin(page, live_server, staff):
    page.goto(live_server + "/console")
    page.get_by_label("Your staff token").fill(secret_of(staff["admin"]))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(live_server + "/console/leads")
    return page


def test_an_admin_reads_the_funnel_as_a_chart_beside_its_table(app, client, db_session,
                                                                 signed_in_admin, live_server):
    for _ in range(2):
        route(app, db_session, submit(client)["reference"])
    for _ in range(3):
        submit(client)
    submit(client, website="bot")
    page = signed_in_admin
    page.get_by_role("link", name="Funnel").click()
    expect(page).to_have_url(live_server + "/console/funnel")
    chart = page.get_by_role("img", name="Leads by status")
    expect(chart).to_be_visible()
    expect(page.locator("table.by-status tr", has_text="Received")).to_contain_text("3")
    expect(page.locator("table.by-status tr", has_text="Routed")).to_contain_text("2")
    assert_accessible(page)
    screenshot(page, "console-funnel")

    page.get_by_label("Created from").fill("2001-01-01")
    page.get_by_label("Created to").fill("2001-01-31")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"created_from=2001-01-01"))
    expect(page.get_by_text("No leads were created in this window.")).to_be_visible()
    expect(page.locator("table.by-status tr", has_text="Received")).to_contain_text("0")


def test_an_admin_verifies_an_accreditation(signed_in_admin, live_server):
    page = signed_in_admin
    page.get_by_role("link", name="Clinics").click()
    expect(page).to_have_url(live_server + "/console/clinics")
    assert_accessible(page)
    page.get_by_role("button", name="Verify JCI of unverified").click()
    expect(page.get_by_role("status")).to_contain_text("JCI of unverified is verified.")
    expect(page.get_by_role("button", name=re.compile("^Verify"))).to_have_count(0)
    assert_accessible(page)
    screenshot(page, "console-clinics")


def test_an_admin_adds_a_staff_user_and_deactivates_another(signed_in_admin, live_server):
    page = signed_in_admin
    page.get_by_role("link", name="Staff users").click()
    expect(page).to_have_url(live_server + "/console/users")
    assert_accessible(page)

    page.get_by_role("button", name="Add and show their token").click()
    expect(page.get_by_label("E-mail")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page)
    page.get_by_label("E-mail").fill("night.shift@care.example")
    page.get_by_label("Role").select_option("coordinator")
    page.get_by_role("button", name="Add and show their token").click()
    expect(page.locator("code.secret")).to_have_text(re.compile(r"^stf_"))
    assert_accessible(page)
    screenshot(page, "console-users")

    page.get_by_role("button", name="Deactivate coord@care.example").click()
    expect(page.get_by_role("status")).to_contain_text("coord@care.example is deactivated.")
    expect(page.locator("tr", has_text="coord@care.example")).to_contain_text("inactive")
    expect(page.locator("code.secret")).to_have_count(0)  # the token was shown once
