"""Blueprints, one per resource."""

from flask import Flask

from leads.api import inquiries, operations, treatments
from leads.extensions import api


def register_blueprints(app: Flask) -> None:
    for module in (treatments, inquiries):
        api.register_blueprint(module.blp)
    app.register_blueprint(operations.blp)
    app.before_request(operations.start_timer)
    app.after_request(operations.observe)
