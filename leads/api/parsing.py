"""The blueprint every resource uses: JSON bodies read bounded and with clear refusals,
and credential guards documented with the answers they give."""

import flask
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.spec.plugins import integerconverter2paramschema
from webargs import core
from webargs.flaskparser import FlaskParser, abort
from werkzeug.routing import IntegerConverter

MAX_ROW_ID = 2**31 - 1  # ids are 32-bit integer columns on PostgreSQL


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


class JsonBodyParser(FlaskParser):
    """Bounds JSON bodies, and answers 415 for another content type rather than a 422
    listing every field as missing; refuses NUL characters, in the body or the query."""

    def load_querystring(self, req: flask.Request, schema):
        refuse_nul({key: "".join(values) for key, values in req.args.lists()}, "query")
        return super().load_querystring(req, schema)

    def _raw_load_json(self, req: flask.Request):
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
        data = core.parse_json(body)
        if not isinstance(data, dict):
            abort(422, messages={"json": {"body": ["The body must be a JSON object."]}})
        refuse_nul(data, "json")
        return data


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = JsonBodyParser()

    def guarded(self, guard):
        """Check credentials with `guard` before anything else, and document 401 and 403."""

        def decorator(view):
            view = guard(view)
            view = self.alt_response(401, response="UNAUTHORIZED")(view)
            view = self.alt_response(403, response="FORBIDDEN")(view)
            return self.doc(security=[{"bearer": []}])(view)

        return decorator
