"""The clinic's story in a real browser (Debian's Chromium under Playwright) on a live
gunicorn with a real worker (CONTRACT §9, §5): an inquiry with a PDF is routed to a clinic,
whose notification e-mail, taken from the SMTP sink, links to the portal; the clinic signs in
with its API key, lands on the referral, accepts, sees the contact details and the file,
and sends a quote, which the API then shows."""

import io
import re
from datetime import timedelta

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import select

from leads.catalogue.models import Clinic
from leads.core.clock import today
from tests.browser import assert_accessible, screenshot
from tests.helpers import auth, cli, inquiry_body, mail_text, status_token, wait_until
from tests.samples import pdf

pytestmark = pytest.mark.browser

REFERRAL_LINK = re.compile(r"(http://\S+/clinic/referrals/(\d+))")


def test_a_clinic_answers_its_referral_from_the_notification_to_a_quote(
        app, db_session, catalogue, live_site, page, tmp_path):
    body = inquiry_body()
    accepted = requests.post(live_site.url + "/api/v1/inquiries", json=body, timeout=10)
    assert accepted.status_code == 202, accepted.text
    reference = accepted.json()["reference"]
    uploaded = requests.post(
        f"{live_site.url}/api/v1/inquiries/{reference}/attachments",
        params={"token": status_token(accepted.json())},
        files={"file": ("scan.pdf", io.BytesIO(pdf()), "application/pdf")}, timeout=10)
    assert uploaded.status_code == 201, uploaded.text

    def notifications():
        return [m for m in live_site.sink.received()
                if m["To"].endswith("@clinic.example") and reference in m["Subject"]]

    message = wait_until(notifications, timeout=60, message="a referral notification")[0]
    link, referral_id = REFERRAL_LINK.search(mail_text(message)).groups()
    assert link == f"{live_site.url}/clinic/referrals/{referral_id}"
    clinic = db_session.scalar(select(Clinic).where(Clinic.email == message["To"]))
    issued = cli(app, "clinics", "issue-key", str(clinic.id))
    assert issued.exit_code == 0, issued.output
    key = issued.output.strip()

    # Following the link without a session: sign in, and back to the referral.
    page.goto(link)
    expect(page).to_have_url(f"{live_site.url}/clinic?next=/clinic/referrals/{referral_id}")
    page.get_by_label("Your clinic's API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(link)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Referral {reference}")
    expect(page.locator(".referral-status")).to_have_text("Opened by the clinic")
    expect(page.get_by_text(body["patient"]["email"])).to_have_count(0)
    expect(page.get_by_role("link", name="scan.pdf")).to_have_count(0)
    assert_accessible(page)

    page.get_by_role("button", name="Accept the patient").click()
    expect(page.get_by_role("status")).to_contain_text("You accepted the referral.")
    expect(page.locator(".referral-status")).to_have_text("Accepted")
    expect(page.locator(".patient-email")).to_have_text(body["patient"]["email"])
    expect(page.locator(".patient-phone")).not_to_have_text("—")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="scan.pdf").click()
    saved = tmp_path / "downloaded.pdf"
    download_info.value.save_as(saved)
    assert saved.read_bytes() == pdf()

    # A refused quote first: the error beside its field, nothing sent.
    page.get_by_label("Amount").fill("9500")
    page.get_by_role("button", name="Send the quote").click()
    expect(page.get_by_label("Currency")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page)

    valid_until = today() + timedelta(days=30)
    page.get_by_label("Amount").fill("9500")
    page.get_by_label("Currency").fill("USD")
    page.get_by_label("What the price includes").fill("Treatment\n3 nights hotel")
    page.get_by_label("Valid until").fill(valid_until.isoformat())
    page.get_by_label("Notes for the patient").fill("Airport pickup.")
    page.get_by_role("button", name="Send the quote").click()
    expect(page.get_by_role("status")).to_contain_text("Your quote was sent to the patient.")
    expect(page.locator(".referral-status")).to_have_text("Quoted")
    expect(page.locator(".quotes")).to_contain_text("USD")
    assert_accessible(page)
    screenshot(page, "portal-referral")

    shown = requests.get(f"{live_site.url}/api/v1/clinic/referrals/{referral_id}",
                         headers=auth(key), timeout=10).json()
    assert shown["status"] == "quoted"
    [quote] = shown["quotes"]
    assert (quote["amount"], quote["currency"], quote["includes"], quote["valid_until"],
            quote["notes"]) == (9500, "USD", ["Treatment", "3 nights hotel"],
                                valid_until.isoformat(), "Airport pickup.")

    page.get_by_role("link", name="Referrals").click()
    expect(page).to_have_url(live_site.url + "/clinic/referrals")
    row = page.get_by_role("row").filter(has_text=reference)
    expect(row).to_contain_text("Quoted")
    assert_accessible(page)
    screenshot(page, "portal-list")
    page.get_by_label("Status").select_option("declined")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(live_site.url + "/clinic/referrals?status=declined")
    expect(page.get_by_text("No referrals here.")).to_be_visible()
