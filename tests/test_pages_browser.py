"""The sign-in pages in a real browser (Debian's Chromium under Playwright) on a live
gunicorn: axe-core finds nothing serious, a real key or token lands on its list, sign-out
works, the wrong role meets a 403 page, a page without a session sends to its sign-in."""

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.browser import assert_accessible, screenshot
from tests.helpers import inquiry_body, mail_text, wait_until

pytestmark = pytest.mark.browser


def secret_of(headers: dict) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def sign_in(page, url: str, secret: str) -> None:
    page.goto(url)
    page.get_by_label(re.compile("API key|staff token")).fill(secret)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def clinic_key(client, staff):
    clinic_id = min(staff["catalogue"]["eligible"])
    response = client.post(f"/api/v1/clinics/{clinic_id}/api-keys", headers=staff["admin"])
    assert response.status_code == 201
    return response.get_json()["key"]


@pytest.mark.parametrize("path", ["/clinic", "/console"])
def test_the_sign_in_pages_pass_axe_in_each_language(browser, live_server, path):
    for locale in ("en-GB", "es-ES", "de-DE"):
        context = browser.new_context(locale=locale)
        page = context.new_page()
        page.goto(live_server + path)
        expect(page.locator("html")).to_have_attribute("lang", locale[:2])
        assert_accessible(page)
        # and with the error shown
        page.get_by_role("button").click()
        expect(page.locator(".error")).to_be_visible()
        assert_accessible(page)
        context.close()


def test_a_clinic_signs_in_sees_its_list_and_signs_out(page, live_server, clinic_key):
    sign_in(page, live_server + "/clinic", clinic_key)
    expect(page).to_have_url(live_server + "/clinic/referrals")
    expect(page.get_by_role("heading", level=1)).to_have_text("Referrals")
    expect(page.locator(".signed-in-as")).to_contain_text("Signed in as")
    cookie, = (c for c in page.context.cookies() if c["name"] == "session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert_accessible(page)
    screenshot(page, "clinic-signed-in")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(live_server + "/clinic")
    expect(page.get_by_role("status")).to_contain_text("You have signed out.")
    page.goto(live_server + "/clinic/referrals")
    expect(page).to_have_url(live_server + "/clinic?next=/clinic/referrals")


def test_a_wrong_key_shows_the_form_again_with_the_error(page, live_server):
    sign_in(page, live_server + "/clinic", "clk_not-a-key-of-ours")
    expect(page).to_have_url(live_server + "/clinic")
    field = page.get_by_label("Your clinic's API key")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".error")).to_contain_text("not valid")
    screenshot(page, "clinic-sign-in")


def test_a_coordinator_gets_the_queue_and_403_on_an_admin_page(page, live_server, staff):
    sign_in(page, live_server + "/console", secret_of(staff["coordinator"]))
    expect(page).to_have_url(live_server + "/console/leads")
    expect(page.get_by_role("link", name="Staff users")).to_have_count(0)
    assert_accessible(page)
    answer = page.goto(live_server + "/console/users")
    assert answer.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("You may not open this page")
    assert_accessible(page)


def test_an_admin_opens_the_admin_pages(page, live_server, staff):
    sign_in(page, live_server + "/console", secret_of(staff["admin"]))
    page.get_by_role("link", name="Staff users").click()
    expect(page).to_have_url(live_server + "/console/users")
    expect(page.get_by_role("heading", level=1)).to_have_text("Staff users")


@pytest.mark.parametrize("path, sign_in_path", [
    ("/clinic/referrals", "/clinic"), ("/console/leads", "/console"),
    ("/console/users", "/console")])
def test_a_page_without_a_session_sends_to_sign_in_and_back(page, live_server, staff,
                                                            clinic_key, path, sign_in_path):
    page.goto(live_server + path)
    expect(page).to_have_url(f"{live_server}{sign_in_path}?next={path}")
    secret = clinic_key if sign_in_path == "/clinic" else secret_of(staff["admin"])
    page.get_by_label(re.compile("API key|staff token")).fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(live_server + path)


def test_the_skip_link_moves_to_the_main_content(page, live_server):
    page.goto(live_server + "/console")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()


def test_a_form_posted_without_its_token_answers_400_as_a_page(live_server, staff):
    session = requests.Session()
    response = session.post(live_server + "/console",
                            data={"secret": secret_of(staff["admin"])}, timeout=10)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")
    assert "did not come from this site" in response.text


def test_the_live_site_mails_through_the_worker(live_site, catalogue):
    """The `live_site` fixture's worker and sink work: the acknowledgement of an inquiry
    arrives, its link pointing at the live server."""
    body = inquiry_body()
    response = requests.post(live_site.url + "/api/v1/inquiries", json=body, timeout=10)
    assert response.status_code == 202, response.text
    assert response.json()["status_url"].startswith(live_site.url + "/")

    def acknowledgement():
        return [m for m in live_site.sink.received() if m["To"] == body["patient"]["email"]]

    [message] = wait_until(acknowledgement, timeout=60, message="the acknowledgement")
    assert response.json()["status_url"] in mail_text(message)
