"""The sign-in and sign-out flow shared by the clinic portal and the console.

A wrong (or empty) secret shows the form again with the error beside the field, answered
200 as any form shown again is: 401 and 403 are the guards' answers only (leads/web/guards.py),
and a page needs no WWW-Authenticate challenge. Attempts are rate-limited per client address
(`SIGN_IN_RATE_LIMIT`)."""

from collections.abc import Callable

from flask import current_app, flash, redirect, request, url_for
from flask_babel import gettext
from werkzeug.exceptions import HTTPException

from leads.web.extensions import limiter
from leads.web.guards import SignedIn, sign_in, sign_out
from leads.web.pages.forms import SignInForm
from leads.web.pages.rendering import render_page

sign_in_limit = limiter.limit(lambda: current_app.config["SIGN_IN_RATE_LIMIT"],
                              methods=["POST"])


def sign_in_page(kind: SignedIn, find_credential: Callable, landing: str, **labels):
    """GET shows the form; POST signs in with the credential `find_credential(secret)` finds
    and redirects (303) to `?next=` (set by the guard that sent the person here) or else to
    the endpoint `landing`. `labels` (title, label, hint, wrong) are the page's words."""
    form = SignInForm()
    if form.validate_on_submit():
        credential = find_credential(form.secret.data.strip())
        if credential is not None:
            sign_in(kind, credential.id)
            return redirect(_page_of_this_app(request.args.get("next")) or url_for(landing),
                            code=303)
        form.secret.errors.append(labels["wrong"])
    return render_page("pages/sign_in.html", form=form, **labels)


def sign_out_page(sign_in_endpoint: str):
    """POST (CSRFProtect has checked its token) ends the session; back to the sign-in page."""
    sign_out()
    flash(gettext("You have signed out."), "info")
    return redirect(url_for(sign_in_endpoint), code=303)


def _page_of_this_app(path: str | None) -> str | None:
    """`path` when it is one of this app's pages a browser can open (GET), else None: never
    another site (an open redirect) nor a route that only takes a post."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return None
    try:
        current_app.url_map.bind("localhost").match(path, method="GET")
    except HTTPException:  # no such page, a post-only route, or a redirect (RequestRedirect)
        return None
    return path
