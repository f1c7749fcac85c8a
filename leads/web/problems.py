"""RFC 9457 problem details for every error the app answers, except on pages, which answer
errors as pages (leads/web/pages/rendering.py)."""

import logging

import marshmallow as ma
from flask import Flask, jsonify
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from leads.core.database import db
from leads.core.errors import DomainError
from leads.web.pages.rendering import (
    error_page,
    error_page_from_http_exception,
    is_page_request,
)

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
            headers=None, problem_type: str = "about:blank", **extra):
    body = {"type": problem_type, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["type"] = DomainError.validation_type
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
    current = ma.fields.String(
        metadata={"description": "On a 409: the state the lead or referral is in."})
    allowed = ma.fields.List(ma.fields.String(), metadata={
        "description": "On a 409 for a move: the states it may go to from `current`."})
    allowed_from = ma.fields.List(ma.fields.String(), metadata={
        "description": "On a 409 for an action: the states it may be taken from."})


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def handle_http(error: HTTPException):
        if is_page_request():
            return error_page_from_http_exception(error)
        return problem_from_http_exception(error)

    @app.errorhandler(ma.ValidationError)
    def handle_invalid(error: ma.ValidationError):
        # Raised by domain code after the request schema passed (a bad cursor, say).
        errors = flatten_errors(error.normalized_messages())
        if is_page_request():
            return error_page(422, " ".join(f"{field}: {' '.join(messages)}"
                                            for field, messages in errors.items()))
        return problem(422, "Unprocessable Entity", "The request has invalid fields.",
                       errors=errors)

    @app.errorhandler(DomainError)
    def handle_refused(error: DomainError):
        # A refused change stages nothing: whatever the operation had begun is undone.
        db.session.rollback()
        if is_page_request():
            return error_page(error.status, error.detail)
        return problem(error.status, error.title, error.detail, errors=error.errors,
                       problem_type=error.type, **error.extra)

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
        if is_page_request():
            return error_page(500)
        return problem_from_http_exception(InternalServerError())
