"""The page layer (CONTRACT §9, issue 12) through HTTP: sign-in and sign-out with a session
cookie, CSRF on every form, the session re-checked on every request, pages answering errors
as pages, the language of a page, the catalogues."""

from pathlib import Path

import flask
import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask.sessions import NullSession

from leads.web.guards import SESSION_KEY
from tests.helpers import ROOT, cli, csrf_token_of, page_sign_in

TRANSLATIONS = ROOT / "leads" / "web" / "translations"


def secret_of(headers: dict) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def clinic_key(client, staff):
    """A live API key of an eligible clinic, with the clinic's id and name."""
    clinic_id = min(staff["catalogue"]["eligible"])
    response = client.post(f"/api/v1/clinics/{clinic_id}/api-keys", headers=staff["admin"])
    assert response.status_code == 201
    clinic = client.get(f"/api/v1/clinics/{clinic_id}", headers=staff["admin"]).get_json()
    return {"key": response.get_json()["key"], "key_id": response.get_json()["id"],
            "clinic_id": clinic_id, "name": clinic["name"]}


def html(response) -> str:
    assert response.mimetype == "text/html", response.get_data()[:300]
    return response.get_data(as_text=True)


@pytest.mark.parametrize("path, sign_in", [
    ("/clinic/referrals", "/clinic"), ("/console/leads", "/console"),
    ("/console/users", "/console")])
def test_a_page_without_a_session_sends_to_its_sign_in_page(client, path, sign_in):
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["Location"] == f"{sign_in}?next={path}"


def test_signing_in_goes_back_to_the_page_asked_for(client, staff):
    """A link from an e-mail opens after the sign-in it needed; no other site, nor a route
    that takes posts only, is ever a place to go back to."""
    asked = client.get("/console/users").headers["Location"]
    token = csrf_token_of(html(client.get(asked)))
    answer = client.post(asked, data={"csrf_token": token, "secret": secret_of(staff["admin"])})
    assert answer.status_code == 303 and answer.headers["Location"] == "/console/users"
    for elsewhere in ("https://evil.example/", "//evil.example/x", "/console/sign-out",
                      "/no-such-page", "/\\evil.example"):
        fresh = client.application.test_client()
        token = csrf_token_of(html(fresh.get("/console")))
        answer = fresh.post("/console", query_string={"next": elsewhere},
                            data={"csrf_token": token, "secret": secret_of(staff["admin"])})
        assert answer.headers["Location"] == "/console/leads", elsewhere


def test_a_clinic_signs_in_with_its_key_and_out_again(client, clinic_key):
    response = page_sign_in(client, "/clinic", clinic_key["key"])
    assert response.status_code == 303 and response.headers["Location"] == "/clinic/referrals"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # outside production; see test_production_cookies_are_secure
    listing = html(client.get("/clinic/referrals"))
    assert "<h1>Referrals</h1>" in listing and clinic_key["name"] in listing

    token = csrf_token_of(listing)
    signed_out = client.post("/clinic/sign-out", data={"csrf_token": token})
    assert signed_out.status_code == 303 and signed_out.headers["Location"] == "/clinic"
    assert "You have signed out." in html(client.get("/clinic"))
    assert client.get("/clinic/referrals").status_code == 303


def test_staff_sign_in_with_their_token_and_admins_alone_open_admin_pages(client, staff):
    coordinator = client.application.test_client()
    assert page_sign_in(coordinator, "/console", secret_of(staff["coordinator"])
                        ).headers["Location"] == "/console/leads"
    queue = html(coordinator.get("/console/leads"))
    assert "coord@" in queue and 'href="/console/users"' not in queue
    refused = coordinator.get("/console/users")
    assert refused.status_code == 403
    assert "You may not open this page" in html(refused)

    assert page_sign_in(client, "/console", secret_of(staff["admin"])).status_code == 303
    assert 'href="/console/users"' in html(client.get("/console/leads"))
    assert client.get("/console/users").status_code == 200


@pytest.mark.parametrize("path", ["/clinic", "/console"])
def test_a_wrong_secret_shows_the_form_again_with_the_error(client, staff, path):
    response = page_sign_in(client, path, "stf_not-a-token-of-ours")
    page = html(response)
    assert response.status_code == 200
    assert "is not valid" in page and 'aria-invalid="true"' in page
    landing = "/clinic/referrals" if path == "/clinic" else "/console/leads"
    assert client.get(landing).status_code == 303


def test_a_clinic_key_opens_no_console_and_a_staff_token_no_portal(client, staff, clinic_key):
    assert "is not valid" in html(page_sign_in(client, "/console", clinic_key["key"]))
    assert "is not valid" in html(page_sign_in(client, "/clinic", secret_of(staff["admin"])))
    assert page_sign_in(client, "/clinic", clinic_key["key"]).status_code == 303
    assert client.get("/console/leads").status_code == 303  # a clinic session is not staff's


@pytest.mark.parametrize("path", ["/clinic", "/console", "/clinic/sign-out",
                                  "/console/sign-out"])
def test_a_form_posted_without_its_csrf_token_answers_400_as_a_page(client, staff, path):
    page_sign_in(client, "/console", secret_of(staff["admin"]))
    response = client.post(path, data={"secret": secret_of(staff["admin"])})
    assert response.status_code == 400
    assert "did not come from this site" in html(response)
    forged = client.post(path, data={"csrf_token": "forged", "secret": "x"})
    assert forged.status_code == 400


def test_the_session_token_does_not_outlive_a_sign_in(client, staff):
    """Signing in starts a new session: a token from before it (planted by someone else,
    say) is no longer accepted."""
    before = csrf_token_of(html(client.get("/console")))
    page_sign_in(client, "/console", secret_of(staff["admin"]))
    response = client.post("/console/sign-out", data={"csrf_token": before})
    assert response.status_code == 400


def test_the_api_never_takes_the_page_session(client, staff):
    page_sign_in(client, "/console", secret_of(staff["admin"]))
    assert client.get("/console/users").status_code == 200
    response = client.get("/api/v1/leads")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    # and the API's writes need no CSRF token: they take no cookie at all
    assert client.post("/api/v1/treatments", headers=staff["admin"], json={
        "slug": "dental-implants", "name": "Dental implants",
        "specialty": "dentistry"}).status_code == 201


def test_an_api_request_opens_no_page_session(client, staff):
    page_sign_in(client, "/console", secret_of(staff["admin"]))
    with client:  # keeps each request's context to look into
        client.get("/console/users")
        assert flask.session.get(SESSION_KEY)
        client.get("/api/v1/leads", headers=staff["admin"])
        assert isinstance(flask.session, NullSession)


def test_a_revoked_key_ends_the_clinic_session_at_once(client, staff, clinic_key):
    page_sign_in(client, "/clinic", clinic_key["key"])
    assert client.get("/clinic/referrals").status_code == 200
    revoked = client.delete(f"/api/v1/clinics/{clinic_key['clinic_id']}/api-keys/"
                            f"{clinic_key['key_id']}", headers=staff["admin"])
    assert revoked.status_code == 204
    response = client.get("/clinic/referrals")
    assert response.status_code == 303
    assert response.headers["Location"] == "/clinic?next=/clinic/referrals"


def test_an_inactive_clinic_is_refused_with_a_page(client, staff, clinic_key):
    page_sign_in(client, "/clinic", clinic_key["key"])
    response = client.patch(f"/api/v1/clinics/{clinic_key['clinic_id']}",
                            headers=staff["admin"], json={"active": False})
    assert response.status_code == 200
    refused = client.get("/clinic/referrals")
    assert refused.status_code == 403 and "not active" in html(refused)


def test_a_deactivated_user_loses_the_console_at_once(app, client, staff):
    page_sign_in(client, "/console", secret_of(staff["coordinator"]))
    assert client.get("/console/leads").status_code == 200
    result = cli(app, "users", "deactivate", "--email", "coord@care.example")
    assert result.exit_code == 0, result.output
    assert client.get("/console/leads").status_code == 303


def test_sign_in_attempts_are_rate_limited(app, client):
    limit = int(app.config["SIGN_IN_RATE_LIMIT"].split()[0])
    statuses = [page_sign_in(client, "/console", "stf_wrong").status_code
                for _ in range(limit + 1)]
    assert statuses[:limit] == [200] * limit
    assert statuses[-1] == 429
    page = page_sign_in(client, "/console", "stf_wrong")
    assert "Too many attempts" in html(page) and "Retry-After" in page.headers
    assert client.get("/console").status_code == 200  # showing the form is not an attempt


def test_page_errors_are_pages_and_api_errors_problem_details(client):
    assert "Page not found" in html(client.get("/console/no-such-page"))
    assert client.get("/console/no-such-page").status_code == 404
    assert client.get("/api/v1/no-such-thing").mimetype == "application/problem+json"
    refused = client.delete("/console")
    assert refused.status_code == 405 and "GET" in refused.headers["Allow"]
    assert "<h1>This page cannot be used that way</h1>" in html(refused)


@pytest.mark.parametrize("accept, lang, title", [
    ("es-MX,es;q=0.9,en;q=0.5", "es", "Acceso para clínicas"),
    ("de", "de", "Anmeldung für Kliniken"),
    ("fr-FR,fr", "en", "Clinic sign-in"),
    (None, "en", "Clinic sign-in")])
def test_a_page_is_in_the_language_the_browser_asks_for(client, accept, lang, title):
    page = html(client.get("/clinic", headers={"Accept-Language": accept} if accept else {}))
    assert f'<html lang="{lang}">' in page and f"<h1>{title}</h1>" in page


def test_pages_carry_the_content_security_policy_and_no_inline_code(client):
    response = client.get("/console")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    page = html(response)
    assert "<script" not in page and "style=" not in page and "<style" not in page
    assert 'href="/static/pages.css"' in page and "//" not in page.split("<body>")[0].replace(
        'content="width=device-width', "")
    assert client.get("/static/pages.css").status_code == 200


def test_production_cookies_are_secure(test_env, monkeypatch, staff):
    from leads.web.app import create_app

    monkeypatch.setenv("APP_ENV", "production")
    client = create_app().test_client()
    response = page_sign_in(client, "/console", secret_of(staff["admin"]))
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize("language", ["es", "de"])
def test_every_catalogue_is_translated_and_compiled(language):
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    with open(folder / "messages.po", "rb") as po, open(folder / "messages.mo", "rb") as mo:
        source, compiled = read_po(po), read_mo(mo)
    with open(TRANSLATIONS / "messages.pot", "rb") as pot:
        wanted = {message.id for message in read_po(pot) if message.id}
    assert {message.id for message in source if message.id} == wanted
    assert [message.id for message in source if message.id and not message.string] == []
    assert {m.id: m.string for m in compiled if m.id} == {m.id: m.string for m in source
                                                          if m.id}, "run `make translations`"


def test_the_template_gathers_every_text_of_the_pages(tmp_path):
    """`pybabel extract` (babel.cfg) finds what messages.pot holds: nothing added unseen."""
    import subprocess
    import sys

    fresh = tmp_path / "messages.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "-q", "extract", "-F",
                    "babel.cfg", "-k", "lazy_gettext", "--no-location", "--omit-header",
                    "-o", str(fresh), "leads"], cwd=ROOT, check=True)
    with open(fresh, "rb") as new, open(TRANSLATIONS / "messages.pot", "rb") as kept:
        assert {m.id for m in read_po(new)} == {m.id for m in read_po(kept)}, \
            "run `make translations`"


@pytest.mark.parametrize("chosen, lang, title", [
    ("es", "es", "Página no encontrada"), ("de", "de", "Seite nicht gefunden"),
    ("fr", "en", "Page not found"), (None, "en", "Page not found")])
def test_a_view_chooses_the_language_over_the_browsers(app, chosen, lang, title):
    """What the status page does with the lead's language (`use_language`)."""
    from leads.web.pages.rendering import error_page, use_language

    with app.test_request_context("/status/x", headers={"Accept-Language": "de"}):
        error_page(404)  # a first rendering fixes the language until it is changed
        use_language(chosen)
        body, status, _ = error_page(404)
    assert status == 404 and f'<html lang="{lang}">' in body and f"<h1>{title}</h1>" in body
