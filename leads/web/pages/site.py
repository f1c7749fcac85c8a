"""The page layer's set-up: its blueprints, CSRF protection and translations (see the
package's docstring)."""

from flask import Flask
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from leads.web.pages import clinic, console, status
from leads.web.pages.rendering import PAGES_EXTENSION, select_language, template_helpers

# Page modules; each one's blueprint and url_prefix makes its answers HTML.
PAGE_BLUEPRINTS = (clinic.blp, console.blp, status.blp)

csrf = CSRFProtect()
babel = Babel()


def register_pages(app: Flask, api_blueprints) -> None:
    """Register the page blueprints, CSRF protection for every form but the API's, and the
    translations."""
    csrf.init_app(app)
    for blueprint in api_blueprints:
        csrf.exempt(blueprint)
    babel.init_app(app, locale_selector=select_language)
    app.context_processor(template_helpers)
    for blueprint in PAGE_BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.extensions[PAGES_EXTENSION] = {
        "blueprints": {blueprint.name for blueprint in PAGE_BLUEPRINTS},
        "prefixes": tuple(blueprint.url_prefix for blueprint in PAGE_BLUEPRINTS),
    }
