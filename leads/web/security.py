"""What every answer carries for the browser's sake (CONTRACT §2): security headers, the
same on every answer and so worked out once, and CORS for the patient endpoints only,
answered by Flask-CORS."""

from flask import Flask, Response
from flask_cors import CORS

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
# No view needs headers of its own, so they are one constant set rather than worked out per
# answer as Flask-Talisman did (its policy dict parsed on each: 0.1-0.2 ms of an inquiry's
# 2.6 ms of CPU in-process, bench/RESULTS.md, "Intake, 2026-12-08").
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Chrome's Topics API: no interest cohorts from these pages.
    "Permissions-Policy": "browsing-topics=()",
    "Content-Security-Policy": "; ".join(f"{directive} {sources}"
                                         for directive, sources in CONTENT_SECURITY_POLICY.items()),
}
# A year, subdomains included.
HSTS = {"Strict-Transport-Security": "max-age=31556926; includeSubDomains"}
# The patient endpoints of CONTRACT §3; no other path ever answers CORS.
PATIENT_ENDPOINTS = r"^/api/v1/(treatments|inquiries(/.*)?)$"
CORS_REQUEST_HEADERS = ["Content-Type", "Idempotency-Key", "X-Request-ID"]
CORS_EXPOSED_HEADERS = ["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                        "X-RateLimit-Reset", "X-Request-ID"]


def init_web_security(app: Flask) -> None:
    # TLS ends at the proxy in front, which need not say so (X-Forwarded-Proto), so every
    # request may look like plain HTTP here: no redirect to HTTPS (it would come after the
    # data was sent), and HSTS on every answer in production. A browser ignores the header
    # on an answer that came over plain HTTP (RFC 6797 §8.1), so sending it always costs
    # nothing and never misses an answer that went over HTTPS.
    headers = SECURITY_HEADERS | (HSTS if app.config["APP_ENV"] == "production" else {})

    def add_security_headers(response: Response) -> Response:
        response.headers.update(headers)
        return response

    app.after_request(add_security_headers)
    CORS(
        app,
        resources={PATIENT_ENDPOINTS: {"origins": app.config["CORS_ORIGINS"]}},
        methods=["GET", "POST"],
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=600,
    )
