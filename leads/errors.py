"""RFC 9457 problem details for every error the app answers."""

import logging

import marshmallow as ma
from flask import Flask, jsonify
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from leads.pipeline import TransitionRefused

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def flatten_errors(messages, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict -> {"patient.email": [...], "destinations.2": [...]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = "" if key == "_schema" else str(key)
            path = ".".join(part for part in (prefix, name) if part)
            for sub_path, sub_messages in flatten_errors(value, path).items():
                flat.setdefault(sub_path, []).extend(sub_messages)
    elif isinstance(messages, (list, tuple)):
        if all(isinstance(m, str) for m in messages):
            flat[prefix or "body"] = list(messages)
        else:
            for item in messages:
                for sub_path, sub_messages in flatten_errors(item, prefix).items():
                    flat.setdefault(sub_path, []).extend(sub_messages)
    else:
        flat[prefix or "body"] = [str(messages)]
    return flat


def problem(status: int, title: str, detail: str | None = None, *, errors=None,
            headers=None, **extra):
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["type"] = "/problems/validation-error"
        body["errors"] = errors
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_JSON
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def problem_from_http_exception(error: HTTPException):
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    detail = data.get("message") or error.description
    if errors is not None:
        # webargs nests messages under the request location ("json", "query", ...).
        if isinstance(errors, dict) and len(errors) == 1:
            (location, inner), = errors.items()
            if location in {"json", "query", "form", "files", "headers", "view_args", "path"}:
                errors = inner
        errors = flatten_errors(errors)
        if error.code == 400:
            # Malformed JSON is not a field problem; say what it is.
            return problem(400, "Bad Request", "The body is not valid JSON.")
        detail = data.get("message") or "The request has invalid fields."
    headers = dict(data.get("headers") or {})
    response = error.get_response()
    for name in ("Retry-After", "Allow", "WWW-Authenticate"):
        if name in response.headers:
            headers[name] = response.headers[name]
    extra = data.get("extra") or {}
    return problem(error.code or 500, error.name, detail, errors=errors, headers=headers, **extra)


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details (documentation only)."""

    type = ma.fields.String()
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    errors = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()),
        metadata={"description": "Every bad field, nested ones by dotted path."},
    )


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def handle_http(error: HTTPException):
        return problem_from_http_exception(error)

    @app.errorhandler(ma.ValidationError)
    def handle_invalid(error: ma.ValidationError):
        # Raised by domain code after the request schema passed (a bad cursor, say).
        return problem(422, "Unprocessable Entity", "The request has invalid fields.",
                       errors=flatten_errors(error.normalized_messages()))

    @app.errorhandler(TransitionRefused)
    def handle_refused(error: TransitionRefused):
        return problem(409, "Conflict", str(error), current=error.current, allowed=error.allowed)

    @app.errorhandler(DataError)
    def handle_unstorable(error: DataError):
        # The parsers catch what they can name (NUL characters, ids out of range); this is
        # the last guard, for a value in the URL path, say.
        log.warning("value refused by the database: %s", type(error.orig).__name__)
        return problem(422, "Unprocessable Entity", "A value in the request cannot be stored "
                       "or looked up.")

    @app.errorhandler(OperationalError)
    def handle_database_down(error: OperationalError):
        log.error("database unavailable: %s", type(error.orig).__name__)
        return problem(503, "Service Unavailable", "The database is not answering.",
                       headers={"Retry-After": "5"})

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        log.exception("unhandled error")
        return problem_from_http_exception(InternalServerError())
