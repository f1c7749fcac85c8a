"""The clinic portal (CONTRACT §9, §5) through a test client signed in as a browser is:
a clinic lists and opens only its own referrals, and its forms do what the clinic API does,
which the API then shows."""

import io
import re
from datetime import timedelta
from itertools import count

import pytest

from leads.catalogue.models import Clinic
from leads.core.clock import today
from tests.helpers import (
    csrf_token_of,
    message_to,
    page_sign_in,
    route,
    status_token,
    submit,
)
from tests.samples import pdf

_addresses = count(1)


def signed_in_client(app, key_headers: dict):
    """A test client of its own, signed in on /clinic with the clinic's API key."""
    session = app.test_client()
    request = {"environ_base": {"REMOTE_ADDR": f"10.61.0.{next(_addresses) % 250 + 1}"}}
    answer = page_sign_in(session, "/clinic", key_headers["Authorization"].split()[1], **request)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    return session


def html(response) -> str:
    assert response.headers["Content-Type"].startswith("text/html")
    return response.get_data(as_text=True)


def post_form(session, path: str, **fields):
    """A form of the referral page posted as the browser would: with the page's CSRF token."""
    referral_page = path.rsplit("/", 1)[0]
    token = csrf_token_of(html(session.get(referral_page)))
    return session.post(path, data={"csrf_token": token, **fields})


def api_referral(client, headers, referral_id) -> dict:
    response = client.get(f"/api/v1/clinic/referrals/{referral_id}", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def error_beside(page: str, field: str) -> str:
    """The error shown beside a form field, tied to it for screen readers."""
    found = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    assert found, f"no error beside {field}"
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*id="{field}"',
                     page), f"{field} is not marked invalid"
    return found.group(1)


@pytest.fixture
def portal(app, client, routed):
    """Clinic A's and clinic B's sessions on the lead of `routed`, with a PDF on the lead."""
    response = client.post(
        f"/api/v1/inquiries/{routed['reference']}/attachments",
        query_string={"token": status_token(routed["accepted"])},
        content_type="multipart/form-data", data={"file": (io.BytesIO(pdf()), "scan.pdf")})
    assert response.status_code == 201, response.get_json()
    clinic_a, clinic_b = sorted(routed["referrals"])[:2]
    return {**routed, "attachment_id": response.get_json()["id"],
            "a": signed_in_client(app, routed["keys"][clinic_a]),
            "b": signed_in_client(app, routed["keys"][clinic_b]),
            "a_key": routed["keys"][clinic_a],
            "mine": routed["referrals"][clinic_a], "theirs": routed["referrals"][clinic_b]}


def referral_links(page: str) -> set[int]:
    return {int(i) for i in re.findall(r'href="/clinic/referrals/(\d+)"', page)}


def test_the_list_shows_only_this_clinics_referrals(app, client, db_session, portal):
    route(app, db_session, submit(client)["reference"])
    api = client.get("/api/v1/clinic/referrals", headers=portal["a_key"]).get_json()["items"]
    page = html(portal["a"].get("/clinic/referrals"))
    assert referral_links(page) == {r["id"] for r in api}
    assert portal["mine"] in referral_links(page)
    assert portal["theirs"] not in referral_links(page)
    assert portal["reference"] in page and "Stem cells for the spine" in page
    assert "Requested" in page  # the status in words


def test_the_list_filters_by_status_and_pages_by_cursor(app, client, db_session, portal):
    route(app, db_session, submit(client)["reference"])
    own = [r["id"] for r in client.get("/api/v1/clinic/referrals",
                                       headers=portal["a_key"]).get_json()["items"]]
    seen, path = [], "/clinic/referrals?limit=1"
    while path:
        page = html(portal["a"].get(path))
        seen += sorted(referral_links(page))
        older = re.search(r'<a rel="next" href="([^"]+)"', page)
        path = older.group(1).replace("&amp;", "&") if older else None
    assert seen == own  # one a page, newest first, as the API lists them

    assert post_form(portal["a"], f"/clinic/referrals/{portal['mine']}/decline",
                     reason="Fully booked.").status_code == 303
    filtered = portal["a"].get("/clinic/referrals?status=declined")
    assert filtered.status_code == 200
    declined = html(filtered)
    assert '<option value="declined" selected>' in declined
    assert referral_links(declined) == {portal["mine"]}
    assert portal["mine"] not in referral_links(html(portal["a"].get(
        "/clinic/referrals?status=requested")))
    everything = html(portal["a"].get("/clinic/referrals?status="))
    assert referral_links(everything) == set(own)


def test_an_unknown_status_filter_answers_422_naming_it(portal):
    response = portal["a"].get("/clinic/referrals?status=lost")
    assert response.status_code == 422
    assert "status" in html(response)


def test_another_clinics_referral_answers_404_as_a_page(portal):
    theirs = portal["theirs"]
    for path in (f"/clinic/referrals/{theirs}",
                 f"/clinic/referrals/{theirs}/attachments/{portal['attachment_id']}"):
        response = portal["a"].get(path)
        assert response.status_code == 404
        assert "Page not found" in html(response)
    token = csrf_token_of(html(portal["a"].get(f"/clinic/referrals/{portal['mine']}")))
    for action, fields in (("accept", {}), ("decline", {"reason": "No."}),
                           ("quote", {"amount": "9000", "currency": "USD"})):
        response = portal["a"].post(f"/clinic/referrals/{theirs}/{action}",
                                    data={"csrf_token": token, **fields})
        assert response.status_code == 404, action
        assert "Page not found" in html(response)


def test_opening_a_referral_marks_it_received_as_the_api_does(client, portal):
    referral_id = portal["mine"]
    page = html(portal["a"].get(f"/clinic/referrals/{referral_id}"))
    assert "Opened by the clinic" in page
    lead = client.get(f"/api/v1/leads/{portal['lead_id']}", headers=portal["admin"]).get_json()
    [seen] = [r for r in lead["referrals"] if r["id"] == referral_id]
    assert seen["status"] == "received"
    # another clinic's referral stays unread
    [unread] = [r for r in lead["referrals"] if r["id"] == portal["theirs"]]
    assert unread["status"] == "requested"


def test_contact_details_and_files_appear_only_after_accepting(client, db_session, portal):
    referral_id, attachment = portal["mine"], portal["attachment_id"]
    assert "email" not in api_referral(client, portal["a_key"], referral_id)["patient"]
    download = f"/clinic/referrals/{referral_id}/attachments/{attachment}"
    before = html(portal["a"].get(f"/clinic/referrals/{referral_id}"))
    lead_email = client.get(f"/api/v1/leads/{portal['lead_id']}",
                            headers=portal["admin"]).get_json()["patient"]["email"]
    assert lead_email not in before and "scan.pdf" not in before
    assert "shown once you accept" in before
    assert portal["a"].get(download).status_code == 404

    accepted = post_form(portal["a"], f"/clinic/referrals/{referral_id}/accept")
    assert accepted.status_code == 303
    assert accepted.headers["Location"] == f"/clinic/referrals/{referral_id}"
    after = html(portal["a"].get(f"/clinic/referrals/{referral_id}"))
    shown = api_referral(client, portal["a_key"], referral_id)
    assert shown["status"] == "accepted"
    assert shown["patient"]["email"] in after and shown["patient"]["phone"] in after
    assert "You accepted the referral." in after
    assert f'href="{download}"' in after
    answer = portal["a"].get(download)
    assert answer.status_code == 200 and answer.data == pdf()
    assert answer.headers["Content-Type"] == "application/pdf"
    assert answer.headers["Cache-Control"] == "no-store"
    # clinic B has not accepted: still nothing of the patient's for it
    theirs = html(portal["b"].get(f"/clinic/referrals/{portal['theirs']}"))
    assert shown["patient"]["email"] not in theirs
    assert portal["b"].get(f"/clinic/referrals/{portal['theirs']}/attachments/"
                           f"{attachment}").status_code == 404


@pytest.mark.parametrize("action", ["accept", "decline", "quote"])
def test_every_form_posted_without_its_csrf_token_answers_400(client, portal, action):
    referral_id = portal["mine"]
    response = portal["a"].post(f"/clinic/referrals/{referral_id}/{action}",
                                data={"reason": "Fully booked.", "amount": "9000",
                                      "currency": "USD"})
    assert response.status_code == 400
    assert "did not come from this site" in html(response)
    assert api_referral(client, portal["a_key"], referral_id)["status"] == "received"


def test_the_sign_out_form_without_its_token_answers_400(portal):
    response = portal["a"].post("/clinic/sign-out")
    assert response.status_code == 400
    assert portal["a"].get("/clinic/referrals").status_code == 200  # still signed in


@pytest.mark.parametrize("reason", ["", "   "])
def test_declining_without_a_reason_answers_422_naming_it(client, portal, reason):
    referral_id = portal["mine"]
    response = post_form(portal["a"], f"/clinic/referrals/{referral_id}/decline", reason=reason)
    assert response.status_code == 422
    assert "Say why you decline" in error_beside(html(response), "reason")
    assert api_referral(client, portal["a_key"], referral_id)["status"] == "received"


def test_a_reason_too_long_for_the_api_is_refused_as_the_api_refuses_it(client, portal):
    referral_id = portal["mine"]
    response = post_form(portal["a"], f"/clinic/referrals/{referral_id}/decline",
                         reason="x" * 2001)
    assert response.status_code == 422
    assert "2000" in error_beside(html(response), "reason")


def test_declining_tells_the_api_with_the_reason(client, portal):
    referral_id = portal["mine"]
    response = post_form(portal["a"], f"/clinic/referrals/{referral_id}/decline",
                         reason="Fully booked until spring.")
    assert response.status_code == 303
    shown = api_referral(client, portal["a_key"], referral_id)
    assert shown["status"] == "declined" and shown["decline_reason"] == "Fully booked until spring."
    page = html(portal["a"].get(f"/clinic/referrals/{referral_id}"))
    assert "Declined" in page and "Fully booked until spring." in page
    assert "Accept the patient" not in page  # no answer is offered any more


@pytest.mark.parametrize("fields, bad", [
    ({"currency": "USD"}, {"amount"}),
    ({"amount": "nine thousand", "currency": "USD"}, {"amount"}),
    ({"amount": "0", "currency": "USD"}, {"amount"}),
    ({"amount": "NaN", "currency": "USD"}, {"amount"}),
    ({"amount": "9000", "currency": "XYZ"}, {"currency"}),
    ({"amount": "9000"}, {"currency"}),
    ({"amount": "9000", "currency": "USD", "valid_until": "yesterday"}, {"valid_until"}),
    ({"amount": "9000", "currency": "USD",
      "valid_until": (today() - timedelta(days=1)).isoformat()}, {"valid_until"}),
    ({"amount": "9000", "currency": "USD", "includes": "x" * 201}, {"includes"}),
    ({"amount": "-5", "currency": "EURO", "notes": "n" * 5001}, {"amount", "currency", "notes"}),
])
def test_a_quote_the_api_would_refuse_answers_422_beside_each_field(client, portal, fields,
                                                                     bad):
    referral_id = portal["mine"]
    assert post_form(portal["a"], f"/clinic/referrals/{referral_id}/accept").status_code == 303
    response = post_form(portal["a"], f"/clinic/referrals/{referral_id}/quote", **fields)
    assert response.status_code == 422
    page = html(response)
    assert set(re.findall(r'<p class="error" id="([a-z_]+)-error">', page)) == bad
    for field in bad:
        assert error_beside(page, field)
    assert api_referral(client, portal["a_key"], referral_id)["quotes"] == []


def test_a_quote_sent_from_the_page_is_the_apis(client, portal):
    referral_id = portal["mine"]
    valid_until = (today() + timedelta(days=30)).isoformat()
    assert post_form(portal["a"], f"/clinic/referrals/{referral_id}/accept").status_code == 303
    response = post_form(portal["a"], f"/clinic/referrals/{referral_id}/quote",
                         amount="9500.50", currency="USD", valid_until=valid_until,
                         includes="Treatment\n\n  3 nights hotel  \n", notes="Airport pickup.")
    assert response.status_code == 303
    shown = api_referral(client, portal["a_key"], referral_id)
    assert shown["status"] == "quoted"
    [quote] = shown["quotes"]
    assert quote["amount"] == 9500.5 and quote["currency"] == "USD"
    assert quote["includes"] == ["Treatment", "3 nights hotel"]
    assert quote["valid_until"] == valid_until and quote["notes"] == "Airport pickup."
    lead = client.get(f"/api/v1/leads/{portal['lead_id']}", headers=portal["admin"]).get_json()
    assert lead["status"] == "quoted"
    page = html(portal["a"].get(f"/clinic/referrals/{referral_id}"))
    assert "Your quote was sent to the patient." in page and "Revise your quote" in page


@pytest.mark.parametrize("first, then, fields", [
    (None, "quote", {"amount": "9000", "currency": "USD"}),  # not accepted yet
    ("accept", "accept", {}),
    ("accept", "decline", {"reason": "Changed our mind."}),
    ("decline", "accept", {}),
])
def test_an_answer_the_state_refuses_answers_409_with_the_reason(client, portal, first, then,
                                                                 fields):
    referral_id = portal["mine"]
    if first:
        assert post_form(portal["a"], f"/clinic/referrals/{referral_id}/{first}",
                         reason="Fully booked.").status_code == 303
    before = api_referral(client, portal["a_key"], referral_id)
    response = post_form(portal["a"], f"/clinic/referrals/{referral_id}/{then}", **fields)
    assert response.status_code == 409
    page = html(response)
    assert "This cannot be done now" in page and "cannot go from" in page
    after = api_referral(client, portal["a_key"], referral_id)
    assert (after["status"], after["quotes"]) == (before["status"], before["quotes"])


def test_the_notification_links_to_the_portal_and_sign_in_comes_back_to_it(app, db_session,
                                                                           portal):
    clinic = db_session.get(Clinic, min(portal["referrals"]))
    message = message_to(db_session, clinic.email)
    link = f"{app.config['PUBLIC_BASE_URL']}/clinic/referrals/{portal['mine']}"
    assert link in message.body_text and f'href="{link}"' in message.body_html
    # A clinic without a session is sent to sign in, and back here afterwards.
    fresh = app.test_client()
    path = f"/clinic/referrals/{portal['mine']}"
    response = fresh.get(path)
    assert response.status_code == 303 and response.headers["Location"] == f"/clinic?next={path}"
    signed_in = page_sign_in(fresh, f"/clinic?next={path}",
                             portal["a_key"]["Authorization"].split()[1],
                             environ_base={"REMOTE_ADDR": "10.61.1.1"})
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == path
    assert portal["reference"] in html(fresh.get(path))


@pytest.mark.parametrize("language, words", [
    ("es", ("Aceptar al paciente", "Motivo del rechazo", "Abierto por la clínica")),
    ("de", ("Patienten annehmen", "Grund für die Ablehnung", "Von der Klinik geöffnet"))])
def test_the_referral_page_speaks_the_browsers_language(portal, language, words):
    page = html(portal["a"].get(f"/clinic/referrals/{portal['mine']}",
                                headers={"Accept-Language": language}))
    assert f'<html lang="{language}">' in page
    for word in words:
        assert word in page
