"""Every blueprint of the app, one per resource, registered in one place: the API's, the
operations endpoints and the pages (leads/web/pages)."""

from flask import Flask

from leads.accounts.api import me, users
from leads.catalogue.api import clinics, rates, treatments
from leads.intake import api as inquiries
from leads.pipeline.api import clinic_referrals, leads, stats
from leads.privacy import api as people
from leads.web import monitoring
from leads.web.extensions import api
from leads.web.pages.site import register_pages
from leads.web.parsing import register_converters
from leads.webhooks.api import clinic_webhooks, endpoints

RESOURCES = (treatments, inquiries, me, leads, stats, clinics, clinic_referrals, rates, users,
             people, clinic_webhooks, endpoints)


def register_blueprints(app: Flask) -> None:
    register_converters(app, api)
    for module in RESOURCES:
        api.register_blueprint(module.blp)
    app.register_blueprint(monitoring.blp)
    # The API answers bearer credentials only, never a cookie: no CSRF token to check there.
    register_pages(app, api_blueprints=[module.blp for module in RESOURCES])
    app.before_request(monitoring.start_timer)
    app.after_request(monitoring.observe)
