"""The authorisation matrix, generated from the routes' declared audiences: every route of
the app is called as each kind of caller, and the answer must be what its audience allows.
A route that declares no audience fails here (and stops the app from starting).

Callers come with a bearer header (the API's way) or with a page session signed in on
/clinic or /console (the pages' way, sending the session's CSRF token with each write to a
page); neither opens the other's routes."""

import io
import re

import pytest
from sqlalchemy import select

from leads.accounts.models import ClinicApiKey, User
from leads.attachments.models import Attachment
from leads.catalogue.models import Accreditation
from leads.web.guards import PAGE_AUDIENCES, Audience, declared_audience, undeclared_routes
from tests.helpers import auth, csrf_token_of, page_sign_in, status_token
from tests.samples import pdf

CALLERS = ("anonymous", "bad token", "inactive user", "coordinator", "admin", "clinic A",
           "clinic B", "clinic A session", "coordinator session", "admin session")
# Who each page session signs in as, and where.
SESSIONS = {"clinic A session": ("/clinic", "clinic A"),
            "coordinator session": ("/console", "coordinator"),
            "admin session": ("/console", "admin")}
# 400 is a write to a page without the session's CSRF token; a page sends a caller without
# its session to sign in (303 to the sign-in page with `?next=`), while a page's successful
# write redirects (303) elsewhere.
REFUSED = {400, 401, 403}
SENT_TO_SIGN_IN = re.compile(r"^/(clinic|console)\?next=")


def refusal_of(response) -> int | None:
    """The answer's status when it is a refusal, else None."""
    if response.status_code == 303:
        return 303 if SENT_TO_SIGN_IN.match(response.headers["Location"]) else None
    return response.status_code if response.status_code in REFUSED else None
# Valid bodies where a clinic answers a referral, so that another clinic's 404 is not hidden
# behind a 422; every other write is sent without a body.
BODIES = {"/api/v1/clinic/referrals/<int:referral_id>/quote": {"amount": 9000,
                                                              "currency": "USD"},
          "/api/v1/clinic/referrals/<int:referral_id>/decline": {"reason": "Fully booked."},
          "/api/v1/clinic/referrals/<int:referral_id>/fhir/Task": {
              "status": "rejected", "statusReason": {"text": "Fully booked."}}}


# The patient's endpoints (CONTRACT §3): no credential, the status token decides.
PATIENT_ROUTES = {
    ("POST", "/api/v1/inquiries"),
    ("GET", "/api/v1/inquiries/<string:reference>"),
    ("POST", "/api/v1/inquiries/<string:reference>/attachments"),
    ("POST", "/api/v1/inquiries/<string:reference>/withdraw"),
}
# The patient's status page and its forms (CONTRACT §3): no session, the token decides.
STATUS_PAGE_ROUTES = {
    ("GET", "/status/<string:reference>"),
    ("POST", "/status/<string:reference>/files"),
    ("GET", "/status/<string:reference>/withdraw"),
    ("POST", "/status/<string:reference>/withdraw"),
}


def expected_on_a_page(audience: Audience, caller: str) -> int | None:
    if caller not in SESSIONS:
        return 303
    if caller.startswith("clinic"):
        return None if audience is Audience.CLINIC_PAGE else 303
    if audience is Audience.CLINIC_PAGE:
        return 303
    return 403 if audience is Audience.ADMIN_PAGE and caller.startswith("coordinator") else None


def expected(audience: Audience, caller: str, page_write: bool = False) -> int | None:
    """The refusal (303, 400, 401 or 403) the caller meets; None when it must get past the
    guard. A write to a page without a session has no CSRF token to show: CSRFProtect
    answers 400 before the guard looks."""
    if page_write and caller not in SESSIONS:
        return 400
    if audience is Audience.ANYONE:
        return None
    if audience in PAGE_AUDIENCES:
        return expected_on_a_page(audience, caller)
    if caller in SESSIONS:
        return 401  # a page session never opens the API
    if audience is Audience.CLINIC:
        return None if caller.startswith("clinic") else 401
    if caller in ("coordinator", "admin"):
        return 403 if audience is Audience.ADMIN and caller == "coordinator" else None
    return 401


@pytest.fixture
def world(app, client, db_session, routed):
    """A lead referred to clinics A and B, with a file, an accreditation, a spare API key and a
    webhook endpoint of clinic A's (on a public address literal: nothing is sent to it)."""
    clinic_a, clinic_b = sorted(routed["referrals"])[:2]
    response = client.post(
        f"/api/v1/inquiries/{routed['reference']}/attachments",
        query_string={"token": status_token(routed["accepted"])},
        content_type="multipart/form-data", data={"file": (io.BytesIO(pdf()), "scan.pdf")})
    assert response.status_code == 201, response.get_json()
    spare_key = client.post(f"/api/v1/clinics/{clinic_a}/api-keys", headers=routed["admin"])
    endpoint = client.post("/api/v1/clinic/webhooks", headers=routed["keys"][clinic_a],
                           json={"url": "https://93.184.215.14/hooks",
                                 "events": ["referral.created"]})
    assert endpoint.status_code == 201, endpoint.get_json()
    db_session.expire_all()
    keys = db_session.scalars(select(ClinicApiKey.id).where(ClinicApiKey.clinic_id == clinic_a)
                              .order_by(ClinicApiKey.id)).all()
    assert spare_key.status_code == 201 and len(keys) == 2
    headers = {
        "anonymous": {}, "bad token": auth("stf_not-a-token-of-ours"),
        "inactive user": routed["inactive"], "coordinator": routed["coordinator"],
        "admin": routed["admin"], "clinic A": routed["keys"][clinic_a],
        "clinic B": routed["keys"][clinic_b],
    }
    sessions = {caller: signed_in(app, path, headers[bearer], n)
                for n, (caller, (path, bearer)) in enumerate(SESSIONS.items())}
    values = {
        "lead_id": routed["lead_id"], "referral_id": routed["referrals"][clinic_a],
        "attachment_id": db_session.scalar(select(Attachment.id)),
        "clinic_id": clinic_a, "key_id": keys[-1],
        "accreditation_id": db_session.scalar(select(Accreditation.id).where(
            Accreditation.clinic_id == clinic_a)),
        # The inactive user: the console's deactivate button, pressed by the admin's
        # session, must not take the coordinator's session away from the routes after it.
        "user_id": db_session.scalar(select(User.id).where(User.active.is_(False))),
        "slug": "stem-cell-spine-arthritis",
        "currency": "EUR", "reference": routed["reference"],
        "filename": "swagger-ui/swagger-ui.css", "endpoint_id": endpoint.get_json()["id"],
    }
    return headers, sessions, values


def signed_in(app, path: str, bearer: dict, n: int) -> dict:
    """A test client of its own signed in on a page with the bearer's secret, with the CSRF
    token of its session."""
    session_client = app.test_client()
    request = {"environ_base": {"REMOTE_ADDR": f"10.78.0.{n + 1}"}}
    answer = page_sign_in(session_client, path, bearer["Authorization"].split()[1], **request)
    assert answer.status_code == 303, answer.get_data()[:300]
    token = csrf_token_of(session_client.get(path, **request).get_data(as_text=True))
    return {"client": session_client, "path": path, "secret": bearer, "token": token,
            "request": request}


def url_for_rule(rule, values: dict) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: str(values[m.group(1)]), rule.rule)


def test_every_route_declares_its_audience(app):
    assert undeclared_routes(app) == []


def test_the_patient_endpoints_are_open_to_anyone(app):
    found = {(method, rule.rule, declared_audience(app, rule.endpoint, method))
             for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/inquiries")
             for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert found == {(method, path, Audience.ANYONE) for method, path in PATIENT_ROUTES}


def test_the_status_page_is_open_to_anyone(app):
    found = {(method, rule.rule, declared_audience(app, rule.endpoint, method))
             for rule in app.url_map.iter_rules() if rule.rule.startswith("/status")
             for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert found == {(method, path, Audience.ANYONE) for method, path in STATUS_PAGE_ROUTES}


def is_page_write(rule, method: str) -> bool:
    return method != "GET" and not rule.rule.startswith("/api/")


def call(client, rule, url: str, method: str, caller: str, headers, sessions, n: int):
    """The route called as the caller: with its bearer header, or from its session's client
    (a write to a page with the session's CSRF token, as the page's form would send it)."""
    if caller not in sessions:
        return client.open(url, method=method, headers=headers[caller],
                           json=BODIES.get(rule.rule),
                           environ_base={"REMOTE_ADDR": f"10.77.0.{n % 250 + 1}"})
    session = sessions[caller]
    page_write = is_page_write(rule, method)
    answer = session["client"].open(
        url, method=method, **session["request"],
        data={"csrf_token": session["token"]} if page_write else None,
        json=None if page_write else BODIES.get(rule.rule))
    if rule.endpoint.endswith(".sign_out"):  # it may have signed the caller out: sign in again
        sessions[caller] = signed_in(client.application, session["path"], session["secret"],
                                     list(SESSIONS).index(caller))
    return answer


def test_every_route_answers_each_caller_as_its_audience_allows(app, client, world):
    headers, sessions, values = world
    calls = 0
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        url = url_for_rule(rule, values)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            audience = declared_audience(app, rule.endpoint, method)
            assert audience is not None, f"{method} {rule.rule} declares no audience"
            for caller in CALLERS:
                response = call(client, rule, url, method, caller, headers, sessions, calls)
                calls += 1
                status, refusal = response.status_code, expected(audience, caller,
                                                                is_page_write(rule, method))
                where = f"{method} {rule.rule} as {caller}: {status} {response.get_data()[:300]!r}"
                assert status < 500, where
                if refusal is not None:
                    assert refusal_of(response) == refusal, where
                elif caller.startswith("clinic B") and rule.arguments & {"referral_id",
                                                                         "endpoint_id"}:
                    # Another clinic's referral or endpoint is answered as an unknown one.
                    assert status == 404, where
                else:
                    assert refusal_of(response) is None, where
    assert calls >= len(CALLERS) * 44
