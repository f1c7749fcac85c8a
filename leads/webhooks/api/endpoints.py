"""Each clinic's webhook endpoints and their recent failures, for admins (issue 13)."""

from flask.views import MethodView
from webargs.flaskparser import abort

from leads.catalogue.models import Clinic
from leads.core.database import db
from leads.core.paging import PageQuerySchema, page
from leads.web.guards import Audience
from leads.web.parsing import Blueprint
from leads.webhooks.models import WebhookEndpoint
from leads.webhooks.operations import clinic_endpoints, recent_failures
from leads.webhooks.schemas import AdminWebhookPageSchema

blp = Blueprint("clinic_endpoints", __name__, url_prefix="/api/v1/clinics",
                description="Partner clinics' webhook endpoints, for admins.")
admin = blp.allow(Audience.ADMIN)


@blp.route("/<int:clinic_id>/webhooks")
class ClinicWebhooks(MethodView):
    @admin
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, AdminWebhookPageSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, clinic_id):
        """The clinic's endpoints, disabled ones too, each with its latest failed attempts."""
        if db.session.get(Clinic, clinic_id) is None:
            abort(404, message=f"No clinic with id {clinic_id}.")
        found = page(db.session, clinic_endpoints(clinic_id), WebhookEndpoint.id,
                     query["limit"], query["cursor"])
        for endpoint in found["items"]:
            endpoint.recent_failures = recent_failures(endpoint.id)
        return found
