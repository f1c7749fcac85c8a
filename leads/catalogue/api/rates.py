"""The currency rates matching converts budgets and prices with; admins update them."""

from flask.views import MethodView
from marshmallow import ValidationError
from webargs.flaskparser import abort

from leads.catalogue.operations import list_rates, set_rate
from leads.catalogue.schemas import RateInSchema, RateSchema
from leads.core.database import db
from leads.core.fields import Currency
from leads.web.guards import Audience
from leads.web.parsing import Blueprint

blp = Blueprint("currency_rates", __name__, url_prefix="/api/v1/currency-rates",
                description="Currency rates to US dollars, used to compare budgets and prices.")


@blp.route("")
class Rates(MethodView):
    @blp.allow(Audience.STAFF)
    @blp.response(200, RateSchema(many=True))
    def get(self):
        """Every rate, by currency code."""
        return list_rates()


@blp.route("/<string:currency>")
class Rate(MethodView):
    @blp.allow(Audience.ADMIN)
    @blp.arguments(RateInSchema)
    @blp.response(200, RateSchema)
    @blp.alt_response(201, schema=RateSchema)
    def put(self, body, currency):
        """Set a currency's rate (201 when the currency had none)."""
        try:
            code = Currency().deserialize(currency)
        except ValidationError as error:
            abort(422, messages={"currency": error.messages})
        rate, created = set_rate(code, body["usd_per_unit"], body.get("note"))
        db.session.commit()
        return rate, 201 if created else 200
