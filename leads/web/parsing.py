"""The blueprint every resource uses: JSON bodies read bounded and with clear refusals,
and credential guards documented with the answers they give."""

import re
from functools import wraps

import flask
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.spec.plugins import integerconverter2paramschema
from webargs import core
from webargs.flaskparser import FlaskParser, abort
from werkzeug.routing import IntegerConverter

from leads.core.types import MAX_ROW_ID
from leads.web.guards import Audience, allow

MAX_JSON_DEPTH = 32  # CONTRACT §2
# A JSON string, escapes included, written so that matching it takes linear time.
JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
NOT_A_BRACKET = re.compile(rb"[^\[\]{}]+")


class RowIdConverter(IntegerConverter):
    """`<int:...>` in a route: an id outside what a row can have is simply not found."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(url_map, *args, **kwargs)


def register_converters(app: flask.Flask, api) -> None:
    app.url_map.converters["int"] = RowIdConverter
    api.register_converter(RowIdConverter, integerconverter2paramschema)


def nul_paths(value, path: str = "") -> list[str]:
    """Dotted paths of the strings holding a NUL character, which no database column takes."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    found = []
    for key, item in items:
        child = f"{path}.{key}" if path else str(key)
        found += [child] if "\x00" in str(key) else nul_paths(item, child)
    return found


def refuse_nul(data, location: str) -> None:
    if paths := nul_paths(data):
        abort(422, messages={location: {p: ["Must not contain NUL characters."] for p in paths}})


def nesting_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, found in one pass without
    parsing it (the parser recurses, and a deep enough text exhausts the stack)."""
    depth = deepest = 0
    for bracket in NOT_A_BRACKET.sub(b"", JSON_STRING.sub(b"", body)):
        if bracket in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def json_body():
    """The request's JSON body, read once, bounded and checked before it is parsed;
    `missing` when there is none. Everything that needs the body takes it from here."""
    if "json_body" not in flask.g:
        flask.g.json_body = _read_json_body(flask.request)
    return flask.g.json_body


def _read_json_body(req: flask.Request):
    limit = flask.current_app.config["JSON_BODY_LIMIT"]
    # A chunked body has no length to refuse up front, and werkzeug cuts it off at the
    # limit without a word: read one byte beyond it to tell "too large" from "complete".
    req.max_content_length = limit + 1
    body = req.get_data(cache=True)
    if len(body) > limit:
        abort(413, message=f"The body is larger than {limit} bytes.")
    if not body:
        return core.missing
    if not core.is_json(req.mimetype):
        abort(415, message="Send the body as application/json.")
    if nesting_depth(body) > MAX_JSON_DEPTH:
        abort(400, message=f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
    try:
        data = core.parse_json(body)
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError
        abort(400, message="The body is not valid JSON.")
    if not isinstance(data, dict):
        abort(422, messages={"json": {"body": ["The body must be a JSON object."]}})
    refuse_nul(data, "json")
    return data


class JsonBodyParser(FlaskParser):
    """Bounds JSON bodies, and answers 415 for another content type rather than a 422
    listing every field as missing; refuses NUL characters, in the body or the query."""

    def load_querystring(self, req: flask.Request, schema):
        refuse_nul({key: "".join(values) for key, values in req.args.lists()}, "query")
        return super().load_querystring(req, schema)

    def _raw_load_json(self, req: flask.Request):
        return json_body()


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = JsonBodyParser()

    def arguments(self, schema, *, location="json", required=True, **kwargs):
        """As flask-smorest's, documenting the refusals of a JSON body (400, 413, 415); a
        required body that is missing answers 422 naming `body` (and what it must hold)."""
        # One instance for every request: given a class, webargs builds a schema per request,
        # and building one copies all its fields.
        instance = schema() if isinstance(schema, type) else schema
        decorator = super().arguments(instance, location=location, required=required, **kwargs)
        if location != "json":
            return decorator

        def documented(view):
            parsed = decorator(view)
            for status, name in ((400, "BAD_REQUEST"), (413, "REQUEST_ENTITY_TOO_LARGE"),
                                 (415, "UNSUPPORTED_MEDIA_TYPE")):
                parsed = self.alt_response(status, response=name)(parsed)
            if not required:
                return parsed

            @wraps(parsed)
            def body_required(*args, **kwargs):
                if json_body() is core.missing:
                    errors = {"body": ["A JSON body is required."], **instance.validate({})}
                    abort(422, messages={"json": errors})
                return parsed(*args, **kwargs)

            return body_required

        return documented

    def allow(self, audience):
        """Declare who may call the view (leads/web/guards.py enforces it) and document the
        401 and 403 of a guarded one."""

        def decorator(view):
            view = allow(audience)(view)
            if audience is Audience.ANYONE:
                return view
            view = self.alt_response(401, response="UNAUTHORIZED")(view)
            view = self.alt_response(403, response="FORBIDDEN")(view)
            return self.doc(security=[{"bearer": []}])(view)

        return decorator
