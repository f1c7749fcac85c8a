"""The patient's story in a real browser (Debian's Chromium under Playwright) on a live
gunicorn with a worker mailing to the SMTP sink: the link from the acknowledgement opens the
status page in Spanish, a PDF goes up through its form, a clinic's quote appears, and the
withdrawal, confirmed, closes the inquiry, as the API then says too."""

import re
from datetime import timedelta

import pytest
import requests
from playwright.sync_api import expect

from leads.core.clock import today
from leads.pipeline.states import LeadStatus, ReferralStatus
from tests.browser import assert_accessible, screenshot
from tests.helpers import auth, inquiry_body, mail_text, wait_until
from tests.samples import pdf

pytestmark = pytest.mark.browser


def status_link(site, email: str) -> str:
    """The status page's link in the acknowledgement the sink received for `email`."""
    def acknowledgement():
        return [m for m in site.sink.received() if m["To"] == email]

    [message] = wait_until(acknowledgement, timeout=60, message="the acknowledgement")
    [link] = set(re.findall(re.escape(site.url) + r"/status/[^\s\"<>]+", mail_text(message)))
    return link


def api_view(site, link: str) -> dict:
    """What `GET /api/v1/inquiries/{reference}?token=` answers for the page's link."""
    answer = requests.get(link.replace("/status/", "/api/v1/inquiries/"), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def referrals_of(site, staff, reference: str) -> list[dict]:
    """The lead's referrals as staff see them."""
    [lead] = requests.get(site.url + "/api/v1/leads", params={"q": reference}, timeout=10,
                          headers=staff["admin"]).json()["items"]
    return requests.get(f"{site.url}/api/v1/leads/{lead['id']}", timeout=10,
                        headers=staff["admin"]).json()["referrals"]


def quote_as_the_first_clinic(site, staff, reference: str) -> None:
    """The first referred clinic, with a key of its own, accepts and sends a quote."""
    referral = referrals_of(site, staff, reference)[0]
    key = requests.post(f"{site.url}/api/v1/clinics/{referral['clinic']['id']}/api-keys",
                        headers=staff["admin"], timeout=10).json()["key"]
    clinic = f"{site.url}/api/v1/clinic/referrals/{referral['id']}"
    assert requests.post(clinic + "/accept", headers=auth(key), timeout=10).status_code == 200
    quoted = requests.post(clinic + "/quote", headers=auth(key), timeout=10, json={
        "amount": 9500, "currency": "EUR", "includes": ["cirugía", "tres noches de hotel"],
        "valid_until": (today() + timedelta(days=30)).isoformat()})
    assert quoted.status_code == 200, quoted.text


def test_a_patient_follows_uploads_sees_a_quote_and_withdraws(browser, live_site, staff,
                                                               tmp_path):
    body = inquiry_body()  # a Spanish patient, to MX or PA
    accepted = requests.post(live_site.url + "/api/v1/inquiries", json=body, timeout=10)
    assert accepted.status_code == 202, accepted.text
    reference = accepted.json()["reference"]
    link = status_link(live_site, body["patient"]["email"])
    assert link == accepted.json()["status_url"]
    wait_until(lambda: api_view(live_site, link)["status"] == LeadStatus.ROUTED, timeout=60,
               message="the lead routed by the worker")

    context = browser.new_context(locale="es-ES")
    page = context.new_page()
    page.goto(link)
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Su consulta {reference}")
    expect(page.locator(".lead-status")).to_have_text(
        "Enviada a clínicas, que la están estudiando.")
    expect(page.get_by_role("heading", name="Clínicas")).to_be_visible()
    referred = api_view(live_site, link)["referrals"]
    expect(page.locator("article.clinic")).to_have_count(len(referred))
    for referral in referred:
        expect(page.get_by_role("heading", name=referral["clinic"]["name"])).to_be_visible()
    expect(page.locator(".accreditations").first).to_contain_text("JCI")
    assert_accessible(page)

    scan = tmp_path / "radiografía.pdf"
    scan.write_bytes(pdf())
    page.get_by_label("Un archivo para añadir").set_input_files(scan)
    page.get_by_role("button", name="Añadir el archivo").click()
    expect(page.get_by_role("status")).to_contain_text(
        "radiografía.pdf se ha añadido a su consulta.")
    expect(page.locator("ul.files")).to_contain_text("radiografía.pdf")

    quote_as_the_first_clinic(live_site, staff, reference)
    page.reload()
    expect(page.locator(".lead-status")).to_have_text("Tiene un presupuesto de una clínica.")
    quote = page.get_by_role("table").first
    expect(quote).to_contain_text("cirugía, tres noches de hotel")
    expect(quote.locator(".amount")).to_have_text(re.compile(r"9\.?500,00\s€"))
    assert_accessible(page)
    screenshot(page, "status-page")

    page.get_by_role("button", name="Retirar mi consulta").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"¿Retirar su consulta {reference}?")
    assert api_view(live_site, link)["status"] == LeadStatus.QUOTED  # asked, not done yet
    assert_accessible(page)
    page.get_by_role("button", name="Sí, retirar mi consulta").click()
    expect(page.get_by_role("status")).to_contain_text("Su consulta se ha retirado.")
    expect(page.locator(".lead-status")).to_have_text(
        "Cerrada: esta consulta no seguirá adelante.")
    expect(page.get_by_role("button", name="Retirar mi consulta")).to_have_count(0)
    context.close()

    after = api_view(live_site, link)
    assert after["status"] == LeadStatus.CLOSED
    assert {referral["status"] for referral in after["referrals"]} == {ReferralStatus.CANCELLED}
    # Each clinic is told once, by the worker.
    for referral in referrals_of(live_site, staff, reference):
        email = requests.get(f"{live_site.url}/api/v1/clinics/{referral['clinic']['id']}",
                             headers=staff["admin"], timeout=10).json()["email"]
        [told] = wait_until(lambda email=email: [
            m for m in live_site.sink.sent_to(email) if "withdrew" in m["Subject"]],
            timeout=60, message=f"the cancellation to {email}")
        assert reference in told["Subject"]
