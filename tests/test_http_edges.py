"""The edges every answer shares (CONTRACT §2): JSON nested too deep, security headers on
every kind of route, CORS for the patient endpoints only, and pages that need no CDN."""

import json
import re
import secrets
from decimal import Decimal

import requests
from hypothesis import given
from hypothesis import strategies as st

from leads.web.parsing import MAX_JSON_DEPTH, nesting_depth
from tests.helpers import inquiry_body

PROBLEM = "application/problem+json"
DEEP = ("[" * 1000 + "]" * 1000).encode()
WRITES = {"POST", "PUT", "PATCH"}
SHOP = "https://shop.example"


# --- nesting depth ------------------------------------------------------------------------

def depth_of(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(alphabet='[]{}"\\ab'), inner, max_size=3),
    max_leaves=40,
)


@given(json_values)
def test_nesting_depth_is_that_of_the_parsed_value(value):
    assert nesting_depth(json.dumps(value).encode()) == depth_of(value)


def test_nesting_depth_ignores_brackets_inside_strings():
    assert nesting_depth(b'{"a": "[[[{{{\\"]]]", "b": [1, {"c": "}"}]}') == 3
    assert nesting_depth(DEEP) == 1000


def test_json_at_the_limit_is_read_and_one_deeper_answers_400(client, demo):
    def nested(levels: int) -> str:
        return '{"patient": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"

    at_limit = client.post("/api/v1/inquiries", data=nested(MAX_JSON_DEPTH),
                           content_type="application/json")
    assert at_limit.status_code == 422  # read, and refused for what it holds
    too_deep = client.post("/api/v1/inquiries", data=nested(MAX_JSON_DEPTH + 1),
                           content_type="application/json")
    assert too_deep.status_code == 400
    assert "32 levels" in too_deep.get_json()["detail"]


def openapi_path(rule) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def concrete_path(rule) -> str:
    values = {"int": "1"}
    return re.sub(r"<(?:([^:<>]+):)?([^<>]+)>",
                  lambda m: values.get(m.group(1), "USD" if m.group(2) == "currency" else "x"),
                  rule.rule)


def test_deep_json_answers_400_on_every_json_endpoint(app, client, demo):
    """Walks every write route of the app: each that reads a JSON body answers 1,000-deep
    JSON with 400 (past its credential guard), and no other answers it with a 5xx."""
    from leads.accounts.operations import issue_clinic_key
    from leads.catalogue.models import Clinic
    from leads.core.database import db

    with app.app_context():
        _, clinic_key = issue_clinic_key(db.session.scalars(db.select(Clinic)).first())
        db.session.commit()
    document = client.get("/api/openapi.json").get_json()
    json_endpoints = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods & WRITES):
            path = concrete_path(rule)
            key = clinic_key if path.startswith("/api/v1/clinic/") else demo
            response = client.open(path, method=method, data=DEEP,
                                   content_type="application/json",
                                   headers={"Authorization": f"Bearer {key}"},
                                   environ_base={"REMOTE_ADDR": "10.9.0.1"})
            operation = document["paths"].get(openapi_path(rule), {}).get(method.lower(), {})
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                json_endpoints.append(f"{method} {rule.rule}")
                assert response.status_code == 400, (method, rule.rule, response.get_json())
                assert response.mimetype == PROBLEM
            else:
                assert response.status_code < 500, (method, rule.rule)
    assert len(json_endpoints) >= 14, json_endpoints  # as many as today, or more


def test_a_429_carries_the_headers_the_document_names(client, demo):
    document = client.get("/api/openapi.json").get_json()
    documented = document["components"]["responses"]["TOO_MANY_REQUESTS"]["headers"]
    operation = document["paths"]["/api/v1/inquiries"]["post"]
    assert operation["responses"]["429"]["$ref"].endswith("/TOO_MANY_REQUESTS")
    assert "Idempotency-Key" in {p["name"] for p in operation["parameters"]}
    for _ in range(10):
        client.post("/api/v1/inquiries", json={})
    limited = client.post("/api/v1/inquiries", json=inquiry_body())
    assert limited.status_code == 429 and limited.mimetype == PROBLEM
    rate_limit = {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
    assert set(documented) == rate_limit | {"X-Request-ID"}
    for name in rate_limit:
        assert float(limited.headers[name]) >= 0, name


# --- bodies as documented ----------------------------------------------------------------

def test_a_missing_body_answers_422_where_the_document_requires_one(client, demo):
    staff = {"Authorization": f"Bearer {demo}"}
    for method, path in [("PATCH", "/api/v1/leads/1"), ("PATCH", "/api/v1/clinics/1"),
                         ("PATCH", "/api/v1/treatments/dental-implants"),
                         ("POST", "/api/v1/leads/1/transitions")]:
        response = client.open(path, method=method, headers=staff)
        assert response.status_code == 422, path
        assert "body" in response.get_json()["errors"], path
    transition = client.post("/api/v1/leads/1/transitions", headers=staff).get_json()
    assert "to" in transition["errors"]  # and what the body must hold
    # Optional in the document, so a missing body is read as an empty one.
    assert client.post("/api/v1/leads/999/reroute", headers=staff).status_code == 404


def test_amounts_are_bounded_as_documented_and_kept_to_their_places():
    from leads.catalogue.schemas import OfferSchema, RateInSchema
    from leads.pipeline.clinic_schemas import QuoteInSchema

    quote = {"currency": "USD"}
    for amount in (0.001, 0.009, 0, -1, 1e9 + 0.01, "100", True):
        assert "amount" in QuoteInSchema().validate({**quote, "amount": amount}), amount
    assert QuoteInSchema().load({**quote, "amount": 0.011})["amount"] == Decimal("0.01")
    assert QuoteInSchema().load({**quote, "amount": 1e9})["amount"] == Decimal("1e9")
    assert "usd_per_unit" in RateInSchema().validate({"usd_per_unit": 9e-9})
    assert RateInSchema().load({"usd_per_unit": 1e-8})["usd_per_unit"] == Decimal("1e-8")
    offer = {"slug": "x", "price_max": 10, "currency": "USD"}
    assert "price_min" in OfferSchema().validate({**offer, "price_min": -0.001})
    assert OfferSchema().load({**offer, "price_min": 0})["price_min"] == 0


# --- security headers ---------------------------------------------------------------------

def assert_security_headers(response, *, html: bool = False):
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    if html:
        policy = response.headers["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["default-src"] == directives["script-src"] == "'self'"
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "http" not in policy and "*" not in policy  # no other origin


def test_every_kind_of_answer_carries_the_security_headers(app, client, demo):
    from leads.accounts.operations import issue_clinic_key
    from leads.catalogue.models import Clinic
    from leads.core.database import db

    with app.app_context():
        _, clinic_key = issue_clinic_key(db.session.scalars(db.select(Clinic)).first())
        db.session.commit()
    staff = {"Authorization": f"Bearer {demo}"}
    answers = {
        "patient list": client.get("/api/v1/treatments"),
        "patient write": client.post("/api/v1/inquiries", json=inquiry_body()),
        "staff": client.get("/api/v1/leads", headers=staff),
        "clinic": client.get("/api/v1/clinic/referrals",
                             headers={"Authorization": f"Bearer {clinic_key}"}),
        "health": client.get("/healthz"),
        "metrics": client.get("/metrics"),
        "document": client.get("/api/openapi.json"),
        "unknown URL": client.get("/no/such/page"),
        "refused": client.get("/api/v1/leads"),
        "invalid": client.post("/api/v1/inquiries", json={}),
        "wrong method": client.delete("/api/v1/treatments"),
    }
    assert [answers[k].status_code for k in ("unknown URL", "refused", "invalid",
                                             "wrong method")] == [404, 401, 422, 405]
    for name, response in answers.items():
        assert response.status_code < 500, name
        assert_security_headers(response)
        # Outside production no answer pins the browser to HTTPS.
        assert "Strict-Transport-Security" not in response.headers, name
    assert_security_headers(client.get("/api/docs"), html=True)


def test_the_docs_page_runs_no_inline_script_and_loads_everything_from_here(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert_security_headers(page, html=True)
    html = page.get_data(as_text=True)
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all("src=" in attributes and not body.strip()
                           for attributes, body in scripts)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {"swagger-ui-bundle.js", "swagger-ui.css"} <= {a.rsplit("/", 1)[-1] for a in assets}
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert response.mimetype in {"text/javascript", "text/css"}, asset
        assert_security_headers(response)
    spec_url = re.search(r'data-spec-url="([^"]+)"', html).group(1)
    assert client.get(spec_url).get_json()["openapi"].startswith("3.")


def test_cors_is_off_without_cors_origins(client, demo):
    preflight = client.options("/api/v1/inquiries", headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST"})
    answer = client.post("/api/v1/inquiries", json=inquiry_body(), headers={"Origin": SHOP})
    assert answer.status_code == 202
    for response in (preflight, answer):
        assert cors_headers(response) == {}


# --- a real server in production, with CORS_ORIGINS ---------------------------------------

def production_server(gunicorn_server) -> str:
    key = secrets.token_urlsafe(32)
    return gunicorn_server(workers=1, APP_ENV="production",
                           CORS_ORIGINS=f"{SHOP}, https://clinic-finder.example",
                           DATA_KEYS=key, BLIND_INDEX_KEY=secrets.token_urlsafe(32))


def preflight(base: str, path: str, origin: str = SHOP, method: str = "POST"):
    return requests.options(base + path, timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type, idempotency-key"})


def cors_headers(response) -> dict:
    return {k: v for k, v in response.headers.items() if k.startswith("Access-Control-")}


def test_cors_answers_the_listed_origins_on_the_patient_endpoints_only(gunicorn_server, demo):
    base = production_server(gunicorn_server)

    allowed = preflight(base, "/api/v1/inquiries")
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert {"content-type", "idempotency-key"} <= {
        h.strip().lower() for h in allowed.headers["Access-Control-Allow-Headers"].split(",")}
    assert "Origin" in allowed.headers["Vary"]
    assert cors_headers(preflight(base, "/api/v1/inquiries", "https://clinic-finder.example"))

    sent = requests.post(base + "/api/v1/inquiries", json=inquiry_body(), timeout=10,
                         headers={"Origin": SHOP})
    assert sent.status_code == 202
    assert sent.headers["Access-Control-Allow-Origin"] == SHOP
    assert "Retry-After" in sent.headers["Access-Control-Expose-Headers"]
    # A refusal too, so that the form can show what to correct.
    refused = requests.post(base + "/api/v1/inquiries", json={}, timeout=10,
                            headers={"Origin": SHOP})
    assert refused.status_code == 422
    assert refused.headers["Access-Control-Allow-Origin"] == SHOP
    status = requests.get(base + "/api/v1/treatments", timeout=10, headers={"Origin": SHOP})
    assert status.headers["Access-Control-Allow-Origin"] == SHOP

    assert cors_headers(preflight(base, "/api/v1/inquiries", "https://elsewhere.example")) == {}
    for path, method in [("/api/v1/leads", "GET"), ("/api/v1/treatments/dental", "PATCH"),
                         ("/api/v1/clinic/referrals", "GET"), ("/healthz", "GET"),
                         ("/api/openapi.json", "GET")]:
        assert cors_headers(preflight(base, path, method=method)) == {}, path
        answer = requests.get(base + path, timeout=10, headers={"Origin": SHOP})
        assert cors_headers(answer) == {}, path


def test_production_pins_every_answer_to_https(gunicorn_server):
    base = production_server(gunicorn_server)
    # Behind a proxy that ends TLS the request may say it was HTTPS, or may not say at all.
    answers = {
        "over TLS, said": requests.get(base + "/healthz", timeout=10,
                                       headers={"X-Forwarded-Proto": "https"}),
        "not said": requests.get(base + "/healthz", timeout=10),
        "unknown URL": requests.get(base + "/no/such/page", timeout=10),
        "refused": requests.get(base + "/api/v1/leads", timeout=10),
        "invalid": requests.post(base + "/api/v1/inquiries", json={}, timeout=10),
    }
    assert [a.status_code for a in answers.values()] == [200, 200, 404, 401, 422]
    for name, answer in answers.items():
        assert answer.headers["Strict-Transport-Security"] == \
            "max-age=31556926; includeSubDomains", name
        assert_security_headers(answer)
