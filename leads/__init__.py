"""The leads service: a patient's inquiry, kept, matched to clinics and followed through."""

from pathlib import Path

from flask import Flask
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from config import load_config
from leads.logs import configure_logging


def _sqlite_write_ahead_log(connection, _record) -> None:
    # The API and the workers write from several processes: with a write-ahead log, readers
    # do not wait for a writer, and a writer's commit is short.
    connection.execute("PRAGMA journal_mode=WAL")


def create_app(**overrides) -> Flask:
    """The app factory; `overrides` replace settings read from the environment."""
    from leads import cli, models  # noqa: F401  (models registers the tables)
    from leads.api import register_blueprints
    from leads.errors import register_error_handlers
    from leads.extensions import api, db, limiter, migrate
    from leads.outbox import init_publisher

    app = Flask(__name__, instance_relative_config=True)
    app.config.update(load_config(**overrides))
    configure_logging(app.config["LOG_LEVEL"])
    if app.config["TRUST_PROXY_HOPS"]:
        hops = app.config["TRUST_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True)

    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            event.listen(db.engine, "connect", _sqlite_write_ahead_log)
    migrate.init_app(app, db, render_as_batch=True)
    limiter.init_app(app)
    api.init_app(app)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    register_error_handlers(app)
    init_publisher(app)
    register_blueprints(app)
    cli.register(app)
    return app
