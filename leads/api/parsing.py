"""How request bodies are read: JSON only, bounded, with clear refusals."""

import flask
from flask_smorest import Blueprint as SmorestBlueprint
from webargs import core
from webargs.flaskparser import FlaskParser, abort


class JsonBodyParser(FlaskParser):
    """Bounds JSON bodies, and answers 415 for another content type rather than a 422
    listing every field as missing."""

    def _raw_load_json(self, req: flask.Request):
        req.max_content_length = flask.current_app.config["JSON_BODY_LIMIT"]
        body = req.get_data(cache=True)
        if not body:
            return core.missing
        if not core.is_json(req.mimetype):
            abort(415, message="Send the body as application/json.")
        data = core.parse_json(body)
        if not isinstance(data, dict):
            abort(422, messages={"json": {"body": ["The body must be a JSON object."]}})
        return data


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = JsonBodyParser()
