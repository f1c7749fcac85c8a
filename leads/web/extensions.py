"""The web app's extension instances, bound to the app in `create_app`."""

import http
import logging
import time

from apispec import BasePlugin
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from limits.errors import StorageError

from leads.web.problems import PROBLEM_JSON, ProblemSchema, problem_from_http_exception
from leads.web.request_ids import FAIR, HEADER

migrate = Migrate()
limiter = Limiter(key_func=get_remote_address)


# What a 429 carries (`rate_limit_headers`).
RATE_LIMIT_HEADERS = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "required": True,
                    "schema": {"type": "integer", "minimum": 0}},
    "X-RateLimit-Limit": {"description": "Requests allowed in the window.",
                          "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the window.",
                              "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "When the window resets (Unix time, seconds).",
                          "schema": {"type": "number"}},
}


def refund_rate_limit() -> None:
    """Give back what this request was counted by its limits: it turned out to be the first
    request answered again (an Idempotency-Key's replay), counted once already. One more
    Redis call, on replays only; the first one stays the single call of every other."""
    for counted in limiter.current_limits:
        try:
            counted.limiter.storage.incr(counted.key, counted.limit.get_expiry(), amount=-1)
        except StorageError:  # the store is down: the patient loses one of ten, no more
            logging.getLogger(__name__).warning("rate limit refund failed", exc_info=True)


def rate_limit_headers(response):
    """An after-request hook: the breached limit's figures on a 429, read from the limiter's
    store only then (Flask-Limiter's own headers read it for every answer)."""
    breached = limiter.current_limit if response.status_code == 429 else None
    if breached is not None:
        reset_at = breached.reset_at
        response.headers["X-RateLimit-Limit"] = str(breached.limit.amount)
        response.headers["X-RateLimit-Remaining"] = str(breached.remaining)
        response.headers["X-RateLimit-Reset"] = str(reset_at)
        response.headers["Retry-After"] = str(max(1, reset_at - int(time.time())))
    return response


class OperationIdPlugin(BasePlugin):
    """Gives each operation an `operationId` made of its method and view: `postInquiries`,
    `patchLeadDetail`."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        view = kwargs["rule"].endpoint.rsplit(".", 1)[-1]
        for method, operation in (operations or {}).items():
            operation.setdefault("operationId", f"{method}{view}")


# Any value is taken: an unfit one is replaced rather than refused.
REQUEST_ID_PARAMETER = {
    "in": "header", "name": HEADER, "required": False, "schema": {"type": "string"},
    "description": "An id for this request, echoed in the answer and in the logs when it is "
                   "at most 64 letters, digits, `-`, `_` or `.`."}


class RequestIdPlugin(BasePlugin):
    """Documents `X-Request-ID` (leads/web/request_ids.py): sent by the caller if it likes,
    on every answer always."""

    def init_spec(self, spec):
        spec.components.header(HEADER, {
            "description": "The caller's request id when it was fair, else a new one.",
            "required": True,
            "schema": {"type": "string", "pattern": f"^{FAIR.pattern}$", "maxLength": 64}})

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            operation.setdefault("parameters", []).append(dict(REQUEST_ID_PARAMETER))
            for response in operation.get("responses", {}).values():
                if isinstance(response, dict):  # the others are components, given it below
                    # A component's name, which apispec turns into a reference.
                    response.setdefault("headers", {})[HEADER] = HEADER


class ProblemApi(Api):
    """flask-smorest's Api, answering errors as RFC 9457 problem details."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):
        return problem_from_http_exception(error)

    def _register_responses(self):
        """Document every error response (the `HTTPStatus` names) as problem details."""
        for status in http.HTTPStatus:
            if status < 400:
                continue
            response = {"description": status.phrase, "schema": self.ERROR_SCHEMA,
                        "headers": {HEADER: HEADER}}
            if status is http.HTTPStatus.TOO_MANY_REQUESTS:
                response["headers"].update(RATE_LIMIT_HEADERS)
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "An error, as problem details", "schema": self.ERROR_SCHEMA,
                    "headers": {HEADER: HEADER}}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


api = ProblemApi(spec_kwargs={"extra_plugins": [OperationIdPlugin(), RequestIdPlugin()]})
