"""Rendering pages: the language a page is in, the answer for a page, the error pages.

Languages: English (the default), Spanish and German. A page is in the language of
`Accept-Language` unless its view chose one with `use_language(code)` (the patient's status
page uses the lead's language); any other code falls back to English."""

from flask import current_app, g, render_template, request
from flask_babel import get_locale, lazy_gettext, refresh
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

PAGES_EXTENSION = "leads.pages"
LANGUAGES = ("en", "es", "de")
DEFAULT_LANGUAGE = "en"

# A title a person can read, for each error a page may answer.
ERROR_TITLES = {
    400: lazy_gettext("The form could not be used"),
    403: lazy_gettext("You may not open this page"),
    404: lazy_gettext("Page not found"),
    405: lazy_gettext("This page cannot be used that way"),
    409: lazy_gettext("This cannot be done now"),
    413: lazy_gettext("The file is too large"),
    422: lazy_gettext("Some details need correcting"),
    429: lazy_gettext("Too many attempts"),
    503: lazy_gettext("The service is busy"),
}
GENERIC_ERROR_TITLE = lazy_gettext("Something went wrong")
CSRF_DETAIL = lazy_gettext("The form expired or did not come from this site. Go back, reload "
                           "the page and send it again.")


def select_language() -> str:
    """Flask-Babel's locale selector."""
    chosen = g.get("page_language")
    if chosen:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def use_language(code: str | None) -> None:
    """Render this request's page in `code` (an ISO 639-1 code), English if it has none."""
    g.page_language = code if code in LANGUAGES else DEFAULT_LANGUAGE
    refresh()


def template_helpers() -> dict:
    return {"page_language": lambda: str(get_locale() or DEFAULT_LANGUAGE)}


def render_page(template: str, status: int = 200, **context):
    """The answer for a page: the template rendered with `context`, and its status."""
    return render_template(template, **context), status


def is_page_request() -> bool:
    """Whether the request is for a page (a page blueprint's route, or a path under a page
    prefix that matched no route), so that its errors are answered as pages."""
    pages = current_app.extensions.get(PAGES_EXTENSION)
    if pages is None:
        return False
    if request.blueprint is not None:
        return request.blueprint in pages["blueprints"]
    return any(request.path == prefix or request.path.startswith(prefix + "/")
               for prefix in pages["prefixes"])


def error_page(status: int, detail: str | None = None, headers=None):
    """An error answered as a page, in the request's language."""
    body = render_template("pages/error.html", status=status, detail=detail,
                           title=ERROR_TITLES.get(status, GENERIC_ERROR_TITLE))
    return body, status, dict(headers or {})


def error_page_from_http_exception(error: HTTPException):
    data = getattr(error, "data", None) or {}
    # CSRFError's own words are for developers.
    detail = CSRF_DETAIL if isinstance(error, CSRFError) else data.get("message")
    response = error.get_response()
    headers = {name: response.headers[name] for name in ("Retry-After", "Allow")
               if name in response.headers}
    return error_page(error.code or 500, detail, headers)
