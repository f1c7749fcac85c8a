"""The figures coordinators steer by."""

from flask.views import MethodView

from leads.pipeline.queries import funnel
from leads.pipeline.schemas import FunnelQuerySchema, FunnelSchema
from leads.web.guards import Audience
from leads.web.parsing import Blueprint

blp = Blueprint("stats", __name__, url_prefix="/api/v1/stats", description="Pipeline figures.")


@blp.route("/funnel")
class Funnel(MethodView):
    @blp.allow(Audience.STAFF)
    @blp.arguments(FunnelQuerySchema, location="query")
    @blp.response(200, FunnelSchema)
    def get(self, filters):
        """Leads by status and treatment, and how each clinic answers its referrals."""
        return funnel(filters)
