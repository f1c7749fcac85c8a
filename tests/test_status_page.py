"""The patient's status page (CONTRACT §3) through HTTP: what it shows, in the lead's
language, the 404 page for a wrong or missing token, the upload form with the API's checks,
and the withdrawal with its confirmation step, CSRF-protected."""

import io
import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import select

from leads.core.clock import today
from leads.pipeline.models import Lead
from leads.pipeline.states import EventKind, LeadStatus, ReferralStatus
from tests.helpers import (
    act,
    clinics_of,
    csrf_token_of,
    detail,
    events,
    inquiry_body,
    inquiry_path,
    status_token,
    submit,
)
from tests.samples import jpeg, pdf, pdf_of_size


def status_path(accepted: dict) -> str:
    return f"/status/{accepted['reference']}"


def open_status(client, accepted: dict, **request):
    return client.get(status_path(accepted), query_string={"token": status_token(accepted)},
                      **request)


def text_of(response) -> str:
    """The page's text without its tags, entities decoded, spaces collapsed."""
    body = re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))
    return re.sub(r"\s+", " ", unescape(body))


def upload(client, accepted: dict, content: bytes, filename: str = "scan.pdf", **request):
    """The page's upload form sent as a browser sends it: its CSRF token, the hidden token."""
    page = open_status(client, accepted, **request).get_data(as_text=True)
    return client.post(f"{status_path(accepted)}/files", content_type="multipart/form-data",
                       data={"csrf_token": csrf_token_of(page), "token": status_token(accepted),
                             "file": (io.BytesIO(content), filename)}, **request)


def withdraw_confirmed(client, accepted: dict):
    """The withdrawal's two steps: the confirmation page, then its form."""
    confirmation = client.get(f"{status_path(accepted)}/withdraw",
                              query_string={"token": status_token(accepted)})
    assert confirmation.status_code == 200
    return client.post(f"{status_path(accepted)}/withdraw", data={
        "csrf_token": csrf_token_of(confirmation.get_data(as_text=True)),
        "token": status_token(accepted)})


@pytest.fixture
def quoted(client, db_session, routed):
    """The routed lead, its first clinic renamed with accents and holding a second, unverified
    accreditation and an expired one; that clinic accepted and quoted."""
    from leads.catalogue.models import Accreditation, Clinic

    headers, referral_id = clinics_of(routed)[0]
    clinic_id = min(routed["referrals"])
    clinic = db_session.get(Clinic, clinic_id)
    clinic.name, clinic.city = "Clínica Nuñez Bienestar", "Querétaro"
    db_session.add_all([
        Accreditation(clinic=clinic, body="ISO 9001", verified=False,
                      valid_from=today() - timedelta(days=10),
                      valid_until=today() + timedelta(days=300)),
        Accreditation(clinic=clinic, body="GMP", verified=True,
                      valid_from=today() - timedelta(days=400),
                      valid_until=today() - timedelta(days=1))])
    db_session.commit()
    assert act(client, headers, referral_id, "accept").status_code == 200
    answer = act(client, headers, referral_id, "quote", {
        "amount": 9500, "currency": "EUR", "includes": ["surgery", "three nights"],
        "valid_until": (today() + timedelta(days=30)).isoformat()})
    assert answer.status_code == 200, answer.get_json()
    return routed


def test_the_page_shows_what_the_api_does_in_the_leads_language(client, quoted):
    accepted = quoted["accepted"]  # a Spanish patient (inquiry_body's language)
    api = client.get(inquiry_path(accepted)).get_json()
    response = open_status(client, accepted, headers={"Accept-Language": "de"})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert '<html lang="es">' in html
    # Accented names are characters, not escapes.
    assert "Clínica Nuñez Bienestar" in html and "Querétaro" in html
    text = text_of(response)
    assert f"Su consulta {accepted['reference']}" in text
    assert "Tiene un presupuesto de una clínica." in text  # quoted, in words
    assert "Stem cells for the spine" in text
    for referral in api["referrals"]:
        assert referral["clinic"]["name"] in text and referral["clinic"]["city"] in text
    assert "México" in text  # the country, named in Spanish
    # The quote: amount in Spanish notation, what it includes, until when.
    assert "9500,00 € EUR" in text.replace("\xa0", " ").replace(".", "")
    assert "surgery, three nights" in text
    # Verified accreditations valid today only.
    assert "JCI" in text and "ISO 9001" not in text and "GMP" not in text


def test_a_german_lead_reads_german_and_an_unknown_language_english(client, catalogue):
    german = submit(client, patient={**inquiry_body()["patient"], "language": "de"})
    text = text_of(open_status(client, german))
    assert f"Ihre Anfrage {german['reference']}" in text
    assert "Noch wurde keine Klinik ausgewählt." in text
    assert "Eine Datei hinzufügen" in text and "Meine Anfrage zurückziehen" in text
    other = submit(client, patient={**inquiry_body()["patient"], "language": "fr"})
    response = open_status(client, other, headers={"Accept-Language": "es"})
    assert '<html lang="en">' in response.get_data(as_text=True)
    assert f"Your inquiry {other['reference']}" in text_of(response)


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_a_wrong_or_missing_token_answers_a_404_page(client, catalogue, token):
    accepted = submit(client)
    query = {} if token is None else {"token": token}
    for path in (status_path(accepted), f"{status_path(accepted)}/withdraw"):
        response = client.get(path, query_string=query, headers={"Accept-Language": "es"})
        assert response.status_code == 404
        assert response.mimetype == "text/html"
        assert "Página no encontrada" in text_of(response)
        assert "Este enlace no abre ninguna consulta." in text_of(response)
        assert accepted["reference"] not in response.get_data(as_text=True)


def test_an_unknown_reference_and_a_posted_wrong_token_answer_404_pages(client, catalogue):
    accepted = submit(client)
    assert client.get("/status/MT-NOTHERE", query_string={
        "token": status_token(accepted)}).status_code == 404
    page = open_status(client, accepted).get_data(as_text=True)
    for action in ("files", "withdraw"):
        response = client.post(f"{status_path(accepted)}/{action}", data={
            "csrf_token": csrf_token_of(page), "token": "not-the-token"})
        assert response.status_code == 404 and response.mimetype == "text/html"


def test_an_erased_lead_has_no_status_page(client, db_session, catalogue, staff):
    accepted = submit(client)
    email = db_session.scalar(select(Lead).where(
        Lead.reference == accepted["reference"])).email
    erased = client.post("/api/v1/people/erase", headers=staff["admin"],
                         json={"email": email, "reason": "asked to"})
    assert erased.status_code == 200
    assert open_status(client, accepted).status_code == 404


def test_the_token_leaves_the_page_only_where_needed(client, catalogue):
    accepted = submit(client)
    token = status_token(accepted)
    response = open_status(client, accepted)
    html = response.get_data(as_text=True)
    assert response.headers["Referrer-Policy"] == "no-referrer"
    # In the hidden field of the upload form and of the withdrawal's GET form, nowhere else.
    assert html.count(token) == 2
    assert html.count(f'type="hidden" name="token" value="{token}"') + html.count(
        f'name="token" type="hidden" value="{token}"') == 2
    for action in re.findall(r'action="([^"]*)"', html):
        assert token not in action


def test_a_file_added_through_the_page_is_the_apis_kind_of_file(client, db_session, routed,
                                                                 staff):
    accepted = routed["accepted"]
    response = upload(client, accepted, pdf(), "résumé médical.pdf")
    assert response.status_code == 303
    assert response.headers["Location"] == (
        f"{status_path(accepted)}?token={status_token(accepted)}")
    page = client.get(response.headers["Location"])
    text = text_of(page)
    assert "résumé médical.pdf se ha añadido a su consulta." in text
    assert "résumé médical.pdf" in text.split("Sus archivos")[1]
    lead = client.get(f"/api/v1/leads/{routed['lead_id']}", headers=staff["admin"]).get_json()
    [attachment] = lead["attachments"]
    assert attachment["filename"] == "résumé médical.pdf"
    assert attachment["content_type"] == "application/pdf"
    assert [e["actor"] for e in lead["timeline"] if e["kind"] == "attachment_added"] == [
        "patient"]


@pytest.mark.parametrize("content, status, said", [
    (b"%PDF-1.7 but cut off", 422, "Envíe un archivo PDF, JPEG, PNG o DICOM completo."),
    (jpeg()[:-2], 422, "Envíe un archivo PDF, JPEG, PNG o DICOM completo."),
    (pdf_of_size(10_000_001), 413, "Este archivo ocupa más de 10 MB."),
])
def test_a_refused_file_is_said_beside_the_form_with_the_apis_status(client, routed, staff,
                                                                     content, status, said):
    response = upload(client, routed["accepted"], content)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert 'id="file-error"' in html and 'aria-invalid="true"' in html
    assert said in text_of(response)
    assert "Su consulta" in text_of(response)  # the status page, not an error page
    lead = client.get(f"/api/v1/leads/{routed['lead_id']}", headers=staff["admin"]).get_json()
    assert lead["attachments"] == []


def test_no_file_chosen_and_a_sixth_file_answer_422_on_the_page(client, routed):
    accepted = routed["accepted"]
    page = open_status(client, accepted).get_data(as_text=True)
    empty = client.post(f"{status_path(accepted)}/files", content_type="multipart/form-data",
                        data={"csrf_token": csrf_token_of(page), "token": status_token(accepted),
                              "file": (io.BytesIO(b""), "")})
    assert empty.status_code == 422 and "Elija un archivo para añadir." in text_of(empty)
    for n in range(5):
        assert upload(client, accepted, pdf(n), f"scan{n}.pdf").status_code == 303
    sixth = upload(client, accepted, pdf(6), "scan6.pdf")
    assert sixth.status_code == 422
    assert "Una consulta admite como máximo 5 archivos." in text_of(sixth)


def test_page_and_api_uploads_share_one_rate_limit(app, client, routed, monkeypatch):
    monkeypatch.setitem(app.config, "ATTACHMENT_RATE_LIMIT", "3 per hour")
    accepted = routed["accepted"]
    address = {"environ_base": {"REMOTE_ADDR": "10.61.0.1"}}
    for n in range(2):
        assert client.post(inquiry_path(accepted, "attachments"),
                           content_type="multipart/form-data",
                           data={"file": (io.BytesIO(pdf(n)), "a.pdf")},
                           **address).status_code == 201
    assert upload(client, accepted, pdf(3), **address).status_code == 303
    refused = upload(client, accepted, pdf(4), **address)
    assert refused.status_code == 429 and refused.mimetype == "text/html"
    assert "Retry-After" in refused.headers
    assert client.post(inquiry_path(accepted, "attachments"), content_type="multipart/form-data",
                       data={"file": (io.BytesIO(pdf(5)), "a.pdf")},
                       **address).status_code == 429


def test_an_upload_without_its_csrf_token_answers_400(client, routed):
    accepted = routed["accepted"]
    response = client.post(f"{status_path(accepted)}/files", content_type="multipart/form-data",
                           data={"token": status_token(accepted),
                                 "file": (io.BytesIO(pdf()), "scan.pdf")})
    assert response.status_code == 400 and response.mimetype == "text/html"


def test_withdrawing_asks_first_then_closes_as_the_api_does(client, quoted):
    accepted = quoted["accepted"]
    confirmation = client.get(f"{status_path(accepted)}/withdraw",
                              query_string={"token": status_token(accepted)})
    assert "¿Retirar su consulta" in text_of(confirmation)
    # Nothing happened yet: the confirmation is a page.
    assert client.get(inquiry_path(accepted)).get_json()["status"] == LeadStatus.QUOTED
    response = withdraw_confirmed(client, accepted)
    assert response.status_code == 303
    assert response.headers["Location"] == (
        f"{status_path(accepted)}?token={status_token(accepted)}")
    page = text_of(client.get(response.headers["Location"]))
    assert "Su consulta se ha retirado." in page
    assert "Cerrada: esta consulta no seguirá adelante." in page
    assert "Retirar mi consulta" not in page  # no button any more
    api = client.get(inquiry_path(accepted)).get_json()
    assert api["status"] == LeadStatus.CLOSED
    assert {r["status"] for r in api["referrals"]} == {ReferralStatus.CANCELLED}
    lead = detail(client, quoted["admin"], quoted["lead_id"])
    [closed] = [event for event in events(lead, EventKind.STATUS_CHANGED)
                if event["data"]["to"] == LeadStatus.CLOSED]
    assert closed["actor"] == "patient"


def test_withdrawing_a_closed_inquiry_answers_a_409_page(client, routed):
    accepted = routed["accepted"]
    assert withdraw_confirmed(client, accepted).status_code == 303
    confirmation = client.get(f"{status_path(accepted)}/withdraw",
                              query_string={"token": status_token(accepted)})
    assert "ya está cerrada o completada" in text_of(confirmation)
    page = open_status(client, accepted).get_data(as_text=True)
    again = client.post(f"{status_path(accepted)}/withdraw", data={
        "csrf_token": csrf_token_of(page), "token": status_token(accepted)})
    assert again.status_code == 409 and again.mimetype == "text/html"
    assert "ya no se puede retirar" in text_of(again)


def test_the_withdrawal_without_its_csrf_token_answers_400_and_changes_nothing(client,
                                                                               routed):
    accepted = routed["accepted"]
    response = client.post(f"{status_path(accepted)}/withdraw",
                           data={"token": status_token(accepted)})
    assert response.status_code == 400 and response.mimetype == "text/html"
    forged = client.post(f"{status_path(accepted)}/withdraw",
                         data={"token": status_token(accepted), "csrf_token": "forged"})
    assert forged.status_code == 400
    assert client.get(inquiry_path(accepted)).get_json()["status"] == LeadStatus.ROUTED


def test_a_spam_lead_looks_received_and_keeps_no_file(client, db_session, catalogue):
    accepted = submit(client, website="https://spam.example")
    text = text_of(open_status(client, accepted))
    assert "Recibida: estamos buscando clínicas adecuadas para su consulta." in text
    assert upload(client, accepted, pdf()).status_code == 303
    lead = db_session.scalar(select(Lead).where(Lead.reference == accepted["reference"]))
    assert lead.status == LeadStatus.SPAM and lead.attachments == []
