"""Views that only read, declared where they are defined: `@reads_only`.

Their requests run the database's statements in autocommit on PostgreSQL
(`leads.core.database.autocommit_from_here`): a page of leads was four round trips (BEGIN,
the bearer token's look-up, the page, ROLLBACK) and is two (bench/RESULTS.md, "The lead
list, 2026-12-07"). A view that writes, locks a row or must read several statements from
one snapshot is not one: a clinic opening a referral (`requested` becomes `received`) is a
GET that writes. The guard writes a token's "last used" mark at most once a minute and
commits it; the statements after that commit run in a transaction, as anywhere else."""

from flask import Flask, current_app, request

from leads.core.database import autocommit_from_here
from leads.web.guards import declared_view


def reads_only(view):
    view.reads_only = True
    return view


def _autocommit_if_declared() -> None:
    if request.url_rule is None or request.endpoint not in current_app.view_functions:
        return
    if getattr(declared_view(current_app, request.endpoint, request.method), "reads_only",
               False):
        autocommit_from_here()


def register_read_only_views(app: Flask) -> None:
    """Before the guards (leads/web/guards.py), whose look-up of the caller is the first
    statement of a request."""
    app.before_request(_autocommit_if_declared)
