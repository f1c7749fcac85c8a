"""What every answer carries for the browser's sake (CONTRACT §2): security headers, set by
Flask-Talisman, and CORS for the patient endpoints only, answered by Flask-CORS."""

from flask import Flask, Response
from flask_cors import CORS
from flask_talisman import Talisman

# Scripts, styles and everything else from this service only: no inline script or style, no
# other origin. Images may be data: URLs (Swagger UI's icons are).
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# The patient endpoints of CONTRACT §3; no other path ever answers CORS.
PATIENT_ENDPOINTS = r"^/api/v1/(treatments|inquiries(/.*)?)$"
CORS_REQUEST_HEADERS = ["Content-Type", "Idempotency-Key", "X-Request-ID"]
CORS_EXPOSED_HEADERS = ["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                        "X-RateLimit-Reset", "X-Request-ID"]
# A year, subdomains included: Talisman's own default.
HSTS = "max-age=31556926; includeSubDomains"


def init_web_security(app: Flask) -> None:
    production = app.config["APP_ENV"] == "production"
    Talisman(
        app,
        # TLS ends at the proxy in front; a redirect would come after the data was sent.
        force_https=False,
        # Talisman sends it only on requests it sees as HTTPS; set on every answer below.
        strict_transport_security=False,
        session_cookie_secure=production,
        content_security_policy=CONTENT_SECURITY_POLICY,
        referrer_policy="no-referrer",
        frame_options="DENY",
    )
    if production:
        # TLS ends at the proxy in front, which need not say so (X-Forwarded-Proto), so every
        # request may look like plain HTTP here. A browser ignores the header on an answer
        # that came over plain HTTP (RFC 6797 §8.1), so sending it always costs nothing and
        # never misses an answer that went over HTTPS.
        app.after_request(pin_to_https)
    CORS(
        app,
        resources={PATIENT_ENDPOINTS: {"origins": app.config["CORS_ORIGINS"]}},
        methods=["GET", "POST"],
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=600,
    )


def pin_to_https(response: Response) -> Response:
    response.headers["Strict-Transport-Security"] = HSTS
    return response
