"""A partner clinic's webhook endpoints, with its API key (CONTRACT §5)."""

from flask.views import MethodView
from webargs.flaskparser import abort

from leads.core.database import db
from leads.core.paging import PageQuerySchema, page
from leads.web.guards import Audience, current_clinic
from leads.web.parsing import Blueprint
from leads.webhooks.models import WebhookAttempt, WebhookEndpoint
from leads.webhooks.operations import (
    clinic_endpoint,
    clinic_endpoints,
    delete_endpoint,
    endpoint_attempts,
    register_endpoint,
    rotate_secret,
)
from leads.webhooks.schemas import (
    AttemptPageSchema,
    WebhookInSchema,
    WebhookPageSchema,
    WebhookSecretSchema,
)

blp = Blueprint("clinic_webhooks", __name__, url_prefix="/api/v1/clinic/webhooks",
                description="Where a partner clinic's systems are told of its referrals.")
clinic = blp.allow(Audience.CLINIC)


def own_endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = clinic_endpoint(current_clinic().id, endpoint_id)
    if endpoint is None:
        abort(404, message=f"No webhook endpoint {endpoint_id} for this clinic.")
    return endpoint


@blp.route("")
class Webhooks(MethodView):
    @clinic
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, WebhookPageSchema)
    def get(self, query):
        """This clinic's endpoints, newest first."""
        return page(db.session, clinic_endpoints(current_clinic().id), WebhookEndpoint.id,
                    query["limit"], query["cursor"])

    @clinic
    @blp.arguments(WebhookInSchema)
    @blp.response(201, WebhookSecretSchema)
    @blp.alt_response(409, response="CONFLICT")
    def post(self, fields):
        """Register an endpoint for some events; its signing secret is in this answer only."""
        endpoint = register_endpoint(current_clinic().id, fields["url"], fields["events"])
        db.session.commit()
        return endpoint


@blp.route("/<int:endpoint_id>")
class WebhookDetail(MethodView):
    @clinic
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, endpoint_id):
        """Remove an endpoint: nothing more is sent to it."""
        delete_endpoint(own_endpoint(endpoint_id))
        db.session.commit()


@blp.route("/<int:endpoint_id>/rotate-secret")
class RotateSecret(MethodView):
    @clinic
    @blp.response(200, WebhookSecretSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, endpoint_id):
        """A new signing secret, shown once; the one it replaces signs too for 24 hours."""
        endpoint = rotate_secret(own_endpoint(endpoint_id))
        db.session.commit()
        return endpoint


@blp.route("/<int:endpoint_id>/deliveries")
class Deliveries(MethodView):
    @clinic
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, AttemptPageSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, endpoint_id):
        """Every attempt to deliver to this endpoint, newest first: the event, the status code
        answered or the error, and when."""
        endpoint = own_endpoint(endpoint_id)
        return page(db.session, endpoint_attempts(endpoint.id), WebhookAttempt.id,
                    query["limit"], query["cursor"])
