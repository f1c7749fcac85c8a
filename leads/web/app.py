"""The app factory: one Flask app for the API, the pages and the operator commands."""

from pathlib import Path

from flask import Flask
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from config import load_config
from leads.core.logs import configure_logging


def _sqlite_write_ahead_log(connection, _record) -> None:
    # The API and the workers write from several processes: with a write-ahead log, readers
    # do not wait for a writer, and a writer's commit is short.
    connection.execute("PRAGMA journal_mode=WAL")


def create_app(**overrides) -> Flask:
    """The app factory; `overrides` replace settings read from the environment."""
    from leads import models  # noqa: F401  (models registers the tables)
    from leads.core.database import db, ping_connections_left_idle
    from leads.core.settings import use_settings
    from leads.privacy.personal import use_keys
    from leads.web import cli
    from leads.web.blueprints import register_blueprints
    from leads.web.extensions import api, limiter, migrate, rate_limit_headers
    from leads.web.guards import register_guards
    from leads.web.problems import register_error_handlers
    from leads.web.publisher import init_publisher
    from leads.web.request_ids import init_request_ids
    from leads.web.security import init_web_security
    from leads.web.transactions import register_read_only_views

    app = Flask(__name__, instance_relative_config=True)
    app.config.update(load_config(**overrides))
    use_settings(app.config)
    configure_logging(app.config["LOG_LEVEL"])
    # One set of keys per process: bad ones stop the start, with the setting named.
    use_keys(app.config["DATA_KEYS"], app.config["BLIND_INDEX_KEY"])
    if app.config["TRUST_PROXY_HOPS"]:
        hops = app.config["TRUST_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True)

    db.init_app(app)
    with app.app_context():
        ping_connections_left_idle(db.engine)
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            event.listen(db.engine, "connect", _sqlite_write_ahead_log)
    migrate.init_app(app, db, render_as_batch=True)
    init_web_security(app)
    limiter.init_app(app)
    app.after_request(rate_limit_headers)
    api.init_app(app)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    register_error_handlers(app)
    init_publisher(app)
    register_blueprints(app)
    register_read_only_views(app)
    register_guards(app)
    cli.register(app)
    init_request_ids(app)
    return app
