"""`X-Request-ID` in and out (CONTRACT §2): the caller's when it is a fair one, else a new one,
on every answer, and bound to every log line written while the request is served.

WSGI middleware rather than Flask hooks, so that no answer escapes it: not one a
`before_request` hook gives early (a 429), not a 500, not a 404 answered before routing."""

import re
import uuid

from leads.core.logs import bind, unbind

HEADER = "X-Request-ID"
ENVIRON_KEY = "leads.request_id"
FAIR = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_for(offered: str | None) -> str:
    if offered is not None and FAIR.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


class RequestIds:
    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        request_id = environ[ENVIRON_KEY] = request_id_for(environ.get("HTTP_X_REQUEST_ID"))

        def start_with_id(status, headers, exc_info=None):
            headers = [(name, value) for name, value in headers if name.lower() != "x-request-id"]
            headers.append((HEADER, request_id))
            return start_response(status, headers, exc_info)

        token = bind(request_id=request_id)
        try:
            return self.wsgi_app(environ, start_with_id)
        finally:
            unbind(token)


def init_request_ids(app) -> None:
    app.wsgi_app = RequestIds(app.wsgi_app)
