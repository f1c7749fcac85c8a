"""Who may call each route, declared where the route is defined and enforced in one place
before any view runs (CONTRACT §2). Closed by default: the app refuses to start while a route
declares no audience, and a request that reaches one anyway is refused.

A view says `@blp.allow(Audience.STAFF)` (flask-smorest resources) or `@allow(Audience.ANYONE)`
(plain Flask views); the routes the frameworks add are declared in `FRAMEWORK_ROUTES`.

The API authenticates by bearer header only; pages (leads/web/pages) by a session cookie only,
so a cross-site request carrying the cookie can never reach the API. A page session holds the
id of the credential it was signed in with (`sign_in`), looked up again on every request: a
deactivated user or a revoked key loses access at once. Without a session a page audience
redirects (303) to its sign-in page; with the wrong role it answers 403 (an HTML page)."""

from enum import StrEnum

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from webargs.flaskparser import abort

from leads.accounts.models import User
from leads.accounts.operations import (
    clinic_by_key_id,
    clinic_for,
    staff_user_by_token_id,
    staff_user_for,
)
from leads.catalogue.models import Clinic


class Audience(StrEnum):
    # Patients (a view checks their status token itself), operators, the docs.
    ANYONE = "anyone"
    # Coordinators and admins, by bearer token.
    STAFF = "staff"
    ADMIN = "admin"
    # A partner clinic, by its API key; it sees its own referrals only.
    CLINIC = "clinic"
    # The same people on pages, by the session cookie of a page sign-in (never the API).
    CLINIC_PAGE = "clinic page"
    STAFF_PAGE = "staff page"
    ADMIN_PAGE = "admin page"


class SignedIn(StrEnum):
    """Who a page session was signed in as; each has its sign-in page."""

    CLINIC = "clinic"
    STAFF = "staff"


SIGN_IN_PAGES = {SignedIn.CLINIC: "clinic_pages.sign_in", SignedIn.STAFF: "console_pages.sign_in"}
SESSION_KEY = "signed_in"


FRAMEWORK_ROUTES = {
    "static": Audience.ANYONE,
    "api-docs.openapi_json": Audience.ANYONE,
    "api-docs.openapi_swagger_ui": Audience.ANYONE,
}


def allow(audience: Audience):
    """Declare who may call the view."""

    def declare(view):
        view.audience = audience
        return view

    return declare


def declared_view(app: Flask, endpoint: str, method: str):
    """The function that answers `method` at `endpoint`, where its declarations are: a
    resource class's method, or the plain view."""
    view = app.view_functions[endpoint]
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, "get" if method == "HEAD" else method.lower(), None)
    return view


def declared_audience(app: Flask, endpoint: str, method: str) -> Audience | None:
    if endpoint in FRAMEWORK_ROUTES:
        return FRAMEWORK_ROUTES[endpoint]
    return getattr(declared_view(app, endpoint, method), "audience", None)


def undeclared_routes(app: Flask) -> list[str]:
    return [f"{method} {rule.rule}" for rule in app.url_map.iter_rules()
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
            if declared_audience(app, rule.endpoint, method) is None]


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


def current_staff() -> User | None:
    """The staff user behind the bearer token (the API) or the session (pages)."""
    if "staff" not in g:
        g.staff = staff_user_for(_bearer())
    return g.staff


def current_clinic() -> Clinic | None:
    """The clinic behind the bearer key (the API) or the session (pages)."""
    if "clinic" not in g:
        g.clinic = clinic_for(_bearer())
    return g.clinic


API_PREFIX = "/api/"


class PageSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, for the pages only: an API request is never read as
    signed in by a cookie, so none is opened for it (nor a cookie ever set by it)."""

    def open_session(self, app, request):
        if request.path.startswith(API_PREFIX):
            return self.make_null_session(app)
        return super().open_session(app, request)


def sign_in(kind: SignedIn, credential_id: int) -> None:
    """Start a page session for the credential (a `ClinicApiKey` or `StaffToken` id). The old
    session is dropped first, its CSRF token with it, so nothing planted before the sign-in
    survives it."""
    session.clear()
    session[SESSION_KEY] = {"as": kind.value, "credential_id": credential_id}


def sign_out() -> None:
    session.clear()


def _session_credential(kind: SignedIn) -> int | None:
    signed_in = session.get(SESSION_KEY)
    if isinstance(signed_in, dict) and signed_in.get("as") == kind.value:
        return signed_in.get("credential_id")
    return None


def _to_sign_in(kind: SignedIn):
    # A session that no longer opens anything (revoked key, deactivated user) is dropped.
    # The sign-in page comes back here afterwards (a link from an e-mail, say).
    session.pop(SESSION_KEY, None)
    return redirect(url_for(SIGN_IN_PAGES[kind], next=request.path), code=303)


def _enforce_page_session(audience: Audience):
    if audience is Audience.CLINIC_PAGE:
        clinic = g.clinic = clinic_by_key_id(_session_credential(SignedIn.CLINIC))
        if clinic is None:
            return _to_sign_in(SignedIn.CLINIC)
        if not clinic.active:
            abort(403, message="This clinic is not active.")
        return None
    user = g.staff = staff_user_by_token_id(_session_credential(SignedIn.STAFF))
    if user is None:
        return _to_sign_in(SignedIn.STAFF)
    if audience is Audience.ADMIN_PAGE and user.role != "admin":
        abort(403, message="This page is for admins.")
    return None


def _unauthorized():
    abort(401, message="Missing or invalid credentials.",
          headers={"WWW-Authenticate": 'Bearer realm="api"'})


PAGE_AUDIENCES = (Audience.CLINIC_PAGE, Audience.STAFF_PAGE, Audience.ADMIN_PAGE)


def enforce_declared_access():
    # A request no route matched (404, 405) and the automatic answers to OPTIONS (CORS
    # preflights) reach no view.
    if request.url_rule is None or request.method == "OPTIONS":
        return None
    audience = declared_audience(current_app, request.endpoint, request.method)
    if audience is Audience.ANYONE:
        return None
    if audience in PAGE_AUDIENCES:
        return _enforce_page_session(audience)
    if audience in (Audience.STAFF, Audience.ADMIN):
        user = current_staff()
        if user is None:
            _unauthorized()
        if audience is Audience.ADMIN and user.role != "admin":
            abort(403, message="This needs the role admin.")
    elif audience is Audience.CLINIC:
        clinic = current_clinic()
        if clinic is None:
            _unauthorized()
        if not clinic.active:
            abort(403, message="This clinic is not active.")
    else:
        abort(403, message="This route declares no audience; nobody may call it.")
    return None


def register_guards(app: Flask) -> None:
    missing = undeclared_routes(app)
    if missing:
        raise RuntimeError(f"routes that declare no audience (leads/web/guards.py): {missing}")
    app.session_interface = PageSessions()
    app.before_request(enforce_declared_access)
