"""Blueprints, one per resource."""

from flask import Flask

from leads.api import (
    clinic_referrals,
    clinics,
    currency_rates,
    inquiries,
    leads,
    me,
    operations,
    stats,
    treatments,
)
from leads.api.parsing import register_converters
from leads.extensions import api


def register_blueprints(app: Flask) -> None:
    register_converters(app, api)
    for module in (treatments, inquiries, me, leads, stats, clinics, clinic_referrals,
                   currency_rates):
        api.register_blueprint(module.blp)
    app.register_blueprint(operations.blp)
    app.before_request(operations.start_timer)
    app.after_request(operations.observe)
